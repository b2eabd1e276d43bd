################################################################################
# Execution role: one per function, one inline least-privilege policy
################################################################################

locals {
  # Every database the function connects to: it may read exactly those secrets, and decrypt with
  # exactly the keys they are encrypted with (a list per database, so the statement's presence is
  # known at plan time even while a key is created in the same apply).
  database_secret_arns  = [for db in values(local.databases) : db.secret_arn]
  database_kms_key_arns = flatten([for db in values(local.databases) : db.secret_kms_key_arns])
}

data "aws_iam_policy_document" "assume" {
  count = local.create ? 1 : 0

  statement {
    sid     = "LambdaAssumeRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  count = local.create ? 1 : 0

  name                 = var.function_name
  description          = "Execution role of the ${var.function_name} Lambda function"
  path                 = var.role_path
  permissions_boundary = var.role_permissions_boundary
  assume_role_policy   = data.aws_iam_policy_document.assume[0].json

  tags = var.tags
}

data "aws_iam_policy_document" "this" {
  count = local.create ? 1 : 0

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this[0].arn}:*"]
  }

  dynamic "statement" {
    for_each = var.tracing_mode == "Active" ? [1] : []

    content {
      sid = "XRayWrite"
      # X-Ray trace writes have no resource-level permissions: AWS only accepts "*".
      actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = local.in_vpc ? [1] : []

    content {
      sid     = "VpcCreateNetworkInterface"
      actions = ["ec2:CreateNetworkInterface"]
      resources = concat(
        ["${local.ec2_arn_prefix}:network-interface/*"],
        [for id in var.vpc_subnet_ids : "${local.ec2_arn_prefix}:subnet/${id}"],
        [for id in var.vpc_security_group_ids : "${local.ec2_arn_prefix}:security-group/${id}"],
      )
    }
  }

  dynamic "statement" {
    for_each = local.in_vpc ? [1] : []

    content {
      sid       = "VpcManageNetworkInterfaces"
      actions   = ["ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"]
      resources = ["${local.ec2_arn_prefix}:network-interface/*"]
    }
  }

  dynamic "statement" {
    for_each = local.in_vpc ? [1] : []

    content {
      sid = "VpcDescribe"
      # EC2 Describe* calls cannot be scoped to resources: AWS only accepts "*".
      actions   = ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = length(local.databases) > 0 ? [1] : []

    content {
      sid       = "ReadDatabaseSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = local.database_secret_arns
    }
  }

  dynamic "statement" {
    for_each = length(local.database_kms_key_arns) > 0 ? [1] : []

    content {
      sid       = "DecryptDatabaseSecrets"
      actions   = ["kms:Decrypt"]
      resources = local.database_kms_key_arns

      condition {
        test     = "StringLike"
        variable = "kms:ViaService"
        values   = ["secretsmanager.*.amazonaws.com"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.sqs_event_source == null ? [] : [var.sqs_event_source]

    content {
      sid       = "ConsumeQueue"
      actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
      resources = [statement.value.queue_arn]
    }
  }

  dynamic "statement" {
    for_each = var.dynamodb_event_source == null ? [] : [var.dynamodb_event_source]

    content {
      sid       = "ReadStream"
      actions   = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
      resources = [statement.value.stream_arn]
    }
  }

  dynamic "statement" {
    for_each = var.dynamodb_event_source == null ? [] : [var.dynamodb_event_source]

    content {
      sid = "ListStreams"
      # dynamodb:ListStreams has no resource type: AWS only accepts "*".
      actions   = ["dynamodb:ListStreams"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = length(local.sqs_destinations) > 0 ? [1] : []

    content {
      sid       = "SendToFailureQueue"
      actions   = ["sqs:SendMessage"]
      resources = local.sqs_destinations
    }
  }

  dynamic "statement" {
    for_each = length(local.sns_destinations) > 0 ? [1] : []

    content {
      sid       = "PublishToFailureTopic"
      actions   = ["sns:Publish"]
      resources = local.sns_destinations
    }
  }

  dynamic "statement" {
    for_each = var.policy_statements

    content {
      sid       = statement.value.sid
      effect    = statement.value.effect
      actions   = statement.value.actions
      resources = statement.value.resources

      dynamic "condition" {
        for_each = statement.value.conditions

        content {
          test     = condition.value.test
          variable = condition.value.variable
          values   = condition.value.values
        }
      }
    }
  }
}

resource "aws_iam_role_policy" "this" {
  count = local.create ? 1 : 0

  name   = "${var.function_name}-least-privilege"
  role   = aws_iam_role.this[0].id
  policy = data.aws_iam_policy_document.this[0].json
}

################################################################################
# Scheduler role: may invoke only this function
################################################################################

data "aws_iam_policy_document" "scheduler_assume" {
  count = local.create_schedule ? 1 : 0

  statement {
    sid     = "SchedulerAssumeRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  count = local.create_schedule ? 1 : 0

  name                 = "${var.function_name}-sched"
  description          = "Lets EventBridge Scheduler invoke ${var.function_name}"
  path                 = var.role_path
  permissions_boundary = var.role_permissions_boundary
  assume_role_policy   = data.aws_iam_policy_document.scheduler_assume[0].json

  tags = var.tags
}

data "aws_iam_policy_document" "scheduler" {
  count = local.create_schedule ? 1 : 0

  statement {
    sid       = "InvokeFunction"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.this[0].arn, "${aws_lambda_function.this[0].arn}:*"]
  }

  dynamic "statement" {
    for_each = var.schedule.dead_letter == null ? [] : [var.schedule.dead_letter]

    content {
      sid       = "SendToDeadLetterQueue"
      actions   = ["sqs:SendMessage"]
      resources = [statement.value.arn]
    }
  }
}

resource "aws_iam_role_policy" "scheduler" {
  count = local.create_schedule ? 1 : 0

  name   = "${var.function_name}-invoke"
  role   = aws_iam_role.scheduler[0].id
  policy = data.aws_iam_policy_document.scheduler[0].json
}
