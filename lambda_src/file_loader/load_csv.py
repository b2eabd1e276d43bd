"""CSV into PostgreSQL: a fast path that hands PostgreSQL the bytes, a careful one that names bad rows.

The fast path sends the bytes after the header to PostgreSQL untouched (PostgreSQL parses,
converts the encoding and checks every value), so a clean file costs the loader almost nothing
per row. When PostgreSQL refuses a row, the transaction rolls back to the loader's data savepoint
(`target.DATA_SAVEPOINT`) and the object is read again on the careful path: Python frames each
record with the physical line it starts on (quoted fields may hold newlines, and PostgreSQL's own
line counter is only a hint) and sends records in batches; a failing batch is split at the record
PostgreSQL names (or in half) until each bad record stands alone, so good rows load and each bad
row gets its exact line and PostgreSQL's reason.
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Iterable, Iterator
from typing import Any

from file_loader.formats import Record, csv_records, split_csv_header, text_lines, without_line_ending
from file_loader.reader import ObjectReader
from file_loader.rejects import RejectSpool, Stats, reject
from file_loader.routes import Route
from file_loader.target import (
    DATA_SAVEPOINT,
    Destination,
    abandon,
    destination,
    finish_upsert,
    map_columns,
    row_error_reason,
)
from pipeline_common.catalog import Column
from pipeline_common.errors import PermanentError
from pipeline_common.identifiers import QualifiedName
from pipeline_common.pgload import CopyFormat, copy_error_line, copy_in, is_row_error

logger = logging.getLogger(__name__)

BATCH_RECORDS = 5000
BATCH_BYTES = 2 * 1024 * 1024


class NotForFastPath(PermanentError):
    """The raw CSV holds something PostgreSQL's COPY would read differently from this loader's
    rules: the fast path gives way to the careful one, which frames every record itself."""


class EndOfDataLine(NotForFastPath):
    """A line that is just `\\.`, which PostgreSQL up to 17 takes for the end of the data even in
    CSV mode, silently dropping every row after it; the careful path quotes such a line."""


class BlankLine(NotForFastPath):
    """An empty line, which COPY reads as a row (of NULLs, or missing columns) while the loader
    skips it as JSON lines does; the careful path leaves it out."""


# A `\.` line, started by the previous line's ending (or the start of the data) and ended by a line
# ending or the end of what has been seen so far; some matches are not markers (inside a quoted
# field, `\.x` cut at a chunk end), which only costs the careful path.
_END_OF_DATA = re.compile(rb"[\r\n]\\\.(?:[\r\n]|\Z)")
# Two line endings in a row (LF, CRLF or CR each) make a blank line: LF then LF or CR, or CR then
# CR. A match inside a quoted field is data, which likewise only costs the careful path.
_BLANK_LINE = (b"\n\n", b"\n\r", b"\r\r")


def fast_path_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Pass the data chunks through, raising `NotForFastPath` before one that completes a `\\.`
    line or a blank line. Substring searches (memchr-fast) first, the regular expression only
    when a backslash is there: the common file costs a few passes at memory speed per chunk."""
    tail = b"\n"  # the data after the header starts a line
    for chunk in chunks:
        if not chunk:
            continue
        window = tail + chunk
        if b"\\" in window and _END_OF_DATA.search(window):
            raise EndOfDataLine("a line holding only \\. would end the COPY early")
        if b"\n\n" in window or (b"\r" in window and any(pair in window for pair in _BLANK_LINE)):
            raise BlankLine("a blank line would load as a row")
        yield chunk
        # Two bytes are enough to see a marker or a blank line cut at any point (`\n\\` + `.\n`).
        tail = window[-2:]


def csv_copy_format(route: Route, encoding: str | None) -> CopyFormat:
    return CopyFormat(
        format="csv",
        delimiter=route.delimiter,
        quote=route.quote,
        escape=route.escape,
        null=route.null,
        encoding=encoding,
    )


