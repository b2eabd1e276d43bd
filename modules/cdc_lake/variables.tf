variable "create" {
  description = "Whether to create the CDC data lake pipeline (buckets, DMS, events, function, catalog)."
  type        = bool
  default     = true
}

variable "name" {
  description = "Name of the pipeline: names the function, queue, topic, DMS replication, Glue database and (unless given) the buckets."
  type        = string

  validation {
    condition     = var.name == null || can(regex("^[a-z][a-z0-9-]{1,38}[a-z0-9]$", var.name))
    error_message = "name must be 3-40 characters of lower-case letters, digits and hyphens, starting with a letter (it names the DMS replication too)."
  }
}

################################################################################
# Buckets
################################################################################

variable "staging_bucket_name" {
  description = "Name of the staging bucket DMS writes to. Null uses `<name>-staging`."
  type        = string
  default     = null
}

variable "lake_bucket_name" {
  description = "Name of the lake bucket. Null uses `<name>-lake`."
  type        = string
  default     = null
}

variable "bucket_force_destroy" {
  description = "Allow destroying the buckets while they hold objects."
  type        = bool
  default     = false
}

variable "staging_kms_key_arn" {
  description = "Customer managed KMS key DMS encrypts every staging object with (SSE-KMS, set by the DMS endpoint); the function decrypts with it through S3."
  type        = string
}

variable "bucket_kms_encryption" {
  description = "Whether both buckets use SSE-KMS with `bucket_kms_key_arn`. Set it when the key is created in the same plan (an ARN not known yet cannot tell); null: SSE-KMS exactly when `bucket_kms_key_arn` is set."
  type        = bool
  default     = null
}

variable "bucket_access_logs" {
  description = "S3 server access logs of both buckets: { bucket, prefix } (see modules/bucket's access_logs; a null prefix logs under `<bucket name>/`); null turns them off."
  type = object({
    bucket = string
    prefix = optional(string)
  })
  default = null
}

variable "bucket_kms_key_arn" {
  description = "Default encryption of both buckets: SSE-KMS with this key, or SSE-S3 when null (DMS's objects use `staging_kms_key_arn` either way)."
  type        = string
  default     = null
}

variable "staging_expiration_days" {
  description = "Days after which staging objects (and their old versions) expire: the lake holds the copies. Null keeps them."
  type        = number
  default     = null

  validation {
    condition     = var.staging_expiration_days == null || try(var.staging_expiration_days >= 1, false)
    error_message = "staging_expiration_days must be at least 1, or null."
  }
}

variable "lake_lifecycle_rules" {
  description = "Lifecycle rules of the lake bucket (see modules/bucket)."
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
  default  = []
  nullable = false
}

################################################################################
# What DMS replicates and how it writes it
################################################################################

variable "source_database" {
  description = "The source database DMS reads, as modules/dms takes it (`engine`, `database_name`, `secret_arn`, `port`, `cidr_blocks`, `security_group_ids`, `add_ingress_rules`, `ssl_mode`, ...). A null `secret_arn` creates an empty secret (encrypted with `kms_key_arn`) to fill out of band with JSON {\"username\", \"password\", \"host\", \"port\"}."
  type = object({
    engine                      = string
    database_name               = string
    secret_arn                  = optional(string)
    secret_kms_key_arn          = optional(string)
    port                        = optional(number)
    cidr_blocks                 = optional(list(string), [])
    security_group_ids          = optional(list(string), [])
    add_ingress_rules           = optional(bool, false)
    ssl_mode                    = optional(string, "require")
    certificate_arn             = optional(string)
    extra_connection_attributes = optional(string)
  })
  default = null
}

variable "secret_recovery_window_in_days" {
  description = "Recovery window of the source secret this module creates."
  type        = number
  default     = 30
}

