locals {
  create       = var.create
  create_queue = var.create && var.create_queue
  create_dlq   = var.create && var.create_dlq

  topic_arn = try(aws_sns_topic.this[0].arn, "")
  # arn:<partition>:sns:<region>:<account>:<name>; read from the topic so planning needs no API call.
  account_id = try(split(":", local.topic_arn)[4], "")
}

resource "aws_sns_topic" "this" {
  count = local.create ? 1 : 0

  name              = var.name
  kms_master_key_id = var.kms_key_arn

  tags = var.tags
}

resource "aws_sns_topic_policy" "this" {
  count = local.create ? 1 : 0

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

  dynamic "topic" {
    for_each = var.filters

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
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "sqs:*"
      Resource  = aws_sqs_queue.dlq[0].arn
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
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
        Sid       = "AllowTopicDelivery"
        Effect    = "Allow"
        Principal = { Service = "sns.amazonaws.com" }
        Action    = "sqs:SendMessage"
        Resource  = aws_sqs_queue.this[0].arn
        Condition = { ArnEquals = { "aws:SourceArn" = aws_sns_topic.this[0].arn } }
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
  count = local.create_queue ? 1 : 0

  topic_arn = aws_sns_topic.this[0].arn
  protocol  = "sqs"
  endpoint  = aws_sqs_queue.this[0].arn
  # The queue body is the S3 event itself (pipeline_common.events also unwraps an SNS envelope).
  raw_message_delivery = true

  depends_on = [aws_sqs_queue_policy.this]
}
