locals {
  # Known at plan time even while the key is created in the same plan.
  bucket_kms     = var.bucket_kms_encryption != null ? var.bucket_kms_encryption : var.bucket_kms_key_arn != null
  create         = var.create
  staging_bucket = local.create ? coalesce(var.staging_bucket_name, "${var.name}-staging") : null
  lake_bucket    = local.create ? coalesce(var.lake_bucket_name, "${var.name}-lake") : null
  source         = var.source_database
  create_secret  = local.create && local.source != null && try(local.source.secret_arn, null) == null
  secret_arn     = local.create_secret ? try(aws_secretsmanager_secret.source[0].arn, null) : try(local.source.secret_arn, null)
  # Decided from variables, so whether DMS may decrypt (and with which key) is known at plan time.
  secret_kms_key_arn = local.create_secret ? var.kms_key_arn : try(local.source.secret_kms_key_arn, null)

  applied = [for t in var.tables : t if t.apply_to != null]
  # APPLY_TABLES as lambda_src/cdc_lake/config.py parses it.
  apply_tables = [for t in local.applied : { for k, v in {
    source      = "${t.schema}.${t.table}"
    target      = t.apply_to
    key_columns = length(t.key_columns) > 0 ? t.key_columns : null
  } : k => v if v != null }]

  lake_arn    = "arn:${data.aws_partition.current.partition}:s3:::${coalesce(local.lake_bucket, "-")}"
  staging_arn = "arn:${data.aws_partition.current.partition}:s3:::${coalesce(local.staging_bucket, "-")}"
  lake_path   = var.lake_prefix == "" ? "" : "${var.lake_prefix}/"
  # Sized so a message outlives six attempts of the function (AWS's recommendation).
  visibility_timeout = min(43200, 6 * var.timeout)
}

data "aws_partition" "current" {}

resource "terraform_data" "checks" {
  count = local.create ? 1 : 0

  input = var.name

  lifecycle {
    precondition {
      condition     = local.source != null
      error_message = "source_database is required: the database DMS replicates."
    }

    precondition {
      condition     = length([for t in var.tables : t if t.action == "include"]) > 0
      error_message = "tables must include at least one table (an entry with action = \"include\")."
    }

    precondition {
      condition     = length(local.applied) == 0 || var.data_format == "csv"
      error_message = "apply_to applies DMS CSV files: it needs data_format = \"csv\"."
    }

    precondition {
      condition     = var.partition_by == "arrival" || var.data_format == "csv"
      error_message = "partition_by = \"commit\" reads the first row of a CSV file: it needs data_format = \"csv\"."
    }

    precondition {
      condition     = length(jsonencode(local.apply_tables)) <= 2500
      error_message = "The tables applied to PostgreSQL encode to more than 2500 bytes of JSON (Lambda allows 4 KB of environment variables): apply fewer tables in this pipeline."
    }
  }
}

################################################################################
# Buckets: staging (DMS writes, SSE-KMS) and the lake
################################################################################

module "staging" {
  source = "../bucket"

  create         = local.create
  bucket         = local.staging_bucket
  force_destroy  = var.bucket_force_destroy
  kms_key_arn    = var.bucket_kms_key_arn
  kms_encryption = var.bucket_kms_encryption
  access_logs    = var.bucket_access_logs
  lifecycle_rules = var.staging_expiration_days == null ? [] : [{
    id                                 = "expire-copied-files"
    expiration_days                    = var.staging_expiration_days
    noncurrent_version_expiration_days = var.staging_expiration_days
  }]

  tags = var.tags
}

module "lake" {
  source = "../bucket"

  create          = local.create
  bucket          = local.lake_bucket
  force_destroy   = var.bucket_force_destroy
  kms_key_arn     = var.bucket_kms_key_arn
  kms_encryption  = var.bucket_kms_encryption
  access_logs     = var.bucket_access_logs
  lifecycle_rules = var.lake_lifecycle_rules

  tags = var.tags
}

################################################################################
# DMS: source database -> staging bucket
################################################################################

resource "aws_secretsmanager_secret" "source" {
  count = local.create_secret ? 1 : 0

  name                    = "${var.name}/dms-source"
  description             = "Credentials DMS reads ${local.source.engine} database ${local.source.database_name} with: JSON {\"username\", \"password\", \"host\", \"port\"}, set by the operator out of band"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.secret_recovery_window_in_days

  tags = var.tags
}

module "dms" {
  source = "../dms"

  create     = local.create
  name       = var.name
  vpc_id     = var.vpc_id
  subnet_ids = var.vpc_subnet_ids

  replication_instance = var.replication_instance
  serverless           = var.serverless
  kms_key_arn          = var.kms_key_arn

  https_egress_prefix_list_ids    = var.https_egress_prefix_list_ids
  https_egress_security_group_ids = var.https_egress_security_group_ids

  # Every attribute spelled out: a disabled module passes a null of the full type (a merge()
  # would type it without the required attributes, which no null can be converted from).
  source_database = local.create && local.source != null ? {
    engine                      = local.source.engine
    database_name               = local.source.database_name
    secret_arn                  = local.secret_arn
    secret_kms_key_arn          = local.secret_kms_key_arn
    port                        = local.source.port
    cidr_blocks                 = local.source.cidr_blocks
    security_group_ids          = local.source.security_group_ids
    add_ingress_rules           = local.source.add_ingress_rules
    ssl_mode                    = local.source.ssl_mode
    certificate_arn             = local.source.certificate_arn
    extra_connection_attributes = local.source.extra_connection_attributes
  } : null
  target = local.create ? {
    bucket_name            = module.staging.bucket_id
    bucket_folder          = var.staging_folder
    kms_key_arn            = var.staging_kms_key_arn
    data_format            = var.data_format
    add_column_name        = true
    timestamp_column_name  = var.timestamp_column_name
    cdc_max_batch_interval = var.cdc_max_batch_interval
    cdc_min_file_size      = var.cdc_min_file_size
    compression_type       = var.compression_type
  } : null
  table_mappings = [for t in var.tables : {
    schema          = t.schema
    table           = t.table
    action          = t.action
    exclude_columns = t.exclude_columns
    filters         = t.filters
  }]
  change_sequence_column_name = var.change_sequence_column_name
  start_replication_task      = var.start_replication_task

