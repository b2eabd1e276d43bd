variable "create" {
  description = "Whether to create the schema migrations pipeline."
  type        = bool
  default     = true
}

variable "name" {
  description = "Name of the pipeline: names the function, topics, DLQ and (unless `bucket_name` is set) the bucket."
  type        = string

  validation {
    condition     = var.name == null || can(regex("^[a-z0-9][a-z0-9-]{1,44}[a-z0-9]$", var.name))
    error_message = "name must be 3-46 characters of lower-case letters, digits and hyphens."
  }
}

variable "bucket_name" {
  description = "Name of the migrations bucket. Null uses `name`."
  type        = string
  default     = null
}

variable "bucket_force_destroy" {
  description = "Allow destroying the migrations bucket while it holds objects."
  type        = bool
  default     = false
}

variable "bucket_kms_key_arn" {
  description = "KMS key for SSE-KMS on the migrations bucket (the function gets kms:Decrypt on it, through S3 only). Null uses SSE-S3."
  type        = string
  default     = null
}

variable "bucket_kms_encryption" {
  description = "Whether the migrations bucket uses SSE-KMS with `bucket_kms_key_arn`: set it when the key is created in the same plan (the root module does); null: SSE-KMS exactly when `bucket_kms_key_arn` is set."
  type        = bool
  default     = null
}

variable "bucket_access_logs" {
  description = "S3 server access logs of the migrations bucket: { bucket, prefix } (see modules/bucket's access_logs); null turns them off."
  type = object({
    bucket = string
    prefix = optional(string)
  })
  default = null
}

variable "notifications" {
  description = "How the bucket's events reach the function: `sns` (S3 -> SNS -> Lambda) or `eventbridge` (S3 -> EventBridge rule on the bucket and `.sql` keys -> Lambda). See modules/event_queue."
  type        = string
  default     = "sns"
  nullable    = false

  validation {
    condition     = contains(["sns", "eventbridge"], var.notifications)
    error_message = "notifications must be \"sns\" or \"eventbridge\"."
  }
}

variable "allowed_databases" {
  description = "Databases migrations may target (the first key component). Empty allows any valid database name. `postgres` runs on the root database and may create the others."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for d in var.allowed_databases : can(regex("^[a-z_][a-z0-9_]{0,62}$", d))])
    error_message = "allowed_databases must be lower-case database identifiers (letters, digits, underscores; at most 63 characters)."
  }
}

variable "kms_key_arn" {
  description = "Customer managed KMS key encrypting the notification and results topics (its policy must allow s3.amazonaws.com)."
  type        = string
}

variable "package" {
  description = "The schema_migrations entry of build/manifest.json with `filename` resolved: { filename, handler, source_code_hash }."
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
  description = "Memory of the function in MB."
  type        = number
  default     = 512
}

variable "timeout" {
  description = "Timeout of the function in seconds; also LOCK_STALE_SECONDS, the age after which yoyo's lock is considered stale."
  type        = number
  default     = 300

  validation {
    condition     = var.timeout >= 30 && var.timeout <= 900
    error_message = "timeout must be between 30 and 900 seconds."
  }
}

variable "reserved_concurrency" {
  description = "Most concurrent runs (and so database connections). Uploads of many files at once queue up as throttled asynchronous invocations, which Lambda retries; runs on one database serialise on an advisory lock anyway."
  type        = number
  default     = 2

  validation {
    condition     = var.reserved_concurrency >= 1
    error_message = "reserved_concurrency must be at least 1."
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
  description = "PostgreSQL server the migrations run against, as the lambda_function module's `databases` entry DB: host (the instance, never a proxy: migrations hold session-level advisory locks), port, the name of a database that exists (connections start there), the master secret, the KMS keys it is encrypted with (empty for aws/secretsmanager), sslmode."
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
