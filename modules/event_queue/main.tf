locals {
  create       = var.create
  sns          = var.create && var.notifications == "sns"
  eventbridge  = var.create && var.notifications == "eventbridge"
  create_queue = var.create && var.create_queue
  create_dlq   = var.create && var.create_dlq

  topic_arn = try(aws_sns_topic.this[0].arn, "")
  # arn:<partition>:sns:<region>:<account>:<name>; read from the topic so planning needs no API call.
  account_id = try(split(":", local.topic_arn)[4], "")
  rule_arn   = try(aws_cloudwatch_event_rule.this[0].arn, "")
  # The bucket's name from its ARN, which is known at plan time: the rule's pattern shows in the plan.
  bucket_name = try(regex("^arn:[^:]+:s3:::(.+)$", var.bucket_arn)[0], var.bucket_id)

  # EventBridge: the S3 event types of var.events as the detail-types S3 sends to EventBridge.
  detail_types = { ObjectCreated = "Object Created", ObjectRemoved = "Object Deleted" }
  event_kinds  = [for e in var.events : split(":", e)[1]]
  # A filter with neither prefix nor suffix matches every key: then the rule needs no key condition.
  every_key = length(var.filters) == 0 || anytrue([for f in var.filters : f.prefix == "" && f.suffix == ""])
  # EventBridge wildcards escape * and \ with a backslash.
  key_matchers = [for f in var.filters : (
    f.suffix == "" ? tomap({ prefix = f.prefix }) :
    f.prefix == "" ? tomap({ suffix = f.suffix }) :
    tomap({ wildcard = "${replace(replace(f.prefix, "\\", "\\\\"), "*", "\\*")}*${replace(replace(f.suffix, "\\", "\\\\"), "*", "\\*")}" })
  )]
  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = distinct([for kind in local.event_kinds : lookup(local.detail_types, kind, kind)])
    detail = merge(
      { bucket = { name = [local.bucket_name] } },
      local.every_key ? {} : { object = { key = local.key_matchers } },
    )
  })
}

################################################################################
# S3 -> SNS
################################################################################

resource "aws_sns_topic" "this" {
  count = local.sns ? 1 : 0

  name              = var.name
  kms_master_key_id = var.kms_key_arn

  tags = var.tags
}

resource "aws_sns_topic_policy" "this" {
  count = local.sns ? 1 : 0

  arn = aws_sns_topic.this[0].arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AllowSourceBucketPublish"
        Effect    = "Allow"
        Principal = { Service = "s3.amazonaws.com" }
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.this[0].arn
        Condition = {
          ArnLike      = { "aws:SourceArn" = var.bucket_arn }
          StringEquals = { "aws:SourceAccount" = local.account_id }
        }
      },
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.this[0].arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}

resource "aws_s3_bucket_notification" "this" {
  count = local.create ? 1 : 0

  bucket = var.bucket_id
  # All of the bucket's events go to EventBridge, where the rule below (and any other consumer's)
  # picks what it needs.
  eventbridge = local.eventbridge

  dynamic "topic" {
    for_each = local.sns ? var.filters : []

    content {
      id            = "${var.name}-${topic.key}"
      topic_arn     = aws_sns_topic.this[0].arn
      events        = var.events
      filter_prefix = topic.value.prefix == "" ? null : topic.value.prefix
      filter_suffix = topic.value.suffix == "" ? null : topic.value.suffix
    }
  }

  # S3 checks that it may publish when the configuration is saved.
  depends_on = [aws_sns_topic_policy.this]
}

################################################################################
# S3 -> EventBridge: one rule on the bucket, its event types and key filters
################################################################################

resource "aws_cloudwatch_event_rule" "this" {
  count = local.eventbridge ? 1 : 0

  name          = var.name
  description   = "S3 ${join(", ", distinct([for kind in local.event_kinds : lookup(local.detail_types, kind, kind)]))} events of ${local.bucket_name}"
  event_pattern = local.event_pattern

  tags = var.tags

  lifecycle {
    precondition {
      condition     = alltrue([for e in var.events : endswith(e, ":*") && contains(keys(local.detail_types), split(":", e)[1])])
      error_message = "With notifications = \"eventbridge\", events may be s3:ObjectCreated:* and s3:ObjectRemoved:* (EventBridge's Object Created and Object Deleted), got ${join(", ", var.events)}."
    }
  }
}

