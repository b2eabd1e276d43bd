"""Source SQL per engine: T-SQL (the product's target), PostgreSQL and MySQL.

Every statement is built from validated identifiers quoted for the engine, and every value is a
bound parameter. Reads are keyset scans on (cursor, primary key): a seek predicate that starts
right after the last committed row, no TOP and no OFFSET, so resuming costs an index seek however
far into the table the sync is, and rows sharing a cursor value are never split or repeated.

Encoded reads: the source renders each row as one line of PostgreSQL's COPY text format (fields
escaped, NULL as `\\N`, joined by tabs) and the sync copies the lines as they come. An ODBC
driver pays for every value it converts, so one text column per row instead of one typed value
per column is most of a read's cost saved; the cursor and key values still arrive typed beside
the line, because the watermark keeps their driver types.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from pipeline_common.identifiers import QualifiedName, quote
from pipeline_common.values import as_parameter

# What a source column's values look like, as far as rendering them as COPY text is concerned.
ENCODABLE_KINDS = frozenset(
    {"text", "integer", "decimal", "float", "bool", "datetime", "date", "time", "binary", "uuid"}
)


@dataclass(frozen=True)
class SourceColumn:
    """A source column as its driver describes it; `kind` is None when it cannot be encoded on the source."""

    name: str
    kind: str | None = None
    precision: int | None = None
    scale: int | None = None


@dataclass(frozen=True)
class Dialect:
    engine: str  # "sqlserver" | "postgresql" | "mysql"
    paramstyle: str = "qmark"  # "qmark" (pyodbc) | "format" (psycopg2, PyMySQL)

    @property
    def placeholder(self) -> str:
        return "?" if self.paramstyle == "qmark" else "%s"

    def quote(self, name: str) -> str:
        return quote(name, self.engine)

    def table(self, name: QualifiedName) -> str:
        return f"{self.quote(name.schema)}.{self.quote(name.name)}"

    def literal_text(self, text: str) -> str:
        """User SQL embedded in a statement whose parameters use `%s`: its `%` must be doubled."""
        return text.replace("%", "%%") if self.paramstyle == "format" else text

    def cursor_select(self, column: str, cursor_type: str) -> str:
        """The expression whose value is the cursor of a row."""
        if self.engine == "sqlserver" and cursor_type == "rowversion":
            # rowversion is binary(8); as a bigint the watermark stays readable and orders the same.
            return f"CAST({self.quote(column)} AS BIGINT)"
        return self.quote(column)

    def cursor_parameter(self, cursor_type: str) -> str:
        """A parameter compared with the cursor column, in the column's own type (keeps index seeks)."""
        if self.engine == "sqlserver" and cursor_type == "rowversion":
            return f"CAST(CAST({self.placeholder} AS BIGINT) AS BINARY(8))"
        return self.placeholder

    def upper_bound_sql(self, cursor_type: str) -> str | None:
        """The statement returning the exclusive upper bound of a rowversion pass (None: no bound).

        Everything below the bound is committed, so a row an in-flight transaction is writing is
        never skipped: it lands at or above the bound and the next pass reads it.
        """
        if cursor_type != "rowversion":
            return None
        if self.engine == "sqlserver":
            return "SELECT CAST(MIN_ACTIVE_ROWVERSION() AS BIGINT)"
        if self.engine == "postgresql":
            # The stand-in: a bigint column set to pg_current_xact_id() by a trigger. Transaction ids
            # below the snapshot's xmin belong to finished transactions, as MIN_ACTIVE_ROWVERSION does.
            return "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
        # MySQL has no such function: its version column must be assigned under a counter-row lock,
        # which serialises writers so versions commit in order and there is nothing in flight below.
        return None

    def session_sql(self) -> str:
        """Run at the start of every read so values arrive in UTC whatever the server's zone is;
        one statement, one round trip."""
        if self.engine == "postgresql":
            # ISO dates whatever the server's DateStyle: encoded reads copy the text as it comes.
            return "SELECT set_config('TimeZone', 'UTC', false), set_config('DateStyle', 'ISO', false)"
        if self.engine == "mysql":
            # A slow consumer (the target write) must not make the server drop the streaming result.
            return "SET time_zone = '+00:00', SESSION net_write_timeout = 600"
        return "SET NOCOUNT ON"

    def copy_field(self, column: SourceColumn) -> str:
        """An expression rendering `column` as one COPY text field (escaped; NULL as \\N)."""
        if column.kind not in ENCODABLE_KINDS:
            raise ValueError(f"column {column.name!r} of kind {column.kind!r} cannot be encoded on the source")
        value = {"postgresql": _pg_field, "mysql": _mysql_field, "sqlserver": _tsql_field}[self.engine](
            self.quote(column.name), column
        )
        return {
            "postgresql": f"coalesce({value}, chr(92) || 'N')",
            "mysql": f"COALESCE({value}, CONCAT({_MY_BACKSLASH}, 'N'))",
            "sqlserver": f"ISNULL({value}, N'\\N')",
        }[self.engine]

    def copy_line(self, columns: Sequence[SourceColumn]) -> str:
        """An expression rendering a row as one COPY text line, newline included."""
        fields = [self.copy_field(c) for c in columns]
        if self.engine == "postgresql":
            return " || chr(9) || ".join(fields) + " || chr(10)"
        if self.engine == "mysql":
            return f"CONCAT({f', {_my_char(9)}, '.join(fields)}, {_my_char(10)})"
        return " + NCHAR(9) + ".join(fields) + " + NCHAR(10)"


