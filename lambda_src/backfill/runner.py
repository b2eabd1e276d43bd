"""The backfill loop: for each job, one runner at a time, chunk after chunk until the job is done,
the deadline is near or the database is under pressure.

Per chunk, in ONE transaction: find `hi` (an index seek on the key), run the job's statements for
`(lo, hi]` on the server, move the job's checkpoint row to `hi` (with the row counts), COMMIT. A
crash, a killed connection or a cancelled statement before the COMMIT leaves no trace of the chunk;
after it, the chunk is never run again. Statements that are idempotent by their declared rule make
even a chunk replayed by hand harmless. The key range, not a filter, is the unit: rows whose status
changes while the job runs are judged by the statements when their range comes up, so none is
skipped (as OFFSET paging over a filter skips them) and none is copied twice.

Pacing, between chunks: the database's pressure (`backfill.pressure`) pauses the run with a growing
back-off and halves the chunk; the rate cap (driving rows per second over the run) sleeps; the
chunk size moves toward the job's target duration (`Pacer.next_size`, clamped, smoothed), and the
size reached is kept in the checkpoint for the next run.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from backfill.catalog import check_job
from backfill.jobs import Job
from backfill.keyset import Key, Keyset, params
from backfill.pressure import read_pressure
from backfill.results import JobResult, RunReport
from pipeline_common.checkpoint import Checkpoint, CheckpointTable
from pipeline_common.db import engine_of
from pipeline_common.deadline import Deadline, Pacer, bound_statements, unbound_statements
from pipeline_common.errors import PermanentError
from pipeline_common.locks import Scope, try_lock, unlock

logger = logging.getLogger(__name__)

STATE_TABLE = "backfill_jobs"
SMOOTHING = 0.5  # weight of the earlier chunks' time per row when sizing the next one


class ConnectionProvider(Protocol):
    """What `pipeline_common.db.ManagedConnection` offers: a healthy connection, and a way to drop it."""

    def get(self) -> Any: ...

    def close(self) -> None: ...


class CheckpointMismatch(PermanentError):
    """The stored checkpoint was made for another driving table or key than the job now names."""


def state_table(schema: str) -> CheckpointTable:
    """The checkpoint table of the jobs (`docs/contracts.md`): one row per job, in the database
    the job writes, so each chunk commits with its checkpoint."""
    return CheckpointTable(
        schema,
        STATE_TABLE,
        name_column="job",
        identity=("driving_table", "key_columns"),
        positions=("position", "start_key", "end_key", "chunk_rows"),
        counters=("rows_done", "rows_written", "chunks"),
        stamps=("started_at", "finished_at"),
    )


def current_schema(conn: Any) -> str:
    """The database (MySQL) or first schema of the search path (PostgreSQL) of the connection."""
    with conn.cursor() as cur:
        cur.execute("SELECT DATABASE()" if engine_of(conn) == "mysql" else "SELECT current_schema()")
        name = cur.fetchone()[0]
    conn.rollback()
    return str(name)


@dataclass
class Runtime:
    """What a run needs besides the jobs and the connection; `sleep` and `clock` for tests."""

    state: CheckpointTable
    deadline: Deadline
    replicas: Sequence[Callable[[], Any]] = ()
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


def run_jobs(jobs: Sequence[Job], connection: ConnectionProvider, runtime: Runtime) -> RunReport:
    """Run each job in turn until it is done or the deadline is near; failures are per job."""
    report = RunReport()
    for job in jobs:
        result = JobResult(job.name)
        report.jobs.append(result)
        started = runtime.clock()
        try:
            run_job(job, connection.get(), runtime, result)
        except Exception as exc:  # one job's failure must not stop the others
            logger.exception("backfill job failed", extra={"job": job.name})
            result.fail(exc)
            with contextlib.suppress(Exception):
                connection.get().rollback()
        finally:
            result.duration_seconds = runtime.clock() - started
    return report


def prepare_session(conn: Any) -> None:
    """UTC, so datetime keys read and bound again mean the same instant across runs and DST."""
    with conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'" if engine_of(conn) == "mysql" else "SET TIME ZONE 'UTC'")
    conn.commit()


def run_job(job: Job, conn: Any, runtime: Runtime, result: JobResult) -> None:
    """Advance one job under its lock (skip it when another run holds the lock)."""
    prepare_session(conn)
    runtime.state.ensure(conn)
    key = runtime.state.lock_key(job.name)
    if not try_lock(conn, key, Scope.SESSION):
        result.status = "busy"
        return
    try:
        _run_locked(job, conn, runtime, result)
    finally:
        with contextlib.suppress(Exception):  # a dead connection has released its lock already
            conn.rollback()
            if engine_of(conn) == "mysql":
                with conn.cursor() as cur:
                    unbound_statements(cur)
            unlock(conn, key)


def begin(job: Job, conn: Any, state: CheckpointTable, keyset: Keyset) -> tuple[Checkpoint, bool]:
    """The job's checkpoint, and whether this run created it (with the key range it will cover)."""
    with conn.cursor() as cur:
        check_job(cur, job)
        checkpoint = state.load(cur, job.name)
        created = checkpoint is None
        if checkpoint is None:
            identity = {"driving_table": str(job.table), "key_columns": ",".join(job.key)}
            state.start(cur, job.name, identity=identity, stamp="started_at")
            first = keyset.edge(cur, last=False)
            if first is None:
                state.save(cur, job.name, stamp=("finished_at",))
            else:
                start = job.start_after if job.start_after is not None else keyset.below(cur, first)
                end = keyset.edge(cur, last=True)
                positions = {"position": start, "start_key": start, "end_key": end, "chunk_rows": None}
                state.save(cur, job.name, positions=positions)
            conn.commit()
            checkpoint = state.load(cur, job.name)
    conn.rollback()
    assert checkpoint is not None
    expected = (str(job.table), ",".join(job.key))
    stored = (checkpoint["driving_table"], checkpoint["key_columns"])
    if stored != expected:
        raise CheckpointMismatch(
            f"job {job.name} was started on {stored[0]} ({stored[1]}) but now names {expected[0]} ({expected[1]}); "
            f"rename the job, or delete its row from {state.qualified} to start over"
        )
    return checkpoint, created


