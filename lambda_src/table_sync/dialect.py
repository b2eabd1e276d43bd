"""Source SQL per engine: T-SQL (the product's target), PostgreSQL and MySQL.

Every statement is built from validated identifiers quoted for the engine, and every value is a
bound parameter. Reads are keyset scans on (cursor, primary key): a seek predicate that starts
right after the last committed row, no TOP and no OFFSET, so resuming costs an index seek however
far into the table the sync is, and rows sharing a cursor value are never split or repeated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline_common.identifiers import QualifiedName, quote
from table_sync.values import as_parameter


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

    def session_sql(self) -> list[str]:
        """Run at the start of every read so values arrive in UTC whatever the server's zone is."""
        if self.engine == "postgresql":
            return ["SET TIME ZONE 'UTC'"]
        if self.engine == "mysql":
            # A slow consumer (the target write) must not make the server drop the streaming result.
            return ["SET time_zone = '+00:00'", "SET SESSION net_write_timeout = 600"]
        return ["SET NOCOUNT ON"]


@dataclass(frozen=True)
class SourceShape:
    """What a source read selects: resolved source column names and the cursor."""

    relation: QualifiedName | None
    query: str | None
    columns: tuple[str, ...]
    primary_key: tuple[str, ...]
    cursor_column: str
    cursor_type: str

    def from_clause(self, dialect: Dialect) -> str:
        if self.relation is not None:
            return dialect.table(self.relation)
        assert self.query is not None
        return f"({dialect.literal_text(self.query)}) AS {dialect.quote('src')}"

    def cursor_index(self, dialect: Dialect) -> int:
        """Position of the cursor value in a selected row."""
        plain = dialect.cursor_select(self.cursor_column, self.cursor_type) == dialect.quote(self.cursor_column)
        if plain and self.cursor_column in self.columns:
            return self.columns.index(self.cursor_column)
        return len(self.columns)

    def select_list(self, dialect: Dialect) -> list[str]:
        selected = [dialect.quote(c) for c in self.columns]
        if self.cursor_index(dialect) == len(self.columns):
            selected.append(dialect.cursor_select(self.cursor_column, self.cursor_type))
        return selected


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
