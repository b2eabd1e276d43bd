variable "create" {
  description = "Whether to create the migration: target table (unless existing), state table, functions, stream mapping, queue, topic and alarms."
  type        = bool
  default     = true
}

variable "name" {
  description = "Name of the migration: names the functions (<name>-copy, -sync, -verify), the state table, the failure queue and the results topic."
  type        = string

  validation {
    condition     = var.name == null || can(regex("^[a-z0-9][a-z0-9-]{1,44}[a-z0-9]$", var.name))
    error_message = "name must be 3-46 characters of lower-case letters, digits and hyphens (the functions add up to 7)."
  }
}

variable "source_table_name" {
  description = "Name of the table to migrate from. Its owner enables its stream with NEW_AND_OLD_IMAGES (aws_dynamodb_table: stream_enabled = true, stream_view_type = \"NEW_AND_OLD_IMAGES\") before this module is applied."
  type        = string

  validation {
    condition     = var.source_table_name == null || can(regex("^[A-Za-z0-9_.-]{3,255}$", var.source_table_name))
    error_message = "source_table_name must be a DynamoDB table name (3-255 letters, digits, _ . -)."
  }
}

variable "source_stream_arn" {
  description = "ARN of the source table's current stream (the table's stream_arn attribute). The sync reads it from TRIM_HORIZON; the copy refuses to run if the table's stream is no longer this one."
  type        = string

  validation {
    condition     = var.source_stream_arn == null || can(regex("^arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/[A-Za-z0-9_.-]{3,255}/stream/.+$", var.source_stream_arn))
    error_message = "source_stream_arn must be a DynamoDB stream ARN: arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>."
  }
}

variable "source_kms_key_arn" {
  description = "Customer managed KMS key of the source table, if it has one (the functions get kms:Decrypt on it through DynamoDB). Null when the source uses an AWS owned or AWS managed key."
  type        = string
  default     = null

  validation {
    condition     = var.source_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/", var.source_kms_key_arn))
    error_message = "source_kms_key_arn must be a KMS key ARN (not an alias) or null."
  }
}

variable "key" {
  description = "Key of the source table, which the target keeps: partition_key and optional sort_key names, with their types (S, N or B) for a target this module creates."
  type = object({
    partition_key      = string
    partition_key_type = optional(string, "S")
    sort_key           = optional(string)
    sort_key_type      = optional(string, "S")
  })

  validation {
    condition     = var.key == null ? true : contains(["S", "N", "B"], var.key.partition_key_type) && contains(["S", "N", "B"], var.key.sort_key_type)
    error_message = "key.partition_key_type and key.sort_key_type must be S, N or B."
  }

  validation {
    condition     = var.key == null ? true : length(var.key.partition_key) > 0 && var.key.partition_key != var.key.sort_key
    error_message = "key.partition_key must be set and differ from key.sort_key."
  }
}

