data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  name = "${var.name}-${var.environment}"
  # Every taggable resource carries these; a key set in var.tags wins over the module's value.
  tags = merge(
    {
      Environment = var.environment
      ManagedBy   = "terraform"
      Project     = var.name
    },
    var.tags,
  )

  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.id
}

################################################################################
# The pipelines: one entry each drives the packages, the shared infrastructure, the database
# users and the outputs (adding a pipeline: docs/contracts.md)
################################################################################

locals {
  pipelines = {
    file_loader = {
      enabled   = var.enable_file_loader
      functions = ["file_loader"]
      layers    = []
      vpc       = true
      database = {
        endpoint           = "proxy"
        secret_arn         = var.file_loader.database_secret_arn
        secret_kms_key_arn = var.file_loader.database_secret_kms_key_arn
      }
    }
    table_sync = {
      enabled   = var.enable_table_sync
      functions = ["table_sync"]
      layers    = try(var.table_sync.source.engine, "sqlserver") == "sqlserver" ? ["odbc"] : []
      vpc       = true
      database = {
        endpoint           = "proxy"
        secret_arn         = var.table_sync.database_secret_arn
        secret_kms_key_arn = var.table_sync.database_secret_kms_key_arn
      }
    }
    schema_migrations = {
      enabled   = var.enable_schema_migrations
      functions = ["schema_migrations"]
      layers    = []
      vpc       = true
      # Straight to the instance, never the proxy: migrations hold session-level advisory locks.
      # Always the master user: they create databases and the pipelines' least-privilege roles.
      database = {
        endpoint           = "instance"
        secret_arn         = null
        secret_kms_key_arn = null
      }
    }
    backfill = {
      enabled   = var.enable_backfill
      functions = ["backfill"]
      layers    = []
      vpc       = true
      # In its own database (`source`), or else in the unified one, straight to the instance: the
      # jobs hold session advisory locks, which would pin a proxy's connections anyway.
      database = var.backfill.source != null ? null : {
        endpoint           = "instance"
        secret_arn         = var.backfill.database_secret_arn
        secret_kms_key_arn = var.backfill.database_secret_kms_key_arn
      }
    }
    dynamodb_migration = {
      enabled = var.enable_dynamodb_migration
      # One package deployed as three functions (MIGRATION_FUNCTION picks the entry point).
      packages          = ["dynamodb_migration"]
      functions         = ["dynamodb_migration_copy", "dynamodb_migration_sync", "dynamodb_migration_verify"]
      layers            = []
      vpc               = true
      gateway_endpoints = ["dynamodb"]
      database          = null
    }
    cdc_lake = {
      enabled   = var.enable_cdc_lake
      functions = ["cdc_lake"]
      layers    = []
      vpc       = true # the function and the DMS replication
      # The partitioner's ledger and the tables changes are applied to.
      database = {
        endpoint           = "proxy"
        secret_arn         = var.cdc_lake.database_secret_arn
        secret_kms_key_arn = var.cdc_lake.database_secret_kms_key_arn
      }
    }
  }

  enabled           = { for k, p in local.pipelines : k => var.create && p.enabled }
  enabled_pipelines = { for k, p in local.pipelines : k => p if local.enabled[k] }
  any_pipeline      = length(local.enabled_pipelines) > 0
  # Optional fields: `packages` defaults to the functions (one package each), `gateway_endpoints`
  # to none.
  pipeline_packages = { for k, p in local.pipelines : k => try(p.packages, p.functions) }
  enabled_packages  = distinct(flatten([for k, p in local.enabled_pipelines : local.pipeline_packages[k]]))
  gateway_endpoints = toset(flatten([for p in values(local.enabled_pipelines) : try(p.gateway_endpoints, [])]))

  # How each enabled pipeline reaches the unified database; the database (and the network it lives
  # in) exists only when one does, the network also when a function runs in the VPC.
  database_users  = { for k, p in local.enabled_pipelines : k => p.database if p.database != null }
  needs_database  = length(local.database_users) > 0
  needs_network   = local.needs_database || anytrue([for p in values(local.enabled_pipelines) : p.vpc])
  create_database = local.needs_database && var.create_database
}

################################################################################
# Packages: build/manifest.json written by `make package` (docs/contracts.md)
################################################################################

