"""Lambda entry point: S3 upload (via SNS) or operator invoke -> yoyo migrations -> results topic.

The settings, the S3 and SNS clients and the secret cache live as long as the sandbox; each run
opens its own connections (one per database, see `connections`).
"""

from __future__ import annotations

from typing import Any

from pipeline_common.deadline import Deadline
from pipeline_common.log import get_logger
from pipeline_common.sandbox import Sandbox
from schema_migrations.config import Settings
from schema_migrations.service import process_event

logger = get_logger()

# Kept back from the Lambda timeout: enough to finish a statement's rollback and publish results.
RESERVE_MS = 5_000

sandbox = Sandbox(Settings.from_env, secret_ttl=lambda settings: settings.secret_ttl_seconds)


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_event(
        event,
        settings=sandbox.settings,
        s3=sandbox.client("s3"),
        sns=sandbox.client("sns"),
        secrets=sandbox.secrets(),
        deadline=Deadline.from_context(context, reserve_ms=RESERVE_MS),
        logger=logger,
    )
