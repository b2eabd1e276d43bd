"""Fixtures for the schema migrations tests: a versioned bucket, a results topic captured by an
SQS queue, the master secret of the session's PostgreSQL server, and a way to invoke the function.

The session server's `postgres` database is shared by every test here, so each test starts and
ends with yoyo's and this function's tables dropped from it and the databases it created dropped.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

import boto3
import psycopg2
import pytest

from pipeline_common.config import DatabaseSettings
from pipeline_common.deadline import Deadline
from pipeline_common.log import get_logger
from pipeline_common.secrets import SecretCache
from schema_migrations.config import Settings
from schema_migrations.service import process_event
from scripts.localdb import PostgresServer

REGION = "us-east-1"
TEST_DB_PREFIX = "smt_"
_TABLES = (
    "_yoyo_migration",
    "_yoyo_log",
    "_yoyo_version",
    "yoyo_lock",
    "_yoyo_migration_checksum",
    "_yoyo_migration_step",
)


def reset_server(server: PostgresServer) -> None:
    admin = psycopg2.connect(server.dsn())
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (TEST_DB_PREFIX + "%",))
            for (name,) in cur.fetchall():
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            for table in _TABLES:
                cur.execute(f"DROP TABLE IF EXISTS {table}")
    finally:
        admin.close()


def sns_s3_event(bucket: str, *keys: str) -> dict[str, Any]:
    """S3 -> SNS -> Lambda: one SNS record whose message carries one S3 record per key."""
    message = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key)}},
            }
            for key in keys
        ]
    }
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Type": "Notification", "Message": json.dumps(message)}}]}


@dataclass
class MigrationEnv:
    server: PostgresServer
    settings: Settings
    s3: Any
    sns: Any
    sqs: Any
    queue_url: str
    secrets: SecretCache
    received: list[dict[str, Any]] = field(default_factory=list)

    @property
    def bucket(self) -> str:
        return self.settings.bucket

    def db_name(self, label: str) -> str:
        return f"{TEST_DB_PREFIX}{label}_{uuid.uuid4().hex[:6]}"

    def event(self, *keys: str) -> dict[str, Any]:
        return sns_s3_event(self.bucket, *keys)

    def put(self, key: str, body: str) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body.encode("utf-8"))

    def invoke(self, event: dict[str, Any], *, timeout: float = 60.0, settings: Settings | None = None) -> dict:
        return process_event(
            event,
            settings=settings or self.settings,
            s3=self.s3,
            sns=self.sns,
            secrets=self.secrets,
            deadline=Deadline.in_seconds(timeout),
            logger=get_logger("schema-migrations-tests"),
        )

    def upload(self, key: str, body: str, **kwargs: Any) -> dict:
        """Put an object and deliver its notification, as S3 -> SNS -> Lambda would."""
        self.put(key, body)
        return self.invoke(self.event(key), **kwargs)

    def published(self) -> list[dict[str, Any]]:
        """Results that reached the topic since the last call (through the SQS subscription)."""
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                break
            for message in batch:
                envelope = json.loads(message["Body"])
                self.received.append(
                    {
                        "subject": envelope.get("Subject"),
                        "attributes": envelope.get("MessageAttributes", {}),
                        "result": json.loads(envelope["Message"]),
                    }
                )
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        found, self.received = self.received, []
        return found

    def query(self, database: str, sql: str, params: tuple = ()) -> list[tuple]:
        conn = psycopg2.connect(self.server.dsn(database))
        conn.autocommit = True  # each statement commits (CREATE DATABASE needs it)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                rows = cur.fetchall() if cur.description else []
            return rows
        finally:
            conn.close()

    def tables(self, database: str) -> set[str]:
        rows = self.query(
            database,
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
        )
        return {r[0] for r in rows}

    def databases(self) -> set[str]:
        return {r[0] for r in self.query("postgres", "SELECT datname FROM pg_database")}


@pytest.fixture
def migration_env(pg_server: PostgresServer, aws: None) -> Iterator[MigrationEnv]:
    reset_server(pg_server)
    s3 = boto3.client("s3", region_name=REGION)
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    secrets_client = boto3.client("secretsmanager", region_name=REGION)
    bucket = "migrations-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    topic_arn = sns.create_topic(Name="migration-results")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="migration-results-capture")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    # What RDS writes for a managed master password: only the user name and password.
    secret_arn = secrets_client.create_secret(
        Name="rds!db-" + uuid.uuid4().hex[:8],
        SecretString=json.dumps({"username": pg_server.superuser, "password": pg_server.password}),
    )["ARN"]
    settings = Settings(
        bucket=bucket,
        results_topic_arn=topic_arn,
        allowed_databases=frozenset(),
        lock_stale_seconds=900,
        database=DatabaseSettings(
            engine="postgresql", host=pg_server.host, port=pg_server.port, database=None, secret_arn=secret_arn
        ),
    )
    env = MigrationEnv(
        server=pg_server,
        settings=settings,
        s3=s3,
        sns=sns,
        sqs=sqs,
        queue_url=queue_url,
        secrets=SecretCache(lambda: boto3.client("secretsmanager", region_name=REGION)),
    )
    yield env
    reset_server(pg_server)


@pytest.fixture
def create_db_sql() -> Callable[..., str]:
    def make(*names: str) -> str:
        return "-- transactional: false\n" + "\n".join(f"CREATE DATABASE {n};" for n in names) + "\n"

    return make
