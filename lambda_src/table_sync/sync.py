"""The sync loop: validate every table, then for each one stream its changed rows in keyset order
and upsert them chunk by chunk, moving the watermark in the same transaction as the chunk.

A pass reads rows after the watermark (rowversion: `> watermark` and below the upper bound;
timestamp: `>= watermark - lookback`) ordered by (cursor, primary key). Each committed chunk
records its last row as the pass's position, so a crash or a deadline stop resumes right after
it; the pass's end moves the watermark to the last cursor read and clears the position.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from psycopg2 import errors

from pipeline_common.catalog import TableNotFound, TableShape, describe_tables, not_found
from pipeline_common.copytext import copy_text_bytes
from pipeline_common.deadline import Deadline, Pacer, bound_statements
from pipeline_common.locks import LockKey
from pipeline_common.pgload import copy_encoded, create_staging, upsert
from table_sync import source as src
from table_sync import state
from table_sync.config import TableSpec
from table_sync.deletes import reconcile_deletes
from table_sync.dialect import Dialect, Lower, parse_copy_field, read_sql
from table_sync.plan import PlanError, TablePlan, resolve
from table_sync.results import ConnectionProvider, SyncReport, TableResult

logger = logging.getLogger(__name__)

STAGING_TABLE = "table_sync_staging"
_first = operator.itemgetter(0)


def _plan_one(spec: TableSpec, dialect: Dialect, source_conn: Any, target: TableShape | None) -> TablePlan:
    from table_sync.dialect import SourceShape

    probe = SourceShape(spec.source, spec.query, (), (), spec.cursor.column, spec.cursor.type)
    described = src.probe_columns(source_conn, dialect, probe)
    if target is None:
        raise not_found(spec.target)
    return resolve(spec, dialect, described, target)


def run_sync(
    specs: Sequence[TableSpec],
    source: ConnectionProvider,
    target: ConnectionProvider,
    *,
    engine: str,
    state_schema: str,
    deadline: Deadline,
) -> SyncReport:
    """Sync every table (least recently started first); per-table failures are reported, not raised.

    A table whose configuration does not fit the databases (or its stored watermark) fails alone,
    before any of its rows move; the other tables still sync.
    """
    dialect = src.dialect_for(source.get(), engine)
    target_conn = target.get()
    state.ensure_state_table(target_conn, state_schema)
    rows = state.load_states(target_conn, state_schema)
    with target_conn.cursor() as cur:
        shapes = describe_tables(cur, [spec.target for spec in specs])
    target_conn.rollback()
    report = SyncReport()
    plans: list[TablePlan] = []
    states: dict[str, state.TableState] = {}
    for spec in specs:
        try:
            plan = _plan_one(spec, dialect, source.get(), shapes.get(spec.target))
            states[spec.name] = state.to_state(
                spec.name, rows.get(spec.name), plan.shape.cursor_column, spec.cursor.type
            )
            plans.append(plan)
        except (PlanError, src.SourceError, TableNotFound, state.StateMismatch) as exc:
            # A dropped source table, a revoked grant or a stale watermark is that table's problem.
            message = str(exc) if isinstance(exc, PlanError | state.StateMismatch) else f"table {spec.name}: {exc}"
            failed = TableResult(
                spec.name, spec.source_label, str(spec.target), deletes="not_reached" if spec.deletes.enabled else "off"
            )
            failed.fail(exc, message)
            report.tables.append(failed)
    # Tables that waited longest go first, so one big table cannot starve the others run after run.
    ordered = sorted(
        plans, key=lambda p: (states[p.spec.name].last_started_at is not None, states[p.spec.name].last_started_at or 0)
    )
    locks = state.lock_keys(target_conn, state_schema, [plan.spec.name for plan in ordered])
    for plan in ordered:
        result = TableResult(plan.spec.name, plan.spec.source_label, str(plan.spec.target))
        report.tables.append(result)
        if deadline.expired():
            result.status = "continues"
            result.deletes = "not_reached"
            continue
        _sync_one(plan, locks[plan.spec.name], source, target, engine, state_schema, deadline, result)
    return report


def _sync_one(
    plan: TablePlan,
    lock: LockKey,
    source: ConnectionProvider,
    target: ConnectionProvider,
    engine: str,
    state_schema: str,
    deadline: Deadline,
    result: TableResult,
) -> None:
    started = time.monotonic()
    target_conn = target.get()
    try:
        if not state.try_lock_table(target_conn, lock):
            target_conn.rollback()
            result.status = "skipped"
            result.error = "another run holds this table's lock"
            return
        try:
            sync_table(plan, source, target_conn, engine, state_schema, deadline, result)
        finally:
            with contextlib.suppress(Exception):  # a dead connection has released its lock already
                target_conn.rollback()
                state.unlock_table(target_conn, lock)
    except Exception as exc:  # one table's failure must not stop the others
        logger.exception("table sync failed", extra={"table": plan.spec.name})
        result.fail(exc)
        with contextlib.suppress(Exception):
            target_conn.rollback()
    finally:
        result.duration_seconds = round(time.monotonic() - started, 3)


def pass_start(plan: TablePlan, current: state.TableState) -> Lower:
    """Where this run reads from: the unfinished pass's position, else after the watermark."""
    if current.position is not None:
        return Lower("after_key", current.position.cursor, current.position.key)
    if current.watermark is not None:
        if plan.spec.cursor.type == "rowversion":
            return Lower("after", current.watermark)
        # Inclusive: a row changed again within the same clock tick keeps the watermark's value.
        return Lower("from", current.watermark - plan.spec.cursor.lookback)
    if plan.spec.initial_value is not None:
        return Lower("from", plan.spec.initial_value)
    return Lower("all")