  create_dms_iam_roles       = var.create_dms_iam_roles
  verify_dms_iam_roles       = var.verify_dms_iam_roles
  create_event_subscriptions = var.create_alarms
  alarm_topic_arn            = var.alarm_topic_arn

  role_path                 = var.role_path
  role_permissions_boundary = var.role_permissions_boundary

  tags = var.tags
}

################################################################################
# Staging notifications -> SNS -> SQS -> the partitioner (the trigger wiring, in one place)
################################################################################

module "events" {
  source = "../event_queue"

  create                     = local.create
  name                       = var.name
  bucket_id                  = module.staging.bucket_id
  bucket_arn                 = module.staging.bucket_arn
  filters                    = [{ prefix = "${var.staging_folder}/" }]
  kms_key_arn                = var.kms_key_arn
  visibility_timeout_seconds = local.visibility_timeout
  max_receive_count          = var.max_receive_count

  tags = var.tags
}

module "function" {
  source = "../lambda_function"

  create        = local.create
  function_name = var.name
  description   = local.create ? "Partitions DMS files from s3://${local.staging_bucket}/${var.staging_folder}/ into s3://${local.lake_bucket}/${local.lake_path}" : null
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
  environment_variables = merge(
    {
      STAGING_BUCKET            = local.staging_bucket
      STAGING_FOLDER            = var.staging_folder
      LAKE_BUCKET               = local.lake_bucket
      LAKE_PREFIX               = var.lake_prefix
      PARTITION_BY              = var.partition_by
      DATA_FORMAT               = var.data_format
      TIMESTAMP_COLUMN          = var.timestamp_column_name
      COUNT_ROWS                = tostring(var.count_rows)
      DELETE_STAGED             = tostring(var.delete_staged)
      MULTIPART_THRESHOLD_BYTES = tostring(var.multipart_threshold_bytes)
      APPLY_TABLES              = jsonencode(local.apply_tables)
      STATE_SCHEMA              = var.state_schema
    },
    var.change_sequence_column_name == null ? {} : { CHANGE_SEQUENCE_COLUMN = var.change_sequence_column_name },
  )

  sqs_event_source = {
    queue_arn                          = module.events.queue_arn
    batch_size                         = var.batch_size
    maximum_batching_window_in_seconds = var.maximum_batching_window_in_seconds
    maximum_concurrency                = var.maximum_concurrency
  }
  event_source_details = {
    bucket    = module.staging.bucket_id
    prefixes  = ["${var.staging_folder}/"]
    topic_arn = module.events.topic_arn
    queue_url = module.events.queue_url
    dlq_url   = module.events.dlq_url
    dlq_arn   = module.events.dlq_arn
  }

  policy_statements = local.create ? local.policy_statements : []

  create_alarms   = var.create_alarms
  alarm_topic_arn = var.alarm_topic_arn
  alarm_dlq_names = local.create ? ["${var.name}-dlq"] : []

  tags = var.tags
}

locals {
  # Read (and, when asked, delete) the staging folder; write and read back the lake prefix; the
  # listings only under those prefixes (without s3:ListBucket, a missing key answers 403, not 404,
  # and a vanished source would look like a permission error).
  policy_statements = concat(
    [
      {
        sid        = "ReadStagedFiles"
        actions    = ["s3:GetObject", "s3:GetObjectVersion"]
        resources  = ["${local.staging_arn}/${var.staging_folder}/*"]
        conditions = []
      },
      {
        sid        = "WriteAndReadTheLake"
        actions    = ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"]
        resources  = ["${local.lake_arn}/${local.lake_path}*"]
        conditions = []
      },
      {
        sid       = "ListStagingFolder"
        actions   = ["s3:ListBucket"]
        resources = [local.staging_arn]
        conditions = [{
          test     = "StringLike"
          variable = "s3:prefix"
          values   = ["${var.staging_folder}/*"]
        }]
      },
      {
        sid       = "ListLakePrefix"
        actions   = ["s3:ListBucket"]
        resources = [local.lake_arn]
        conditions = [{
          test     = "StringLike"
          variable = "s3:prefix"
          values   = ["${local.lake_path}*"]
        }]
      },
      {
        sid       = "DecryptStagedFiles"
        actions   = ["kms:Decrypt"]
        resources = [var.staging_kms_key_arn]
        conditions = [{
          test     = "StringEquals"
          variable = "kms:ViaService"
          values   = ["s3.${data.aws_region.current.id}.${data.aws_partition.current.dns_suffix}"]
        }]
      },
    ],
    !var.delete_staged ? [] : [
      {
        sid        = "DeleteCopiedFiles"
        actions    = ["s3:DeleteObject", "s3:DeleteObjectVersion"]
        resources  = ["${local.staging_arn}/${var.staging_folder}/*"]
        conditions = []
      },
    ],
    !local.bucket_kms ? [] : [
      {
        sid       = "EncryptTheLake"
        actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
        resources = [var.bucket_kms_key_arn]
        conditions = [{
          test     = "StringEquals"
          variable = "kms:ViaService"
          values   = ["s3.${data.aws_region.current.id}.${data.aws_partition.current.dns_suffix}"]
        }]
      },
    ],
  )
}

data "aws_region" "current" {}
