data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  create          = var.create
  create_schedule = local.create && var.schedule != null
  in_vpc          = length(var.vpc_subnet_ids) > 0
  partition       = data.aws_partition.current.partition
  region          = data.aws_region.current.id
  # arn:<partition>:iam::<account>:role/<path><name>: the account is read from the role so that
  # planning needs no API call and every ARN below names this account exactly.
  account_id = try(split(":", aws_iam_role.this[0].arn)[4], "")

  log_group_name = local.create ? "/aws/lambda/${var.function_name}" : null

  # A null entry is no database (a pipeline whose database access is optional).
  databases = { for prefix, db in var.databases : prefix => db if db != null }
  # <PREFIX>_HOST, _PORT, _NAME, _SECRET_ARN, _SSLMODE (and _ENGINE, _ODBC_DRIVER,
  # _CONNECT_TIMEOUT when set) per database, as pipeline_common.config.DatabaseSettings reads them.
  database_environment = merge({}, [for prefix, db in local.databases : merge(
    {
      "${prefix}_HOST"       = db.host
      "${prefix}_PORT"       = tostring(db.port)
      "${prefix}_NAME"       = db.name
      "${prefix}_SECRET_ARN" = db.secret_arn
      "${prefix}_SSLMODE"    = db.sslmode
    },
    db.engine == null ? {} : { "${prefix}_ENGINE" = db.engine },
    db.odbc_driver == null ? {} : { "${prefix}_ODBC_DRIVER" = db.odbc_driver },
    db.connect_timeout == null ? {} : { "${prefix}_CONNECT_TIMEOUT" = tostring(db.connect_timeout) },
  )]...)
  environment_collisions = setintersection(keys(local.database_environment), keys(var.environment_variables))

  environment = merge(
    {
      LOG_LEVEL               = var.log_level
      POWERTOOLS_SERVICE_NAME = var.function_name
    },
    var.secret_ttl_seconds == null ? {} : { SECRET_TTL_SECONDS = tostring(var.secret_ttl_seconds) },
    local.database_environment,
    var.environment_variables,
  )
  # Lambda's application log levels are TRACE, DEBUG, INFO, WARN, ERROR, FATAL.
  application_log_level = var.log_level == "WARNING" ? "WARN" : var.log_level

  ec2_arn_prefix = "arn:${local.partition}:ec2:${local.region}:${local.account_id}"

  # Failure destinations are objects, so whether one is set is known at plan time even when its
  # ARN is not yet.
  destinations = concat(
    var.dead_letter_target == null ? [] : [var.dead_letter_target],
    try(var.dynamodb_event_source.on_failure, null) == null ? [] : [var.dynamodb_event_source.on_failure],
  )
  sqs_destinations = [for d in local.destinations : d.arn if d.type == "sqs"]
  sns_destinations = [for d in local.destinations : d.arn if d.type == "sns"]

  trigger = (
    var.sqs_event_source != null ? "sqs" :
    var.dynamodb_event_source != null ? "dynamodb" :
    var.sns_subscription != null ? "sns" :
    var.eventbridge_rule != null ? "eventbridge" :
    var.schedule != null ? "schedule" : "invoke"
  )
}

################################################################################
# Function and logs
################################################################################

resource "aws_cloudwatch_log_group" "this" {
  count = local.create ? 1 : 0

  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn

  tags = var.tags
}

resource "aws_lambda_function" "this" {
  count = local.create ? 1 : 0

  function_name    = var.function_name
  description      = var.description
  role             = aws_iam_role.this[0].arn
  handler          = var.package.handler
  runtime          = var.runtime
  architectures    = [var.architecture]
  filename         = var.package.filename
  source_code_hash = var.package.source_code_hash
  memory_size      = var.memory_size
  timeout          = var.timeout
  layers           = var.layers

  reserved_concurrent_executions = var.reserved_concurrent_executions

  ephemeral_storage {
    size = var.ephemeral_storage_size
  }

  environment {
    variables = local.environment
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.this[0].name
    application_log_level = local.application_log_level
    system_log_level      = "WARN"
  }

  tracing_config {
    mode = var.tracing_mode
  }

  dynamic "vpc_config" {
    for_each = local.in_vpc ? [1] : []

    content {
      subnet_ids         = var.vpc_subnet_ids
      security_group_ids = var.vpc_security_group_ids
    }
  }

  dynamic "dead_letter_config" {
    for_each = var.dead_letter_target == null ? [] : [var.dead_letter_target]

    content {
      target_arn = dead_letter_config.value.arn
    }
  }

  tags = var.tags

  # The role must carry its permissions (VPC, queue) before Lambda validates them.
  depends_on = [aws_iam_role_policy.this]

  lifecycle {
    precondition {
      condition     = length(local.environment_collisions) == 0
      error_message = "environment_variables sets ${join(", ", local.environment_collisions)}, which the databases input sets too: describe the database in databases only."
    }
  }
}

################################################################################
# Triggers
################################################################################

resource "aws_lambda_event_source_mapping" "sqs" {
  count = local.create && var.sqs_event_source != null ? 1 : 0

  event_source_arn                   = var.sqs_event_source.queue_arn
  function_name                      = aws_lambda_function.this[0].arn
  batch_size                         = var.sqs_event_source.batch_size
  maximum_batching_window_in_seconds = var.sqs_event_source.maximum_batching_window_in_seconds
  function_response_types            = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.sqs_event_source.maximum_concurrency
  }

  tags = var.tags
}