variable "tables" {
  description = <<-EOT
    The replicated tables, in order: each entry is a DMS selection (`schema`, `table` with % as a
    wildcard, `action` include or exclude, `exclude_columns`, `filters`; see modules/dms). An
    include of one named table may also be applied to PostgreSQL (`apply_to` "schema.table",
    `key_columns`, default its primary key) and described in the Glue catalog (`columns`: the
    source table's columns in order, each `name` and Athena `type`, default string).
  EOT
  type = list(object({
    schema          = string
    table           = optional(string, "%")
    action          = optional(string, "include")
    exclude_columns = optional(list(string), [])
    filters = optional(list(object({
      column   = string
      operator = string
      value    = optional(string)
      start    = optional(string)
      end      = optional(string)
    })), [])
    apply_to    = optional(string)
    key_columns = optional(list(string), [])
    columns = optional(list(object({
      name = string
      type = optional(string, "string")
    })), [])
  }))
  default  = []
  nullable = false

  validation {
    condition = alltrue([for t in var.tables : (t.apply_to == null && length(t.columns) == 0) || (
      t.action == "include" && !strcontains(t.schema, "%") && !strcontains(t.table, "%")
    )])
    error_message = "tables: apply_to and columns describe one named table: only an include entry without % in its schema and table may set them."
  }

  validation {
    condition     = alltrue([for t in var.tables : t.apply_to == null || can(regex("^[A-Za-z_][A-Za-z0-9_]{0,62}\\.[A-Za-z_][A-Za-z0-9_]{0,62}$", t.apply_to))])
    error_message = "tables: apply_to must be \"schema.table\" of PostgreSQL identifiers (letters, digits, underscores)."
  }

  validation {
    condition     = alltrue([for t in var.tables : t.apply_to != null || length(t.key_columns) == 0])
    error_message = "tables: key_columns applies to an entry with apply_to only."
  }

  validation {
    condition     = alltrue(flatten([for t in var.tables : [for c in concat(t.key_columns, [for col in t.columns : col.name]) : can(regex("^[A-Za-z_][A-Za-z0-9_$]{0,127}$", c))]]))
    error_message = "tables: key_columns and column names must be identifiers (letters, digits, _ and $)."
  }

  validation {
    condition     = alltrue(flatten([for t in var.tables : [for col in t.columns : can(regex("^(string|boolean|tinyint|smallint|int|integer|bigint|float|double|date|timestamp|decimal\\([0-9]+, ?[0-9]+\\)|varchar\\([0-9]+\\)|char\\([0-9]+\\))$", col.type))]]))
    error_message = "tables: a column type must be an Athena type: string, boolean, tinyint, smallint, int, bigint, float, double, date, timestamp, decimal(p,s), varchar(n) or char(n)."
  }
}

variable "replication_instance" {
  description = "The replication instance, as modules/dms takes it: class, allocated_storage (GiB), multi_az, engine_version, preferred_maintenance_window, apply_immediately."
  type = object({
    class                        = optional(string, "dms.t3.medium")
    allocated_storage            = optional(number, 50)
    multi_az                     = optional(bool, false)
    engine_version               = optional(string)
    preferred_maintenance_window = optional(string)
    apply_immediately            = optional(bool, false)
  })
  default  = {}
  nullable = false
}

variable "serverless" {
  description = "DMS Serverless capacity instead of a replication instance, as modules/dms takes it (null: a replication instance)."
  type = object({
    max_capacity_units           = number
    min_capacity_units           = optional(number)
    multi_az                     = optional(bool, false)
    preferred_maintenance_window = optional(string)
  })
  default = null
}

variable "start_replication_task" {
  description = "Start the replication when Terraform creates it (false: start it once the source secret holds working credentials)."
  type        = bool
  default     = false
}

variable "create_dms_iam_roles" {
  description = "Create the account-wide DMS roles (one deployment per account; see modules/dms)."
  type        = bool
  default     = false
}

variable "verify_dms_iam_roles" {
  description = "Check at plan time that the account-wide DMS roles exist when they are not created here (false only where the plan cannot call IAM)."
  type        = bool
  default     = true
}

variable "staging_folder" {
  description = "Folder of the staging bucket DMS writes under (<folder>/<schema>/<table>/<file>)."
  type        = string
  default     = "dms"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", var.staging_folder))
    error_message = "staging_folder must be a key prefix of letters, digits, _ . - separated by single slashes, without leading or trailing slash."
  }
}

variable "data_format" {
  description = "What DMS writes: csv or parquet (the apply to PostgreSQL and commit-time partitioning read CSV only)."
  type        = string
  default     = "csv"

  validation {
    condition     = contains(["csv", "parquet"], var.data_format)
    error_message = "data_format must be csv or parquet."
  }
}

variable "compression_type" {
  description = "Compression of the files DMS writes: NONE or GZIP."
  type        = string
  default     = "NONE"
}

variable "timestamp_column_name" {
  description = "Column DMS fills with each row's commit time (the task's start time for full-load rows)."
  type        = string
  default     = "dms_commit_ts"
}

variable "change_sequence_column_name" {
  description = "Column DMS fills with the change sequence ($AR_H_CHANGE_SEQ), which orders changes of one commit. Null adds none."
  type        = string
  default     = null
}

variable "cdc_max_batch_interval" {
  description = "Seconds after which DMS writes a CDC file."
  type        = number
  default     = 60
}

variable "cdc_min_file_size" {
  description = "KB after which DMS writes a CDC file."
  type        = number
  default     = 32000
}

################################################################################
# The partitioner and the apply
################################################################################

variable "lake_prefix" {
  description = "Key prefix of the lake: files land under <prefix>/<schema>/<table>/year=/month=/day=/hour=/. Empty for the bucket's root."
  type        = string
  default     = "cdc"

  validation {
    condition     = var.lake_prefix == "" || can(regex("^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", var.lake_prefix))
    error_message = "lake_prefix must be empty or a key prefix without leading or trailing slash."
  }
}

