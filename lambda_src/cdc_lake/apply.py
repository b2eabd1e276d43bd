"""Apply one DMS CSV file to a PostgreSQL table, exactly once: COPY into a staging table, then a
set-based merge, and the ledger row, in one transaction.

Order without waiting for it. Files arrive out of order and may be replayed, so every row keeps
the commit time of the change that wrote it, in the target's own timestamp column (the DMS
`timestamp_column_name`, plus the change sequence column when DMS adds one), and a change is
applied only when it is not older than what the row holds. A delete leaves a tombstone (key,
commit time) in the target's `<STATE_SCHEMA>.cdc_lake_deleted_*` table, so an older insert or
update arriving after it cannot bring the row back. Within a file the last change per key wins
(commit time, change sequence, then file order).

Full-load rows load as upserts under the same rule. The module sets DMS's
`use_task_start_time_for_full_load_timestamp`, so they carry the time the task started, which is
older than every change DMS captured since: a change committed while the table was being loaded
is never shadowed by the loaded row, and the rows of a later full load (a reload) replace what
older changes wrote.

A file PostgreSQL refuses (a value of the wrong type, a missing key, an unknown Op) is rejected
whole, with the line PostgreSQL names: nothing of it is applied.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from psycopg2 import errors, sql

from cdc_lake.config import ApplyTable
from cdc_lake.merge import TOMBSTONE_COLUMNS, Columns, FileChanges, Tombstones, merge
from cdc_lake.reading import OP_COLUMN, FileFormatError, ObjectVersion, header_columns, open_stream
from pipeline_common.catalog import TableShape, describe_table
from pipeline_common.db import rollback_quietly
from pipeline_common.deadline import Deadline, DeadlineExceeded
from pipeline_common.errors import RetryableError
from pipeline_common.identifiers import IdentifierError
from pipeline_common.ledger import Ledger, ObjectId, Outcome
from pipeline_common.pgload import CopyFormat, copy_error_line, copy_in, create_staging, is_row_error

logger = logging.getLogger(__name__)

STAGING = "cdc_lake_changes"
SAVEPOINT = "cdc_lake_apply"
# Sorting a file's changes per key is the merge's largest cost: give it memory, for this
# transaction only.
MERGE_WORK_MEM = "128MB"


class TargetNotReady(RetryableError):
    """The target table cannot take the file yet (a column the file carries is missing, no key):
    a migration may fix it, so the message comes back instead of the file being rejected."""


class ApplyBusy(RetryableError):
    retry_after_seconds = 30


@dataclass
class ApplyResult:
    status: str  # applied | duplicate | rejected
    target: str
    rows: int = 0
    upserted: int = 0  # rows inserted or updated
    deleted: int = 0
    unchanged: int = 0  # changes older than the row, covered by a delete, or deleting a missing row
    error: str | None = None
    error_line: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


def applied_ledger(schema: str) -> Ledger:
    return Ledger(schema, "cdc_lake_applied", "cdc_lake_rejects")


def apply_file(
    *,
    table: ApplyTable,
    object_id: ObjectId,
    source: ObjectVersion,
    compressed: bool,
    timestamp_column: str,
    sequence_column: str | None,
    s3: Any,
    db: Any,
    ledger: Ledger,
    tombstones: Tombstones,
    deadline: Deadline,
) -> ApplyResult:
    """Apply the DMS file `source` (the lake copy of `object_id`) to `table.target`. Returns what
    happened; raises for what should bring the message back."""
    target = table.target
    result = ApplyResult("applied", str(target))
    where = f"s3://{source.bucket}/{source.key}"
    conn = db.get()
    ledger.ensure(conn)
    started = time.monotonic()
    try:
        with conn.cursor() as cur:
            shape = describe_table(cur, target)
            keys = _merge_keys(shape, table)
            deleted = tombstones.ensure(conn, target, keys)
            claim = ledger.claim(cur, object_id, deadline)
            if not claim.locked:
                conn.rollback()
                raise ApplyBusy(f"{object_id} is being applied by another invocation")
            if claim.done:
                conn.rollback()
                result.status = "duplicate"
                return result
            cur.execute(
                "SELECT set_config('TimeZone', 'UTC', true), set_config('work_mem', %s, true)", (MERGE_WORK_MEM,)
            )
            with open_stream(s3, source, deadline, compressed=compressed) as stream:
                header = header_columns(stream.readline(), where)
                columns = _map_columns(shape, table, keys, header, timestamp_column, sequence_column, where)
                cur.execute(f"SAVEPOINT {SAVEPOINT}")
                staging = _staging(cur, table, columns)
                try:
                    copy_in(cur, staging, columns.copied, stream, CopyFormat(format="csv"))
                except Exception as exc:
                    if not is_row_error(exc):
                        raise
                    cur.execute(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")
                    line = copy_error_line(exc)
                    result.error_line = None if line is None else line + 1  # the header is line 1
                    result.error = f"line {result.error_line}: {_first_line(exc)}"
            if result.error is None:
                changes = _file_stats(cur, staging, columns, result)
                _merge(cur, staging, table, columns, changes, result, deleted)
                outcome = Outcome(
                    "loaded",
                    target_table=str(target),
                    lines=result.rows,
                    rows_loaded=result.upserted + result.deleted,
                    rows_rejected=0,
                    details={
                        **result.details,
                        "upserted": result.upserted,
                        "deleted": result.deleted,
                        "unchanged": result.unchanged,
                    },
                )
            else:
                result.status = "rejected"
                outcome = Outcome(
                    "rejected",
                    target_table=str(target),
                    error=result.error,
                    error_line=result.error_line,
                    rows_loaded=0,
                )
            ledger.record(
                cur, object_id, Outcome(**{**outcome.__dict__, "duration_ms": int((time.monotonic() - started) * 1000)})
            )
        conn.commit()
    except (FileFormatError, IdentifierError) as exc:
        rollback_quietly(conn)
        result.status, result.error = "rejected", str(exc)
        result.error_line = getattr(exc, "line", None)
        ledger.record_attempt_quietly(
            db,
            object_id,
            Outcome("rejected", target_table=str(target), error=str(exc), error_line=result.error_line),
        )
    except ApplyBusy:
        raise
    except Exception as exc:
        rollback_quietly(conn)
        failure: Exception = exc
        if isinstance(exc, errors.QueryCanceled):  # the statement_timeout set above
            failure = DeadlineExceeded(f"stopping before the Lambda timeout: {str(exc).strip()}")
        status = "deferred" if isinstance(failure, DeadlineExceeded) else "failed"
        ledger.record_attempt_quietly(
            db,
            object_id,
            Outcome(status, target_table=str(target), error=f"{type(failure).__name__}: {failure}"),
        )
        if failure is exc:
            raise
        raise failure from exc
    if result.status == "rejected":
        logger.error("CDC file rejected", extra={"key": object_id.key, "table": str(target), "error": result.error})
    return result


def _merge_keys(shape: TableShape, table: ApplyTable) -> list[str]:
    """The configured key columns, or the target's primary key (else first unique index)."""
    unique = shape.unique_keys
    keys = list(table.key_columns) or (unique[0] if unique else [])
    clashing = [k for k in keys if k in TOMBSTONE_COLUMNS]
    if clashing:
        # The tombstone table holds the key columns next to its own: the names must differ.
        raise TargetNotReady(
            f"key column(s) {clashing} of {table.target} have the name of a tombstone column "
            f"({', '.join(TOMBSTONE_COLUMNS)}); apply it by another unique key (key_columns)"
        )
    if keys in unique:
        return keys
    if table.key_columns:
        raise TargetNotReady(f"{table.target} has no primary key or unique index on {keys}, which the merge needs")
    raise TargetNotReady(f"{table.target} has no primary key: give it one or set key_columns")