variable "target" {
  description = <<-EOT
    The table to migrate into. `create = true` (default) creates it with the source's key:
    billing_mode PAY_PER_REQUEST or PROVISIONED (read_capacity / write_capacity), point-in-time
    recovery (always on), encryption with `kms_key_arn` (default: the module's `kms_key_arn`),
    deletion protection, and `global_secondary_indexes` (the new access patterns that are often the
    reason for the migration). `create = false` uses the existing table `name` (same account and region
    as the source; its key must be the source's); set `kms_key_arn` if it has a customer managed key.
  EOT
  type = object({
    name                = string
    create              = optional(bool, true)
    billing_mode        = optional(string, "PAY_PER_REQUEST")
    read_capacity       = optional(number)
    write_capacity      = optional(number)
    kms_key_arn         = optional(string)
    deletion_protection = optional(bool, true)
    global_secondary_indexes = optional(list(object({
      name               = string
      hash_key           = string
      hash_key_type      = optional(string, "S")
      range_key          = optional(string)
      range_key_type     = optional(string, "S")
      projection_type    = optional(string, "ALL")
      non_key_attributes = optional(list(string))
      read_capacity      = optional(number)
      write_capacity     = optional(number)
    })), [])
  })

  validation {
    condition     = var.target == null ? true : can(regex("^[A-Za-z0-9_.-]{3,255}$", var.target.name))
    error_message = "target.name must be a DynamoDB table name (3-255 letters, digits, _ . -)."
  }

  validation {
    condition     = var.target == null ? true : contains(["PAY_PER_REQUEST", "PROVISIONED"], var.target.billing_mode)
    error_message = "target.billing_mode must be PAY_PER_REQUEST or PROVISIONED."
  }

  validation {
    condition = var.target == null ? true : var.target.billing_mode == "PAY_PER_REQUEST" ? (var.target.read_capacity == null && var.target.write_capacity == null) : (
      coalesce(var.target.read_capacity, 0) >= 1 && coalesce(var.target.write_capacity, 0) >= 1 &&
      alltrue([for i in var.target.global_secondary_indexes : coalesce(i.read_capacity, 0) >= 1 && coalesce(i.write_capacity, 0) >= 1])
    )
    error_message = "PROVISIONED needs read_capacity and write_capacity >= 1 on the table and on every index; PAY_PER_REQUEST takes none."
  }

  validation {
    condition     = try(var.target.kms_key_arn, null) == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/", var.target.kms_key_arn))
    error_message = "target.kms_key_arn must be a KMS key ARN (not an alias) or null."
  }

  validation {
    condition = alltrue([for i in try(var.target.global_secondary_indexes, []) : (
      contains(["ALL", "KEYS_ONLY", "INCLUDE"], i.projection_type) &&
      contains(["S", "N", "B"], i.hash_key_type) && contains(["S", "N", "B"], i.range_key_type) &&
      (i.projection_type == "INCLUDE") == (i.non_key_attributes != null)
    )])
    error_message = "Each global secondary index needs projection_type ALL, KEYS_ONLY or INCLUDE (non_key_attributes with INCLUDE only) and key types S, N or B."
  }

  validation {
    condition     = length(distinct([for i in try(var.target.global_secondary_indexes, []) : i.name])) == length(try(var.target.global_secondary_indexes, []))
    error_message = "Global secondary index names must be unique."
  }
}

variable "transform" {
  description = <<-EOT
    The declarative transform applied by the copy, the sync and verify alike (grammar in
    docs/dynamodb_migration.md): { rename = { old = "new" }, add = { name = <constant> } (set when
    absent), set = { name = <constant> } (every item), drop = ["name"] }. Key attributes cannot be
    touched and a name may appear in one step only; the same rules are checked by the function's
    parser, which the Terraform tests feed this value to.
  EOT
  type        = any
  default     = {}
  nullable    = false

  validation {
    condition     = can(keys(var.transform)) && alltrue([for k in try(keys(var.transform), []) : contains(["rename", "add", "set", "drop"], k)])
    error_message = "transform must be an object with keys among rename, add, set and drop."
  }

  validation {
    condition = (
      alltrue([for old, new in try(var.transform.rename, {}) : try(new == tostring(new) && length(new) > 0 && old != new, false)]) &&
      can(keys(try(var.transform.rename, {}))) && can(keys(try(var.transform.add, {}))) && can(keys(try(var.transform.set, {})))
    )
    error_message = "transform.rename must map attribute names to new, different, non-empty names; transform.add and transform.set must be objects of attribute names."
  }

  validation {
    condition     = try(var.transform.drop, null) == null || try(can(tolist(var.transform.drop)) && alltrue([for n in var.transform.drop : try(n == tostring(n) && length(n) > 0, false)]), false)
    error_message = "transform.drop must be a list of attribute names."
  }

  validation {
    condition = length(flatten([
      try(tolist(var.transform.drop), []), keys(try(var.transform.rename, {})), values(try(var.transform.rename, {})),
      keys(try(var.transform.add, {})), keys(try(var.transform.set, {})),
      ])) == length(distinct(flatten([
        try(tolist(var.transform.drop), []), keys(try(var.transform.rename, {})), values(try(var.transform.rename, {})),
        keys(try(var.transform.add, {})), keys(try(var.transform.set, {})),
    ])))
    error_message = "transform uses an attribute name in more than one step (or twice in drop); use each name in one step only."
  }

  validation {
    condition     = length(jsonencode(var.transform)) <= 2048
    error_message = "transform encodes to more than 2048 bytes of JSON; Lambda allows 4 KB of environment variables in total."
  }
}

variable "kms_key_arn" {
  description = "Customer managed KMS key encrypting the state table, the results topic and (unless target.kms_key_arn says otherwise) a created target table."
  type        = string

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (not an alias)."
  }
}

variable "copy" {
  description = <<-EOT
    The copy function: Scan segments (total_segments, 1-1000; fixed for a migration once it
    started), segments worked at once per invocation (concurrency), items per Scan page
    (page_size), a cap on items written per second (write_rate_limit, 0 = none), memory and
    timeout. `schedule` (an EventBridge Scheduler expression such as "rate(5 minutes)") invokes it
    until it is done (invocations after that return at once; set it to null then); null = invoke by hand.
  EOT
  type = object({
    total_segments   = optional(number, 8)
    concurrency      = optional(number, 4)
    page_size        = optional(number, 1000)
    write_rate_limit = optional(number, 0)
    memory_size      = optional(number, 1024)
    timeout          = optional(number, 900)
    schedule         = optional(string)
    schedule_enabled = optional(bool, true)
  })
  default  = {}
  nullable = false

  validation {
    condition = (
      var.copy.total_segments >= 1 && var.copy.total_segments <= 1000 && var.copy.concurrency >= 1 && var.copy.concurrency <= 64 &&
      var.copy.page_size >= 25 && var.copy.page_size <= 10000 && var.copy.write_rate_limit >= 0
    )
    error_message = "copy: total_segments 1-1000, concurrency 1-64, page_size 25-10000, write_rate_limit >= 0."
  }

  validation {
    condition     = var.copy.timeout >= 60 && var.copy.timeout <= 900
    error_message = "copy.timeout must be between 60 and 900 seconds (a page and its checkpoint must fit with room to spare)."
  }

  validation {
    condition     = var.copy.schedule == null || can(regex("^(rate\\(\\d+ (minute|minutes|hour|hours)\\)|cron\\(.+\\))$", var.copy.schedule))
    error_message = "copy.schedule must be rate(N minutes|hours) or cron(...), or null."
  }
}

variable "sync" {
  description = "The stream sync: records per batch, batching window, retries of a failing batch before its records go to the failure queue, maximum record age, shards processed in parallel per shard (parallelization_factor; per-key order holds), memory, timeout, and the iterator age (ms) above which the alarm fires."
  type = object({
    batch_size                    = optional(number, 100)
    maximum_batching_window       = optional(number, 0)
    maximum_retry_attempts        = optional(number, 10)
    maximum_record_age_in_seconds = optional(number, 86400)
    parallelization_factor        = optional(number, 1)
    memory_size                   = optional(number, 512)
    timeout                       = optional(number, 120)
    alarm_iterator_age_ms         = optional(number, 300000)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.sync.batch_size >= 1 && var.sync.batch_size <= 10000 && var.sync.maximum_batching_window >= 0 && var.sync.maximum_batching_window <= 300
    error_message = "sync.batch_size must be 1-10000 and sync.maximum_batching_window 0-300 seconds."
  }

  validation {
    condition = (
      var.sync.maximum_retry_attempts >= 0 && var.sync.maximum_retry_attempts <= 10000 &&
      var.sync.maximum_record_age_in_seconds >= 60 && var.sync.maximum_record_age_in_seconds <= 604800 &&
      var.sync.parallelization_factor >= 1 && var.sync.parallelization_factor <= 10
    )
    error_message = "sync: maximum_retry_attempts 0-10000 (bounded), maximum_record_age_in_seconds 60-604800 (bounded), parallelization_factor 1-10."
  }

  validation {
    condition     = var.sync.timeout >= 30 && var.sync.timeout <= 900
    error_message = "sync.timeout must be between 30 and 900 seconds (the function keeps 10 s back to hand a batch back in time)."
  }
}

variable "verify" {
  description = "The verify function: memory, timeout, and how many example keys per kind of difference its result carries."
  type = object({
    memory_size = optional(number, 1024)
    timeout     = optional(number, 900)
    examples    = optional(number, 10)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.verify.timeout >= 60 && var.verify.timeout <= 900 && var.verify.examples >= 0 && var.verify.examples <= 100
    error_message = "verify.timeout must be 60-900 seconds and verify.examples 0-100."
  }
}

variable "touched_ttl_days" {
  description = "How long the state table keeps the record of each key the stream applied (TTL). Must outlast the copy: while the copy runs, these entries are what keeps it from writing an image older than the stream's."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = var.touched_ttl_days >= 2 && var.touched_ttl_days <= 365
    error_message = "touched_ttl_days must be between 2 and 365."
  }
}

variable "state_table_deletion_protection" {
  description = "Deletion protection of the state table (it is only needed until the cutover)."
  type        = bool
  default     = false
  nullable    = false
}

variable "package" {
  description = "The dynamodb_migration entry of build/manifest.json with `filename` resolved: { filename, handler, source_code_hash }. One package, three functions (MIGRATION_FUNCTION picks the entry point)."
  type = object({
    filename         = string
    handler          = string
    source_code_hash = string
  })
}

variable "runtime" {
  description = "Python runtime of the functions."
  type        = string
  default     = "python3.12"
}

variable "architecture" {
  description = "Architecture of the functions (x86_64 or arm64)."
  type        = string
  default     = "x86_64"
}

variable "log_level" {
  description = "LOG_LEVEL of the functions."
  type        = string
  default     = "INFO"
}

variable "log_retention_days" {
  description = "Retention of the functions' logs."
  type        = number
  default     = 30
}

variable "log_kms_key_arn" {
  description = "KMS key encrypting the log groups (null = CloudWatch default)."
  type        = string
  default     = null
}

variable "vpc_subnet_ids" {
  description = "Private subnets of the functions (they reach DynamoDB through the VPC's DynamoDB gateway endpoint). Empty runs them outside a VPC."
  type        = list(string)
  default     = []
}

variable "vpc_security_group_ids" {
  description = "Security groups of the functions when they run in a VPC."
  type        = list(string)
  default     = []
}

variable "create_alarms" {
  description = "Create the functions' alarms: errors, throttles, the sync's iterator age and its failure queue."
  type        = bool
  default     = true
}

variable "alarm_topic_arn" {
  description = "SNS topic for alarm notifications (null = alarms without actions)."
  type        = string
  default     = null
}

variable "role_path" {
  description = "Path of the functions' IAM roles (execution and scheduler). Null uses \"/\"."
  type        = string
  default     = null
}

variable "role_permissions_boundary" {
  description = "ARN of the permissions boundary of the functions' IAM roles. Null sets none."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags applied to every resource of this module."
  type        = map(string)
  default     = {}
}
