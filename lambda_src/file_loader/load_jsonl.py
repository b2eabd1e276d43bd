"""JSON lines into PostgreSQL, with PostgreSQL converting the values.

Lines are framed and parsed by Python (one `json.loads` per line, which also names unknown keys),
staged raw in a temporary table, and inserted with `json_populate_record`, so PostgreSQL converts
every value as it would a column's input; a failing range of lines is split in half until the bad
lines stand alone.

A record must carry something to load: one with none of the table's columns (`{}`) is rejected
with its line, never loaded as a row of NULLs or defaults, and an upsert record must carry every
key column, non-null (a NULL key matches no row, so it would insert a new row each time).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from psycopg2 import sql

from file_loader.formats import Record, jsonl_records, text_lines
from file_loader.reader import ObjectReader
from file_loader.rejects import RejectSpool, Stats, reject
from file_loader.routes import Route
from file_loader.target import (
    ColumnsError,
    Destination,
    abandon,
    destination,
    finish_upsert,
    row_error_reason,
    upsert_keys,
)
from pipeline_common.catalog import Column
from pipeline_common.identifiers import QualifiedName
from pipeline_common.pgload import CopyFormat, copy_in, is_row_error

_STAGING = "file_loader_jsonl"
# Raw JSON lines go through COPY's CSV format with control characters as quote and delimiter:
# strict JSON cannot contain them unescaped, so the text arrives byte for byte.
_JSONL_COPY = CopyFormat(format="csv", delimiter="\x02", quote="\x01", encoding="UTF8")


def load_jsonl(
    cur: Any, reader: ObjectReader, route: Route, target: QualifiedName, columns: list[Column], spool: RejectSpool
) -> Stats:
    stats = Stats()
    loadable = {c.name for c in columns if not c.generated}
    keys_seen: set[str] = set()
    keys = upsert_keys(cur, route, target) if route.mode == "upsert" else []
    staging = sql.Identifier(_STAGING)
    cur.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(staging))
    cur.execute(sql.SQL("CREATE TEMPORARY TABLE {} (line bigint, doc text) ON COMMIT DROP").format(staging))

    def staged_rows(records: Iterable[Record]) -> Iterator[str]:
        for record in records:
            text = record.raw.strip()
            if not text:
                continue  # blank lines carry no row
            stats.lines += 1
            if record.undecodable:
                reject(stats, spool, record.line, record.raw, f"invalid byte sequence for encoding {route.encoding}")
                continue
            try:
                document = json.loads(text)
            except ValueError as exc:
                reject(stats, spool, record.line, record.raw, f"invalid JSON: {exc}")
                continue
            if not isinstance(document, dict):
                reject(stats, spool, record.line, record.raw, f"expected a JSON object, got {type(document).__name__}")
                continue
            reason = _refusal(document, loadable, keys, target)
            if reason:
                reject(stats, spool, record.line, record.raw, reason)
                continue
            keys_seen.update(document)
            yield f"{record.line}\x02{text}\n"

    records = jsonl_records(text_lines(reader.chunks(), route.python_codec))
    copy_in(cur, staging, ["line", "doc"], staged_rows(records), _JSONL_COPY)
    if not keys_seen:
        return stats
    mapped = [c.name for c in columns if c.name in keys_seen]
    missing = [c.name for c in columns if c.required and c.name not in keys_seen]
    if missing:
        raise ColumnsError(f"required columns of {target} missing from every line: {', '.join(missing)}")
    dest, keys = destination(cur, route, target, columns, mapped)
    inserter = _JsonlInserter(cur, staging, dest, target, mapped, stats, spool)
    cur.execute(sql.SQL("SELECT min(line), max(line) FROM {}").format(staging))
    low, high = cur.fetchone()
    inserter.insert(low, high)
    finish_upsert(cur, reader.deadline, route, dest, target, mapped, keys, stats)
    return stats


def _refusal(document: dict[str, Any], loadable: set[str], keys: list[str], target: QualifiedName) -> str | None:
    """Why a parsed line cannot be a row of `target`, or None when it can."""
    unknown = document.keys() - loadable
    if unknown:
        return f"keys not in table {target}: {', '.join(sorted(unknown))}"
    if not document:
        return f"no column of {target} in the record"
    missing = [k for k in keys if document.get(k) is None]
    if missing:
        return f"upsert key column(s) missing or null: {', '.join(missing)}"
    return None


class _JsonlInserter:
    """INSERT staged lines [low, high]; split failing ranges in half until bad lines stand alone."""

    def __init__(
        self,
        cur: Any,
        staging: sql.Identifier,
        dest: Destination,
        target: QualifiedName,
        columns: list[str],
        stats: Stats,
        spool: RejectSpool,
    ) -> None:
        self.cur = cur
        self.staging = staging
        self.stats = stats
        self.spool = spool
        self.indexed = False
        dest_sql = dest.pg() if isinstance(dest, QualifiedName) else dest
        column_list = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        values = sql.SQL(", ").join(sql.SQL("r.{}").format(sql.Identifier(c)) for c in columns)
        self.statement = sql.SQL(
            "INSERT INTO {dest} ({columns}) SELECT {values} FROM {staging} s, "
            "json_populate_record(NULL::{target}, s.doc::json) r WHERE s.line BETWEEN %s AND %s"
        ).format(dest=dest_sql, columns=column_list, values=values, staging=staging, target=target.pg())

    def insert(self, low: int, high: int) -> None:
        self.cur.execute("SAVEPOINT file_loader_batch")
        try:
            self.cur.execute(self.statement, (low, high))
        except Exception as exc:
            if not is_row_error(exc):
                raise
            abandon(self.cur, "file_loader_batch")
            if low == high:
                self.cur.execute(sql.SQL("SELECT doc FROM {} WHERE line = %s").format(self.staging), (low,))
                row = self.cur.fetchone()
                reject(self.stats, self.spool, low, row[0] if row else "", row_error_reason(exc))
                return
            if not self.indexed:
                # Splitting scans line ranges repeatedly; an index makes each probe cheap.
                self.cur.execute(sql.SQL("CREATE INDEX ON {} (line)").format(self.staging))
                self.cur.execute(sql.SQL("ANALYZE {}").format(self.staging))
                self.indexed = True
            middle = (low + high) // 2
            self.insert(low, middle)
            self.insert(middle + 1, high)
            return
        inserted = int(self.cur.rowcount)
        self.cur.execute("RELEASE SAVEPOINT file_loader_batch")
        self.stats.loaded += inserted
