output "staging_bucket_name" {
  description = "Staging bucket DMS writes to."
  value       = module.staging.bucket_id
}

output "lake_bucket_name" {
  description = "Lake bucket: <prefix>/<schema>/<table>/year=/month=/day=/hour=/<file>."
  value       = module.lake.bucket_id
}

output "lake_prefix" {
  description = "Key prefix of the lake in its bucket."
  value       = var.lake_prefix
}

output "topic_arn" {
  description = "SNS topic receiving the staging bucket's ObjectCreated notifications."
  value       = module.events.topic_arn
}

output "queue_url" {
  description = "URL of the queue feeding the function."
  value       = module.events.queue_url
}

output "dlq_url" {
  description = "URL of the dead-letter queue."
  value       = module.events.dlq_url
}

output "apply_tables" {
  description = "The tables applied to PostgreSQL, as passed to the function in APPLY_TABLES."
  value       = local.apply_tables
}

output "source_secret_arn" {
  description = "Secret DMS reads the source credentials from. If this module created it, set its value out of band."
  value       = local.create ? local.secret_arn : null
}

output "dms" {
  description = "The DMS replication: replication_instance_arn, replication_task_arn (or replication_config_arn with DMS Serverless), source_endpoint_arn, target_endpoint_arn, security_group_id, staging (what DMS writes) and table_mappings."
  value = local.create ? {
    replication_instance_arn = module.dms.replication_instance_arn
    replication_task_arn     = module.dms.replication_task_arn
    replication_config_arn   = module.dms.replication_config_arn
    source_endpoint_arn      = module.dms.source_endpoint_arn
    target_endpoint_arn      = module.dms.target_endpoint_arn
    security_group_id        = module.dms.security_group_id
    staging                  = module.dms.staging
    table_mappings           = module.dms.table_mappings
  } : null
}

output "catalog" {
  description = "The Glue database and its tables (by name: the replicated schema and table, lower case, joined by _). Null without a catalog."
  value = local.create && var.create_catalog ? {
    database = aws_glue_catalog_database.this[0].name
    tables   = { for name, t in aws_glue_catalog_table.this : name => t.name }
  } : null
}

output "buckets" {
  description = "Buckets of the pipeline by purpose: cdc_staging and cdc_lake = { name, arn }."
  value = local.create ? {
    cdc_staging = { name = module.staging.bucket_id, arn = module.staging.bucket_arn }
    cdc_lake    = { name = module.lake.bucket_id, arn = module.lake.bucket_arn }
  } : {}
}

output "functions" {
  description = "The pipeline's functions by key (cdc_lake) as the lambda_function module's `summary` describes them."
  value       = local.create ? { cdc_lake = module.function.summary } : {}
}