def load_csv(
    cur: Any, reader: ObjectReader, route: Route, target: QualifiedName, columns: list[Column], spool: RejectSpool
) -> Stats:
    header, rest = split_csv_header(
        reader.chunks(), delimiter=route.delimiter, quote=route.quote, codec=route.python_codec
    )
    if header is None:
        return Stats()
    mapped = map_columns(header.columns, columns, target)
    dest, keys = destination(cur, route, target, columns, mapped)
    if route.mode == "upsert":
        reader.reserve_after_copy_ms = 5_000
    try:
        copied = copy_in(cur, dest, mapped, fast_path_chunks(rest), csv_copy_format(route, route.encoding))
        stats = Stats(lines=copied, loaded=copied, columns=mapped)
    except Exception as exc:
        if not (is_row_error(exc) or isinstance(exc, NotForFastPath)):
            raise
        logger.info("fast path refused; reading the object again record by record", extra={"error": str(exc)})
        # Back to the loader's data savepoint, taken just before this load: one savepoint less
        # per object on the path nearly every object takes. It drops the staging table too.
        cur.execute(f"ROLLBACK TO SAVEPOINT {DATA_SAVEPOINT}")
        dest, keys = destination(cur, route, target, columns, mapped)
        stats = _load_records(cur, reader, route, dest, mapped, spool)
    finish_upsert(cur, reader.deadline, route, dest, target, mapped, keys, stats)
    return stats


def _load_records(
    cur: Any, reader: ObjectReader, route: Route, dest: Destination, mapped: list[str], spool: RejectSpool
) -> Stats:
    stats = Stats(columns=mapped)
    records = csv_records(text_lines(reader.chunks(), route.python_codec), delimiter=route.delimiter, quote=route.quote)
    next(records, None)  # the header, already read by the fast path
    loader = _BatchLoader(cur, dest, mapped, csv_copy_format(route, "UTF8"), stats, spool, route.quote)
    batch: list[Record] = []
    size = 0
    for record in records:
        stats.lines += 1
        if record.undecodable:
            reject(stats, spool, record.line, record.raw, f"invalid byte sequence for encoding {route.encoding}")
            continue
        batch.append(record)
        size += len(record.raw)
        if len(batch) >= BATCH_RECORDS or size >= BATCH_BYTES:
            loader.load(batch)
            batch, size = [], 0
    if batch:
        loader.load(batch)
    return stats


class _BatchLoader:
    """COPY a batch of framed records; isolate the bad ones by splitting failed batches."""

    def __init__(
        self,
        cur: Any,
        dest: Destination,
        columns: list[str],
        copy_format: CopyFormat,
        stats: Stats,
        spool: RejectSpool,
        quote: str,
    ) -> None:
        self.cur = cur
        self.dest = dest
        self.columns = columns
        self.copy_format = copy_format
        self.stats = stats
        self.spool = spool
        self.quote = quote

    def load(self, records: list[Record]) -> None:
        # A stack, not recursion: every bad row adds a split, and a batch may hold thousands.
        pending = [records]
        while pending:
            part = pending.pop()
            if part:
                self._load_part(part, pending)

    def _load_part(self, records: list[Record], pending: list[list[Record]]) -> None:
        self.cur.execute("SAVEPOINT file_loader_batch")
        try:
            copied = copy_in(self.cur, self.dest, self.columns, _as_lines(records, self.quote), self.copy_format)
        except Exception as exc:
            if not is_row_error(exc):
                raise
            abandon(self.cur, "file_loader_batch")
            if len(records) == 1:
                reject(self.stats, self.spool, records[0].line, records[0].raw, row_error_reason(exc))
                return
            index = _hinted_index(records, copy_error_line(exc))
            # Pushed last part first, so the parts load in file order and rejects keep it too.
            pending += [records[index + 1 :], [records[index]], records[:index]]
            return
        self.cur.execute("RELEASE SAVEPOINT file_loader_batch")
        self.stats.loaded += copied


def _as_lines(records: list[Record], quote: str) -> Iterator[bytes]:
    """Records as COPY input, each ended by LF whatever ended it in the file: one COPY reads one
    kind of line ending, and a file may mix them."""
    for record in records:
        text = without_line_ending(record.raw)
        if text == "\\.":
            # Quoted, the same one-field record is data rather than PostgreSQL's end-of-data marker.
            text = f"{quote}\\.{quote}"
        yield (text + "\n").encode("utf-8")


def _hinted_index(records: list[Record], pg_line: int | None) -> int:
    """The record PostgreSQL's line number most likely points at (the record ending on or after
    that line); the middle when it gave none. A wrong guess costs an extra COPY, never a wrong reject."""
    if pg_line is None:
        return len(records) // 2
    ends = []
    total = 0
    for record in records:
        total += max(1, record.raw.count("\n"))
        ends.append(total)
    return min(bisect.bisect_left(ends, pg_line), len(records) - 1)
