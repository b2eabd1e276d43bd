variable "create" {
  description = "Whether to create the backfill pipeline."
  type        = bool
  default     = true
}

variable "name" {
  description = "Name of the pipeline: names the function, its schedule, roles, security group, secret and alarms."
  type        = string

  validation {
    condition     = var.name == null || can(regex("^[a-z0-9][a-z0-9-]{1,48}[a-z0-9]$", var.name))
    error_message = "name must be 3-50 characters of lower-case letters, digits and hyphens."
  }
}

variable "jobs" {
  description = <<-EOT
    The backfill jobs, passed to the function as the JSON environment variable BACKFILL_JOBS and
    parsed by lambda_src/backfill/jobs.py (null attributes are left out). Each job walks its driving
    `table` in the order of its unique `key` (column list, composite allowed) in chunks `(lo, hi]`
    and runs its `statements` for each chunk on the server, naming the bounds `:lo` and `:hi`
    (a composite key's bound is compared as a row value, `(o.a, o.b) > :lo`). `idempotence`:
    `insert_ignore` (INSERT IGNORE / ON CONFLICT DO NOTHING into a target with a unique key among
    the inserted columns), `upsert` (ON DUPLICATE KEY UPDATE / ON CONFLICT DO UPDATE, assignments
    not reading the column they write) or `update`. `chunk` { initial_rows, min_rows, max_rows,
    target_seconds }: sizes adapt toward the target duration within the bounds.
    `max_rows_per_second`: a cap on the driving rows per second. `pressure` { max_replica_lag_seconds
    (30), max_running_threads (0 = off), max_transaction_seconds (0 = off), pause_seconds,
    max_pause_seconds }: pause while the database is under pressure. `verify`: { source, target }
    query pairs returning one row per range for the verify action. `start_after`: key values
    (as strings) the first range starts after. See docs/backfill.md.
  EOT
  type = list(object({
    name        = string
    table       = string
    key         = list(string)
    statements  = list(string)
    idempotence = optional(string, "insert_ignore")
    chunk = optional(object({
      initial_rows   = optional(number, 1000)
      min_rows       = optional(number, 100)
      max_rows       = optional(number, 50000)
      target_seconds = optional(number, 2)
    }), {})
    max_rows_per_second = optional(number)
    pressure = optional(object({
      max_replica_lag_seconds = optional(number, 30)
      max_running_threads     = optional(number, 0)
      max_transaction_seconds = optional(number, 0)
      pause_seconds           = optional(number, 10)
      max_pause_seconds       = optional(number, 120)
    }), {})
    verify = optional(list(object({
      source = string
      target = string
    })), [])
    start_after = optional(list(string))
  }))
  default = []

  validation {
    condition     = var.jobs == null ? true : alltrue([for j in var.jobs : can(regex("^[a-z0-9][a-z0-9_-]{0,62}$", j.name))]) && length(distinct([for j in var.jobs : j.name])) == length(var.jobs)
    error_message = "jobs[*].name must be unique, 1-63 lower-case letters, digits, '_' or '-' (it names the job's checkpoint row, metrics and alarm)."
  }

  validation {
    condition     = var.jobs == null ? true : alltrue([for j in var.jobs : can(regex("^[A-Za-z_][A-Za-z0-9_$]*(\\.[A-Za-z_][A-Za-z0-9_$]*)?$", j.table))])
    error_message = "jobs[*].table must be the driving table, \"table\" or \"schema.table\" (identifiers of letters, digits, '_' and '$')."
  }

  validation {
    condition     = var.jobs == null ? true : alltrue([for j in var.jobs : length(j.key) >= 1 && length(j.key) <= 4 && length(distinct(j.key)) == length(j.key) && alltrue([for c in j.key : can(regex("^[A-Za-z_][A-Za-z0-9_$]*$", c))])])
    error_message = "jobs[*].key must list 1-4 distinct column names (the driving table's unique, ordered key)."
  }

  validation {
    condition     = var.jobs == null ? true : alltrue([for j in var.jobs : length(j.statements) >= 1 && length(j.statements) <= 10])
    error_message = "jobs[*].statements must hold 1-10 SQL statements."
  }

  validation {
    condition     = var.jobs == null ? true : alltrue(flatten([for j in var.jobs : [for s in j.statements : can(regex(":lo([^A-Za-z0-9_]|$)", s)) && can(regex(":hi([^A-Za-z0-9_]|$)", s))]]))
    error_message = "jobs[*].statements: every statement must be limited to the chunk's key range with :lo and :hi (e.g. WHERE o.id > :lo AND o.id <= :hi); not in ${join(", ", flatten([for j in coalesce(var.jobs, []) : [for i, s in j.statements : "${j.name}.statements[${i}]" if !(can(regex(":lo([^A-Za-z0-9_]|$)", s)) && can(regex(":hi([^A-Za-z0-9_]|$)", s)))]]))}."
  }

  validation {
    condition     = var.jobs == null ? true : alltrue([for j in var.jobs : contains(["insert_ignore", "upsert", "update"], j.idempotence)])
    error_message = "jobs[*].idempotence must be insert_ignore, upsert or update."
  }

  validation {
    condition = var.jobs == null ? true : alltrue([for j in var.jobs : alltrue([
      for n in [j.chunk.initial_rows, j.chunk.min_rows, j.chunk.max_rows] : n >= 1 && n <= 1000000 && floor(n) == n
    ]) && j.chunk.min_rows <= j.chunk.initial_rows && j.chunk.initial_rows <= j.chunk.max_rows && j.chunk.target_seconds >= 0.05 && j.chunk.target_seconds <= 60])
    error_message = "jobs[*].chunk: initial_rows, min_rows and max_rows must be whole numbers of rows between 1 and 1000000 with min_rows <= initial_rows <= max_rows, and target_seconds between 0.05 and 60."
  }

  validation {
    condition     = var.jobs == null ? true : alltrue([for j in var.jobs : j.max_rows_per_second == null ? true : j.max_rows_per_second > 0])
    error_message = "jobs[*].max_rows_per_second must be above 0 (or null for no cap)."
  }

  validation {
    condition = var.jobs == null ? true : alltrue([for j in var.jobs : (
      j.pressure.max_replica_lag_seconds >= 0 && j.pressure.max_transaction_seconds >= 0 &&
      j.pressure.max_running_threads >= 0 && floor(j.pressure.max_running_threads) == j.pressure.max_running_threads &&
      j.pressure.pause_seconds > 0 && j.pressure.pause_seconds <= j.pressure.max_pause_seconds && j.pressure.max_pause_seconds <= 900
    )])
    error_message = "jobs[*].pressure: thresholds must be >= 0 (0 turns a check off; max_running_threads a whole number), and 0 < pause_seconds <= max_pause_seconds <= 900."
  }

  validation {
    condition = var.jobs == null ? true : alltrue(flatten([for j in var.jobs : [for v in j.verify : [
      for q in [v.source, v.target] : can(regex("(?is)^\\s*(/\\*.*?\\*/\\s*)*(SELECT|WITH)\\s", q)) && can(regex(":lo([^A-Za-z0-9_]|$)", q)) && can(regex(":hi([^A-Za-z0-9_]|$)", q))
    ]]]))
    error_message = "jobs[*].verify: each source and target must be a SELECT returning one row for the range, using :lo and :hi."
  }

  validation {
    condition     = var.jobs == null ? true : length(var.jobs) <= 5 && alltrue([for j in var.jobs : length(j.verify) <= 5])
    error_message = "jobs: at most 5 jobs per pipeline, each with at most 5 verify pairs."
  }

  validation {
    condition     = var.jobs == null ? true : alltrue([for j in var.jobs : j.start_after == null ? true : length(j.start_after) == length(j.key)])
    error_message = "jobs[*].start_after must hold one value per key column."
  }

  validation {
    condition     = var.jobs == null ? true : length(jsonencode(var.jobs)) <= 3200
    error_message = "jobs encode to ${var.jobs == null ? 0 : length(jsonencode(var.jobs))} bytes of JSON, more than 3200: Lambda allows 4 KB of environment variables in total. Shorten the statements (table aliases) or split the jobs over two backfill pipelines."
  }
}

variable "source_database" {
  description = "The MySQL/MariaDB or PostgreSQL database the jobs run in (they read and write it): engine (mysql or postgresql), host, port (default 3306 / 5432), database name, sslmode, the CIDR blocks of its host(s) the function may reach, and `replica_hosts` (MySQL only: `host` or `host:port` of replicas whose lag pauses the jobs, reached with the same credentials and within the CIDR blocks). Null runs the jobs in the unified PostgreSQL database (`database`)."
  type = object({
    engine        = string
    host          = string
    port          = optional(number)
    name          = string
    sslmode       = optional(string, "require")
    cidr_blocks   = list(string)
    replica_hosts = optional(list(string), [])
  })
  default = null

  validation {
    condition     = var.source_database == null ? true : contains(["mysql", "postgresql"], var.source_database.engine)
    error_message = "source_database.engine must be mysql (MySQL or MariaDB) or postgresql."
  }

  validation {
    condition     = var.source_database == null ? true : var.source_database.port == null || (coalesce(var.source_database.port, 1) >= 1 && coalesce(var.source_database.port, 1) <= 65535)
    error_message = "source_database.port must be a TCP port."
  }

  validation {
    condition     = var.source_database == null ? true : contains(["require", "verify-ca", "verify-full"], var.source_database.sslmode)
    error_message = "source_database.sslmode must be require, verify-ca or verify-full (TLS is mandatory)."
  }

  validation {
    condition     = var.source_database == null ? true : length(var.source_database.cidr_blocks) > 0 && alltrue([for c in var.source_database.cidr_blocks : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "source_database.cidr_blocks must list the database host's IPv4 CIDR blocks (not 0.0.0.0/0)."
  }

  validation {
    condition     = var.source_database == null ? true : alltrue([for h in var.source_database.replica_hosts : can(regex("^[A-Za-z0-9.-]+(:[0-9]{1,5})?$", h))]) && (var.source_database.engine == "mysql" || length(var.source_database.replica_hosts) == 0)
    error_message = "source_database.replica_hosts must be host or host:port entries, and applies to mysql only (PostgreSQL reports its standbys' lag on the primary)."
  }
}

variable "source_secret_arn" {
  description = "Existing Secrets Manager secret with the credentials for `source_database` as JSON {\"username\", \"password\"} (a user allowed to read the driving tables and write the targets, plus PROCESS / pg_monitor for the pressure checks). Null creates an empty secret whose value the operator sets out of band (never through Terraform, so it stays out of the state)."
  type        = string
  default     = null

  validation {
    condition     = var.source_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:", var.source_secret_arn))
    error_message = "source_secret_arn must be a Secrets Manager secret ARN or null."
  }
}

variable "source_secret_kms_key_arn" {
  description = "KMS key of an existing source secret when it is customer managed (the function may decrypt with it, through Secrets Manager only)."
  type        = string
  default     = null
}

variable "secret_recovery_window_in_days" {
  description = "Recovery window of the secret this module creates (0 deletes at once; throwaway environments only)."
  type        = number
  default     = 30

  validation {
    condition     = var.secret_recovery_window_in_days == null ? true : var.secret_recovery_window_in_days == 0 || (var.secret_recovery_window_in_days >= 7 && var.secret_recovery_window_in_days <= 30)
    error_message = "secret_recovery_window_in_days must be 0 or between 7 and 30."
  }
}

variable "kms_key_arn" {
  description = "Customer managed KMS key encrypting the created source secret (the function may decrypt with it)."
  type        = string
  default     = null
}

variable "database" {
  description = "The unified PostgreSQL database, as the lambda_function module's `databases` entry BACKFILL_DB (host, port, name, secret_arn, secret_kms_key_arns, sslmode): where the jobs run when `source_database` is null."
  type = object({
    host                = string
    port                = optional(number, 5432)
    name                = string
    secret_arn          = string
    secret_kms_key_arns = optional(list(string), [])
    engine              = optional(string)
    sslmode             = optional(string, "require")
    odbc_driver         = optional(string)
    connect_timeout     = optional(number)
  })
  default = null
}

variable "state_schema" {
  description = "Where the jobs' checkpoint table lives (STATE_SCHEMA; on MySQL a database). Null: the connection's database on MySQL, pipeline_state on PostgreSQL."
  type        = string
  default     = null

  validation {
    condition     = var.state_schema == null || can(regex("^[A-Za-z_][A-Za-z0-9_]{0,62}$", var.state_schema))
    error_message = "state_schema must be an identifier."
  }
}

variable "schedule_rate_minutes" {
  description = "The schedule runs the function every this many minutes; each run works until its deadline (timeout) and the next continues."
  type        = number
  default     = 15

  validation {
    condition     = var.schedule_rate_minutes == null ? true : var.schedule_rate_minutes >= 1 && var.schedule_rate_minutes <= 1440 && floor(var.schedule_rate_minutes) == var.schedule_rate_minutes
    error_message = "schedule_rate_minutes must be a whole number of minutes between 1 and 1440."
  }
}

variable "schedule_enabled" {
  description = "Whether the schedule is enabled."
  type        = bool
  default     = true
}

variable "disable_schedule_when_done" {
  description = "The function disables its own schedule once every job is finished (it may read and update that one schedule and pass its invoke role). From private subnets it reaches EventBridge Scheduler through an interface endpoint for `scheduler` or a NAT; without either the call fails after a few seconds, is logged, and the finished jobs' runs stay no-ops."
  type        = bool
  default     = true
}

variable "stalled_alarm_minutes" {
  description = "A job that has not advanced (RowsAdvanced sums to 0) over this many minutes while unfinished raises its alarm: pressure that does not let up, a chunk too slow for the timeout, a failing job. At least twice the schedule's rate."
  type        = number
  default     = 60

  validation {
    condition     = var.stalled_alarm_minutes == null ? true : var.stalled_alarm_minutes >= 2 && var.stalled_alarm_minutes <= 1440 && floor(var.stalled_alarm_minutes) == var.stalled_alarm_minutes
    error_message = "stalled_alarm_minutes must be a whole number of minutes between 2 and 1440."
  }
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the progress metrics (POWERTOOLS_METRICS_NAMESPACE)."
  type        = string
  default     = "Pipelines/Backfill"

  validation {
    condition     = var.metrics_namespace == null ? true : can(regex("^[A-Za-z0-9./#:_-]{1,255}$", var.metrics_namespace)) && !startswith(var.metrics_namespace, "AWS/")
    error_message = "metrics_namespace must be a custom CloudWatch namespace (not AWS/...)."
  }
}

variable "package" {
  description = "The backfill entry of build/manifest.json with `filename` resolved: { filename, handler, source_code_hash }."
  type = object({
    filename         = string
    handler          = string
    source_code_hash = string
  })
}

variable "runtime" {
  description = "Python runtime of the function."
  type        = string
  default     = "python3.12"
}

variable "architecture" {
  description = "Architecture of the function (x86_64 or arm64)."
  type        = string
  default     = "x86_64"
}

variable "memory_size" {
  description = "Memory of the function in MB. Rows never pass through it: it reads key values and runs statements on the server."
  type        = number
  default     = 256
}

variable "timeout" {
  description = "Timeout of the function in seconds; a run stops before it (after the chunk in flight, whose statements the server cancels at the deadline) and the next run continues. Keep it below the schedule's rate so runs do not queue behind each other."
  type        = number
  default     = 840

  validation {
    condition     = var.timeout == null ? true : var.timeout >= 30 && var.timeout <= 900
    error_message = "timeout must be between 30 and 900 seconds."
  }
}

variable "log_level" {
  description = "LOG_LEVEL of the function."
  type        = string
  default     = "INFO"
}

variable "log_retention_days" {
  description = "Retention of the function's logs."
  type        = number
  default     = 30
}

variable "log_kms_key_arn" {
  description = "KMS key encrypting the log group (null = CloudWatch default)."
  type        = string
  default     = null
}

variable "secret_ttl_seconds" {
  description = "How long the function caches its secret (SECRET_TTL_SECONDS); null keeps the function's default (300)."
  type        = number
  default     = null
}

variable "vpc_id" {
  description = "VPC of the function (for its database-access security group); required with vpc_subnet_ids when source_database is set."
  type        = string
  default     = null
}

variable "vpc_subnet_ids" {
  description = "Private subnets of the function."
  type        = list(string)
  default     = []
}

variable "vpc_security_group_ids" {
  description = "Shared security groups of the function (database, endpoints); with source_database, a group allowing its host is added."
  type        = list(string)
  default     = []
}

variable "create_alarms" {
  description = "Create the function's alarms (errors, throttles) and one per job that stops advancing."
  type        = bool
  default     = true
}

variable "alarm_topic_arn" {
  description = "SNS topic for alarm notifications (null = alarms without actions)."
  type        = string
  default     = null
}

variable "role_path" {
  description = "Path of the function's IAM roles (execution and scheduler). Null uses \"/\"."
  type        = string
  default     = null
}

variable "role_permissions_boundary" {
  description = "ARN of the managed policy that bounds the permissions of the function's IAM roles."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags applied to every resource of this module."
  type        = map(string)
  default     = {}
}
