locals {
  # Every deployed function by key, with the pipeline it belongs to.
  functions = merge({}, [for pipeline, m in local.pipeline_modules : {
    for key, function in m.functions : key => merge(function, { pipeline = pipeline })
  }]...)
  buckets = merge({}, [for m in values(local.pipeline_modules) : m.buckets]...)
}

output "name_prefix" {
  description = "`<name>-<environment>`: the prefix of every resource name."
  value       = local.name
}

output "pipelines" {
  description = <<-EOT
    Every pipeline the module knows, deployed or not: enabled, functions (its keys in `functions`),
    packages (the build/manifest.json entries they are built from), vpc (its functions run in the
    private subnets), gateway_endpoints (the VPC gateway endpoints it needs besides S3) and
    unified_database (it uses the unified PostgreSQL database). Local tools iterate over the
    enabled ones.
  EOT
  value = { for k, p in local.pipelines : k => {
    enabled           = local.enabled[k]
    functions         = p.functions
    packages          = local.pipeline_packages[k]
    vpc               = p.vpc
    gateway_endpoints = try(p.gateway_endpoints, [])
    unified_database  = p.database != null
  } }
}

output "functions" {
  description = <<-EOT
    Every deployed function by key (its package in build/manifest.json, or `<package>_<role>` when
    one package is deployed as several functions): pipeline, function_name,
    arn, role_arn, role_name, log_group_name, handler, timeout, memory_size,
    environment_variables, trigger (sqs | dynamodb | sns | eventbridge | schedule | invoke) and
    event_source { bucket, prefixes, topic_arn, rule_arn, queue_url, queue_arn, dlq_url, dlq_arn,
    batch_size, maximum_concurrency, sns_topic_arn, schedule_expression, stream_arn }. Everything a
    local event router needs to reproduce the wiring.
  EOT
  value       = local.functions
}

output "buckets" {
  description = "Bucket names by purpose (landing: file loader, migrations: schema migrations, cdc_staging and cdc_lake: CDC data lake)."
  value       = { for purpose, b in local.buckets : purpose => b.name }
}

output "bucket_arns" {
  description = "Bucket ARNs by purpose, as in `buckets`."
  value       = { for purpose, b in local.buckets : purpose => b.arn }
}

output "landing_bucket_arn" {
  description = "ARN of the file loader's landing bucket."
  value       = try(local.buckets.landing.arn, null)
}

output "migrations_bucket_arn" {
  description = "ARN of the schema migrations' bucket."
  value       = try(local.buckets.migrations.arn, null)
}

output "database" {
  description = "The unified PostgreSQL database (when a pipeline uses it): identifier, endpoint (direct), connect_endpoint (the proxy if any), port, name, master_username, master_user_secret_arn, proxy_endpoint. With create_database = false, the existing database's host, port, name and secret; identifier and master_username are null."
  value = local.needs_database ? {
    identifier             = module.database.instance_identifier
    endpoint               = local.instance_endpoint
    connect_endpoint       = local.connect_endpoint
    port                   = var.db_port
    name                   = var.db_name
    master_username        = module.database.instance_identifier == null ? null : var.db_username
    master_user_secret_arn = local.master_secret_arn
    proxy_endpoint         = module.database.proxy_endpoint
  } : null
}

output "db_instance_arn" {
  description = "ARN of the RDS instance this module created."
  value       = module.database.instance_arn
}

output "db_instance_resource_id" {
  description = "Resource id (db-...) of the RDS instance this module created, as IAM database authentication and CloudWatch name it."
  value       = module.database.instance_resource_id
}

output "db_master_user_secret_arn" {
  description = "ARN of the master user's secret: the RDS-managed one, or db_master_user_secret_arn."
  value       = local.needs_database ? local.master_secret_arn : null
}

