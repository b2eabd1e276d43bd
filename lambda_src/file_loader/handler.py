"""Lambda entry point: SQS batch of S3 notifications (S3 -> SNS -> SQS) -> PostgreSQL.

The sandbox keeps its configuration, database connection, S3 client and measured throughput
between invocations; all are created on first use, not at import.
"""

from __future__ import annotations

from typing import Any

from file_loader.batch import process_batch
from file_loader.config import LoaderConfig
from file_loader.ledger import Ledger
from file_loader.loader import Throughput
from pipeline_common.db import ManagedConnection
from pipeline_common.deadline import Deadline
from pipeline_common.log import get_logger
from pipeline_common.secrets import default_cache

logger = get_logger()

# Time kept back when the deadline stops a load: enough to roll back and record the attempt.
RESERVE_MS = 5_000


class _Sandbox:
    def __init__(self) -> None:
        self.config = LoaderConfig.from_env()
        self.db = ManagedConnection(self.config.database, default_cache(self.config.secret_ttl_seconds))
        self.ledger = Ledger(self.config.state_schema)
        self.throughput = Throughput()
        self._s3: Any = None
        self._sqs: Any = None

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3")
        return self._s3

    @property
    def sqs(self) -> Any:
        if self._sqs is None:
            import boto3
            from botocore.config import Config

            # Only shortens a retry: it must not eat the time kept back at the deadline.
            config = Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 2})
            self._sqs = boto3.client("sqs", config=config)
        return self._sqs


_sandbox: _Sandbox | None = None


def sandbox() -> _Sandbox:
    global _sandbox
    if _sandbox is None:
        _sandbox = _Sandbox()
    return _sandbox


def reset_sandbox() -> None:
    """Forget the sandbox state (tests, or a configuration change in a long-lived process)."""
    global _sandbox
    if _sandbox is not None:
        _sandbox.db.close()
    _sandbox = None


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    box = sandbox()
    return process_batch(
        event,
        routes=box.config.routes,
        source_bucket=box.config.source_bucket,
        db=box.db,
        s3=box.s3,
        ledger=box.ledger,
        deadline=Deadline.from_context(context, reserve_ms=RESERVE_MS),
        throughput=box.throughput,
        sqs=box.sqs,
    )