def sync_table(
    plan: TablePlan,
    source: ConnectionProvider,
    target_conn: Any,
    engine: str,
    state_schema: str,
    deadline: Deadline,
    result: TableResult,
) -> None:
    """Run (or continue) one pass of a table, then its delete reconciliation when due.

    The caller holds the table's lock. Progress is committed chunk by chunk; on return the
    result says whether the pass finished.
    """
    spec = plan.spec
    with target_conn.cursor() as cur:
        current = state.start_run(
            cur,
            state_schema,
            spec.name,
            spec.source_label,
            str(spec.target),
            plan.shape.cursor_column,
            spec.cursor.type,
        )
        # Naive source timestamps are UTC (see table_sync.source). The server reports every change
        # of TimeZone (a rollback's too), so libpq knows the session's without asking.
        if target_conn.info.parameter_status("TimeZone") != "UTC":
            cur.execute("SET TIME ZONE 'UTC'")
    target_conn.commit()
    result.watermark_before = result.watermark_after = current.watermark
    result.read_mode = "typed" if plan.shape.encoded is None else "encoded"

    source_conn = source.get()
    dialect = src.dialect_for(source_conn, engine)
    finished = False
    stream = None
    try:
        src.prepare_session(source_conn, dialect)
        upper = src.upper_bound(source_conn, dialect, spec.cursor.type)
        result.upper_bound = upper
        statement, params = read_sql(dialect, plan.shape, pass_start(plan, current), upper)
        stream = src.open_stream(source_conn, statement, params)
        finished = _copy_pass(plan, stream, target_conn, state_schema, deadline, current, result)
    finally:
        if finished:
            with contextlib.suppress(Exception):
                source_conn.rollback()
        else:
            # An unfinished stream would be drained by closing its cursor (PyMySQL, MariaDB ODBC):
            # dropping the connection is cheaper, and the next get() opens a fresh one.
            if stream is not None:
                src.abandon_stream(stream)
            source.close()
    result.status = "finished" if finished else "continues"
    if not finished or not spec.deletes.enabled:
        result.deletes = "off" if not spec.deletes.enabled else "not_reached"
        return
    result.deletes = reconcile_deletes(plan, source, dialect, target_conn, state_schema, deadline, current, result)
    if result.deletes == "continues":
        result.status = "continues"


@dataclass
class _Chunk:
    """One fetched chunk, already encoded for COPY; the rows themselves are not kept."""

    rows: int
    position: state.Position | None  # (cursor, key) of the chunk's last row
    data: bytes


def _fetch_chunk(stream: Any, plan: TablePlan) -> _Chunk:
    rows = stream.fetchmany(plan.spec.chunk_size)
    if not rows:
        return _Chunk(0, None, b"")
    position = _chunk_position(plan, rows[-1])
    if plan.shape.encoded is not None:
        return _Chunk(len(rows), position, "".join(map(_first, rows)).encode("utf-8"))
    # The cursor may ride along as an extra trailing column; only the synced columns are encoded.
    return _Chunk(len(rows), position, copy_text_bytes(rows, plan.width))


def _chunk_position(plan: TablePlan, tail: Sequence[Any]) -> state.Position:
    """The (cursor, key) of a chunk's last row: its typed columns, or fields of its COPY line."""
    if plan.position_kinds is None:
        return state.Position(tail[plan.cursor_index], tuple(tail[i] for i in plan.key_indexes))
    fields = tail[0][:-1].split("\t")  # escaped tabs are `\t`: only separators split
    cursor_kind, *key_kinds = plan.position_kinds
    return state.Position(
        parse_copy_field(fields[plan.cursor_index], cursor_kind),
        tuple(parse_copy_field(fields[i], kind) for i, kind in zip(plan.key_indexes, key_kinds, strict=True)),
    )


