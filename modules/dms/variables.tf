variable "create" {
  description = "Whether to create the DMS resources. False creates nothing and accepts null `source_database` and `target`."
  type        = bool
  default     = true
}

variable "name" {
  description = "Name of the replication: identifies the replication instance (or serverless config), task, endpoints, subnet group and event subscriptions, and prefixes the security group and the two roles this module creates."
  type        = string

  validation {
    condition     = var.name == null || (can(regex("^[a-z][a-z0-9-]{1,38}[a-z0-9]$", var.name)) && !can(regex("--", var.name)))
    error_message = "name must be 3-40 characters of lower-case letters, digits and single hyphens, start with a letter and end with a letter or digit (DMS identifiers; the role names add up to 17 characters)."
  }
}

################################################################################
# Compute: a replication instance, or DMS Serverless
################################################################################

variable "vpc_id" {
  description = "VPC of the replication instance (or serverless compute) and its security group."
  type        = string
  default     = null
}

variable "subnet_ids" {
  description = "Private subnets of the replication subnet group, in at least two availability zones."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.subnet_ids) == 0 || length(var.subnet_ids) >= 2
    error_message = "subnet_ids must list at least 2 subnets in different availability zones (a DMS replication subnet group needs 2)."
  }
}

variable "replication_instance" {
  description = "The replication instance (ignored with `serverless`): `class`, `allocated_storage` (GiB), `multi_az`, `engine_version` (null = the DMS default), `preferred_maintenance_window` (ddd:hh24:mi-ddd:hh24:mi, UTC; null = AWS picks), `apply_immediately` (modifications now instead of in the window). It is never publicly accessible and takes minor engine upgrades in its maintenance window."
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

  validation {
    condition     = can(regex("^dms\\.[a-z0-9]+\\.[a-z0-9]+$", var.replication_instance.class))
    error_message = "replication_instance.class must look like dms.t3.medium or dms.r6i.large."
  }

  validation {
    condition     = var.replication_instance.allocated_storage >= 5 && var.replication_instance.allocated_storage <= 6144
    error_message = "replication_instance.allocated_storage must be between 5 and 6144 GiB."
  }

  validation {
    condition     = var.replication_instance.preferred_maintenance_window == null || can(regex("^(mon|tue|wed|thu|fri|sat|sun):[0-2][0-9]:[0-5][0-9]-(mon|tue|wed|thu|fri|sat|sun):[0-2][0-9]:[0-5][0-9]$", var.replication_instance.preferred_maintenance_window))
    error_message = "replication_instance.preferred_maintenance_window must look like sun:04:00-sun:04:30 (UTC) or be null."
  }
}

variable "serverless" {
  description = "Use DMS Serverless (`aws_dms_replication_config`) instead of a replication instance: capacity in DMS capacity units (`max_capacity_units` required; `min_capacity_units` null = DMS picks), `multi_az`, `preferred_maintenance_window`. Null (the default) deploys a replication instance."
  type = object({
    max_capacity_units           = number
    min_capacity_units           = optional(number)
    multi_az                     = optional(bool, false)
    preferred_maintenance_window = optional(string)
  })
  default = null

  validation {
    condition = var.serverless == null ? true : (
      contains([1, 2, 4, 8, 16, 32, 64, 128, 192, 256, 384], var.serverless.max_capacity_units) &&
      (var.serverless.min_capacity_units == null ? true : (
        contains([1, 2, 4, 8, 16, 32, 64, 128, 192, 256, 384], var.serverless.min_capacity_units) &&
        var.serverless.min_capacity_units <= var.serverless.max_capacity_units
      ))
    )
    error_message = "serverless.max_capacity_units and min_capacity_units must be DMS capacity units (1, 2, 4, 8, 16, 32, 64, 128, 192, 256 or 384), with min <= max."
  }
}

variable "kms_key_arn" {
  description = "Customer managed KMS key encrypting the replication instance's storage (or the serverless compute) and the endpoints' connection settings. Null uses the AWS managed aws/dms key."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>, not an alias)."
  }
}

################################################################################
# Network: the replication's own security group
################################################################################

