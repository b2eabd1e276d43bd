data "aws_partition" "current" {}

# `id` is the region name in provider 5.x and 6.x alike (`name` is deprecated in 6.x).
data "aws_region" "current" {}

locals {
  create          = var.create
  serverless      = var.serverless != null
  create_instance = local.create && !local.serverless
  create_config   = local.create && local.serverless

  partition  = data.aws_partition.current.partition
  dns_suffix = data.aws_partition.current.dns_suffix
  region     = data.aws_region.current.id
  # The account is read from the security group this module creates, so the plan makes no API call.
  account_id = try(aws_security_group.this[0].owner_id, null)

  # Everything below reads the inputs through try(): with create = false they may be null, and a
  # disabled module must evaluate to nothing without failing.
  engine        = try(var.source_database.engine, null)
  source_port   = try(coalesce(var.source_database.port, local.default_ports[local.engine]), null)
  default_ports = { sqlserver = 1433, mysql = 3306, mariadb = 3306, postgres = 5432 }
  bucket_arn    = try("arn:${local.partition}:s3:::${var.target.bucket_name}", null)
  folder        = try(var.target.bucket_folder, null)

  # Table mappings (https://docs.aws.amazon.com/dms/latest/userguide/CHAP_Tasks.CustomizingTasks.TableMapping.html):
  # one selection rule per entry, in order, then the transformations, numbered after them.
  selection_rules = [for i, m in var.table_mappings : merge(
    {
      rule-type      = "selection"
      rule-id        = tostring(i + 1)
      rule-name      = "${m.action}-${i + 1}"
      object-locator = { schema-name = m.schema, table-name = m.table }
      rule-action    = m.action
    },
    length(m.filters) == 0 ? {} : {
      filters = [for f in m.filters : {
        filter-type = "source"
        column-name = f.column
        filter-conditions = [{ for k, v in {
          filter-operator = f.operator
          value           = f.value
          start-value     = f.start
          end-value       = f.end
        } : k => v if v != null }]
      }]
    },
  )]
  removed_columns = flatten([for m in var.table_mappings : [
    for c in m.exclude_columns : { schema = m.schema, table = m.table, column = c }
  ]])
  remove_column_rules = [for i, c in local.removed_columns : {
    rule-type      = "transformation"
    rule-id        = tostring(length(var.table_mappings) + i + 1)
    rule-name      = "remove-column-${i + 1}"
    rule-target    = "column"
    object-locator = { schema-name = c.schema, table-name = c.table, column-name = c.column }
    rule-action    = "remove-column"
  }]
  change_sequence_rules = var.change_sequence_column_name == null ? [] : [{
    rule-type      = "transformation"
    rule-id        = tostring(length(var.table_mappings) + length(local.removed_columns) + 1)
    rule-name      = "add-change-sequence"
    rule-target    = "column"
    object-locator = { schema-name = "%", table-name = "%" }
    rule-action    = "add-column"
    value          = var.change_sequence_column_name
    expression     = "$AR_H_CHANGE_SEQ"
    data-type      = { type = "string", length = 50 }
  }]
  table_mappings = jsonencode({
    rules = concat(local.selection_rules, local.remove_column_rules, local.change_sequence_rules)
  })

  # Task settings: CloudWatch logging on; a full load never empties the staging folder
  # (DO_NOTHING), so files the partitioner has not copied yet survive a task restart.
  task_settings = jsonencode({
    FullLoadSettings = {
      TargetTablePrepMode = "DO_NOTHING"
    }
    Logging = {
      EnableLogging = true
      LogComponents = [for component in ["SOURCE_UNLOAD", "SOURCE_CAPTURE", "TARGET_LOAD", "TARGET_APPLY", "TASK_MANAGER"] : {
        Id       = component
        Severity = "LOGGER_SEVERITY_DEFAULT"
      }]
    }
  })
}

resource "terraform_data" "checks" {
  count = local.create ? 1 : 0

  input = var.name

  lifecycle {
    precondition {
      condition     = var.source_database != null && var.target != null
      error_message = "source_database and target are required when create = true."
    }

    precondition {
      condition     = var.vpc_id != null && length(var.subnet_ids) >= 2
      error_message = "vpc_id and subnet_ids (at least 2, in different availability zones) are required when create = true."
    }

    precondition {
      condition     = length(var.table_mappings) > 0
      error_message = "table_mappings must include at least one table (an entry with action = \"include\"): with none, the task replicates nothing."
    }
  }
}

################################################################################
# Account-wide roles DMS looks up by name
# https://docs.aws.amazon.com/dms/latest/userguide/security-iam.html#CHAP_Security.APIRole
################################################################################

