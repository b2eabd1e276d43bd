# Production: standby in a second AZ, protected from deletion, long retention, RDS Proxy.
name        = "pipelines"
environment = "prod"
tags = {
  Owner       = "data-platform"
  CostCenter  = "data"
  Criticality = "high"
}

enable_file_loader        = true
enable_table_sync         = true
enable_schema_migrations  = true
enable_backfill           = true
enable_dynamodb_migration = true
enable_cdc_lake           = true

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

# The seed's job (docs/backfill.md) against the production shop database: paced by the replicas'
# lag, busy sessions and long transactions, and capped at 5,000 orders a second.
backfill = {
  source = {
    engine        = "mysql"
    host          = "shop-mysql.prod.example.internal"
    name          = "shop"
    cidr_blocks   = ["10.60.1.0/24"]
    replica_hosts = ["shop-mysql-replica.prod.example.internal"]
  }
  jobs = [
    {
      name  = "order_archive"
      table = "orders"
      key   = ["id"]
      # Each statement copies, for the orders of the chunk (o.id in (:lo, :hi]) in a final status,
      # one table; the archive tables are keyed by the source ids, so a replayed chunk adds nothing.
      statements = [
        <<-SQL
        INSERT IGNORE INTO order_archive (order_id, customer_id, final_status, total, created_at, finalized_at)
        SELECT o.id, o.customer_id, o.status, o.total, o.created_at, o.updated_at FROM orders o
        WHERE o.id > :lo AND o.id <= :hi AND o.status IN ('uncollected', 'cancelled', 'dispensed')
        SQL
        ,
        <<-SQL
        INSERT IGNORE INTO order_item_archive (item_id, order_id, sku, quantity, unit_price)
        SELECT i.id, i.order_id, i.sku, i.quantity, i.unit_price FROM orders o JOIN order_items i ON i.order_id = o.id
        WHERE o.id > :lo AND o.id <= :hi AND o.status IN ('uncollected', 'cancelled', 'dispensed')
        SQL
        ,
        <<-SQL
        INSERT IGNORE INTO order_status_archive (history_id, order_id, status, changed_at)
        SELECT h.id, h.order_id, h.status, h.changed_at FROM orders o JOIN order_status_history h ON h.order_id = o.id
        WHERE o.id > :lo AND o.id <= :hi AND o.status IN ('uncollected', 'cancelled', 'dispensed')
        SQL
      ]
      chunk               = { initial_rows = 2000, min_rows = 500, max_rows = 50000, target_seconds = 2 }
      max_rows_per_second = 5000
      pressure            = { max_replica_lag_seconds = 10, max_running_threads = 32, max_transaction_seconds = 600 }
      verify = [
        {
          source = "SELECT COUNT(*), COALESCE(SUM(o.total), 0) FROM orders o WHERE o.id > :lo AND o.id <= :hi AND o.status IN ('uncollected', 'cancelled', 'dispensed')"
          target = "SELECT COUNT(*), COALESCE(SUM(total), 0) FROM order_archive WHERE order_id > :lo AND order_id <= :hi"
        },
        {
          source = "SELECT COUNT(*) FROM orders o JOIN order_items i ON i.order_id = o.id WHERE o.id > :lo AND o.id <= :hi AND o.status IN ('uncollected', 'cancelled', 'dispensed')"
          target = "SELECT COUNT(*) FROM order_item_archive WHERE order_id > :lo AND order_id <= :hi"
        },
      ]
    },
  ]
}

dynamodb_migration = {
  source_table_name = "userpreferences"
  source_stream_arn = "arn:aws:dynamodb:eu-west-1:111122223333:table/userpreferences/stream/2026-01-01T00:00:00.000"
  key               = { partition_key = "id", sort_key = "preferenceType" }
  target = {
    name           = "userpreferences-v2"
    billing_mode   = "PROVISIONED"
    read_capacity  = 100
    write_capacity = 100
  }
  transform = { rename = { pref = "preference" }, add = { channel = "email" }, set = { schema_version = 2 } }
  # Leave the table's capacity to the application: the copy writes at most 50 items/s.
  copy = { write_rate_limit = 50, schedule = "rate(15 minutes)" }
}

# DMS (Multi-AZ) replicates the sales database; the lake keeps a year in Standard, then IA.
cdc_lake = {
  source = {
    engine        = "sqlserver"
    database_name = "sales"
    port          = 1433
    cidr_blocks   = ["10.60.0.0/24"]
  }
  tables = [
    {
      schema   = "dbo"
      table    = "customers"
      apply_to = "replica.customers"
      columns = [
        { name = "customer_id", type = "bigint" },
        { name = "name" },
        { name = "email" },
        { name = "updated_at" },
      ]
    },
    {
      schema          = "dbo"
      table           = "orders"
      exclude_columns = ["card_number"]
      apply_to        = "replica.orders"
      columns = [
        { name = "order_id", type = "bigint" },
        { name = "customer_id", type = "bigint" },
        { name = "status" },
        { name = "total", type = "decimal(12,2)" },
        { name = "card_number" },
      ]
    },
  ]
  change_sequence_column_name = "dms_change_seq"
  replication_instance = {
    class                        = "dms.r6i.large"
    allocated_storage            = 100
    multi_az                     = true
    preferred_maintenance_window = "sun:04:00-sun:04:30"
  }
  partition_by            = "commit"
  staging_expiration_days = 14
  delete_staged           = true
  lake_lifecycle_rules = [
    { id = "infrequent-after-a-year", transitions = [{ days = 365, storage_class = "STANDARD_IA" }] },
  ]
  memory_size         = 2048
  maximum_concurrency = 10
}
