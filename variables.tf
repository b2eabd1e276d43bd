################################################################################
# Naming, tags, packaging, IAM
################################################################################

variable "create" {
  description = "Create anything at all. False plans nothing, whatever the pipeline toggles say (terraform-aws-modules' `create`)."
  type        = bool
  default     = true
}

variable "name" {
  description = "Name of the deployment; every resource name starts with `<name>-<environment>`."
  type        = string
  default     = "pipelines"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name))
    error_message = "name must be 3-20 characters of lower-case letters, digits and hyphens, starting with a letter (it prefixes bucket, role and function names)."
  }
}

variable "environment" {
  description = "Environment name (dev, prod, ...); part of every resource name and the Environment tag."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.environment))
    error_message = "environment must be 2-10 lower-case letters and digits, starting with a letter."
  }
}

variable "tags" {
  description = "Tags of every taggable resource. The module adds Environment, ManagedBy and Project (and Name where the console shows one); a key set here wins over the module's value."
  type        = map(string)
  default     = {}
}

variable "iam_role_path" {
  description = "Path of every IAM role the module creates (function, scheduler, flow logs, RDS monitoring and proxy roles). Null uses \"/\"."
  type        = string
  default     = null

  validation {
    condition     = var.iam_role_path == null || can(regex("^/([!-~]+/)?$", var.iam_role_path))
    error_message = "iam_role_path must start and end with \"/\", e.g. \"/data-pipelines/\"."
  }
}

variable "iam_role_permissions_boundary" {
  description = "ARN of the managed policy that bounds the permissions of every IAM role the module creates."
  type        = string
  default     = null

  validation {
    condition     = var.iam_role_permissions_boundary == null || can(regex("^arn:aws[a-z-]*:iam::([0-9]{12}|aws):policy/.+$", var.iam_role_permissions_boundary))
    error_message = "iam_role_permissions_boundary must be an IAM policy ARN (arn:aws:iam::<account>:policy/<name>)."
  }
}

variable "secret_ttl_seconds" {
  description = "SECRET_TTL_SECONDS of every function: how long it caches a secret it read (it re-reads one after a failed login too). Lower it to pick up a rotated password sooner; null keeps the functions' default, 300."
  type        = number
  default     = null

  validation {
    condition     = var.secret_ttl_seconds == null || try(var.secret_ttl_seconds >= 0 && var.secret_ttl_seconds <= 86400, false)
    error_message = "secret_ttl_seconds must be between 0 and 86400."
  }
}

variable "bucket_name_suffix" {
  description = "Appended to every bucket name (`<name>-<environment>-<purpose><suffix>`) to make it globally unique, e.g. \"-123456789012\"."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[a-z0-9-]{0,20}$", var.bucket_name_suffix))
    error_message = "bucket_name_suffix must be at most 20 lower-case letters, digits and hyphens."
  }
}

variable "build_dir" {
  description = "Directory holding manifest.json and the zips of `make package`. Null uses build/ under this module."
  type        = string
  default     = null
}

variable "lambda_runtime" {
  description = "Python runtime of every function; must equal the `runtime` the packages in build_dir were built for (`make package RUNTIME=...`)."
  type        = string
  default     = "python3.12"

  validation {
    condition     = can(regex("^python3\\.(1[0-9])$", var.lambda_runtime))
    error_message = "lambda_runtime must be a Python Lambda runtime such as python3.12."
  }
}

variable "lambda_architecture" {
  description = "Architecture of every function (x86_64 or arm64); must equal the `architecture` of the packages (`make package ARCH=...`)."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.lambda_architecture)
    error_message = "lambda_architecture must be x86_64 or arm64."
  }
}

variable "log_level" {
  description = "LOG_LEVEL of every function."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "log_retention_days" {
  description = "Retention of every log group (functions, flow logs)."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, ...)."
  }
}

################################################################################
# Pipelines
################################################################################

variable "enable_file_loader" {
  description = "Deploy the file loader: S3 -> SNS or EventBridge -> SQS -> Lambda -> PostgreSQL (COPY)."
  type        = bool
  default     = false
}

variable "enable_table_sync" {
  description = "Deploy the table sync: hourly incremental sync from SQL Server into PostgreSQL."
  type        = bool
  default     = false
}

variable "enable_schema_migrations" {
  description = "Deploy the schema migrations: S3 -> SNS or EventBridge -> Lambda applying yoyo migrations."
  type        = bool
  default     = false
}

variable "enable_backfill" {
  description = "Deploy the backfill: chunked, resumable, self-pacing data migrations inside MySQL/MariaDB or PostgreSQL, run every N minutes by EventBridge Scheduler."
  type        = bool
  default     = false
}

