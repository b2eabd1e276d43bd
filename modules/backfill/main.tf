locals {
  create = var.create
  source = var.source_database
  jobs   = coalesce(var.jobs, [])

  has_source    = local.create && local.source != null
  create_secret = local.has_source && var.source_secret_arn == null
  in_vpc        = length(coalesce(var.vpc_subnet_ids, [])) > 0
  secret_arn    = local.create_secret ? try(aws_secretsmanager_secret.source[0].arn, null) : var.source_secret_arn
  engine        = local.source != null ? local.source.engine : "postgresql"
  port          = local.source == null ? null : coalesce(local.source.port, local.source.engine == "mysql" ? 3306 : 5432)

  # BACKFILL_JOBS as lambda_src/backfill/jobs.py parses it: null attributes are left out.
  jobs_json = [for j in local.jobs : { for k, v in j : k => v if v != null }]

  # Where the jobs run: the given database, or the unified one (through the root's `database`).
  db = local.has_source ? {
    host                = local.source.host
    port                = local.port
    name                = local.source.name
    secret_arn          = local.secret_arn
    secret_kms_key_arns = local.create_secret ? [var.kms_key_arn] : (var.source_secret_kms_key_arn == null ? [] : [var.source_secret_kms_key_arn])
    engine              = local.source.engine
    sslmode             = local.source.sslmode
    odbc_driver         = null
    connect_timeout     = null
  } : var.database

  replica_hosts = local.source == null ? [] : local.source.replica_hosts
  # The database's port and each replica's, on every CIDR block of the database's hosts.
  egress_ports = local.source == null ? [] : distinct(concat([local.port], [
    for h in local.replica_hosts : length(split(":", h)) == 2 ? tonumber(split(":", h)[1]) : local.port
  ]))
  egress = local.has_source && local.in_vpc ? {
    for pair in setproduct(local.source.cidr_blocks, local.egress_ports) : "${pair[0]}:${pair[1]}" => { cidr = pair[0], port = pair[1] }
  } : {}

  # The idempotence rule each statement must follow, as the function's parser checks it
  # (backfill.idempotence); refused here too so that a plan does not deploy a job that cannot run.
  lead = "(?is)^\\s*(/\\*.*?\\*/\\s*)*"
  statement_forms = {
    mysql = {
      insert_ignore = { need = ["${local.lead}INSERT\\s+((LOW_PRIORITY|DELAYED|HIGH_PRIORITY)\\s+)?IGNORE\\s+INTO\\s"], refuse = ["(?is)\\bON\\s+DUPLICATE\\s+KEY\\s+UPDATE\\b"], form = "INSERT IGNORE INTO t (columns) SELECT ... (without ON DUPLICATE KEY UPDATE)" }
      upsert        = { need = ["${local.lead}INSERT\\s+((LOW_PRIORITY|DELAYED|HIGH_PRIORITY)\\s+)?INTO\\s", "(?is)\\bON\\s+DUPLICATE\\s+KEY\\s+UPDATE\\b"], refuse = [], form = "INSERT INTO t (columns) SELECT ... ON DUPLICATE KEY UPDATE ..." }
      update        = { need = ["${local.lead}UPDATE\\s"], refuse = [], form = "UPDATE ... SET ..." }
    }
    postgresql = {
      insert_ignore = { need = ["${local.lead}INSERT\\s+INTO\\s", "(?is)\\bON\\s+CONFLICT\\b", "(?is)\\bDO\\s+NOTHING\\b"], refuse = [], form = "INSERT INTO t (columns) SELECT ... ON CONFLICT DO NOTHING" }
      upsert        = { need = ["${local.lead}INSERT\\s+INTO\\s", "(?is)\\bON\\s+CONFLICT\\b", "(?is)\\bDO\\s+UPDATE\\s+SET\\b"], refuse = [], form = "INSERT INTO t (columns) SELECT ... ON CONFLICT (...) DO UPDATE SET ..." }
      update        = { need = ["${local.lead}UPDATE\\s"], refuse = [], form = "UPDATE ... SET ..." }
    }
  }
  misfit_statements = flatten([for j in local.jobs : [
    for i, s in j.statements : "${j.name}.statements[${i}] (${j.idempotence}: ${try(local.statement_forms[local.engine][j.idempotence].form, "?")})"
    if !try(alltrue([for r in local.statement_forms[local.engine][j.idempotence].need : can(regex(r, s))]) && !anytrue([for r in local.statement_forms[local.engine][j.idempotence].refuse : can(regex(r, s))]), true)
  ]])
}

resource "terraform_data" "checks" {
  count = local.create ? 1 : 0

  input = var.name

  lifecycle {
    precondition {
      condition     = (var.source_database == null) != (var.database == null)
      error_message = "Set exactly one of source_database (a MySQL/MariaDB or PostgreSQL database the jobs run in) and database (the unified PostgreSQL database)."
    }

    precondition {
      condition     = length(local.jobs) > 0
      error_message = "jobs must contain at least one job."
    }

    precondition {
      condition     = length(local.misfit_statements) == 0
      error_message = "jobs: statements that do not follow their job's idempotence rule on ${local.engine}: ${join("; ", local.misfit_statements)}. A replayed chunk must change nothing (see docs/backfill.md)."
    }

    precondition {
      condition     = !local.has_source || !local.in_vpc || var.vpc_id != null
      error_message = "vpc_subnet_ids is set but vpc_id is null (the database-access security group needs the VPC)."
    }

    precondition {
      condition     = var.timeout < var.schedule_rate_minutes * 60
      error_message = "timeout (${var.timeout} s) must be shorter than the schedule's rate (${var.schedule_rate_minutes} min), so a run ends before the next one starts."
    }

    precondition {
      condition     = var.stalled_alarm_minutes >= 2 * var.schedule_rate_minutes
      error_message = "stalled_alarm_minutes (${var.stalled_alarm_minutes}) must be at least twice schedule_rate_minutes (${var.schedule_rate_minutes}): the alarm needs two runs without progress."
    }
  }
}