# COPY text escapes: backslash first, so the escapes added after it are not doubled again.
_COPY_ESCAPES = ((92, "\\\\"), (9, "\\t"), (10, "\\n"), (13, "\\r"))


def _pg_field(quoted: str, column: SourceColumn) -> str:
    # Character codes instead of backslash literals: standard_conforming_strings may be off.
    if column.kind == "binary":
        return f"chr(92) || chr(92) || 'x' || encode({quoted}, 'hex')"
    if column.kind != "text":
        # PostgreSQL's own text output is valid input for the same type on the target.
        return f"{quoted}::text"
    value = f"{quoted}::text"
    for code, escaped in _COPY_ESCAPES:
        value = f"replace({value}, chr({code}), {' || '.join(_pg_chars(escaped))})"
    return value


def _pg_chars(escaped: str) -> list[str]:
    return ["chr(92)" if ch == "\\" else f"'{ch}'" for ch in escaped]


def _my_char(code: int) -> str:
    return f"CHAR({code} USING utf8mb4)"


_MY_BACKSLASH = _my_char(92)


def _mysql_field(quoted: str, column: SourceColumn) -> str:
    # No backslash literals: NO_BACKSLASH_ESCAPES changes what they mean.
    text = f"CAST({quoted} AS CHAR CHARACTER SET utf8mb4)"
    if column.kind == "binary":
        return f"CONCAT({_MY_BACKSLASH}, {_MY_BACKSLASH}, 'x', HEX(CAST({quoted} AS BINARY)))"
    if column.kind == "float":
        # FLOAT is single precision: widened first, it prints what the typed read returns.
        return f"CAST({quoted} + 0E0 AS CHAR CHARACTER SET utf8mb4)"
    if column.kind != "text":
        return text
    for code, escaped in _COPY_ESCAPES:
        replacement = ", ".join(_MY_BACKSLASH if ch == "\\" else f"'{ch}'" for ch in escaped)
        text = f"REPLACE({text}, {_my_char(code)}, CONCAT({replacement}))"
    return text


def _tsql_field(quoted: str, column: SourceColumn) -> str:
    kind = column.kind
    if kind == "text":
        value = f"CONVERT(nvarchar(max), {quoted})"
        for code, escaped in _COPY_ESCAPES:
            value = f"REPLACE({value}, NCHAR({code}), N'{escaped}')"  # T-SQL literals keep backslashes
        return value
    if kind == "decimal":
        # Through decimal(p, s): money's default conversion would keep only two decimals.
        precision = min(max(column.precision or 38, 1), 38)
        scale = min(max(column.scale or 0, 0), precision)
        return f"CONVERT(nvarchar(64), CAST({quoted} AS decimal({precision}, {scale})))"
    if kind == "float":
        return f"CONVERT(nvarchar(32), {quoted}, 3)"  # style 3: 17 digits, a lossless round trip
    if kind == "datetime":
        return f"CONVERT(nvarchar(33), {quoted}, 126)"  # ISO 8601 with every fractional digit
    if kind == "date":
        return f"CONVERT(nvarchar(10), {quoted}, 23)"
    if kind == "binary":
        return f"N'\\\\x' + CONVERT(nvarchar(max), {quoted}, 2)"  # style 2: hex without 0x
    return f"CONVERT(nvarchar(64), {quoted})"  # integer, bit (1/0), time, uniqueidentifier


