"""The outcome of one action on one database, as published to SNS and logged."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_TEXT = 4000  # keeps a result far below SNS's 256 KiB message limit
# SNS's 256 KiB counts the subject and attributes too; a database with thousands of migrations
# would exceed it with `status` (or a first `migrate`), and the publish would fail.
MAX_MESSAGE_BYTES = 200_000
_LISTS = (
    "migrations",
    "pending",
    "applied",
    "rolled_back",
    "repaired",
    "baselined",
    "changed",
    "missing_from_bucket",
    "triggers",
)


def _size(value: Any) -> int:
    return len(json.dumps(value, default=str).encode("utf-8"))


def clip(text: str | None, limit: int = MAX_TEXT) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} more characters]"


@dataclass
class RunRequest:
    action: str  # migrate | status | rollback | repair
    database: str
    dry_run: bool = False
    count: int = 1
    triggers: list[str] = field(default_factory=list)  # S3 keys that caused the run


@dataclass
class DatabaseResult:
    database: str
    action: str
    status: str = "succeeded"  # succeeded | failed | refused | skipped
    dry_run: bool = False
    applied: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # migrate: still to apply; dry run: would apply / roll back
    repaired: list[str] = field(default_factory=list)
    baselined: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    missing_from_bucket: list[str] = field(default_factory=list)
    migrations: list[dict[str, Any]] = field(default_factory=list)  # status only
    error: dict[str, Any] | None = None
    retryable: bool = False
    lock: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    files: int = 0
    triggers: list[str] = field(default_factory=list)
    omitted: dict[str, int] = field(default_factory=dict)  # entries left out of each list, to fit SNS

    @classmethod
    def for_request(cls, request: RunRequest) -> DatabaseResult:
        return cls(
            database=request.database, action=request.action, dry_run=request.dry_run, triggers=list(request.triggers)
        )

    def fail(self, status: str, error: dict[str, Any], retryable: bool = False) -> None:
        self.status = status
        self.error = {key: clip(value) if isinstance(value, str) else value for key, value in error.items()}
        self.retryable = retryable

    def to_dict(self) -> dict[str, Any]:
        """The result, its longest lists halved (keeping their first entries) until it fits."""
        data = asdict(self)
        while _size(data) > MAX_MESSAGE_BYTES:
            name = max(_LISTS, key=lambda n: _size(data[n]))
            items = data[name]
            if not items:
                break
            data[name] = items[: len(items) // 2]
            data["omitted"][name] = data["omitted"].get(name, 0) + len(items) - len(data[name])
        return data