locals {
  global_roles = {
    "dms-vpc-role"             = "AmazonDMSVPCManagementRole"
    "dms-cloudwatch-logs-role" = "AmazonDMSCloudWatchLogsRole"
    "dms-access-for-endpoint"  = "AmazonDMSRedshiftS3Role"
  }
  # What this module uses: the VPC role (subnet group, ENIs) always, the logs role for the task's
  # CloudWatch logging on a replication instance. dms-access-for-endpoint serves Redshift targets.
  required_global_roles = local.serverless ? ["dms-vpc-role"] : ["dms-vpc-role", "dms-cloudwatch-logs-role"]
  create_global_roles   = local.create && var.create_dms_iam_roles
  verify_global_roles   = local.create && !var.create_dms_iam_roles && var.verify_dms_iam_roles
}

data "aws_iam_policy_document" "dms_assume" {
  statement {
    sid     = "DmsAssumeRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["dms.${local.dns_suffix}"]
    }
  }
}

# dms-access-for-endpoint is also assumed by Redshift (AWS's documented trust policy).
data "aws_iam_policy_document" "dms_redshift_assume" {
  source_policy_documents = [data.aws_iam_policy_document.dms_assume.json]

  statement {
    sid     = "RedshiftAssumeRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["redshift.${local.dns_suffix}"]
    }
  }
}

resource "aws_iam_role" "global" {
  for_each = local.create_global_roles ? local.global_roles : {}

  name               = each.key
  description        = "Account-wide role DMS looks up by name (created by the ${var.name} deployment)"
  assume_role_policy = each.key == "dms-access-for-endpoint" ? data.aws_iam_policy_document.dms_redshift_assume.json : data.aws_iam_policy_document.dms_assume.json
  # DMS finds them at path "/" only: role_path is not applied, the boundary is.
  permissions_boundary = var.role_permissions_boundary

  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "global" {
  for_each = aws_iam_role.global

  role       = each.value.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/${local.global_roles[each.key]}"
}

# Reusing the roles: a missing one fails the plan here, naming it, instead of failing the apply
# half way. ListRoles answers with what exists (an empty set, never an error for a missing role).
data "aws_iam_roles" "global" {
  count = local.verify_global_roles ? 1 : 0

  name_regex = "^dms-(vpc-role|cloudwatch-logs-role|access-for-endpoint)$"

  lifecycle {
    postcondition {
      # DMS finds the roles at path "/" only: arn:...:role/dms-vpc-role.
      condition     = length(setsubtract(local.required_global_roles, [for arn in self.arns : split(":role/", arn)[1]])) == 0
      error_message = "DMS needs the account-wide IAM role(s) ${join(" and ", setsubtract(local.required_global_roles, [for arn in self.arns : split(":role/", arn)[1]]))} (at path /), which this account does not have. Set create_dms_iam_roles = true in one deployment per account (it creates dms-vpc-role, dms-cloudwatch-logs-role and dms-access-for-endpoint), or create them as the DMS user guide describes; then plan again."
    }
  }
}

################################################################################
# Network: subnet group and the replication's own security group
################################################################################

resource "aws_dms_replication_subnet_group" "this" {
  count = local.create ? 1 : 0

  replication_subnet_group_id          = var.name
  replication_subnet_group_description = "Private subnets of the ${var.name} replication"
  subnet_ids                           = var.subnet_ids

  tags = var.tags

  # DMS creates the subnet group's ENIs through dms-vpc-role.
  depends_on = [aws_iam_role_policy_attachment.global, data.aws_iam_roles.global]
}

resource "aws_security_group" "this" {
  count = local.create ? 1 : 0

  name        = "${var.name}-dms"
  description = "DMS replication ${var.name}: egress to the source database and HTTPS endpoints only"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-dms" })
}

locals {
  # Egress, and nothing else: the source database on its port, HTTPS to the endpoints.
  egress_rules = concat(
    [for cidr in try(var.source_database.cidr_blocks, []) : { cidr = cidr, prefix_list = null, group = null }],
    [for group in try(var.source_database.security_group_ids, []) : { cidr = null, prefix_list = null, group = group }],
    [for prefix_list in var.https_egress_prefix_list_ids : { cidr = null, prefix_list = prefix_list, group = null }],
    [for group in var.https_egress_security_group_ids : { cidr = null, prefix_list = null, group = group }],
    [for cidr in var.https_egress_cidrs : { cidr = cidr, prefix_list = null, group = null }],
  )
  source_rules = length(try(var.source_database.cidr_blocks, [])) + length(try(var.source_database.security_group_ids, []))
}

resource "aws_vpc_security_group_egress_rule" "this" {
  count = local.create ? length(local.egress_rules) : 0

  security_group_id            = aws_security_group.this[0].id
  description                  = count.index < local.source_rules ? "Source database (${local.engine})" : "HTTPS to the endpoints"
  ip_protocol                  = "tcp"
  from_port                    = count.index < local.source_rules ? local.source_port : 443
  to_port                      = count.index < local.source_rules ? local.source_port : 443
  cidr_ipv4                    = local.egress_rules[count.index].cidr
  prefix_list_id               = local.egress_rules[count.index].prefix_list
  referenced_security_group_id = local.egress_rules[count.index].group

  tags = var.tags
}

# Only when asked: the source's own group admits the replication (a source in this account).
resource "aws_vpc_security_group_ingress_rule" "source" {
  count = local.create && try(var.source_database.add_ingress_rules, false) ? length(var.source_database.security_group_ids) : 0

  security_group_id            = var.source_database.security_group_ids[count.index]
  description                  = "DMS replication ${var.name}"
  ip_protocol                  = "tcp"
  from_port                    = local.source_port
  to_port                      = local.source_port
  referenced_security_group_id = aws_security_group.this[0].id

  tags = var.tags
}

################################################################################
# Roles of this replication: read the source secret, write the staging folder
################################################################################

locals {
  roles = local.create ? {
    source = {
      description = "DMS ${var.name}: reads the source database secret"
      # DMS assumes a Secrets Manager access role through its regional principal.
      principals = ["dms.${local.region}.${local.dns_suffix}", "dms.${local.dns_suffix}"]
      policy     = data.aws_iam_policy_document.source_secret[0].json
    }
    target = {
      description = "DMS ${var.name}: writes s3://${var.target.bucket_name}/${local.folder}/"
      principals  = ["dms.${local.dns_suffix}"]
      policy      = data.aws_iam_policy_document.target[0].json
    }
  } : {}
}

data "aws_iam_policy_document" "assume" {
  for_each = local.roles

  statement {
    sid     = "DmsAssumeRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = each.value.principals
    }

    # DMS acting for this account only (confused deputy).
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "this" {
  for_each = local.roles

  name                 = "${var.name}-dms-${each.key}"
  description          = each.value.description
  assume_role_policy   = data.aws_iam_policy_document.assume[each.key].json
  path                 = var.role_path
  permissions_boundary = var.role_permissions_boundary

  tags = var.tags
}

resource "aws_iam_role_policy" "this" {
  for_each = local.roles

  name   = "${var.name}-dms-${each.key}"
  role   = aws_iam_role.this[each.key].id
  policy = each.value.policy
}

data "aws_iam_policy_document" "source_secret" {
  count = local.create ? 1 : 0

  statement {
    sid       = "ReadSourceSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.source_database.secret_arn]
  }

  dynamic "statement" {
    for_each = var.source_database.secret_kms_key_arn == null ? [] : [var.source_database.secret_kms_key_arn]

    content {
      sid       = "DecryptSourceSecret"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${local.region}.${local.dns_suffix}"]
      }
    }
  }
}

data "aws_iam_policy_document" "target" {
  count = local.create ? 1 : 0

  statement {
    sid       = "WriteStagingFolder"
    actions   = ["s3:PutObject", "s3:PutObjectTagging", "s3:DeleteObject"]
    resources = ["${local.bucket_arn}/${local.folder}/*"]
  }

  # DMS lists the bucket when it tests the endpoint and starts a table (AWS's documented policy
  # has no prefix condition).
  statement {
    sid       = "ListStagingBucket"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]
  }

  statement {
    sid       = "EncryptStagingObjects"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.target.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.${local.dns_suffix}"]
    }
  }
}

