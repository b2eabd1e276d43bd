locals {
  create        = var.create
  create_target = local.create && try(var.target.create, false)

  # arn:<partition>:dynamodb:<region>:<account>:table/<name>/stream/<label>: the source's table ARN,
  # and the prefix of any table ARN in the same account and region, without an API call at plan.
  # (Every input may be null when the module is disabled.)
  source_stream_arn = coalesce(var.source_stream_arn, "-")
  source_table_arn  = split("/stream/", local.source_stream_arn)[0]
  table_arn_prefix  = "${split(":table/", local.source_stream_arn)[0]}:table"
  target_name       = try(var.target.name, "")
  target_arn        = "${local.table_arn_prefix}/${local.target_name}"
  state_table_name  = local.create ? "${var.name}-state" : null
  state_table_arn   = local.create ? "${local.table_arn_prefix}/${local.state_table_name}" : null

  key_attributes = compact([try(var.key.partition_key, ""), try(var.key.sort_key, "")])
  target_kms_key = local.create_target ? coalesce(var.target.kms_key_arn, var.kms_key_arn) : try(var.target.kms_key_arn, null)

  # Every attribute a created target indexes: its key and the keys of its indexes, each once.
  indexes = try(var.target.global_secondary_indexes, [])
  target_attributes = !local.create ? {} : { for a in concat(
    [{ name = var.key.partition_key, type = var.key.partition_key_type }],
    var.key.sort_key == null ? [] : [{ name = var.key.sort_key, type = var.key.sort_key_type }],
    [for i in local.indexes : { name = i.hash_key, type = i.hash_key_type }],
    [for i in local.indexes : { name = i.range_key, type = i.range_key_type } if i.range_key != null],
  ) : a.name => a.type... }

  # The transform's attribute names, to keep the key out of it (the parser checks the same).
  transform_names = flatten([
    try(tolist(var.transform.drop), []),
    keys(try(var.transform.rename, {})),
    values(try(var.transform.rename, {})),
    keys(try(var.transform.add, {})),
    keys(try(var.transform.set, {})),
  ])

  # Environment shared by the three functions; MIGRATION_FUNCTION picks the entry point.
  environment = {
    SOURCE_TABLE      = var.source_table_name
    SOURCE_STREAM_ARN = var.source_stream_arn
    TARGET_TABLE      = local.target_name
    STATE_TABLE       = local.state_table_name
    KEY_ATTRIBUTES    = join(",", local.key_attributes)
    TRANSFORM         = jsonencode(var.transform)
    TOTAL_SEGMENTS    = tostring(var.copy.total_segments)
    COPY_CONCURRENCY  = tostring(var.copy.concurrency)
    PAGE_SIZE         = tostring(var.copy.page_size)
    WRITE_RATE_LIMIT  = tostring(var.copy.write_rate_limit)
    TOUCHED_TTL_DAYS  = tostring(var.touched_ttl_days)
    VERIFY_EXAMPLES   = tostring(var.verify.examples)
  }

  # Customer managed keys of the tables (and so of the source's stream) the functions use, through
  # DynamoDB only. Built from variables, so the list's length is known at plan.
  table_keys = distinct(compact([var.kms_key_arn, var.source_kms_key_arn, local.target_kms_key]))
}

resource "terraform_data" "checks" {
  count = local.create ? 1 : 0

  input = var.name

  lifecycle {
    precondition {
      condition     = var.source_table_name != null && var.source_stream_arn != null && var.key != null && var.target != null && var.kms_key_arn != null && var.package != null
      error_message = "The DynamoDB migration needs source_table_name, source_stream_arn, key, target, kms_key_arn and package."
    }

    precondition {
      condition     = length(setintersection(toset(local.transform_names), toset(local.key_attributes))) == 0
      error_message = "transform must not rename, drop, add or set a key attribute (${join(", ", local.key_attributes)}): the target keeps the source's key."
    }

    precondition {
      condition     = try(split("/", local.source_table_arn)[1], null) == var.source_table_name
      error_message = "source_stream_arn is a stream of table ${split("/", local.source_table_arn)[1]}, not of source_table_name ${var.source_table_name}."
    }

    precondition {
      condition     = !contains([var.source_table_name, local.state_table_name], local.target_name)
      error_message = "target.name must differ from the source table and from the state table (${local.state_table_name})."
    }

    precondition {
      condition     = alltrue([for name, types in local.target_attributes : length(distinct(types)) == 1])
      error_message = "An attribute used as a key by the table and an index (or two indexes) must have one type everywhere."
    }
  }
}

