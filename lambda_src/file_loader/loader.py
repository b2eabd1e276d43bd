"""Load one S3 object version into PostgreSQL, exactly once.

`load_object` is the unit of work: it takes the object's advisory lock, checks the ledger, streams
the object into the target with COPY and writes the ledger row, all in one transaction.

CSV has two paths. The fast path sends the bytes after the header to PostgreSQL untouched
(PostgreSQL parses, converts the encoding and checks every value), so a clean file costs the
loader almost nothing per row. When PostgreSQL refuses a row, the transaction rolls back to a
savepoint and the object is read again on the careful path: Python frames each record with the
physical line it starts on (quoted fields may hold newlines, and PostgreSQL's own line counter
is only a hint) and sends records in batches; a failing batch is split at the record PostgreSQL
names (or in half) until each bad record stands alone, so good rows load and each bad row gets
its exact line and PostgreSQL's reason.

JSON lines are framed and parsed by Python (one `json.loads` per line, which also names unknown
keys), staged raw in a temporary table, and inserted with `json_populate_record`, so PostgreSQL
converts the values; a failing range of lines is split in half until the bad lines stand alone.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import logging
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from psycopg2 import errors, sql

from file_loader.formats import (
    FormatError,
    Record,
    csv_records,
    decompressed,
    jsonl_records,
    split_csv_header,
    text_lines,
)
from file_loader.ledger import TERMINAL, Ledger, ObjectId, Outcome
from file_loader.routes import Route, RouteError
from pipeline_common.catalog import Column, TableNotFound, primary_key, table_columns
from pipeline_common.deadline import Deadline, DeadlineExceeded
from pipeline_common.identifiers import QualifiedName
from pipeline_common.pgload import CopyFormat, copy_error_line, copy_in, create_staging, is_row_error, upsert

logger = logging.getLogger(__name__)

S3_CHUNK = 1024 * 1024
BATCH_RECORDS = 5000
BATCH_BYTES = 2 * 1024 * 1024
MAX_RAW_CHARS = 10_000
DATA_SAVEPOINT = "file_loader_data"
# How soon a busy or deferred message should be offered again, instead of after the queue's
# visibility timeout (six function timeouts).
RETRY_SOON_SECONDS = 30


class ObjectBusy(RuntimeError):
    """Another invocation holds this object version's lock; the message should come back later:
    after `retry_after_seconds`, about when the other load should be done."""

    def __init__(self, message: str, retry_after_seconds: float = RETRY_SOON_SECONDS) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ColumnsError(FormatError):
    """The file's columns do not fit the table."""


class UpsertRefused(FormatError):
    """The final INSERT ... ON CONFLICT hit a constraint the staging table cannot check (a foreign
    key, a CHECK): no single row can be named, so the whole object is rejected."""

    def __init__(self, message: str, lines: int) -> None:
        super().__init__(message)
        self.lines = lines


class EndOfDataLine(Exception):
    """The raw CSV holds a line that is just `\\.`, which PostgreSQL up to 17 takes for the end of
    the data even in CSV mode, silently dropping every row after it."""


# A `\.` line, started by the previous line's ending (or the start of the data) and ended by a line
# ending or the end of what has been seen so far; some matches are not markers (inside a quoted
# field, `\.x` cut at a chunk end), which only costs the careful path.
_END_OF_DATA = re.compile(rb"[\r\n]\\\.(?:[\r\n]|\Z)")


