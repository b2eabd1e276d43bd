"""Bulk loading into PostgreSQL with COPY: the core shared by the file loader and table sync.

Everything here works on a psycopg2 cursor inside the caller's transaction: nothing commits, so
the caller writes its ledger or watermark in the same transaction as the data.

API (stable; the file loader and table sync build on it; what the target looks like is read by
`pipeline_common.catalog`, Python values are encoded as COPY text by `pipeline_common.copytext`):

- `CopyFormat(...)`: COPY options (`format` csv | text, delimiter, quote, escape, null, header,
  encoding), rendered with `sql.Literal`, never formatted into SQL text.
- `copy_in(cur, table, columns, source, copy_format, chunk_size) -> int`: `COPY table (columns)
  FROM STDIN` from a readable file-like object or an iterable of bytes/str chunks; returns the
  rows copied. `table` is a `QualifiedName` or an already composed `sql.Composable` (a temp
  table).
- `create_staging(cur, target, columns, name) -> sql.Identifier`: a temporary table (dropped at
  commit) with exactly `columns`, typed like the target's columns and NOT NULL where the target is,
  so type and NULL errors surface while copying, with a line number.
- `upsert(cur, staging, target, columns, key_columns, *, update_columns, version_column,
  skip_unchanged, compare_as_text) -> int`: `INSERT INTO target SELECT FROM staging ON CONFLICT (keys) DO UPDATE`;
  returns the rows inserted or updated. With `version_column` an incoming row only replaces a
  stored row whose version is NULL or not newer (`stored.v <= incoming.v`), so an older version
  never overwrites a newer one. A key that repeats in the staging table would make PostgreSQL
  refuse the statement ("cannot affect row a second time"); the fast path tries the plain
  statement under a savepoint and only on that error retries with the last row per key (highest
  version, then latest copied) - clean input pays nothing for the de-duplication.
- `upsert_sql(...) -> sql.Composable`: the statement `upsert` runs, for tools that run it elsewhere
  (the table sync benchmark's like-for-like psql baseline).
- `IterStream`: a file-like adapter (`read(n)`) over an iterator of bytes chunks, for
  `copy_expert`.
- `copy_error_line(exc) -> int | None`: the 1-based line of the COPY input an error refers to.
- `is_row_error(exc) -> bool`: a data exception or integrity violation (the row's fault).
- `copy_rows(cur, table, columns, rows) -> int`: COPY Python rows (DB-API tuples from another
  database) in text format.
- `copy_encoded(cur, table, columns, data) -> int`: COPY rows already encoded by
  `copytext.copy_text_bytes`, so rows can be encoded on one thread and copied on another, and
  copied again (a retry into a staging table) without encoding twice.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from psycopg2 import errors, sql

from pipeline_common.copytext import copy_text_batch
from pipeline_common.identifiers import QualifiedName, quotable_identifier, validate_identifier

DEFAULT_CHUNK_SIZE = 256 * 1024


@dataclass(frozen=True)
class CopyFormat:
    """Options of `COPY ... FROM STDIN WITH (...)`; None leaves PostgreSQL's default."""

    format: str = "csv"
    delimiter: str | None = None
    quote: str | None = None
    escape: str | None = None
    null: str | None = None
    header: bool = False
    encoding: str | None = None

    def __post_init__(self) -> None:
        if self.format not in ("csv", "text"):
            raise ValueError(f"COPY format must be csv or text, got {self.format!r}")
        if self.format == "text" and (self.quote is not None or self.escape is not None):
            raise ValueError("quote and escape apply to the csv COPY format only")

    def options(self) -> sql.Composable:
        parts: list[sql.Composable] = [sql.SQL("FORMAT {}").format(sql.SQL(self.format))]
        for name, value in (
            ("DELIMITER", self.delimiter),
            ("QUOTE", self.quote),
            ("ESCAPE", self.escape),
            ("NULL", self.null),
            ("ENCODING", self.encoding),
        ):
            if value is not None:
                parts.append(sql.SQL(name + " {}").format(sql.Literal(value)))
        if self.header:
            parts.append(sql.SQL("HEADER true"))
        return sql.SQL(", ").join(parts)


class IterStream(io.RawIOBase):
    """A readable binary file over an iterator of chunks (bytes or str, encoded as UTF-8).

    `copy_expert` calls `read(size)`; returning whole chunks (up to `size`) avoids re-slicing
    large buffers, so the adapter adds almost no copying.
    """

    def __init__(self, chunks: Iterable[bytes | str]) -> None:
        self._chunks: Iterator[bytes | str] = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(self._encoded(chunk) for chunk in [self._pending, *self._chunks])
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self._pending = self._encoded(chunk)
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    @staticmethod
    def _encoded(chunk: bytes | str) -> bytes:
        return chunk.encode("utf-8") if isinstance(chunk, str) else chunk


