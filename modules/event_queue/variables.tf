variable "create" {
  description = "Whether to create the topic, queues and bucket notification."
  type        = bool
  default     = true
}

variable "name" {
  description = "Base name of the topic and queues (the DLQ is `<name>-dlq`)."
  type        = string

  validation {
    condition     = var.name == null || can(regex("^[A-Za-z0-9_-]{1,76}$", var.name))
    error_message = "name must be 1-76 characters of letters, digits, hyphens and underscores (SQS/SNS limits, leaving room for the -dlq suffix)."
  }
}

variable "notifications" {
  description = "How the bucket's events travel: `sns` (S3 -> SNS topic -> the queue, or a function subscribed to the topic) or `eventbridge` (S3 -> EventBridge -> a rule matching the bucket, `events` and `filters` -> the queue, or a function: pass `rule_name` and `rule_arn` to modules/lambda_function's `eventbridge_rule`). With `eventbridge` the bucket sends all its events to the account's default event bus, where other consumers may add rules of their own."
  type        = string
  default     = "sns"
  nullable    = false

  validation {
    condition     = contains(["sns", "eventbridge"], var.notifications)
    error_message = "notifications must be \"sns\" or \"eventbridge\"."
  }
}

variable "bucket_id" {
  description = "Name of the source bucket whose notifications feed the topic or the rule. This module owns the bucket's notification configuration (S3 allows one per bucket)."
  type        = string
}

variable "bucket_arn" {
  description = "ARN of the source bucket (the only publisher the SNS topic accepts)."
  type        = string

  validation {
    condition     = var.bucket_arn == null || can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9.-]+$", var.bucket_arn))
    error_message = "bucket_arn must be an S3 bucket ARN (arn:aws:s3:::name)."
  }
}

variable "events" {
  description = "S3 event types that are published."
  type        = list(string)
  default     = ["s3:ObjectCreated:*"]

  validation {
    condition     = length(var.events) > 0 && alltrue([for e in var.events : can(regex("^s3:[A-Za-z]+:[A-Za-z*]+$", e))])
    error_message = "events must be non-empty S3 event names such as s3:ObjectCreated:*."
  }
}

variable "filters" {
  description = "Key filters: one SNS notification per entry (S3 rejects overlapping filters for the same events), or one key matcher each in the EventBridge rule (a prefix, a suffix, or both as a wildcard). An empty list (or one empty filter) publishes every key."
  type = list(object({
    prefix = optional(string, "")
    suffix = optional(string, "")
  }))
  default = [{}]
}

variable "kms_key_arn" {
  description = "ARN of the customer managed KMS key encrypting the SNS topic. Its key policy must let s3.amazonaws.com use it (AWS managed keys cannot: S3 could not publish). Unused with EventBridge."
  type        = string

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "create_queue" {
  description = "Create the SQS queue the topic (or the rule) delivers to. False leaves only the topic (S3 -> SNS -> Lambda) or the rule (S3 -> EventBridge -> Lambda)."
  type        = bool
  default     = true
}

variable "create_dlq" {
  description = "Create the dead-letter queue `<name>-dlq`: the queue's redrive target, or without a queue, the dead-letter target of the function fed by the topic or the rule (asynchronous invocations that failed every retry). With EventBridge it is also the rule target's dead-letter queue (events the rule could not deliver)."
  type        = bool
  default     = true
}

variable "visibility_timeout_seconds" {
  description = "Visibility timeout of the queue. AWS recommends at least 6x the consuming function's timeout."
  type        = number
  default     = 360

  validation {
    condition     = var.visibility_timeout_seconds >= 0 && var.visibility_timeout_seconds <= 43200
    error_message = "visibility_timeout_seconds must be between 0 and 43200."
  }
}

variable "message_retention_seconds" {
  description = "How long the queue keeps a message."
  type        = number
  default     = 345600

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600
    error_message = "message_retention_seconds must be between 60 and 1209600."
  }
}

variable "max_receive_count" {
  description = "Receives after which a message moves to the DLQ."
  type        = number
  default     = 5

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be between 1 and 1000."
  }
}

variable "dlq_message_retention_seconds" {
  description = "How long the DLQ keeps a message (longer than the queue, so failures can be inspected)."
  type        = number
  default     = 1209600

  validation {
    condition     = var.dlq_message_retention_seconds >= 60 && var.dlq_message_retention_seconds <= 1209600
    error_message = "dlq_message_retention_seconds must be between 60 and 1209600."
  }
}

variable "eventbridge_maximum_retry_attempts" {
  description = "With EventBridge: how many times the rule retries delivering an event to the queue before dead-lettering it."
  type        = number
  default     = 185

  validation {
    condition     = var.eventbridge_maximum_retry_attempts >= 0 && var.eventbridge_maximum_retry_attempts <= 185
    error_message = "eventbridge_maximum_retry_attempts must be between 0 and 185."
  }
}

variable "eventbridge_maximum_event_age_in_seconds" {
  description = "With EventBridge: how long the rule keeps retrying an event before dead-lettering it."
  type        = number
  default     = 86400

  validation {
    condition     = var.eventbridge_maximum_event_age_in_seconds >= 60 && var.eventbridge_maximum_event_age_in_seconds <= 86400
    error_message = "eventbridge_maximum_event_age_in_seconds must be between 60 and 86400."
  }
}

variable "tags" {
  description = "Tags applied to every resource of this module."
  type        = map(string)
  default     = {}
}