@dataclass(frozen=True)
class SourceShape:
    """What a source read selects: resolved source column names and the cursor.

    With `encoded` (one `SourceColumn` per synced column) a read selects the COPY line first,
    then the cursor and the key columns, typed, for the chunk positions.
    """

    relation: QualifiedName | None
    query: str | None
    columns: tuple[str, ...]
    primary_key: tuple[str, ...]
    cursor_column: str
    cursor_type: str
    encoded: tuple[SourceColumn, ...] | None = None

    def from_clause(self, dialect: Dialect) -> str:
        if self.relation is not None:
            return dialect.table(self.relation)
        assert self.query is not None
        return f"({dialect.literal_text(self.query)}) AS {dialect.quote('src')}"

    def position_kinds(self, dialect: Dialect) -> tuple[str, ...] | None:
        """Kinds of the cursor and key columns when an encoded read takes them from the line.

        Parsing the chunk's last line once saves converting two or three typed values per row. It
        needs the cursor selected as itself (not SQL Server's rowversion cast) among the synced
        columns, and kinds whose text reads back as exactly what the driver returns; otherwise the
        values are selected typed beside the line (None).
        """
        if self.encoded is None or self.cursor_column not in self.columns:
            return None
        if dialect.cursor_select(self.cursor_column, self.cursor_type) != dialect.quote(self.cursor_column):
            return None
        kinds = {c.name: c.kind for c in self.encoded}
        position = tuple(kinds[name] for name in (self.cursor_column, *self.primary_key))
        return position if all(kind in POSITION_KINDS for kind in position) else None

    def cursor_index(self, dialect: Dialect) -> int:
        """Position of the cursor value in a selected row (in the line's fields when it is parsed)."""
        if self.encoded is not None and self.position_kinds(dialect) is None:
            return 1
        plain = dialect.cursor_select(self.cursor_column, self.cursor_type) == dialect.quote(self.cursor_column)
        if plain and self.cursor_column in self.columns:
            return self.columns.index(self.cursor_column)
        return len(self.columns)

    def key_indexes(self, dialect: Dialect) -> tuple[int, ...]:
        """Positions of the primary key values in a selected row (or in the line's fields)."""
        if self.encoded is not None and self.position_kinds(dialect) is None:
            return tuple(range(2, 2 + len(self.primary_key)))
        return tuple(self.columns.index(k) for k in self.primary_key)

    def select_list(self, dialect: Dialect) -> list[str]:
        if self.encoded is not None:
            line = dialect.copy_line(self.encoded)
            if self.position_kinds(dialect) is not None:
                return [line]
            return [
                line,
                dialect.cursor_select(self.cursor_column, self.cursor_type),
                *(dialect.quote(k) for k in self.primary_key),
            ]
        selected = [dialect.quote(c) for c in self.columns]
        if self.cursor_index(dialect) == len(self.columns):
            selected.append(dialect.cursor_select(self.cursor_column, self.cursor_type))
        return selected


# Kinds whose COPY text reads back (`parse_copy_field`) as the value the driver returns typed.
POSITION_KINDS = frozenset({"integer", "decimal", "text", "date", "datetime"})
_UNESCAPED = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}
_ESCAPE = re.compile(r"\\[\\tnr]")


def parse_copy_field(field: str, kind: str) -> Any:
    """A field rendered by `Dialect.copy_field`, read back as the driver would have returned it."""
    if kind == "text":
        return _ESCAPE.sub(lambda match: _UNESCAPED[match.group()], field)
    if kind == "integer":
        return int(field)
    if kind == "decimal":
        return Decimal(field)
    if kind == "date":
        return date.fromisoformat(field)
    if kind == "datetime":
        # ODBC drivers hand timestamps over naive, in the session's zone (UTC, see session_sql).
        value = datetime.fromisoformat(field)
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value
    raise ValueError(f"cannot read a {kind!r} value back from COPY text")


@dataclass(frozen=True)
class Lower:
    """Where a read starts: `all` rows, cursor `from` (>=) or `after` (>) a value, or `after_key`
    (strictly after a (cursor, primary key) position)."""

    kind: str
    cursor: Any = None
    key: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("all", "from", "after", "after_key"):
            raise ValueError(f"unknown lower bound kind {self.kind!r}")