def _map_columns(
    shape: TableShape,
    table: ApplyTable,
    keys: list[str],
    header: list[str],
    timestamp_column: str,
    sequence_column: str | None,
    where: str,
) -> Columns:
    if timestamp_column not in header:
        raise FileFormatError(f"{where}: the header has no {timestamp_column!r} column: {header[:20]}", 1)
    target_columns = {c.name for c in shape.columns}
    written = [c for c in header if c != OP_COLUMN]
    missing = [c for c in written if c not in target_columns]
    if missing:
        raise TargetNotReady(
            f"{table.target} lacks the column(s) {missing} that {where} carries (add them, e.g. in a migration; "
            f"the file waits)"
        )
    absent = [k for k in keys if k not in header]
    if absent:
        raise FileFormatError(f"{where}: the header lacks the key column(s) {absent} of {table.target}", 1)
    sequence = sequence_column if sequence_column in header else None
    return Columns(header, written, keys, timestamp_column, sequence)


def _staging(cur: Any, table: ApplyTable, columns: Columns) -> sql.Composable:
    """The file's columns typed like the target's; keys and the commit time NOT NULL, the Op
    column limited to I, U and D, so a bad row stops the COPY with its line number."""
    staging = create_staging(cur, table.target, columns.written, STAGING, not_null=[*columns.keys, columns.timestamp])
    op = sql.Identifier(OP_COLUMN)
    cur.execute(
        sql.SQL("ALTER TABLE {} ADD COLUMN {} text NOT NULL DEFAULT 'I' CHECK ({} IN ('I', 'U', 'D'))").format(
            staging, op, op
        )
    )
    return staging