locals {
  build_dir     = coalesce(var.build_dir, "${path.module}/build")
  manifest_path = "${local.build_dir}/manifest.json"
  manifest      = local.any_pipeline && fileexists(local.manifest_path) ? jsondecode(file(local.manifest_path)) : null

  missing_packages = [for f in local.enabled_packages : f if try(local.manifest.functions[f], null) == null]
  missing_zips     = [for f in local.enabled_packages : f if try(!fileexists("${local.build_dir}/${local.manifest.functions[f].zip}"), true)]
  required_layers  = distinct(flatten([for p in values(local.enabled_pipelines) : p.layers]))
  missing_layers   = [for l in local.required_layers : l if try(local.manifest.layers[l], null) == null]

  # Every package of the table; a placeholder keeps the plan evaluating until the manifest
  # preconditions below report what is missing.
  packages = { for f in distinct(flatten(values(local.pipeline_packages))) : f => {
    filename         = try("${local.build_dir}/${local.manifest.functions[f].zip}", "${local.build_dir}/${f}.zip")
    handler          = try(local.manifest.functions[f].handler, "${f}.handler.handler")
    source_code_hash = try(local.manifest.functions[f].source_code_hash, "")
  } }
  layers = { for name, layer in try(local.manifest.layers, {}) : name => {
    filename         = "${local.build_dir}/${layer.zip}"
    source_code_hash = layer.source_code_hash
  } }
}

resource "terraform_data" "manifest" {
  count = local.any_pipeline ? 1 : 0

  input = try(local.manifest.runtime, null)

  lifecycle {
    precondition {
      condition     = local.manifest != null
      error_message = "No ${local.manifest_path}: build the function packages first with `make package RUNTIME=${var.lambda_runtime} ARCH=${var.lambda_architecture}` (or point build_dir at their directory)."
    }

    precondition {
      condition     = try(local.manifest.runtime, var.lambda_runtime) == var.lambda_runtime
      error_message = "The packages in ${local.build_dir} were built for ${try(local.manifest.runtime, "?")} but lambda_runtime is ${var.lambda_runtime}: run `make package RUNTIME=${var.lambda_runtime}` (wheels are runtime-specific)."
    }

    precondition {
      condition     = try(local.manifest.architecture, var.lambda_architecture) == var.lambda_architecture
      error_message = "The packages in ${local.build_dir} were built for ${try(local.manifest.architecture, "?")} but lambda_architecture is ${var.lambda_architecture}: run `make package ARCH=${var.lambda_architecture}`."
    }

    precondition {
      condition     = local.manifest == null || length(local.missing_packages) == 0
      error_message = "${local.manifest_path} has no package for: ${join(", ", local.missing_packages)}. Run `make package`."
    }

    precondition {
      condition     = local.manifest == null || length(local.missing_packages) > 0 || length(local.missing_zips) == 0
      error_message = "The zips of ${join(", ", local.missing_zips)} named in ${local.manifest_path} are missing. Run `make package`."
    }

    precondition {
      condition     = local.manifest == null || length(local.missing_layers) == 0
      error_message = "${local.manifest_path} has no layers.${join(", layers.", local.missing_layers)}, which the enabled pipelines need (the table sync reads SQL Server through the ODBC layer). Run `make package`."
    }
  }
}