variable "enable_dynamodb_migration" {
  description = "Deploy the DynamoDB migration: copy a table into a reshaped one, keep it in sync from the source's stream, verify both match."
  type        = bool
  default     = false
}

variable "enable_cdc_lake" {
  description = "Deploy the CDC data lake: DMS replicates a database into a staging bucket, a Lambda partitions each file into the lake (S3 -> SNS -> SQS), optionally applies it to PostgreSQL; a Glue catalog makes it queryable."
  type        = bool
  default     = false
}

variable "file_loader" {
  description = "File loader settings: `routes` (see modules/file_loader), `notifications` (`sns`, or `eventbridge`: S3 -> EventBridge rule -> the queue, see modules/event_queue), function size, `maximum_concurrency` (= most connections it opens; size it against max_connections), and the database user it connects as: `database_secret_arn`, the complete ARN (with its 6-character suffix) of an existing Secrets Manager secret with JSON {\"username\", \"password\"} of a least-privilege PostgreSQL role you created (e.g. in a migration), plus `database_secret_kms_key_arn` when that secret is encrypted with a customer managed key. The function may read only that secret (and decrypt with only that key), and an RDS Proxy registers it. Null uses the RDS-managed master secret."
  type = object({
    routes = optional(list(object({
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
    })), [])
    notifications                      = optional(string, "sns")
    memory_size                        = optional(number, 1024)
    timeout                            = optional(number, 900)
    batch_size                         = optional(number, 1)
    maximum_batching_window_in_seconds = optional(number, 0)
    maximum_concurrency                = optional(number, 5)
    max_receive_count                  = optional(number, 5)
    # Least-privilege database user (null = the RDS-managed master secret).
    database_secret_arn         = optional(string)
    database_secret_kms_key_arn = optional(string)
    lifecycle_rules = optional(list(object({
      id                                 = string
      enabled                            = optional(bool, true)
      prefix                             = optional(string, "")
      expiration_days                    = optional(number)
      noncurrent_version_expiration_days = optional(number)
      transitions = optional(list(object({
        days          = number
        storage_class = string
      })), [])
    })), [])
  })
  default = {}

  validation {
    condition     = contains(["sns", "eventbridge"], var.file_loader.notifications)
    error_message = "file_loader.notifications must be \"sns\" or \"eventbridge\"."
  }

  validation {
    condition     = var.file_loader.database_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$", var.file_loader.database_secret_arn))
    error_message = "file_loader.database_secret_arn must be null (the master secret) or the complete ARN of an existing Secrets Manager secret, with the 6-character suffix Secrets Manager appends to the name (arn:aws:secretsmanager:<region>:<account>:secret:<name>-AbCdEf): IAM grants match the complete ARN only."
  }

  validation {
    condition     = var.file_loader.database_secret_kms_key_arn == null || (var.file_loader.database_secret_arn != null && can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.file_loader.database_secret_kms_key_arn)))
    error_message = "file_loader.database_secret_kms_key_arn must be null or a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>, not an alias), and is only used together with file_loader.database_secret_arn."
  }
}

variable "table_sync" {
  description = "Table sync settings: `tables` (see modules/table_sync), the `source` database, an existing `source_secret_arn` (null creates an empty secret to fill out of band), schedule, function size, and the user it writes to the target as: `database_secret_arn`, the complete ARN (with its 6-character suffix) of an existing Secrets Manager secret with JSON {\"username\", \"password\"} of a least-privilege PostgreSQL role you created (e.g. in a migration), plus `database_secret_kms_key_arn` when that secret is encrypted with a customer managed key. The function may read only its two secrets (and decrypt with only their keys), and an RDS Proxy registers the target one. Null uses the RDS-managed master secret."
  type = object({
    tables = optional(list(object({
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
    })), [])
    source = optional(object({
      engine      = optional(string, "sqlserver")
      host        = string
      port        = optional(number, 1433)
      name        = string
      sslmode     = optional(string, "require")
      odbc_driver = optional(string)
      cidr_blocks = list(string)
    }))
    source_secret_arn         = optional(string)
    source_secret_kms_key_arn = optional(string)
    # Least-privilege database user in the target (null = the RDS-managed master secret).
    database_secret_arn         = optional(string)
    database_secret_kms_key_arn = optional(string)
    schedule_expression         = optional(string, "rate(1 hour)")
    schedule_timezone           = optional(string, "UTC")
    schedule_enabled            = optional(bool, true)
    memory_size                 = optional(number, 1024)
    timeout                     = optional(number, 900)
  })
  default = {}

  validation {
    condition     = var.table_sync.database_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$", var.table_sync.database_secret_arn))
    error_message = "table_sync.database_secret_arn must be null (the master secret) or the complete ARN of an existing Secrets Manager secret, with the 6-character suffix Secrets Manager appends to the name (arn:aws:secretsmanager:<region>:<account>:secret:<name>-AbCdEf): IAM grants match the complete ARN only."
  }

  validation {
    condition     = var.table_sync.database_secret_kms_key_arn == null || (var.table_sync.database_secret_arn != null && can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.table_sync.database_secret_kms_key_arn)))
    error_message = "table_sync.database_secret_kms_key_arn must be null or a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>, not an alias), and is only used together with table_sync.database_secret_arn."
  }
}

