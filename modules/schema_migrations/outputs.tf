output "bucket_name" {
  description = "Migrations bucket: upload `<database>/<migration id>.sql` (and optional `.rollback.sql`)."
  value       = module.bucket.bucket_id
}

output "bucket_arn" {
  description = "ARN of the migrations bucket."
  value       = module.bucket.bucket_arn
}

output "topic_arn" {
  description = "SNS topic receiving the bucket's notifications; the function subscribes to it."
  value       = module.events.topic_arn
}

output "results_topic_arn" {
  description = "SNS topic the function publishes every run's result to (success and failure)."
  value       = try(aws_sns_topic.results[0].arn, null)
}

output "dlq_url" {
  description = "URL of the queue receiving invocations that failed every retry."
  value       = try(aws_sqs_queue.dlq[0].id, null)
}

output "dlq_arn" {
  description = "ARN of the queue receiving invocations that failed every retry."
  value       = try(aws_sqs_queue.dlq[0].arn, null)
}

output "function" {
  description = "The function: name, ARN, role, handler, timeout, memory, environment and subscription."
  value = {
    function_name         = module.function.function_name
    arn                   = module.function.function_arn
    role_arn              = module.function.role_arn
    role_name             = module.function.role_name
    log_group_name        = module.function.log_group_name
    handler               = module.function.handler
    timeout               = module.function.timeout
    memory_size           = module.function.memory_size
    environment_variables = module.function.environment_variables
    sns_subscription_arn  = module.function.sns_subscription_arn
  }
}
