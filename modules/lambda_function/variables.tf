variable "create" {
  description = "Whether to create the function and everything attached to it."
  type        = bool
  default     = true
}

variable "function_name" {
  description = "Name of the function; also names its role, log group, alarms and schedule."
  type        = string

  validation {
    condition     = var.function_name == null || can(regex("^[A-Za-z0-9_-]{1,54}$", var.function_name))
    error_message = "function_name must be 1-54 characters of letters, digits, hyphens and underscores (leaving room for role and alarm suffixes)."
  }
}

variable "description" {
  description = "Description of the function."
  type        = string
  default     = ""
}

variable "package" {
  description = "The function's entry in build/manifest.json with `filename` resolved to a path: { filename, handler, source_code_hash }."
  type = object({
    filename         = string
    handler          = string
    source_code_hash = string
  })

  validation {
    condition     = var.package == null || can(regex("^[A-Za-z_][A-Za-z0-9_.]*\\.[A-Za-z_][A-Za-z0-9_]*$", var.package.handler))
    error_message = "package.handler must look like module.path.function (e.g. file_loader.handler.handler)."
  }

  validation {
    condition     = var.package == null || try(endswith(var.package.filename, ".zip"), false)
    error_message = "package.filename must be the path of a .zip built by `make package`."
  }
}

variable "runtime" {
  description = "Python runtime of the function; must match the runtime the package was built for."
  type        = string
  default     = "python3.12"

  validation {
    condition     = can(regex("^python3\\.(1[0-9]|9)$", var.runtime))
    error_message = "runtime must be a Python Lambda runtime such as python3.12."
  }
}

variable "architecture" {
  description = "Instruction set of the function: x86_64 or arm64 (must match the package's wheels)."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "memory_size" {
  description = "Memory in MB (CPU scales with it)."
  type        = number
  default     = 512

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240
    error_message = "memory_size must be between 128 and 10240 MB."
  }
}

variable "timeout" {
  description = "Timeout in seconds."
  type        = number
  default     = 60

  validation {
    condition     = var.timeout >= 1 && var.timeout <= 900
    error_message = "timeout must be between 1 and 900 seconds."
  }
}

variable "ephemeral_storage_size" {
  description = "Size of /tmp in MB."
  type        = number
  default     = 512

  validation {
    condition     = var.ephemeral_storage_size >= 512 && var.ephemeral_storage_size <= 10240
    error_message = "ephemeral_storage_size must be between 512 and 10240 MB."
  }
}

variable "databases" {
  description = <<-EOT
    Databases the function connects to, keyed by the environment variable prefix its code reads
    them under (`DB`, `SOURCE_DB`, ...; see docs/contracts.md): `<PREFIX>_HOST`, `_PORT`, `_NAME`,
    `_SECRET_ARN`, `_SSLMODE`, and `_ENGINE`, `_ODBC_DRIVER`, `_CONNECT_TIMEOUT` when set. A null
    entry is no database (for pipelines whose database access is optional). The
    role may read exactly these secrets and decrypt, through Secrets Manager only, with exactly the
    `secret_kms_key_arns` (empty for aws/secretsmanager; a list so that whether a key is needed is
    known at plan time even when the key is created in the same apply).
  EOT
  type = map(object({
    host                = string
    port                = optional(number, 5432)
    name                = string
    secret_arn          = string
    secret_kms_key_arns = optional(list(string), [])
    engine              = optional(string)
    sslmode             = optional(string, "require")
    odbc_driver         = optional(string)
    connect_timeout     = optional(number)
  }))
  default  = {}
  nullable = false

  validation {
    condition     = alltrue([for prefix in keys(var.databases) : can(regex("^[A-Z][A-Z0-9_]*[A-Z0-9]$", prefix))])
    error_message = "databases keys are environment variable prefixes such as DB or SOURCE_DB (upper-case letters, digits and underscores)."
  }

  validation {
    condition     = alltrue([for db in values(var.databases) : db == null ? true : contains(["disable", "allow", "prefer", "require", "verify-ca", "verify-full"], db.sslmode)])
    error_message = "A database's sslmode must be a libpq sslmode: disable, allow, prefer, require, verify-ca or verify-full."
  }

  validation {
    condition     = alltrue([for db in values(var.databases) : db == null ? true : db.engine == null ? true : contains(["postgresql", "mysql", "sqlserver"], db.engine)])
    error_message = "A database's engine must be postgresql, mysql or sqlserver (null means postgresql)."
  }
}