variable "schema_migrations" {
  description = "Schema migrations settings: `allowed_databases` (empty = any valid name), `notifications` (`sns`, or `eventbridge`: S3 -> EventBridge rule -> the function, see modules/event_queue), `reserved_concurrency` (most concurrent runs = connections) and function size. The timeout is also the age after which yoyo's lock is stale. The migrations always connect as the master user (they create databases and the pipelines' roles)."
  type = object({
    allowed_databases    = optional(list(string), [])
    notifications        = optional(string, "sns")
    reserved_concurrency = optional(number, 2)
    memory_size          = optional(number, 512)
    timeout              = optional(number, 300)
  })
  default = {}

  validation {
    condition     = contains(["sns", "eventbridge"], var.schema_migrations.notifications)
    error_message = "schema_migrations.notifications must be \"sns\" or \"eventbridge\"."
  }
}

variable "backfill" {
  description = "Backfill settings: `jobs` (see modules/backfill and docs/backfill.md), the database they run in: `source` (a MySQL/MariaDB or PostgreSQL database: engine, host, port, name, sslmode, cidr_blocks, replica_hosts) with an existing `source_secret_arn` (null creates an empty secret to fill out of band) and its `source_secret_kms_key_arn`, or, when `source` is null, the unified PostgreSQL database (straight to the instance: the jobs hold session advisory locks) as the master user or the least-privilege user of `database_secret_arn` (complete ARN) and `database_secret_kms_key_arn`; `state_schema` of the checkpoint table; the schedule every `schedule_rate_minutes`, disabled by the function once every job is finished (`disable_schedule_when_done`); `stalled_alarm_minutes` without progress before a job's alarm; function size."
  type = object({
    jobs = optional(list(object({
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
    })), [])
    source = optional(object({
      engine        = string
      host          = string
      port          = optional(number)
      name          = string
      sslmode       = optional(string, "require")
      cidr_blocks   = list(string)
      replica_hosts = optional(list(string), [])
    }))
    source_secret_arn         = optional(string)
    source_secret_kms_key_arn = optional(string)
    # Least-privilege user in the unified database when `source` is null (null = the master secret).
    database_secret_arn         = optional(string)
    database_secret_kms_key_arn = optional(string)
    state_schema                = optional(string)
    schedule_rate_minutes       = optional(number, 15)
    schedule_enabled            = optional(bool, true)
    disable_schedule_when_done  = optional(bool, true)
    stalled_alarm_minutes       = optional(number, 60)
    memory_size                 = optional(number, 256)
    timeout                     = optional(number, 840)
  })
  default = {}

  validation {
    condition     = var.backfill.database_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$", var.backfill.database_secret_arn))
    error_message = "backfill.database_secret_arn must be null (the master secret) or the complete ARN of an existing Secrets Manager secret, with the 6-character suffix Secrets Manager appends to the name (arn:aws:secretsmanager:<region>:<account>:secret:<name>-AbCdEf): IAM grants match the complete ARN only."
  }

  validation {
    condition     = var.backfill.database_secret_kms_key_arn == null || (var.backfill.database_secret_arn != null && can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.backfill.database_secret_kms_key_arn)))
    error_message = "backfill.database_secret_kms_key_arn must be null or a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>, not an alias), and is only used together with backfill.database_secret_arn."
  }

  validation {
    condition     = var.backfill.source == null || (var.backfill.database_secret_arn == null && var.backfill.database_secret_kms_key_arn == null)
    error_message = "backfill.database_secret_arn names a user of the unified database, which the jobs use only when backfill.source is null; for backfill.source set source_secret_arn."
  }
}