################################################################################
# Endpoints
################################################################################

resource "aws_dms_endpoint" "source" {
  count = local.create ? 1 : 0

  endpoint_id   = "${var.name}-source"
  endpoint_type = "source"
  engine_name   = local.engine
  database_name = var.source_database.database_name

  # Host, port and credentials come from the secret at connection time; nothing is in the state.
  secrets_manager_arn             = var.source_database.secret_arn
  secrets_manager_access_role_arn = aws_iam_role.this["source"].arn
  ssl_mode                        = var.source_database.ssl_mode
  certificate_arn                 = var.source_database.certificate_arn
  extra_connection_attributes     = var.source_database.extra_connection_attributes
  kms_key_arn                     = var.kms_key_arn

  tags = var.tags

  depends_on = [aws_iam_role_policy.this]
}

resource "aws_dms_s3_endpoint" "target" {
  count = local.create ? 1 : 0

  endpoint_id             = "${var.name}-target"
  endpoint_type           = "target"
  bucket_name             = var.target.bucket_name
  bucket_folder           = local.folder
  service_access_role_arn = aws_iam_role.this["target"].arn
  expected_bucket_owner   = coalesce(var.target.expected_bucket_owner, local.account_id)
  kms_key_arn             = var.kms_key_arn

  data_format              = var.target.data_format
  parquet_version          = var.target.data_format == "parquet" ? "parquet-2-0" : null
  compression_type         = var.target.compression_type
  add_column_name          = var.target.add_column_name
  include_op_for_full_load = true
  timestamp_column_name    = var.target.timestamp_column_name
  cdc_max_batch_interval   = var.target.cdc_max_batch_interval
  cdc_min_file_size        = var.target.cdc_min_file_size
  date_partition_enabled   = false

  # Full-load rows carry the task's start time, not the moment each was written: older than every
  # change captured since, so a reader ordering rows by this column never lets a loaded row shadow
  # a change committed while the table was being loaded.
  use_task_start_time_for_full_load_timestamp = true

  encryption_mode                   = "SSE_KMS"
  server_side_encryption_kms_key_id = var.target.kms_key_arn

  tags = var.tags

  depends_on = [aws_iam_role_policy.this]
}

