"""scripts/localstack.py against a moto server standing in for LocalStack's endpoint (reached, as
LocalStack would be, through localstack-client with a custom host:port).

The deployment is built with boto3 in the shape the root module deploys and described by outputs in
the shape `terraform output -json` gives: a file loader (bucket -> topic -> queue with a DLQ ->
mapping -> function), schema migrations (bucket -> topic -> function, with a DLQ) and a scheduled
table sync. The real root's outputs are checked the same way after its apply to moto
(tests/terraform/test_apply_moto.py).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from scripts.localstack import ExistingDatabase, check_deployment, localstack_clients, prepare_database
from tests.terraform.tfkit import REPO

REGION = "us-east-1"
ROLE_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def _tls_only(resource: str, service: str, allow: dict[str, Any] | None = None) -> str:
    deny = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": f"{service}:*",
        "Resource": resource,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [deny, *([allow] if allow else [])]})


@pytest.fixture
def localstack_host(moto_server: str) -> str:
    return urlparse(moto_server).netloc


@pytest.fixture
def client(localstack_host: str) -> Callable[[str], Any]:
    return localstack_clients(localstack_host, REGION)


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return None\n")
    return buffer.getvalue()


def _bucket_notifying_a_topic(client: Callable[[str], Any], name: str) -> str:
    """A hardened bucket whose ObjectCreated events go to a topic of the same name; the topic's ARN."""
    s3 = client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            k: True for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
        },
    )
    s3.put_bucket_policy(Bucket=name, Policy=_tls_only(f"arn:aws:s3:::{name}/*", "s3"))
    topic = client("sns").create_topic(Name=name)["TopicArn"]
    s3.put_bucket_notification_configuration(
        Bucket=name,
        NotificationConfiguration={"TopicConfigurations": [{"TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]},
    )
    return topic


def _queue(client: Callable[[str], Any], name: str, **attributes: str) -> tuple[str, str]:
    sqs = client("sqs")
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": _tls_only(arn, "sqs")})
    return url, arn


def _function(client: Callable[[str], Any], name: str, package: str, environment: dict[str, str]) -> dict[str, Any]:
    role = client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(ROLE_TRUST))["Role"]
    created = client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role["Arn"],
        Handler=f"{package}.handler.handler",
        Code={"ZipFile": _zip()},
        Environment={"Variables": environment},
    )
    return {
        "function_name": name,
        "arn": created["FunctionArn"],
        "role_arn": role["Arn"],
        "handler": f"{package}.handler.handler",
        "environment_variables": environment,
        "event_source": {},
    }


@pytest.fixture
def deployment(client: Callable[[str], Any]) -> dict[str, Any]:
    """A deployment made with boto3, and the outputs describing it."""
    prefix = f"lscheck-{uuid.uuid4().hex[:8]}"
    sns, lam = client("sns"), client("lambda")

    # file loader: bucket -> topic -> queue (DLQ) -> mapping -> function
    landing = f"{prefix}-landing"
    topic = _bucket_notifying_a_topic(client, landing)
    dlq_url, dlq_arn = _queue(client, f"{prefix}-file-loader-dlq")
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})
    queue_url, queue_arn = _queue(client, f"{prefix}-file-loader", RedrivePolicy=redrive)
    loader = _function(client, f"{prefix}-file-loader", "file_loader", {"SOURCE_BUCKET": landing})
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    lam.create_event_source_mapping(
        EventSourceArn=queue_arn,
        FunctionName=loader["arn"],  # as Terraform makes it
        BatchSize=1,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )
    loader |= {"trigger": "sqs"}
    loader["event_source"] = {
        "bucket": landing,
        "topic_arn": topic,
        "queue_url": queue_url,
        "queue_arn": queue_arn,
        "dlq_url": dlq_url,
        "dlq_arn": dlq_arn,
    }

    # schema migrations: bucket -> topic -> function, failed invocations to a DLQ
    migrations = f"{prefix}-migrations"
    migrations_topic = _bucket_notifying_a_topic(client, migrations)
    migrations_dlq_url, migrations_dlq_arn = _queue(client, f"{prefix}-migrations-dlq")
    migrator = _function(client, f"{prefix}-migrations", "schema_migrations", {"MIGRATIONS_BUCKET": migrations})
    sns.subscribe(TopicArn=migrations_topic, Protocol="lambda", Endpoint=migrator["arn"])
    migrator |= {"trigger": "sns"}
    migrator["event_source"] = {
        "bucket": migrations,
        "sns_topic_arn": migrations_topic,
        "dlq_url": migrations_dlq_url,
        "dlq_arn": migrations_dlq_arn,
    }

    # table sync: a schedule
    sync = _function(client, f"{prefix}-table-sync", "table_sync", {"SYNC_TABLES": "[]"})
    scheduler_role = client("iam").create_role(RoleName=f"{prefix}-scheduler", AssumeRolePolicyDocument="{}")["Role"]
    client("scheduler").create_schedule(
        Name=sync["function_name"],
        ScheduleExpression="rate(1 hour)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": sync["arn"], "RoleArn": scheduler_role["Arn"]},
    )
    sync |= {"trigger": "schedule"}
    sync["event_source"] = {"schedule_expression": "rate(1 hour)"}

    results = sns.create_topic(Name=f"{prefix}-migration-results")["TopicArn"]
    return {
        "functions": {"file_loader": loader, "schema_migrations": migrator, "table_sync": sync},
        "buckets": {"landing": landing, "migrations": migrations},
        "schema_migrations_results_topic_arn": results,
    }