################################################################################
# Tables
################################################################################

resource "aws_dynamodb_table" "target" {
  count = local.create_target ? 1 : 0

  name                        = local.target_name
  billing_mode                = var.target.billing_mode
  read_capacity               = var.target.read_capacity
  write_capacity              = var.target.write_capacity
  hash_key                    = var.key.partition_key
  range_key                   = var.key.sort_key
  deletion_protection_enabled = var.target.deletion_protection

  dynamic "attribute" {
    for_each = local.target_attributes

    content {
      name = attribute.key
      type = attribute.value[0]
    }
  }

  dynamic "global_secondary_index" {
    for_each = local.indexes

    content {
      name               = global_secondary_index.value.name
      hash_key           = global_secondary_index.value.hash_key
      range_key          = global_secondary_index.value.range_key
      projection_type    = global_secondary_index.value.projection_type
      non_key_attributes = global_secondary_index.value.non_key_attributes
      read_capacity      = global_secondary_index.value.read_capacity
      write_capacity     = global_secondary_index.value.write_capacity
    }
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = local.target_kms_key
  }

  tags = merge({ Name = local.target_name }, var.tags)
}

resource "aws_dynamodb_table" "state" {
  count = local.create ? 1 : 0

  name                        = local.state_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  deletion_protection_enabled = var.state_table_deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  # The stream's record of each key it applied expires once the copy cannot need it any more.
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = merge({ Name = local.state_table_name }, var.tags)
}

################################################################################
# Where failed stream batches and verify results go
################################################################################

# Metadata of stream batches the sync gave up on (retries or record age exhausted): the records
# themselves stay in the stream for 24 hours; verify's repair mode rewrites what they missed.
resource "aws_sqs_queue" "sync_failures" {
  count = local.create ? 1 : 0

  name                      = "${var.name}-sync-failures"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true

  tags = var.tags
}

