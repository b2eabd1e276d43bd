variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "eu-west-1"
}

variable "packages_dir" {
  description = "Directory written by scripts/fetch_packages.py (manifest.json and the zips). Null uses packages/ beside this configuration."
  type        = string
  default     = null
}

variable "lambda_architecture" {
  description = "Architecture of the functions: the --arch the packages were fetched for (x86_64 or arm64)."
  type        = string
  default     = "x86_64"
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
