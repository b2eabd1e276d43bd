"""What a sync run reports per table, and what it needs of a connection: shared by the sync loop
and the delete reconciliation (kept here so neither imports the other)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from pipeline_common.errors import error_message, is_retryable
from pipeline_common.values import display


class ConnectionProvider(Protocol):
    """What `pipeline_common.db.ManagedConnection` offers: a healthy connection, and a way to drop it."""

    def get(self) -> Any: ...

    def close(self) -> None: ...


@dataclass
class TableResult:
    table: str
    source: str
    target: str
    status: str = "finished"  # finished | continues | skipped | failed
    rows_read: int = 0
    rows_upserted: int = 0
    rows_deleted: int = 0
    chunks: int = 0
    watermark_before: Any = None
    watermark_after: Any = None
    upper_bound: Any = None
    deletes: str = "off"  # off | not_due | finished | continues | not_reached
    read_mode: str | None = None  # encoded (COPY lines rendered on the source) | typed
    duration_seconds: float = 0.0
    error: str | None = None
    # For a failed table: may the next run succeed with nothing changed? Kept out of `to_json`
    # (the published result's keys are a contract); the handler's TableSyncFailed carries it.
    retryable: bool | None = field(default=None, repr=False)

    def fail(self, exc: BaseException, message: str | None = None) -> None:
        """Failed with `exc`; the error shows `message`, else the first line of `exc`."""
        text = error_message(exc)
        self.status = "failed"
        self.error = f"{type(exc).__name__}: {message if message is not None else text.splitlines()[0] if text else ''}"
        self.retryable = is_retryable(exc)

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        del document["retryable"]
        for name in ("watermark_before", "watermark_after", "upper_bound"):
            document[name] = display(document[name])
        return document


@dataclass
class SyncReport:
    tables: list[TableResult] = field(default_factory=list)

    @property
    def failed(self) -> list[TableResult]:
        return [t for t in self.tables if t.status == "failed"]

    def to_json(self) -> dict[str, Any]:
        return {
            "finished": all(t.status == "finished" for t in self.tables),
            "tables": [t.to_json() for t in self.tables],
        }
