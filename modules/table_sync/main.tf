locals {
  create        = var.create
  create_secret = local.create && var.source_secret_arn == null
  in_vpc        = length(var.vpc_subnet_ids) > 0
  secret_arn    = local.create_secret ? try(aws_secretsmanager_secret.source[0].arn, null) : var.source_secret_arn

  # SQL Server is read through ODBC (FreeTDS from the layer by default); PostgreSQL and MySQL
  # sources use their native drivers unless an ODBC driver is named explicitly.
  odbc_driver = var.source_database.odbc_driver != null ? var.source_database.odbc_driver : (
    var.source_database.engine == "sqlserver" ? "FreeTDS" : null
  )

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

  # Built from null checks on variables (known at plan time) rather than compact(), so the
  # statement list keeps a known length while the key ARNs are still unknown.
  kms_keys = concat(
    local.create_secret ? [var.kms_key_arn] : (var.source_secret_kms_key_arn == null ? [] : [var.source_secret_kms_key_arn]),
    var.database.secret_kms_key_arn == null ? [] : [var.database.secret_kms_key_arn],
  )
}

resource "terraform_data" "checks" {
  count = local.create ? 1 : 0

  input = var.name

  lifecycle {
    precondition {
      condition     = var.source_database.engine != "sqlserver" || var.odbc_layer != null
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
  description             = "Credentials of the table sync source ${var.source_database.host}/${var.source_database.name}: JSON {\"username\", \"password\"}, set by the operator out of band"
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

  tags = merge(var.tags, { Name = "${var.name}-source" })
}

resource "aws_vpc_security_group_egress_rule" "source" {
  count = local.create && local.in_vpc ? length(var.source_database.cidr_blocks) : 0

  security_group_id = aws_security_group.source[0].id
  description       = "Source database ${var.source_database.host}"
  ip_protocol       = "tcp"
  from_port         = var.source_database.port
  to_port           = var.source_database.port
  cidr_ipv4         = var.source_database.cidr_blocks[count.index]

  tags = var.tags
}

module "function" {
  source = "../lambda_function"

  create        = local.create
  function_name = var.name
  description   = "Incremental sync from ${var.source_database.engine} ${var.source_database.host}/${var.source_database.name} into PostgreSQL"
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

  environment_variables = merge({
    SYNC_TABLES          = jsonencode(local.tables)
    SOURCE_DB_ENGINE     = var.source_database.engine
    SOURCE_DB_HOST       = var.source_database.host
    SOURCE_DB_PORT       = tostring(var.source_database.port)
    SOURCE_DB_NAME       = var.source_database.name
    SOURCE_DB_SECRET_ARN = local.secret_arn
    SOURCE_DB_SSLMODE    = var.source_database.sslmode
    ODBCSYSINI           = "/opt"
    DB_HOST              = var.database.host
    DB_PORT              = tostring(var.database.port)
    DB_NAME              = var.database.name
    DB_SECRET_ARN        = var.database.secret_arn
    DB_SSLMODE           = var.database.sslmode
    STATE_SCHEMA         = var.database.state_schema
  }, local.odbc_driver == null ? {} : { SOURCE_DB_ODBC_DRIVER = local.odbc_driver })

  schedule = {
    expression = var.schedule_expression
    timezone   = var.schedule_timezone
    enabled    = var.schedule_enabled
    input      = jsonencode({ source = "schedule" })
    # A missed run is not retried: the next run continues from the committed watermark.
    maximum_retry_attempts       = 0
    maximum_event_age_in_seconds = 3600
  }

  policy_statements = concat(
    [
      {
        sid        = "ReadDatabaseSecrets"
        actions    = ["secretsmanager:GetSecretValue"]
        resources  = [local.secret_arn, var.database.secret_arn]
        conditions = []
      },
    ],
    length(local.kms_keys) == 0 ? [] : [
      {
        sid       = "DecryptSecrets"
        actions   = ["kms:Decrypt"]
        resources = local.kms_keys
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

  tags = var.tags

}
