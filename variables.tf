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
