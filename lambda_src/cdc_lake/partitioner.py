"""Copy one staged DMS file into its lake partition, exactly once: the partitioner's unit of work.

Under the object version's advisory lock the ledger is asked first (a replay copies nothing), the
partition time is taken from the notification (arrival) or the file's first row (commit), the
file is counted if configured, the server-side copy runs, and the ledger row is committed with
where the copy went. A copy that commits nothing (a crash, a timeout) is repeated onto the same
key: the result is the same object. Only after the commit is the staging object deleted, if so
configured, so a file is never gone from both places.

A full load restarted by DMS writes `LOAD00000001.csv` under the same staging key again: the
ledger already holds another version of that key, so the copy is recorded as a restart, with the
load's generation, and its files keep the generation in their lake names from the second load on
(`layout.generation_name`), so an earlier load's files in the same hour are never replaced.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg2 import sql

from cdc_lake.config import LakeConfig
from cdc_lake.copier import Copier
from cdc_lake.layout import (
    FIRST_LOAD_FILE,
    LayoutError,
    StagedFile,
    event_moment,
    generation_name,
    lake_key,
    staged_file,
)
from cdc_lake.reading import FileFormatError, ObjectVersion, file_stats, first_commit_time, open_stream
from pipeline_common.db import rollback_quietly
from pipeline_common.deadline import Deadline
from pipeline_common.errors import PermanentError, RetryableError
from pipeline_common.events import S3Object
from pipeline_common.ledger import Ledger, ObjectId, Outcome

logger = logging.getLogger(__name__)

RETRY_SOON_SECONDS = 30


class ObjectBusy(RetryableError):
    """Another invocation is copying or applying this object version right now."""

    retry_after_seconds = RETRY_SOON_SECONDS


class TargetTaken(RetryableError):
    """The lake key is already recorded for another version: a file of a restarted full load came
    before that load's first file. Once the first file is recorded the name carries the load's
    generation, so the message is simply tried again later."""

    retry_after_seconds = RETRY_SOON_SECONDS


@dataclass
class CopyResult:
    status: str  # copied | duplicate | ignored | rejected
    key: str
    version: str = ""
    target_key: str | None = None
    staged: StagedFile | None = None
    restart: bool = False
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def copies_ledger(schema: str) -> Ledger:
    return Ledger(schema, "cdc_lake_copies", "cdc_lake_rejects")


def partition_object(
    obj: S3Object,
    *,
    config: LakeConfig,
    s3: Any,
    copier: Copier,
    db: Any,
    ledger: Ledger,
    deadline: Deadline,
) -> CopyResult:
    """Copy the staged file `obj` into the lake. Returns what happened; raises for what should
    bring the message back (another invocation busy with it, a lost connection, the deadline)."""
    staged = staged_file(obj.key, config.staging_folder) if obj.bucket == config.staging_bucket else None
    if staged is None or (obj.event_name and not obj.event_name.startswith("ObjectCreated")):
        # Left alone on purpose: reported, never failed, so it cannot clog the queue or the DLQ.
        logger.warning("not a DMS file of the staging folder; left alone", extra={"bucket": obj.bucket, "key": obj.key})
        return CopyResult("ignored", obj.key)
    if not obj.version or obj.size is None:
        error = f"the notification of s3://{obj.bucket}/{obj.key} has no size or version/ETag"
        logger.error("staged file rejected", extra={"key": obj.key, "error": error})
        return CopyResult("rejected", obj.key, error=error)
    object_id = ObjectId(obj.bucket, obj.key, obj.version)
    source = ObjectVersion(obj.bucket, obj.key, obj.version_id, obj.etag)
    result = CopyResult("copied", obj.key, obj.version, staged=staged)
    started = time.monotonic()

    conn = db.get()
    ledger.ensure(conn)
    try:
        with conn.cursor() as cur:
            claim = ledger.claim(cur, object_id, deadline)
            if not claim.locked:
                conn.rollback()
                raise ObjectBusy(f"{object_id} is being copied by another invocation")
            if claim.done:
                result.status, result.target_key = "duplicate", recorded_target(cur, ledger, object_id)
                conn.rollback()
                return _delete_staged(result, config, copier, source, obj.size)
            details = _describe(obj, staged, config)
            moment = _partition_moment(obj, staged, config, s3, source, details)
            name = staged.name
            if staged.is_full_load:
                generation, restart = _load_generation(cur, ledger, object_id, staged, details["event_time"])
                details.update(generation=generation, restart=restart)
                name = generation_name(staged.name, generation)
                result.restart = restart
            target = lake_key(config.lake_prefix, staged, moment, name)
            if staged.is_full_load:
                _check_target_free(cur, ledger, object_id, config.lake_bucket, target)
            if config.count_rows and config.data_format == "csv":
                details.update(_count(s3, source, staged, config, deadline))
            deadline.check(what=f"copying {obj.size} bytes")
            copied = copier.copy(source, obj.size, config.lake_bucket, target)
            details.update(target_bucket=config.lake_bucket, target_key=target, multipart=copied.multipart)
            ledger.record(
                cur,
                object_id,
                Outcome(
                    "loaded",
                    target_table=f"s3://{config.lake_bucket}/{target}",
                    lines=details.get("rows"),
                    rows_loaded=details.get("rows"),
                    bytes=obj.size,
                    duration_ms=int((time.monotonic() - started) * 1000),
                    details=details,
                ),
            )
        conn.commit()
    except (ObjectBusy, TargetTaken):
        rollback_quietly(conn)
        raise
    except PermanentError as exc:
        # The file cannot be copied whatever happens next (its version is gone, its event is
        # unreadable): recorded as rejected, never retried.
        rollback_quietly(conn)
        result.status, result.error = "rejected", str(exc)
        ledger.record_attempt_quietly(db, object_id, Outcome("rejected", bytes=obj.size, error=str(exc)))
        logger.error("staged file rejected", extra={"key": obj.key, "error": str(exc)})
        return result
    except Exception as exc:
        rollback_quietly(conn)
        ledger.record_attempt_quietly(
            db, object_id, Outcome("failed", bytes=obj.size, error=f"{type(exc).__name__}: {exc}")
        )
        raise
    result.target_key, result.details = target, details
    if result.restart:
        logger.warning(
            "DMS loaded the table again: full-load restart recorded",
            extra={"table": f"{staged.schema}.{staged.table}", "generation": details["generation"], "key": obj.key},
        )
    return _delete_staged(result, config, copier, source, obj.size)


def _describe(obj: S3Object, staged: StagedFile, config: LakeConfig) -> dict[str, Any]:
    return {
        "schema": staged.schema,
        "table": staged.table,
        "file": staged.name,
        "kind": "full_load" if staged.is_full_load else "cdc",
        "load_number": staged.load_number,
        "version_id": obj.version_id,
        "etag": obj.etag,
        "size": obj.size,
        "event_time": obj.event_time,
        "partition_by": config.partition_by,
    }


def _partition_moment(
    obj: S3Object, staged: StagedFile, config: LakeConfig, s3: Any, source: ObjectVersion, details: dict[str, Any]
) -> datetime:
    arrival = event_moment(obj.event_time, obj.key)
    details["event_time"] = arrival.isoformat()
    moment = arrival
    if config.partition_by == "commit":
        try:
            first = first_commit_time(s3, source, config.timestamp_column, compressed=staged.compressed)
        except (FileFormatError, LayoutError) as exc:
            first, details["partition_note"] = None, f"partitioned by arrival: {exc}"
        if first is not None:
            moment = first
        elif "partition_note" not in details:
            details["partition_note"] = "partitioned by arrival: the file has no row"
    details["partition_time"] = moment.isoformat()
    return moment


def _count(
    s3: Any, source: ObjectVersion, staged: StagedFile, config: LakeConfig, deadline: Deadline
) -> dict[str, Any]:
    """Rows by operation and the commit time range, in one streaming pass; a file that cannot be
    counted is still copied, with the reason in the ledger."""
    where = f"s3://{source.bucket}/{source.key}"
    try:
        with open_stream(s3, source, deadline, compressed=staged.compressed) as stream:
            return file_stats(stream, config.timestamp_column, where).as_details()
    except (FileFormatError, OSError, EOFError) as exc:
        return {"count_error": str(exc)}


def _load_generation(
    cur: Any, ledger: Ledger, object_id: ObjectId, staged: StagedFile, event_time: str
) -> tuple[int, bool]:
    """Which full load of its table the file belongs to, and whether it starts a reload: the
    versions of the table's first load file recorded so far (arrived no later than this file)."""
    first_name = f"LOAD{FIRST_LOAD_FILE:08X}{staged.name[len('LOAD00000000') :]}"
    first_key = f"{staged.key[: -len(staged.name)]}{first_name}"
    cur.execute(
        sql.SQL(
            "SELECT count(*) FROM {} WHERE bucket = %s AND key = %s AND version <> %s AND status = 'loaded' "
            "AND (details->>'event_time')::timestamptz <= %s"
        ).format(sql.Identifier(ledger.schema, ledger.table)),
        (object_id.bucket, first_key, object_id.version, event_time),
    )
    earlier = int(cur.fetchone()[0])
    if staged.starts_a_load:
        return earlier + 1, earlier > 0
    return max(earlier, 1), False


