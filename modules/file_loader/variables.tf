variable "create" {
  description = "Whether to create the file loader pipeline."
  type        = bool
  default     = true
}

variable "name" {
  description = "Name of the pipeline: names the function, queue, topic and (unless `bucket_name` is set) the bucket."
  type        = string

  validation {
    condition     = var.name == null || can(regex("^[a-z0-9][a-z0-9-]{1,48}[a-z0-9]$", var.name))
    error_message = "name must be 3-50 characters of lower-case letters, digits and hyphens."
  }
}

variable "bucket_name" {
  description = "Name of the landing bucket this module creates. Null uses `name`."
  type        = string
  default     = null
}

variable "bucket_force_destroy" {
  description = "Allow destroying the landing bucket while it holds objects."
  type        = bool
  default     = false
}

variable "bucket_kms_key_arn" {
  description = "KMS key for SSE-KMS on the landing bucket (the function gets kms:Decrypt on it, through S3 only). Null uses SSE-S3."
  type        = string
  default     = null
}

variable "bucket_kms_encryption" {
  description = "Whether the landing bucket uses SSE-KMS with `bucket_kms_key_arn`: set it when the key is created in the same plan (the root module does); null: SSE-KMS exactly when `bucket_kms_key_arn` is set."
  type        = bool
  default     = null
}

variable "bucket_access_logs" {
  description = "S3 server access logs of the landing bucket: { bucket, prefix } (see modules/bucket's access_logs); null turns them off."
  type = object({
    bucket = string
    prefix = optional(string)
  })
  default = null
}

variable "notifications" {
  description = "How the bucket's events reach the function: `sns` (S3 -> SNS -> SQS -> Lambda) or `eventbridge` (S3 -> EventBridge rule on the bucket and the routes' prefixes -> SQS -> Lambda). See modules/event_queue."
  type        = string
  default     = "sns"
  nullable    = false

  validation {
    condition     = contains(["sns", "eventbridge"], var.notifications)
    error_message = "notifications must be \"sns\" or \"eventbridge\"."
  }
}

variable "bucket_lifecycle_rules" {
  description = "Lifecycle rules of the landing bucket (see modules/bucket)."
  type = list(object({
    id                                 = string
    enabled                            = optional(bool, true)
    prefix                             = optional(string, "")
    expiration_days                    = optional(number)
    noncurrent_version_expiration_days = optional(number)
    transitions = optional(list(object({
      days          = number
      storage_class = string
    })), [])
  }))
  default = []
}

variable "routes" {
  description = <<-EOT
    Where objects go. An object is loaded by the first route whose `prefix` (and `suffix`, if set)
    matches its key (list specific prefixes first); an object matching no route is reported and
    left alone. `table` is "schema.table", where `{name}` may stand for the first key component
    after the prefix; `format` csv or jsonl; `compression` auto (gzip detected), gzip or none;
    `mode` append or upsert (`key_columns` is the conflict target, default the table's primary
    key); `on_error` reject_object (nothing loaded, the ledger says why) or quarantine (good rows
    load, bad rows go to the rejects table); `csv` holds the dialect (delimiter, quote, escape,
    null string) and the file `encoding`. Passed to the function as the JSON environment variable
    ROUTES (parsed by lambda_src/file_loader/routes.py; null attributes are left out).
  EOT
  type = list(object({
    prefix      = string
    suffix      = optional(string, "")
    table       = string
    format      = string
    mode        = optional(string, "append")
    key_columns = optional(list(string), [])
    on_error    = optional(string, "reject_object")
    compression = optional(string, "auto")
    csv = optional(object({
      delimiter = optional(string, ",")
      quote     = optional(string, "\"")
      escape    = optional(string)
      null      = optional(string, "")
      encoding  = optional(string, "UTF8")
    }), {})
  }))
  # Required when the pipeline is created (checked then); a disabled pipeline needs none.
  default  = []
  nullable = false

  validation {
    condition     = alltrue([for r in var.routes : !startswith(r.prefix, "/") && !can(regex("\\.\\.", r.prefix))])
    error_message = "A route prefix must not start with \"/\" or contain \"..\" (S3 keys have no leading slash)."
  }

  validation {
    condition = alltrue([for r in var.routes : length(split("{name}", r.table)) <= 2 && can(regex(
      "^[A-Za-z_][A-Za-z0-9_]{0,62}\\.[A-Za-z_][A-Za-z0-9_]{0,62}$", replace(r.table, "{name}", "x")
    ))])
    error_message = "Every route table must be \"schema.table\", each part an identifier of letters, digits and underscores (at most 63 characters, not starting with a digit); one {name} placeholder may stand for the first key component after the prefix."
  }

  validation {
    condition     = alltrue([for r in var.routes : contains(["csv", "jsonl"], r.format)])
    error_message = "Every route format must be csv or jsonl."
  }

  validation {
    condition     = alltrue([for r in var.routes : contains(["append", "upsert"], r.mode)])
    error_message = "Every route mode must be append or upsert."
  }

  validation {
    condition     = alltrue([for r in var.routes : r.mode == "upsert" || length(r.key_columns) == 0])
    error_message = "key_columns applies to mode = \"upsert\" only (it is the ON CONFLICT target)."
  }

  validation {
    condition     = alltrue([for r in var.routes : contains(["auto", "gzip", "none"], r.compression)])
    error_message = "Every route compression must be auto, gzip or none."
  }

  validation {
    condition     = alltrue(flatten([for r in var.routes : [for c in r.key_columns : can(regex("^[A-Za-z_][A-Za-z0-9_]{0,62}$", c))]]))
    error_message = "key_columns must be column identifiers (letters, digits, underscores, not starting with a digit)."
  }

  validation {
    condition     = alltrue([for r in var.routes : contains(["reject_object", "quarantine"], r.on_error)])
    error_message = "Every route on_error must be reject_object or quarantine."
  }

  validation {
    condition = alltrue([for r in var.routes : (
      length(r.csv.delimiter) == 1 && length(r.csv.quote) == 1 && r.csv.delimiter != r.csv.quote &&
      !contains(["\n", "\r"], r.csv.delimiter) && !contains(["\n", "\r"], r.csv.quote) &&
      (r.csv.escape == null ? true : length(r.csv.escape) == 1 && !contains(["\n", "\r"], r.csv.escape))
    )])
    error_message = "csv.delimiter, csv.quote and csv.escape must each be a single character other than a line break, and the delimiter must differ from the quote."
  }

  validation {
    condition = alltrue([for r in var.routes : contains(
      ["UTF8", "LATIN1", "LATIN2", "LATIN9", "WIN1250", "WIN1251", "WIN1252", "SQLASCII", "ISO88591", "ISO88592", "ISO885915", "CP1250", "CP1251", "CP1252", "WINDOWS1252", "ASCII"],
      replace(replace(upper(r.csv.encoding), "-", ""), "_", "")
    )])
    error_message = "csv.encoding must be one the loader supports: UTF8, LATIN1, LATIN2, LATIN9, WIN1250, WIN1251, WIN1252, SQL_ASCII (aliases such as utf-8, latin-1, iso-8859-15, cp1252 work)."
  }

  validation {
    condition     = length(distinct([for r in var.routes : "${r.prefix}|${r.suffix}"])) == length(var.routes)
    error_message = "Two routes have the same prefix and suffix; the second could never match."
  }

  validation {
    # Lambda allows 4 KB of environment variables in total.
    condition     = length(jsonencode(var.routes)) <= 3000
    error_message = "routes encode to more than 3000 bytes of JSON; Lambda allows 4 KB of environment variables in total. Use fewer or shorter routes."
  }
}

