output "bucket_name" {
  description = "Landing bucket: objects written under a route prefix are loaded."
  value       = module.bucket.bucket_id
}

output "bucket_arn" {
  description = "ARN of the landing bucket."
  value       = module.bucket.bucket_arn
}

output "topic_arn" {
  description = "SNS topic receiving the bucket's ObjectCreated notifications."
  value       = module.events.topic_arn
}

output "queue_url" {
  description = "URL of the queue feeding the function."
  value       = module.events.queue_url
}

output "queue_arn" {
  description = "ARN of the queue feeding the function."
  value       = module.events.queue_arn
}

output "dlq_url" {
  description = "URL of the dead-letter queue."
  value       = module.events.dlq_url
}

output "dlq_arn" {
  description = "ARN of the dead-letter queue."
  value       = module.events.dlq_arn
}

output "notification_prefixes" {
  description = "Key prefixes the bucket notification covers."
  value       = local.notification_prefixes
}

output "routes" {
  description = "The routes, as passed to the function in ROUTES."
  value       = local.routes
}

output "function" {
  description = "The function: name, ARN, role, handler, timeout, memory, environment and event source settings."
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
    event_source_mapping  = module.function.event_source_mapping_uuid
    batch_size            = var.batch_size
    maximum_concurrency   = var.maximum_concurrency
  }
}