################################################################################
# Replication instance + task, or DMS Serverless
################################################################################

resource "aws_dms_replication_instance" "this" {
  count = local.create_instance ? 1 : 0

  replication_instance_id      = var.name
  replication_instance_class   = var.replication_instance.class
  allocated_storage            = var.replication_instance.allocated_storage
  multi_az                     = var.replication_instance.multi_az
  engine_version               = var.replication_instance.engine_version
  auto_minor_version_upgrade   = true
  allow_major_version_upgrade  = false
  preferred_maintenance_window = var.replication_instance.preferred_maintenance_window
  apply_immediately            = var.replication_instance.apply_immediately
  kms_key_arn                  = var.kms_key_arn
  publicly_accessible          = false
  replication_subnet_group_id  = aws_dms_replication_subnet_group.this[0].id
  vpc_security_group_ids       = [aws_security_group.this[0].id]

  tags = var.tags
}

resource "aws_dms_replication_task" "this" {
  count = local.create_instance ? 1 : 0

  replication_task_id       = var.name
  migration_type            = "full-load-and-cdc"
  replication_instance_arn  = aws_dms_replication_instance.this[0].replication_instance_arn
  source_endpoint_arn       = aws_dms_endpoint.source[0].endpoint_arn
  target_endpoint_arn       = aws_dms_s3_endpoint.target[0].endpoint_arn
  table_mappings            = local.table_mappings
  replication_task_settings = local.task_settings
  start_replication_task    = var.start_replication_task

  tags = var.tags

  # The task reads the secret, writes the bucket and logs through these roles: IAM must hold them
  # before it starts, or the first run fails on a role that has not propagated yet.
  depends_on = [
    aws_iam_role_policy_attachment.global,
    aws_iam_role_policy.this,
  ]
}

resource "aws_dms_replication_config" "this" {
  count = local.create_config ? 1 : 0

  replication_config_identifier = var.name
  replication_type              = "full-load-and-cdc"
  source_endpoint_arn           = aws_dms_endpoint.source[0].endpoint_arn
  target_endpoint_arn           = aws_dms_s3_endpoint.target[0].endpoint_arn
  table_mappings                = local.table_mappings
  replication_settings          = local.task_settings
  start_replication             = var.start_replication_task

  compute_config {
    replication_subnet_group_id  = aws_dms_replication_subnet_group.this[0].id
    vpc_security_group_ids       = [aws_security_group.this[0].id]
    kms_key_id                   = var.kms_key_arn
    max_capacity_units           = var.serverless.max_capacity_units
    min_capacity_units           = var.serverless.min_capacity_units
    multi_az                     = var.serverless.multi_az
    preferred_maintenance_window = var.serverless.preferred_maintenance_window
  }

  tags = var.tags

  depends_on = [
    aws_iam_role_policy_attachment.global,
    aws_iam_role_policy.this,
  ]
}

################################################################################
# Events into the alarm topic
################################################################################

locals {
  event_subscriptions = local.create_instance && var.create_event_subscriptions ? {
    instance = {
      source_type = "replication-instance"
      source_id   = try(aws_dms_replication_instance.this[0].replication_instance_id, null)
      categories  = ["failure", "failover", "low storage"]
    }
    task = {
      source_type = "replication-task"
      source_id   = try(aws_dms_replication_task.this[0].replication_task_id, null)
      categories  = ["failure", "state change"]
    }
  } : {}
}

resource "aws_dms_event_subscription" "this" {
  for_each = local.event_subscriptions

  name             = "${var.name}-${each.key}"
  enabled          = true
  sns_topic_arn    = var.alarm_topic_arn
  source_type      = each.value.source_type
  source_ids       = [each.value.source_id]
  event_categories = each.value.categories

  tags = var.tags

  lifecycle {
    # Checked before the arguments, so a missing topic is named here rather than as a null argument.
    precondition {
      condition     = var.alarm_topic_arn != null
      error_message = "create_event_subscriptions needs alarm_topic_arn (the SNS topic DMS events go to); set it, or set create_event_subscriptions = false."
    }
  }
}
