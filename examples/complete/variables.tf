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

variable "preferences_table_name" {
  description = "The DynamoDB table the migration reshapes (its stream must be on, NEW_AND_OLD_IMAGES)."
  type        = string
  default     = "userpreferences"
}

variable "preferences_stream_arn" {
  description = "ARN of that table's current stream (aws_dynamodb_table.<name>.stream_arn in the application's configuration)."
  type        = string
  default     = "arn:aws:dynamodb:eu-west-1:111122223333:table/userpreferences/stream/2026-01-01T00:00:00.000"
}
