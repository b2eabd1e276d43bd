# Local: applied to moto's server by tests/terraform (and to LocalStack by `make tflocal-apply`).
# Every pipeline is on so the whole wiring is applied and checked; everything is disposable.
name        = "pipelines"
environment = "local"
tags = {
  Owner = "local"
}

enable_file_loader       = true
enable_table_sync        = true
enable_schema_migrations = true
enable_cdc_lake          = true

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
