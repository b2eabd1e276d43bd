"""The three functions through the Lambda entry point, configured by environment as Terraform does."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from dynamodb_migration import handler as entry
from pipeline_common.events import EventError
from scripts.lambda_context import LocalLambdaContext
from tests.dynamodb_migration.conftest import REGION, Migration


@pytest.fixture
def environment(migration: Migration, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """`environment(function)` sets the variables of that function, as the Terraform module does."""
    settings = migration.settings
    sns = boto3.client("sns", region_name=REGION)
    topic = sns.create_topic(Name="migration-results")["TopicArn"]
    base = {
        "SOURCE_TABLE": settings.source_table,
        "TARGET_TABLE": settings.target_table,
        "STATE_TABLE": settings.state_table,
        "KEY_ATTRIBUTES": ",".join(settings.key_attributes),
        "TRANSFORM": json.dumps(dict(settings.transform.source)),
        "SOURCE_STREAM_ARN": settings.source_stream_arn or "",
        "TOTAL_SEGMENTS": "4",
        "PAGE_SIZE": "50",
        "RESULTS_TOPIC_ARN": topic,
    }

    def configure(function: str) -> None:
        for name, value in {**base, "MIGRATION_FUNCTION": function}.items():
            monkeypatch.setenv(name, value)
        entry.sandbox.reset()

    yield configure
    entry.sandbox.reset()


def _invoke(event: dict[str, Any]) -> Any:
    return entry.handler(event, LocalLambdaContext(function_name="migration", timeout_seconds=120))


def test_copy_then_sync_then_verify_through_the_handler(
    migration: Migration, environment: Callable[[str], None]
) -> None:
    migration.fill_source(80)
    early = migration.stream.read()  # the sync starts at TRIM_HORIZON: these come too

    environment("copy")
    copied = _invoke({})
    assert copied["status"] == "done" and copied["totals"]["written"] == 80
    assert _invoke({})["this_run"]["scanned"] == 0

    environment("sync")
    migration.put_source(id="item-00003", pref="later", n=3)
    migration.delete_source(id="item-00004")
    assert _invoke({"Records": early + migration.stream.read()}) == {"batchItemFailures": []}
    assert migration.target() == migration.expected()

    environment("verify")
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="results")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns", region_name=REGION).subscribe(
        TopicArn=entry.Settings.from_env().results_topic_arn, Protocol="sqs", Endpoint=queue_arn
    )
    verified = _invoke({"mode": "compare"})
    assert verified["match"] is True and verified["source_count"] == 79

    (message,) = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"]
    notification = json.loads(message["Body"])
    assert notification["Subject"] == f"DynamoDB migration {migration.settings.source_table}: match"
    assert json.loads(notification["Message"]) == verified


def test_a_failed_segment_fails_the_invocation_after_the_others_ran(
    migration: Migration, environment: Callable[[str], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    migration.fill_source(20)
    migration.put_source(id="huge", blob="y" * 390_000)
    environment("copy")
    monkeypatch.setenv("TRANSFORM", json.dumps({"set": {"padding": "x" * 20_000}}))
    entry.sandbox.reset()

    with pytest.raises(entry.CopyFailed, match="ValidationException") as raised:
        _invoke({})
    assert '"segments_done": 3' in str(raised.value)
    assert "huge" not in migration.target() and len(migration.target()) > 0


@pytest.mark.parametrize(
    ("function", "event", "message"),
    [
        ("sync", {}, "the sync function takes DynamoDB stream events only"),
        ("sync", {"Records": [{"eventSource": "aws:sqs"}]}, "the sync function takes DynamoDB stream events only"),
        ("copy", {"Records": [{"eventSource": "aws:dynamodb"}]}, "the copy function is invoked by hand"),
        ("verify", {"mode": "everything"}, "verify mode must be one of"),
    ],
)
def test_events_a_function_does_not_take_are_refused(
    function: str, event: dict[str, Any], message: str, environment: Callable[[str], None]
) -> None:
    environment(function)
    with pytest.raises(EventError) as raised:
        _invoke(event)
    assert message in str(raised.value)