resource "aws_lambda_event_source_mapping" "dynamodb" {
  count = local.create && var.dynamodb_event_source != null ? 1 : 0

  event_source_arn                   = var.dynamodb_event_source.stream_arn
  function_name                      = aws_lambda_function.this[0].arn
  starting_position                  = var.dynamodb_event_source.starting_position
  batch_size                         = var.dynamodb_event_source.batch_size
  maximum_batching_window_in_seconds = var.dynamodb_event_source.maximum_batching_window
  bisect_batch_on_function_error     = var.dynamodb_event_source.bisect_batch_on_function_error
  maximum_retry_attempts             = var.dynamodb_event_source.maximum_retry_attempts
  maximum_record_age_in_seconds      = var.dynamodb_event_source.maximum_record_age_in_seconds
  parallelization_factor             = var.dynamodb_event_source.parallelization_factor
  function_response_types            = ["ReportBatchItemFailures"]

  dynamic "destination_config" {
    for_each = var.dynamodb_event_source.on_failure == null ? [] : [var.dynamodb_event_source.on_failure]

    content {
      on_failure {
        destination_arn = destination_config.value.arn
      }
    }
  }

  tags = var.tags
}

resource "aws_lambda_permission" "sns" {
  count = local.create && var.sns_subscription != null ? 1 : 0

  statement_id  = "AllowInvokeFromTopic"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this[0].function_name
  principal     = "sns.amazonaws.com"
  source_arn    = var.sns_subscription.topic_arn
}

resource "aws_sns_topic_subscription" "this" {
  count = local.create && var.sns_subscription != null ? 1 : 0

  topic_arn     = var.sns_subscription.topic_arn
  protocol      = "lambda"
  endpoint      = aws_lambda_function.this[0].arn
  filter_policy = var.sns_subscription.filter_policy

  depends_on = [aws_lambda_permission.sns]
}

resource "aws_lambda_permission" "eventbridge" {
  count = local.create && var.eventbridge_rule != null ? 1 : 0

  statement_id  = "AllowInvokeFromRule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this[0].function_name
  principal     = "events.amazonaws.com"
  source_arn    = var.eventbridge_rule.rule_arn
}

resource "aws_cloudwatch_event_target" "this" {
  count = local.create && var.eventbridge_rule != null ? 1 : 0

  rule      = var.eventbridge_rule.rule_name
  target_id = "function"
  arn       = aws_lambda_function.this[0].arn

  retry_policy {
    maximum_retry_attempts       = var.eventbridge_rule.maximum_retry_attempts
    maximum_event_age_in_seconds = var.eventbridge_rule.maximum_event_age_in_seconds
  }

  dynamic "dead_letter_config" {
    for_each = var.eventbridge_rule.dead_letter == null ? [] : [var.eventbridge_rule.dead_letter]

    content {
      arn = dead_letter_config.value.arn
    }
  }

  depends_on = [aws_lambda_permission.eventbridge]
}

resource "aws_scheduler_schedule" "this" {
  count = local.create_schedule ? 1 : 0

  name                         = var.function_name
  description                  = "Invokes ${var.function_name}"
  schedule_expression          = var.schedule.expression
  schedule_expression_timezone = var.schedule.timezone
  state                        = var.schedule.enabled ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.this[0].arn
    role_arn = aws_iam_role.scheduler[0].arn
    input    = var.schedule.input

    retry_policy {
      maximum_retry_attempts       = var.schedule.maximum_retry_attempts
      maximum_event_age_in_seconds = var.schedule.maximum_event_age_in_seconds
    }

    dynamic "dead_letter_config" {
      for_each = var.schedule.dead_letter == null ? [] : [var.schedule.dead_letter]

      content {
        arn = dead_letter_config.value.arn
      }
    }
  }

  depends_on = [aws_iam_role_policy.scheduler]
}

################################################################################
# Alarms
################################################################################

locals {
  create_alarms = local.create && var.create_alarms
  alarm_actions = var.alarm_topic_arn == null ? [] : [var.alarm_topic_arn]
}

locals {
  # The function's own metrics, one alarm each (any sum above zero in five minutes), keyed by the
  # suffix of the alarm's name.
  function_alarms = {
    errors = {
      metric_name = "Errors"
      description = "reported invocation errors"
    }
    throttles = {
      metric_name = "Throttles"
      description = "was throttled (concurrency limit reached)"
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "function" {
  for_each = local.create_alarms ? local.function_alarms : {}

  alarm_name          = "${var.function_name}-${each.key}"
  alarm_description   = "${var.function_name} ${each.value.description}"
  namespace           = "AWS/Lambda"
  metric_name         = each.value.metric_name
  dimensions          = { FunctionName = aws_lambda_function.this[0].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  tags = var.tags
}

# The errors and throttles alarms were two counted resources: existing state follows them here.
moved {
  from = aws_cloudwatch_metric_alarm.errors[0]
  to   = aws_cloudwatch_metric_alarm.function["errors"]
}

moved {
  from = aws_cloudwatch_metric_alarm.throttles[0]
  to   = aws_cloudwatch_metric_alarm.function["throttles"]
}

resource "aws_cloudwatch_metric_alarm" "dlq_depth" {
  count = local.create_alarms ? length(var.alarm_dlq_names) : 0

  alarm_name          = "${var.function_name}-dlq-${count.index}"
  alarm_description   = "Messages for ${var.function_name} reached the dead-letter queue ${var.alarm_dlq_names[count.index]}"
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = var.alarm_dlq_names[count.index] }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "iterator_age" {
  count = local.create_alarms && var.dynamodb_event_source != null ? 1 : 0

  alarm_name          = "${var.function_name}-iterator-age"
  alarm_description   = "${var.function_name} is falling behind its DynamoDB stream"
  namespace           = "AWS/Lambda"
  metric_name         = "IteratorAge"
  dimensions          = { FunctionName = aws_lambda_function.this[0].function_name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  threshold           = var.alarm_iterator_age_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  tags = var.tags
}
