"""File loader fixtures: the real S3 -> SNS -> SQS wiring in moto, and a loader bound to the
test's PostgreSQL database.

`pipeline.put(key, body)` uploads an object; `pipeline.receive()` takes the notifications S3
sent through SNS into the queue and shapes them as the Lambda SQS event; `pipeline.run(event)`
feeds them to the loader's batch function, as the event source mapping would.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import psycopg2
import pytest

from file_loader.batch import process_batch
from file_loader.ledger import file_ledger
from file_loader.routes import Route, parse_routes
from file_loader.throughput import Throughput
from pipeline_common.config import DatabaseSettings
from pipeline_common.db import ManagedConnection
from pipeline_common.deadline import Deadline
from pipeline_common.ledger import Ledger
from pipeline_common.secrets import SecretCache

REGION = "us-east-1"


@dataclass
class Pipeline:
    bucket: str
    queue_url: str
    s3: Any
    sqs: Any
    db: ManagedConnection
    dsn: str
    routes: list[Route]
    ledger: Ledger = field(default_factory=lambda: file_ledger("pipeline_state"))
    throughput: Throughput = field(default_factory=Throughput)

    def put(self, key: str, body: bytes | str, **kwargs: Any) -> dict[str, Any]:
        data = body.encode() if isinstance(body, str) else body
        return self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, **kwargs)

    def put_gzip(self, key: str, body: str, **kwargs: Any) -> dict[str, Any]:
        return self.put(key, gzip.compress(body.encode()), **kwargs)

    def receive(self, expect: int | None = None) -> dict[str, Any]:
        """The queue's pending messages as an SQS Lambda event (S3 test events filtered out only
        by the loader itself)."""
        records = []
        while True:
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, AttributeNames=["All"]
            )
            messages = response.get("Messages", [])
            if not messages:
                break
            for message in messages:
                records.append(
                    {
                        "messageId": message["MessageId"],
                        "receiptHandle": message["ReceiptHandle"],
                        "body": message["Body"],
                        "attributes": message.get("Attributes", {}),
                        "messageAttributes": {},
                        "md5OfBody": message["MD5OfBody"],
                        "eventSource": "aws:sqs",
                        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:loader",
                        "awsRegion": REGION,
                    }
                )
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        event = {"Records": [r for r in records if "s3:TestEvent" not in r["body"]]}
        if expect is not None:
            assert len(event["Records"]) == expect, event
        return event

    def run(self, event: dict[str, Any], deadline: Deadline | None = None, sqs: Any = None) -> dict[str, Any]:
        """The batch as the handler runs it; with `sqs`, failed messages are made visible again soon."""
        return process_batch(
            event,
            routes=self.routes,
            source_bucket=self.bucket,
            db=self.db,
            s3=self.s3,
            ledger=self.ledger,
            deadline=deadline or Deadline.in_seconds(300),
            throughput=self.throughput,
            sqs=sqs,
        )

    def put_and_load(self, key: str, body: bytes | str, **kwargs: Any) -> dict[str, Any]:
        self.put(key, body, **kwargs)
        return self.run(self.receive(expect=1))

    def query(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg2.connect(self.dsn) as conn, conn.cursor() as cur:
            cur.execute(statement, params)
            rows = cur.fetchall() if cur.description else []
        conn.close()
        return rows

    def execute(self, statement: str) -> None:
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
        conn.close()

    def ledger_row(self, key: str) -> dict[str, Any]:
        conn = psycopg2.connect(self.dsn)
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM pipeline_state.file_loads WHERE key = %s", (key,))
            rows = cur.fetchall()
            assert len(rows) == 1, rows
            names = [d.name for d in cur.description]
        conn.close()
        return dict(zip(names, rows[0], strict=True))

    def rejects(self, key: str) -> list[tuple[Any, ...]]:
        return self.query(
            "SELECT line, raw, reason FROM pipeline_state.file_rejects WHERE key = %s ORDER BY id", (key,)
        )


ROUTES = [
    {"prefix": "orders/", "table": "public.orders"},
    {"prefix": "upsert/", "table": "public.orders", "mode": "upsert"},
    {"prefix": "quarantine/", "table": "public.orders", "on_error": "quarantine"},
    {"prefix": "events/", "table": "public.events", "format": "jsonl"},
    {"prefix": "events-upsert/", "table": "public.events", "format": "jsonl", "mode": "upsert"},
    {"prefix": "events-q/", "table": "public.events", "format": "jsonl", "on_error": "quarantine"},
    {"prefix": "semi/", "table": "public.orders", "delimiter": ";", "quote": "'", "null": "NULL"},
    {"prefix": "latin/", "table": "public.orders", "encoding": "LATIN1"},
    {"prefix": "raw/", "table": "public.{name}", "on_error": "quarantine"},
    {"prefix": "strict/", "table": "public.{name}"},
    {"prefix": "jraw/", "table": "public.{name}", "format": "jsonl", "on_error": "quarantine"},
    {"prefix": "jstrict/", "table": "public.{name}", "format": "jsonl"},
    {"prefix": "people-upsert/", "table": "public.people", "mode": "upsert", "key_columns": ["order id"]},
    {
        "prefix": "jpeople-upsert/",
        "table": "public.people",
        "format": "jsonl",
        "mode": "upsert",
        "key_columns": ["order id"],
        "on_error": "quarantine",
    },
    {"prefix": "missing/", "table": "public.no_such_table"},
]

SCHEMA = """
CREATE TABLE orders (
    id integer PRIMARY KEY,
    customer text NOT NULL,
    amount numeric(12, 2),
    note text,
    loaded_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE events (
    id bigint PRIMARY KEY,
    kind text NOT NULL,
    payload jsonb,
    happened timestamptz,
    flag boolean
);
"""


@pytest.fixture
def pipeline(aws: None, pg_server: Any, pg_database: str, make_secret: Any) -> Iterator[Pipeline]:
    s3 = boto3.client("s3", region_name=REGION)
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    bucket = "landing-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    topic = sns.create_topic(Name="landing-events")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="loader")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={"TopicConfigurations": [{"TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]},
    )
    secret = make_secret({"username": pg_server.superuser, "password": pg_server.password})
    settings = DatabaseSettings(
        engine="postgresql", host=pg_server.host, port=pg_server.port, database=pg_database, secret_arn=secret
    )
    db = ManagedConnection(settings, SecretCache(lambda: boto3.client("secretsmanager", region_name=REGION)))
    dsn = pg_server.dsn(pg_database)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(SCHEMA)
    conn.close()
    pipeline = Pipeline(bucket, queue_url, s3, sqs, db, dsn, parse_routes(json.loads(json.dumps(ROUTES))))
    pipeline.receive()  # drop the s3:TestEvent S3 sends when the notification is configured
    try:
        yield pipeline
    finally:
        db.close()