variable "dynamodb_migration" {
  description = <<-EOT
    DynamoDB migration settings (modules/dynamodb_migration, docs/dynamodb_migration.md): the source
    table (`source_table_name`, the ARN of its NEW_AND_OLD_IMAGES stream `source_stream_arn`, its
    customer managed key `source_kms_key_arn` if any), its `key`, the `target` table (created, or
    an existing one with `create = false`), the declarative `transform` ({ rename, add, set, drop }),
    and the `copy`, `sync` and `verify` functions. Required when enabled: source_table_name,
    source_stream_arn, key and target. A setting left null takes the module's default.
  EOT
  type = object({
    source_table_name  = optional(string)
    source_stream_arn  = optional(string)
    source_kms_key_arn = optional(string)
    key = optional(object({
      partition_key      = string
      partition_key_type = optional(string)
      sort_key           = optional(string)
      sort_key_type      = optional(string)
    }))
    target = optional(object({
      name                = string
      create              = optional(bool)
      billing_mode        = optional(string)
      read_capacity       = optional(number)
      write_capacity      = optional(number)
      kms_key_arn         = optional(string)
      deletion_protection = optional(bool)
      global_secondary_indexes = optional(list(object({
        name               = string
        hash_key           = string
        hash_key_type      = optional(string)
        range_key          = optional(string)
        range_key_type     = optional(string)
        projection_type    = optional(string)
        non_key_attributes = optional(list(string))
        read_capacity      = optional(number)
        write_capacity     = optional(number)
      })))
    }))
    # Any JSON-like object: its constants keep their types (a number stays a number).
    transform = optional(any)
    copy = optional(object({
      total_segments   = optional(number)
      concurrency      = optional(number)
      page_size        = optional(number)
      write_rate_limit = optional(number)
      memory_size      = optional(number)
      timeout          = optional(number)
      schedule         = optional(string)
      schedule_enabled = optional(bool)
    }))
    sync = optional(object({
      batch_size                    = optional(number)
      maximum_batching_window       = optional(number)
      maximum_retry_attempts        = optional(number)
      maximum_record_age_in_seconds = optional(number)
      parallelization_factor        = optional(number)
      memory_size                   = optional(number)
      timeout                       = optional(number)
      alarm_iterator_age_ms         = optional(number)
    }))
    verify = optional(object({
      memory_size = optional(number)
      timeout     = optional(number)
      examples    = optional(number)
    }))
    touched_ttl_days                = optional(number)
    state_table_deletion_protection = optional(bool)
  })
  default  = {}
  nullable = false
}