def _table_sql(table: QualifiedName | sql.Composable) -> sql.Composable:
    return table.pg() if isinstance(table, QualifiedName) else table


def _column(name: str) -> sql.Identifier:
    """A column as psycopg2 quotes it: any name PostgreSQL accepts (`"prénom"`, `"order id"`)."""
    return sql.Identifier(quotable_identifier(name, "column"))


def _column_list(columns: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(_column(c) for c in columns)


def copy_in(
    cur: Any,
    table: QualifiedName | sql.Composable,
    columns: Sequence[str],
    source: IO[bytes] | IO[str] | Iterable[bytes | str],
    copy_format: CopyFormat | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> int:
    """COPY `source` into `table (columns)`; returns the number of rows copied.

    An exception raised while reading `source` aborts the COPY and propagates; the transaction is
    then in error and the caller rolls back (to a savepoint or entirely).
    """
    copy_format = copy_format or CopyFormat()
    stream = _ReadGuard(source if hasattr(source, "read") else IterStream(source))  # type: ignore[arg-type]
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH ({})").format(
        _table_sql(table), _column_list(columns), copy_format.options()
    )
    try:
        cur.copy_expert(statement, stream, size=chunk_size)
    except Exception:
        if stream.error is not None:
            # psycopg2 reports a failing read() as QueryCanceled; callers need the real cause
            # (a deadline, a broken download, a corrupt gzip) to decide what happens next.
            raise stream.error from None
        raise
    return int(cur.rowcount)


class _ReadGuard:
    """Remembers the exception a source raised inside psycopg2's COPY loop."""

    def __init__(self, source: Any) -> None:
        self._source = source
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> Any:
        try:
            return self._source.read(size)
        except Exception as exc:
            self.error = exc
            raise


def create_staging(
    cur: Any,
    target: QualifiedName,
    columns: Sequence[str],
    name: str = "pgload_staging",
    not_null: Sequence[str] = (),
) -> sql.Identifier:
    """A temporary table with `columns` typed as in `target`, dropped at commit.

    Only the named columns exist, so defaults of the target apply to the others on insert and an
    update touches only what the input carries. Columns listed in `not_null` (typically those
    NOT NULL in the target) refuse NULLs during the COPY already, where the error has a line.
    """
    staging = sql.Identifier(validate_identifier(name, "table"))
    cur.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(staging))
    cur.execute(
        sql.SQL("CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            staging, _column_list(columns), target.pg()
        )
    )
    for column in not_null:
        cur.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET NOT NULL").format(staging, _column(column)))
    return staging


def upsert(
    cur: Any,
    staging: sql.Composable,
    target: QualifiedName,
    columns: Sequence[str],
    key_columns: Sequence[str],
    *,
    update_columns: Sequence[str] | None = None,
    version_column: str | None = None,
    skip_unchanged: bool = False,
    compare_as_text: Collection[str] = (),
) -> int:
    """Insert the staging rows into `target`, updating rows whose key exists; returns rows written.

    `update_columns` defaults to every non-key column. `skip_unchanged` leaves rows whose values
    are all equal untouched (no dead tuple, no WAL), which pays off when most rows repeat; the
    columns in `compare_as_text` (see `catalog.TableShape.without_equality`) are compared by their text form.
    """
    if not key_columns:
        raise ValueError(f"upsert into {target} needs key columns")
    missing = [k for k in key_columns if k not in columns]
    if missing:
        raise ValueError(f"upsert into {target}: key columns {missing} are not among the loaded columns")
    if version_column is not None and version_column not in columns:
        raise ValueError(f"upsert into {target}: version column {version_column!r} is not among the loaded columns")
    updates = [c for c in (update_columns if update_columns is not None else columns) if c not in key_columns]
    text = frozenset(compare_as_text)
    cur.execute("SAVEPOINT pgload_upsert")
    try:
        cur.execute(
            upsert_sql(staging, target, columns, key_columns, updates, version_column, skip_unchanged, False, text)
        )
    except errors.CardinalityViolation:
        # The input repeats a key: keep the last row per key and try again.
        cur.execute("ROLLBACK TO SAVEPOINT pgload_upsert")
        cur.execute(
            upsert_sql(staging, target, columns, key_columns, updates, version_column, skip_unchanged, True, text)
        )
    written = int(cur.rowcount)
    cur.execute("RELEASE SAVEPOINT pgload_upsert")
    return written


