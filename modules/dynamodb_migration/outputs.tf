output "target_table_name" {
  description = "Name of the target table (created here or existing)."
  value       = local.create ? local.target_name : null
}

output "target_table_arn" {
  description = "ARN of the target table."
  value       = local.create ? local.target_arn : null
}

output "state_table_name" {
  description = "Name of the migration's state table (segment checkpoints, keys the stream applied)."
  value       = try(aws_dynamodb_table.state[0].name, null)
}

output "state_table_arn" {
  description = "ARN of the state table."
  value       = try(aws_dynamodb_table.state[0].arn, null)
}

output "results_topic_arn" {
  description = "SNS topic receiving every verify result (subscribe to it for the cutover)."
  value       = try(aws_sns_topic.results[0].arn, null)
}

output "sync_failures_queue_url" {
  description = "URL of the queue receiving the metadata of stream batches the sync gave up on."
  value       = try(aws_sqs_queue.sync_failures[0].id, null)
}

output "sync_failures_queue_arn" {
  description = "ARN of the sync's on-failure queue."
  value       = try(aws_sqs_queue.sync_failures[0].arn, null)
}

output "transform" {
  description = "The transform, as passed to the functions in TRANSFORM (JSON)."
  value       = jsonencode(var.transform)
}

output "functions" {
  description = "The three functions by key (dynamodb_migration_copy, _sync, _verify) as the lambda_function module's `summary` describes them: name, ARN, role, handler, environment, trigger (copy: invoke, or schedule with copy.schedule; sync: dynamodb; verify: invoke) and event source (the sync's stream and failure queue as dlq_url / dlq_arn)."
  value       = local.create ? { for role, f in module.function : "dynamodb_migration_${role}" => f.summary } : {}
}

output "buckets" {
  description = "Buckets of the pipeline by purpose: none (`{}`)."
  value       = {}
}
