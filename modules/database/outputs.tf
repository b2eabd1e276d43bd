output "instance_identifier" {
  description = "Identifier of the RDS instance."
  value       = try(aws_db_instance.this[0].identifier, null)
}

output "instance_arn" {
  description = "ARN of the RDS instance."
  value       = try(aws_db_instance.this[0].arn, null)
}

output "instance_resource_id" {
  description = "Resource id of the RDS instance (db-...), as IAM database authentication and CloudWatch name it."
  value       = try(aws_db_instance.this[0].resource_id, null)
}

output "endpoint" {
  description = "Host name of the instance (direct connection; schema migrations use it)."
  value       = try(aws_db_instance.this[0].address, null)
}

output "port" {
  description = "Port of the database."
  value       = var.port
}

output "db_name" {
  description = "Name of the database the pipelines write to."
  value       = var.db_name
}

output "master_username" {
  description = "Master user name."
  value       = var.username
}

output "master_user_secret_arn" {
  description = "ARN of the Secrets Manager secret RDS keeps the master credentials in."
  value       = local.secret_arn
}

output "master_user_secret_kms_key_arn" {
  description = "KMS key of the master secret (null = aws/secretsmanager)."
  value       = var.master_user_secret_kms_key_arn
}

output "parameter_group_name" {
  description = "Name of the parameter group (rds.force_ssl = 1)."
  value       = try(aws_db_parameter_group.this[0].name, null)
}

output "proxy_endpoint" {
  description = "Endpoint of the RDS Proxy (null without a proxy)."
  value       = try(aws_db_proxy.this[0].endpoint, null)
}

output "proxy_security_group_id" {
  description = "Security group of the RDS Proxy."
  value       = try(aws_security_group.proxy[0].id, null)
}

output "connect_endpoint" {
  description = "Where loading functions connect: the proxy when there is one, else the instance."
  value       = local.create_proxy ? try(aws_db_proxy.this[0].endpoint, null) : try(aws_db_instance.this[0].address, null)
}