def _file_stats(cur: Any, staging: sql.Composable, columns: Columns, result: ApplyResult) -> FileChanges:
    """The file's counts and commit time range, into `result` for the ledger."""
    op, ts = sql.Identifier(OP_COLUMN), sql.Identifier(columns.timestamp)
    cur.execute(
        sql.SQL(
            "SELECT count(*), count(*) FILTER (WHERE {op} = 'I'), count(*) FILTER (WHERE {op} = 'U'), "
            "count(*) FILTER (WHERE {op} = 'D'), min({ts}), to_char(min({ts}), 'YYYY-MM-DD HH24:MI:SS.US'), "
            "to_char(max({ts}), 'YYYY-MM-DD HH24:MI:SS.US') FROM {staging}"
        ).format(op=op, ts=ts, staging=staging)
    )
    rows, inserts, updates, deletes, oldest, low, high = cur.fetchone()
    result.rows = rows
    result.details = {
        "rows": rows,
        "inserts": inserts,
        "updates": updates,
        "deletes": deletes,
        "min_commit_ts": low,
        "max_commit_ts": high,
    }
    return FileChanges(rows, deletes, oldest)


def _merge(
    cur: Any,
    staging: sql.Composable,
    table: ApplyTable,
    columns: Columns,
    changes: FileChanges,
    result: ApplyResult,
    tombstones: sql.Composable,
) -> None:
    """Apply the file's changes; counts go into `result`. A file without deletes first goes
    straight in (each row at most once per key, which a full load always is); a key changed twice
    makes PostgreSQL refuse that ("cannot affect row a second time") and the file goes in as its
    last change per key instead."""
    counts = None
    if changes.deletes == 0:
        cur.execute("SAVEPOINT cdc_lake_merge")
        try:
            counts = merge(cur, staging, table, columns, tombstones, changes, last_per_key=False)
            cur.execute("RELEASE SAVEPOINT cdc_lake_merge")
        except errors.CardinalityViolation:
            cur.execute("ROLLBACK TO SAVEPOINT cdc_lake_merge")
    if counts is None:
        counts = merge(cur, staging, table, columns, tombstones, changes, last_per_key=True)
    result.deleted, result.upserted = counts.deleted, counts.upserted
    result.unchanged = counts.changes - counts.deleted - counts.upserted


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