resource "aws_secretsmanager_secret" "source" {
  count = local.create_secret ? 1 : 0

  name                    = "${var.name}/database"
  description             = "Credentials of the backfill database ${local.source.host}/${local.source.name}: JSON {\"username\", \"password\"}, set by the operator out of band"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.secret_recovery_window_in_days

  tags = var.tags
}

resource "aws_security_group" "source" {
  count = local.has_source && local.in_vpc ? 1 : 0

  name        = "${var.name}-database"
  description = "${var.name}: egress to the backfill database (and its replicas) only"
  vpc_id      = var.vpc_id

  tags = merge({ Name = "${var.name}-database" }, var.tags)
}

resource "aws_vpc_security_group_egress_rule" "source" {
  for_each = local.egress

  security_group_id = aws_security_group.source[0].id
  description       = "Backfill database ${local.source.host}"
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = each.value.cidr

  tags = var.tags
}

module "function" {
  source = "../lambda_function"

  create        = local.create
  function_name = var.name
  description   = local.create ? "Chunked, resumable backfill jobs in ${local.engine} ${try(local.db.host, "")}/${try(local.db.name, "")}" : null
  package       = var.package
  runtime       = var.runtime
  architecture  = var.architecture
  memory_size   = var.memory_size
  timeout       = var.timeout
  log_level     = var.log_level

  # One runner at a time; a session advisory lock per job is the second guard.
  reserved_concurrent_executions = 1

  log_retention_days = var.log_retention_days
  log_kms_key_arn    = var.log_kms_key_arn

  vpc_subnet_ids         = local.in_vpc ? var.vpc_subnet_ids : []
  vpc_security_group_ids = local.in_vpc ? concat(var.vpc_security_group_ids, aws_security_group.source[*].id) : []

  role_path                 = var.role_path
  role_permissions_boundary = var.role_permissions_boundary

  databases          = { BACKFILL_DB = local.create ? local.db : null }
  secret_ttl_seconds = var.secret_ttl_seconds
  environment_variables = merge(
    {
      BACKFILL_JOBS                = jsonencode(local.jobs_json)
      SCHEDULE_NAME                = var.name
      DISABLE_SCHEDULE_WHEN_DONE   = tostring(var.disable_schedule_when_done)
      POWERTOOLS_METRICS_NAMESPACE = var.metrics_namespace
    },
    var.state_schema == null ? {} : { STATE_SCHEMA = var.state_schema },
    length(local.replica_hosts) == 0 ? {} : { BACKFILL_DB_REPLICA_HOSTS = join(",", local.replica_hosts) },
  )

  schedule = {
    expression = "rate(${var.schedule_rate_minutes} ${var.schedule_rate_minutes == 1 ? "minute" : "minutes"})"
    enabled    = var.schedule_enabled
    input      = jsonencode({ source = "schedule" })
    # A missed run is not retried: the next one continues from the committed checkpoints.
    maximum_retry_attempts       = 0
    maximum_event_age_in_seconds = 60 * var.schedule_rate_minutes
  }

  create_alarms   = var.create_alarms
  alarm_topic_arn = var.alarm_topic_arn

  tags = var.tags
}

# Once every job is finished the function disables its own schedule: it may read and update that
# one schedule, and pass the schedule's invoke role back to Scheduler (UpdateSchedule sends the
# whole definition, target role included), nothing else.
data "aws_iam_policy_document" "own_schedule" {
  count = local.create && var.disable_schedule_when_done ? 1 : 0

  statement {
    sid       = "ReadAndDisableOwnSchedule"
    actions   = ["scheduler:GetSchedule", "scheduler:UpdateSchedule"]
    resources = [module.function.schedule_arn]
  }

  statement {
    sid       = "PassOwnScheduleRole"
    actions   = ["iam:PassRole"]
    resources = [module.function.schedule_role_arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["scheduler.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "own_schedule" {
  count = local.create && var.disable_schedule_when_done ? 1 : 0

  name   = "${var.name}-own-schedule"
  role   = module.function.role_name
  policy = data.aws_iam_policy_document.own_schedule[0].json
}

# A job that stops advancing: RowsAdvanced (emitted by every run while the job is unfinished) sums
# to zero over the window. A finished job emits nothing, which is not an alarm.
resource "aws_cloudwatch_metric_alarm" "stalled" {
  for_each = local.create && var.create_alarms ? toset([for j in local.jobs : j.name]) : toset([])

  alarm_name          = "${var.name}-stalled-${each.key}"
  alarm_description   = "Backfill job ${each.key} of ${var.name} did not advance in ${var.stalled_alarm_minutes} minutes (database pressure, a failing or too slow chunk): see the function's results and docs/backfill.md."
  namespace           = var.metrics_namespace
  metric_name         = "RowsAdvanced"
  dimensions          = { job = each.key, service = var.name }
  statistic           = "Sum"
  period              = 60 * var.stalled_alarm_minutes
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "LessThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_topic_arn == null ? [] : [var.alarm_topic_arn]
  ok_actions          = var.alarm_topic_arn == null ? [] : [var.alarm_topic_arn]

  tags = var.tags
}