resource "terraform_data" "settings" {
  count = local.any_pipeline ? 1 : 0

  input = local.name

  lifecycle {
    precondition {
      condition     = var.create_kms_key || var.kms_key_arn != null
      error_message = "create_kms_key is false, so kms_key_arn must name an existing customer managed key."
    }

    precondition {
      condition     = !local.needs_network || var.create_vpc || (var.vpc_id != null && var.vpc_cidr_block != null && length(var.private_subnet_ids) >= 2)
      error_message = "create_vpc is false: set vpc_id, vpc_cidr_block and at least 2 private_subnet_ids (in different AZs)."
    }

    precondition {
      condition     = !local.needs_database || var.create_database || length(local.existing_database_missing) == 0
      error_message = "create_database is false, so the pipelines use an existing PostgreSQL database: set ${join(", ", local.existing_database_missing)} (see docs/terraform.md, Bring your own database)."
    }

    precondition {
      condition     = !local.needs_database || var.create_database || !var.create_db_proxy
      error_message = "create_db_proxy creates an RDS Proxy for the database this module creates; with create_database = false, set db_host to your own proxy's endpoint instead."
    }

    precondition {
      condition     = !local.enabled.file_loader || length(var.file_loader.routes) > 0
      error_message = "enable_file_loader is true but file_loader.routes is empty: add at least one route."
    }

    precondition {
      condition     = length(local.conflicting_secret_keys) == 0
      error_message = "${join(" and ", distinct(flatten([for arn in local.conflicting_secret_keys : [for u in local.pipeline_secrets_by_arn[arn] : u.key]])))} share the database secret ${join(", ", local.conflicting_secret_keys)} but name different database_secret_kms_key_arn values: give all of them the secret's one key."
    }

    precondition {
      condition     = !local.enabled.backfill || length(var.backfill.jobs) > 0
      error_message = "enable_backfill is true: add at least one job to backfill.jobs (see docs/backfill.md)."
    }

    precondition {
      condition     = !local.enabled.table_sync || (length(var.table_sync.tables) > 0 && var.table_sync.source != null)
      error_message = "enable_table_sync is true: set table_sync.source (the source database) and at least one entry in table_sync.tables."
    }

    precondition {
      condition     = !local.enabled.dynamodb_migration || length(local.dynamodb_migration_missing) == 0
      error_message = "enable_dynamodb_migration is true: set ${join(", ", [for name in local.dynamodb_migration_missing : "dynamodb_migration.${name}"])}."
    }

    precondition {
      condition     = !local.enabled.cdc_lake || (length(var.cdc_lake.tables) > 0 && var.cdc_lake.source != null)
      error_message = "enable_cdc_lake is true: set cdc_lake.source (the database DMS replicates) and at least one entry in cdc_lake.tables."
    }
  }
}

################################################################################
# Encryption: one customer managed key for topics, log groups and created secrets
################################################################################

resource "aws_kms_key" "this" {
  count = local.any_pipeline && var.create_kms_key ? 1 : 0

  description             = "${local.name}: SNS topics, log groups and secrets of the data pipelines"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_key_deletion_window_in_days

  tags = merge({ Name = local.name }, local.tags)
}

resource "aws_kms_alias" "this" {
  count = local.any_pipeline && var.create_kms_key ? 1 : 0

  name          = "alias/${local.name}-pipelines"
  target_key_id = aws_kms_key.this[0].key_id
}

locals {
  # Services publishing to the alarm topic: CloudWatch alarms, and DMS events with the CDC lake.
  alarm_publishers = local.enabled.cdc_lake ? ["cloudwatch.amazonaws.com", "dms.amazonaws.com"] : ["cloudwatch.amazonaws.com"]

  # Read through the key policy, so everything encrypted with the key waits until the policy lets
  # S3, CloudWatch and CloudWatch Logs use it.
  kms_key_arn = !local.any_pipeline ? null : var.create_kms_key ? (length(aws_kms_key_policy.this) > 0 ? aws_kms_key.this[0].arn : null) : var.kms_key_arn
  # arn:<partition>:kms:<region>:<account>:key/<id>: read from the key, so planning needs no API call.
  account_id = try(split(":", aws_kms_key.this[0].arn)[4], "")
}

resource "aws_kms_key_policy" "this" {
  count = local.any_pipeline && var.create_kms_key ? 1 : 0

  key_id = aws_kms_key.this[0].key_id
  # In a key policy, "Resource": "*" means this key.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersKeyThroughIam"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "S3PublishesToEncryptedTopics"
        Effect    = "Allow"
        Principal = { Service = "s3.amazonaws.com" }
        Action    = ["kms:GenerateDataKey*", "kms:Decrypt"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
      },
      {
        Sid       = "CloudWatchAlarmsPublishToEncryptedTopic"
        Effect    = "Allow"
        Principal = { Service = local.alarm_publishers }
        Action    = ["kms:GenerateDataKey*", "kms:Decrypt"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
      },
      {
        Sid       = "CloudWatchLogsEncryptsLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = { "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*" }
        }
      },
    ]
  })
}

################################################################################
# Alarm topic
################################################################################

resource "aws_sns_topic" "alarms" {
  count = local.any_pipeline && var.create_alarms ? 1 : 0

  name              = "${local.name}-alarms"
  kms_master_key_id = local.kms_key_arn

  tags = local.tags
}