variable "cdc_lake" {
  description = <<-EOT
    CDC data lake settings (docs/cdc_lake.md). `source`: the database DMS replicates (`engine`
    sqlserver, mysql, mariadb or postgres; `database_name`; `secret_arn` of a secret with JSON
    {"username", "password", "host", "port"}, null creates an empty one to fill out of band;
    where it is for the replication's egress: `cidr_blocks` and/or `security_group_ids`, with
    `add_ingress_rules` to admit DMS in those groups; `ssl_mode` require or verify-full with
    `certificate_arn`). `tables`: what to replicate, in order (DMS selection: `schema`, `table`
    with % wildcards, `action`, `exclude_columns`, `filters`); a named table may be applied to
    PostgreSQL (`apply_to` = "schema.table", `key_columns`) and described in the Glue catalog
    (`columns`). The replication: `replication_instance` or `serverless`, `start_replication_task`;
    what DMS writes: `data_format`, `compression_type`, `timestamp_column_name`,
    `change_sequence_column_name`, `cdc_max_batch_interval`, `cdc_min_file_size`, under
    `staging_folder`; the lake: `lake_prefix`, `partition_by` (arrival or commit), `count_rows`,
    `delete_staged`, `staging_expiration_days`, `lake_lifecycle_rules`; the catalog:
    `create_catalog`, `catalog_database_name`, `catalog_years`; the function: size, batching,
    concurrency; and the database user it applies changes as (`database_secret_arn`, as for the
    file loader; null: the master secret).
  EOT
  type = object({
    source = optional(object({
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
    }))
    tables = optional(list(object({
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
    })), [])
    replication_instance = optional(object({
      class                        = optional(string, "dms.t3.medium")
      allocated_storage            = optional(number, 50)
      multi_az                     = optional(bool, false)
      engine_version               = optional(string)
      preferred_maintenance_window = optional(string)
      apply_immediately            = optional(bool, false)
    }), {})
    serverless = optional(object({
      max_capacity_units           = number
      min_capacity_units           = optional(number)
      multi_az                     = optional(bool, false)
      preferred_maintenance_window = optional(string)
    }))
    start_replication_task      = optional(bool, false)
    data_format                 = optional(string, "csv")
    compression_type            = optional(string, "NONE")
    timestamp_column_name       = optional(string, "dms_commit_ts")
    change_sequence_column_name = optional(string)
    cdc_max_batch_interval      = optional(number, 60)
    cdc_min_file_size           = optional(number, 32000)
    staging_folder              = optional(string, "dms")
    lake_prefix                 = optional(string, "cdc")
    partition_by                = optional(string, "arrival")
    count_rows                  = optional(bool, true)
    delete_staged               = optional(bool, false)
    staging_expiration_days     = optional(number)
    lake_lifecycle_rules = optional(list(object({
      id                                 = string
      enabled                            = optional(bool, true)
      prefix                             = optional(string, "")
      expiration_days                    = optional(number)
      noncurrent_version_expiration_days = optional(number)
      transitions = optional(list(object({
        days          = number
        storage_class = string
      })), [])
    })), [])
    create_catalog        = optional(bool, true)
    catalog_database_name = optional(string)
    catalog_years         = optional(list(number), [2024, 2040])
    memory_size           = optional(number, 1024)
    timeout               = optional(number, 300)
    batch_size            = optional(number, 10)
    maximum_concurrency   = optional(number, 5)
    max_receive_count     = optional(number, 5)
    # Least-privilege database user (null = the RDS-managed master secret).
    database_secret_arn         = optional(string)
    database_secret_kms_key_arn = optional(string)
  })
  default = {}

  validation {
    condition = alltrue([for t in var.cdc_lake.tables : (
      can(regex("^[A-Za-z_%][A-Za-z0-9_$%]{0,127}$", t.schema)) && can(regex("^[A-Za-z_%][A-Za-z0-9_$%]{0,127}$", t.table))
    )])
    error_message = "cdc_lake.tables: every schema and table must be a name of letters, digits, _ and $ (% as a wildcard), at most 128 characters."
  }

  validation {
    condition     = alltrue([for t in var.cdc_lake.tables : contains(["include", "exclude"], t.action)])
    error_message = "cdc_lake.tables: action must be include or exclude."
  }

  validation {
    condition     = length(var.cdc_lake.tables) == 0 || anytrue([for t in var.cdc_lake.tables : t.action == "include"])
    error_message = "cdc_lake.tables must include at least one table (an entry with action = \"include\"): exclude entries alone replicate nothing."
  }

  validation {
    condition     = length(distinct([for t in var.cdc_lake.tables : lower("${t.schema}.${t.table}")])) == length(var.cdc_lake.tables)
    error_message = "cdc_lake.tables: a schema and table appear twice; give each selection once."
  }

  validation {
    condition     = alltrue([for t in var.cdc_lake.tables : t.action == "include" || (length(t.exclude_columns) == 0 && length(t.filters) == 0 && t.apply_to == null && length(t.columns) == 0)])
    error_message = "cdc_lake.tables: exclude_columns, filters, apply_to and columns apply to include entries only."
  }

  validation {
    condition = alltrue([for t in var.cdc_lake.tables : (t.apply_to == null && length(t.columns) == 0) || (
      !strcontains(t.schema, "%") && !strcontains(t.table, "%")
    )])
    error_message = "cdc_lake.tables: apply_to and columns describe one named table: not an entry with % in its schema or table."
  }

  validation {
    condition = alltrue([for t in var.cdc_lake.tables : alltrue([for f in t.filters : (
      contains(["between", "notbetween"], f.operator) ? (f.start != null && f.end != null && f.value == null) : (
        contains(["null", "notnull"], f.operator) ? (f.value == null && f.start == null && f.end == null) : (
          contains(["eq", "noteq", "gte", "ste"], f.operator) && f.value != null && f.start == null && f.end == null
        )
      )
    )])])
    error_message = "cdc_lake.tables: a filter operator must be eq, noteq, gte or ste with a value, between or notbetween with start and end, or null or notnull alone."
  }

  validation {
    condition     = alltrue([for t in var.cdc_lake.tables : t.apply_to == null || can(regex("^[A-Za-z_][A-Za-z0-9_]{0,62}\\.[A-Za-z_][A-Za-z0-9_]{0,62}$", t.apply_to))])
    error_message = "cdc_lake.tables: apply_to must be \"schema.table\" in PostgreSQL (identifiers of letters, digits and underscores)."
  }

  validation {
    condition     = var.cdc_lake.source == null ? true : contains(["sqlserver", "mysql", "mariadb", "postgres"], var.cdc_lake.source.engine)
    error_message = "cdc_lake.source.engine must be sqlserver, mysql, mariadb or postgres (DMS engine names)."
  }

  validation {
    condition     = contains(["arrival", "commit"], var.cdc_lake.partition_by)
    error_message = "cdc_lake.partition_by must be arrival (the notification's time) or commit (the first row's commit time)."
  }

  validation {
    condition     = contains(["csv", "parquet"], var.cdc_lake.data_format) && contains(["NONE", "GZIP"], var.cdc_lake.compression_type)
    error_message = "cdc_lake.data_format must be csv or parquet, and cdc_lake.compression_type NONE or GZIP."
  }

  validation {
    condition     = var.cdc_lake.data_format == "csv" || (var.cdc_lake.partition_by == "arrival" && alltrue([for t in var.cdc_lake.tables : t.apply_to == null]))
    error_message = "cdc_lake: partition_by = \"commit\" and apply_to read the rows of CSV files: they need data_format = \"csv\"."
  }

  validation {
    condition     = var.cdc_lake.database_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$", var.cdc_lake.database_secret_arn))
    error_message = "cdc_lake.database_secret_arn must be null (the master secret) or the complete ARN of an existing Secrets Manager secret, with the 6-character suffix (arn:aws:secretsmanager:<region>:<account>:secret:<name>-AbCdEf)."
  }

  validation {
    condition     = var.cdc_lake.database_secret_kms_key_arn == null || (var.cdc_lake.database_secret_arn != null && can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.cdc_lake.database_secret_kms_key_arn)))
    error_message = "cdc_lake.database_secret_kms_key_arn must be null or a KMS key ARN, and is only used together with cdc_lake.database_secret_arn."
  }
}