variable "https_egress_prefix_list_ids" {
  description = "Prefix lists the replication may reach on 443: the S3 gateway endpoint's (the target bucket is written through it)."
  type        = list(string)
  default     = []
}

variable "https_egress_security_group_ids" {
  description = "Security groups the replication may reach on 443: the interface VPC endpoints' (DMS reads the source secret through Secrets Manager)."
  type        = list(string)
  default     = []
}

variable "https_egress_cidrs" {
  description = "Extra IPv4 CIDRs the replication may reach on 443 (e.g. a NAT route instead of endpoints)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.https_egress_cidrs : can(cidrhost(c, 0))])
    error_message = "https_egress_cidrs must be IPv4 CIDR blocks."
  }
}

################################################################################
# Source and target
################################################################################

variable "source_database" {
  description = <<-EOT
    The source database. `engine`: sqlserver, mysql, mariadb or postgres. `database_name`: the
    database to replicate. `secret_arn`: complete ARN of the Secrets Manager secret DMS logs in
    with, JSON {"username", "password", "host", "port"} (DMS needs host and port in the secret; an
    RDS-managed master secret lacks them), and `secret_kms_key_arn` when that secret uses a
    customer managed key. `port` (null = the engine's default) and where the database is, for the
    security group's egress: `cidr_blocks` and/or `security_group_ids` (the source's own group must
    admit this module's `security_group_id`). `ssl_mode`: require, or verify-full with the
    `certificate_arn` of a DMS certificate (aws_dms_certificate) holding the server's CA.
    `extra_connection_attributes`: engine settings DMS documents per source, passed as is.
  EOT
  type = object({
    engine                      = string
    database_name               = string
    secret_arn                  = string
    secret_kms_key_arn          = optional(string)
    port                        = optional(number)
    cidr_blocks                 = optional(list(string), [])
    security_group_ids          = optional(list(string), [])
    ssl_mode                    = optional(string, "require")
    certificate_arn             = optional(string)
    extra_connection_attributes = optional(string)
  })
  default = null

  validation {
    condition     = var.source_database == null ? true : contains(["sqlserver", "mysql", "mariadb", "postgres"], var.source_database.engine)
    error_message = "source_database.engine must be sqlserver, mysql, mariadb or postgres (DMS engine names)."
  }

  validation {
    condition     = var.source_database == null ? true : can(regex("^[^\\s]+$", var.source_database.database_name))
    error_message = "source_database.database_name must be the non-empty name of the database to replicate."
  }

  validation {
    condition     = var.source_database == null ? true : can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$", var.source_database.secret_arn))
    error_message = "source_database.secret_arn must be the complete ARN of the Secrets Manager secret, with the 6-character suffix Secrets Manager appends to the name (arn:aws:secretsmanager:<region>:<account>:secret:<name>-AbCdEf): the access role's grant matches the complete ARN only."
  }

  validation {
    condition     = var.source_database == null ? true : (var.source_database.secret_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.source_database.secret_kms_key_arn)))
    error_message = "source_database.secret_kms_key_arn must be null or a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>, not an alias)."
  }

  validation {
    condition     = var.source_database == null ? true : (var.source_database.port == null ? true : (var.source_database.port >= 1 && var.source_database.port <= 65535))
    error_message = "source_database.port must be a TCP port or null (the engine's default)."
  }

  validation {
    condition = var.source_database == null ? true : (
      length(var.source_database.cidr_blocks) + length(var.source_database.security_group_ids) > 0 &&
      alltrue([for c in var.source_database.cidr_blocks : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    )
    error_message = "source_database needs cidr_blocks (IPv4 CIDR blocks of the source host, not 0.0.0.0/0) or security_group_ids: the replication's security group reaches only the source."
  }

  validation {
    condition = var.source_database == null ? true : (
      var.source_database.ssl_mode == "require" ? var.source_database.certificate_arn == null : (
        var.source_database.ssl_mode == "verify-full" && can(regex("^arn:aws[a-z-]*:dms:", var.source_database.certificate_arn))
      )
    )
    error_message = "source_database.ssl_mode must be require (no certificate_arn) or verify-full with certificate_arn, the ARN of the DMS certificate of the server's CA: TLS is mandatory."
  }
}

variable "target" {
  description = <<-EOT
    The staging bucket DMS writes to (aws_dms_s3_endpoint): `bucket_name`, `bucket_folder` (DMS
    writes <folder>/<schema>/<table>/LOAD00000001.csv for the full load and timestamp-named files
    for changes), `kms_key_arn` (SSE-KMS key of the objects; the target role may use only it),
    `data_format` csv or parquet, `add_column_name` (CSV header row), `timestamp_column_name` (the
    column DMS fills with each row's commit time), `cdc_max_batch_interval` (seconds) and
    `cdc_min_file_size` (KB; a CDC file is written when either is reached), `compression_type`
    NONE or GZIP, `expected_bucket_owner` (account id; null = this account). Every row carries the
    Op column (I, U, D), the full load too; date partitioning stays off (the partitioner does it).
  EOT
  type = object({
    bucket_name            = string
    bucket_folder          = optional(string, "dms")
    kms_key_arn            = string
    data_format            = optional(string, "csv")
    add_column_name        = optional(bool, true)
    timestamp_column_name  = optional(string, "dms_commit_ts")
    cdc_max_batch_interval = optional(number, 60)
    cdc_min_file_size      = optional(number, 32000)
    compression_type       = optional(string, "NONE")
    expected_bucket_owner  = optional(string)
  })
  default = null

  validation {
    condition     = var.target == null ? true : can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.target.bucket_name))
    error_message = "target.bucket_name must be an S3 bucket name."
  }

  validation {
    condition     = var.target == null ? true : can(regex("^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", var.target.bucket_folder))
    error_message = "target.bucket_folder must be a non-empty key prefix of letters, digits, _ . - separated by single slashes, without a leading or trailing slash."
  }

  validation {
    condition     = var.target == null ? true : can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.target.kms_key_arn))
    error_message = "target.kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>, not an alias): the staging objects are encrypted with SSE-KMS."
  }

  validation {
    condition     = var.target == null ? true : contains(["csv", "parquet"], var.target.data_format)
    error_message = "target.data_format must be csv or parquet."
  }

  validation {
    condition     = var.target == null ? true : can(regex("^[A-Za-z_][A-Za-z0-9_]{0,62}$", var.target.timestamp_column_name))
    error_message = "target.timestamp_column_name must be a non-empty column name (letters, digits, underscores; at most 63): the partitioner and the CDC apply order changes by it."
  }

  validation {
    condition     = var.target == null ? true : (var.target.cdc_max_batch_interval >= 1 && var.target.cdc_max_batch_interval <= 86400 && var.target.cdc_min_file_size >= 1 && var.target.cdc_min_file_size <= 1048576)
    error_message = "target.cdc_max_batch_interval must be 1-86400 seconds and target.cdc_min_file_size 1-1048576 KB."
  }

  validation {
    condition     = var.target == null ? true : contains(["NONE", "GZIP"], var.target.compression_type)
    error_message = "target.compression_type must be NONE or GZIP."
  }

  validation {
    condition     = var.target == null ? true : (var.target.expected_bucket_owner == null || can(regex("^[0-9]{12}$", var.target.expected_bucket_owner)))
    error_message = "target.expected_bucket_owner must be a 12-digit account id or null."
  }
}

