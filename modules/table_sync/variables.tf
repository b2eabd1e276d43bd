variable "create" {
  description = "Whether to create the table sync pipeline."
  type        = bool
  default     = true
}

variable "name" {
  description = "Name of the pipeline: names the function, its schedule, security group, layer and secret."
  type        = string

  validation {
    condition     = var.name == null || can(regex("^[a-z0-9][a-z0-9-]{1,48}[a-z0-9]$", var.name))
    error_message = "name must be 3-50 characters of lower-case letters, digits and hyphens."
  }
}

variable "tables" {
  description = <<-EOT
    Tables to sync, passed to the function as the JSON environment variable SYNC_TABLES (keys as
    parsed by lambda_src/table_sync/config.py; null attributes are left out). Each: `source`
    "schema.table" or a `query`, `target` "schema.table", `primary_key` columns, `cursor`
    { type = rowversion | timestamp, column, lookback_seconds (timestamp only) }, optional `name`
    (watermark key, default the target), `columns` (source => target column map; default all),
    `chunk_size`, `initial_value` (cursor value the first run starts from, inclusive: integer or 0x hex
    for rowversion, ISO 8601 for timestamps) and `deletes` { enabled, chunk_size, interval_minutes }
    (chunked primary-key reconciliation deleting target rows gone from the source; off by default,
    it reads every key of the source) and `encode_on_source` (the source renders each row as a COPY
    text line, about twice as fast through ODBC; null = on for PostgreSQL and MySQL sources, off for
    SQL Server, whose generated T-SQL is only syntax-checked in this project's tests).
  EOT
  type = list(object({
    name        = optional(string)
    source      = optional(string)
    query       = optional(string)
    target      = string
    primary_key = list(string)
    cursor = object({
      type             = string
      column           = string
      lookback_seconds = optional(number, 0)
    })
    columns       = optional(map(string))
    chunk_size    = optional(number, 10000)
    initial_value = optional(string)
    deletes = optional(object({
      enabled          = optional(bool, true)
      chunk_size       = optional(number)
      interval_minutes = optional(number)
    }))
    encode_on_source = optional(bool)
  }))
  # Required when the pipeline is created (checked then); a disabled pipeline needs none.
  default  = []
  nullable = false

  validation {
    condition     = alltrue([for t in var.tables : (t.source == null) != (t.query == null)])
    error_message = "Every table needs exactly one of source (\"schema.table\") or query."
  }

  validation {
    condition = alltrue([for t in var.tables : (
      can(regex("^[A-Za-z_][A-Za-z0-9_]{0,127}\\.[A-Za-z_][A-Za-z0-9_]{0,127}$", t.target)) &&
      (t.source == null ? true : can(regex("^[A-Za-z_][A-Za-z0-9_]{0,127}\\.[A-Za-z_][A-Za-z0-9_]{0,127}$", t.source)))
    )])
    error_message = "source and target must be \"schema.table\", each part an identifier of letters, digits and underscores."
  }

  validation {
    condition     = alltrue([for t in var.tables : length(t.primary_key) > 0 && alltrue([for c in concat(t.primary_key, [t.cursor.column]) : can(regex("^[A-Za-z_][A-Za-z0-9_]{0,127}$", c))])])
    error_message = "Every table needs primary_key columns; primary_key and cursor.column must be column identifiers."
  }

  validation {
    condition     = alltrue([for t in var.tables : contains(["rowversion", "timestamp"], t.cursor.type) && t.cursor.lookback_seconds >= 0 && (t.cursor.type == "timestamp" || t.cursor.lookback_seconds == 0)])
    error_message = "cursor.type must be rowversion or timestamp; cursor.lookback_seconds must not be negative and applies to timestamp cursors only."
  }

  validation {
    condition     = alltrue([for t in var.tables : t.chunk_size >= 100 && t.chunk_size <= 1000000])
    error_message = "chunk_size must be between 100 and 1000000 rows."
  }

  validation {
    condition     = length(distinct([for t in var.tables : lower(t.target)])) == length(var.tables) && length(distinct([for t in var.tables : coalesce(t.name, t.target)])) == length(var.tables)
    error_message = "Two tables share a target or a name; each needs its own watermark."
  }

  validation {
    condition     = length(jsonencode(var.tables)) <= 3000
    error_message = "tables encode to more than 3000 bytes of JSON; Lambda allows 4 KB of environment variables in total."
  }
}

variable "source_database" {
  description = "The source database: engine (sqlserver, postgresql or mysql), host, port, database name, sslmode, ODBC driver name (default: FreeTDS from the ODBC layer for sqlserver; native drivers for postgresql and mysql unless a driver is named), and the CIDR blocks of the source host(s) the function may reach on `port`."
  type = object({
    engine      = optional(string, "sqlserver")
    host        = string
    port        = optional(number, 1433)
    name        = string
    sslmode     = optional(string, "require")
    odbc_driver = optional(string)
    cidr_blocks = list(string)
  })

  validation {
    condition     = var.source_database == null ? true : contains(["sqlserver", "postgresql", "mysql"], var.source_database.engine)
    error_message = "source_database.engine must be sqlserver, postgresql or mysql."
  }

  validation {
    condition     = var.source_database == null ? true : var.source_database.port >= 1 && var.source_database.port <= 65535
    error_message = "source_database.port must be a TCP port."
  }

  validation {
    condition     = var.source_database == null ? true : length(var.source_database.cidr_blocks) > 0 && alltrue([for c in var.source_database.cidr_blocks : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "source_database.cidr_blocks must list the source host's IPv4 CIDR blocks (not 0.0.0.0/0)."
  }
}

variable "source_secret_arn" {
  description = "Existing Secrets Manager secret with the source credentials as JSON {\"username\", \"password\"}. Null creates an empty secret whose value the operator sets out of band (never through Terraform, so it stays out of the state)."
  type        = string
  default     = null

  validation {
    condition     = var.source_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:", var.source_secret_arn))
    error_message = "source_secret_arn must be a Secrets Manager secret ARN or null."
  }
}

variable "source_secret_kms_key_arn" {
  description = "KMS key of an existing source secret when it is customer managed (the function gets kms:Decrypt on it)."
  type        = string
  default     = null
}

variable "secret_recovery_window_in_days" {
  description = "Recovery window of the secret this module creates (0 deletes at once; throwaway environments only)."
  type        = number
  default     = 30

  validation {
    condition     = var.secret_recovery_window_in_days == 0 || (var.secret_recovery_window_in_days >= 7 && var.secret_recovery_window_in_days <= 30)
    error_message = "secret_recovery_window_in_days must be 0 or between 7 and 30."
  }
}

variable "kms_key_arn" {
  description = "Customer managed KMS key encrypting the created source secret (the function gets kms:Decrypt on it)."
  type        = string
}

variable "package" {
  description = "The table_sync entry of build/manifest.json with `filename` resolved: { filename, handler, source_code_hash }."
  type = object({
    filename         = string
    handler          = string
    source_code_hash = string
  })
}

variable "odbc_layer" {
  description = "The `layers.odbc` entry of build/manifest.json with `filename` resolved: { filename, source_code_hash }. Required for a sqlserver source."
  type = object({
    filename         = string
    source_code_hash = string
  })
  default = null
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
  description = "Memory of the function in MB."
  type        = number
  default     = 1024
}

variable "timeout" {
  description = "Timeout of the function in seconds; a run stops after the current chunk when time runs short and the next run continues."
  type        = number
  default     = 900

  validation {
    condition     = var.timeout >= 30 && var.timeout <= 900
    error_message = "timeout must be between 30 and 900 seconds."
  }
}

variable "schedule_expression" {
  description = "When the sync runs (EventBridge Scheduler expression)."
  type        = string
  default     = "rate(1 hour)"
}

variable "schedule_timezone" {
  description = "Time zone of a cron schedule expression."
  type        = string
  default     = "UTC"
}

variable "schedule_enabled" {
  description = "Whether the schedule is enabled."
  type        = bool
  default     = true
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

variable "database" {
  description = "Target PostgreSQL database, as the lambda_function module's `databases` entry DB: host (instance or proxy), port, name, the secret holding {username, password}, the KMS keys it is encrypted with (empty for aws/secretsmanager), sslmode."
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

  validation {
    condition     = var.database == null ? true : contains(["require", "verify-ca", "verify-full"], var.database.sslmode)
    error_message = "database.sslmode must be require, verify-ca or verify-full (TLS is mandatory)."
  }
}

variable "state_schema" {
  description = "Schema of the watermark table (STATE_SCHEMA)."
  type        = string
  default     = "pipeline_state"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.state_schema))
    error_message = "state_schema must be a lower-case identifier."
  }
}

variable "secret_ttl_seconds" {
  description = "How long the function caches its secrets (SECRET_TTL_SECONDS); null keeps the function's default (300)."
  type        = number
  default     = null
}

variable "vpc_id" {
  description = "VPC of the function (for its source-access security group); required with vpc_subnet_ids."
  type        = string
  default     = null
}

variable "vpc_subnet_ids" {
  description = "Private subnets of the function."
  type        = list(string)
  default     = []
}

variable "vpc_security_group_ids" {
  description = "Shared security groups of the function (database, endpoints); a group allowing the source host is added."
  type        = list(string)
  default     = []
}

variable "create_alarms" {
  description = "Create the function's alarms."
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
