"""One invocation: requests from the event, runs in order, results published and logged."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg2
from botocore.exceptions import BotoCoreError, ClientError

from pipeline_common.config import ConfigError
from pipeline_common.deadline import Deadline
from pipeline_common.errors import RetryableError, error_message, is_retryable
from pipeline_common.secrets import SecretCache
from schema_migrations import report
from schema_migrations.config import Settings
from schema_migrations.connections import Connector
from schema_migrations.keys import ROOT_DATABASE
from schema_migrations.requests import from_event
from schema_migrations.results import DatabaseResult, RunRequest
from schema_migrations.runner import RunContext, run_database


class RetryableFailure(RetryableError):
    """Raised after reporting, so Lambda's asynchronous retry runs an S3-triggered invocation again."""


def process_event(
    event: Mapping[str, Any],
    *,
    settings: Settings,
    s3: Any,
    sns: Any,
    secrets: SecretCache,
    deadline: Deadline,
    logger: Any,
) -> dict[str, Any]:
    requests = from_event(event, settings, s3)
    results = list(requests.refused)
    results += run_requests(requests.runs, settings=settings, s3=s3, secrets=secrets, deadline=deadline)
    for result in results:
        report.log(logger, result)
        report.publish(sns, settings.results_topic_arn, result)
    statuses = {r.status for r in results}
    summary = {
        "status": "succeeded" if statuses <= {"succeeded"} else "failed",
        "results": [r.to_dict() for r in results],
    }
    if requests.from_s3 and any(r.retryable for r in results):
        # Lock waits, deadlines and lost connections may pass; SQL errors and bad keys will not.
        raise RetryableFailure("; ".join(str(r.error and r.error.get("message")) for r in results if r.retryable))
    return summary


def run_requests(
    runs: list[RunRequest], *, settings: Settings, s3: Any, secrets: SecretCache, deadline: Deadline
) -> list[DatabaseResult]:
    if not runs:
        return []
    connector = Connector(settings.database, secrets)
    results: list[DatabaseResult] = []
    root = None
    try:
        root = connector.root()
        with tempfile.TemporaryDirectory(prefix="migrations-") as workdir:
            ctx = RunContext(
                s3=s3,
                bucket=settings.bucket,
                allowed=settings.allowed_databases,
                connector=connector,
                root=root.get(),
                stale_seconds=settings.lock_stale_seconds,
                deadline=deadline,
                workdir=Path(workdir),
            )
            for run in runs:
                if _root_failed(results) and run.action == "migrate" and not run.dry_run:
                    results.append(_skipped(run, "postgres/ migrations failed; not migrating dependent databases"))
                    continue
                results.append(run_database(run, ctx))
    except (psycopg2.OperationalError, psycopg2.InterfaceError, ConfigError, BotoCoreError, ClientError) as exc:
        # The server or the secret could not be reached (or read). Requests are handled in order,
        # one result each: the ones without a result never ran, and each is reported as such.
        for run in runs[len(results) :]:
            result = DatabaseResult.for_request(run)
            # Retryable when the server or Secrets Manager may answer later; not for a malformed or
            # denied secret, which Lambda's retries would meet again.
            error = {"type": type(exc).__name__, "message": error_message(exc)}
            result.fail("failed", error, retryable=is_retryable(exc))
            results.append(result)
    finally:
        if root is not None:
            with contextlib.suppress(psycopg2.Error):
                root.close()
    return results


def _root_failed(results: list[DatabaseResult]) -> bool:
    return any(r.database == ROOT_DATABASE and r.status != "succeeded" for r in results)


def _skipped(run: RunRequest, reason: str) -> DatabaseResult:
    result = DatabaseResult.for_request(run)
    result.status = "skipped"
    result.error = {"type": "Skipped", "message": reason}
    return result
