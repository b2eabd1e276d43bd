variable "create" {
  description = "Whether to create the network resources (security groups and endpoints; the VPC too when `create_vpc`)."
  type        = bool
  default     = true
}

variable "name" {
  description = "Name prefix of every network resource."
  type        = string

  validation {
    condition     = var.name == null || can(regex("^[a-z0-9][a-z0-9-]{0,40}$", var.name))
    error_message = "name must be 1-41 characters of lower-case letters, digits and hyphens."
  }
}

variable "create_vpc" {
  description = "Create a VPC with private subnets. False adopts `vpc_id`, `private_subnet_ids` and `private_route_table_ids`."
  type        = bool
  default     = true
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC this module creates."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 24
    error_message = "vpc_cidr must be an IPv4 CIDR block of /24 or larger."
  }
}

variable "azs" {
  description = "Availability zones of the private subnets (at least 2). Empty uses <region>a and <region>b."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.azs) == 0 || length(var.azs) >= 2
    error_message = "azs must list at least 2 availability zones (RDS subnet groups need 2), or be empty."
  }
}

variable "private_subnet_cidrs" {
  description = "CIDR blocks of the private subnets, one per AZ. Empty carves /24s (or smaller, for small VPCs) out of `vpc_cidr`."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.private_subnet_cidrs : can(cidrhost(c, 0))])
    error_message = "private_subnet_cidrs must be IPv4 CIDR blocks."
  }
}

variable "vpc_id" {
  description = "Existing VPC to adopt when `create_vpc` is false."
  type        = string
  default     = null
}

variable "vpc_cidr_block" {
  description = "CIDR block of the adopted VPC (used for the endpoint security group). Required when `create_vpc` is false."
  type        = string
  default     = null
}

variable "private_subnet_ids" {
  description = "Existing private subnets (2+ AZs) to adopt when `create_vpc` is false."
  type        = list(string)
  default     = []
}

variable "private_route_table_ids" {
  description = "Route tables of the adopted private subnets; the S3 gateway endpoint is added to them."
  type        = list(string)
  default     = []
}

variable "create_s3_gateway_endpoint" {
  description = "Create the S3 gateway endpoint on the private route tables (set false if the adopted VPC already has one)."
  type        = bool
  default     = true
}

variable "create_dynamodb_gateway_endpoint" {
  description = "Create the DynamoDB gateway endpoint on the private route tables (for functions that use DynamoDB; false if the adopted VPC already has one)."
  type        = bool
  default     = false
}

variable "enable_interface_endpoints" {
  description = "Create interface endpoints with private DNS so functions in private subnets reach AWS APIs without NAT."
  type        = bool
  default     = true
}

variable "interface_endpoint_services" {
  description = "Services that get an interface endpoint when `enable_interface_endpoints` is true."
  type        = list(string)
  default     = ["secretsmanager", "sqs", "sns", "logs", "sts"]

  validation {
    condition     = alltrue([for s in var.interface_endpoint_services : can(regex("^[a-z0-9.-]+$", s))])
    error_message = "interface_endpoint_services must be service names such as secretsmanager or sqs."
  }
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
  description = "Extra CIDRs the Lambda group may reach on 443 (e.g. [\"0.0.0.0/0\"] when an adopted VPC routes through NAT instead of endpoints)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.https_egress_cidrs : can(cidrhost(c, 0))])
    error_message = "https_egress_cidrs must be IPv4 CIDR blocks."
  }
}

variable "enable_database_access" {
  description = "Let the Lambda group reach a PostgreSQL database on `database_port`, and the database admit it. False when no function uses one."
  type        = bool
  default     = true
}

variable "create_database_security_group" {
  description = "Create the database's security group (for a database the caller creates). False adds the rules to `database_security_group_id`, the group of an existing database."
  type        = bool
  default     = true
}

variable "database_security_group_id" {
  description = "Security group of an existing database (when `create_database_security_group` is false): a rule admitting the Lambda group on `database_port` is added to it."
  type        = string
  default     = null

  validation {
    condition     = var.database_security_group_id == null || can(regex("^sg-[0-9a-f]{8,17}$", var.database_security_group_id))
    error_message = "database_security_group_id must be a security group id (sg-...)."
  }
}

variable "database_port" {
  description = "Port of the database; reachable only from the Lambda security group."
  type        = number
  default     = 5432

  validation {
    condition     = var.database_port >= 1 && var.database_port <= 65535
    error_message = "database_port must be a TCP port."
  }
}

variable "enable_flow_logs" {
  description = "Send VPC flow logs (rejected and accepted traffic) of a created VPC to CloudWatch Logs."
  type        = bool
  default     = true
}

variable "flow_log_retention_days" {
  description = "Retention of the flow log group."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_log_retention_days)
    error_message = "flow_log_retention_days must be a value CloudWatch Logs accepts."
  }
}

variable "log_kms_key_arn" {
  description = "KMS key encrypting the flow log group. Null uses CloudWatch's default encryption."
  type        = string
  default     = null
}

variable "role_path" {
  description = "Path of the flow logs IAM role. Null uses \"/\"."
  type        = string
  default     = null

  validation {
    condition     = var.role_path == null || can(regex("^/([!-~]+/)?$", var.role_path))
    error_message = "role_path must start and end with \"/\", e.g. \"/data-pipelines/\"."
  }
}

variable "role_permissions_boundary" {
  description = "ARN of the managed policy that bounds the permissions of the flow logs IAM role."
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