variable "secret_ttl_seconds" {
  description = "SECRET_TTL_SECONDS: how long the function caches a secret it read (it also re-reads one after a failed login). Null leaves the functions' default (300)."
  type        = number
  default     = null

  validation {
    condition     = var.secret_ttl_seconds == null || try(var.secret_ttl_seconds >= 0 && var.secret_ttl_seconds <= 86400, false)
    error_message = "secret_ttl_seconds must be between 0 and 86400."
  }
}

variable "environment_variables" {
  description = "Environment variables of the function (see docs/contracts.md). LOG_LEVEL and POWERTOOLS_SERVICE_NAME are added unless given."
  type        = map(string)
  default     = {}
}

variable "log_level" {
  description = "LOG_LEVEL of the function and the application log level of its JSON logs."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "layers" {
  description = "ARNs of Lambda layer versions to attach (at most 5)."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.layers) <= 5
    error_message = "A function can have at most 5 layers."
  }
}

variable "policy_statements" {
  description = <<-EOT
    Least-privilege statements of the function's own policy, added to the logging, VPC, event
    source, dead-letter and tracing permissions this module derives itself. Name exact ARNs.
  EOT
  type = list(object({
    sid       = string
    effect    = optional(string, "Allow")
    actions   = list(string)
    resources = list(string)
    conditions = optional(list(object({
      test     = string
      variable = string
      values   = list(string)
    })), [])
  }))
  default = []

  validation {
    condition     = alltrue([for s in var.policy_statements : contains(["Allow", "Deny"], s.effect) && length(s.actions) > 0 && length(s.resources) > 0])
    error_message = "Every policy statement needs effect Allow or Deny and at least one action and one resource."
  }

  validation {
    condition     = alltrue([for s in var.policy_statements : !contains(s.actions, "*") && !contains(s.resources, "*")])
    error_message = "policy_statements must not grant Action \"*\" or Resource \"*\": name the actions and the exact ARNs."
  }

  validation {
    condition     = length(distinct([for s in var.policy_statements : s.sid])) == length(var.policy_statements) && alltrue([for s in var.policy_statements : can(regex("^[A-Za-z0-9]+$", s.sid))])
    error_message = "policy statement sids must be unique and alphanumeric."
  }
}

