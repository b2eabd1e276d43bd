variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "eu-west-1"
}

variable "bucket_name_suffix" {
  description = "Suffix making the bucket names globally unique (e.g. \"-<account id>\")."
  type        = string
  default     = ""
}

variable "alarm_email_addresses" {
  description = "Who gets the alarms."
  type        = list(string)
  default     = []
}

variable "sqlserver_host" {
  description = "Host name of the SQL Server the table sync reads."
  type        = string
  default     = "sqlserver.example.internal"
}

variable "sqlserver_cidr_blocks" {
  description = "CIDR blocks of the SQL Server host(s)."
  type        = list(string)
  default     = ["10.70.0.0/24"]
}

variable "sqlserver_secret_arn" {
  description = "Existing secret with the SQL Server credentials; null lets the module create an empty one."
  type        = string
  default     = null
}
