output "notifications" {
  description = "How the bucket's events travel: sns or eventbridge."
  value       = var.notifications
}

output "rule_arn" {
  description = "ARN of the EventBridge rule matching the bucket's events (notifications = eventbridge)."
  value       = try(aws_cloudwatch_event_rule.this[0].arn, null)
}

output "rule_name" {
  description = "Name of the EventBridge rule (notifications = eventbridge), on the default event bus."
  value       = try(aws_cloudwatch_event_rule.this[0].name, null)
}

output "event_pattern" {
  description = "Event pattern of the EventBridge rule (notifications = eventbridge)."
  value       = try(aws_cloudwatch_event_rule.this[0].event_pattern, null)
}

output "topic_arn" {
  description = "ARN of the SNS topic receiving the bucket's notifications (notifications = sns)."
  value       = try(aws_sns_topic.this[0].arn, null)
}

output "topic_name" {
  description = "Name of the SNS topic."
  value       = try(aws_sns_topic.this[0].name, null)
}

output "queue_arn" {
  description = "ARN of the SQS queue the topic or the rule delivers to."
  value       = try(aws_sqs_queue.this[0].arn, null)
}

output "queue_url" {
  description = "URL of the SQS queue."
  value       = try(aws_sqs_queue.this[0].id, null)
}

output "queue_name" {
  description = "Name of the SQS queue."
  value       = try(aws_sqs_queue.this[0].name, null)
}

output "dlq_arn" {
  description = "ARN of the dead-letter queue."
  value       = try(aws_sqs_queue.dlq[0].arn, null)
}

output "dlq_url" {
  description = "URL of the dead-letter queue."
  value       = try(aws_sqs_queue.dlq[0].id, null)
}

output "dlq_name" {
  description = "Name of the dead-letter queue (for depth alarms)."
  value       = try(aws_sqs_queue.dlq[0].name, null)
}

output "subscription_arn" {
  description = "ARN of the topic -> queue subscription (notifications = sns)."
  value       = try(aws_sns_topic_subscription.queue[0].arn, null)
}

output "notification_filters" {
  description = "The key filters of the bucket notification."
  value       = var.filters
}
