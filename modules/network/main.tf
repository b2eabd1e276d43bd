data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  create     = var.create
  create_vpc = var.create && var.create_vpc
  region     = data.aws_region.current.id
  dns_suffix = data.aws_partition.current.dns_suffix

  database_access                = local.create && var.enable_database_access
  create_database_security_group = local.database_access && var.create_database_security_group
  # The rules need a group: the created one, or the existing database's when given.
  database_rules = local.create_database_security_group || (local.database_access && var.database_security_group_id != null)

  azs = length(var.azs) > 0 ? var.azs : ["${local.region}a", "${local.region}b"]
  # /24 per subnet in a /16../20 VPC; smaller VPCs get 4 bits per subnet.
  subnet_newbits = max(4, 24 - tonumber(split("/", var.vpc_cidr)[1]))
  private_subnet_cidrs = length(var.private_subnet_cidrs) > 0 ? var.private_subnet_cidrs : [
    for i, _ in local.azs : cidrsubnet(var.vpc_cidr, local.subnet_newbits, i)
  ]

  # Created or adopted; nothing when the module creates nothing.
  vpc_id             = !local.create ? null : local.create_vpc ? try(aws_vpc.this[0].id, null) : var.vpc_id
  vpc_cidr_block     = !local.create ? null : local.create_vpc ? var.vpc_cidr : var.vpc_cidr_block
  private_subnet_ids = !local.create ? [] : local.create_vpc ? aws_subnet.private[*].id : var.private_subnet_ids
  route_table_ids    = !local.create ? [] : local.create_vpc ? aws_route_table.private[*].id : var.private_route_table_ids

  create_s3_endpoint       = local.create && var.create_s3_gateway_endpoint
  create_dynamodb_endpoint = local.create && var.create_dynamodb_gateway_endpoint
  interface_endpoints      = local.create && var.enable_interface_endpoints ? toset(var.interface_endpoint_services) : toset([])

  # This account, read from a security group this module creates (known after apply): the plan
  # makes no API call, so there is no aws_caller_identity lookup.
  account_id                   = try(aws_security_group.lambda[0].owner_id, "")
  endpoint_allowed_account_ids = distinct(concat([local.account_id], var.endpoint_allowed_account_ids))

  # Data perimeter on every endpoint: a request passes only when both the caller and the resource
  # belong to an allowed account (no foreign credentials, no foreign buckets, queues or secrets).
  # It grants nothing by itself; IAM and resource policies still decide within the perimeter.
  endpoint_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AllowedAccountsPrincipalsToAllowedAccountsResources"
      Effect    = "Allow"
      Principal = "*"
      Action    = "*"
      Resource  = "*"
      Condition = {
        StringEquals = {
          "aws:PrincipalAccount" = local.endpoint_allowed_account_ids
          "aws:ResourceAccount"  = local.endpoint_allowed_account_ids
        }
      }
    }]
  })
}

################################################################################
# VPC with private subnets only: no internet gateway, no NAT
################################################################################

resource "aws_vpc" "this" {
  count = local.create_vpc ? 1 : 0

  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true # private DNS of the interface endpoints needs both

  tags = merge({ Name = var.name }, var.tags)
}

# The default security group of a VPC allows all traffic between its members: strip it.
resource "aws_default_security_group" "this" {
  count = local.create_vpc ? 1 : 0

  vpc_id = aws_vpc.this[0].id

  tags = merge({ Name = "${var.name}-default-deny" }, var.tags)
}

resource "aws_subnet" "private" {
  count = local.create_vpc ? length(local.azs) : 0

  vpc_id                  = aws_vpc.this[0].id
  cidr_block              = local.private_subnet_cidrs[count.index]
  availability_zone       = local.azs[count.index]
  map_public_ip_on_launch = false

  tags = merge({ Name = "${var.name}-private-${local.azs[count.index]}", Tier = "private" }, var.tags)
}

