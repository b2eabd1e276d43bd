output "source_secret_arn" {
  description = "Secret holding the source credentials. When this module created it, set its value out of band: aws secretsmanager put-secret-value --secret-id <arn> --secret-string '{\"username\":...,\"password\":...}'."
  value       = local.create ? local.secret_arn : null
}

output "source_security_group_id" {
  description = "Security group allowing the function to reach the source database."
  value       = try(aws_security_group.source[0].id, null)
}

output "odbc_layer_arn" {
  description = "ARN of the ODBC layer version attached to the function."
  value       = try(aws_lambda_layer_version.odbc[0].arn, null)
}

output "tables" {
  description = "The tables, as passed to the function in SYNC_TABLES."
  value       = local.tables
}

output "buckets" {
  description = "Buckets of the pipeline by purpose: none (the table sync reads a database)."
  value       = {}
}

output "functions" {
  description = "The pipeline's functions by key (table_sync) as the lambda_function module's `summary` describes them: name, ARN, role, handler, environment, trigger (schedule) and event source."
  value       = local.create ? { table_sync = module.function.summary } : {}
}
