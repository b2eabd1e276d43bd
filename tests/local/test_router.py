"""The event router on its own: real moto server, real handler zips run in sandbox processes."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from scripts.localenv.router import Router
from scripts.localenv.wiring import (
    FunctionSpec,
    QueueMapping,
    RuleTarget,
    Schedule,
    StreamMapping,
    TopicSubscription,
    Wiring,
)
from tests.local.conftest import journal

# Appends what it was given to $JOURNAL; fails records whose body says "bad" (partial batch
# response) and the whole batch when a body says "crash" on its first delivery.
SQS_HANDLER = """
import json, os

INVOCATIONS = 0

def handler(event, context):
    global INVOCATIONS
    INVOCATIONS += 1
    records = event["Records"]
    entry = {
        "bodies": [r["body"] for r in records],
        "receive_counts": [int(r["attributes"]["ApproximateReceiveCount"]) for r in records],
        "invocations": INVOCATIONS,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "source": records[0]["eventSource"],
    }
    with open(os.environ["JOURNAL"], "a") as journal:
        journal.write(json.dumps(entry) + "\\n")
    if any(r["body"] == "crash" and r["attributes"]["ApproximateReceiveCount"] == "1" for r in records):
        raise RuntimeError("crash on first delivery")
    return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records if r["body"].startswith("bad")]}
