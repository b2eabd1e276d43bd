"""The table sync's configuration: `SYNC_TABLES` (JSON list of table specs) and the two databases.

Everything is checked here, before any connection opens: a typo in a key, a missing primary key
or a bad identifier fails the first invocation with a message naming the table and the field.
Whether the named tables and columns exist is checked later, against the live databases, by
`table_sync.plan`, still before any row moves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from pipeline_common.config import ConfigError, DatabaseSettings, env_identifier, env_int, env_json
from pipeline_common.identifiers import IdentifierError, QualifiedName, validate_identifier
from table_sync.query import QueryError, single_select

CURSOR_TYPES = ("rowversion", "timestamp")
DEFAULT_CHUNK_SIZE = 10_000
MAX_CHUNK_SIZE = 1_000_000
DEFAULT_DELETE_CHUNK_SIZE = 1_000
# SQL Server accepts at most 2,100 parameters per statement; key lookups stay below that.
MAX_DELETE_PARAMETERS = 2_000

_TABLE_KEYS = {
    "name",
    "source",
    "query",
    "target",
    "primary_key",
    "cursor",
    "columns",
    "chunk_size",
    "initial_value",
    "deletes",
    "encode_on_source",
}
_CURSOR_KEYS = {"column", "type", "lookback_seconds"}
_DELETE_KEYS = {"enabled", "chunk_size", "interval_minutes"}


@dataclass(frozen=True)
class CursorSpec:
    column: str
    type: str  # "rowversion" | "timestamp"
    lookback: timedelta = timedelta(0)


@dataclass(frozen=True)
class DeleteSpec:
    enabled: bool = False
    chunk_size: int = DEFAULT_DELETE_CHUNK_SIZE
    interval: timedelta = timedelta(0)  # minimum time between two completed reconciliations


@dataclass(frozen=True)
class TableSpec:
    """One table to sync, as configured (names not yet checked against the databases)."""

    name: str  # key of the watermark row; defaults to the target name
    source: QualifiedName | None
    query: str | None
    target: QualifiedName
    primary_key: tuple[str, ...]
    cursor: CursorSpec
    columns: tuple[tuple[str, str], ...] | None  # (source column, target column); None: all source columns
    chunk_size: int = DEFAULT_CHUNK_SIZE
    initial_value: Any = None
    deletes: DeleteSpec = DeleteSpec()
    # Reads through pyodbc render rows as COPY lines on the source (see `table_sync.dialect`).
    encode_on_source: bool = True

    @property
    def source_label(self) -> str:
        return str(self.source) if self.source is not None else "(query)"


def parse_tables(raw: Any, engine: str) -> list[TableSpec]:
    """Parse the decoded `SYNC_TABLES` JSON for a source of the given engine."""
    if not isinstance(raw, list) or not raw:
        raise ConfigError("SYNC_TABLES must be a non-empty JSON list of table objects")
    specs = [_parse_table(item, index, engine) for index, item in enumerate(raw)]
    _refuse_duplicates(specs)
    return specs


def _parse_table(item: Any, index: int, engine: str) -> TableSpec:
    where = f"SYNC_TABLES[{index}]"
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where} must be a JSON object, got {type(item).__name__}")
    label = item.get("name") or item.get("target") or item.get("source") or str(index)
    where = f"SYNC_TABLES[{index}] ({label})"
    unknown = sorted(set(item) - _TABLE_KEYS)
    if unknown:
        raise ConfigError(f"{where} has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_TABLE_KEYS))}")
    try:
        return _build_table(item, where, engine)
    except IdentifierError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _build_table(item: Mapping[str, Any], where: str, engine: str) -> TableSpec:
    source_text, query = item.get("source"), item.get("query")
    if (source_text is None) == (query is None):
        raise ConfigError(f"{where}: set exactly one of 'source' (schema.table) or 'query'")
    # `source` may quote its parts as the engine does: `dbo.[Order Details]`, `"Sales"."order items"`.
    source = QualifiedName.parse_quoted(_text(source_text, where, "source"), engine) if source_text else None
    if query is not None:
        query = _parse_query(query, where, engine)
    target = QualifiedName.parse(_text(item.get("target"), where, "target"))
    name = item.get("name", str(target))
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ConfigError(f"{where}: 'name' must be a non-empty string of at most 200 characters")
    primary_key = _parse_primary_key(item.get("primary_key"), where, engine)
    cursor = _parse_cursor(item.get("cursor"), where, engine)
    columns = _parse_columns(item.get("columns"), where, engine)
    if columns is not None:
        mapped = {source_column for source_column, _ in columns}
        missing = [column for column in primary_key if column not in mapped]
        if missing:
            raise ConfigError(f"{where}: primary key column(s) {', '.join(missing)} must be listed in 'columns'")
    return TableSpec(
        name=name,
        source=source,
        query=query,
        target=target,
        primary_key=primary_key,
        cursor=cursor,
        columns=columns,
        chunk_size=_positive_int(item.get("chunk_size", DEFAULT_CHUNK_SIZE), where, "chunk_size", MAX_CHUNK_SIZE),
        initial_value=parse_initial_value(item.get("initial_value"), cursor.type, where),
        deletes=_parse_deletes(item.get("deletes", False), where, len(primary_key)),
        encode_on_source=_encode_on_source(item.get("encode_on_source"), where, engine),
    )


def _encode_on_source(value: Any, where: str, engine: str) -> bool:
    """Unset, on where this project's tests run the generated SQL (PostgreSQL, MySQL); for SQL
    Server the T-SQL is only parse-checked here, so it is opt-in."""
    if value is None:
        return engine != "sqlserver"
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: 'encode_on_source' must be true, false or null, got {value!r}")
    return value


def _text(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: '{key}' must be a non-empty string")
    return value


def _parse_query(value: Any, where: str, engine: str) -> str:
    try:
        return single_select(_text(value, where, "query"), engine)
    except QueryError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _parse_primary_key(value: Any, where: str, engine: str) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{where}: 'primary_key' must be a column name or a non-empty list of column names")
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: 'primary_key' lists a column twice")
    return tuple(validate_identifier(n, "primary key column", engine) for n in names)


def _parse_cursor(value: Any, where: str, engine: str) -> CursorSpec:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: 'cursor' must be an object with 'column' and 'type'")
    unknown = sorted(set(value) - _CURSOR_KEYS)
    if unknown:
        raise ConfigError(f"{where}: 'cursor' has unknown key(s) {', '.join(unknown)}")
    kind = value.get("type")
    if kind not in CURSOR_TYPES:
        raise ConfigError(f"{where}: cursor 'type' must be one of {', '.join(CURSOR_TYPES)}, got {kind!r}")
    column = validate_identifier(_text(value.get("column"), where, "cursor.column"), "cursor column", engine)
    lookback_seconds = value.get("lookback_seconds", 0)
    if kind == "rowversion" and lookback_seconds:
        # The upper bound already keeps in-flight transactions out; a lookback would only re-read rows.
        raise ConfigError(f"{where}: 'lookback_seconds' applies to timestamp cursors only")
    if isinstance(lookback_seconds, bool) or not isinstance(lookback_seconds, int | float) or lookback_seconds < 0:
        raise ConfigError(f"{where}: cursor 'lookback_seconds' must be a number >= 0")
    return CursorSpec(column=column, type=kind, lookback=timedelta(seconds=lookback_seconds))


def _parse_columns(value: Any, where: str, engine: str) -> tuple[tuple[str, str], ...] | None:
    if value is None:
        return None
    if isinstance(value, list):
        pairs = [(n, n) for n in value] if all(isinstance(n, str) for n in value) else None
    elif isinstance(value, Mapping):
        pairs = list(value.items()) if all(isinstance(v, str) for v in value.values()) else None
    else:
        pairs = None
    if not pairs:
        raise ConfigError(
            f"{where}: 'columns' must be a non-empty list of column names or an object mapping source to target columns"
        )
    checked = tuple(
        (validate_identifier(s, "source column", engine), validate_identifier(t, "target column")) for s, t in pairs
    )
    for side, names in (("source", [s for s, _ in checked]), ("target", [t for _, t in checked])):
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}: 'columns' names a {side} column twice")
    return checked


def _positive_int(value: Any, where: str, key: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ConfigError(f"{where}: '{key}' must be an integer between 1 and {maximum}, got {value!r}")
    return value


def _parse_deletes(value: Any, where: str, key_width: int) -> DeleteSpec:
    if isinstance(value, bool):
        value = {"enabled": value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: 'deletes' must be true, false or an object")
    unknown = sorted(set(value) - _DELETE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: 'deletes' has unknown key(s) {', '.join(unknown)}")
    enabled = value.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}: deletes 'enabled' must be true or false")
    limit = MAX_DELETE_PARAMETERS // key_width
    chunk_size = _positive_int(
        value.get("chunk_size", min(DEFAULT_DELETE_CHUNK_SIZE, limit)), where, "deletes.chunk_size", limit
    )
    minutes = value.get("interval_minutes", 0)
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or minutes < 0:
        raise ConfigError(f"{where}: deletes 'interval_minutes' must be a number >= 0")
    return DeleteSpec(enabled=enabled, chunk_size=chunk_size, interval=timedelta(minutes=minutes))


def parse_initial_value(value: Any, cursor_type: str, where: str) -> Any:
    """`initial_value` in the cursor's type: an integer for rowversion, ISO 8601 for timestamps."""
    if value is None:
        return None
    if cursor_type == "rowversion":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ConfigError(f"{where}: 'initial_value' of a rowversion cursor must be an integer")
        try:
            # SQL Server shows rowversions as 0x-prefixed hex; accept that form as well.
            return int(value, 16) if isinstance(value, str) and value.lower().startswith("0x") else int(value)
        except ValueError:
            raise ConfigError(f"{where}: 'initial_value' {value!r} is not an integer or 0x hex") from None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: 'initial_value' of a timestamp cursor must be an ISO 8601 string")
    try:
        return datetime.fromisoformat(value) if ("T" in value or " " in value) else date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{where}: 'initial_value' {value!r} is not an ISO 8601 date or timestamp") from None


def _refuse_duplicates(specs: list[TableSpec]) -> None:
    for attribute, label in (("name", "name"), ("target", "target table")):
        seen: set[str] = set()
        for spec in specs:
            value = str(getattr(spec, attribute))
            if value in seen:
                raise ConfigError(f"SYNC_TABLES: two tables share the {label} {value!r}; give each a distinct 'name'")
            seen.add(value)


@dataclass(frozen=True)
class Settings:
    tables: list[TableSpec]
    source: DatabaseSettings
    target: DatabaseSettings
    state_schema: str
    secret_ttl_seconds: int = 300

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        source = DatabaseSettings.from_env("SOURCE_DB", environ=environ)
        target = DatabaseSettings.from_env("DB", engine="postgresql", environ=environ)
        tables = parse_tables(env_json("SYNC_TABLES", environ=environ), source.engine)
        return cls(
            tables=tables,
            source=source,
            target=target,
            state_schema=env_identifier("STATE_SCHEMA", "pipeline_state", environ=environ),
            secret_ttl_seconds=env_int("SECRET_TTL_SECONDS", 300, minimum=0, environ=environ),
        )
