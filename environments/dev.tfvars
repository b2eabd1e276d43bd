# Development: every pipeline on, small and cheap, easy to tear down.
name        = "pipelines"
environment = "dev"
tags = {
  Owner = "data-platform"
}

enable_file_loader        = true
enable_table_sync         = true
enable_schema_migrations  = true
enable_backfill           = true
enable_dynamodb_migration = true
enable_cdc_lake           = true

log_level          = "DEBUG"
log_retention_days = 14

# Networking: private subnets in two AZs, endpoints instead of NAT.
vpc_cidr                   = "10.40.0.0/16"
enable_interface_endpoints = true
enable_flow_logs           = true

# Database: one small instance, no standby, short backups, deletable.
db_instance_class          = "db.t4g.micro"
db_allocated_storage       = 20
db_max_allocated_storage   = 50
db_multi_az                = false
db_backup_retention_period = 1
db_deletion_protection     = false
db_skip_final_snapshot     = true
db_apply_immediately       = true
create_db_proxy            = false

bucket_force_destroy            = true
secret_recovery_window_in_days  = 7
kms_key_deletion_window_in_days = 7

file_loader = {
  routes = [
    { prefix = "sales/", suffix = ".csv", table = "staging.sales", format = "csv", mode = "append" },
    { prefix = "sales/", suffix = ".csv.gz", table = "staging.sales", format = "csv", mode = "append" },
    { prefix = "customers/", table = "staging.customers", format = "jsonl", mode = "upsert", key_columns = ["customer_id"], on_error = "quarantine" },
  ]
  memory_size         = 1024
  timeout             = 900
  maximum_concurrency = 2
}

table_sync = {
  source = {
    engine      = "sqlserver"
    host        = "sqlserver.dev.example.internal"
    port        = 1433
    name        = "sales"
    cidr_blocks = ["10.50.0.0/24"]
  }
  tables = [
    {
      source      = "dbo.orders"
      target      = "staging.orders"
      primary_key = ["order_id"]
      cursor      = { type = "rowversion", column = "row_version" }
    },
    {
      source      = "dbo.customers"
      target      = "staging.customers_sync"
      primary_key = ["customer_id"]
      cursor      = { type = "timestamp", column = "updated_at", lookback_seconds = 300 }
    },
  ]
  schedule_expression = "rate(1 hour)"
}

schema_migrations = {
  allowed_databases = ["postgres", "pipelines", "analytics"]
  timeout           = 300
}

# The seed's job (docs/backfill.md): final orders with their items and status history copied into
# archive tables of the shop's MySQL database, chunk by chunk, every 15 minutes until done.
backfill = {
  source = {
    engine      = "mysql"
    host        = "shop-mysql.dev.example.internal"
    name        = "shop"
    cidr_blocks = ["10.50.1.0/24"]
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
}

dynamodb_migration = {
  source_table_name = "userpreferences"
  source_stream_arn = "arn:aws:dynamodb:eu-west-1:111122223333:table/userpreferences/stream/2026-01-01T00:00:00.000"
  key               = { partition_key = "id", sort_key = "preferenceType" }
  target            = { name = "userpreferences-v2", deletion_protection = false }
  transform         = { rename = { pref = "preference" }, add = { channel = "email" }, set = { schema_version = 2 } }
  copy              = { write_rate_limit = 200 }
}

# The sales database replicated by DMS into the lake; customers also applied to PostgreSQL. The
# account-wide DMS roles exist already (created once per account: create_dms_iam_roles).
cdc_lake = {
  source = {
    engine        = "sqlserver"
    database_name = "sales"
    port          = 1433
    cidr_blocks   = ["10.50.0.0/24"]
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
      columns = [
        { name = "order_id", type = "bigint" },
        { name = "customer_id", type = "bigint" },
        { name = "status" },
        { name = "total", type = "decimal(12,2)" },
        { name = "card_number" },
      ]
    },
    { schema = "dbo", table = "tmp%", action = "exclude" },
  ]
  change_sequence_column_name = "dms_change_seq"
  replication_instance        = { class = "dms.t3.small", allocated_storage = 20 }
  staging_expiration_days     = 7
  delete_staged               = true
}
