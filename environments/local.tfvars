# Local: applied to moto's server by tests/terraform (and to LocalStack by `make tflocal-apply`).
# Every pipeline is on so the whole wiring is applied and checked; everything is disposable.
name        = "pipelines"
environment = "local"
tags = {
  Owner = "local"
}

enable_file_loader        = true
enable_table_sync         = true
enable_schema_migrations  = true
enable_backfill           = true
enable_dynamodb_migration = true
enable_cdc_lake           = true

log_level          = "DEBUG"
log_retention_days = 1

vpc_cidr                   = "10.42.0.0/16"
enable_interface_endpoints = true
enable_flow_logs           = true

# The DMS replication applies to the project's moto server (scripts/localenv/moto_server.py);
# this throwaway account gets the account-wide DMS roles from this deployment.
create_dms_iam_roles       = true
db_instance_class          = "db.t4g.micro"
db_multi_az                = false
db_backup_retention_period = 0
db_deletion_protection     = false
db_skip_final_snapshot     = true
db_apply_immediately       = true
create_db_proxy            = false

bucket_force_destroy            = true
secret_recovery_window_in_days  = 0
kms_key_deletion_window_in_days = 7

file_loader = {
  routes = [
    { prefix = "sales/", suffix = ".csv", table = "staging.sales", format = "csv", mode = "append" },
    { prefix = "customers/", table = "staging.customers", format = "jsonl", mode = "upsert", key_columns = ["customer_id"], on_error = "quarantine" },
  ]
  timeout             = 120
  maximum_concurrency = 2
}

table_sync = {
  source = {
    engine      = "postgresql"
    host        = "127.0.0.1"
    port        = 5432
    name        = "source"
    cidr_blocks = ["127.0.0.1/32"]
  }
  tables = [
    {
      source      = "public.orders"
      target      = "staging.orders"
      primary_key = ["order_id"]
      cursor      = { type = "timestamp", column = "updated_at", lookback_seconds = 60 }
    },
  ]
  schedule_expression = "rate(5 minutes)"
  timeout             = 120
}

schema_migrations = {
  allowed_databases = []
  timeout           = 60
}

# The seed's job (docs/backfill.md), run by `make demo` on MariaDB: final orders with their items
# and status history copied into archive tables, chunk by chunk.
backfill = {
  source = {
    engine      = "mysql"
    host        = "127.0.0.1"
    port        = 3306
    name        = "shop"
    cidr_blocks = ["127.0.0.1/32"]
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
      chunk = { initial_rows = 2000, min_rows = 500, max_rows = 50000, target_seconds = 2 }
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
  schedule_rate_minutes = 5
  stalled_alarm_minutes = 15
  timeout               = 120
}

# The source table belongs to the application, not to this module: `make demo` and the apply test
# (tests/terraform) create it in moto with its stream before applying and pass this object with
# the stream's real ARN (scripts/localenv/dynamodb_source.py). The ARN here only lets the
# environment plan offline.
dynamodb_migration = {
  source_table_name = "pipelines-local-userpreferences"
  source_stream_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/pipelines-local-userpreferences/stream/2026-01-01T00:00:00.000"
  key               = { partition_key = "id", sort_key = "preferenceType" }
  target            = { name = "pipelines-local-userpreferences-v2", deletion_protection = false }
  transform         = { rename = { pref = "preference" }, add = { channel = "email" }, set = { schema_version = 2 } }
  copy              = { total_segments = 4, concurrency = 2, page_size = 250, timeout = 120, memory_size = 512 }
  sync              = { timeout = 60, maximum_retry_attempts = 5 }
  verify            = { timeout = 120, memory_size = 512 }
}

# DMS replicates the demo's local PostgreSQL database cdc_source (a stand-in writes DMS's files:
# scripts/localenv/dms_standin.py); two tables are applied to PostgreSQL and catalogued.
cdc_lake = {
  source = {
    engine        = "postgres"
    database_name = "cdc_source"
    port          = 5432
    cidr_blocks   = ["127.0.0.1/32"]
  }
  tables = [
    {
      schema   = "sales"
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
      schema          = "sales"
      table           = "orders"
      exclude_columns = ["card_number"]
      apply_to        = "replica.orders"
      columns = [
        { name = "order_id", type = "bigint" },
        { name = "customer_id", type = "bigint" },
        { name = "status" },
        { name = "amount", type = "decimal(12,2)" },
        { name = "card_number" },
      ]
    },
  ]
  change_sequence_column_name = "dms_change_seq"
  cdc_max_batch_interval      = 5
  delete_staged               = true
  timeout                     = 120
  maximum_concurrency         = 2
}