def upsert_sql(
    staging: sql.Composable,
    target: QualifiedName,
    columns: Sequence[str],
    key_columns: Sequence[str],
    updates: Sequence[str],
    version_column: str | None,
    skip_unchanged: bool,
    dedupe: bool,
    compare_as_text: frozenset[str] = frozenset(),
) -> sql.Composable:
    """The statement `upsert` runs (arguments as there; `dedupe` keeps the last row per key)."""
    cols = _column_list(columns)
    keys = _column_list(key_columns)
    if dedupe:
        # A freshly filled temp table is append-only, so ctid order is copy order.
        order = [sql.SQL("{} DESC NULLS LAST").format(sql.Identifier(version_column))] if version_column else []
        order.append(sql.SQL("ctid DESC"))
        source = sql.SQL("SELECT DISTINCT ON ({keys}) {cols} FROM {staging} ORDER BY {keys}, {order}").format(
            keys=keys, cols=cols, staging=staging, order=sql.SQL(", ").join(order)
        )
    else:
        source = sql.SQL("SELECT {} FROM {}").format(cols, staging)
    statement = sql.SQL("INSERT INTO {target} AS t ({cols}) {source} ON CONFLICT ({keys})").format(
        target=target.pg(), cols=cols, source=source, keys=keys
    )
    if not updates:
        return statement + sql.SQL(" DO NOTHING")
    assignments = sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=_column(c)) for c in updates)
    statement = statement + sql.SQL(" DO UPDATE SET ") + assignments
    conditions: list[sql.Composable] = []
    if version_column is not None:
        version = sql.Identifier(version_column)
        conditions.append(sql.SQL("(t.{v} IS NULL OR t.{v} <= EXCLUDED.{v})").format(v=version))
    if skip_unchanged:
        # A row comparison needs `=` for every column type; json, xml, point... have none, and
        # their text form is equal exactly when the stored value is (at worst a needless update).
        def side(alias: str) -> sql.Composable:
            return sql.SQL(", ").join(
                sql.SQL("{}.{}{}").format(
                    sql.SQL(alias), sql.Identifier(c), sql.SQL("::text" if c in compare_as_text else "")
                )
                for c in updates
            )

        conditions.append(sql.SQL("({}) IS DISTINCT FROM ({})").format(side("t"), side("EXCLUDED")))
    if conditions:
        statement = statement + sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions)
    return statement


_COPY_LINE = re.compile(r"\bCOPY [^,\n]+, line (\d+)")


def copy_error_line(exc: BaseException) -> int | None:
    """The 1-based line of the COPY input that `exc` (a psycopg2 error) refers to, if it says."""
    diag = getattr(exc, "diag", None)
    context = getattr(diag, "context", None) or ""
    match = _COPY_LINE.search(context) or _COPY_LINE.search(str(exc))
    return int(match.group(1)) if match else None


def is_row_error(exc: BaseException) -> bool:
    """True for errors caused by the data of a row (SQLSTATE class 22 data exception or 23
    integrity violation), as opposed to the connection, permissions or the schema."""
    code = getattr(exc, "pgcode", None) or ""
    return code[:2] in ("22", "23")


def copy_encoded(cur: Any, table: QualifiedName | sql.Composable, columns: Sequence[str], data: bytes) -> int:
    """COPY lines already in COPY's text format (`copy_text_bytes`) into `table`; returns rows copied.

    Splitting encoding from copying lets a caller encode on another thread than the one that
    writes, and retry a failed COPY elsewhere without encoding again.
    """
    return copy_in(cur, table, columns, io.BytesIO(data), CopyFormat(format="text"))


def _text_batches(rows: Iterable[Sequence[Any]], batch_rows: int, width: int | None) -> Iterator[str]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, batch_rows)):
        yield copy_text_batch(batch, width)


def copy_rows(
    cur: Any,
    table: QualifiedName | sql.Composable,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    batch_rows: int = 2_000,
) -> int:
    """COPY rows of Python values (as another database's driver returns them) into `table`.

    Rows may be longer than `columns`; only their first `len(columns)` values are copied. Naive
    datetimes are read in the session's time zone, aware ones keep their offset.
    """
    batches = _text_batches(rows, batch_rows, len(columns))
    return copy_in(cur, table, columns, batches, CopyFormat(format="text"), chunk_size)