resource "aws_route_table" "private" {
  count = local.create_vpc ? length(local.azs) : 0

  vpc_id = aws_vpc.this[0].id

  tags = merge({ Name = "${var.name}-private-${local.azs[count.index]}" }, var.tags)
}

resource "aws_route_table_association" "private" {
  count = local.create_vpc ? length(local.azs) : 0

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[count.index].id
}

resource "aws_cloudwatch_log_group" "flow_logs" {
  count = local.create_vpc && var.enable_flow_logs ? 1 : 0

  name              = "/aws/vpc/${var.name}/flow-logs"
  retention_in_days = var.flow_log_retention_days
  kms_key_id        = var.log_kms_key_arn

  tags = var.tags
}

data "aws_iam_policy_document" "flow_logs_assume" {
  statement {
    sid     = "VpcFlowLogsAssumeRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "flow_logs" {
  count = local.create_vpc && var.enable_flow_logs ? 1 : 0

  name                 = "${var.name}-flow-logs"
  path                 = var.role_path
  permissions_boundary = var.role_permissions_boundary
  assume_role_policy   = data.aws_iam_policy_document.flow_logs_assume.json

  tags = var.tags
}

data "aws_iam_policy_document" "flow_logs" {
  count = local.create_vpc && var.enable_flow_logs ? 1 : 0

  statement {
    sid       = "WriteFlowLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.flow_logs[0].arn}:*"]
  }
}

resource "aws_iam_role_policy" "flow_logs" {
  count = local.create_vpc && var.enable_flow_logs ? 1 : 0

  name   = "${var.name}-flow-logs"
  role   = aws_iam_role.flow_logs[0].id
  policy = data.aws_iam_policy_document.flow_logs[0].json
}

resource "aws_flow_log" "this" {
  count = local.create_vpc && var.enable_flow_logs ? 1 : 0

  vpc_id               = aws_vpc.this[0].id
  traffic_type         = "ALL"
  log_destination_type = "cloud-watch-logs"
  log_destination      = aws_cloudwatch_log_group.flow_logs[0].arn
  iam_role_arn         = aws_iam_role.flow_logs[0].arn

  tags = merge({ Name = "${var.name}-flow-logs" }, var.tags)
}

################################################################################
# Endpoints: S3 (and DynamoDB) gateways on the private route tables, interface endpoints with
# private DNS, each with the data-perimeter policy above
################################################################################

resource "aws_vpc_endpoint" "s3" {
  count = local.create_s3_endpoint ? 1 : 0

  vpc_id            = local.vpc_id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = local.route_table_ids
  policy            = local.endpoint_policy

  tags = merge({ Name = "${var.name}-s3" }, var.tags)
}

# Gateway endpoints are free; DynamoDB's exists only while a pipeline that uses DynamoDB is enabled,
# so adopting a VPC that has its own does not collide with it for the other pipelines.
resource "aws_vpc_endpoint" "dynamodb" {
  count = local.create_dynamodb_endpoint ? 1 : 0

  vpc_id            = local.vpc_id
  service_name      = "com.amazonaws.${local.region}.dynamodb"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = local.route_table_ids
  policy            = local.endpoint_policy

  tags = merge({ Name = "${var.name}-dynamodb" }, var.tags)
}

resource "aws_vpc_endpoint" "interface" {
  for_each = local.interface_endpoints

  vpc_id              = local.vpc_id
  service_name        = "com.amazonaws.${local.region}.${each.value}"
  vpc_endpoint_type   = "Interface"
  private_dns_enabled = true
  subnet_ids          = local.private_subnet_ids
  security_group_ids  = [aws_security_group.endpoints[0].id]
  policy              = local.endpoint_policy

  tags = merge({ Name = "${var.name}-${each.value}" }, var.tags)
}

################################################################################
# Security groups
################################################################################

resource "aws_security_group" "lambda" {
  count = local.create ? 1 : 0

  name        = "${var.name}-lambda"
  description = "Pipeline Lambda functions: egress to the database, the endpoints and S3 only"
  vpc_id      = local.vpc_id

  tags = merge({ Name = "${var.name}-lambda" }, var.tags)
}

