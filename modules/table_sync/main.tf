locals {
  create = var.create
  source = var.source_database
  # Refused by the checks below when created without a source; nothing derived from it until then.
  has_source    = local.create && local.source != null
  create_secret = local.has_source && var.source_secret_arn == null
  in_vpc        = length(var.vpc_subnet_ids) > 0
  secret_arn    = local.create_secret ? try(aws_secretsmanager_secret.source[0].arn, null) : var.source_secret_arn

  # SYNC_TABLES as lambda_src/table_sync/config.py parses it: null attributes are left out
  # (the parser refuses unknown keys and treats an explicit null name as an error).
  tables = [for t in var.tables : { for k, v in {
    name             = t.name
    source           = t.source
    query            = t.query
    target           = t.target
    primary_key      = t.primary_key
    cursor           = t.cursor
    columns          = t.columns
    chunk_size       = t.chunk_size
    initial_value    = t.initial_value
    deletes          = t.deletes == null ? null : { for dk, dv in t.deletes : dk => dv if dv != null }
    encode_on_source = t.encode_on_source
  } : k => v if v != null }]

  # The source as the function reads it under SOURCE_DB_ (docs/contracts.md). SQL Server is read
  # through ODBC (FreeTDS from the layer by default); PostgreSQL and MySQL sources use their native
  # drivers unless an ODBC driver is named explicitly. The created secret is encrypted with
  # kms_key_arn: decided from variables, so the key list has a known length at plan time.
  source_database = local.has_source ? {
    engine      = local.source.engine
    host        = local.source.host
    port        = local.source.port
    name        = local.source.name
    secret_arn  = local.secret_arn
    sslmode     = local.source.sslmode
    odbc_driver = local.source.odbc_driver != null ? local.source.odbc_driver : (local.source.engine == "sqlserver" ? "FreeTDS" : null)
    secret_kms_key_arns = local.create_secret ? [var.kms_key_arn] : (
      var.source_secret_kms_key_arn == null ? [] : [var.source_secret_kms_key_arn]
    )
  } : null
}

resource "terraform_data" "checks" {
  count = local.create ? 1 : 0

  input = var.name

  lifecycle {
    precondition {
      condition     = local.source != null
      error_message = "source_database is required: the database the tables are read from."
    }

    precondition {
      condition     = try(local.source.engine, "sqlserver") != "sqlserver" || var.odbc_layer != null
      error_message = "A sqlserver source needs the ODBC layer (odbc_layer = the layers.odbc entry of build/manifest.json; run `make package`)."
    }

    precondition {
      condition     = length(var.tables) > 0
      error_message = "tables must contain at least one table."
    }

    precondition {
      condition     = !local.in_vpc || var.vpc_id != null
      error_message = "vpc_subnet_ids is set but vpc_id is null (the source-access security group needs the VPC)."
    }
  }
}

resource "aws_secretsmanager_secret" "source" {
  count = local.create_secret ? 1 : 0

  name                    = "${var.name}/source-db"
  description             = "Credentials of the table sync source ${local.source.host}/${local.source.name}: JSON {\"username\", \"password\"}, set by the operator out of band"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.secret_recovery_window_in_days

  tags = var.tags
}

resource "aws_lambda_layer_version" "odbc" {
  count = local.create && var.odbc_layer != null ? 1 : 0

  layer_name               = "${var.name}-odbc"
  description              = "unixODBC + FreeTDS for pyodbc (registered as FreeTDS)"
  filename                 = var.odbc_layer.filename
  source_code_hash         = var.odbc_layer.source_code_hash
  compatible_runtimes      = [var.runtime]
  compatible_architectures = [var.architecture]
}

resource "aws_security_group" "source" {
  count = local.create && local.in_vpc ? 1 : 0

  name        = "${var.name}-source"
  description = "${var.name}: egress to the source database only"
  vpc_id      = var.vpc_id

  tags = merge({ Name = "${var.name}-source" }, var.tags)
}

resource "aws_vpc_security_group_egress_rule" "source" {
  count = local.has_source && local.in_vpc ? length(local.source.cidr_blocks) : 0

  security_group_id = aws_security_group.source[0].id
  description       = "Source database ${local.source.host}"
  ip_protocol       = "tcp"
  from_port         = local.source.port
  to_port           = local.source.port
  cidr_ipv4         = local.source.cidr_blocks[count.index]

  tags = var.tags
}

module "function" {
  source = "../lambda_function"

  create        = local.create
  function_name = var.name
  description   = local.has_source ? "Incremental sync from ${local.source.engine} ${local.source.host}/${local.source.name} into PostgreSQL" : null
  package       = var.package
  runtime       = var.runtime
  architecture  = var.architecture
  memory_size   = var.memory_size
  timeout       = var.timeout
  log_level     = var.log_level
  layers        = aws_lambda_layer_version.odbc[*].arn

  # One run at a time: runs never overlap (an advisory lock per table is the second guard).
  reserved_concurrent_executions = 1

  log_retention_days = var.log_retention_days
  log_kms_key_arn    = var.log_kms_key_arn

  vpc_subnet_ids         = local.in_vpc ? var.vpc_subnet_ids : []
  vpc_security_group_ids = local.in_vpc ? concat(var.vpc_security_group_ids, aws_security_group.source[*].id) : []

  role_path                 = var.role_path
  role_permissions_boundary = var.role_permissions_boundary

  databases = {
    DB        = var.database
    SOURCE_DB = local.source_database
  }
  secret_ttl_seconds = var.secret_ttl_seconds
  environment_variables = {
    SYNC_TABLES  = jsonencode(local.tables)
    ODBCSYSINI   = "/opt"
    STATE_SCHEMA = var.state_schema
  }

  schedule = {
    expression = var.schedule_expression
    timezone   = var.schedule_timezone
    enabled    = var.schedule_enabled
    input      = jsonencode({ source = "schedule" })
    # A missed run is not retried: the next run continues from the committed watermark.
    maximum_retry_attempts       = 0
    maximum_event_age_in_seconds = 3600
  }

  create_alarms   = var.create_alarms
  alarm_topic_arn = var.alarm_topic_arn

  tags = var.tags
}
