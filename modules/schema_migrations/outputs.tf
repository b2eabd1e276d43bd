output "bucket_name" {
  description = "Migrations bucket: upload `<database>/<migration id>.sql` (and optional `.rollback.sql`)."
  value       = module.bucket.bucket_id
}

output "bucket_arn" {
  description = "ARN of the migrations bucket."
  value       = module.bucket.bucket_arn
}

output "topic_arn" {
  description = "SNS topic receiving the bucket's notifications; the function subscribes to it (notifications = sns)."
  value       = module.events.topic_arn
}

output "rule_arn" {
  description = "EventBridge rule matching the bucket's `.sql` uploads; the function is its target (notifications = eventbridge)."
  value       = module.events.rule_arn
}

output "results_topic_arn" {
  description = "SNS topic the function publishes every run's result to (success and failure)."
  value       = try(aws_sns_topic.results[0].arn, null)
}

output "dlq_url" {
  description = "URL of the queue receiving invocations that failed every retry."
  value       = module.events.dlq_url
}

output "dlq_arn" {
  description = "ARN of the queue receiving invocations that failed every retry."
  value       = module.events.dlq_arn
}

output "buckets" {
  description = "Buckets of the pipeline by purpose: migrations = { name, arn }."
  value       = local.create ? { migrations = { name = module.bucket.bucket_id, arn = module.bucket.bucket_arn } } : {}
}

output "functions" {
  description = "The pipeline's functions by key (schema_migrations) as the lambda_function module's `summary` describes them: name, ARN, role, handler, environment, trigger (sns) and event source."
  value       = local.create ? { schema_migrations = module.function.summary } : {}
}
