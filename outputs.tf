locals {
  functions = merge(
    var.enable_file_loader ? {
      file_loader = merge(module.file_loader.function, {
        trigger = "sqs"
        event_source = {
          bucket              = module.file_loader.bucket_name
          topic_arn           = module.file_loader.topic_arn
          queue_url           = module.file_loader.queue_url
          queue_arn           = module.file_loader.queue_arn
          dlq_url             = module.file_loader.dlq_url
          dlq_arn             = module.file_loader.dlq_arn
          prefixes            = module.file_loader.notification_prefixes
          batch_size          = var.file_loader.batch_size
          maximum_concurrency = var.file_loader.maximum_concurrency
          sns_topic_arn       = null
          schedule_expression = null
        }
      })
    } : {},
    var.enable_table_sync ? {
      table_sync = merge(module.table_sync.function, {
        trigger = "schedule"
        event_source = {
          bucket              = null
          topic_arn           = null
          queue_url           = null
          queue_arn           = null
          dlq_url             = null
          dlq_arn             = null
          prefixes            = []
          batch_size          = null
          maximum_concurrency = 1
          sns_topic_arn       = null
          schedule_expression = var.table_sync.schedule_expression
        }
      })
    } : {},
    var.enable_schema_migrations ? {
      schema_migrations = merge(module.schema_migrations.function, {
        trigger = "sns"
        event_source = {
          bucket              = module.schema_migrations.bucket_name
          topic_arn           = module.schema_migrations.topic_arn
          queue_url           = null
          queue_arn           = null
          dlq_url             = module.schema_migrations.dlq_url
          dlq_arn             = module.schema_migrations.dlq_arn
          prefixes            = [""]
          batch_size          = null
          maximum_concurrency = var.schema_migrations.reserved_concurrency
          sns_topic_arn       = module.schema_migrations.topic_arn
          schedule_expression = null
        }
      })
    } : {},
  )
}

output "name_prefix" {
  description = "`<name>-<environment>`: the prefix of every resource name."
  value       = local.name
}

output "functions" {
  description = <<-EOT
    Every deployed function by pipeline (file_loader, table_sync, schema_migrations): function_name,
    arn, role_arn, role_name, log_group_name, handler, timeout, memory_size, environment_variables,
    trigger (sqs | sns | schedule) and event_source { bucket, topic_arn, queue_url, queue_arn,
    dlq_url, dlq_arn, prefixes, batch_size, maximum_concurrency, sns_topic_arn,
    schedule_expression }. Everything a local event router needs to reproduce the wiring.
  EOT
  value       = local.functions
}

output "buckets" {
  description = "Bucket names by purpose: landing (file loader) and migrations."
  value = merge(
    var.enable_file_loader ? { landing = module.file_loader.bucket_name } : {},
    var.enable_schema_migrations ? { migrations = module.schema_migrations.bucket_name } : {},
  )
}

output "database" {
  description = "The unified PostgreSQL database: endpoint (direct), connect_endpoint (proxy if any), port, name, master_username, master_user_secret_arn, proxy_endpoint."
  value = local.any_pipeline ? {
    identifier             = module.database.instance_identifier
    endpoint               = module.database.endpoint
    connect_endpoint       = module.database.connect_endpoint
    port                   = module.database.port
    name                   = module.database.db_name
    master_username        = module.database.master_username
    master_user_secret_arn = module.database.master_user_secret_arn
    proxy_endpoint         = module.database.proxy_endpoint
  } : null
}

output "network" {
  description = "VPC, private subnets, route tables, security groups and endpoints."
  value = local.any_pipeline ? {
    vpc_id                       = module.network.vpc_id
    private_subnet_ids           = module.network.private_subnet_ids
    private_route_table_ids      = module.network.private_route_table_ids
    lambda_security_group_id     = module.network.lambda_security_group_id
    database_security_group_id   = module.network.database_security_group_id
    dms_security_group_id        = module.network.dms_security_group_id
    s3_gateway_endpoint_id       = module.network.s3_gateway_endpoint_id
    interface_endpoint_ids       = module.network.interface_endpoint_ids
    table_sync_security_group_id = module.table_sync.source_security_group_id
  } : null
}

output "kms_key_arn" {
  description = "Customer managed KMS key encrypting topics, log groups and created secrets."
  value       = local.kms_key_arn
}

output "alarm_topic_arn" {
  description = "SNS topic every alarm notifies."
  value       = local.alarm_topic_arn
}

output "table_sync_source_secret_arn" {
  description = "Secret of the table sync's source credentials. If this module created it, set its value out of band (see docs/terraform.md)."
  value       = var.enable_table_sync ? module.table_sync.source_secret_arn : null
}

output "schema_migrations_results_topic_arn" {
  description = "SNS topic with the result of every migration run."
  value       = var.enable_schema_migrations ? module.schema_migrations.results_topic_arn : null
}

output "file_loader_routes" {
  description = "The file loader's routes as passed in ROUTES."
  value       = var.enable_file_loader ? module.file_loader.routes : null
}

output "lambda_runtime" {
  description = "Runtime and architecture the functions run on (equal to build/manifest.json)."
  value       = { runtime = var.lambda_runtime, architecture = var.lambda_architecture }
}