variable "create_dms_iam_roles" {
  description = "Create the account-wide roles DMS looks up by name (dms-vpc-role, dms-cloudwatch-logs-role, dms-access-for-endpoint). They belong to the AWS account: exactly one deployment per account may set this (a second fails with EntityAlreadyExists); every other uses the existing roles."
  type        = bool
  default     = false
}

variable "verify_dms_iam_roles" {
  description = "With create_dms_iam_roles = false, check at plan time (iam:ListRoles) that the account-wide DMS roles exist, and refuse to plan naming a missing one. Set false only where the plan cannot call IAM (offline plans, a plan role without iam:ListRoles)."
  type        = bool
  default     = true
}

variable "bucket_force_destroy" {
  description = "Let `terraform destroy` delete buckets that still hold objects (throwaway environments only)."
  type        = bool
  default     = false
}

variable "s3_kms_key_arn" {
  description = "KMS key for SSE-KMS on every bucket the pipelines use (functions get kms:Decrypt on it, through S3 only). Null uses the customer managed key this module creates (`create_kms_key`), else SSE-S3. Whoever uploads to an SSE-KMS bucket needs kms:GenerateDataKey on its key (docs/terraform.md)."
  type        = string
  default     = null

  validation {
    condition     = var.s3_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.s3_kms_key_arn))
    error_message = "s3_kms_key_arn must be a KMS key ARN or null."
  }
}

variable "s3_access_logs" {
  description = "S3 server access logs of every bucket the pipelines use (each under `<bucket name>/`). Null: off. `{}`: this module creates the log bucket `<name>-<environment>-access-logs<bucket_name_suffix>` (SSE-S3, since S3 log delivery cannot use SSE-KMS; versioned, TLS-only, written only by S3 log delivery for this deployment's buckets; logs expire after `expiration_days`). `{ bucket = \"name\" }`: an existing bucket of yours in this account and region (its policy must let logging.s3.amazonaws.com write, and its default encryption must be SSE-S3: docs/terraform.md)."
  type = object({
    bucket          = optional(string)
    expiration_days = optional(number, 365)
  })
  default = null

  validation {
    condition     = var.s3_access_logs == null || try(var.s3_access_logs.expiration_days >= 1, false)
    error_message = "s3_access_logs.expiration_days must be at least 1."
  }

  validation {
    condition     = try(var.s3_access_logs.bucket, null) == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.s3_access_logs.bucket))
    error_message = "s3_access_logs.bucket must be the name of an existing S3 bucket (or null to create one)."
  }
}

variable "secret_recovery_window_in_days" {
  description = "Recovery window of secrets this module creates (0 deletes at once; throwaway environments only)."
  type        = number
  default     = 30

  validation {
    condition     = var.secret_recovery_window_in_days == 0 || (var.secret_recovery_window_in_days >= 7 && var.secret_recovery_window_in_days <= 30)
    error_message = "secret_recovery_window_in_days must be 0 or between 7 and 30."
  }
}

################################################################################
# Encryption and alarms
################################################################################

variable "create_kms_key" {
  description = "Create the customer managed KMS key (rotated yearly) that encrypts topics, log groups, created secrets and (unless `s3_kms_key_arn` is set) the pipeline buckets. False requires `kms_key_arn`."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "Existing customer managed KMS key used when `create_kms_key` is false. Its policy must let s3, cloudwatch and logs use it (see docs/terraform.md)."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN or null."
  }
}

