"""Lambda entry point of the table sync (EventBridge Scheduler, hourly by default).

Thin: settings and connections are built once per sandbox, `run_sync` does the work. The result
is logged as one JSON line and returned; when a table failed the invocation fails too (after the
other tables ran), so Lambda's error metrics and alarms see it.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline_common.db import ManagedConnection
from pipeline_common.deadline import Deadline
from pipeline_common.log import get_logger
from pipeline_common.secrets import default_cache
from table_sync.config import Settings
from table_sync.sync import run_sync

logger = get_logger()

# Time kept back from the Lambda timeout to commit the chunk in flight and release locks.
DEADLINE_RESERVE_MS = 15_000

_settings: Settings | None = None
_source: ManagedConnection | None = None
_target: ManagedConnection | None = None


class TableSyncFailed(RuntimeError):
    """At least one table failed; the others were synced and the result was logged."""


def _sandbox() -> tuple[Settings, ManagedConnection, ManagedConnection]:
    global _settings, _source, _target
    if _settings is None or _source is None or _target is None:
        _settings = Settings.from_env()
        # Without an explicit cache the TTL would stay at the default whatever SECRET_TTL_SECONDS says.
        secrets = default_cache(_settings.secret_ttl_seconds)
        _source = ManagedConnection(_settings.source, secrets)
        _target = ManagedConnection(_settings.target, secrets)
    return _settings, _source, _target


def reset_sandbox() -> None:
    """Forget the sandbox state (tests, or a configuration change in a long-lived process)."""
    global _settings, _source, _target
    for connection in (_source, _target):
        if connection is not None:
            connection.close()
    _settings = _source = _target = None


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings, source, target = _sandbox()
    report = run_sync(
        settings.tables,
        source,
        target,
        engine=settings.source.engine,
        state_schema=settings.state_schema,
        deadline=Deadline.from_context(context, DEADLINE_RESERVE_MS),
    )
    document = report.to_json()
    logger.info("table sync result", extra={"result": document})
    if report.failed:
        names = ", ".join(f"{t.table} ({t.error})" for t in report.failed)
        raise TableSyncFailed(f"table sync failed for {names}; result: {json.dumps(document, default=str)}")
    return document