def test_a_complete_deployment_passes_and_every_piece_is_read(deployment: dict[str, Any], client: Any) -> None:
    report = check_deployment(deployment, client)
    assert report.problems == []
    checked = "\n".join(report.checked)
    loader = deployment["functions"]["file_loader"]["event_source"]
    for piece in (
        "function ",
        f"queue of file_loader {loader['queue_url']}",
        "dead-letter queue ",
        f"event source mapping {loader['queue_arn']}",
        f"subscription {loader['topic_arn']} -> sqs",
        "-> lambda ",
        f"notification s3://{loader['bucket']}",
        "schedule ",
        "policy of landing bucket",
        "public access block of migrations bucket",
        "schema_migrations_results_topic_arn",
    ):
        assert piece in checked, piece
    assert len(report.checked) == 21  # 7 file loader, 5 migrations, 2 table sync, 3 per bucket, 1 topic


def _delete_queue(client: Any, deployment: dict[str, Any]) -> str:
    client("sqs").delete_queue(QueueUrl=deployment["functions"]["file_loader"]["event_source"]["queue_url"])
    return "missing: queue of file_loader"


def _delete_dlq(client: Any, deployment: dict[str, Any]) -> str:
    client("sqs").delete_queue(QueueUrl=deployment["functions"]["file_loader"]["event_source"]["dlq_url"])
    return "missing: dead-letter queue"


def _delete_mapping(client: Any, deployment: dict[str, Any]) -> str:
    lam = client("lambda")
    queue_arn = deployment["functions"]["file_loader"]["event_source"]["queue_arn"]
    (mapping,) = lam.list_event_source_mappings(EventSourceArn=queue_arn)["EventSourceMappings"]
    lam.delete_event_source_mapping(UUID=mapping["UUID"])
    return "missing: event source mapping"


def _unsubscribe_function(client: Any, deployment: dict[str, Any]) -> str:
    sns = client("sns")
    topic = deployment["functions"]["schema_migrations"]["event_source"]["sns_topic_arn"]
    for subscription in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]:
        sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])
    return f"missing: subscription {topic} -> lambda"


def _delete_bucket_policy(client: Any, deployment: dict[str, Any]) -> str:
    client("s3").delete_bucket_policy(Bucket=deployment["buckets"]["landing"])
    return "missing: policy of landing bucket"


