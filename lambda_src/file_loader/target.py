"""Where a file's rows go: its columns mapped onto the table's, a staging table when the route
upserts, the final upsert, and PostgreSQL's reason when a row is refused. Shared by the CSV and
JSON-lines paths."""

from __future__ import annotations

import re
from typing import Any

from psycopg2 import sql

from file_loader.formats import FormatError
from file_loader.rejects import Stats
from file_loader.routes import Route
from pipeline_common.catalog import Column, primary_key
from pipeline_common.deadline import Deadline, bound_statements
from pipeline_common.identifiers import QualifiedName
from pipeline_common.pgload import create_staging, is_row_error, upsert

Destination = sql.Composable | QualifiedName

# Taken by the loader right before an object's rows are loaded: a rejection rolls back to it, and
# so does the CSV fast path when it gives way to the careful one.
DATA_SAVEPOINT = "file_loader_data"


class ColumnsError(FormatError):
    """The file's columns do not fit the table."""


class UpsertRefused(FormatError):
    """The final INSERT ... ON CONFLICT hit a constraint the staging table cannot check (a foreign
    key, a CHECK): no single row can be named, so the whole object is rejected."""

    def __init__(self, message: str, lines: int) -> None:
        super().__init__(message)
        self.lines = lines


def map_columns(names: list[str], columns: list[Column], target: QualifiedName) -> list[str]:
    """Table columns for the header names (exact match first, then unambiguous case-insensitive);
    raises `ColumnsError` listing every mismatch at once."""
    by_name = {c.name: c for c in columns}
    by_lower: dict[str, list[Column]] = {}
    for column in columns:
        by_lower.setdefault(column.name.lower(), []).append(column)
    mapped: list[str] = []
    unknown: list[str] = []
    for name in names:
        if name in by_name:
            mapped.append(name)
        elif len(by_lower.get(name.lower(), [])) == 1:
            mapped.append(by_lower[name.lower()][0].name)
        else:
            unknown.append(name)
    problems = []
    if unknown:
        problems.append(f"columns not in table {target}: {', '.join(map(repr, unknown))}")
    duplicates = sorted({c for c in mapped if mapped.count(c) > 1})
    if duplicates:
        problems.append(f"columns named more than once: {', '.join(duplicates)}")
    generated = [c for c in mapped if by_name[c].generated]
    if generated:
        problems.append(f"generated columns cannot be loaded: {', '.join(generated)}")
    missing = [c.name for c in columns if c.required and c.name not in mapped]
    if missing:
        problems.append(f"required columns of {target} missing from the file: {', '.join(missing)}")
    if problems:
        raise ColumnsError("; ".join(problems), line=1)
    return mapped


def upsert_keys(cur: Any, route: Route, target: QualifiedName) -> list[str]:
    """The conflict target of an upsert route: its key_columns, else the table's primary key."""
    keys = list(route.key_columns) or primary_key(cur, target)
    if not keys:
        raise ColumnsError(f"upsert into {target} needs key_columns: the table has no primary key")
    return keys


def destination(
    cur: Any, route: Route, target: QualifiedName, columns: list[Column], mapped: list[str]
) -> tuple[Destination, list[str]]:
    """The table rows are copied into (the target, or a staging table to upsert from) and the key."""
    if route.mode == "append":
        return target, []
    keys = upsert_keys(cur, route, target)
    missing = [k for k in keys if k not in mapped]
    if missing:
        raise ColumnsError(f"upsert key columns missing from the file: {', '.join(missing)}", line=1)
    not_null = [c.name for c in columns if c.not_null and c.name in mapped]
    return create_staging(cur, target, mapped, not_null=not_null), keys


def finish_upsert(
    cur: Any,
    deadline: Deadline,
    route: Route,
    dest: Destination,
    target: QualifiedName,
    mapped: list[str],
    keys: list[str],
    stats: Stats,
) -> None:
    if route.mode == "upsert":
        assert not isinstance(dest, QualifiedName)
        bound_statements(cur, deadline)  # the copy used up time; the upsert gets what is left
        try:
            upsert(cur, dest, target, mapped, keys)
        except Exception as exc:
            if not is_row_error(exc):
                raise
            raise UpsertRefused(f"upsert into {target} refused: {row_error_reason(exc)}", stats.lines) from None


_COLUMN_IN_CONTEXT = re.compile(r", column (\w+)")


def row_error_reason(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    message = getattr(diag, "message_primary", None) or str(exc).splitlines()[0]
    match = _COLUMN_IN_CONTEXT.search(getattr(diag, "context", None) or "")
    detail = getattr(diag, "message_detail", None)
    reason = f"{message} (column {match.group(1)})" if match else message
    return f"{reason}: {detail}" if detail else reason


def abandon(cur: Any, savepoint: str) -> None:
    """Roll back to `savepoint` and release it, so retries of split batches do not nest
    savepoints without end."""
    cur.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
    cur.execute(f"RELEASE SAVEPOINT {savepoint}")
