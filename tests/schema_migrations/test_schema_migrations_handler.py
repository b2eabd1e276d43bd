"""The Lambda entry point, fed the notifications moto's S3 really sends through SNS and EventBridge."""

from __future__ import annotations

import json

import boto3
import pytest

from schema_migrations import handler as handler_module


@pytest.fixture
def lambda_env(migration_env, monkeypatch):
    env = migration_env
    settings = env.settings
    values = {
        "MIGRATIONS_BUCKET": settings.bucket,
        "RESULTS_TOPIC_ARN": settings.results_topic_arn,
        "DB_HOST": settings.database.host,
        "DB_PORT": str(settings.database.port),
        "DB_SECRET_ARN": settings.database.secret_arn,
        "DB_SSLMODE": "require",
        "LOCK_STALE_SECONDS": "900",
        "ALLOWED_DATABASES": "",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    # yoyo records the user; the function must work even where Lambda sets neither variable.
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("getpass.getuser", _no_user)
    handler_module.sandbox.reset()
    yield env
    handler_module.sandbox.reset()


def _no_user() -> str:
    raise OSError("No username set in the environment")


def _notifications_via_sns(env) -> str:
    """Wire bucket -> SNS topic -> capture queue and return the SNS envelopes S3 produced."""
    topic = env.sns.create_topic(Name="migration-uploads")["TopicArn"]
    queue_url = env.sqs.create_queue(QueueName="upload-capture")["QueueUrl"]
    arn = env.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    env.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    env.s3.put_bucket_notification_configuration(
        Bucket=env.bucket,
        NotificationConfiguration={"TopicConfigurations": [{"TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]},
    )
    return queue_url


def _drain(env, queue_url: str) -> list[dict]:
    envelopes = []
    while batch := env.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            envelopes.append(json.loads(message["Body"]))
            env.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return envelopes


def test_handler_applies_uploads_delivered_by_s3_through_sns(lambda_env, lambda_context, create_db_sql):
    env = lambda_env
    queue_url = _notifications_via_sns(env)
    app = env.db_name("app")
    env.put("postgres/0001_create.sql", create_db_sql(app))
    env.put(f"{app}/0001_users.sql", "CREATE TABLE users (id int PRIMARY KEY);")
    envelopes = _drain(env, queue_url)
    assert len(envelopes) == 3  # the s3:TestEvent sent when the configuration was saved, then two uploads

    outcomes = []
    for envelope in envelopes:
        event = {"Records": [{"EventSource": "aws:sns", "EventSubscriptionArn": "arn", "Sns": envelope}]}
        outcomes.append(handler_module.handler(event, lambda_context(timeout_seconds=60)))

    assert outcomes[0] == {"status": "succeeded", "results": []}  # the test event
    assert all(o["status"] == "succeeded" for o in outcomes), json.dumps(outcomes, default=str)[:3000]
    applied = [(r["database"], m) for o in outcomes for r in o["results"] for m in r["applied"]]
    assert applied == [("postgres", "0001_create"), (app, "0001_users")]
    assert {row[0] for row in env.query(app, "SELECT username FROM _yoyo_log")} == {"lambda"}
    # postgres for its own upload; postgres (nothing to do) and the app for the second upload.
    assert [p["result"]["database"] for p in env.published()] == ["postgres", "postgres", app]


def test_handler_applies_uploads_delivered_by_s3_through_eventbridge(lambda_env, lambda_context, create_db_sql):
    """S3 -> EventBridge rule -> the function: the rule's target gets the event itself. moto
    cannot run the function, so the rule delivers to a capture queue and each event is handed to
    the handler as the Lambda target would (issue 13: these events were refused)."""
    env = lambda_env
    events = boto3.client("events", region_name="us-east-1")
    queue_url = env.sqs.create_queue(QueueName="eventbridge-capture")["QueueUrl"]
    arn = env.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [env.bucket]}, "object": {"key": [{"suffix": ".sql"}]}},
    }
    events.put_rule(Name="migrations", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="migrations", Targets=[{"Id": "capture", "Arn": arn}])
    env.s3.put_bucket_notification_configuration(
        Bucket=env.bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    app = env.db_name("app")
    env.put("postgres/0001_create.sql", create_db_sql(app))
    env.put(f"{app}/0001_users.sql", "CREATE TABLE users (id int PRIMARY KEY);")
    env.put("README.txt", "not a migration: the rule delivers .sql keys only")
    delivered = _drain(env, queue_url)
    assert [e["detail-type"] for e in delivered] == ["Object Created", "Object Created"]

    outcomes = [handler_module.handler(event, lambda_context(timeout_seconds=60)) for event in delivered]
    assert all(o["status"] == "succeeded" for o in outcomes), json.dumps(outcomes, default=str)[:3000]
    applied = [(r["database"], m) for o in outcomes for r in o["results"] for m in r["applied"]]
    assert applied == [("postgres", "0001_create"), (app, "0001_users")]
    assert [p["result"]["database"] for p in env.published()] == ["postgres", "postgres", app]


def test_handler_operator_invoke_returns_status(lambda_env, lambda_context, create_db_sql):
    env = lambda_env
    app = env.db_name("app")
    env.put("postgres/0001_create.sql", create_db_sql(app))
    result = handler_module.handler({"action": "status", "database": "postgres"}, lambda_context())
    assert result["results"][0]["pending"] == ["0001_create"]