variable "kms_key_deletion_window_in_days" {
  description = "Waiting period before the created KMS key is deleted."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_key_deletion_window_in_days >= 7 && var.kms_key_deletion_window_in_days <= 30
    error_message = "kms_key_deletion_window_in_days must be between 7 and 30."
  }
}

variable "create_alarms" {
  description = "Create CloudWatch alarms (errors, throttles, DLQ depth) for every function, notifying the alarm topic."
  type        = bool
  default     = true
}

variable "alarm_email_addresses" {
  description = "Addresses subscribed to the alarm topic (each must confirm the subscription)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.alarm_email_addresses : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", a))])
    error_message = "alarm_email_addresses must be e-mail addresses."
  }
}

################################################################################
# Network
################################################################################

variable "create_vpc" {
  description = "Create a VPC with private subnets (no internet gateway, no NAT). False adopts `vpc_id`, `private_subnet_ids`, `private_route_table_ids` and `vpc_cidr_block`."
  type        = bool
  default     = true
}

variable "vpc_cidr" {
  description = "CIDR block of the created VPC."
  type        = string
  default     = "10.40.0.0/16"
}

variable "azs" {
  description = "Availability zones of the created private subnets (2+). Empty uses <region>a and <region>b."
  type        = list(string)
  default     = []
}

variable "vpc_id" {
  description = "Existing VPC (when `create_vpc` is false)."
  type        = string
  default     = null
}

variable "vpc_cidr_block" {
  description = "CIDR block of the existing VPC (when `create_vpc` is false)."
  type        = string
  default     = null
}

variable "private_subnet_ids" {
  description = "Existing private subnets in 2+ AZs (when `create_vpc` is false)."
  type        = list(string)
  default     = []
}

variable "private_route_table_ids" {
  description = "Route tables of the existing private subnets (when `create_vpc` is false)."
  type        = list(string)
  default     = []
}

variable "create_s3_gateway_endpoint" {
  description = "Add the S3 gateway endpoint to the private route tables (false if the adopted VPC has one)."
  type        = bool
  default     = true
}

variable "create_dynamodb_gateway_endpoint" {
  description = "Add the DynamoDB gateway endpoint to the private route tables when an enabled pipeline uses DynamoDB (the DynamoDB migration); false if the adopted VPC has one."
  type        = bool
  default     = true
}

variable "enable_interface_endpoints" {
  description = "Interface endpoints (secretsmanager, sqs, sns, logs, sts) so functions need no NAT."
  type        = bool
  default     = true
}

variable "endpoint_allowed_account_ids" {
  description = "Other accounts (12-digit ids) whose principals and resources the VPC endpoint policies admit, e.g. the owner of a bucket the pipelines read. This account is always admitted; empty means this account only."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for id in var.endpoint_allowed_account_ids : can(regex("^[0-9]{12}$", id))])
    error_message = "endpoint_allowed_account_ids must be 12-digit AWS account ids, such as \"111122223333\"."
  }
}

variable "https_egress_cidrs" {
  description = "Extra CIDRs functions may reach on 443 (e.g. [\"0.0.0.0/0\"] behind a NAT without interface endpoints)."
  type        = list(string)
  default     = []
}

variable "enable_flow_logs" {
  description = "VPC flow logs of the created VPC to CloudWatch Logs."
  type        = bool
  default     = true
}

################################################################################
# Database: created here, or an existing one (create_database = false)
################################################################################

variable "create_database" {
  description = "Create the unified RDS PostgreSQL database (when a pipeline uses it). False uses an existing PostgreSQL (RDS or Aurora) instead: set `db_host`, `db_master_user_secret_arn` (and `db_master_user_secret_kms_key_arn` if the secret has a customer managed key) and `db_security_group_id`; `db_port` and `db_name` say where to connect."
  type        = bool
  default     = true
}

variable "db_host" {
  description = "Endpoint of the existing database when `create_database` is false (an instance, cluster or your own proxy; schema migrations need session-level advisory locks, so not a proxy in transaction pooling mode)."
  type        = string
  default     = null

  validation {
    condition     = var.db_host == null || can(regex("^[A-Za-z0-9.-]{1,253}$", var.db_host))
    error_message = "db_host must be a host name or IP address."
  }
}

variable "db_port" {
  description = "Port of the database (created or existing)."
  type        = number
  default     = 5432

  validation {
    condition     = var.db_port >= 1150 && var.db_port <= 65535
    error_message = "db_port must be between 1150 and 65535 (RDS limits)."
  }
}

