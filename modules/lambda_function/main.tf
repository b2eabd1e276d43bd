data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  create    = var.create
  in_vpc    = length(var.vpc_subnet_ids) > 0
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.name
  # arn:<partition>:iam::<account>:role/<name>: the account is read from the role so that
  # planning needs no API call and every ARN below names this account exactly.
  account_id = try(split(":", aws_iam_role.this[0].arn)[4], "")

  log_group_name = "/aws/lambda/${var.function_name}"
  environment = merge(
    {
      LOG_LEVEL               = var.log_level
      POWERTOOLS_SERVICE_NAME = var.function_name
    },
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
}

################################################################################
# IAM: one role per function
################################################################################

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "LambdaAssumeRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  count = local.create ? 1 : 0

  name               = var.function_name
  description        = "Execution role of the ${var.function_name} Lambda function"
  assume_role_policy = data.aws_iam_policy_document.assume.json

  tags = var.tags
}

data "aws_iam_policy_document" "this" {
  count = local.create ? 1 : 0

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this[0].arn}:*"]
  }

  dynamic "statement" {
    for_each = var.tracing_mode == "Active" ? [1] : []

    content {
      sid = "XRayWrite"
      # X-Ray trace writes have no resource-level permissions: AWS only accepts "*".
      actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = local.in_vpc ? [1] : []

    content {
      sid     = "VpcCreateNetworkInterface"
      actions = ["ec2:CreateNetworkInterface"]
      resources = concat(
        ["${local.ec2_arn_prefix}:network-interface/*"],
        [for id in var.vpc_subnet_ids : "${local.ec2_arn_prefix}:subnet/${id}"],
        [for id in var.vpc_security_group_ids : "${local.ec2_arn_prefix}:security-group/${id}"],
      )
    }
  }

  dynamic "statement" {
    for_each = local.in_vpc ? [1] : []

    content {
      sid       = "VpcManageNetworkInterfaces"
      actions   = ["ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"]
      resources = ["${local.ec2_arn_prefix}:network-interface/*"]
    }
  }

  dynamic "statement" {
    for_each = local.in_vpc ? [1] : []

    content {
      sid = "VpcDescribe"
      # EC2 Describe* calls cannot be scoped to resources: AWS only accepts "*".
      actions   = ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = var.sqs_event_source == null ? [] : [var.sqs_event_source]

    content {
      sid       = "ConsumeQueue"
      actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
      resources = [statement.value.queue_arn]
    }
  }

  dynamic "statement" {
    for_each = var.dynamodb_event_source == null ? [] : [var.dynamodb_event_source]

    content {
      sid       = "ReadStream"
      actions   = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
      resources = [statement.value.stream_arn]
    }
  }

  dynamic "statement" {
    for_each = var.dynamodb_event_source == null ? [] : [var.dynamodb_event_source]

    content {
      sid = "ListStreams"
      # dynamodb:ListStreams has no resource type: AWS only accepts "*".
      actions   = ["dynamodb:ListStreams"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = length(local.sqs_destinations) > 0 ? [1] : []

    content {
      sid       = "SendToFailureQueue"
      actions   = ["sqs:SendMessage"]
      resources = local.sqs_destinations
    }
  }

  dynamic "statement" {
    for_each = length(local.sns_destinations) > 0 ? [1] : []

    content {
      sid       = "PublishToFailureTopic"
      actions   = ["sns:Publish"]
      resources = local.sns_destinations
    }
  }

  dynamic "statement" {
    for_each = var.policy_statements

    content {
      sid       = statement.value.sid
      effect    = statement.value.effect
      actions   = statement.value.actions
      resources = statement.value.resources

      dynamic "condition" {
        for_each = statement.value.conditions

        content {
          test     = condition.value.test
          variable = condition.value.variable
          values   = condition.value.values
        }
      }
    }
  }
}

resource "aws_iam_role_policy" "this" {
  count = local.create ? 1 : 0

  name   = "${var.function_name}-least-privilege"
  role   = aws_iam_role.this[0].id
  policy = data.aws_iam_policy_document.this[0].json
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

data "aws_iam_policy_document" "scheduler_assume" {
  count = local.create && var.schedule != null ? 1 : 0

  statement {
    sid     = "SchedulerAssumeRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  count = local.create && var.schedule != null ? 1 : 0

  name               = "${var.function_name}-sched"
  description        = "Lets EventBridge Scheduler invoke ${var.function_name}"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume[0].json

  tags = var.tags
}

data "aws_iam_policy_document" "scheduler" {
  count = local.create && var.schedule != null ? 1 : 0

  statement {
    sid       = "InvokeFunction"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.this[0].arn, "${aws_lambda_function.this[0].arn}:*"]
  }

  dynamic "statement" {
    for_each = var.schedule.dead_letter == null ? [] : [var.schedule.dead_letter]

    content {
      sid       = "SendToDeadLetterQueue"
      actions   = ["sqs:SendMessage"]
      resources = [statement.value.arn]
    }
  }
}

resource "aws_iam_role_policy" "scheduler" {
  count = local.create && var.schedule != null ? 1 : 0

  name   = "${var.function_name}-invoke"
  role   = aws_iam_role.scheduler[0].id
  policy = data.aws_iam_policy_document.scheduler[0].json
}

resource "aws_scheduler_schedule" "this" {
  count = local.create && var.schedule != null ? 1 : 0

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