resource "aws_security_group" "database" {
  count = local.create_database_security_group ? 1 : 0

  name        = "${var.name}-database"
  description = "Unified PostgreSQL database: reachable only from the Lambda group"
  vpc_id      = local.vpc_id

  tags = merge({ Name = "${var.name}-database" }, var.tags)
}

resource "aws_security_group" "endpoints" {
  count = local.create && var.enable_interface_endpoints ? 1 : 0

  name        = "${var.name}-endpoints"
  description = "Interface VPC endpoints: HTTPS from the Lambda group"
  vpc_id      = local.vpc_id

  tags = merge({ Name = "${var.name}-endpoints" }, var.tags)
}

locals {
  lambda_security_group_id = try(aws_security_group.lambda[0].id, null)
  # The created database group, or the existing database's group that admits the functions.
  database_security_group_id = local.create_database_security_group ? try(aws_security_group.database[0].id, null) : var.database_security_group_id
}

# The database admits the functions on its port, and the functions may reach it there.
resource "aws_vpc_security_group_ingress_rule" "database" {
  count = local.database_rules ? 1 : 0

  security_group_id            = local.database_security_group_id
  description                  = "Database from the ${var.name} Lambda group"
  ip_protocol                  = "tcp"
  from_port                    = var.database_port
  to_port                      = var.database_port
  referenced_security_group_id = local.lambda_security_group_id

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "to_database" {
  count = local.database_rules ? 1 : 0

  security_group_id            = local.lambda_security_group_id
  description                  = "To the database"
  ip_protocol                  = "tcp"
  from_port                    = var.database_port
  to_port                      = var.database_port
  referenced_security_group_id = local.database_security_group_id

  tags = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "endpoints" {
  count = local.create && var.enable_interface_endpoints ? 1 : 0

  security_group_id            = aws_security_group.endpoints[0].id
  description                  = "HTTPS from the Lambda group"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = local.lambda_security_group_id

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "to_endpoints" {
  count = local.create && var.enable_interface_endpoints ? 1 : 0

  security_group_id            = local.lambda_security_group_id
  description                  = "HTTPS to the interface endpoints"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.endpoints[0].id

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "to_s3" {
  count = local.create_s3_endpoint ? 1 : 0

  security_group_id = local.lambda_security_group_id
  description       = "HTTPS to S3 through the gateway endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = aws_vpc_endpoint.s3[0].prefix_list_id

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "to_dynamodb" {
  count = local.create_dynamodb_endpoint ? 1 : 0

  security_group_id = local.lambda_security_group_id
  description       = "HTTPS to DynamoDB through the gateway endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = aws_vpc_endpoint.dynamodb[0].prefix_list_id

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "https_cidrs" {
  for_each = local.create ? toset(var.https_egress_cidrs) : toset([])

  security_group_id = local.lambda_security_group_id
  description       = "HTTPS to ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value

  tags = var.tags
}

# The rules above were keyed by client group ("lambda", and "dms" for a group that is gone):
# existing state follows the Lambda group's rules here.
moved {
  from = aws_vpc_security_group_ingress_rule.database["lambda"]
  to   = aws_vpc_security_group_ingress_rule.database[0]
}

moved {
  from = aws_vpc_security_group_egress_rule.to_database["lambda"]
  to   = aws_vpc_security_group_egress_rule.to_database[0]
}

moved {
  from = aws_vpc_security_group_ingress_rule.endpoints["lambda"]
  to   = aws_vpc_security_group_ingress_rule.endpoints[0]
}

moved {
  from = aws_vpc_security_group_egress_rule.to_endpoints["lambda"]
  to   = aws_vpc_security_group_egress_rule.to_endpoints[0]
}

moved {
  from = aws_vpc_security_group_egress_rule.to_s3["lambda"]
  to   = aws_vpc_security_group_egress_rule.to_s3[0]
}