variable "partition_by" {
  description = "What the hour partition of a file is: arrival (the notification's time; one S3 call per file) or commit (the commit time of its first row; one more ranged read)."
  type        = string
  default     = "arrival"

  validation {
    condition     = contains(["arrival", "commit"], var.partition_by)
    error_message = "partition_by must be arrival or commit."
  }
}

variable "count_rows" {
  description = "Count each CSV file's rows by operation and its commit time range into the ledger (one streaming read per file)."
  type        = bool
  default     = true
}

variable "delete_staged" {
  description = "Delete each staging object once the lake holds a copy of its size (after the ledger commit)."
  type        = bool
  default     = false
}

variable "multipart_threshold_bytes" {
  description = "Size from which a file is copied in parts (UploadPartCopy); CopyObject takes at most 5 GiB."
  type        = number
  default     = 5368709120

  validation {
    condition     = var.multipart_threshold_bytes >= 5242880 && var.multipart_threshold_bytes <= 5368709120
    error_message = "multipart_threshold_bytes must be between 5 MiB (S3's smallest part) and 5 GiB (CopyObject's limit)."
  }
}

variable "state_schema" {
  description = "Schema of the ledgers and the tombstones (STATE_SCHEMA)."
  type        = string
  default     = "pipeline_state"
}

variable "package" {
  description = "The cdc_lake entry of build/manifest.json with `filename` resolved: { filename, handler, source_code_hash }."
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
  default     = 1024
}

variable "timeout" {
  description = "Timeout of the function in seconds."
  type        = number
  default     = 300

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
  description = "The unified PostgreSQL database (ledgers, and the tables changes are applied to), as the lambda_function module's `databases` entry DB."
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
}

variable "secret_ttl_seconds" {
  description = "How long the function caches the database secret; null keeps the function's default (300)."
  type        = number
  default     = null
}

variable "batch_size" {
  description = "Notifications per invocation."
  type        = number
  default     = 10
}

variable "maximum_batching_window_in_seconds" {
  description = "How long the queue gathers a batch."
  type        = number
  default     = 0
}

variable "maximum_concurrency" {
  description = "Most concurrent invocations (= database connections)."
  type        = number
  default     = 5
}

variable "max_receive_count" {
  description = "Receives after which a message moves to the dead-letter queue."
  type        = number
  default     = 5
}

################################################################################
# Network, encryption, catalog, alarms, roles
################################################################################

variable "vpc_id" {
  description = "VPC of the function and the DMS replication."
  type        = string
  default     = null
}

variable "vpc_subnet_ids" {
  description = "Private subnets of the function and the DMS replication."
  type        = list(string)
  default     = []
}

variable "vpc_security_group_ids" {
  description = "Security groups of the function."
  type        = list(string)
  default     = []
}

variable "https_egress_prefix_list_ids" {
  description = "Prefix lists DMS may reach on 443 (the S3 gateway endpoint's)."
  type        = list(string)
  default     = []
}

variable "https_egress_security_group_ids" {
  description = "Security groups DMS may reach on 443 (the interface endpoints')."
  type        = list(string)
  default     = []
}

variable "kms_key_arn" {
  description = "Customer managed KMS key of the notification topic, the DMS instance and endpoints, and the source secret this module creates."
  type        = string
}

variable "create_catalog" {
  description = "Create a Glue database and one table per entry of `tables` with `columns`, partition-projected on year/month/day/hour, so Athena reads new partitions with no crawler."
  type        = bool
  default     = true
}

variable "catalog_database_name" {
  description = "Name of the Glue database. Null uses the pipeline's name with underscores."
  type        = string
  default     = null
}

variable "catalog_years" {
  description = "First and last year the catalog projects partitions for ([first, last])."
  type        = list(number)
  default     = [2024, 2040]

  validation {
    condition     = length(var.catalog_years) == 2 && try(var.catalog_years[0] <= var.catalog_years[1], false)
    error_message = "catalog_years must be [first, last] with first <= last."
  }
}

variable "create_alarms" {
  description = "Create the function's alarms and the DMS event subscriptions (these need `alarm_topic_arn`)."
  type        = bool
  default     = true
}

variable "alarm_topic_arn" {
  description = "SNS topic of the alarms and the DMS events (its policy and key must let dms.amazonaws.com publish)."
  type        = string
  default     = null
}

variable "role_path" {
  description = "Path of the roles this module creates (not the account-wide DMS roles)."
  type        = string
  default     = null
}

variable "role_permissions_boundary" {
  description = "Permissions boundary of every role this module creates."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags applied to every resource of this module."
  type        = map(string)
  default     = {}
}