"""


def wiring_for(spec: FunctionSpec, **parts: Any) -> Wiring:
    return Wiring(functions={spec.name: spec}, **parts)


def send(client: Callable[[str], Any], url: str, bodies: list[str]) -> None:
    sqs = client("sqs")
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies[start : start + 10])]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def queue_depth(client: Callable[[str], Any], url: str) -> int:
    attributes = client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def drain(client: Callable[[str], Any], url: str) -> list[str]:
    sqs = client("sqs")
    bodies: list[str] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [m["Body"] for m in messages]
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_batches_respect_batch_size_and_every_message_is_delivered_once(
    make_function, make_queue, make_router, client
) -> None:
    spec = make_function(SQS_HANDLER)
    url, arn, _ = make_queue()
    bodies = [f"m{i}" for i in range(37)]
    send(client, url, bodies)
    mapping = QueueMapping(function=spec.name, queue_arn=arn, batch_size=10, batching_window_seconds=1)
    router = make_router(wiring_for(spec, queues=(mapping,)))

    assert router.wait_idle(60)

    entries = journal(spec)
    delivered = [body for entry in entries for body in entry["bodies"]]
    assert sorted(delivered) == sorted(bodies)
    assert max(len(entry["bodies"]) for entry in entries) == 10
    assert all(len(entry["bodies"]) <= 10 for entry in entries)
    assert queue_depth(client, url) == 0
    assert router.queue_outcomes[mapping.queue_name].deleted == 37
    assert router.stats[spec.name].records == 37
    assert entries[0]["source"] == "aws:sqs"


def test_maximum_concurrency_caps_parallel_batches(make_function, make_queue, make_router, client) -> None:
    spec = make_function(
        """
        import json, os, time
        def handler(event, context):
            started = time.time()
            time.sleep(0.5)
            with open(os.environ["JOURNAL"], "a") as journal:
                journal.write(json.dumps({"start": started, "end": time.time(), "pid": os.getpid()}) + "\\n")
        """
    )
    url, arn, _ = make_queue()
    send(client, url, [f"m{i}" for i in range(8)])
    mapping = QueueMapping(function=spec.name, queue_arn=arn, batch_size=1, maximum_concurrency=2)
    router = make_router(wiring_for(spec, queues=(mapping,)), max_sandboxes=4)

    assert router.wait_idle(60)

    entries = journal(spec)
    assert len(entries) == 8
    events = sorted([(e["start"], 1) for e in entries] + [(e["end"], -1) for e in entries])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    assert peak == 2
    # Two warm sandboxes served all eight invocations.
    assert len({e["pid"] for e in entries}) == 2


def test_partial_batch_failure_returns_only_reported_messages_and_dead_letters_them(
    make_function, make_queue, make_router, client
) -> None:
    spec = make_function(SQS_HANDLER)
    url, arn, dlq_url = make_queue(visibility_timeout=1, max_receive_count=2)
    send(client, url, ["good-1", "bad-1", "good-2", "bad-2", "good-3"])
    mapping = QueueMapping(function=spec.name, queue_arn=arn, batch_size=10, report_batch_item_failures=True)
    router = make_router(wiring_for(spec, queues=(mapping,)))

    assert router.wait_idle(60)

    seen = Counter(body for entry in journal(spec) for body in entry["bodies"])
    # Good messages were deleted after their first delivery; bad ones came back once after the
    # visibility timeout and then moved to the DLQ on their third receive (maxReceiveCount 2).
    assert seen == {"good-1": 1, "good-2": 1, "good-3": 1, "bad-1": 2, "bad-2": 2}
    assert sorted(drain(client, dlq_url)) == ["bad-1", "bad-2"]
    assert queue_depth(client, url) == 0
    counts: dict[str, list[int]] = {}
    for entry in journal(spec):
        for body, count in zip(entry["bodies"], entry["receive_counts"], strict=True):
            counts.setdefault(body, []).append(count)
    assert counts["bad-1"] == counts["bad-2"] == [1, 2]


def test_without_report_batch_item_failures_a_partial_response_deletes_the_whole_batch(
    make_function, make_queue, make_router, client
) -> None:
    spec = make_function(SQS_HANDLER)
    url, arn, dlq_url = make_queue(visibility_timeout=1, max_receive_count=2)
    send(client, url, ["good-1", "bad-1"])
    mapping = QueueMapping(function=spec.name, queue_arn=arn, batch_size=10, report_batch_item_failures=False)
    router = make_router(wiring_for(spec, queues=(mapping,)))

    assert router.wait_idle(30)

    assert Counter(body for entry in journal(spec) for body in entry["bodies"]) == {"good-1": 1, "bad-1": 1}
    assert drain(client, dlq_url) == []


def test_an_unknown_item_identifier_fails_the_whole_batch(make_function, make_queue, make_router, client) -> None:
    spec = make_function(
        """
        import json, os
        def handler(event, context):
            with open(os.environ["JOURNAL"], "a") as journal:
                journal.write(json.dumps([r["body"] for r in event["Records"]]) + "\\n")
            return {"batchItemFailures": [{"itemIdentifier": "not-a-message-id"}]}
        """
    )
    url, arn, dlq_url = make_queue(visibility_timeout=1, max_receive_count=1)
    send(client, url, ["a", "b"])
    mapping = QueueMapping(function=spec.name, queue_arn=arn, batch_size=10, report_batch_item_failures=True)
    router = make_router(wiring_for(spec, queues=(mapping,)))

    assert router.wait_idle(30)

    assert sorted(drain(client, dlq_url)) == ["a", "b"]
    assert router.queue_outcomes[mapping.queue_name].deleted == 0


def test_a_function_error_redelivers_the_whole_batch_after_the_visibility_timeout(
    make_function, make_queue, make_router, client
) -> None:
    spec = make_function(SQS_HANDLER)
    url, arn, dlq_url = make_queue(visibility_timeout=2, max_receive_count=3)
    send(client, url, ["crash", "ok-1", "ok-2"])
    mapping = QueueMapping(function=spec.name, queue_arn=arn, batch_size=10, report_batch_item_failures=True)
    router = make_router(wiring_for(spec, queues=(mapping,)))

    started = time.monotonic()
    assert router.wait_idle(60)

    entries = journal(spec)
    assert [sorted(entry["bodies"]) for entry in entries] == [["crash", "ok-1", "ok-2"]] * 2
    assert entries[0]["receive_counts"] == [1, 1, 1]
    assert entries[1]["receive_counts"] == [2, 2, 2]
    # The same warm sandbox survived the handler's exception.
    assert [entry["invocations"] for entry in entries] == [1, 2]
    assert time.monotonic() - started >= 2
    assert drain(client, dlq_url) == []
    assert router.stats[spec.name].errors == 1


def test_the_context_carries_the_configured_timeout_and_a_timeout_kills_the_sandbox(make_function, make_router) -> None:
    spec = make_function(
        """
        import os, time
        CALLS = 0
        def handler(event, context):
            global CALLS
            CALLS += 1
            if event.get("sleep"):
                time.sleep(event["sleep"])
            return {"remaining_ms": context.get_remaining_time_in_millis(), "calls": CALLS,
                    "request_id": context.aws_request_id, "memory": context.memory_limit_in_mb,
                    "function": context.function_name, "pid": os.getpid()}
        """,
        timeout=2,
        memory_mb=192,
    )
    router = make_router(wiring_for(spec))

    first = router.invoke(spec.name, {})
    assert first.ok, first.error
    assert 1500 < first.result["remaining_ms"] <= 2000
    assert first.result["memory"] == 192
    assert first.result["function"] == spec.name
    assert first.result["request_id"] == first.request_id
    assert first.init_ms is not None

    warm = router.invoke(spec.name, {})
    assert warm.result["calls"] == 2 and warm.result["pid"] == first.result["pid"]
    assert warm.init_ms is None

    timed_out = router.invoke(spec.name, {"sleep": 5})
    assert timed_out.error_type == "Sandbox.Timedout"
    assert "Task timed out after 2.00 seconds" in timed_out.error["errorMessage"]
    assert 1900 <= timed_out.duration_ms < 3500

    # Lambda replaces a sandbox that timed out: module state starts over.
    after = router.invoke(spec.name, {})
    assert after.ok and after.result["calls"] == 1 and after.result["pid"] != first.result["pid"]
    assert router.stats[spec.name].timeouts == 1


def test_a_sandbox_exceeding_its_memory_size_is_killed(make_function, make_router) -> None:
    spec = make_function(
        """
        import time
        def handler(event, context):
            hoard = bytearray(400 * 1024 * 1024)
            time.sleep(2)
            return len(hoard)
        """,
        memory_mb=128,
    )
    router = make_router(wiring_for(spec))

    invocation = router.invoke(spec.name, {})

    assert invocation.error_type == "Runtime.OutOfMemory"


def test_only_the_package_and_the_runtime_sdk_are_importable(make_function, make_router) -> None:
    spec = make_function(
        """
        import importlib, os, sys
        def handler(event, context):
            found = {}
            for name in ("boto3", "botocore", "pytest", "moto", "scripts"):
                try:
                    importlib.import_module(name)
                    found[name] = True
                except ImportError:
                    found[name] = False
            return {"found": found, "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
                    "task_root": os.environ["LAMBDA_TASK_ROOT"], "cwd": os.getcwd(), "path0": sys.path[0]}
        """
    )
    router = make_router(wiring_for(spec))

    result = router.invoke(spec.name, {}).result

    assert result["found"] == {"boto3": True, "botocore": True, "pytest": False, "moto": False, "scripts": False}
    assert result["endpoint"] == router.aws.endpoint_url
    assert result["cwd"] == result["task_root"] == result["path0"]


def test_an_import_error_is_reported_as_an_init_failure(make_function, make_router) -> None:
    spec = make_function("import not_packaged_anywhere\ndef handler(event, context):\n    return 1\n")
    router = make_router(wiring_for(spec))

    invocation = router.invoke(spec.name, {})

    assert invocation.error_type == "Runtime.ImportModuleError"
    assert "not_packaged_anywhere" in invocation.error["errorMessage"]


def test_sns_subscription_is_bridged_and_async_failures_are_retried_then_dead_lettered(
    make_function, make_queue, make_router, client
) -> None:
    spec_ok = make_function(
        """
        import json, os
        def handler(event, context):
            record = event["Records"][0]
            with open(os.environ["JOURNAL"], "a") as journal:
                journal.write(json.dumps({"source": record["EventSource"], "message": record["Sns"]["Message"],
                                          "subject": record["Sns"]["Subject"]}) + "\\n")
            if record["Sns"]["Message"] == "poison":
                raise ValueError("poison message")
        """
    )
    dlq_url, dlq_arn, _ = make_queue()
    spec = FunctionSpec(**{**spec_ok.__dict__, "dead_letter_arn": dlq_arn, "async_max_retries": 2})
    sns = client("sns")
    topic_arn = sns.create_topic(Name="t-" + spec.name)["TopicArn"]
    subscription = TopicSubscription(function=spec.name, topic_arn=topic_arn)
    router = make_router(wiring_for(spec, topics=(subscription,)), async_retry_delays=(0.2,))

    sns.publish(TopicArn=topic_arn, Message="hello", Subject="greeting")
    sns.publish(TopicArn=topic_arn, Message="poison")
    assert router.wait_idle(60)

    messages = Counter(entry["message"] for entry in journal(spec))
    assert messages == {"hello": 1, "poison": 3}  # one attempt + two retries
    assert {entry["source"] for entry in journal(spec)} == {"aws:sns"}
    dead = drain(client, dlq_url)
    assert len(dead) == 1 and json.loads(dead[0])["Records"][0]["Sns"]["Message"] == "poison"


def test_eventbridge_rule_targets_are_bridged_and_async_failures_are_retried_then_dead_lettered(
    make_function, make_queue, make_router, client
) -> None:
    """S3 -> EventBridge rule -> function: the function gets the event itself; a failure is retried
    and dead-lettered as any asynchronous invocation (issue 13)."""
    spec_ok = make_function(
        """
        import json, os
        def handler(event, context):
            entry = {"type": event["detail-type"], "key": event["detail"]["object"]["key"]}
            with open(os.environ["JOURNAL"], "a") as journal:
                journal.write(json.dumps(entry) + "\\n")
            if event["detail"]["object"]["key"].endswith("poison.sql"):
                raise ValueError("poison upload")
        """
    )
    dlq_url, dlq_arn, _ = make_queue()
    spec = FunctionSpec(**{**spec_ok.__dict__, "dead_letter_arn": dlq_arn, "async_max_retries": 1})
    s3, events = client("s3"), client("events")
    bucket = "rule-" + spec.name.replace("_", "-")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}})
    pattern = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"suffix": ".sql"}]}},
    }
    events.put_rule(Name=bucket, EventPattern=json.dumps(pattern))
    router = make_router(
        wiring_for(spec, rules=(RuleTarget(function=spec.name, rule_name=bucket),)), async_retry_delays=(0.2,)
    )

    for key in ("app/0001_ok.sql", "app/readme.txt", "app/0002_poison.sql"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"SELECT 1;")
    assert router.wait_idle(60)

    calls = Counter(entry["key"] for entry in journal(spec))
    assert calls == {"app/0001_ok.sql": 1, "app/0002_poison.sql": 2}  # one attempt + one retry
    assert {entry["type"] for entry in journal(spec)} == {"Object Created"}
    dead = drain(client, dlq_url)
    assert [json.loads(body)["detail"]["object"]["key"] for body in dead] == ["app/0002_poison.sql"]
    router.stop()
    assert [t["Id"] for t in events.list_targets_by_rule(Rule=bucket)["Targets"]] == []  # the bridge is removed


def test_dynamodb_stream_records_arrive_in_order_and_failures_retry_from_the_reported_record(
    make_function, make_router, client
) -> None:
    spec = make_function(
        """
        import json, os
        FAILED = set()
        def handler(event, context):
            keys = [r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]]
            with open(os.environ["JOURNAL"], "a") as journal:
                journal.write(json.dumps({"keys": keys, "names": [r["eventName"] for r in event["Records"]]}) + "\\n")
            for record in event["Records"]:
                key = record["dynamodb"]["Keys"]["pk"]["S"]
                if key == "k3" and key not in FAILED:
                    FAILED.add(key)
                    return {"batchItemFailures": [{"itemIdentifier": record["dynamodb"]["SequenceNumber"]}]}
            return {"batchItemFailures": []}
        """
    )
    dynamodb = client("dynamodb")
    table = "t-" + spec.name
    stream_arn = dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    mapping = StreamMapping(
        function=spec.name,
        stream_arn=stream_arn,
        batch_size=10,
        starting_position="TRIM_HORIZON",
        report_batch_item_failures=True,
    )
    for index in range(1, 6):
        dynamodb.put_item(TableName=table, Item={"pk": {"S": f"k{index}"}, "v": {"N": str(index)}})
    router = make_router(wiring_for(spec, streams=(mapping,)))

    assert router.wait_idle(60)

    entries = journal(spec)
    assert entries[0]["keys"] == ["k1", "k2", "k3", "k4", "k5"]
    assert entries[1]["keys"] == ["k3", "k4", "k5"]
    assert len(entries) == 2


def test_binary_attributes_reach_the_function_as_base64_like_lambda_sends_them(
    make_function, make_router, client
) -> None:
    """boto3 reads binary values as bytes; the event must be JSON, as Lambda's is (base64 text).
    (The key is a string: moto 5.2.5 base64-encodes binary key attributes in a record's Keys twice.)"""
    spec = make_function(
        """
        import json, os
        def handler(event, context):
            with open(os.environ["JOURNAL"], "a") as journal:
                journal.write(json.dumps([r["dynamodb"] for r in event["Records"]]) + "\\n")
            return {"batchItemFailures": []}
        """
    )
    dynamodb = client("dynamodb")
    table = "t-" + spec.name
    stream_arn = dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    key = {"pk": {"S": "k"}}
    dynamodb.put_item(
        TableName=table,
        Item={
            **key,
            "blob": {"B": b"\x00\xff"},
            "set": {"BS": [b"\x01"]},
            "nested": {"M": {"l": {"L": [{"B": b"\x02"}]}}},
        },
    )
    dynamodb.delete_item(TableName=table, Key=key)
    mapping = StreamMapping(function=spec.name, stream_arn=stream_arn, batch_size=10, starting_position="TRIM_HORIZON")
    router = make_router(wiring_for(spec, streams=(mapping,)))

    assert router.wait_idle(60)

    (records,) = journal(spec)
    assert [r["Keys"] for r in records] == [key, key]
    assert records[0]["NewImage"] == {
        "pk": {"S": "k"},
        "blob": {"B": "AP8="},
        "set": {"BS": ["AQ=="]},
        "nested": {"M": {"l": {"L": [{"B": "Ag=="}]}}},
    }
    assert records[1]["OldImage"] == records[0]["NewImage"]
    assert router.stats[spec.name].errors == 0


def test_fire_schedule_invokes_the_target_with_its_input(make_function, make_router) -> None:
    spec = make_function("def handler(event, context):\n    return {'got': event}\n")
    schedule = Schedule(name="hourly-sync", function=spec.name, expression="rate(1 hour)", input='{"tables": "all"}')
    router: Router = make_router(wiring_for(spec, schedules=(schedule,)))

    invocation = router.fire_schedule("hourly-sync")

    assert invocation.ok and invocation.result == {"got": {"tables": "all"}}
    with pytest.raises(ValueError, match="no schedule named 'nope'"):
        router.fire_schedule("nope")
