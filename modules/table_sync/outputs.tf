output "source_secret_arn" {
  description = "Secret holding the source credentials. When this module created it, set its value out of band: aws secretsmanager put-secret-value --secret-id <arn> --secret-string '{\"username\":...,\"password\":...}'."
  value       = local.secret_arn
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

output "function" {
  description = "The function: name, ARN, role, handler, timeout, memory, environment and schedule."
  value = {
    function_name         = module.function.function_name
    arn                   = module.function.function_arn
    role_arn              = module.function.role_arn
    role_name             = module.function.role_name
    log_group_name        = module.function.log_group_name
    handler               = module.function.handler
    timeout               = module.function.timeout
    memory_size           = module.function.memory_size
    environment_variables = module.function.environment_variables
    schedule_arn          = module.function.schedule_arn
    schedule_expression   = module.function.schedule_expression
  }
}