resource "aws_sns_topic_policy" "alarms" {
  count = local.any_pipeline && var.create_alarms ? 1 : 0

  arn = aws_sns_topic.alarms[0].arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat([
      {
        Sid       = "CloudWatchAlarmsPublish"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms[0].arn
        Condition = {
          ArnLike = {
            "aws:SourceArn" = "arn:${local.partition}:cloudwatch:${local.region}:${split(":", aws_sns_topic.alarms[0].arn)[4]}:alarm:${local.name}-*"
          }
        }
      },
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = ["sns:Publish", "sns:Subscribe"]
        Resource  = aws_sns_topic.alarms[0].arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
      ], !local.enabled.cdc_lake ? [] : [
      {
        Sid       = "DmsEventsPublish"
        Effect    = "Allow"
        Principal = { Service = "dms.amazonaws.com" }
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms[0].arn
        Condition = { StringEquals = { "aws:SourceAccount" = split(":", aws_sns_topic.alarms[0].arn)[4] } }
      },
    ])
  })
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count = local.any_pipeline && var.create_alarms ? length(var.alarm_email_addresses) : 0

  topic_arn = aws_sns_topic.alarms[0].arn
  protocol  = "email"
  endpoint  = var.alarm_email_addresses[count.index]
}

locals {
  alarm_topic_arn = try(aws_sns_topic.alarms[0].arn, null)
}

################################################################################
# Buckets: encryption and server access logs of every bucket a pipeline creates
################################################################################

locals {
  # SSE-KMS with s3_kms_key_arn, else with the key this module creates; known at plan time either way.
  bucket_kms_encryption = var.s3_kms_key_arn != null || var.create_kms_key
  bucket_kms_key_arn    = var.s3_kms_key_arn != null ? var.s3_kms_key_arn : (var.create_kms_key ? local.kms_key_arn : null)

  create_access_log_bucket = length(local.logged_bucket_arns) > 0 && var.s3_access_logs != null && try(var.s3_access_logs.bucket, null) == null
  access_log_bucket_name   = "${local.name}-access-logs${var.bucket_name_suffix}"
  # An object whose presence is known at plan time, even while the created log bucket's id is not.
  bucket_access_logs = var.s3_access_logs == null ? null : {
    # The created bucket through `ready`: logging is configured once its policy admits S3 log delivery.
    bucket = coalesce(var.s3_access_logs.bucket, try(module.access_logs.ready.bucket, null), local.access_log_bucket_name)
  }
  landing_bucket_name     = "${local.name}-landing${var.bucket_name_suffix}"
  migrations_bucket_name  = "${local.name}-migrations${var.bucket_name_suffix}"
  cdc_staging_bucket_name = "${local.name}-cdc-staging${var.bucket_name_suffix}"
  cdc_lake_bucket_name    = "${local.name}-cdc-lake${var.bucket_name_suffix}"
  # The buckets S3 delivers logs for. Bucket names are global and these are this deployment's own,
  # so their exact ARNs admit no other account's bucket, and the policy is known at plan time (the
  # account id is not: it is read from resources created in the same plan).
  logged_bucket_arns = [
    for bucket, enabled in {
      (local.landing_bucket_name)     = local.enabled.file_loader
      (local.migrations_bucket_name)  = local.enabled.schema_migrations
      (local.cdc_staging_bucket_name) = local.enabled.cdc_lake
      (local.cdc_lake_bucket_name)    = local.enabled.cdc_lake
    } : "arn:${local.partition}:s3:::${bucket}" if enabled
  ]
}

module "access_logs" {
  source = "./modules/bucket"

  create        = local.create_access_log_bucket
  bucket        = local.create_access_log_bucket ? local.access_log_bucket_name : null
  force_destroy = var.bucket_force_destroy
  # SSE-S3: the only default encryption S3 server access log delivery accepts.
  kms_key_arn = null
  lifecycle_rules = local.create_access_log_bucket ? [{
    id                                 = "expire-access-logs"
    expiration_days                    = var.s3_access_logs.expiration_days
    noncurrent_version_expiration_days = 1
  }] : []
  policy_statements = local.create_access_log_bucket ? [{
    # S3 log delivery, for this deployment's pipeline buckets only.
    Sid       = "S3ServerAccessLogDelivery"
    Effect    = "Allow"
    Principal = { Service = "logging.s3.amazonaws.com" }
    Action    = "s3:PutObject"
    Resource  = "arn:${local.partition}:s3:::${local.access_log_bucket_name}/*"
    Condition = { ArnEquals = { "aws:SourceArn" = local.logged_bucket_arns } }
  }] : []

  tags = local.tags
}

################################################################################
# Shared infrastructure: network and the unified PostgreSQL database
################################################################################

