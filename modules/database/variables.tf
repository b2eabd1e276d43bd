variable "create" {
  description = "Whether to create the database (and proxy)."
  type        = bool
  default     = true
}

variable "identifier" {
  description = "Identifier of the RDS instance; also prefixes the parameter group, subnet group and proxy."
  type        = string

  validation {
    condition     = var.identifier == null || (can(regex("^[a-z][a-z0-9-]{0,50}[a-z0-9]$", var.identifier)) && !can(regex("--", var.identifier)))
    error_message = "identifier must start with a letter, use lower-case letters, digits and single hyphens, end with a letter or digit, and be at most 52 characters."
  }
}

variable "engine_version" {
  description = "PostgreSQL version (major such as \"16\", or major.minor). The parameter group family follows the major version."
  type        = string
  default     = "16"

  validation {
    condition     = can(regex("^(1[3-9]|[2-9][0-9])(\\.[0-9]+)?$", var.engine_version))
    error_message = "engine_version must be a PostgreSQL version 13 or later, such as \"16\" or \"16.4\"."
  }
}

variable "instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.micro"

  validation {
    condition     = can(regex("^db\\.[a-z0-9]+\\.[a-z0-9]+$", var.instance_class))
    error_message = "instance_class must look like db.t4g.micro."
  }
}

variable "allocated_storage" {
  description = "Initial storage in GiB."
  type        = number
  default     = 20

  validation {
    condition     = var.allocated_storage >= 20 && var.allocated_storage <= 65536
    error_message = "allocated_storage must be between 20 and 65536 GiB."
  }
}

variable "max_allocated_storage" {
  description = "Upper bound of storage autoscaling in GiB (0 disables autoscaling)."
  type        = number
  default     = 100

  validation {
    condition     = var.max_allocated_storage == 0 || var.max_allocated_storage >= var.allocated_storage
    error_message = "max_allocated_storage must be 0 or at least allocated_storage."
  }
}

variable "db_name" {
  description = "Name of the database created on the instance (what the pipelines write to)."
  type        = string
  default     = "pipelines"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_name))
    error_message = "db_name must be a lower-case identifier of at most 63 characters starting with a letter."
  }
}

variable "username" {
  description = "Master user name. Its password is generated and kept in Secrets Manager by RDS (manage_master_user_password)."
  type        = string
  default     = "pipelines_admin"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.username)) && !contains(["postgres", "admin", "rdsadmin"], var.username)
    error_message = "username must be a lower-case identifier starting with a letter, and not a reserved name (postgres, admin, rdsadmin)."
  }
}

variable "port" {
  description = "Port the database listens on."
  type        = number
  default     = 5432

  validation {
    condition     = var.port >= 1150 && var.port <= 65535
    error_message = "port must be between 1150 and 65535 (RDS limits)."
  }
}

variable "subnet_ids" {
  description = "Private subnets (2+ AZs) of the DB subnet group."
  type        = list(string)
}

variable "vpc_id" {
  description = "VPC of the database (used for the proxy's security group)."
  type        = string
}

variable "security_group_ids" {
  description = "Security groups of the instance (the network module's database group)."
  type        = list(string)
}

variable "client_security_group_ids" {
  description = "Security groups of the clients (functions) allowed to reach the proxy."
  type        = list(string)
  default     = []
}

variable "multi_az" {
  description = "Run a standby in a second AZ."
  type        = bool
  default     = false
}

variable "backup_retention_period" {
  description = "Days of automated backups (0 disables them; production wants 7 or more)."
  type        = number
  default     = 7

  validation {
    condition     = var.backup_retention_period >= 0 && var.backup_retention_period <= 35
    error_message = "backup_retention_period must be between 0 and 35."
  }
}

variable "deletion_protection" {
  description = "Refuse to delete the instance."
  type        = bool
  default     = true
}

variable "skip_final_snapshot" {
  description = "Delete without a final snapshot (throwaway environments only)."
  type        = bool
  default     = false
}

variable "apply_immediately" {
  description = "Apply modifications now instead of in the next maintenance window."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  description = "KMS key encrypting storage. Null uses the AWS managed aws/rds key (storage is always encrypted)."
  type        = string
  default     = null
}

variable "master_user_secret_kms_key_arn" {
  description = "KMS key encrypting the master user secret. Null uses aws/secretsmanager."
  type        = string
  default     = null
}

