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
  value       = try(var.package.handler, null)
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

output "schedule_role_arn" {
  description = "ARN of the role EventBridge Scheduler invokes the function with, if any (passed again by whoever updates the schedule)."
  value       = try(aws_iam_role.scheduler[0].arn, null)
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

output "summary" {
  description = <<-EOT
    The function as local tools (the event router of `make demo`, the tests) read it: function_name,
    arn, role_arn, role_name, log_group_name, handler, timeout, memory_size, environment_variables,
    trigger (sqs | dynamodb | sns | eventbridge | schedule | invoke) and event_source { bucket,
    prefixes, topic_arn, rule_arn, queue_url, queue_arn, dlq_url, dlq_arn, batch_size,
    maximum_concurrency, sns_topic_arn, schedule_expression, stream_arn }. Null when the function
    is not created.
  EOT
  value = local.create ? {
    function_name         = aws_lambda_function.this[0].function_name
    arn                   = aws_lambda_function.this[0].arn
    role_arn              = aws_iam_role.this[0].arn
    role_name             = aws_iam_role.this[0].name
    log_group_name        = aws_cloudwatch_log_group.this[0].name
    handler               = var.package.handler
    timeout               = var.timeout
    memory_size           = var.memory_size
    environment_variables = local.environment
    trigger               = local.trigger
    event_source = {
      bucket     = var.event_source_details.bucket
      prefixes   = var.event_source_details.prefixes
      topic_arn  = var.event_source_details.topic_arn
      rule_arn   = var.event_source_details.rule_arn != null ? var.event_source_details.rule_arn : try(var.eventbridge_rule.rule_arn, null)
      queue_url  = var.event_source_details.queue_url
      queue_arn  = try(var.sqs_event_source.queue_arn, null)
      dlq_url    = var.event_source_details.dlq_url
      dlq_arn    = var.event_source_details.dlq_arn
      batch_size = try(var.sqs_event_source.batch_size, var.dynamodb_event_source.batch_size, null)
      # Most concurrent invocations: the queue's scaling limit, else the reserved concurrency.
      maximum_concurrency = var.sqs_event_source != null ? var.sqs_event_source.maximum_concurrency : (var.reserved_concurrent_executions >= 0 ? var.reserved_concurrent_executions : null)
      sns_topic_arn       = try(var.sns_subscription.topic_arn, null)
      schedule_expression = try(var.schedule.expression, null)
      stream_arn          = try(var.dynamodb_event_source.stream_arn, null)
    }
  } : null
}
