"""Lambda entry point: SQS batch of S3 notifications (S3 -> SNS -> SQS) -> PostgreSQL.

The sandbox keeps the configuration, the database connection, the S3 and SQS clients, the ledger
and the measured throughput between invocations; all are created on first use, not at import.
"""

from __future__ import annotations

from typing import Any

from file_loader.batch import process_batch
from file_loader.config import LoaderConfig
from file_loader.ledger import file_ledger
from file_loader.throughput import Throughput
from pipeline_common.deadline import Deadline
from pipeline_common.log import get_logger
from pipeline_common.sandbox import Sandbox

logger = get_logger()

# Time kept back when the deadline stops a load: enough to roll back and record the attempt.
RESERVE_MS = 5_000

sandbox = Sandbox(LoaderConfig.from_env, secret_ttl=lambda config: config.secret_ttl_seconds)


def _sqs_config() -> Any:
    from botocore.config import Config

    # Only shortens a retry: it must not eat the time kept back at the deadline.
    return Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 2})


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    config = sandbox.settings
    return process_batch(
        event,
        routes=config.routes,
        source_bucket=config.source_bucket,
        db=sandbox.connection("db", config.database),
        s3=sandbox.client("s3"),
        ledger=sandbox.keep("ledger", lambda: file_ledger(config.state_schema)),
        deadline=Deadline.from_context(context, reserve_ms=RESERVE_MS),
        throughput=sandbox.keep("throughput", Throughput),
        sqs=sandbox.client("sqs", _sqs_config()),
    )
