variable "create" {
  description = "Whether to create the bucket and its configuration."
  type        = bool
  default     = true
}

variable "bucket" {
  description = "Name of the bucket (globally unique, 3-63 characters, lower case)."
  type        = string

  validation {
    condition     = var.bucket == null || (can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket)) && !can(regex("\\.\\.", var.bucket)))
    error_message = "bucket must be 3-63 characters of lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit."
  }
}

variable "force_destroy" {
  description = "Allow `terraform destroy` to delete a bucket that still holds objects. Keep false outside throwaway environments."
  type        = bool
  default     = false
}

variable "versioning_enabled" {
  description = "Object versioning. Always on for these buckets: the pipelines key their exactly-once ledgers on object versions, so false is refused."
  type        = bool
  default     = true

  validation {
    condition     = var.versioning_enabled
    error_message = "versioning_enabled cannot be false: the pipelines' exactly-once ledgers key on object versions."
  }
}

variable "kms_key_arn" {
  description = "ARN of a KMS key for SSE-KMS (with an S3 Bucket Key). Null uses SSE-S3 (AES-256)."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:...) or null."
  }
}

variable "lifecycle_rules" {
  description = <<-EOT
    Lifecycle rules. Each rule applies to objects under `prefix` ("" = whole bucket):
    `expiration_days` expires current versions, `noncurrent_version_expiration_days` removes old
    versions, `transitions` move current versions to another storage class after `days`.
    Incomplete multipart uploads are always aborted after `abort_incomplete_multipart_upload_days`.
  EOT
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

  validation {
    condition     = length(distinct([for r in var.lifecycle_rules : r.id])) == length(var.lifecycle_rules)
    error_message = "lifecycle_rules ids must be unique."
  }

  validation {
    condition = alltrue([for r in var.lifecycle_rules : alltrue([
      for t in r.transitions : contains(["STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER", "GLACIER_IR", "DEEP_ARCHIVE"], t.storage_class)
    ])])
    error_message = "transitions storage_class must be one of STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER, GLACIER_IR, DEEP_ARCHIVE."
  }

  validation {
    condition = alltrue([for r in var.lifecycle_rules : (
      (r.expiration_days == null ? true : r.expiration_days >= 1) &&
      (r.noncurrent_version_expiration_days == null ? true : r.noncurrent_version_expiration_days >= 1)
    )])
    error_message = "expiration_days and noncurrent_version_expiration_days must be at least 1 when set."
  }
}

variable "abort_incomplete_multipart_upload_days" {
  description = "Days after which incomplete multipart uploads are aborted (applies to the whole bucket)."
  type        = number
  default     = 7

  validation {
    condition     = var.abort_incomplete_multipart_upload_days >= 1
    error_message = "abort_incomplete_multipart_upload_days must be at least 1."
  }
}

variable "policy_statements" {
  description = "Extra bucket policy statements (IAM JSON policy statement objects), merged with the TLS-only deny."
  type        = any
  default     = []
}

variable "kms_encryption" {
  description = "Whether the bucket uses SSE-KMS with `kms_key_arn`. Set it when the key is created in the same plan, so the plan shows the algorithm (an ARN not known yet cannot tell); null: SSE-KMS exactly when `kms_key_arn` is set."
  type        = bool
  default     = null
}

variable "access_logs" {
  description = "S3 server access logs of this bucket: { bucket, prefix } (prefix defaults to `<bucket>/`); null turns them off. An object, so whether logging is on is known at plan time even when the log bucket is created in the same plan. The log bucket must let logging.s3.amazonaws.com write and must not use SSE-KMS default encryption (S3 log delivery supports SSE-S3 only)."
  type = object({
    bucket = string
    prefix = optional(string)
  })
  default = null
}

variable "tags" {
  description = "Tags applied to every resource of this module."
  type        = map(string)
  default     = {}
}

variable "bucket_tags" {
  description = "Additional tags for the bucket."
  type        = map(string)
  default     = {}
}
