"""CDC lake fixtures: the staging bucket's real S3 -> SNS -> SQS wiring in moto, a lake bucket,
and the function's batch bound to the test's PostgreSQL database.

`lake.put(key, body)` writes a file as DMS would; `lake.receive()` takes the notifications S3 sent
into the queue, shaped as the Lambda SQS event (the s3:TestEvent included, as SQS delivers it);
`lake.run(event)` feeds them to the function's batch, as the event source mapping would.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
import psycopg2
import pytest

from cdc_lake.apply import applied_ledger
from cdc_lake.batch import Ledgers, process_batch
from cdc_lake.config import LakeConfig, parse_apply_tables
from cdc_lake.copier import Copier
from cdc_lake.merge import Tombstones
from cdc_lake.partitioner import copies_ledger
from pipeline_common.config import DatabaseSettings
from pipeline_common.db import ManagedConnection
from pipeline_common.deadline import Deadline
from pipeline_common.secrets import SecretCache

REGION = "us-east-1"
FOLDER = "dms"
PREFIX = "lake"
TS = "dms_commit_ts"


def dms_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    """A DMS CSV file: header row, then rows; None is an empty (NULL) field."""
    lines = [",".join(columns)]
    lines += [",".join("" if v is None else str(v) for v in row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Lake:
    s3: Any
    sqs: Any
    queue_url: str
    config: LakeConfig
    db: ManagedConnection
    dsn: str
    ledgers: Ledgers = field(
        default_factory=lambda: Ledgers(
            copies_ledger("pipeline_state"), applied_ledger("pipeline_state"), Tombstones("pipeline_state")
        )
    )

    @property
    def staging(self) -> str:
        return self.config.staging_bucket

    def put(self, key: str, body: bytes | str) -> dict[str, Any]:
        data = body.encode() if isinstance(body, str) else body
        return self.s3.put_object(Bucket=self.staging, Key=key, Body=data)

    def receive(self) -> dict[str, Any]:
        records = []
        while messages := self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                records.append(
                    {
                        "messageId": message["MessageId"],
                        "receiptHandle": message["ReceiptHandle"],
                        "body": message["Body"],
                        "eventSource": "aws:sqs",
                        "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:cdc-lake",
                    }
                )
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return {"Records": records}

    def run(self, event: dict[str, Any], **settings: Any) -> dict[str, Any]:
        config = dataclasses.replace(self.config, **settings) if settings else self.config
        copier = Copier(self.s3, config.multipart_threshold, config.multipart_chunk_size)
        return process_batch(
            event,
            config=config,
            s3=self.s3,
            copier=copier,
            db=self.db,
            ledgers=self.ledgers,
            deadline=Deadline.in_seconds(300),
        )

    def put_and_run(self, key: str, body: bytes | str, **settings: Any) -> dict[str, Any]:
        self.put(key, body)
        return self.run(self.receive(), **settings)

    def lake_keys(self) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.config.lake_bucket)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def lake_object(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.config.lake_bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]

    def query(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        conn = psycopg2.connect(self.dsn)
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
                rows = cur.fetchall() if cur.description else []
            conn.commit()
        finally:
            conn.close()
        return rows

    def copies(self) -> dict[str, dict[str, Any]]:
        """The copies ledger by staging key (last version recorded per key)."""
        rows = self.query("SELECT key, status, details, error FROM pipeline_state.cdc_lake_copies ORDER BY updated_at")
        return {key: {"status": status, "error": error, **(details or {})} for key, status, details, error in rows}


@pytest.fixture
def lake(aws: None, pg_server: Any, pg_database: str, make_secret: Any) -> Iterator[Lake]:
    s3 = boto3.client("s3", region_name=REGION)
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    suffix = uuid.uuid4().hex[:8]
    staging, lake_bucket = f"staging-{suffix}", f"lake-{suffix}"
    for bucket in (staging, lake_bucket):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    topic = sns.create_topic(Name="cdc-lake")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="cdc-lake")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    s3.put_bucket_notification_configuration(
        Bucket=staging,
        NotificationConfiguration={"TopicConfigurations": [{"TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]},
    )
    secret = make_secret({"username": pg_server.superuser, "password": pg_server.password})
    settings = DatabaseSettings(
        engine="postgresql", host=pg_server.host, port=pg_server.port, database=pg_database, secret_arn=secret
    )
    db = ManagedConnection(settings, SecretCache(lambda: boto3.client("secretsmanager", region_name=REGION)))
    config = LakeConfig(
        staging_bucket=staging,
        staging_folder=FOLDER,
        lake_bucket=lake_bucket,
        lake_prefix=PREFIX,
        change_sequence_column="dms_change_seq",
        apply_tables=parse_apply_tables(
            [
                {"source": "sales.orders", "target": "replica.orders"},
                {"source": "sales.order_lines", "target": "replica.order_lines", "key_columns": ["order_id", "line"]},
            ]
        ),
        database=settings,
    )
    with psycopg2.connect(pg_server.dsn(pg_database)) as conn, conn.cursor() as cur:
        cur.execute(
            """
            CREATE SCHEMA replica;
            CREATE TABLE replica.orders (
                order_id bigint PRIMARY KEY, customer text NOT NULL, amount numeric(12, 2),
                status text, dms_commit_ts timestamp, dms_change_seq numeric(38));
            CREATE TABLE replica.order_lines (
                order_id bigint, line integer, sku text, dms_commit_ts timestamptz,
                PRIMARY KEY (order_id, line));
            """
        )
    conn.close()
    lake = Lake(s3, sqs, queue_url, config, db, pg_server.dsn(pg_database))
    try:
        yield lake
    finally:
        db.close()
