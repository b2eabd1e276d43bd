"""Lambda entry point of the backfill (EventBridge Scheduler every N minutes, or a manual invoke).

Thin: settings, the connection and clients live in the sandbox; `backfill.service.handle` does the
work. The result is logged as one JSON line and returned. A run in which a job failed fails the
invocation after every job had its turn, so Lambda's error metric and the errors alarm see it; the
schedule does not retry, the next run continues from the committed checkpoints.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Metrics

from backfill.config import Settings
from backfill.service import handle
from pipeline_common.config import DatabaseSettings
from pipeline_common.deadline import Deadline
from pipeline_common.errors import PipelineError
from pipeline_common.log import get_logger
from pipeline_common.sandbox import Sandbox

logger = get_logger()

# Time kept back from the Lambda timeout to roll back the chunk in flight, estimate and report.
DEADLINE_RESERVE_MS = 15_000

sandbox = Sandbox(Settings.from_env, secret_ttl=lambda settings: settings.secret_ttl_seconds)


def _scheduler() -> Any:
    """Short timeouts: without a route to the Scheduler API (private subnets, no endpoint) the
    call fails within the deadline's reserve instead of outliving the function."""
    from botocore.config import Config

    config = Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"})
    return sandbox.client("scheduler", config=config)


class BackfillFailed(PipelineError):
    """At least one job failed this run (the others ran); retryable when every failure is."""


def _replica(index: int, settings: DatabaseSettings) -> Any:
    return lambda: sandbox.connection(f"replica-{index}", settings).get()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = sandbox.settings
    metrics = sandbox.keep("metrics", lambda: Metrics(namespace=settings.metrics_namespace))
    result = handle(
        event or {},
        settings,
        sandbox.connection("db", settings.database),
        Deadline.from_context(context, DEADLINE_RESERVE_MS),
        replicas=tuple(_replica(i, replica) for i, replica in enumerate(settings.replicas)),
        scheduler=_scheduler,
        metrics=metrics,
    )
    logger.info("backfill result", extra={"result": result})
    failed = [job for job in result["jobs"] if job.get("status") == "failed"]  # a run's jobs
    if failed:
        names = ", ".join(job["name"] for job in failed)
        raise BackfillFailed(
            f"backfill failed for {names}; result: {json.dumps(result, default=str)}",
            retryable=all(job.get("retryable") for job in failed),
        )
    return result
