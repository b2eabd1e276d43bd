locals {
  create       = var.create
  create_proxy = var.create && var.create_proxy
  major        = split(".", var.engine_version)[0]
  secret_arn   = try(aws_db_instance.this[0].master_user_secret[0].secret_arn, null)

  proxy_auth_kms_keys = distinct([for s in var.proxy_auth_secrets : s.kms_key_arn if s.kms_key_arn != null])
}

resource "aws_db_subnet_group" "this" {
  count = local.create ? 1 : 0

  name        = var.identifier
  description = "Private subnets of ${var.identifier}"
  subnet_ids  = var.subnet_ids

  tags = var.tags
}

resource "aws_db_parameter_group" "this" {
  count = local.create ? 1 : 0

  name_prefix = "${var.identifier}-"
  family      = "postgres${local.major}"
  description = "${var.identifier}: TLS required"

  parameter {
    name         = "rds.force_ssl"
    value        = "1"
    apply_method = "pending-reboot"
  }

  dynamic "parameter" {
    for_each = var.parameters

    content {
      name         = parameter.value.name
      value        = parameter.value.value
      apply_method = parameter.value.apply_method
    }
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

data "aws_iam_policy_document" "monitoring_assume" {
  statement {
    sid     = "RdsMonitoringAssumeRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "monitoring" {
  count = local.create && var.monitoring_interval > 0 ? 1 : 0

  name                 = "${var.identifier}-rds-monitoring"
  path                 = var.role_path
  permissions_boundary = var.role_permissions_boundary
  assume_role_policy   = data.aws_iam_policy_document.monitoring_assume.json

  tags = var.tags
}

data "aws_partition" "current" {}

resource "aws_iam_role_policy_attachment" "monitoring" {
  count = local.create && var.monitoring_interval > 0 ? 1 : 0

  role       = aws_iam_role.monitoring[0].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "this" {
  count = local.create ? 1 : 0

  identifier     = var.identifier
  engine         = "postgres"
  engine_version = var.engine_version
  instance_class = var.instance_class
  port           = var.port

  db_name                       = var.db_name
  username                      = var.username
  manage_master_user_password   = true
  master_user_secret_kms_key_id = var.master_user_secret_kms_key_arn

  allocated_storage     = var.allocated_storage
  max_allocated_storage = var.max_allocated_storage
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = var.kms_key_arn

  db_subnet_group_name   = aws_db_subnet_group.this[0].name
  vpc_security_group_ids = var.security_group_ids
  publicly_accessible    = false
  multi_az               = var.multi_az
  parameter_group_name   = aws_db_parameter_group.this[0].name

  iam_database_authentication_enabled = true
  backup_retention_period             = var.backup_retention_period
  copy_tags_to_snapshot               = true
  deletion_protection                 = var.deletion_protection
  skip_final_snapshot                 = var.skip_final_snapshot
  final_snapshot_identifier           = var.skip_final_snapshot ? null : "${var.identifier}-final"
  auto_minor_version_upgrade          = true
  apply_immediately                   = var.apply_immediately
  enabled_cloudwatch_logs_exports     = ["postgresql", "upgrade"]

  performance_insights_enabled    = var.performance_insights_enabled
  performance_insights_kms_key_id = var.performance_insights_enabled ? var.kms_key_arn : null
  monitoring_interval             = var.monitoring_interval
  monitoring_role_arn             = var.monitoring_interval > 0 ? aws_iam_role.monitoring[0].arn : null

  tags = var.tags
}

################################################################################
# RDS Proxy (optional): TLS required, authenticates with the master secret and the
# secrets of proxy_auth_secrets
################################################################################

data "aws_iam_policy_document" "proxy_assume" {
  statement {
    sid     = "RdsProxyAssumeRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "proxy" {
  count = local.create_proxy ? 1 : 0

  name                 = "${var.identifier}-proxy"
  path                 = var.role_path
  permissions_boundary = var.role_permissions_boundary
  assume_role_policy   = data.aws_iam_policy_document.proxy_assume.json

  tags = var.tags
}

data "aws_iam_policy_document" "proxy" {
  count = local.create_proxy ? 1 : 0

  statement {
    sid       = "ReadMasterSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.secret_arn]
  }

  dynamic "statement" {
    for_each = var.master_user_secret_kms_key_arn == null ? [] : [var.master_user_secret_kms_key_arn]

    content {
      sid       = "DecryptMasterSecret"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }

  # The pipelines' own database users (proxy_auth_secrets): exactly those secrets and their keys.
  dynamic "statement" {
    for_each = length(var.proxy_auth_secrets) == 0 ? [] : [var.proxy_auth_secrets[*].secret_arn]

    content {
      sid       = "ReadUserSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = statement.value
    }
  }

  dynamic "statement" {
    for_each = length(local.proxy_auth_kms_keys) == 0 ? [] : [local.proxy_auth_kms_keys]

    content {
      sid       = "DecryptUserSecrets"
      actions   = ["kms:Decrypt"]
      resources = statement.value

      condition {
        test     = "StringLike"
        variable = "kms:ViaService"
        values   = ["secretsmanager.*.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "proxy" {
  count = local.create_proxy ? 1 : 0

  name   = "${var.identifier}-proxy"
  role   = aws_iam_role.proxy[0].id
  policy = data.aws_iam_policy_document.proxy[0].json
}

resource "aws_security_group" "proxy" {
  count = local.create_proxy ? 1 : 0

  name        = "${var.identifier}-proxy"
  description = "RDS Proxy of ${var.identifier}: from the client groups, to the instance"
  vpc_id      = var.vpc_id

  tags = merge({ Name = "${var.identifier}-proxy" }, var.tags)
}

resource "aws_vpc_security_group_ingress_rule" "proxy_from_clients" {
  count = local.create_proxy ? length(var.client_security_group_ids) : 0

  security_group_id            = aws_security_group.proxy[0].id
  description                  = "PostgreSQL from a client group"
  ip_protocol                  = "tcp"
  from_port                    = var.port
  to_port                      = var.port
  referenced_security_group_id = var.client_security_group_ids[count.index]

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "clients_to_proxy" {
  count = local.create_proxy ? length(var.client_security_group_ids) : 0

  security_group_id            = var.client_security_group_ids[count.index]
  description                  = "PostgreSQL to the RDS Proxy"
  ip_protocol                  = "tcp"
  from_port                    = var.port
  to_port                      = var.port
  referenced_security_group_id = aws_security_group.proxy[0].id

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "proxy_to_database" {
  count = local.create_proxy ? length(var.security_group_ids) : 0

  security_group_id            = aws_security_group.proxy[0].id
  description                  = "PostgreSQL to the instance"
  ip_protocol                  = "tcp"
  from_port                    = var.port
  to_port                      = var.port
  referenced_security_group_id = var.security_group_ids[count.index]

  tags = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "database_from_proxy" {
  count = local.create_proxy ? length(var.security_group_ids) : 0

  security_group_id            = var.security_group_ids[count.index]
  description                  = "PostgreSQL from the RDS Proxy"
  ip_protocol                  = "tcp"
  from_port                    = var.port
  to_port                      = var.port
  referenced_security_group_id = aws_security_group.proxy[0].id

  tags = var.tags
}

resource "aws_db_proxy" "this" {
  count = local.create_proxy ? 1 : 0

  name                   = var.identifier
  engine_family          = "POSTGRESQL"
  role_arn               = aws_iam_role.proxy[0].arn
  vpc_subnet_ids         = var.subnet_ids
  vpc_security_group_ids = [aws_security_group.proxy[0].id]
  require_tls            = true
  idle_client_timeout    = var.proxy_idle_client_timeout
  debug_logging          = false

  auth {
    auth_scheme               = "SECRETS"
    secret_arn                = local.secret_arn
    iam_auth                  = "DISABLED"
    client_password_auth_type = "POSTGRES_SCRAM_SHA_256"
    description               = "Master user of ${var.identifier}"
  }

  # One entry per further database user (the pipelines' least-privilege roles): the proxy logs in
  # as whichever user the client names, with that user's secret.
  dynamic "auth" {
    for_each = var.proxy_auth_secrets

    content {
      auth_scheme               = "SECRETS"
      secret_arn                = auth.value.secret_arn
      iam_auth                  = "DISABLED"
      client_password_auth_type = "POSTGRES_SCRAM_SHA_256"
      description               = coalesce(auth.value.description, "Database user of ${var.identifier}")
    }
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.proxy]
}

resource "aws_db_proxy_default_target_group" "this" {
  count = local.create_proxy ? 1 : 0

  db_proxy_name = aws_db_proxy.this[0].name

  connection_pool_config {
    max_connections_percent      = var.proxy_max_connections_percent
    max_idle_connections_percent = floor(var.proxy_max_connections_percent / 2)
    connection_borrow_timeout    = 120
  }
}

resource "aws_db_proxy_target" "this" {
  count = local.create_proxy ? 1 : 0

  db_proxy_name          = aws_db_proxy.this[0].name
  target_group_name      = aws_db_proxy_default_target_group.this[0].name
  db_instance_identifier = aws_db_instance.this[0].identifier
}