module "network" {
  source = "./modules/network"

  create = local.needs_network
  name   = local.name

  create_vpc              = var.create_vpc
  vpc_cidr                = var.vpc_cidr
  azs                     = var.azs
  vpc_id                  = var.vpc_id
  vpc_cidr_block          = var.vpc_cidr_block
  private_subnet_ids      = var.private_subnet_ids
  private_route_table_ids = var.private_route_table_ids

  create_s3_gateway_endpoint       = var.create_s3_gateway_endpoint
  create_dynamodb_gateway_endpoint = var.create_dynamodb_gateway_endpoint && contains(local.gateway_endpoints, "dynamodb")
  enable_interface_endpoints       = var.enable_interface_endpoints
  endpoint_allowed_account_ids     = var.endpoint_allowed_account_ids
  https_egress_cidrs               = var.https_egress_cidrs

  enable_database_access         = local.needs_database
  create_database_security_group = var.create_database
  database_security_group_id     = var.db_security_group_id
  database_port                  = var.db_port

  enable_flow_logs        = var.enable_flow_logs
  flow_log_retention_days = var.log_retention_days
  log_kms_key_arn         = local.kms_key_arn

  role_path                 = var.iam_role_path
  role_permissions_boundary = var.iam_role_permissions_boundary

  tags = local.tags
}

module "database" {
  source = "./modules/database"

  create     = local.create_database
  identifier = local.name

  engine_version        = var.db_engine_version
  instance_class        = var.db_instance_class
  allocated_storage     = var.db_allocated_storage
  max_allocated_storage = var.db_max_allocated_storage
  db_name               = var.db_name
  username              = var.db_username
  port                  = var.db_port
  parameters            = var.db_parameters

  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.private_subnet_ids
  security_group_ids        = local.create_database ? [module.network.database_security_group_id] : []
  client_security_group_ids = local.create_database ? [module.network.lambda_security_group_id] : []

  multi_az                       = var.db_multi_az
  backup_retention_period        = var.db_backup_retention_period
  deletion_protection            = var.db_deletion_protection
  skip_final_snapshot            = var.db_skip_final_snapshot
  apply_immediately              = var.db_apply_immediately
  performance_insights_enabled   = var.db_performance_insights_enabled
  monitoring_interval            = var.db_monitoring_interval
  master_user_secret_kms_key_arn = var.db_master_user_secret_kms_key_arn

  create_proxy                  = var.create_db_proxy
  proxy_auth_secrets            = local.proxy_auth_secrets
  proxy_max_connections_percent = var.db_proxy_max_connections_percent
  proxy_idle_client_timeout     = var.db_proxy_idle_client_timeout

  role_path                 = var.iam_role_path
  role_permissions_boundary = var.iam_role_permissions_boundary

  tags = local.tags
}

locals {
  lambda_subnet_ids         = module.network.private_subnet_ids
  lambda_security_group_ids = local.needs_network ? [module.network.lambda_security_group_id] : []

  # The unified database: the instance created here, or the existing one the db_* inputs describe.
  existing_database_missing = [for name, value in {
    db_host                   = var.db_host
    db_master_user_secret_arn = var.db_master_user_secret_arn
    db_security_group_id      = var.db_security_group_id
  } : name if value == null]
  instance_endpoint = var.create_database ? module.database.endpoint : var.db_host
  connect_endpoint  = var.create_database ? module.database.connect_endpoint : var.db_host
  master_secret_arn = var.create_database ? module.database.master_user_secret_arn : var.db_master_user_secret_arn

  # Each pipeline's connection (its module's `database` input): through the proxy when there is
  # one or straight to the instance, as its own least-privilege user when it names that user's
  # secret, else as the master user. Its role may read only that secret and decrypt only with that
  # secret's key.
  database_access = { for k, user in local.database_users : k => {
    host       = user.endpoint == "proxy" ? local.connect_endpoint : local.instance_endpoint
    port       = var.db_port
    name       = var.db_name
    secret_arn = user.secret_arn != null ? user.secret_arn : local.master_secret_arn
    secret_kms_key_arns = (
      user.secret_arn != null ? (user.secret_kms_key_arn == null ? [] : [user.secret_kms_key_arn]) :
      (var.db_master_user_secret_kms_key_arn == null ? [] : [var.db_master_user_secret_kms_key_arn])
    )
  } }

  # The proxy logs in as every user a deployed pipeline connects through it as: one auth entry per
  # secret, which pipelines sharing it must give the same key.
  pipeline_secrets = [for k, user in local.database_users : {
    key         = k
    pipeline    = replace(k, "_", " ")
    secret_arn  = user.secret_arn
    kms_key_arn = user.secret_kms_key_arn
  } if user.secret_arn != null && user.endpoint == "proxy"]
  pipeline_secrets_by_arn = { for s in local.pipeline_secrets : s.secret_arn => s... }
  proxy_auth_secrets = [for arn, users in local.pipeline_secrets_by_arn : {
    secret_arn  = arn
    kms_key_arn = users[0].kms_key_arn
    description = "Database user of the ${join(" and ", users[*].pipeline)} of ${local.name}"
  }]
  conflicting_secret_keys = [for arn, users in local.pipeline_secrets_by_arn : arn if length(distinct([for u in users : coalesce(u.kms_key_arn, "-")])) > 1]
}

