# Production: standby in a second AZ, protected from deletion, long retention, RDS Proxy.
name        = "pipelines"
environment = "prod"
tags = {
  Owner       = "data-platform"
  CostCenter  = "data"
  Criticality = "high"
}

enable_file_loader       = true
enable_table_sync        = true
enable_schema_migrations = true

log_level          = "INFO"
log_retention_days = 365

vpc_cidr                   = "10.41.0.0/16"
azs                        = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
enable_interface_endpoints = true
enable_flow_logs           = true

db_engine_version               = "16"
db_instance_class               = "db.r7g.large"
db_allocated_storage            = 100
db_max_allocated_storage        = 1000
db_multi_az                     = true
db_backup_retention_period      = 14
db_deletion_protection          = true
db_skip_final_snapshot          = false
db_apply_immediately            = false
db_performance_insights_enabled = true
db_monitoring_interval          = 60
# max_connections follows instance memory on RDS; the proxy multiplexes the functions' connections.
create_db_proxy = true
db_parameters = [
  { name = "log_min_duration_statement", value = "1000", apply_method = "immediate" },
]

bucket_force_destroy           = false
secret_recovery_window_in_days = 30
# S3 server access logs of the landing and migrations buckets, into a log bucket this module creates.
s3_access_logs                  = { expiration_days = 400 }
kms_key_deletion_window_in_days = 30

alarm_email_addresses = ["data-platform-oncall@example.com"]

file_loader = {
  routes = [
    { prefix = "sales/", suffix = ".csv", table = "staging.sales", format = "csv", mode = "append" },
    { prefix = "sales/", suffix = ".csv.gz", table = "staging.sales", format = "csv", mode = "append" },
    { prefix = "customers/", table = "staging.customers", format = "jsonl", mode = "upsert", key_columns = ["customer_id"], on_error = "quarantine" },
  ]
  memory_size         = 2048
  timeout             = 900
  maximum_concurrency = 20
  max_receive_count   = 5
  lifecycle_rules = [
    { id = "expire-loaded-objects", expiration_days = 90, noncurrent_version_expiration_days = 30 },
  ]
}

table_sync = {
  source = {
    engine      = "sqlserver"
    host        = "sqlserver.prod.example.internal"
    port        = 1433
    name        = "sales"
    cidr_blocks = ["10.60.0.0/24"]
  }
  tables = [
    {
      source      = "dbo.orders"
      target      = "staging.orders"
      primary_key = ["order_id"]
      cursor      = { type = "rowversion", column = "row_version" }
      chunk_size  = 20000
    },
    {
      source      = "dbo.customers"
      target      = "staging.customers_sync"
      primary_key = ["customer_id"]
      cursor      = { type = "timestamp", column = "updated_at", lookback_seconds = 300 }
      deletes     = { enabled = true, interval_minutes = 1440 }
    },
  ]
  schedule_expression = "rate(1 hour)"
  memory_size         = 2048
}

schema_migrations = {
  allowed_databases = ["postgres", "pipelines", "analytics"]
  timeout           = 600
}
