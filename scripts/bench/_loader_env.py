"""The file loader's event path on this machine, for the benchmarks at scale.

A moto server in its own process (`scripts.demo.processes.moto_server`: its own interpreter lock,
so serving S3 does not slow the process being measured), a throwaway PostgreSQL, a bucket whose
ObjectCreated notifications go to an SQS queue, and the secret. Objects are put with real
`PutObject` calls; `put_and_receive` takes the notifications S3 sent off the queue in batches of
up to 10, as the Lambda event source mapping does, and turns each batch into the handler's event
(`scripts.localenv.router.sqs_record`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2

from scripts.bench.file_loader import BUCKET, COLUMNS, REGION, TABLE_DDL, csv_lines, handler_env
from scripts.demo.processes import aws_client, moto_server
from scripts.localdb import PostgresServer, postgres_server
from scripts.localenv.router import sqs_record

DATABASE = "bench"
HEADER = (",".join(COLUMNS) + "\n").encode()


@dataclass
class LoaderEnvironment:
    server: PostgresServer
    endpoint: str
    s3: Any
    sqs: Any
    queue_url: str
    queue_arn: str
    secret_arn: str
    moto_pid: int

    def moto_cpu_seconds(self) -> float:
        """CPU time the moto server process has used so far (user + system)."""
        fields = Path(f"/proc/{self.moto_pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    @property
    def dsn(self) -> str:
        return self.server.dsn(DATABASE)

    def handler_env(self, routes: list[dict[str, Any]]) -> dict[str, str]:
        return handler_env(self.server, DATABASE, self.endpoint, self.secret_arn, routes)

    def sql(self, statement: str) -> Any:
        with contextlib.closing(psycopg2.connect(self.dsn)) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement)
                return cur.fetchall() if cur.description else None

    def create_tables(self, *names: str, primary_key: bool = False) -> None:
        for name in names:
            self.sql(TABLE_DDL.format(name=name, pk="PRIMARY KEY" if primary_key else ""))

    def put_and_receive(
        self, count: int, put: Callable[[int], int], batch_size: int = 10, threads: int = 8
    ) -> tuple[int, list[dict[str, Any]]]:
        """Call `put(i)` (which puts or copies object i and returns its bytes) for every object,
        `batch_size` at a time, taking each group's notifications off the queue as one event
        before the next group. Returns the bytes and the events.

        Each group's messages are deleted as soon as they are received, not after the handler
        has run as the event source mapping does: moto keeps in-flight messages in the list it
        scans on every SendMessage and ReceiveMessage, so 10,000 of them held in flight slowed
        each call to seconds (and every S3 PutObject with it, since moto sends the notification
        inline); AWS's queues do not. The handler never touches the queue, and the deletes were
        outside the clock either way."""
        size, events = 0, []
        with ThreadPoolExecutor(threads) as pool:
            for start in range(0, count, batch_size):
                group = range(start, min(start + batch_size, count))
                size += sum(pool.map(put, group))
                messages = self._receive(len(group))
                self._delete(messages)
                events.append({"Records": [sqs_record(m, self.queue_arn, REGION) for m in messages]})
        return size, events

    def _receive(self, objects: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        seen = empty_polls = 0
        while seen < objects:
            answer = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=min(10, objects - seen), WaitTimeSeconds=1
            ).get("Messages", [])
            empty_polls = 0 if answer else empty_polls + 1
            if empty_polls > 20:
                raise RuntimeError(f"only {seen} of {objects} notifications arrived")
            for message in answer:
                body = json.loads(message["Body"])
                if body.get("Event") == "s3:TestEvent":
                    self._delete([message])
                    continue
                seen += len(body.get("Records", []))
                messages.append(message)
        return messages

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        self.sqs.delete_message_batch(
            QueueUrl=self.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )


def csv_object(rows: int, start: int) -> bytes:
    return HEADER + b"".join(csv_lines(rows, start))


@contextlib.contextmanager
def loader_environment(pg_settings: dict[str, str] | None = None) -> Iterator[LoaderEnvironment]:
    with contextlib.ExitStack() as stack:
        run_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-loader-")))
        endpoint = stack.enter_context(moto_server(run_dir))
        server = stack.enter_context(postgres_server(settings=pg_settings))
        server.psql("postgres", "-c", f"CREATE DATABASE {DATABASE}")
        s3, sqs = aws_client("s3", endpoint), aws_client("sqs", endpoint)
        s3.create_bucket(Bucket=BUCKET)
        # Versioned, as the module's buckets always are: notifications carry the version id, and
        # the handler reads that version.
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        # Messages stay invisible while they wait for their turn: no redelivery mid-benchmark.
        queue_url = sqs.create_queue(QueueName="bench-landing", Attributes={"VisibilityTimeout": "43200"})["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        s3.put_bucket_notification_configuration(
            Bucket=BUCKET,
            NotificationConfiguration={
                "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]
            },
        )
        secret_arn = aws_client("secretsmanager", endpoint).create_secret(
            Name="bench/db", SecretString=json.dumps({"username": server.superuser, "password": server.password})
        )["ARN"]
        moto_pid = json.loads((run_dir / "pids.json").read_text())["moto"]
        yield LoaderEnvironment(server, endpoint, s3, sqs, queue_url, queue_arn, secret_arn, moto_pid)