def _run_locked(job: Job, conn: Any, runtime: Runtime, result: JobResult) -> None:
    engine = engine_of(conn)
    keyset = Keyset.for_job(job, engine)
    state = runtime.state
    checkpoint, created = begin(job, conn, state, keyset)
    result.rows_done = checkpoint["rows_done"]
    result.rows_written_total = checkpoint["rows_written"]
    lo, end = _key(checkpoint["position"]), _key(checkpoint["end_key"])
    result.position, result.end = lo, end
    if checkpoint["finished_at"] is not None:  # done before, or an empty table seen just now
        result.status = "finished" if created else "done_before"
        result.estimated_total_rows, result.remaining_rows, result.percent = result.rows_done, 0, 100.0
        return
    assert lo is not None and end is not None
    sizing = job.chunk
    # A chunk should not take longer than the rate cap lets the whole run go in target_seconds.
    ceiling = sizing.max_rows
    if job.max_rows_per_second:
        ceiling = max(sizing.min_rows, min(ceiling, int(job.max_rows_per_second * sizing.target_seconds)))
    pacer = Pacer(
        runtime.deadline,
        target_ms=sizing.target_seconds * 1000,
        minimum=sizing.min_rows,
        maximum=ceiling,
        smoothing=SMOOTHING,
        clock=runtime.clock,
    )
    size = min(ceiling, checkpoint["chunk_rows"] or sizing.initial_rows)
    run_started = runtime.clock()
    backoff = job.pressure.pause_seconds
    while True:
        if _under_pressure(job, conn, runtime, result):
            size = max(sizing.min_rows, size // 2)
            if not _fits(runtime, pacer, backoff):
                result.status = "paused"
                break
            runtime.sleep(backoff)
            result.paused_seconds += backoff
            backoff = min(backoff * 2, job.pressure.max_pause_seconds)
            continue
        backoff = job.pressure.pause_seconds
        if not pacer.fits():
            result.status = "continues"
            break
        done = _chunk(job, conn, state, keyset, pacer, lo, end, size)
        if done is None:
            result.status = "continues"
            break
        lo, rows, written = done
        result.position = lo
        result.chunks += 1
        result.rows += rows
        result.rows_written += written
        result.rows_done += rows
        result.rows_written_total += written
        if lo == end:
            result.status = "finished"
            break
        size = pacer.next_size(size)
        if job.max_rows_per_second:
            wait = run_started + result.rows / job.max_rows_per_second - runtime.clock()
            if wait > 0:
                if not _fits(runtime, pacer, wait):
                    result.status = "continues"
                    break
                runtime.sleep(wait)
    elapsed = runtime.clock() - run_started
    result.chunk_rows = size
    result.rows_per_second = result.rows / elapsed if elapsed > 0 and result.rows else None
    _estimate(result, keyset, conn, checkpoint, lo, end)


def _chunk(
    job: Job, conn: Any, state: CheckpointTable, keyset: Keyset, pacer: Pacer, lo: Key, end: Key, size: int
) -> tuple[Key, int, int] | None:
    """One chunk in one transaction: (hi, driving rows, rows written), or None when the server
    cancelled a statement at the deadline (rolled back; the next run does the chunk)."""
    try:
        with pacer.unit(), conn.cursor() as cur:
            bound_statements(cur, pacer, session=engine_of(conn) == "mysql")
            hi, rows = keyset.next_bound(cur, lo, end, size)
            bounds = {"lo": params(lo), "hi": params(hi)}
            written = 0
            for statement in job.statements:
                cur.execute(statement.bound.text, statement.bound.params(bounds))
                written += max(cur.rowcount, 0)
            state.save(
                cur,
                job.name,
                positions={"position": hi, "chunk_rows": size},
                add={"rows_done": rows, "rows_written": written, "chunks": 1},
                stamp=("finished_at",) if hi == end else (),
            )
            conn.commit()
    except Exception as exc:
        if not _cancelled(exc):
            raise
        conn.rollback()
        logger.warning("chunk cancelled at the deadline; the next run resumes", extra={"job": job.name})
        return None
    return hi, rows, written


def _fits(runtime: Runtime, pacer: Pacer, wait_seconds: float) -> bool:
    """Whether a wait still leaves room for a chunk before the deadline's reserve."""
    return runtime.deadline.usable_ms() > wait_seconds * 1000 + pacer.slowest_ms * pacer.margin


def _under_pressure(job: Job, conn: Any, runtime: Runtime, result: JobResult) -> bool:
    limits = job.pressure
    if not (limits.max_replica_lag_seconds or limits.max_running_threads or limits.max_transaction_seconds):
        return False
    reasons = read_pressure(conn, limits, runtime.replicas).reasons(limits)
    if reasons:
        logger.warning("database under pressure; pausing", extra={"job": job.name, "reasons": reasons})
        result.note_pressure(reasons)
    return bool(reasons)


def _cancelled(exc: BaseException) -> bool:
    """A statement the server cancelled at the limit `bound_statements` set."""
    module = type(exc).__module__.split(".")[0]
    if module == "psycopg2":
        from psycopg2 import errors

        return isinstance(exc, errors.QueryCanceled)
    return module == "pymysql" and bool(exc.args) and exc.args[0] in (1969, 3024)


def _key(document: Any) -> Key | None:
    return None if document is None else tuple(document)


def _estimate(result: JobResult, keyset: Keyset, conn: Any, checkpoint: Checkpoint, lo: Key, end: Key) -> None:
    """Total, remaining, percent and ETA (from the pace since the job started)."""
    if result.status == "finished":
        remaining = 0
    else:
        with conn.cursor() as cur:
            remaining = keyset.estimate(cur, lo, end)
        conn.rollback()
    result.remaining_rows = remaining
    result.estimated_total_rows = result.rows_done + remaining
    total = result.estimated_total_rows
    result.percent = 100.0 * result.rows_done / total if total else 100.0
    started_at = checkpoint["started_at"]
    if started_at is not None and result.rows_done and remaining:
        started_at = started_at if started_at.tzinfo else started_at.replace(tzinfo=UTC)
        since = (datetime.now(UTC) - started_at).total_seconds()
        result.eta_seconds = remaining * max(since, 0.001) / result.rows_done
    elif not remaining:
        result.eta_seconds = 0.0