def _copy_pass(
    plan: TablePlan,
    stream: Any,
    target_conn: Any,
    state_schema: str,
    deadline: Deadline,
    current: state.TableState,
    result: TableResult,
) -> bool:
    """Copy chunks until the stream ends (True) or the deadline leaves no room for another (False).

    A second thread fetches and encodes the next chunk while this one writes the current chunk.
    The split follows the GIL: pyodbc releases it around every single SQLGetData call, so a
    fetching thread next to a thread busy encoding in Python waits for the GIL on nearly every
    value (measured: a fetch three times slower). Fetching and encoding on one thread never
    contend, and the writer spends its time in libpq and the server with the GIL released.
    A prefetched chunk that is not written when the deadline stops the pass is simply dropped;
    only committed chunks move the position. The chunk's statements are bounded by the time left
    (`bound_statements`): one that would run into the reserve is cancelled, rolled back, and the
    pass stops there as at the deadline.
    """
    spec = plan.spec
    position = current.position
    pacer = Pacer(deadline)
    direct = DirectCopy()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="table-sync-fetch") as fetcher:
        pending = fetcher.submit(_fetch_chunk, stream, plan)
        while pacer.fits():
            with pacer.unit():
                chunk = pending.result()
                last = chunk.rows < spec.chunk_size
                if not last:
                    pending = fetcher.submit(_fetch_chunk, stream, plan)
                if chunk.position is not None:
                    position = chunk.position
                watermark = _watermark_after(current.watermark, position) if last else current.watermark
                try:
                    with target_conn.cursor() as cur:
                        bound_statements(cur, pacer)
                        written = _write_chunk(cur, plan, chunk.data, direct) if chunk.rows else 0
                        state.save_progress(
                            cur,
                            state_schema,
                            spec.name,
                            position=None if last else position,
                            watermark=watermark,
                            rows=chunk.rows,
                            finished=last,
                        )
                    target_conn.commit()
                except errors.QueryCanceled:
                    target_conn.rollback()
                    logger.warning("chunk cancelled at the deadline; the next run resumes", extra={"table": spec.name})
                    return False
                result.rows_upserted += written
                result.rows_read += chunk.rows
                result.chunks += 1 if chunk.rows else 0
                result.watermark_after = watermark if last else result.watermark_after
                if last:
                    return True
    return False


def _watermark_after(previous: Any, position: state.Position | None) -> Any:
    if position is None:
        return previous
    if previous is None:
        return position.cursor
    try:
        return max(previous, position.cursor)
    except TypeError:  # e.g. the column changed from naive to aware timestamps: trust the source
        return position.cursor


@dataclass
class DirectCopy:
    """When a chunk is COPYed straight into the target instead of through staging and the upsert.

    A chunk of new keys only (a first copy, an append-mostly table) conflicts with nothing, and a
    plain COPY into the target does half the work of staging plus upsert; version guards only
    protect stored rows, which such a chunk does not touch. A chunk meeting a stored key fails on
    the primary key instead: the savepoint undoes it and the chunk takes the upsert. After each
    such failure direct copies pause for twice as many chunks as the last time (at most
    `MAX_PAUSE`), so a pass of updates aborts a handful of COPYs, not one per chunk.
    """

    MAX_PAUSE = 64

    pause: int = 0
    failures: int = 0

    def due(self) -> bool:
        if self.pause:
            self.pause -= 1
            return False
        return True

    def failed(self) -> None:
        self.failures += 1
        self.pause = min(2**self.failures, self.MAX_PAUSE)


def _write_chunk(cur: Any, plan: TablePlan, data: bytes, direct: DirectCopy) -> int:
    """Upsert one COPY-encoded chunk, straight into the target when `direct` says to try."""
    if direct.due():
        cur.execute("SAVEPOINT table_sync_direct")
        try:
            written = copy_encoded(cur, plan.spec.target, plan.target_columns, data)
            cur.execute("RELEASE SAVEPOINT table_sync_direct")
            return written
        except errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT table_sync_direct")
            direct.failed()
    staging = create_staging(cur, plan.spec.target, plan.target_columns, STAGING_TABLE, plan.not_null)
    copy_encoded(cur, staging, plan.target_columns, data)
    return upsert(
        cur,
        staging,
        plan.spec.target,
        plan.target_columns,
        plan.target_key,
        version_column=plan.version_column,
        skip_unchanged=True,
        compare_as_text=plan.compare_as_text,
    )
