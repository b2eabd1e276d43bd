output "functions" {
  description = "The deployed functions and their wiring."
  value       = module.pipelines.functions
}

output "buckets" {
  description = "Landing and migrations buckets."
  value       = module.pipelines.buckets
}

output "database" {
  description = "Database endpoint, proxy endpoint, port, name and master secret ARN."
  value       = module.pipelines.database
}

output "table_sync_source_secret_arn" {
  description = "Secret holding the SQL Server credentials."
  value       = module.pipelines.table_sync_source_secret_arn
}
