"""Lambda entry point: S3 upload (via SNS) or operator invoke -> yoyo migrations -> results topic."""

from __future__ import annotations

from typing import Any

import boto3

from pipeline_common.config import env_int
from pipeline_common.deadline import Deadline
from pipeline_common.log import get_logger
from pipeline_common.secrets import default_cache
from schema_migrations.config import Settings
from schema_migrations.service import process_event

logger = get_logger()

_settings: Settings | None = None
_clients: dict[str, Any] = {}

# Kept back from the Lambda timeout: enough to finish a statement's rollback and publish results.
RESERVE_MS = 5_000


def _get_settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def _client(service: str) -> Any:
    if service not in _clients:
        _clients[service] = boto3.client(service)
    return _clients[service]


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_event(
        event,
        settings=_get_settings(),
        s3=_client("s3"),
        sns=_client("sns"),
        secrets=default_cache(env_int("SECRET_TTL_SECONDS", 300, minimum=0)),
        deadline=Deadline.from_context(context, reserve_ms=RESERVE_MS),
        logger=logger,
    )