def probe_sql(dialect: Dialect, shape: SourceShape) -> str:
    """A statement returning no rows whose description lists the source's columns."""
    return f"SELECT * FROM {shape.from_clause(dialect)} WHERE 1 = 0"


def read_sql(dialect: Dialect, shape: SourceShape, lower: Lower, upper: Any = None) -> tuple[str, list[Any]]:
    """The keyset scan of one pass (or the rest of it), ordered by (cursor, primary key)."""
    cursor_col = dialect.quote(shape.cursor_column)
    cursor_param = dialect.cursor_parameter(shape.cursor_type)
    conditions: list[str] = []
    params: list[Any] = []
    if lower.kind == "all":
        # NULL sorts first on SQL Server and MySQL, last on PostgreSQL: rows without a cursor value
        # cannot be tracked by any watermark, so no engine returns them.
        conditions.append(f"{cursor_col} IS NOT NULL")
    elif lower.kind == "from":
        conditions.append(f"{cursor_col} >= {cursor_param}")
        params.append(as_parameter(lower.cursor))
    elif lower.kind == "after":
        conditions.append(f"{cursor_col} > {cursor_param}")
        params.append(as_parameter(lower.cursor))
    else:
        sql, values = _after_position(dialect, shape, lower.cursor, lower.key)
        conditions.append(sql)
        params.extend(values)
    if upper is not None:
        conditions.append(f"{cursor_col} < {cursor_param}")
        params.append(as_parameter(upper))
    order = ", ".join([cursor_col, *(dialect.quote(k) for k in shape.primary_key)])
    statement = (
        f"SELECT {', '.join(shape.select_list(dialect))} FROM {shape.from_clause(dialect)} "
        f"WHERE {' AND '.join(conditions)} ORDER BY {order}"
    )
    return statement, params


def _after_position(dialect: Dialect, shape: SourceShape, cursor: Any, key: Sequence[Any]) -> tuple[str, list[Any]]:
    """Rows strictly after (cursor, key...) in (cursor, key...) order."""
    if len(key) != len(shape.primary_key):
        raise ValueError(f"position has {len(key)} key values, the primary key {len(shape.primary_key)} columns")
    columns = [shape.cursor_column, *shape.primary_key]
    values = [as_parameter(v) for v in (cursor, *key)]
    parameters = [dialect.cursor_parameter(shape.cursor_type)] + [dialect.placeholder] * len(key)
    quoted = [dialect.quote(c) for c in columns]
    if dialect.engine == "postgresql":
        # A row comparison is one index range scan on PostgreSQL.
        return f"({', '.join(quoted)}) > ({', '.join(parameters)})", values
    # T-SQL has no row comparison, and MySQL plans it poorly: the leading `>=` gives the range seek.
    nested, nested_values = _expanded_greater(quoted, parameters, values)
    return f"{quoted[0]} >= {parameters[0]} AND {nested}", [values[0], *nested_values]


def _expanded_greater(columns: list[str], parameters: list[str], values: list[Any]) -> tuple[str, list[Any]]:
    if len(columns) == 1:
        return f"{columns[0]} > {parameters[0]}", [values[0]]
    rest, rest_values = _expanded_greater(columns[1:], parameters[1:], values[1:])
    sql = f"({columns[0]} > {parameters[0]} OR ({columns[0]} = {parameters[0]} AND {rest}))"
    return sql, [values[0], values[0], *rest_values]


def key_lookup_sql(dialect: Dialect, shape: SourceShape, keys: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
    """The primary keys among `keys` that still exist in the source (delete reconciliation)."""
    if not keys:
        raise ValueError("key lookup needs at least one key")
    quoted = [dialect.quote(k) for k in shape.primary_key]
    p = dialect.placeholder
    params = [as_parameter(v) for key in keys for v in key]
    if len(quoted) == 1:
        condition = f"{quoted[0]} IN ({', '.join([p] * len(keys))})"
    elif dialect.engine == "postgresql":
        row = "(" + ", ".join([p] * len(quoted)) + ")"
        condition = f"({', '.join(quoted)}) IN ({', '.join([row] * len(keys))})"
    else:
        one = "(" + " AND ".join(f"{c} = {p}" for c in quoted) + ")"
        condition = " OR ".join([one] * len(keys))
    statement = f"SELECT {', '.join(quoted)} FROM {shape.from_clause(dialect)} WHERE {condition}"
    return statement, params