################################################################################
# Pipelines: one module block each
################################################################################

module "file_loader" {
  source = "./modules/file_loader"

  create = local.enabled.file_loader
  name   = "${local.name}-file-loader"

  bucket_name            = local.landing_bucket_name
  bucket_force_destroy   = var.bucket_force_destroy
  bucket_kms_key_arn     = local.bucket_kms_key_arn
  bucket_kms_encryption  = local.bucket_kms_encryption
  bucket_access_logs     = local.bucket_access_logs
  bucket_lifecycle_rules = var.file_loader.lifecycle_rules
  kms_key_arn            = local.kms_key_arn

  routes        = var.file_loader.routes
  notifications = var.file_loader.notifications

  package      = local.packages.file_loader
  runtime      = var.lambda_runtime
  architecture = var.lambda_architecture
  memory_size  = var.file_loader.memory_size
  timeout      = var.file_loader.timeout
  log_level    = var.log_level

  log_retention_days = var.log_retention_days
  log_kms_key_arn    = local.kms_key_arn

  database               = lookup(local.database_access, "file_loader", null)
  secret_ttl_seconds     = var.secret_ttl_seconds
  vpc_subnet_ids         = local.lambda_subnet_ids
  vpc_security_group_ids = local.lambda_security_group_ids

  batch_size                         = var.file_loader.batch_size
  maximum_batching_window_in_seconds = var.file_loader.maximum_batching_window_in_seconds
  maximum_concurrency                = var.file_loader.maximum_concurrency
  max_receive_count                  = var.file_loader.max_receive_count

  create_alarms   = var.create_alarms
  alarm_topic_arn = local.alarm_topic_arn

  role_path                 = var.iam_role_path
  role_permissions_boundary = var.iam_role_permissions_boundary

  tags = local.tags
}

module "table_sync" {
  source = "./modules/table_sync"

  create = local.enabled.table_sync
  name   = "${local.name}-table-sync"

  tables          = var.table_sync.tables
  source_database = var.table_sync.source

  source_secret_arn              = var.table_sync.source_secret_arn
  source_secret_kms_key_arn      = var.table_sync.source_secret_kms_key_arn
  secret_recovery_window_in_days = var.secret_recovery_window_in_days
  kms_key_arn                    = local.kms_key_arn

  package      = local.packages.table_sync
  odbc_layer   = lookup(local.layers, "odbc", null)
  runtime      = var.lambda_runtime
  architecture = var.lambda_architecture
  memory_size  = var.table_sync.memory_size
  timeout      = var.table_sync.timeout
  log_level    = var.log_level

  schedule_expression = var.table_sync.schedule_expression
  schedule_timezone   = var.table_sync.schedule_timezone
  schedule_enabled    = var.table_sync.schedule_enabled

  log_retention_days = var.log_retention_days
  log_kms_key_arn    = local.kms_key_arn

  database               = lookup(local.database_access, "table_sync", null)
  secret_ttl_seconds     = var.secret_ttl_seconds
  vpc_id                 = module.network.vpc_id
  vpc_subnet_ids         = local.lambda_subnet_ids
  vpc_security_group_ids = local.lambda_security_group_ids

  create_alarms   = var.create_alarms
  alarm_topic_arn = local.alarm_topic_arn

  role_path                 = var.iam_role_path
  role_permissions_boundary = var.iam_role_permissions_boundary

  tags = local.tags
}

module "schema_migrations" {
  source = "./modules/schema_migrations"

