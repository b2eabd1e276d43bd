"""Load one S3 object version into PostgreSQL, exactly once: the unit of work.

`load_object` takes the object version's advisory lock, checks the ledger, streams the object
into the target with COPY and writes the ledger row, all in one transaction. The pieces:
`reader` (the S3 stream), `load_csv` and `load_jsonl` (the two formats), `target` (columns,
staging, upsert), `rejects` (bad rows), `throughput` (will it fit in the time left).

What happens to each kind of failure:

- the object's content is unusable, or does not fit the target as configured (`FormatError`, a
  bad route target, any other `PermanentError`): rejected, recorded in the ledger, never retried
  (a replay finds it `rejected`);
- the load found content but no records, or counts that do not add up (`rows_loaded +
  rows_rejected` must equal the records found): rejected with the reason, nothing loaded, rather
  than a ledger row that lies;
- another invocation holds the lock, or the deadline comes (`RetryableError` with a
  `retry_after_seconds`): the attempt is recorded and the message comes back soon;
- anything else (a lost connection, a missing table): the attempt is recorded as `failed` and the
  message comes back after the queue's visibility timeout, until the dead-letter queue takes it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from psycopg2 import errors

from file_loader.formats import FormatError
from file_loader.load_csv import load_csv
from file_loader.load_jsonl import load_jsonl
from file_loader.reader import ByteCounter, ObjectReader, Superseded
from file_loader.rejects import RejectSpool, Stats
from file_loader.routes import Route, RouteError
from file_loader.target import DATA_SAVEPOINT, UpsertRefused
from file_loader.throughput import Throughput
from pipeline_common.catalog import Column, table_columns
from pipeline_common.db import rollback_quietly
from pipeline_common.deadline import Deadline, DeadlineExceeded
from pipeline_common.errors import PipelineError, RetryableError, error_message
from pipeline_common.identifiers import QualifiedName
from pipeline_common.ledger import Ledger, ObjectId, Outcome

logger = logging.getLogger(__name__)

# How soon a busy or deferred message should be offered again, instead of after the queue's
# visibility timeout (six function timeouts).
RETRY_SOON_SECONDS = 30


class ObjectBusy(RetryableError):
    """Another invocation holds this object version's lock; the message should come back later:
    after `retry_after_seconds`, about when the other load should be done."""

    def __init__(self, message: str, retry_after_seconds: float = RETRY_SOON_SECONDS) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


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
            ledger.record_attempt_quietly(
                db, obj, Outcome("deferred", route.index, str(target), bytes=size, error=str(exc))
            )
            raise

    conn = db.get()
    ledger.ensure(conn)
    started = time.monotonic()
    counter = ByteCounter()
    try:
        with conn.cursor() as cur:
            claim = ledger.claim(cur, obj, deadline)
            if not claim.locked:
                conn.rollback()
                raise ObjectBusy(
                    f"{obj} is being loaded by another invocation",
                    # Back too early, it would find the lock again and use up one more receive.
                    retry_after_seconds=max(RETRY_SOON_SECONDS, need_ms / 1000),
                )
            if claim.done:
                conn.rollback()
                result.status = "duplicate"
                return result
            columns = table_columns(cur, target)
            reader = ObjectReader(s3, obj, route, deadline, counter, version_id=version_id, etag=etag)
            cur.execute(f"SAVEPOINT {DATA_SAVEPOINT}")
            spool = RejectSpool(obj, target)
            try:
                outcome = _load(cur, reader, route, target, columns, spool)
                if outcome.status == "loaded":
                    spool.flush_into(cur, ledger)
            finally:
                spool.close()
            outcome = Outcome(**{**outcome.__dict__, "bytes": counter.bytes, "duration_ms": _ms(started)})
            ledger.record(cur, obj, outcome)
        conn.commit()
    except Superseded as exc:
        rollback_quietly(conn)
        result.status = "superseded"
        result.error = str(exc)
        return result
    except ObjectBusy:
        raise
    except Exception as exc:
        # Read before the rollback: a dropped connection still holds the server's reason.
        message = error_message(exc, conn)
        rollback_quietly(conn)
        failure = exc
        if isinstance(exc, errors.QueryCanceled):  # the statement_timeout above
            failure = DeadlineExceeded(f"stopping before the Lambda timeout: {message}")
            message = str(failure)
        status = "deferred" if isinstance(failure, DeadlineExceeded) else "failed"
        ledger.record_attempt_quietly(
            db,
            obj,
            Outcome(
                status,
                route.index,
                str(target),
                bytes=counter.bytes,
                error=f"{type(failure).__name__}: {message}",
                duration_ms=_ms(started),
            ),
        )
        if failure is exc:
            raise
        raise failure from exc
    throughput.observe(counter.bytes, time.monotonic() - started, compressed)
    result.status = outcome.status
    result.lines = outcome.lines or 0
    result.rows_loaded = outcome.rows_loaded or 0
    result.rows_rejected = outcome.rows_rejected or 0
    result.error = outcome.error
    result.error_line = outcome.error_line
    return result


def _load(
    cur: Any, reader: ObjectReader, route: Route, target: QualifiedName, columns: list[Column], spool: RejectSpool
) -> Outcome:
    base = {"route": route.index, "target_table": str(target)}
    try:
        load = load_csv if route.format == "csv" else load_jsonl
        stats = load(cur, reader, route, target, columns, spool)
    except Superseded:
        raise
    except UpsertRefused as exc:
        cur.execute(f"ROLLBACK TO SAVEPOINT {DATA_SAVEPOINT}")
        return Outcome("rejected", error=str(exc), lines=exc.lines, rows_loaded=0, rows_rejected=exc.lines, **base)
    except PipelineError as exc:
        if exc.retryable:
            raise
        # The content cannot be read in the route's format, or the target cannot take it as
        # configured (columns that do not fit, a name PostgreSQL refuses): the same every time.
        cur.execute(f"ROLLBACK TO SAVEPOINT {DATA_SAVEPOINT}")
        line = exc.line if isinstance(exc, FormatError) else None
        return Outcome("rejected", error=str(exc), error_line=line, lines=0, rows_loaded=0, rows_rejected=0, **base)
    refusal = _unaccounted(stats, reader.content_bytes, route)
    if refusal:
        cur.execute(f"ROLLBACK TO SAVEPOINT {DATA_SAVEPOINT}")
        return Outcome("rejected", error=refusal, lines=stats.lines, rows_loaded=0, rows_rejected=stats.lines, **base)
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


def _unaccounted(stats: Stats, content_bytes: int, route: Route) -> str | None:
    """Why the counts of a load cannot be recorded as they are, or None when they add up: every
    record found is loaded or rejected, and content that is not blank holds records."""
    if stats.loaded + stats.rejected != stats.lines:
        logger.error("load counts do not add up", extra={"records": stats.lines, "loaded": stats.loaded})
        return (
            f"loader check failed: {stats.lines} records found but {stats.loaded} loaded and "
            f"{stats.rejected} rejected; nothing was loaded (a loader defect: please report it)"
        )
    if stats.lines == 0 and content_bytes > 0:
        held = "a header row and no record" if route.format == "csv" else "only blank lines"
        return f"no records: the object's {content_bytes} bytes hold {held}"
    return None


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


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
