output "function_name" {
  description = "Name of the function."
  value       = try(aws_lambda_function.this[0].function_name, null)
}

output "function_arn" {
  description = "ARN of the function."
  value       = try(aws_lambda_function.this[0].arn, null)
}

output "invoke_arn" {
  description = "Invoke ARN of the function."
  value       = try(aws_lambda_function.this[0].invoke_arn, null)
}

output "role_arn" {
  description = "ARN of the function's own execution role."
  value       = try(aws_iam_role.this[0].arn, null)
}

output "role_name" {
  description = "Name of the function's own execution role."
  value       = try(aws_iam_role.this[0].name, null)
}

output "log_group_name" {
  description = "CloudWatch log group of the function."
  value       = try(aws_cloudwatch_log_group.this[0].name, null)
}

output "handler" {
  description = "Handler of the function."
  value       = var.package.handler
}

output "timeout" {
  description = "Timeout of the function in seconds."
  value       = var.timeout
}

output "memory_size" {
  description = "Memory of the function in MB."
  value       = var.memory_size
}

output "environment_variables" {
  description = "Environment variables the function runs with."
  value       = local.environment
}

output "event_source_mapping_uuid" {
  description = "UUID of the SQS or DynamoDB event source mapping, if any."
  value       = try(aws_lambda_event_source_mapping.sqs[0].uuid, aws_lambda_event_source_mapping.dynamodb[0].uuid, null)
}

output "sns_subscription_arn" {
  description = "ARN of the topic -> function subscription, if any."
  value       = try(aws_sns_topic_subscription.this[0].arn, null)
}

output "schedule_arn" {
  description = "ARN of the EventBridge Scheduler schedule, if any."
  value       = try(aws_scheduler_schedule.this[0].arn, null)
}

output "schedule_expression" {
  description = "Expression of the schedule, if any."
  value       = try(var.schedule.expression, null)
}

output "alarm_arns" {
  description = "ARNs of the function's CloudWatch alarms."
  value = concat(
    # Errors, then throttles, as before: values() orders by key.
    values(aws_cloudwatch_metric_alarm.function)[*].arn,
    aws_cloudwatch_metric_alarm.dlq_depth[*].arn,
    aws_cloudwatch_metric_alarm.iterator_age[*].arn,
  )
}