  create = local.enabled.schema_migrations
  name   = "${local.name}-migrations"

  bucket_name           = local.migrations_bucket_name
  bucket_force_destroy  = var.bucket_force_destroy
  bucket_kms_key_arn    = local.bucket_kms_key_arn
  bucket_kms_encryption = local.bucket_kms_encryption
  bucket_access_logs    = local.bucket_access_logs
  kms_key_arn           = local.kms_key_arn
  allowed_databases     = var.schema_migrations.allowed_databases
  notifications         = var.schema_migrations.notifications
  reserved_concurrency  = var.schema_migrations.reserved_concurrency

  package      = local.packages.schema_migrations
  runtime      = var.lambda_runtime
  architecture = var.lambda_architecture
  memory_size  = var.schema_migrations.memory_size
  timeout      = var.schema_migrations.timeout
  log_level    = var.log_level

  log_retention_days = var.log_retention_days
  log_kms_key_arn    = local.kms_key_arn

  database               = lookup(local.database_access, "schema_migrations", null)
  secret_ttl_seconds     = var.secret_ttl_seconds
  vpc_subnet_ids         = local.lambda_subnet_ids
  vpc_security_group_ids = local.lambda_security_group_ids

  create_alarms   = var.create_alarms
  alarm_topic_arn = local.alarm_topic_arn

  role_path                 = var.iam_role_path
  role_permissions_boundary = var.iam_role_permissions_boundary

  tags = local.tags
}

module "backfill" {
  source = "./modules/backfill"

  create = local.enabled.backfill
  name   = "${local.name}-backfill"

  jobs            = var.backfill.jobs
  source_database = var.backfill.source
  database        = lookup(local.database_access, "backfill", null)
  state_schema    = var.backfill.state_schema

  source_secret_arn              = var.backfill.source_secret_arn
  source_secret_kms_key_arn      = var.backfill.source_secret_kms_key_arn
  secret_recovery_window_in_days = var.secret_recovery_window_in_days
  kms_key_arn                    = local.kms_key_arn

  package      = local.packages.backfill
  runtime      = var.lambda_runtime
  architecture = var.lambda_architecture
  memory_size  = var.backfill.memory_size
  timeout      = var.backfill.timeout
  log_level    = var.log_level

  schedule_rate_minutes      = var.backfill.schedule_rate_minutes
  schedule_enabled           = var.backfill.schedule_enabled
  disable_schedule_when_done = var.backfill.disable_schedule_when_done
  stalled_alarm_minutes      = var.backfill.stalled_alarm_minutes

  log_retention_days = var.log_retention_days
  log_kms_key_arn    = local.kms_key_arn

  secret_ttl_seconds     = var.secret_ttl_seconds
  vpc_id                 = module.network.vpc_id
  vpc_subnet_ids         = local.lambda_subnet_ids
  vpc_security_group_ids = local.lambda_security_group_ids

  create_alarms   = var.create_alarms
  alarm_topic_arn = local.alarm_topic_arn

  role_path                 = var.iam_role_path
  role_permissions_boundary = var.iam_role_permissions_boundary

  tags = local.tags
}

module "dynamodb_migration" {
  source = "./modules/dynamodb_migration"

  create = local.enabled.dynamodb_migration
  name   = "${local.name}-dynamodb-migration"

  source_table_name               = var.dynamodb_migration.source_table_name
  source_stream_arn               = var.dynamodb_migration.source_stream_arn
  source_kms_key_arn              = var.dynamodb_migration.source_kms_key_arn
  key                             = var.dynamodb_migration.key
  target                          = var.dynamodb_migration.target
  transform                       = var.dynamodb_migration.transform
  copy                            = var.dynamodb_migration.copy
  sync                            = var.dynamodb_migration.sync
  verify                          = var.dynamodb_migration.verify
  touched_ttl_days                = var.dynamodb_migration.touched_ttl_days
  state_table_deletion_protection = var.dynamodb_migration.state_table_deletion_protection
  kms_key_arn                     = local.kms_key_arn

  package      = local.packages.dynamodb_migration
  runtime      = var.lambda_runtime
  architecture = var.lambda_architecture
  log_level    = var.log_level

  log_retention_days = var.log_retention_days
  log_kms_key_arn    = local.kms_key_arn

  vpc_subnet_ids         = local.lambda_subnet_ids
  vpc_security_group_ids = local.lambda_security_group_ids