# The queue as the rule's target; without a queue, modules/lambda_function's eventbridge_rule input
# makes the function the target.
resource "aws_cloudwatch_event_target" "queue" {
  count = local.eventbridge && local.create_queue ? 1 : 0

  rule      = aws_cloudwatch_event_rule.this[0].name
  target_id = "queue"
  arn       = aws_sqs_queue.this[0].arn

  retry_policy {
    maximum_event_age_in_seconds = var.eventbridge_maximum_event_age_in_seconds
    maximum_retry_attempts       = var.eventbridge_maximum_retry_attempts
  }

  dynamic "dead_letter_config" {
    for_each = local.create_dlq ? [1] : []

    content {
      arn = aws_sqs_queue.dlq[0].arn
    }
  }

  depends_on = [aws_sqs_queue_policy.this]
}

################################################################################
# Queue and dead-letter queue
################################################################################

resource "aws_sqs_queue" "dlq" {
  count = local.create_dlq ? 1 : 0

  name                      = "${var.name}-dlq"
  message_retention_seconds = var.dlq_message_retention_seconds
  sqs_managed_sse_enabled   = true

  tags = var.tags
}

resource "aws_sqs_queue_policy" "dlq" {
  count = local.create_dlq ? 1 : 0

  queue_url = aws_sqs_queue.dlq[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      local.eventbridge ? [{
        # Events the rule could not deliver to its target (the queue, or the function) after its retries.
        Sid       = "AllowRuleDeadLetters"
        Effect    = "Allow"
        Principal = { Service = "events.amazonaws.com" }
        Action    = "sqs:SendMessage"
        Resource  = aws_sqs_queue.dlq[0].arn
        Condition = { ArnEquals = { "aws:SourceArn" = local.rule_arn } }
      }] : [],
      [{
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sqs:*"
        Resource  = aws_sqs_queue.dlq[0].arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      }],
    )
  })
}

resource "aws_sqs_queue" "this" {
  count = local.create_queue ? 1 : 0

  name                       = var.name
  visibility_timeout_seconds = var.visibility_timeout_seconds
  message_retention_seconds  = var.message_retention_seconds
  # SSE-SQS: SNS can deliver to it without a key grant, and consumers need no kms permissions.
  sqs_managed_sse_enabled = true
  redrive_policy = local.create_dlq ? jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq[0].arn
    maxReceiveCount     = var.max_receive_count
  }) : null

  tags = var.tags
}

resource "aws_sqs_queue_policy" "this" {
  count = local.create_queue ? 1 : 0

  queue_url = aws_sqs_queue.this[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # Only the topic (SNS) or the rule (EventBridge) of this bucket may send.
        Sid       = local.sns ? "AllowTopicDelivery" : "AllowRuleDelivery"
        Effect    = "Allow"
        Principal = { Service = local.sns ? "sns.amazonaws.com" : "events.amazonaws.com" }
        Action    = "sqs:SendMessage"
        Resource  = aws_sqs_queue.this[0].arn
        Condition = { ArnEquals = { "aws:SourceArn" = local.sns ? local.topic_arn : local.rule_arn } }
      },
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sqs:*"
        Resource  = aws_sqs_queue.this[0].arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}

resource "aws_sns_topic_subscription" "queue" {
  count = local.sns && local.create_queue ? 1 : 0

  topic_arn = aws_sns_topic.this[0].arn
  protocol  = "sqs"
  endpoint  = aws_sqs_queue.this[0].arn
  # The queue body is the S3 event itself (pipeline_common.events also unwraps an SNS envelope).
  raw_message_delivery = true

  depends_on = [aws_sqs_queue_policy.this]
}
