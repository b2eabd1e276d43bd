# Every pipeline, production-style: standby database behind RDS Proxy, alarms by e-mail, a
# lifecycle on the landing bucket, an existing secret for the SQL Server source.
#
#   make package
#   cd examples/complete && terraform init && terraform apply

provider "aws" {
  region = var.region

  default_tags {
    tags = { Example = "complete" }
  }
}

module "pipelines" {
  source = "../.."

  name               = "complete"
  environment        = "prod"
  bucket_name_suffix = var.bucket_name_suffix
  tags               = { Owner = "data-platform" }
  iam_role_path      = "/data-pipelines/"

  enable_file_loader        = true
  enable_table_sync         = true
  enable_schema_migrations  = true
  enable_dynamodb_migration = true

  lambda_runtime      = "python3.12"
  lambda_architecture = "x86_64"
  log_retention_days  = 90

  vpc_cidr = "10.60.0.0/16"
  azs      = ["${var.region}a", "${var.region}b", "${var.region}c"]

  db_instance_class               = "db.r7g.large"
  db_multi_az                     = true
  db_backup_retention_period      = 14
  db_deletion_protection          = true
  db_performance_insights_enabled = true
  db_monitoring_interval          = 60
  create_db_proxy                 = true

  alarm_email_addresses = var.alarm_email_addresses

  file_loader = {
    routes = [
      { prefix = "orders/", suffix = ".csv", table = "staging.orders", format = "csv", mode = "upsert", key_columns = ["order_id"] },
      { prefix = "orders/", suffix = ".csv.gz", table = "staging.orders", format = "csv", mode = "upsert", key_columns = ["order_id"] },
      { prefix = "clicks/", table = "staging.clicks", format = "jsonl", on_error = "quarantine" },
      { prefix = "legacy/", table = "staging.legacy", format = "csv", csv = { delimiter = ";", encoding = "latin-1", null = "NULL" } },
    ]
    memory_size         = 2048
    maximum_concurrency = 10
    lifecycle_rules = [
      { id = "expire", expiration_days = 180, noncurrent_version_expiration_days = 30 },
    ]
  }

  table_sync = {
    source = {
      engine      = "sqlserver"
      host        = var.sqlserver_host
      port        = 1433
      name        = "erp"
      cidr_blocks = var.sqlserver_cidr_blocks
    }
    source_secret_arn = var.sqlserver_secret_arn
    tables = [
      {
        source      = "dbo.Orders"
        target      = "erp.orders"
        primary_key = ["OrderID"]
        cursor      = { type = "rowversion", column = "RowVer" }
        columns     = { OrderID = "order_id", CustomerID = "customer_id", Total = "total", RowVer = "row_version" }
      },
      {
        query       = "SELECT CustomerID, Name, ModifiedAt FROM dbo.Customers WHERE Active = 1"
        name        = "active_customers"
        target      = "erp.customers"
        primary_key = ["CustomerID"]
        cursor      = { type = "timestamp", column = "ModifiedAt", lookback_seconds = 600 }
        deletes     = { enabled = true, interval_minutes = 1440 }
      },
    ]
    schedule_expression = "cron(5 * * * ? *)"
  }

  schema_migrations = {
    allowed_databases = ["postgres", "pipelines", "erp"]
    timeout           = 600
  }

  # The application's table, reshaped into a new one with an index for a new access pattern.
  dynamodb_migration = {
    source_table_name = var.preferences_table_name
    source_stream_arn = var.preferences_stream_arn
    key               = { partition_key = "id", sort_key = "preferenceType" }
    target = {
      name = "${var.preferences_table_name}-v2"
      global_secondary_indexes = [
        { name = "by-channel", hash_key = "channel", range_key = "id" },
      ]
    }
    transform = { rename = { pref = "preference" }, add = { channel = "email" }, set = { schema_version = 2 } }
    copy      = { write_rate_limit = 100, schedule = "rate(15 minutes)" }
  }
}