variable "package" {
  description = "The file_loader entry of build/manifest.json with `filename` resolved: { filename, handler, source_code_hash }."
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
  description = "Memory of the function in MB (network and CPU throughput scale with it)."
  type        = number
  default     = 1024
}

variable "timeout" {
  description = "Timeout of the function in seconds; the largest object it can load depends on it (docs/terraform.md)."
  type        = number
  default     = 900

  validation {
    condition     = var.timeout >= 30 && var.timeout <= 900
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
  description = "Schema of the ledger and rejects tables (STATE_SCHEMA)."
  type        = string
  default     = "pipeline_state"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.state_schema))
    error_message = "state_schema must be a lower-case identifier."
  }
}

variable "secret_ttl_seconds" {
  description = "How long the function caches the database secret (SECRET_TTL_SECONDS); null keeps the function's default (300)."
  type        = number
  default     = null
}

variable "vpc_subnet_ids" {
  description = "Private subnets of the function (empty = outside a VPC)."
  type        = list(string)
  default     = []
}

variable "vpc_security_group_ids" {
  description = "Security groups of the function."
  type        = list(string)
  default     = []
}

variable "kms_key_arn" {
  description = "Customer managed KMS key encrypting the notification topic (its policy must allow s3.amazonaws.com)."
  type        = string
}

variable "batch_size" {
  description = "SQS messages per invocation. Each message is one object; 1 gives every object the whole function timeout."
  type        = number
  default     = 1
}

variable "maximum_batching_window_in_seconds" {
  description = "How long the event source waits to fill a batch."
  type        = number
  default     = 0
}

variable "maximum_concurrency" {
  description = "Most concurrent invocations from the queue = most database connections this pipeline opens (2-1000). Size it against max_connections (docs/terraform.md)."
  type        = number
  default     = 5

  validation {
    condition     = var.maximum_concurrency >= 2 && var.maximum_concurrency <= 1000
    error_message = "maximum_concurrency must be between 2 and 1000 (the SQS event source limits)."
  }
}

variable "max_receive_count" {
  description = "Deliveries of an object's message before it moves to the DLQ."
  type        = number
  default     = 5
}

variable "create_alarms" {
  description = "Create the function's alarms (errors, throttles, DLQ depth)."
  type        = bool
  default     = true
}

variable "alarm_topic_arn" {
  description = "SNS topic for alarm notifications (null = alarms without actions)."
  type        = string
  default     = null
}

variable "role_path" {
  description = "Path of the function's IAM role. Null uses \"/\"."
  type        = string
  default     = null
}

variable "role_permissions_boundary" {
  description = "ARN of the managed policy that bounds the permissions of the function's IAM role."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags applied to every resource of this module."
  type        = map(string)
  default     = {}
}