output "network" {
  description = "VPC, private subnets, route tables, security groups and endpoints (when a pipeline needs the network)."
  value = local.needs_network ? {
    vpc_id                       = module.network.vpc_id
    private_subnet_ids           = module.network.private_subnet_ids
    private_route_table_ids      = module.network.private_route_table_ids
    lambda_security_group_id     = module.network.lambda_security_group_id
    database_security_group_id   = module.network.database_security_group_id
    s3_gateway_endpoint_id       = module.network.s3_gateway_endpoint_id
    dynamodb_gateway_endpoint_id = module.network.dynamodb_gateway_endpoint_id
    interface_endpoint_ids       = module.network.interface_endpoint_ids
    table_sync_security_group_id = module.table_sync.source_security_group_id
    backfill_security_group_id   = module.backfill.security_group_id
  } : null
}

output "kms_key_arn" {
  description = "Customer managed KMS key encrypting topics, log groups and created secrets; the one the module creates also encrypts the pipeline buckets unless s3_kms_key_arn is set."
  value       = local.kms_key_arn
}

output "kms_key_alias" {
  description = "Alias of the KMS key this module created (alias/<name>-<environment>-pipelines)."
  value       = try(aws_kms_alias.this[0].name, null)
}

output "kms_key_alias_arn" {
  description = "ARN of the alias of the KMS key this module created."
  value       = try(aws_kms_alias.this[0].arn, null)
}

output "alarm_topic_arn" {
  description = "SNS topic every alarm notifies."
  value       = local.alarm_topic_arn
}

output "table_sync_source_secret_arn" {
  description = "Secret of the table sync's source credentials. If this module created it, set its value out of band (see docs/terraform.md)."
  value       = module.table_sync.source_secret_arn
}

output "table_sync_odbc_layer_arn" {
  description = "ARN of the ODBC layer version (unixODBC + FreeTDS) the table sync runs with."
  value       = module.table_sync.odbc_layer_arn
}

output "backfill_source_secret_arn" {
  description = "Secret of the backfill database's credentials (backfill.source). If this module created it, set its value out of band (see docs/backfill.md)."
  value       = module.backfill.source_secret_arn
}

output "schema_migrations_results_topic_arn" {
  description = "SNS topic with the result of every migration run."
  value       = module.schema_migrations.results_topic_arn
}

output "dynamodb_migration_target_table_arn" {
  description = "ARN of the DynamoDB migration's target table (created or existing)."
  value       = module.dynamodb_migration.target_table_arn
}

output "dynamodb_migration_state_table_name" {
  description = "The DynamoDB migration's state table (copy checkpoints, keys the stream applied)."
  value       = module.dynamodb_migration.state_table_name
}

output "dynamodb_migration_results_topic_arn" {
  description = "SNS topic receiving every verify result of the DynamoDB migration (subscribe for the cutover)."
  value       = module.dynamodb_migration.results_topic_arn
}

output "dynamodb_migration_sync_failures_queue_url" {
  description = "Queue receiving the metadata of stream batches the DynamoDB migration's sync gave up on."
  value       = module.dynamodb_migration.sync_failures_queue_url
}

output "file_loader_routes" {
  description = "The file loader's routes as passed in ROUTES."
  value       = local.enabled.file_loader ? module.file_loader.routes : null
}

output "cdc_lake" {
  description = "The CDC data lake (when enabled): staging_bucket and staging_folder (DMS writes <folder>/<schema>/<table>/), lake_bucket and lake_prefix, source_secret_arn (set its value out of band when this module created it), dms (replication instance or config, task, endpoints, security group, what DMS writes), catalog (Glue database and tables), apply_tables, queue_url and dlq_url."
  value = local.enabled.cdc_lake ? {
    staging_bucket    = module.cdc_lake.staging_bucket_name
    staging_folder    = var.cdc_lake.staging_folder
    lake_bucket       = module.cdc_lake.lake_bucket_name
    lake_prefix       = module.cdc_lake.lake_prefix
    source_secret_arn = module.cdc_lake.source_secret_arn
    dms               = module.cdc_lake.dms
    catalog           = module.cdc_lake.catalog
    apply_tables      = module.cdc_lake.apply_tables
    queue_url         = module.cdc_lake.queue_url
    dlq_url           = module.cdc_lake.dlq_url
  } : null
}

output "lambda_runtime" {
  description = "Runtime and architecture the functions run on (equal to build/manifest.json)."
  value       = { runtime = var.lambda_runtime, architecture = var.lambda_architecture }
}