resource "aws_sqs_queue_policy" "sync_failures" {
  count = local.create ? 1 : 0

  queue_url = aws_sqs_queue.sync_failures[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "sqs:*"
      Resource  = aws_sqs_queue.sync_failures[0].arn
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
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

################################################################################
# Functions: one package, three entry points
################################################################################

locals {
  # Least privilege per function: the exact tables (never their indexes, which no function reads,
  # nor another stream than the one the sync reads), the exact actions each entry point calls.
  statements = {
    copy = [
      { sid = "DescribeTables", actions = ["dynamodb:DescribeTable"], resources = [local.source_table_arn, local.target_arn] },
      { sid = "ReadSource", actions = ["dynamodb:Scan", "dynamodb:BatchGetItem"], resources = [local.source_table_arn] },
      { sid = "WriteTarget", actions = ["dynamodb:BatchWriteItem"], resources = [local.target_arn] },
      {
        sid       = "CopyState"
        actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchGetItem"]
        resources = [local.state_table_arn]
      },
    ]
    sync = [
      { sid = "WriteTarget", actions = ["dynamodb:PutItem", "dynamodb:DeleteItem"], resources = [local.target_arn] },
      { sid = "RecordAppliedKeys", actions = ["dynamodb:UpdateItem"], resources = [local.state_table_arn] },
    ]
    verify = [
      { sid = "ReadTables", actions = ["dynamodb:Scan", "dynamodb:GetItem", "dynamodb:BatchGetItem"], resources = [local.source_table_arn, local.target_arn] },
      { sid = "RepairTarget", actions = ["dynamodb:BatchWriteItem"], resources = [local.target_arn] },
      { sid = "ReadAppliedKeys", actions = ["dynamodb:BatchGetItem"], resources = [local.state_table_arn] },
      { sid = "PublishResults", actions = ["sns:Publish"], resources = [try(aws_sns_topic.results[0].arn, "")] },
    ]
  }

  # Keyed by role; the `functions` output keys them as the root's pipeline table does,
  # dynamodb_migration_<role> (one package, deployed three times).
  functions = {
    copy = {
      description = "Copies ${coalesce(var.source_table_name, "-")} into ${local.target_name} (parallel, checkpointed Scan segments)"
      memory_size = var.copy.memory_size
      timeout     = var.copy.timeout
      # One copy at a time; segment leases in the state table are the second guard.
      reserved = 1
    }
    sync = {
      description = "Applies the stream of ${coalesce(var.source_table_name, "-")} to ${local.target_name}"
      memory_size = var.sync.memory_size
      timeout     = var.sync.timeout
      reserved    = -1
    }
    verify = {
      description = "Compares ${coalesce(var.source_table_name, "-")} with ${local.target_name}; repairs on request"
      memory_size = var.verify.memory_size
      timeout     = var.verify.timeout
      reserved    = -1
    }
  }
}

module "function" {
  source   = "../lambda_function"
  for_each = local.functions

  create        = local.create
  function_name = local.create ? "${var.name}-${each.key}" : null
  description   = each.value.description
  package       = var.package
  runtime       = var.runtime
  architecture  = var.architecture
  memory_size   = each.value.memory_size
  timeout       = each.value.timeout
  log_level     = var.log_level

  reserved_concurrent_executions = each.value.reserved

  log_retention_days = var.log_retention_days
  log_kms_key_arn    = var.log_kms_key_arn

  vpc_subnet_ids         = var.vpc_subnet_ids
  vpc_security_group_ids = var.vpc_security_group_ids

  role_path                 = var.role_path
  role_permissions_boundary = var.role_permissions_boundary

  environment_variables = merge(
    local.environment,
    { MIGRATION_FUNCTION = each.key },
    each.key == "verify" ? { RESULTS_TOPIC_ARN = try(aws_sns_topic.results[0].arn, "") } : {},
  )

  dynamodb_event_source = each.key != "sync" ? null : {
    stream_arn                     = var.source_stream_arn
    starting_position              = "TRIM_HORIZON"
    batch_size                     = var.sync.batch_size
    maximum_batching_window        = var.sync.maximum_batching_window
    bisect_batch_on_function_error = true
    maximum_retry_attempts         = var.sync.maximum_retry_attempts
    maximum_record_age_in_seconds  = var.sync.maximum_record_age_in_seconds
    parallelization_factor         = var.sync.parallelization_factor
    on_failure                     = { arn = try(aws_sqs_queue.sync_failures[0].arn, ""), type = "sqs" }
  }
  event_source_details = each.key != "sync" ? {} : {
    dlq_url = try(aws_sqs_queue.sync_failures[0].id, null)
    dlq_arn = try(aws_sqs_queue.sync_failures[0].arn, null)
  }

  schedule = each.key != "copy" || var.copy.schedule == null ? null : {
    expression = var.copy.schedule
    enabled    = var.copy.schedule_enabled
    input      = jsonencode({ source = "schedule" })
    # A missed run is not retried: the next one continues from the checkpoints.
    maximum_retry_attempts       = 0
    maximum_event_age_in_seconds = 3600
  }

  policy_statements = !local.create ? [] : concat(
    [for s in local.statements[each.key] : merge(s, { conditions = [] })],
    each.key == "verify" ? [{
      # Publishing to the KMS-encrypted results topic.
      sid       = "EncryptResults"
      actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
      resources = [var.kms_key_arn]
      conditions = [{
        test     = "StringLike"
        variable = "kms:ViaService"
        values   = ["sns.*.amazonaws.com"]
      }]
    }] : [],
    [{
      # Tables encrypted with customer managed keys are read and written through DynamoDB.
      sid       = "UseTableKeys"
      actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
      resources = local.table_keys
      conditions = [{
        test     = "StringLike"
        variable = "kms:ViaService"
        values   = ["dynamodb.*.amazonaws.com"]
      }]
    }],
  )

  create_alarms         = var.create_alarms
  alarm_topic_arn       = var.alarm_topic_arn
  alarm_iterator_age_ms = var.sync.alarm_iterator_age_ms
  alarm_dlq_names       = local.create && each.key == "sync" ? ["${var.name}-sync-failures"] : []

  tags = var.tags
}