def without_end_of_data(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Pass chunks through, raising `EndOfDataLine` before one that completes a `\\.` line."""
    tail = b"\n"  # the data after the header starts a line
    for chunk in chunks:
        if not chunk:
            continue
        window = tail + chunk
        if _END_OF_DATA.search(window):
            raise EndOfDataLine("a line holding only \\. would end the COPY early")
        yield chunk
        # Two bytes are enough to see a marker cut at any point (`\n\\` + `.\n`).
        tail = window[-2:]


@dataclass
class LoadResult:
    status: str  # loaded | rejected | duplicate | superseded
    bucket: str
    key: str
    version: str
    table: str | None = None
    lines: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    error: str | None = None
    error_line: int | None = None


@dataclass
class Throughput:
    """Bytes per second this sandbox has measured, per kind of object (plain or compressed).

    Starts from conservative defaults (a fraction of the benchmark's rate) and follows measured
    loads with an exponential moving average, so the up-front size check gets sharper with use.
    """

    plain_bps: float = 15e6
    compressed_bps: float = 4e6
    weight: float = 0.3

    def estimate_ms(self, size: int, compressed: bool) -> float:
        return size / (self.compressed_bps if compressed else self.plain_bps) * 1000

    def observe(self, size: int, seconds: float, compressed: bool) -> None:
        if size < 4 * 1024 * 1024 or seconds <= 0:
            return  # small objects measure latency, not throughput
        rate = size / seconds
        if compressed:
            self.compressed_bps += self.weight * (rate - self.compressed_bps)
        else:
            self.plain_bps += self.weight * (rate - self.plain_bps)


@dataclass
class Stats:
    lines: int = 0
    loaded: int = 0
    rejected: int = 0
    first_error: tuple[int | None, str] | None = None
    columns: list[str] = field(default_factory=list)


class RejectSpool:
    """Rejected rows, spilled to a temporary file past a few MB so memory stays bounded, then
    copied into the rejects table once the data COPY has finished with the connection."""

    def __init__(self, obj: ObjectId, table: QualifiedName) -> None:
        # Lives until close(), called by the load that owns it.
        self._file = tempfile.SpooledTemporaryFile(max_size=4 * 1024 * 1024, mode="w+b")  # noqa: SIM115
        self._text = io.TextIOWrapper(self._file, encoding="utf-8", newline="", write_through=True)
        self._writer = csv.writer(self._text)
        self._prefix = [obj.bucket, obj.key, obj.version, str(table)]
        self.count = 0

    def add(self, line: int | None, raw: str, reason: str) -> None:
        self._writer.writerow([*self._prefix, "" if line is None else line, printable(raw), reason])
        self.count += 1

    def flush_into(self, cur: Any, ledger: Ledger) -> None:
        if self.count:
            self._text.flush()
            ledger.copy_rejects(cur, self._file)

    def close(self) -> None:
        self._text.close()


def printable(raw: str) -> str:
    """A raw row as storable text: undecodable bytes as \\xNN, NUL (which text columns refuse)
    escaped, and capped in length."""
    text = raw.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
    return text if len(text) <= MAX_RAW_CHARS else text[:MAX_RAW_CHARS] + "...[truncated]"


# --- the unit of work -----------------------------------------------------------------------


def load_object(
    *,
    db: Any,
    s3: Any,
    obj: ObjectId,
    route: Route,
    ledger: Ledger,
    deadline: Deadline,
    throughput: Throughput,
    size: int | None = None,
    etag: str | None = None,
    version_id: str | None = None,
) -> LoadResult:
    """Load `obj` along `route`. Returns the outcome; raises for anything that should bring the
    message back (lost connection, missing table, deadline, another invocation busy with it)."""
    result = LoadResult(status="loaded", bucket=obj.bucket, key=obj.key, version=obj.version)
    try:
        target = route.target(obj.key)
    except RouteError as exc:
        # Refused before any SQL mentions the name; the ledger row is written with parameters only.
        return _reject_permanently(db, ledger, obj, route, result, str(exc))
    result.table = str(target)
    compressed = route.compression == "gzip" or (route.compression == "auto" and obj.key.endswith(".gz"))
    need_ms = 0.0
    if size is not None:
        need_ms = throughput.estimate_ms(size, compressed) * (2.0 if route.mode == "upsert" else 1.0) * 1.25
        try:
            deadline.check(need_ms, f"loading {size} bytes")
        except DeadlineExceeded as exc:
            _record_attempt(db, ledger, obj, Outcome("deferred", route.index, str(target), bytes=size, error=str(exc)))
            raise

    conn = db.get()
    ledger.ensure(conn)
    started = time.monotonic()
    counter = ByteCounter()
    try:
        with conn.cursor() as cur:
            if not ledger.try_lock(cur, obj):
                conn.rollback()
                raise ObjectBusy(
                    f"s3://{obj.bucket}/{obj.key} ({obj.version}) is being loaded by another invocation",
                    # Back too early, it would find the lock again and use up one more receive.
                    retry_after_seconds=max(RETRY_SOON_SECONDS, need_ms / 1000),
                )
            if ledger.status(cur, obj) in TERMINAL:
                conn.rollback()
                result.status = "duplicate"
                return result
            bound_statements(cur, deadline)
            columns = table_columns(cur, target)
            reader = ObjectReader(s3, obj, route, deadline, counter, version_id=version_id, etag=etag)
            cur.execute(f"SAVEPOINT {DATA_SAVEPOINT}")
            spool = RejectSpool(obj, target)
            try:
                outcome = _load(cur, reader, route, target, columns, spool, result)
                if outcome.status == "loaded":
                    spool.flush_into(cur, ledger)
            finally:
                spool.close()
            outcome = Outcome(**{**outcome.__dict__, "bytes": counter.bytes, "duration_ms": _ms(started)})
            ledger.record(cur, obj, outcome)
        conn.commit()
    except Superseded as exc:
        _rollback(conn)
        result.status = "superseded"
        result.error = str(exc)
        return result
    except ObjectBusy:
        raise
    except Exception as exc:
        _rollback(conn)
        failure = exc
        if isinstance(exc, errors.QueryCanceled):  # the statement_timeout above
            failure = DeadlineExceeded(f"stopping before the Lambda timeout: {str(exc).strip()}")
        status = "deferred" if isinstance(failure, DeadlineExceeded) else "failed"
        _record_attempt(
            db,
            ledger,
            obj,
            Outcome(
                status,
                route.index,
                str(target),
                bytes=counter.bytes,
                error=_describe(failure),
                duration_ms=_ms(started),
            ),
        )
        if failure is exc:
            raise
        raise failure from exc
    throughput.observe(counter.bytes, time.monotonic() - started, counter.compressed)
    result.status = outcome.status
    result.lines = outcome.lines or 0
    result.rows_loaded = outcome.rows_loaded or 0
    result.rows_rejected = outcome.rows_rejected or 0
    result.error = outcome.error
    result.error_line = outcome.error_line
    return result


def _load(
    cur: Any,
    reader: ObjectReader,
    route: Route,
    target: QualifiedName,
    columns: list[Column],
    spool: RejectSpool,
    result: LoadResult,
) -> Outcome:
    base = {"route": route.index, "target_table": str(target)}
    try:
        if route.format == "csv":
            stats = _load_csv(cur, reader, route, target, columns, spool)
        else:
            stats = _load_jsonl(cur, reader, route, target, columns, spool)
    except UpsertRefused as exc:
        cur.execute(f"ROLLBACK TO SAVEPOINT {DATA_SAVEPOINT}")
        return Outcome("rejected", error=str(exc), lines=exc.lines, rows_loaded=0, rows_rejected=exc.lines, **base)
    except FormatError as exc:
        cur.execute(f"ROLLBACK TO SAVEPOINT {DATA_SAVEPOINT}")
        return Outcome("rejected", error=str(exc), error_line=exc.line, lines=0, rows_loaded=0, rows_rejected=0, **base)
    if stats.rejected and route.on_error == "reject_object":
        cur.execute(f"ROLLBACK TO SAVEPOINT {DATA_SAVEPOINT}")
        line, reason = stats.first_error or (None, "rejected")
        where = f"line {line}: " if line is not None else ""
        more = f" ({stats.rejected} bad rows in all)" if stats.rejected > 1 else ""
        return Outcome(
            "rejected",
            lines=stats.lines,
            rows_loaded=0,
            rows_rejected=stats.lines,
            error=f"{where}{reason}{more}",
            error_line=line,
            **base,
        )
    return Outcome("loaded", lines=stats.lines, rows_loaded=stats.loaded, rows_rejected=stats.rejected, **base)


def _reject_permanently(
    db: Any, ledger: Ledger, obj: ObjectId, route: Route, result: LoadResult, error: str
) -> LoadResult:
    logger.error("object rejected", extra={"bucket": obj.bucket, "key": obj.key, "error": error})
    conn = db.get()
    ledger.ensure(conn)
    with conn, conn.cursor() as cur:
        ledger.record(
            cur, obj, Outcome("rejected", route.index, None, lines=0, rows_loaded=0, rows_rejected=0, error=error)
        )
    result.status = "rejected"
    result.error = error
    return result


def _record_attempt(db: Any, ledger: Ledger, obj: ObjectId, outcome: Outcome) -> None:
    try:
        conn = db.get()
        ledger.ensure(conn)
        ledger.record_attempt(conn, obj, outcome)
    except Exception:  # the original error matters more; the message returns anyway
        logger.exception("could not record the failed attempt in the ledger", extra={"key": obj.key})


def _rollback(conn: Any) -> None:
    try:
        conn.rollback()
    except Exception:  # noqa: BLE001 - a dead connection has nothing to roll back
        logger.warning("rollback failed; the connection is gone and will be reopened")


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


# --- reading the object ------------------------------------------------------------------------


class Superseded(RuntimeError):
    """The key now holds different content than the event announced (unversioned bucket)."""


@dataclass
class ByteCounter:
    bytes: int = 0
    compressed: bool = False


class ObjectReader:
    """Opens the object version as a stream of decompressed chunks, as often as a path needs."""

    def __init__(
        self,
        s3: Any,
        obj: ObjectId,
        route: Route,
        deadline: Deadline,
        counter: ByteCounter,
        *,
        version_id: str | None,
        etag: str | None,
    ) -> None:
        self.s3 = s3
        self.obj = obj
        self.route = route
        self.deadline = deadline
        self.counter = counter
        self.version_id = version_id
        self.etag = etag
        self.reserve_after_copy_ms = 0.0

    def chunks(self) -> Iterator[bytes]:
        kwargs: dict[str, Any] = {"Bucket": self.obj.bucket, "Key": self.obj.key}
        if self.version_id:
            kwargs["VersionId"] = self.version_id
        elif self.etag:
            # Without versioning, only the content the event announced may be loaded under its ETag.
            kwargs["IfMatch"] = f'"{self.etag}"'
        try:
            response = self.s3.get_object(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "412"):
                raise Superseded(f"s3://{self.obj.bucket}/{self.obj.key} changed since ETag {self.etag}") from None
            raise
        raw = self._counted(response["Body"])
        data = decompressed(raw, self.route.compression, response.get("ContentEncoding"))
        return data

    def _counted(self, body: Any) -> Iterator[bytes]:
        try:
            for chunk in body.iter_chunks(S3_CHUNK):
                self.counter.bytes += len(chunk)
                self.deadline.check(self.reserve_after_copy_ms, "streaming the object")
                yield chunk
        finally:
            body.close()


# --- CSV ---------------------------------------------------------------------------------------


def csv_copy_format(route: Route, encoding: str | None) -> CopyFormat:
    return CopyFormat(
        format="csv",
        delimiter=route.delimiter,
        quote=route.quote,
        escape=route.escape,
        null=route.null,
        encoding=encoding,
    )


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


def _destination(
    cur: Any, route: Route, target: QualifiedName, columns: list[Column], mapped: list[str]
) -> tuple[sql.Composable | QualifiedName, list[str]]:
    if route.mode == "append":
        return target, []
    keys = list(route.key_columns) or primary_key(cur, target)
    if not keys:
        raise ColumnsError(f"upsert into {target} needs key_columns: the table has no primary key")
    missing = [k for k in keys if k not in mapped]
    if missing:
        raise ColumnsError(f"upsert key columns missing from the file: {', '.join(missing)}", line=1)
    not_null = [c.name for c in columns if c.not_null and c.name in mapped]
    return create_staging(cur, target, mapped, not_null=not_null), keys


def bound_statements(cur: Any, deadline: Deadline) -> None:
    """Have the server cancel statements of this transaction that would run into the reserve.

    A slow COPY, upsert or lock wait then ends as a deferral (see `load_object`) with time left
    to record it, instead of the Lambda timeout killing the sandbox mid-transaction. The limit is
    per statement, so it is set again before each long one.
    """
    cur.execute("SET LOCAL statement_timeout = %s", (max(1, int(deadline.usable_ms())),))


def _finish_upsert(
    cur: Any,
    deadline: Deadline,
    route: Route,
    dest: sql.Composable | QualifiedName,
    target: QualifiedName,
    mapped: list[str],
    keys: list[str],
    stats: Stats,
) -> None:
    if route.mode == "upsert":
        assert not isinstance(dest, QualifiedName)
        bound_statements(cur, deadline)
        try:
            upsert(cur, dest, target, mapped, keys)
        except Exception as exc:
            if not is_row_error(exc):
                raise
            raise UpsertRefused(f"upsert into {target} refused: {row_error_reason(exc)}", stats.lines) from None


def _load_csv(
    cur: Any, reader: ObjectReader, route: Route, target: QualifiedName, columns: list[Column], spool: RejectSpool
) -> Stats:
    header, rest = split_csv_header(
        reader.chunks(), delimiter=route.delimiter, quote=route.quote, codec=route.python_codec
    )
    if header is None:
        return Stats()
    mapped = map_columns(header.columns, columns, target)
    dest, keys = _destination(cur, route, target, columns, mapped)
    if route.mode == "upsert":
        reader.reserve_after_copy_ms = 5_000
    cur.execute("SAVEPOINT file_loader_fast")
    try:
        copied = copy_in(cur, dest, mapped, without_end_of_data(rest), csv_copy_format(route, route.encoding))
        cur.execute("RELEASE SAVEPOINT file_loader_fast")
        stats = Stats(lines=copied, loaded=copied, columns=mapped)
    except Exception as exc:
        if not (is_row_error(exc) or isinstance(exc, EndOfDataLine)):
            raise
        logger.info("fast path refused; reading the object again record by record", extra={"error": str(exc)})
        _abandon(cur, "file_loader_fast")
        stats = _load_csv_records(cur, reader, route, dest, mapped, spool)
    _finish_upsert(cur, reader.deadline, route, dest, target, mapped, keys, stats)
    return stats


def _load_csv_records(
    cur: Any,
    reader: ObjectReader,
    route: Route,
    dest: sql.Composable | QualifiedName,
    mapped: list[str],
    spool: RejectSpool,
) -> Stats:
    stats = Stats(columns=mapped)
    records = csv_records(text_lines(reader.chunks(), route.python_codec), delimiter=route.delimiter, quote=route.quote)
    next(records, None)  # the header, already read by the fast path
    copy_format = csv_copy_format(route, "UTF8")
    loader = _BatchLoader(cur, dest, mapped, copy_format, stats, spool, route.quote)
    batch: list[Record] = []
    size = 0
    for record in records:
        stats.lines += 1
        if record.undecodable:
            _reject(stats, spool, record.line, record.raw, f"invalid byte sequence for encoding {route.encoding}")
            continue
        batch.append(record)
        size += len(record.raw)
        if len(batch) >= BATCH_RECORDS or size >= BATCH_BYTES:
            loader.load(batch)
            batch, size = [], 0
    if batch:
        loader.load(batch)
    return stats


def _abandon(cur: Any, savepoint: str) -> None:
    # Roll back and release, so retries of split batches do not nest savepoints without end.
    cur.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
    cur.execute(f"RELEASE SAVEPOINT {savepoint}")


def _reject(stats: Stats, spool: RejectSpool, line: int | None, raw: str, reason: str) -> None:
    stats.rejected += 1
    if stats.first_error is None or (line is not None and (stats.first_error[0] or 0) > line):
        stats.first_error = (line, reason)
    spool.add(line, raw, reason)


_COLUMN_IN_CONTEXT = re.compile(r", column (\w+)")


def row_error_reason(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    message = getattr(diag, "message_primary", None) or str(exc).splitlines()[0]
    match = _COLUMN_IN_CONTEXT.search(getattr(diag, "context", None) or "")
    detail = getattr(diag, "message_detail", None)
    reason = f"{message} (column {match.group(1)})" if match else message
    return f"{reason}: {detail}" if detail else reason


class _BatchLoader:
    """COPY a batch of framed records; isolate the bad ones by splitting failed batches."""

    def __init__(
        self,
        cur: Any,
        dest: sql.Composable | QualifiedName,
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
            _abandon(self.cur, "file_loader_batch")
            if len(records) == 1:
                _reject(self.stats, self.spool, records[0].line, records[0].raw, row_error_reason(exc))
                return
            index = _hinted_index(records, copy_error_line(exc))
            # Pushed last part first, so the parts load in file order and rejects keep it too.
            pending += [records[index + 1 :], [records[index]], records[:index]]
            return
        self.cur.execute("RELEASE SAVEPOINT file_loader_batch")
        self.stats.loaded += copied


def _as_lines(records: list[Record], quote: str) -> Iterator[bytes]:
    for record in records:
        raw = record.raw
        if raw.rstrip("\r\n") == "\\.":
            # Quoted, the same one-field record is data rather than PostgreSQL's end-of-data marker.
            raw = f"{quote}\\.{quote}{raw[2:]}"
        yield raw.encode("utf-8") if raw.endswith(("\n", "\r")) else (raw + "\n").encode("utf-8")


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


# --- JSON lines --------------------------------------------------------------------------------

_JSONL_STAGING = "file_loader_jsonl"
# Raw JSON lines go through COPY's CSV format with control characters as quote and delimiter:
# strict JSON cannot contain them unescaped, so the text arrives byte for byte.
_JSONL_COPY = CopyFormat(format="csv", delimiter="\x02", quote="\x01", encoding="UTF8")


def _load_jsonl(
    cur: Any, reader: ObjectReader, route: Route, target: QualifiedName, columns: list[Column], spool: RejectSpool
) -> Stats:
    stats = Stats()
    loadable = {c.name for c in columns if not c.generated}
    keys_seen: set[str] = set()
    staging = sql.Identifier(_JSONL_STAGING)
    cur.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(staging))
    cur.execute(sql.SQL("CREATE TEMPORARY TABLE {} (line bigint, doc text) ON COMMIT DROP").format(staging))

    def staged_rows(records: Iterable[Record]) -> Iterator[str]:
        for record in records:
            text = record.raw.strip()
            if not text:
                continue  # blank lines carry no row
            stats.lines += 1
            if record.undecodable:
                _reject(stats, spool, record.line, record.raw, f"invalid byte sequence for encoding {route.encoding}")
                continue
            try:
                document = json.loads(text)
            except ValueError as exc:
                _reject(stats, spool, record.line, record.raw, f"invalid JSON: {exc}")
                continue
            if not isinstance(document, dict):
                _reject(stats, spool, record.line, record.raw, f"expected a JSON object, got {type(document).__name__}")
                continue
            unknown = document.keys() - loadable
            if unknown:
                _reject(
                    stats, spool, record.line, record.raw, f"keys not in table {target}: {', '.join(sorted(unknown))}"
                )
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
    dest, keys = _destination(cur, route, target, columns, mapped)
    inserter = _JsonlInserter(cur, staging, dest, target, mapped, stats, spool)
    cur.execute(sql.SQL("SELECT min(line), max(line) FROM {}").format(staging))
    low, high = cur.fetchone()
    inserter.insert(low, high)
    _finish_upsert(cur, reader.deadline, route, dest, target, mapped, keys, stats)
    return stats


class _JsonlInserter:
    """INSERT staged lines [low, high]; split failing ranges in half until bad lines stand alone."""

    def __init__(
        self,
        cur: Any,
        staging: sql.Identifier,
        dest: sql.Composable | QualifiedName,
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
            _abandon(self.cur, "file_loader_batch")
            if low == high:
                self.cur.execute(sql.SQL("SELECT doc FROM {} WHERE line = %s").format(self.staging), (low,))
                row = self.cur.fetchone()
                _reject(self.stats, self.spool, low, row[0] if row else "", row_error_reason(exc))
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


__all__ = [
    "ColumnsError",
    "LoadResult",
    "ObjectBusy",
    "TableNotFound",
    "Throughput",
    "load_object",
    "map_columns",
]