variable "db_master_user_secret_arn" {
  description = "When `create_database` is false: the complete ARN (with its 6-character suffix) of the Secrets Manager secret holding {\"username\", \"password\"} of the existing database's master user (for an RDS-managed master password, the instance's MasterUserSecret). The schema migrations, and pipelines without their own user, connect with it."
  type        = string
  default     = null

  validation {
    condition     = var.db_master_user_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@!-]+-[A-Za-z0-9]{6}$", var.db_master_user_secret_arn))
    error_message = "db_master_user_secret_arn must be the complete ARN of a Secrets Manager secret, with the 6-character suffix Secrets Manager appends to the name (arn:aws:secretsmanager:<region>:<account>:secret:<name>-AbCdEf): IAM grants match the complete ARN only."
  }
}

variable "db_security_group_id" {
  description = "When `create_database` is false: the existing database's security group. The module adds one rule to it admitting the functions' security group on `db_port`."
  type        = string
  default     = null

  validation {
    condition     = var.db_security_group_id == null || can(regex("^sg-[0-9a-f]{8,17}$", var.db_security_group_id))
    error_message = "db_security_group_id must be a security group id (sg-...)."
  }
}

variable "db_engine_version" {
  description = "PostgreSQL version of the unified database."
  type        = string
  default     = "16"
}

variable "db_instance_class" {
  description = "Instance class of the unified database."
  type        = string
  default     = "db.t4g.micro"
}

variable "db_allocated_storage" {
  description = "Initial storage of the database in GiB."
  type        = number
  default     = 20
}

variable "db_max_allocated_storage" {
  description = "Storage autoscaling ceiling in GiB (0 disables it)."
  type        = number
  default     = 100
}

variable "db_name" {
  description = "Database the pipelines connect to: created with the instance, or an existing database on `db_host`."
  type        = string
  default     = "pipelines"
}

variable "db_username" {
  description = "Master user of the created database (password managed by RDS in Secrets Manager)."
  type        = string
  default     = "pipelines_admin"
}

variable "db_multi_az" {
  description = "Standby in a second AZ."
  type        = bool
  default     = false
}

variable "db_backup_retention_period" {
  description = "Days of automated backups."
  type        = number
  default     = 7
}

variable "db_deletion_protection" {
  description = "Refuse to delete the database."
  type        = bool
  default     = true
}

variable "db_skip_final_snapshot" {
  description = "Delete the database without a final snapshot (throwaway environments only)."
  type        = bool
  default     = false
}

variable "db_apply_immediately" {
  description = "Apply database modifications at once instead of in the maintenance window."
  type        = bool
  default     = false
}

variable "db_performance_insights_enabled" {
  description = "Performance Insights on the database."
  type        = bool
  default     = false
}

variable "db_monitoring_interval" {
  description = "Enhanced Monitoring interval in seconds (0 = off)."
  type        = number
  default     = 0
}

variable "db_parameters" {
  description = "Extra parameters of the database parameter group (rds.force_ssl = 1 is always set)."
  type = list(object({
    name         = string
    value        = string
    apply_method = optional(string, "pending-reboot")
  }))
  default = []
}

variable "db_master_user_secret_kms_key_arn" {
  description = "KMS key of the master secret (the RDS-managed one, or `db_master_user_secret_arn`'s); null = aws/secretsmanager. Functions using the secret get kms:Decrypt on it through Secrets Manager."
  type        = string
  default     = null

  validation {
    condition     = var.db_master_user_secret_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.db_master_user_secret_kms_key_arn))
    error_message = "db_master_user_secret_kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>, not an alias): IAM grants match key ARNs."
  }
}

variable "create_db_proxy" {
  description = "Put an RDS Proxy (TLS required) between the loading functions and the database this module creates. Schema migrations always connect directly."
  type        = bool
  default     = false
}

variable "db_proxy_max_connections_percent" {
  description = "Share of the database's max_connections the RDS Proxy may open (its pool); idle connections kept: half of it. Size it with docs/terraform.md."
  type        = number
  default     = 90

  validation {
    condition     = var.db_proxy_max_connections_percent >= 1 && var.db_proxy_max_connections_percent <= 100
    error_message = "db_proxy_max_connections_percent must be between 1 and 100."
  }
}

variable "db_proxy_idle_client_timeout" {
  description = "Seconds a client connection to the RDS Proxy may stay idle before the proxy closes it."
  type        = number
  default     = 1800

  validation {
    condition     = var.db_proxy_idle_client_timeout >= 1 && var.db_proxy_idle_client_timeout <= 28800
    error_message = "db_proxy_idle_client_timeout must be between 1 and 28800 seconds."
  }
}
