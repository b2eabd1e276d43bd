locals {
  create      = var.create
  bucket_name = coalesce(var.bucket_name, var.name)
}

module "bucket" {
  source = "../bucket"

  create        = local.create
  bucket        = local.bucket_name
  force_destroy = var.bucket_force_destroy
  kms_key_arn   = var.bucket_kms_key_arn

  tags = var.tags
}

# S3 -> SNS only: the function subscribes to the topic directly.
module "events" {
  source = "../event_queue"

  create       = local.create
  name         = var.name
  bucket_id    = module.bucket.bucket_id
  bucket_arn   = module.bucket.bucket_arn
  filters      = [{ suffix = ".sql" }]
  kms_key_arn  = var.kms_key_arn
  create_queue = false

  tags = var.tags
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

# Asynchronous invocations (from SNS) that failed every retry.
resource "aws_sqs_queue" "dlq" {
  count = local.create ? 1 : 0

  name                      = "${var.name}-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true

  tags = var.tags
}

resource "aws_sqs_queue_policy" "dlq" {
  count = local.create ? 1 : 0

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

module "function" {
  source = "../lambda_function"

  create        = local.create
  function_name = var.name
  description   = "Applies yoyo migrations from s3://${local.bucket_name}/<database>/ to the database"
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

  environment_variables = {
    MIGRATIONS_BUCKET  = local.bucket_name
    RESULTS_TOPIC_ARN  = try(aws_sns_topic.results[0].arn, "")
    ALLOWED_DATABASES  = join(",", var.allowed_databases)
    LOCK_STALE_SECONDS = tostring(var.timeout)
    USER               = "lambda"
    LOGNAME            = "lambda"
    DB_HOST            = var.database.host
    DB_PORT            = tostring(var.database.port)
    DB_NAME            = var.database.name
    DB_SECRET_ARN      = var.database.secret_arn
    DB_SSLMODE         = var.database.sslmode
  }

  sns_subscription   = { topic_arn = module.events.topic_arn }
  dead_letter_target = { arn = try(aws_sqs_queue.dlq[0].arn, ""), type = "sqs" }

  policy_statements = concat(
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
        sid        = "ReadDatabaseSecret"
        actions    = ["secretsmanager:GetSecretValue"]
        resources  = [var.database.secret_arn]
        conditions = []
      },
      {
        sid        = "PublishResults"
        actions    = ["sns:Publish"]
        resources  = [try(aws_sns_topic.results[0].arn, "")]
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
    var.bucket_kms_key_arn == null ? [] : [
      {
        sid        = "DecryptMigrations"
        actions    = ["kms:Decrypt"]
        resources  = [var.bucket_kms_key_arn]
        conditions = []
      },
    ],
    var.database.secret_kms_key_arn == null ? [] : [
      {
        sid       = "DecryptDatabaseSecret"
        actions   = ["kms:Decrypt"]
        resources = [var.database.secret_kms_key_arn]
        conditions = [{
          test     = "StringLike"
          variable = "kms:ViaService"
          values   = ["secretsmanager.*.amazonaws.com"]
        }]
      },
    ],
  )

  create_alarms   = var.create_alarms
  alarm_topic_arn = var.alarm_topic_arn
  alarm_dlq_names = ["${var.name}-dlq"]

  tags = var.tags
}
