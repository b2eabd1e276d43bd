locals {
  create      = var.create
  bucket_name = local.create ? coalesce(var.bucket_name, var.name) : null
  # Known at plan time even when the key is created in the same plan.
  bucket_kms = var.bucket_kms_encryption != null ? var.bucket_kms_encryption : var.bucket_kms_key_arn != null

  # The smallest set of prefixes covering every route: S3 rejects overlapping notification filters,
  # and objects under a covered prefix that match no route are reported by the function.
  prefixes = distinct([for r in var.routes : r.prefix])
  notification_prefixes = length(local.prefixes) == 0 || contains(local.prefixes, "") ? [""] : [
    for p in local.prefixes : p if length([for q in local.prefixes : q if q != p && startswith(p, q)]) == 0
  ]

  # ROUTES as lambda_src/file_loader/routes.py parses it: null attributes are left out.
  routes = [for r in var.routes : { for k, v in {
    prefix      = r.prefix
    suffix      = r.suffix == "" ? null : r.suffix
    table       = r.table
    format      = r.format
    mode        = r.mode
    key_columns = r.key_columns
    on_error    = r.on_error
    compression = r.compression
    csv         = { for ck, cv in r.csv : ck => cv if cv != null }
  } : k => v if v != null }]

  visibility_timeout = min(43200, 6 * var.timeout)
}

resource "terraform_data" "checks" {
  count = local.create ? 1 : 0

  input = var.name

  lifecycle {
    precondition {
      condition     = length(var.routes) > 0
      error_message = "routes must contain at least one route."
    }
  }
}

module "bucket" {
  source = "../bucket"

  create          = local.create
  bucket          = local.bucket_name
  force_destroy   = var.bucket_force_destroy
  kms_key_arn     = var.bucket_kms_key_arn
  kms_encryption  = var.bucket_kms_encryption
  access_logs     = var.bucket_access_logs
  lifecycle_rules = var.bucket_lifecycle_rules

  tags = var.tags
}

module "events" {
  source = "../event_queue"

  create                     = local.create
  name                       = var.name
  notifications              = var.notifications
  bucket_id                  = module.bucket.bucket_id
  bucket_arn                 = module.bucket.bucket_arn
  filters                    = [for p in local.notification_prefixes : { prefix = p }]
  kms_key_arn                = var.kms_key_arn
  visibility_timeout_seconds = local.visibility_timeout
  max_receive_count          = var.max_receive_count

  tags = var.tags
}

module "function" {
  source = "../lambda_function"

  create        = local.create
  function_name = var.name
  description   = local.create ? "Loads CSV / JSON-lines objects from s3://${local.bucket_name} into PostgreSQL" : null
  package       = var.package
  runtime       = var.runtime
  architecture  = var.architecture
  memory_size   = var.memory_size
  timeout       = var.timeout
  log_level     = var.log_level

  log_retention_days = var.log_retention_days
  log_kms_key_arn    = var.log_kms_key_arn

  vpc_subnet_ids         = var.vpc_subnet_ids
  vpc_security_group_ids = var.vpc_security_group_ids

  role_path                 = var.role_path
  role_permissions_boundary = var.role_permissions_boundary

  databases          = { DB = var.database }
  secret_ttl_seconds = var.secret_ttl_seconds
  environment_variables = {
    ROUTES        = jsonencode(local.routes)
    SOURCE_BUCKET = local.bucket_name
    STATE_SCHEMA  = var.state_schema
  }

  sqs_event_source = {
    queue_arn                          = module.events.queue_arn
    batch_size                         = var.batch_size
    maximum_batching_window_in_seconds = var.maximum_batching_window_in_seconds
    maximum_concurrency                = var.maximum_concurrency
  }
  event_source_details = {
    bucket    = module.bucket.bucket_id
    prefixes  = local.notification_prefixes
    topic_arn = module.events.topic_arn
    rule_arn  = module.events.rule_arn
    queue_url = module.events.queue_url
    dlq_url   = module.events.dlq_url
    dlq_arn   = module.events.dlq_arn
  }

  policy_statements = !local.create ? [] : concat(
    [
      {
        sid        = "ReadRoutedObjects"
        actions    = ["s3:GetObject", "s3:GetObjectVersion"]
        resources  = [for p in local.notification_prefixes : "${module.bucket.bucket_arn}/${p}*"]
        conditions = []
      },
    ],
    !local.bucket_kms ? [] : [
      {
        # SSE-KMS objects, read through S3 only (the key may encrypt other things too).
        sid       = "DecryptObjects"
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