variable "table_mappings" {
  description = <<-EOT
    What to replicate, in order: each entry selects `schema` and `table` (% matches any run of
    characters) to `include` or `exclude`. An include may drop columns (`exclude_columns`, e.g.
    personal data kept out of the lake) and filter rows at the source (`filters`: `column`,
    `operator` eq, noteq, gte, ste, between, notbetween, null or notnull, with `value`, or `start`
    and `end` for the between operators). Becomes the task's selection and transformation rules.
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
  }))
  default  = []
  nullable = false

  validation {
    condition = alltrue([for m in var.table_mappings : (
      can(regex("^[A-Za-z_%][A-Za-z0-9_$%]{0,127}$", m.schema)) && can(regex("^[A-Za-z_%][A-Za-z0-9_$%]{0,127}$", m.table))
    )])
    error_message = "table_mappings: every schema and table must be a name of letters, digits, _ and $ (% as a wildcard), at most 128 characters."
  }

  validation {
    condition     = length(var.table_mappings) == 0 || anytrue([for m in var.table_mappings : m.action == "include"])
    error_message = "table_mappings must include at least one table (an entry with action = \"include\"): exclude entries alone replicate nothing."
  }

  validation {
    condition     = alltrue([for m in var.table_mappings : contains(["include", "exclude"], m.action)])
    error_message = "table_mappings: action must be include or exclude."
  }

  validation {
    condition     = alltrue([for m in var.table_mappings : m.action == "include" || (length(m.exclude_columns) == 0 && length(m.filters) == 0)])
    error_message = "table_mappings: exclude_columns and filters apply to include entries only."
  }

  validation {
    condition = alltrue([for m in var.table_mappings : alltrue([
      for c in concat(m.exclude_columns, [for f in m.filters : f.column]) : can(regex("^[A-Za-z_][A-Za-z0-9_$]{0,127}$", c))
    ])])
    error_message = "table_mappings: exclude_columns and filter columns must be column names (letters, digits, _ and $)."
  }

  validation {
    condition = alltrue([for m in var.table_mappings : alltrue([for f in m.filters : (
      contains(["between", "notbetween"], f.operator) ? (f.start != null && f.end != null && f.value == null) : (
        contains(["null", "notnull"], f.operator) ? (f.value == null && f.start == null && f.end == null) : (
          contains(["eq", "noteq", "gte", "ste"], f.operator) && f.value != null && f.start == null && f.end == null
        )
      )
    )])])
    error_message = "table_mappings: a filter operator must be eq, noteq, gte or ste with a value, between or notbetween with start and end, or null or notnull alone."
  }

  validation {
    condition     = length(distinct([for m in var.table_mappings : lower("${m.schema}.${m.table}")])) == length(var.table_mappings)
    error_message = "table_mappings: a schema and table appear twice; give each selection once."
  }
}