variable "log_retention_days" {
  description = "Retention of the function's log group."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "log_kms_key_arn" {
  description = "KMS key encrypting the log group (its policy must allow logs.<region>.amazonaws.com). Null uses CloudWatch's default encryption."
  type        = string
  default     = null
}

variable "vpc_subnet_ids" {
  description = "Private subnets to run the function in. Empty runs it outside a VPC."
  type        = list(string)
  default     = []
}

variable "vpc_security_group_ids" {
  description = "Security groups of the function when it runs in a VPC."
  type        = list(string)
  default     = []
}

variable "reserved_concurrent_executions" {
  description = "Reserved concurrency: -1 leaves it unreserved, 0 disables the function, 1 serialises it."
  type        = number
  default     = -1

  validation {
    condition     = var.reserved_concurrent_executions >= -1
    error_message = "reserved_concurrent_executions must be -1 (unreserved) or a non-negative number."
  }
}

variable "tracing_mode" {
  description = "X-Ray tracing: Active or PassThrough."
  type        = string
  default     = "Active"

  validation {
    condition     = contains(["Active", "PassThrough"], var.tracing_mode)
    error_message = "tracing_mode must be Active or PassThrough."
  }
}

variable "dead_letter_target" {
  description = "Where asynchronous invocations (SNS, schedules) that failed every retry go: { arn, type = sqs | sns }. The role gets permission to send there."
  type = object({
    arn  = string
    type = optional(string, "sqs")
  })
  default = null

  validation {
    condition     = var.dead_letter_target == null ? true : contains(["sqs", "sns"], var.dead_letter_target.type)
    error_message = "dead_letter_target.type must be sqs or sns."
  }
}

variable "sqs_event_source" {
  description = "SQS queue feeding the function, with partial batch failure reporting. `maximum_concurrency` caps concurrent sandboxes (and so database connections)."
  type = object({
    queue_arn                          = string
    batch_size                         = optional(number, 10)
    maximum_batching_window_in_seconds = optional(number, 0)
    maximum_concurrency                = optional(number, 2)
  })
  default = null

  validation {
    condition     = var.sqs_event_source == null ? true : (var.sqs_event_source.batch_size >= 1 && var.sqs_event_source.batch_size <= 10000)
    error_message = "sqs_event_source.batch_size must be between 1 and 10000."
  }

  validation {
    condition     = var.sqs_event_source == null ? true : (var.sqs_event_source.maximum_concurrency >= 2 && var.sqs_event_source.maximum_concurrency <= 1000)
    error_message = "sqs_event_source.maximum_concurrency must be between 2 and 1000 (AWS limits)."
  }

  validation {
    condition     = var.sqs_event_source == null ? true : (var.sqs_event_source.maximum_batching_window_in_seconds >= 0 && var.sqs_event_source.maximum_batching_window_in_seconds <= 300 && (var.sqs_event_source.batch_size <= 10 || var.sqs_event_source.maximum_batching_window_in_seconds >= 1))
    error_message = "sqs_event_source.maximum_batching_window_in_seconds must be 0-300, and at least 1 when batch_size is above 10."
  }
}

variable "dynamodb_event_source" {
  description = "DynamoDB stream feeding the function: bisect on error, bounded retries and record age, failed batches' metadata sent to `on_failure` { arn, type = sqs | sns }."
  type = object({
    stream_arn                     = string
    starting_position              = optional(string, "TRIM_HORIZON")
    batch_size                     = optional(number, 100)
    maximum_batching_window        = optional(number, 0)
    bisect_batch_on_function_error = optional(bool, true)
    maximum_retry_attempts         = optional(number, 10)
    maximum_record_age_in_seconds  = optional(number, 86400)
    parallelization_factor         = optional(number, 1)
    on_failure = optional(object({
      arn  = string
      type = optional(string, "sqs")
    }))
  })
  default = null

  validation {
    condition     = var.dynamodb_event_source == null ? true : contains(["TRIM_HORIZON", "LATEST"], var.dynamodb_event_source.starting_position)
    error_message = "dynamodb_event_source.starting_position must be TRIM_HORIZON or LATEST."
  }

  validation {
    condition = var.dynamodb_event_source == null ? true : (
      var.dynamodb_event_source.maximum_retry_attempts >= -1 && var.dynamodb_event_source.maximum_retry_attempts <= 10000 &&
      (var.dynamodb_event_source.maximum_record_age_in_seconds == -1 || (var.dynamodb_event_source.maximum_record_age_in_seconds >= 60 && var.dynamodb_event_source.maximum_record_age_in_seconds <= 604800)) &&
      var.dynamodb_event_source.parallelization_factor >= 1 && var.dynamodb_event_source.parallelization_factor <= 10
    )
    error_message = "dynamodb_event_source: maximum_retry_attempts -1..10000, maximum_record_age_in_seconds -1 or 60..604800, parallelization_factor 1..10."
  }

  validation {
    condition     = try(var.dynamodb_event_source.on_failure, null) == null ? true : contains(["sqs", "sns"], var.dynamodb_event_source.on_failure.type)
    error_message = "dynamodb_event_source.on_failure.type must be sqs or sns."
  }
}

variable "sns_subscription" {
  description = "SNS topic invoking the function directly (S3 -> SNS -> Lambda). Creates the subscription and the invoke permission scoped to the topic."
  type = object({
    topic_arn     = string
    filter_policy = optional(string)
  })
  default = null
}

variable "eventbridge_rule" {
  description = "EventBridge rule invoking the function (S3 -> EventBridge -> Lambda, e.g. modules/event_queue's rule): the target and an invoke permission scoped to the rule, retried as set, with events the rule cannot deliver sent to `dead_letter` { arn } (an SQS queue whose policy admits the rule, as event_queue's dead-letter queue does; an object, so whether there is one is known at plan time even when its ARN is not)."
  type = object({
    rule_name = string
    rule_arn  = string
    dead_letter = optional(object({
      arn = string
    }))
    maximum_retry_attempts       = optional(number, 185)
    maximum_event_age_in_seconds = optional(number, 86400)
  })
  default = null

  validation {
    condition     = var.eventbridge_rule == null ? true : (var.eventbridge_rule.maximum_retry_attempts >= 0 && var.eventbridge_rule.maximum_retry_attempts <= 185 && var.eventbridge_rule.maximum_event_age_in_seconds >= 60 && var.eventbridge_rule.maximum_event_age_in_seconds <= 86400)
    error_message = "eventbridge_rule.maximum_retry_attempts must be 0-185 and maximum_event_age_in_seconds 60-86400."
  }
}

variable "schedule" {
  description = "EventBridge Scheduler schedule invoking the function, with its own role allowed to invoke only this function."
  type = object({
    expression                   = string
    timezone                     = optional(string, "UTC")
    input                        = optional(string, "{}")
    enabled                      = optional(bool, true)
    maximum_retry_attempts       = optional(number, 0)
    maximum_event_age_in_seconds = optional(number, 3600)
    dead_letter = optional(object({
      arn = string
    }))
  })
  default = null

  validation {
    condition     = var.schedule == null ? true : can(regex("^(rate\\(\\d+ (minute|minutes|hour|hours|day|days)\\)|cron\\(.+\\)|at\\(.+\\))$", var.schedule.expression))
    error_message = "schedule.expression must be rate(N unit), cron(...) or at(...)."
  }

  validation {
    condition     = var.schedule == null ? true : can(jsondecode(var.schedule.input))
    error_message = "schedule.input must be a JSON document."
  }

  validation {
    condition     = var.schedule == null ? true : (var.schedule.maximum_retry_attempts >= 0 && var.schedule.maximum_retry_attempts <= 185 && var.schedule.maximum_event_age_in_seconds >= 60 && var.schedule.maximum_event_age_in_seconds <= 86400)
    error_message = "schedule.maximum_retry_attempts must be 0-185 and maximum_event_age_in_seconds 60-86400."
  }
}

variable "event_source_details" {
  description = "What feeds the function beyond its trigger, reported in the `summary` output for local tools: the bucket and key prefixes of S3 events, the topic S3 publishes to or the EventBridge rule matching them, the queue's URL and its dead-letter queue."
  type = object({
    bucket    = optional(string)
    prefixes  = optional(list(string), [])
    topic_arn = optional(string)
    rule_arn  = optional(string)
    queue_url = optional(string)
    dlq_url   = optional(string)
    dlq_arn   = optional(string)
  })
  default  = {}
  nullable = false
}

variable "role_path" {
  description = "Path of the function's IAM roles (execution and scheduler). Null uses \"/\"."
  type        = string
  default     = null

  validation {
    condition     = var.role_path == null || can(regex("^/([!-~]+/)?$", var.role_path))
    error_message = "role_path must start and end with \"/\", e.g. \"/data-pipelines/\"."
  }
}

variable "role_permissions_boundary" {
  description = "ARN of the managed policy that bounds the permissions of the function's IAM roles."
  type        = string
  default     = null

  validation {
    condition     = var.role_permissions_boundary == null || can(regex("^arn:aws[a-z-]*:iam::([0-9]{12}|aws):policy/.+$", var.role_permissions_boundary))
    error_message = "role_permissions_boundary must be an IAM policy ARN (arn:aws:iam::<account>:policy/<name>)."
  }
}

variable "create_alarms" {
  description = "Create CloudWatch alarms: errors, throttles, and DLQ depth / iterator age when those apply."
  type        = bool
  default     = true
}

variable "alarm_topic_arn" {
  description = "SNS topic notified when an alarm fires or recovers. Null creates the alarms without actions."
  type        = string
  default     = null
}

variable "alarm_dlq_names" {
  description = "Names of dead-letter queues whose depth (messages visible > 0) raises an alarm."
  type        = list(string)
  default     = []
}

variable "alarm_iterator_age_ms" {
  description = "Iterator age (ms) above which the DynamoDB stream alarm fires."
  type        = number
  default     = 300000
}

variable "tags" {
  description = "Tags applied to every resource of this module."
  type        = map(string)
  default     = {}
}