variable "performance_insights_enabled" {
  description = "Enable Performance Insights (not available on every instance class)."
  type        = bool
  default     = false
}

variable "monitoring_interval" {
  description = "Enhanced Monitoring interval in seconds (0 disables it; creates a monitoring role otherwise)."
  type        = number
  default     = 0

  validation {
    condition     = contains([0, 1, 5, 10, 15, 30, 60], var.monitoring_interval)
    error_message = "monitoring_interval must be one of 0, 1, 5, 10, 15, 30, 60."
  }
}

variable "parameters" {
  description = "Extra parameters of the parameter group (rds.force_ssl = 1 is always set)."
  type = list(object({
    name         = string
    value        = string
    apply_method = optional(string, "pending-reboot")
  }))
  default = []

  validation {
    condition     = alltrue([for p in var.parameters : p.name != "rds.force_ssl" && contains(["immediate", "pending-reboot"], p.apply_method)])
    error_message = "parameters must not override rds.force_ssl, and apply_method must be immediate or pending-reboot."
  }
}

variable "create_proxy" {
  description = "Create an RDS Proxy (TLS required) in front of the instance; functions that load data connect through it."
  type        = bool
  default     = false
}

variable "proxy_auth_secrets" {
  description = "Secrets Manager secrets of further database users (least-privilege roles of the pipelines) the RDS Proxy logs in as, besides the master user: each an existing secret with JSON {\"username\", \"password\"} (`secret_arn`, its complete ARN), its KMS key when it is not aws/secretsmanager (`kms_key_arn`; the proxy role gets kms:Decrypt on it through Secrets Manager) and an optional `description`. Each becomes an `auth` entry of the proxy (SCRAM-SHA-256 from clients, so the role's password must be stored as SCRAM) and the proxy role may read it. Ignored without a proxy."
  type = list(object({
    secret_arn  = string
    kms_key_arn = optional(string)
    description = optional(string)
  }))
  default = []

  validation {
    condition     = alltrue([for s in var.proxy_auth_secrets : can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$", s.secret_arn))])
    error_message = "Every proxy_auth_secrets[*].secret_arn must be the complete ARN of a Secrets Manager secret, with the 6-character suffix Secrets Manager appends to the name (arn:aws:secretsmanager:<region>:<account>:secret:<name>-AbCdEf): IAM grants match the complete ARN only."
  }

  validation {
    condition     = alltrue([for s in var.proxy_auth_secrets : s.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", s.kms_key_arn))])
    error_message = "Every proxy_auth_secrets[*].kms_key_arn must be null or a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>; an alias cannot be granted kms:Decrypt)."
  }

  validation {
    condition     = length(distinct([for s in var.proxy_auth_secrets : s.secret_arn])) == length(var.proxy_auth_secrets)
    error_message = "proxy_auth_secrets must not name the same secret twice."
  }
}

variable "proxy_max_connections_percent" {
  description = "Share of max_connections the proxy may open."
  type        = number
  default     = 90

  validation {
    condition     = var.proxy_max_connections_percent >= 1 && var.proxy_max_connections_percent <= 100
    error_message = "proxy_max_connections_percent must be between 1 and 100."
  }
}

variable "proxy_idle_client_timeout" {
  description = "Seconds a client connection may idle before the proxy closes it."
  type        = number
  default     = 1800
}

variable "role_path" {
  description = "Path of the IAM roles this module creates (Enhanced Monitoring, RDS Proxy). Null uses \"/\"."
  type        = string
  default     = null

  validation {
    condition     = var.role_path == null || can(regex("^/([!-~]+/)?$", var.role_path))
    error_message = "role_path must start and end with \"/\", e.g. \"/data-pipelines/\"."
  }
}

variable "role_permissions_boundary" {
  description = "ARN of the managed policy that bounds the permissions of the IAM roles this module creates."
  type        = string
  default     = null

  validation {
    condition     = var.role_permissions_boundary == null || can(regex("^arn:aws[a-z-]*:iam::([0-9]{12}|aws):policy/.+$", var.role_permissions_boundary))
    error_message = "role_permissions_boundary must be an IAM policy ARN (arn:aws:iam::<account>:policy/<name>)."
  }
}

variable "tags" {
  description = "Tags applied to every resource of this module."
  type        = map(string)
  default     = {}
}
