output "security_group_id" {
  description = "Security group of the replication: egress to the source database and to HTTPS endpoints only. The source's own group must admit it on the source port."
  value       = try(aws_security_group.this[0].id, null)
}

output "replication_subnet_group_id" {
  description = "Replication subnet group."
  value       = try(aws_dms_replication_subnet_group.this[0].id, null)
}

output "replication_instance_arn" {
  description = "ARN of the replication instance (null with DMS Serverless)."
  value       = try(aws_dms_replication_instance.this[0].replication_instance_arn, null)
}

output "replication_task_arn" {
  description = "ARN of the full-load-and-cdc replication task (null with DMS Serverless)."
  value       = try(aws_dms_replication_task.this[0].replication_task_arn, null)
}

output "replication_config_arn" {
  description = "ARN of the DMS Serverless replication config (null with a replication instance)."
  value       = try(aws_dms_replication_config.this[0].arn, null)
}

output "source_endpoint_arn" {
  description = "ARN of the source endpoint."
  value       = try(aws_dms_endpoint.source[0].endpoint_arn, null)
}

output "target_endpoint_arn" {
  description = "ARN of the S3 target endpoint."
  value       = try(aws_dms_s3_endpoint.target[0].endpoint_arn, null)
}

output "source_secret_role_arn" {
  description = "Role DMS assumes to read the source secret (and decrypt it)."
  value       = try(aws_iam_role.this["source"].arn, null)
}

output "target_role_arn" {
  description = "Role DMS assumes to write the staging folder with the target KMS key."
  value       = try(aws_iam_role.this["target"].arn, null)
}

output "staging" {
  description = "What DMS writes, for the readers of the staging bucket: `bucket`, `folder` (objects land under <folder>/<schema>/<table>/), `data_format`, `compression_type`, `header` (CSV header row), `timestamp_column_name`, `change_sequence_column_name` (null when not added) and `kms_key_arn`. Null when create = false."
  value = local.create ? {
    bucket                      = var.target.bucket_name
    folder                      = local.folder
    data_format                 = var.target.data_format
    compression_type            = var.target.compression_type
    header                      = var.target.add_column_name
    timestamp_column_name       = var.target.timestamp_column_name
    change_sequence_column_name = var.change_sequence_column_name
    kms_key_arn                 = var.target.kms_key_arn
  } : null
}

output "table_mappings" {
  description = "The table mappings JSON the task (or serverless config) replicates."
  value       = local.create ? local.table_mappings : null
}

output "task_settings" {
  description = "The task settings JSON (CloudWatch logging on, DO_NOTHING full-load preparation)."
  value       = local.create ? local.task_settings : null
}

output "event_subscription_arns" {
  description = "DMS event subscriptions into the alarm topic, by source (`instance`, `task`)."
  value       = { for k, s in aws_dms_event_subscription.this : k => s.arn }
}

output "dms_iam_role_names" {
  description = "The account-wide roles DMS uses: created here (create_dms_iam_roles) or expected to exist."
  value       = local.create ? (var.create_dms_iam_roles ? keys(local.global_roles) : local.required_global_roles) : []
}