def _delete_schedule(client: Any, deployment: dict[str, Any]) -> str:
    client("scheduler").delete_schedule(Name=deployment["functions"]["table_sync"]["function_name"])
    return "missing: schedule"


def _delete_function(client: Any, deployment: dict[str, Any]) -> str:
    client("lambda").delete_function(FunctionName=deployment["functions"]["table_sync"]["function_name"])
    return "missing: function"


def _change_environment(client: Any, deployment: dict[str, Any]) -> str:
    name = deployment["functions"]["file_loader"]["function_name"]
    client("lambda").update_function_configuration(
        FunctionName=name, Environment={"Variables": {"SOURCE_BUCKET": "elsewhere", "EXTRA": "1"}}
    )
    return "environment differs in EXTRA, SOURCE_BUCKET"


def _delete_results_topic(client: Any, deployment: dict[str, Any]) -> str:
    client("sns").delete_topic(TopicArn=deployment["schema_migrations_results_topic_arn"])
    return "missing: topic"


@pytest.mark.parametrize(
    "break_it",
    [
        _delete_queue,
        _delete_dlq,
        _delete_mapping,
        _unsubscribe_function,
        _delete_bucket_policy,
        _delete_schedule,
        _delete_function,
        _change_environment,
        _delete_results_topic,
    ],
)
def test_a_missing_piece_fails_naming_it(
    break_it: Callable[[Any, dict[str, Any]], str], deployment: dict[str, Any], client: Any
) -> None:
    expected = break_it(client, deployment)
    report = check_deployment(deployment, client)
    assert not report.ok
    assert [p for p in report.problems if expected in p], report.problems


def test_the_command_line_exits_1_listing_what_is_missing(
    deployment: dict[str, Any], client: Any, localstack_host: str, tmp_path: Path
) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({name: {"value": value, "sensitive": False} for name, value in deployment.items()}))
    command = [sys.executable, "-m", "scripts.localstack", "--localstack-host", localstack_host, "check"]
    passed = subprocess.run([*command, "--outputs-json", str(outputs)], cwd=REPO, capture_output=True, text=True)
    assert passed.returncode == 0, passed.stderr
    assert "21 pieces checked, 0 missing or different" in passed.stdout

    _delete_mapping(client, deployment)
    failed = subprocess.run([*command, "--outputs-json", str(outputs)], cwd=REPO, capture_output=True, text=True)
    assert failed.returncode == 1
    assert "missing: event source mapping" in failed.stderr and "1 missing or different" in failed.stdout

    outputs.write_text("{}")
    empty = subprocess.run([*command, "--outputs-json", str(outputs)], cwd=REPO, capture_output=True, text=True)
    assert empty.returncode == 1 and "nothing was deployed" in empty.stderr


def test_prepare_creates_the_secret_and_group_once_and_names_them(client: Any, localstack_host: str) -> None:
    prefix = f"lsprep-{uuid.uuid4().hex[:8]}"
    database = ExistingDatabase("pipelines-postgres", 5432, "pipelines", "postgres", "first")
    variables = prepare_database(client, prefix, database)
    assert variables["create_database"] is False
    assert (variables["db_host"], variables["db_port"], variables["db_name"]) == (
        "pipelines-postgres",
        5432,
        "pipelines",
    )
    secret = client("secretsmanager").get_secret_value(SecretId=variables["db_master_user_secret_arn"])
    assert json.loads(secret["SecretString"]) == {"username": "postgres", "password": "first"}
    (group,) = client("ec2").describe_security_groups(GroupIds=[variables["db_security_group_id"]])["SecurityGroups"]
    assert group["GroupName"] == f"{prefix}-existing-database"

    again = prepare_database(
        client, prefix, ExistingDatabase("pipelines-postgres", 5432, "pipelines", "postgres", "second")
    )
    assert again == variables  # same secret (the root validates its complete ARN) and group
    secret = client("secretsmanager").get_secret_value(SecretId=variables["db_master_user_secret_arn"])
    assert json.loads(secret["SecretString"])["password"] == "second"
