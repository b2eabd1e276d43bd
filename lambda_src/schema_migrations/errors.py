"""Failures of a run that are reported: a changed file needs an operator; a failed migration is
retried only when its database error may pass (a lost connection, a cancelled statement)."""

from __future__ import annotations

from typing import Any

from pipeline_common.errors import PermanentError, PipelineError, error_message, is_retryable


class ChecksumMismatch(PermanentError):
    """Applied migrations whose file in the bucket has changed since they were applied."""

    def __init__(self, database: str, keys: list[str]) -> None:
        super().__init__(
            f"applied migration(s) changed in the bucket since they were applied to {database!r}: "
            f"{', '.join(keys)}; restore the original file(s), or invoke with "
            f'{{"action": "repair", "database": "{database}"}} to accept the new content'
        )
        self.keys = keys


class MigrationFailed(PipelineError):
    """A migration's statement failed; its transaction was rolled back and the run stopped.
    Retryable when the database error is (`pipeline_common.errors.is_retryable`)."""

    def __init__(self, key: str, statement: str | None, cause: BaseException, reason: str | None = None) -> None:
        message = f"{key} failed: {error_message(cause)}" + (f" ({reason})" if reason else "")
        super().__init__(message, retryable=is_retryable(cause))
        self.key = key
        self.statement = statement
        self.cause = cause

    def details(self) -> dict[str, Any]:
        diag = getattr(self.cause, "diag", None)
        return {
            "type": "MigrationFailed",
            "message": str(self),
            "file": self.key,
            "statement": self.statement,
            "database_error": error_message(self.cause),
            "sqlstate": getattr(self.cause, "pgcode", None),
            "detail": getattr(diag, "message_detail", None),
            "hint": getattr(diag, "message_hint", None),
        }


def failed_statement(exc: BaseException) -> str | None:
    """The SQL text psycopg2 sent when `exc` was raised (kept on the failing cursor)."""
    query = getattr(getattr(exc, "cursor", None), "query", None)
    if isinstance(query, bytes):
        return query.decode("utf-8", errors="replace")
    return query
