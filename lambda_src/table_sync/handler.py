"""Lambda entry point of the table sync (EventBridge Scheduler, hourly by default).

Thin: settings and connections are built once per sandbox, `run_sync` does the work. The result
is logged as one JSON line and returned; when a table failed the invocation fails too (after the
other tables ran), so Lambda's error metrics and alarms see it. The schedule does not retry: the
next run continues from the committed watermarks, and the error says whether it may succeed
without a change (`retryable`).
"""

from __future__ import annotations

import json
from typing import Any

from pipeline_common.deadline import Deadline
from pipeline_common.errors import PipelineError
from pipeline_common.log import get_logger
from pipeline_common.sandbox import Sandbox
from table_sync.config import Settings
from table_sync.sync import run_sync

logger = get_logger()

# Time kept back from the Lambda timeout to commit the chunk in flight and release locks.
DEADLINE_RESERVE_MS = 15_000

sandbox = Sandbox(Settings.from_env, secret_ttl=lambda settings: settings.secret_ttl_seconds)


class TableSyncFailed(PipelineError):
    """At least one table failed; the others were synced and the result was logged. Retryable
    when every failed table's error is."""


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = sandbox.settings
    report = run_sync(
        settings.tables,
        sandbox.connection("source", settings.source),
        sandbox.connection("target", settings.target),
        engine=settings.source.engine,
        state_schema=settings.state_schema,
        deadline=Deadline.from_context(context, DEADLINE_RESERVE_MS),
    )
    document = report.to_json()
    logger.info("table sync result", extra={"result": document})
    if report.failed:
        names = ", ".join(f"{t.table} ({t.error})" for t in report.failed)
        raise TableSyncFailed(
            f"table sync failed for {names}; result: {json.dumps(document, default=str)}",
            retryable=all(t.retryable for t in report.failed),
        )
    return document
