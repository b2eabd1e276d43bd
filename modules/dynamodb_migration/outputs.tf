output "target_table_name" {
  description = "Name of the target table (created here or existing)."
  value       = var.target.name
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
  description = <<-EOT
    The three functions by role (copy, sync, verify): function_name, arn, role_arn, role_name,
    log_group_name, handler, timeout, memory_size, environment_variables, trigger (manual |
    schedule for copy, stream for sync, manual for verify) and event_source { stream_arn,
    starting_position, batch_size, maximum_retry_attempts, on_failure_queue_url,
    on_failure_queue_arn, schedule_expression }. What a local event router needs.
  EOT
  value = local.create ? { for role, f in module.function : role => {
    function_name         = f.function_name
    arn                   = f.function_arn
    role_arn              = f.role_arn
    role_name             = f.role_name
    log_group_name        = f.log_group_name
    handler               = f.handler
    timeout               = f.timeout
    memory_size           = f.memory_size
    environment_variables = f.environment_variables
    trigger               = role == "sync" ? "stream" : (role == "copy" && var.copy.schedule != null ? "schedule" : "manual")
    event_source = {
      stream_arn             = role == "sync" ? var.source_stream_arn : null
      starting_position      = role == "sync" ? "TRIM_HORIZON" : null
      batch_size             = role == "sync" ? var.sync.batch_size : null
      maximum_retry_attempts = role == "sync" ? var.sync.maximum_retry_attempts : null
      on_failure_queue_url   = role == "sync" ? try(aws_sqs_queue.sync_failures[0].id, null) : null
      on_failure_queue_arn   = role == "sync" ? try(aws_sqs_queue.sync_failures[0].arn, null) : null
      schedule_expression    = role == "copy" ? var.copy.schedule : null
    }
  } } : {}
}