  create_alarms   = var.create_alarms
  alarm_topic_arn = local.alarm_topic_arn

  role_path                 = var.iam_role_path
  role_permissions_boundary = var.iam_role_permissions_boundary

  tags = local.tags
}

module "cdc_lake" {
  source = "./modules/cdc_lake"

  create = local.enabled.cdc_lake
  name   = "${local.name}-cdc-lake"

  staging_bucket_name     = local.cdc_staging_bucket_name
  lake_bucket_name        = local.cdc_lake_bucket_name
  bucket_access_logs      = local.bucket_access_logs
  bucket_force_destroy    = var.bucket_force_destroy
  staging_kms_key_arn     = var.s3_kms_key_arn != null ? var.s3_kms_key_arn : local.kms_key_arn
  bucket_kms_key_arn      = local.bucket_kms_key_arn
  bucket_kms_encryption   = local.bucket_kms_encryption
  staging_expiration_days = var.cdc_lake.staging_expiration_days
  lake_lifecycle_rules    = var.cdc_lake.lake_lifecycle_rules
  kms_key_arn             = local.kms_key_arn

  source_database                = var.cdc_lake.source
  secret_recovery_window_in_days = var.secret_recovery_window_in_days
  tables                         = var.cdc_lake.tables
  replication_instance           = var.cdc_lake.replication_instance
  serverless                     = var.cdc_lake.serverless
  start_replication_task         = var.cdc_lake.start_replication_task
  create_dms_iam_roles           = var.create_dms_iam_roles
  verify_dms_iam_roles           = var.verify_dms_iam_roles
  staging_folder                 = var.cdc_lake.staging_folder
  data_format                    = var.cdc_lake.data_format
  compression_type               = var.cdc_lake.compression_type
  timestamp_column_name          = var.cdc_lake.timestamp_column_name
  change_sequence_column_name    = var.cdc_lake.change_sequence_column_name
  cdc_max_batch_interval         = var.cdc_lake.cdc_max_batch_interval
  cdc_min_file_size              = var.cdc_lake.cdc_min_file_size

  lake_prefix           = var.cdc_lake.lake_prefix
  partition_by          = var.cdc_lake.partition_by
  count_rows            = var.cdc_lake.count_rows
  delete_staged         = var.cdc_lake.delete_staged
  create_catalog        = var.cdc_lake.create_catalog
  catalog_database_name = var.cdc_lake.catalog_database_name
  catalog_years         = var.cdc_lake.catalog_years

  package      = local.packages.cdc_lake
  runtime      = var.lambda_runtime
  architecture = var.lambda_architecture
  memory_size  = var.cdc_lake.memory_size
  timeout      = var.cdc_lake.timeout
  log_level    = var.log_level

  log_retention_days = var.log_retention_days
  log_kms_key_arn    = local.kms_key_arn

  database               = lookup(local.database_access, "cdc_lake", null)
  secret_ttl_seconds     = var.secret_ttl_seconds
  vpc_id                 = module.network.vpc_id
  vpc_subnet_ids         = local.lambda_subnet_ids
  vpc_security_group_ids = local.lambda_security_group_ids
  # DMS reaches S3 and Secrets Manager through the endpoints (decided from variables: plan-time lengths).
  https_egress_prefix_list_ids    = var.create_s3_gateway_endpoint ? [module.network.s3_prefix_list_id] : []
  https_egress_security_group_ids = var.enable_interface_endpoints ? [module.network.endpoints_security_group_id] : []

  batch_size          = var.cdc_lake.batch_size
  maximum_concurrency = var.cdc_lake.maximum_concurrency
  max_receive_count   = var.cdc_lake.max_receive_count

  create_alarms   = var.create_alarms
  alarm_topic_arn = local.alarm_topic_arn

  role_path                 = var.iam_role_path
  role_permissions_boundary = var.iam_role_permissions_boundary

  tags = local.tags
}

locals {
  # Every pipeline module by its key in local.pipelines: the outputs read functions and buckets
  # from each (a disabled module reports none).
  pipeline_modules = {
    file_loader        = module.file_loader
    table_sync         = module.table_sync
    schema_migrations  = module.schema_migrations
    backfill           = module.backfill
    dynamodb_migration = module.dynamodb_migration
    cdc_lake           = module.cdc_lake
  }

  dynamodb_migration_missing = [for name in ["source_table_name", "source_stream_arn", "key", "target"] : name if var.dynamodb_migration[name] == null]
}
