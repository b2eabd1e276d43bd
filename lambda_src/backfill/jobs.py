"""Backfill jobs as data: the typed, validated job definitions of `BACKFILL_JOBS`.

Everything that can be checked without a database is checked here, before a connection opens, and
a mistake is refused with the job and the field named (`BACKFILL_JOBS[0] (order_archive).chunk:
...`). The Terraform module checks the same rules at plan time, and the tests feed its planned
value to `parse_jobs`. What needs the database (the tables, the unique keys, the indexes) is
checked by `backfill.catalog` when a run or a dry run starts, still before any row moves.

A job (see docs/backfill.md):

    {"name": "order_archive",
     "table": "orders", "key": ["id"],
     "statements": ["INSERT IGNORE INTO order_archive (...) SELECT ... FROM orders o
                     WHERE o.id > :lo AND o.id <= :hi AND o.status IN (...)", ...],
     "idempotence": "insert_ignore",
     "chunk": {"initial_rows": 1000, "min_rows": 100, "max_rows": 50000, "target_seconds": 2},
     "max_rows_per_second": 5000,
     "pressure": {"max_replica_lag_seconds": 30, "max_running_threads": 0, "max_transaction_seconds": 0,
                  "pause_seconds": 10, "max_pause_seconds": 120},
     "verify": [{"source": "SELECT COUNT(*) ...", "target": "SELECT COUNT(*) ..."}],
     "start_after": 0}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from backfill.idempotence import RULES, StatementShape, check_select, check_statement
from backfill.sqltext import BoundSql, SqlTextError, bind
from pipeline_common.config import ConfigError
from pipeline_common.identifiers import IdentifierError, quote, validate_identifier

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
MAX_KEY_COLUMNS = 4
MAX_STATEMENTS = 10
MAX_VERIFY = 5
MAX_ROWS = 1_000_000

_JOB_KEYS = {
    "name",
    "table",
    "key",
    "statements",
    "idempotence",
    "chunk",
    "max_rows_per_second",
    "pressure",
    "verify",
    "start_after",
}
_CHUNK_KEYS = {"initial_rows", "min_rows", "max_rows", "target_seconds"}
_PRESSURE_KEYS = {
    "max_replica_lag_seconds",
    "max_running_threads",
    "max_transaction_seconds",
    "pause_seconds",
    "max_pause_seconds",
}
_VERIFY_KEYS = {"source", "target"}


@dataclass(frozen=True)
class TableName:
    schema: str | None  # None: the connection's database (MySQL) or search_path (PostgreSQL)
    name: str

    def sql(self, engine: str) -> str:
        parts = [self.name] if self.schema is None else [self.schema, self.name]
        return ".".join(quote(part, engine) for part in parts)

    def __str__(self) -> str:
        return self.name if self.schema is None else f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class ChunkSizing:
    initial_rows: int = 1000
    min_rows: int = 100
    max_rows: int = 50_000
    target_seconds: float = 2.0


@dataclass(frozen=True)
class PressureLimits:
    """Thresholds above which a run pauses; 0 turns a check off."""

    max_replica_lag_seconds: float = 30.0
    max_running_threads: int = 0
    max_transaction_seconds: float = 0.0
    pause_seconds: float = 10.0
    max_pause_seconds: float = 120.0


@dataclass(frozen=True)
class Statement:
    sql: str  # as configured
    bound: BoundSql  # :lo / :hi as placeholders
    shape: StatementShape  # kind, table written, columns inserted


@dataclass(frozen=True)
class VerifyCheck:
    source: BoundSql  # one row: what the job should have written for the range
    target: BoundSql  # one row: what the targets hold for the range


@dataclass(frozen=True)
class Job:
    name: str
    table: TableName
    key: tuple[str, ...]
    statements: tuple[Statement, ...]
    idempotence: str = "insert_ignore"
    chunk: ChunkSizing = ChunkSizing()
    max_rows_per_second: float | None = None
    pressure: PressureLimits = PressureLimits()
    verify: tuple[VerifyCheck, ...] = ()
    start_after: tuple[Any, ...] | None = None


def parse_jobs(raw: Any, engine: str) -> list[Job]:
    """The decoded `BACKFILL_JOBS` JSON for a database of `engine` (`mysql` or `postgresql`)."""
    if engine not in ("mysql", "postgresql"):
        raise ConfigError(f"backfill runs on mysql or postgresql, not {engine!r}")
    if not isinstance(raw, list) or not raw:
        raise ConfigError("BACKFILL_JOBS must be a non-empty JSON list of job objects")
    jobs = [_parse_job(item, index, engine) for index, item in enumerate(raw)]
    seen: set[str] = set()
    for job in jobs:
        if job.name in seen:
            raise ConfigError(f"BACKFILL_JOBS: two jobs are named {job.name!r}; each needs its own checkpoint")
        seen.add(job.name)
    return jobs


def _parse_job(item: Any, index: int, engine: str) -> Job:
    where = f"BACKFILL_JOBS[{index}]"
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where} must be a JSON object, got {type(item).__name__}")
    name = item.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"{where}.name must be 1-63 lower-case letters, digits, '_' or '-' starting with a letter or digit, "
            f"got {name!r}"
        )
    where = f"{where} ({name})"
    _refuse_unknown(item, _JOB_KEYS, where)
    try:
        table = _parse_table(item.get("table"), f"{where}.table", engine)
        key = _parse_key(item.get("key"), f"{where}.key", engine)
    except IdentifierError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    rule = item.get("idempotence", "insert_ignore")
    if rule not in RULES:
        raise ConfigError(f"{where}.idempotence must be one of {', '.join(RULES)}, got {rule!r}")
    statements = _parse_statements(item.get("statements"), f"{where}.statements", engine, len(key), rule)
    chunk = _parse_chunk(item.get("chunk", {}), f"{where}.chunk")
    rate = item.get("max_rows_per_second")
    if rate is not None and (not _is_number(rate) or rate <= 0):
        raise ConfigError(f"{where}.max_rows_per_second must be a number above 0 (or null for no cap), got {rate!r}")
    return Job(
        name=name,
        table=table,
        key=key,
        statements=statements,
        idempotence=rule,
        chunk=chunk,
        max_rows_per_second=float(rate) if rate is not None else None,
        pressure=_parse_pressure(item.get("pressure", {}), f"{where}.pressure"),
        verify=_parse_verify(item.get("verify", []), f"{where}.verify", engine, len(key)),
        start_after=_parse_start_after(item.get("start_after"), f"{where}.start_after", len(key)),
    )


def _refuse_unknown(item: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise ConfigError(f"{where} has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _parse_table(value: Any, where: str, engine: str) -> TableName:
    if not isinstance(value, str) or not value:
        raise ConfigError(f'{where} must be the driving table, "table" or "schema.table"')
    parts = value.split(".")
    if len(parts) > 2:
        raise ConfigError(f'{where} must be "table" or "schema.table", got {value!r}')
    checked = [validate_identifier(part, "table", engine) for part in parts]
    return TableName(checked[0], checked[1]) if len(checked) == 2 else TableName(None, checked[0])


def _parse_key(value: Any, where: str, engine: str) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{where} must be a column name or a list of 1-{MAX_KEY_COLUMNS} column names")
    if len(names) > MAX_KEY_COLUMNS or len(set(names)) != len(names):
        raise ConfigError(f"{where} must list 1-{MAX_KEY_COLUMNS} distinct columns")
    return tuple(validate_identifier(n, "key column", engine) for n in names)


def _parse_statements(value: Any, where: str, engine: str, width: int, rule: str) -> tuple[Statement, ...]:
    if not isinstance(value, list) or not value or len(value) > MAX_STATEMENTS:
        raise ConfigError(f"{where} must be a list of 1-{MAX_STATEMENTS} SQL statements")
    statements = []
    for index, sql in enumerate(value):
        here = f"{where}[{index}]"
        if not isinstance(sql, str) or not sql.strip():
            raise ConfigError(f"{here} must be a non-empty SQL statement")
        try:
            shape = check_statement(sql, engine, rule)
            bound = bind(sql, engine, width)
        except SqlTextError as exc:
            raise ConfigError(f"{here}: {exc}") from None
        statements.append(Statement(sql, bound, shape))
    return tuple(statements)


def _parse_chunk(value: Any, where: str) -> ChunkSizing:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be an object")
    _refuse_unknown(value, _CHUNK_KEYS, where)
    defaults = ChunkSizing()
    sizes = {}
    for key in ("initial_rows", "min_rows", "max_rows"):
        number = value.get(key, getattr(defaults, key))
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= MAX_ROWS:
            raise ConfigError(f"{where}.{key} must be a whole number of rows between 1 and {MAX_ROWS}, got {number!r}")
        sizes[key] = number
    if not sizes["min_rows"] <= sizes["initial_rows"] <= sizes["max_rows"]:
        raise ConfigError(
            f"{where}: min_rows <= initial_rows <= max_rows does not hold "
            f"({sizes['min_rows']}, {sizes['initial_rows']}, {sizes['max_rows']})"
        )
    target = value.get("target_seconds", defaults.target_seconds)
    if not _is_number(target) or not 0.05 <= target <= 60:
        raise ConfigError(f"{where}.target_seconds must be a number of seconds between 0.05 and 60, got {target!r}")
    return ChunkSizing(target_seconds=float(target), **sizes)


def _parse_pressure(value: Any, where: str) -> PressureLimits:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be an object")
    _refuse_unknown(value, _PRESSURE_KEYS, where)
    defaults = PressureLimits()
    numbers: dict[str, Any] = {}
    for key in sorted(_PRESSURE_KEYS):
        number = value.get(key, getattr(defaults, key))
        if not _is_number(number) or number < 0:
            raise ConfigError(f"{where}.{key} must be a number >= 0 (0 turns the check off), got {number!r}")
        numbers[key] = number
    if isinstance(numbers["max_running_threads"], float) and not numbers["max_running_threads"].is_integer():
        raise ConfigError(f"{where}.max_running_threads must be a whole number")
    if not 0 < numbers["pause_seconds"] <= numbers["max_pause_seconds"] <= 900:
        raise ConfigError(f"{where}: 0 < pause_seconds <= max_pause_seconds <= 900 does not hold")
    numbers["max_running_threads"] = int(numbers["max_running_threads"])
    return PressureLimits(**numbers)


def _parse_verify(value: Any, where: str, engine: str, width: int) -> tuple[VerifyCheck, ...]:
    if not isinstance(value, list) or len(value) > MAX_VERIFY:
        raise ConfigError(f"{where} must be a list of at most {MAX_VERIFY} {{source, target}} query pairs")
    checks = []
    for index, pair in enumerate(value):
        here = f"{where}[{index}]"
        if not isinstance(pair, Mapping):
            raise ConfigError(f"{here} must be an object with 'source' and 'target' queries")
        _refuse_unknown(pair, _VERIFY_KEYS, here)
        bound = []
        for side in ("source", "target"):
            sql = pair.get(side)
            if not isinstance(sql, str) or not sql.strip():
                raise ConfigError(f"{here}.{side} must be a SELECT returning one row for the range (:lo, :hi]")
            try:
                check_select(sql, engine)
                bound.append(bind(sql, engine, width))
            except SqlTextError as exc:
                raise ConfigError(f"{here}.{side}: {exc}") from None
        checks.append(VerifyCheck(*bound))
    return tuple(checks)


def _parse_start_after(value: Any, where: str, width: int) -> tuple[Any, ...] | None:
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    if len(values) != width or not all(isinstance(v, int | float | str) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"{where} must be {width} number(s) or string(s), one per key column, got {value!r}")
    return tuple(values)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
