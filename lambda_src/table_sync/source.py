"""Reading the source through whichever DB-API driver the connection came from.

pyodbc is the product's path (SQL Server through FreeTDS, and psqlODBC / MariaDB ODBC); psycopg2
and PyMySQL are the native alternatives. Each streams: psycopg2 through a server-side named
cursor, PyMySQL through an unbuffered `SSCursor`, psqlODBC with `UseDeclareFetch`, MariaDB ODBC
with `NO_CACHE` (both set by `pipeline_common.db.odbc_connection_string`), FreeTDS natively.
"""

from __future__ import annotations

import contextlib
import struct
import uuid
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from pipeline_common.db import driver_of, rollback_quietly
from pipeline_common.errors import PermanentError
from table_sync.dialect import Dialect, SourceColumn, SourceShape, probe_sql

SQL_SS_TIMESTAMPOFFSET = -155  # SQL Server datetimeoffset, which pyodbc cannot convert by itself


class SourceError(PermanentError):
    """The source table, query or columns are not what the configuration says."""


def dialect_for(connection: Any, engine: str) -> Dialect:
    return Dialect(engine, "qmark" if driver_of(connection) == "pyodbc" else "format")


def datetimeoffset_to_datetime(raw: bytes) -> datetime:
    """Convert SQL Server's datetimeoffset wire struct (SQL_SS_TIMESTAMPOFFSET_STRUCT) to an aware datetime."""
    year, month, day, hour, minute, second, nanoseconds, offset_hours, offset_minutes = struct.unpack("<6hI2h", raw)
    zone = timezone(timedelta(hours=offset_hours, minutes=offset_minutes))
    return datetime(year, month, day, hour, minute, second, nanoseconds // 1000, tzinfo=zone)


def prepare_session(connection: Any, dialect: Dialect) -> None:
    """Session settings for a read; runs inside the read's transaction, so it is redone each run."""
    if driver_of(connection) == "pyodbc" and dialect.engine == "sqlserver":
        connection.add_output_converter(SQL_SS_TIMESTAMPOFFSET, datetimeoffset_to_datetime)
    cursor = connection.cursor()
    try:
        cursor.execute(dialect.session_sql())
    finally:
        cursor.close()


# pyodbc describes a column by the Python type it converts the column's values to.
_PYODBC_KINDS: dict[type, str] = {
    str: "text",
    int: "integer",
    Decimal: "decimal",
    float: "float",
    bool: "bool",
    datetime: "datetime",
    date: "date",
    time: "time",
    bytes: "binary",
    bytearray: "binary",
    uuid.UUID: "uuid",
}


def probe_columns(connection: Any, dialect: Dialect, shape: SourceShape) -> list[SourceColumn]:
    """The source's columns, or a `SourceError` naming the table when it cannot be read.

    Through pyodbc each column also gets the kind its values would be encoded as on the source;
    the native drivers' type codes are not mapped, so their reads stay typed.
    """
    cursor = connection.cursor()
    try:
        cursor.execute(probe_sql(dialect, shape))
        described = list(cursor.description)
    except Exception as exc:  # every driver has its own error classes
        what = f"source table {shape.relation}" if shape.relation else "source query"
        raise SourceError(f"{what} cannot be read: {_first_line(exc)}") from exc
    finally:
        _close_quietly(cursor)
        rollback_quietly(connection)
    if driver_of(connection) != "pyodbc":
        return [SourceColumn(str(d[0])) for d in described]
    return [SourceColumn(str(d[0]), _PYODBC_KINDS.get(d[1]), d[4], d[5]) for d in described]


def upper_bound(connection: Any, dialect: Dialect, cursor_type: str) -> Any:
    statement = dialect.upper_bound_sql(cursor_type)
    if statement is None:
        return None
    cursor = connection.cursor()
    try:
        cursor.execute(statement)
        row = cursor.fetchone()
    finally:
        cursor.close()
    return row[0] if row else None


def open_stream(connection: Any, statement: str, params: Sequence[Any]) -> Any:
    """Execute a read whose rows are fetched with `fetchmany` without buffering the result."""
    driver = driver_of(connection)
    if driver == "psycopg2":
        cursor = connection.cursor(name="table_sync_read")
    elif driver == "pymysql":
        import pymysql.cursors

        cursor = connection.cursor(pymysql.cursors.SSCursor)
    else:
        cursor = connection.cursor()
    cursor.execute(statement, tuple(params))
    return cursor


def abandon_stream(cursor: Any) -> None:
    """Forget an unfinished stream whose connection is about to be closed.

    Closing would read the rest of the result off the wire (PyMySQL's SSCursor drains it, even
    from its destructor); the connection is dropped instead, so the result is marked done.
    """
    result = getattr(cursor, "_result", None)
    if result is not None and getattr(result, "unbuffered_active", False):
        result.unbuffered_active = False


def fetch_rows(connection: Any, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """A small, fully read result (key lookups)."""
    cursor = connection.cursor()
    try:
        cursor.execute(statement, tuple(params))
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], str) else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _close_quietly(cursor: Any) -> None:
    # The cursor of a failed statement may already be gone.
    with contextlib.suppress(Exception):
        cursor.close()
