locals {
  create      = var.create
  bucket_name = local.create ? coalesce(var.bucket_name, var.name) : null
  # Known at plan time even when the key is created in the same plan.
  bucket_kms = var.bucket_kms_encryption != null ? var.bucket_kms_encryption : var.bucket_kms_key_arn != null
}

module "bucket" {
  source = "../bucket"

  create         = local.create
  bucket         = local.bucket_name
  force_destroy  = var.bucket_force_destroy
  kms_key_arn    = var.bucket_kms_key_arn
  kms_encryption = var.bucket_kms_encryption
  access_logs    = var.bucket_access_logs

  tags = var.tags
}

# S3 -> SNS or EventBridge, no queue: the function subscribes to the topic, or is the rule's target.
# The dead-letter queue receives the asynchronous invocations that failed every retry (and, with
# EventBridge, the events the rule could not deliver).
module "events" {
  source = "../event_queue"

  create        = local.create
  name          = var.name
  notifications = var.notifications
  bucket_id     = module.bucket.bucket_id
  bucket_arn    = module.bucket.bucket_arn
  filters       = [{ suffix = ".sql" }]
  kms_key_arn   = var.kms_key_arn
  create_queue  = false
  create_dlq    = true

  tags = var.tags
}

# The dead-letter queue was declared here before event_queue could create one without a queue.
moved {
  from = aws_sqs_queue.dlq
  to   = module.events.aws_sqs_queue.dlq
}

moved {
  from = aws_sqs_queue_policy.dlq
  to   = module.events.aws_sqs_queue_policy.dlq
}

resource "aws_sns_topic" "results" {
  count = local.create ? 1 : 0

  name              = "${var.name}-results"
  kms_master_key_id = var.kms_key_arn

  tags = var.tags
}

resource "aws_sns_topic_policy" "results" {
  count = local.create ? 1 : 0

  arn = aws_sns_topic.results[0].arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = ["sns:Publish", "sns:Subscribe"]
      Resource  = aws_sns_topic.results[0].arn
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
}

module "function" {
  source = "../lambda_function"

  create        = local.create
  function_name = var.name
  description   = local.create ? "Applies yoyo migrations from s3://${local.bucket_name}/<database>/ to the database" : null
  package       = var.package
  runtime       = var.runtime
  architecture  = var.architecture
  memory_size   = var.memory_size
  timeout       = var.timeout
  log_level     = var.log_level

  reserved_concurrent_executions = var.reserved_concurrency

  log_retention_days = var.log_retention_days
  log_kms_key_arn    = var.log_kms_key_arn

  vpc_subnet_ids         = var.vpc_subnet_ids
  vpc_security_group_ids = var.vpc_security_group_ids

  role_path                 = var.role_path
  role_permissions_boundary = var.role_permissions_boundary

  databases          = { DB = var.database }
  secret_ttl_seconds = var.secret_ttl_seconds
  environment_variables = {
    MIGRATIONS_BUCKET  = local.bucket_name
    RESULTS_TOPIC_ARN  = try(aws_sns_topic.results[0].arn, null)
    ALLOWED_DATABASES  = join(",", var.allowed_databases)
    LOCK_STALE_SECONDS = tostring(var.timeout)
    USER               = "lambda"
    LOGNAME            = "lambda"
  }

  sns_subscription = var.notifications == "sns" ? { topic_arn = module.events.topic_arn } : null
  eventbridge_rule = var.notifications == "eventbridge" ? {
    rule_name   = module.events.rule_name
    rule_arn    = module.events.rule_arn
    dead_letter = { arn = module.events.dlq_arn }
  } : null
  dead_letter_target = { arn = module.events.dlq_arn, type = "sqs" }
  event_source_details = {
    bucket    = module.bucket.bucket_id
    prefixes  = [""]
    topic_arn = module.events.topic_arn
    dlq_url   = module.events.dlq_url
    dlq_arn   = module.events.dlq_arn
  }

  policy_statements = !local.create ? [] : concat(
    [
      {
        sid        = "ListMigrations"
        actions    = ["s3:ListBucket"]
        resources  = [module.bucket.bucket_arn]
        conditions = []
      },
      {
        sid        = "ReadMigrations"
        actions    = ["s3:GetObject", "s3:GetObjectVersion"]
        resources  = ["${module.bucket.bucket_arn}/*"]
        conditions = []
      },
      {
        sid        = "PublishResults"
        actions    = ["sns:Publish"]
        resources  = [aws_sns_topic.results[0].arn]
        conditions = []
      },
      {
        # Publishing to the KMS-encrypted results topic.
        sid       = "EncryptResults"
        actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
        resources = [var.kms_key_arn]
        conditions = [{
          test     = "StringLike"
          variable = "kms:ViaService"
          values   = ["sns.*.amazonaws.com"]
        }]
      },
    ],
    !local.bucket_kms ? [] : [
      {
        # SSE-KMS objects, read through S3 only (the key may encrypt other things too).
        sid       = "DecryptMigrations"
        actions   = ["kms:Decrypt"]
        resources = [var.bucket_kms_key_arn]
        conditions = [{
          test     = "StringLike"
          variable = "kms:ViaService"
          values   = ["s3.*.amazonaws.com"]
        }]
      },
    ],
  )

  create_alarms   = var.create_alarms
  alarm_topic_arn = var.alarm_topic_arn
  alarm_dlq_names = local.create ? ["${var.name}-dlq"] : []

  tags = var.tags
}