def _check_target_free(cur: Any, ledger: Ledger, object_id: ObjectId, bucket: str, key: str) -> None:
    cur.execute(
        sql.SQL(
            "SELECT key, version FROM {} WHERE target_table = %s AND status = 'loaded' "
            "AND (bucket, key, version) <> (%s, %s, %s) LIMIT 1"
        ).format(sql.Identifier(ledger.schema, ledger.table)),
        (f"s3://{bucket}/{key}", object_id.bucket, object_id.key, object_id.version),
    )
    taken = cur.fetchone()
    if taken:
        raise TargetTaken(
            f"s3://{bucket}/{key} already holds {taken[0]} ({taken[1]}); {object_id} waits for its load's first file"
        )


def recorded_target(cur: Any, ledger: Ledger, object_id: ObjectId) -> str | None:
    """The lake key the ledger recorded for a copied object version."""
    cur.execute(
        sql.SQL("SELECT details->>'target_key' FROM {} WHERE bucket = %s AND key = %s AND version = %s").format(
            sql.Identifier(ledger.schema, ledger.table)
        ),
        (object_id.bucket, object_id.key, object_id.version),
    )
    row = cur.fetchone()
    return row[0] if row else None


def _delete_staged(
    result: CopyResult, config: LakeConfig, copier: Copier, source: ObjectVersion, size: int
) -> CopyResult:
    """After the commit (also for a replay, whose first run may have stopped right before it)."""
    if config.delete_staged and result.target_key:
        copier.delete_source(source, size, config.lake_bucket, result.target_key)
    return result
