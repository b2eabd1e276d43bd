output "bucket_name" {
  description = "Landing bucket: objects written under a route prefix are loaded."
  value       = module.bucket.bucket_id
}

output "bucket_arn" {
  description = "ARN of the landing bucket."
  value       = module.bucket.bucket_arn
}

output "topic_arn" {
  description = "SNS topic receiving the bucket's ObjectCreated notifications (notifications = sns)."
  value       = module.events.topic_arn
}

output "rule_arn" {
  description = "EventBridge rule matching the bucket's ObjectCreated events under the route prefixes; it delivers to the queue (notifications = eventbridge)."
  value       = module.events.rule_arn
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

output "buckets" {
  description = "Buckets of the pipeline by purpose: landing = { name, arn }."
  value       = local.create ? { landing = { name = module.bucket.bucket_id, arn = module.bucket.bucket_arn } } : {}
}

output "functions" {
  description = "The pipeline's functions by key (file_loader) as the lambda_function module's `summary` describes them: name, ARN, role, handler, environment, trigger (sqs) and event source."
  value       = local.create ? { file_loader = module.function.summary } : {}
}