variable "change_sequence_column_name" {
  description = "Name of a column DMS adds to every row with its change sequence number ($AR_H_CHANGE_SEQ), which orders changes sharing one commit timestamp. Null adds none."
  type        = string
  default     = null

  validation {
    condition     = var.change_sequence_column_name == null || can(regex("^[A-Za-z_][A-Za-z0-9_]{0,62}$", var.change_sequence_column_name))
    error_message = "change_sequence_column_name must be null or a column name (letters, digits, underscores; at most 63)."
  }
}

variable "start_replication_task" {
  description = "Start the replication (full load, then changes) when Terraform creates it. False leaves it ready: start it once the source secret holds working credentials (the provider waits for the task to run, so a failing connection fails the apply)."
  type        = bool
  default     = false
}

################################################################################
# Account-wide DMS roles
################################################################################

variable "create_dms_iam_roles" {
  description = "Create the account-wide roles DMS looks up by name: dms-vpc-role, dms-cloudwatch-logs-role and dms-access-for-endpoint. Exactly one deployment per AWS account may set this (a second one fails with EntityAlreadyExists); every other deployment uses the existing roles."
  type        = bool
  default     = false
}

variable "verify_dms_iam_roles" {
  description = "When the roles are not created here, look them up at plan time (iam:ListRoles) and refuse to plan when one DMS needs is missing. Set false only where the plan cannot call IAM (an offline plan, a plan role without iam:ListRoles)."
  type        = bool
  default     = true
}

################################################################################
# Alarms and tags
################################################################################

variable "create_event_subscriptions" {
  description = "Subscribe `alarm_topic_arn` to the replication instance's failure, failover and low-storage events and the task's failure and state-change events (replication instance only; DMS Serverless sends no such events)."
  type        = bool
  default     = true
}

variable "alarm_topic_arn" {
  description = "SNS topic the DMS events go to. Its policy must let dms.amazonaws.com publish (and its KMS key, if any, let DMS encrypt)."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags applied to every resource of this module."
  type        = map(string)
  default     = {}
}
