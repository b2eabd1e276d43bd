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

variable "bucket_id" {
  description = "Name of the source bucket whose notifications feed the topic. This module owns the bucket's notification configuration (S3 allows one per bucket)."
  type        = string
}

variable "bucket_arn" {
  description = "ARN of the source bucket (the only publisher the topic accepts)."
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
  description = "Key filters, one notification per entry. S3 rejects overlapping filters for the same events; an empty list (or one empty filter) publishes every key."
  type = list(object({
    prefix = optional(string, "")
    suffix = optional(string, "")
  }))
  default = [{}]
}

variable "kms_key_arn" {
  description = "ARN of the customer managed KMS key encrypting the topic. Its key policy must let s3.amazonaws.com use it (AWS managed keys cannot: S3 could not publish)."
  type        = string

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "create_queue" {
  description = "Subscribe an SQS queue to the topic. False leaves only the topic, for S3 -> SNS -> Lambda."
  type        = bool
  default     = true
}

variable "create_dlq" {
  description = "Create the dead-letter queue `<name>-dlq`: the queue's redrive target, or without a queue, the dead-letter target of the function subscribed to the topic (asynchronous invocations that failed every retry)."
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

variable "tags" {
  description = "Tags applied to every resource of this module."
  type        = map(string)
  default     = {}
}
