"""Turn an invocation event into per-database run requests.

Two shapes arrive: S3 notifications (through SNS, or EventBridge events; one SNS message may carry
several records, several uploads give several invocations) and operator payloads
`{"action": "migrate"|"status"|"rollback"|"repair", "database": ..., "dry_run": bool, "count": n}`.
Everything is validated here, so a bad key or payload is refused before any download or SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline_common.events import EventError, is_s3_notification, s3_objects
from schema_migrations.config import Settings
from schema_migrations.keys import ROOT_DATABASE, RequestRefused, database_name, is_folder_marker, parse_key
from schema_migrations.results import DatabaseResult, RunRequest
from schema_migrations.source import has_migrations, list_databases

OPERATOR_ACTIONS = ("migrate", "status", "rollback", "repair")
_OPERATOR_FIELDS = {"action", "database", "dry_run", "count"}


@dataclass
class Requests:
    runs: list[RunRequest] = field(default_factory=list)
    refused: list[DatabaseResult] = field(default_factory=list)
    from_s3: bool = False


def from_event(event: Mapping[str, Any], settings: Settings, s3: Any) -> Requests:
    # The parser's own classifier: whatever it calls an S3 notification, it can read.
    if is_s3_notification(event):
        return from_s3_event(event, settings, s3)
    return from_operator(event, settings, s3)


def _refused(database: str, action: str, message: str, key: str | None = None) -> DatabaseResult:
    result = DatabaseResult(database=database, action=action, triggers=[key] if key else [])
    result.fail("refused", {"type": "RequestRefused", "message": message})
    return result


def from_s3_event(event: Mapping[str, Any], settings: Settings, s3: Any) -> Requests:
    requests = Requests(from_s3=True)
    try:
        objects = s3_objects(event)
    except (EventError, KeyError, TypeError) as exc:
        requests.refused.append(_refused("", "migrate", f"unreadable S3 event: {exc}"))
        return requests
    triggers: dict[str, list[str]] = {}
    for obj in objects:
        if obj.bucket != settings.bucket:
            requests.refused.append(
                _refused("", "migrate", f"object s3://{obj.bucket}/{obj.key} is not in {settings.bucket}", obj.key)
            )
            continue
        if is_folder_marker(obj.key) or (obj.event_name and not obj.event_name.startswith("ObjectCreated")):
            continue
        try:
            key = parse_key(obj.key, settings.allowed_databases)
        except RequestRefused as exc:
            requests.refused.append(_refused(obj.key.split("/")[0], "migrate", str(exc), obj.key))
            continue
        triggers.setdefault(key.database, []).append(obj.key)
    requests.runs = _with_root_first(
        [RunRequest("migrate", database, triggers=keys) for database, keys in triggers.items()], settings, s3
    )
    return requests


def _with_root_first(runs: list[RunRequest], settings: Settings, s3: Any) -> list[RunRequest]:
    """`postgres/` runs first (it may create the other databases), whenever it has migrations."""
    root = [r for r in runs if r.database == ROOT_DATABASE]
    others = [r for r in runs if r.database != ROOT_DATABASE]
    root_allowed = not settings.allowed_databases or ROOT_DATABASE in settings.allowed_databases
    if others and not root and root_allowed and has_migrations(s3, settings.bucket, ROOT_DATABASE):
        template = others[0]
        root = [RunRequest(template.action, ROOT_DATABASE, dry_run=template.dry_run)]
    return root + others


def from_operator(event: Mapping[str, Any], settings: Settings, s3: Any) -> Requests:
    requests = Requests()
    action = event.get("action", "migrate")
    database = event.get("database")
    label = database if isinstance(database, str) else ""
    try:
        unknown = sorted(set(event) - _OPERATOR_FIELDS)
        if unknown:
            raise RequestRefused(f"unknown field(s) {unknown}; expected {sorted(_OPERATOR_FIELDS)}")
        if action not in OPERATOR_ACTIONS:
            raise RequestRefused(f"unknown action {action!r}; expected one of {', '.join(OPERATOR_ACTIONS)}")
        dry_run = event.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise RequestRefused(f"dry_run must be true or false, got {dry_run!r}")
        count = event.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise RequestRefused(f"count must be a positive integer, got {count!r}")
        if database is None:
            if action in ("rollback", "repair"):
                raise RequestRefused(f"action {action!r} needs a database")
            names, invalid = list_databases(s3, settings.bucket, settings.allowed_databases)
            for name in invalid:
                requests.refused.append(_refused(name, action, f"prefix {name}/ is not a valid or allowed database"))
            runs = [RunRequest(action, name, dry_run=dry_run, count=count) for name in names]
            requests.runs = sorted(runs, key=lambda r: r.database != ROOT_DATABASE)
            return requests
        name = database_name(database, settings.allowed_databases)
    except RequestRefused as exc:
        requests.refused.append(_refused(label, str(action), str(exc)))
        return requests
    run = RunRequest(action, name, dry_run=dry_run, count=count)
    requests.runs = _with_root_first([run], settings, s3) if action == "migrate" else [run]
    return requests
