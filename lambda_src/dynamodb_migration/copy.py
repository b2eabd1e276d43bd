"""The copy: parallel Scan segments of the source into the target, checkpointed per page.

Each invocation leases unfinished segments (TotalSegments of them, `concurrency` at a time),
scans each from its stored LastEvaluatedKey, writes every page through the guard
(`guard.copy_page`) and commits the page's LastEvaluatedKey and counts to the segment's state item.
It stops starting pages when the deadline nears, so the next invocation (by hand or by schedule)
continues where this one stopped; once every segment is done, invocations return at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from dynamodb_migration.dynamo import call, describe_key
from dynamodb_migration.guard import PageCounts, Tables, copy_page
from dynamodb_migration.state import Segment
from pipeline_common.deadline import Deadline, DeadlineExceeded
from pipeline_common.errors import PermanentError, PipelineError, aws_error_code, is_retryable

logger = logging.getLogger(__name__)

STREAM_VIEWS = ("NEW_IMAGE", "NEW_AND_OLD_IMAGES")
PROGRESS_EVERY_SECONDS = 30.0
FIRST_PAGE_GUESS_MS = 5_000.0


@dataclass
class CopyResult:
    status: str  # done | continues | failed
    segments: list[dict[str, Any]]
    totals: dict[str, int]
    this_run: dict[str, Any]
    estimated_items: int | None  # the source's ItemCount: AWS refreshes it about every six hours
    eta_seconds: float | None
    busy_segments: list[int] = field(default_factory=list)  # leased by another live invocation
    errors: list[str] = field(default_factory=list)
    retryable: bool = True  # every error may pass on a later run (throttling, a lost lease)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "totals": self.totals,
            "this_run": self.this_run,
            "estimated_items": self.estimated_items,
            "eta_seconds": self.eta_seconds,
            "busy_segments": self.busy_segments,
            "errors": self.errors,
            "retryable": self.retryable,
            "segments": self.segments,
        }


def check_tables(tables: Tables, source_stream_arn: str | None, deadline: Deadline) -> int | None:
    """Refuse to copy between tables whose keys differ from KEY_ATTRIBUTES, or from a source whose
    stream is off or is not the one the sync reads. Returns the source's approximate ItemCount."""
    source_key, source = describe_key(tables.client, tables.source)
    target_key, _ = describe_key(tables.client, tables.target)
    for name, key in ((tables.source, source_key), (tables.target, target_key)):
        if key != tables.key_attributes:
            raise PermanentError(
                f"table {name} has key {list(key)}, but KEY_ATTRIBUTES is {list(tables.key_attributes)}: "
                "source and target must share the key"
            )
    stream = source.get("StreamSpecification") or {}
    if not stream.get("StreamEnabled") or stream.get("StreamViewType") not in STREAM_VIEWS:
        raise PermanentError(
            f"table {tables.source} needs a stream with NEW_AND_OLD_IMAGES (or NEW_IMAGE), read by the sync, "
            "before the copy starts; its stream is "
            f"{stream.get('StreamViewType') if stream.get('StreamEnabled') else 'off'}"
        )
    if source_stream_arn and source.get("LatestStreamArn") != source_stream_arn:
        raise PermanentError(
            f"the sync reads {source_stream_arn}, but the current stream of {tables.source} is "
            f"{source.get('LatestStreamArn')} (was the stream switched off and on?): changes on the new stream "
            "would be missed; point the sync at it and start the migration over"
        )
    return source.get("ItemCount")


def run_copy(
    tables: Tables,
    *,
    total_segments: int,
    concurrency: int,
    page_size: int,
    deadline: Deadline,
    owner: str,
    source_stream_arn: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> CopyResult:
    started = clock()
    estimated = check_tables(tables, source_stream_arn, deadline)
    tables.state.begin_copy(
        fingerprint=tables.transform.fingerprint,
        total_segments=total_segments,
        source=tables.source,
        target=tables.target,
        deadline=deadline,
    )
    segments = {s.index: s for s in tables.state.segments(total_segments, deadline)}
    pending = [s.index for s in segments.values() if not s.done]
    run = PageCounts()
    scanned_now = 0
    busy: list[int] = []
    errors: list[str] = []
    retryable = True
    lock = threading.Lock()
    # The lease outlives this invocation, so a crashed invocation's segments free up after its timeout.
    lease_seconds = deadline.remaining_ms() / 1000 + 60

    def next_segment() -> Segment | None:
        while not deadline.expired(FIRST_PAGE_GUESS_MS):
            with lock:
                if not pending:
                    return None
                index = pending.pop(0)
            segment = tables.state.lease(index, owner, lease_seconds, deadline)
            if segment is not None:
                return segment
            with lock:
                busy.append(index)
        return None

    def work() -> None:
        nonlocal scanned_now, run, retryable
        while (segment := next_segment()) is not None:
            segments[segment.index] = segment
            try:
                for page_items, counts in _copy_segment(tables, segment, owner, page_size, total_segments, deadline):
                    with lock:
                        run += counts
                        scanned_now += page_items
            except DeadlineExceeded:
                # A backoff or the rate cap would run into the reserve: stop; the next run continues.
                logger.info("copy stopped a segment before the deadline", extra={"segment": segment.index})
                return
            except (PipelineError, ClientError) as exc:
                message = f"segment {segment.index}: {_describe(exc)}"
                logger.error("copy stopped a segment", extra={"segment": segment.index, "error": message})
                with lock:
                    errors.append(message)
                    retryable = retryable and is_retryable(exc)
            finally:
                tables.state.release(segment.index, owner, deadline)

    if pending:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(pending)), thread_name_prefix="segment") as pool:
            futures = [pool.submit(work) for _ in range(min(concurrency, len(pending)))]
            while True:
                finished, running = wait(futures, timeout=PROGRESS_EVERY_SECONDS, return_when=FIRST_EXCEPTION)
                for future in finished:
                    future.result()  # a bug, not a data error: let it surface
                if not running:
                    break
                logger.info(
                    "copy progress",
                    extra={"progress": _summary(segments, run, scanned_now, clock() - started, estimated)},
                )

    if all(s.done for s in segments.values()):
        tables.state.finish_copy(deadline)
    summary = _summary(segments, run, scanned_now, clock() - started, estimated)
    summary["this_run"].update(throttled=tables.counters.throttled, unprocessed=tables.counters.unprocessed)
    status = "failed" if errors else ("done" if all(s.done for s in segments.values()) else "continues")
    return CopyResult(
        status=status,
        segments=[segments[i].progress() for i in sorted(segments)],
        totals=summary["totals"],
        this_run=summary["this_run"],
        estimated_items=estimated,
        eta_seconds=0.0 if status == "done" else summary["eta_seconds"],
        busy_segments=sorted(busy),
        errors=errors,
        retryable=retryable,
    )


def _copy_segment(
    tables: Tables, segment: Segment, owner: str, page_size: int, total_segments: int, deadline: Deadline
) -> Iterator[tuple[int, PageCounts]]:
    """Copy pages of one segment until it is done or the deadline nears; yields (scanned, counts)
    after each committed page."""
    page_ms = FIRST_PAGE_GUESS_MS
    while not segment.done and not deadline.expired(1.5 * page_ms):
        began = time.monotonic()
        request: dict[str, Any] = {
            "TableName": tables.source,
            "Segment": segment.index,
            "TotalSegments": total_segments,
            "Limit": page_size,
            # Strongly consistent: an item changed just before the stream was switched on has no
            # record, so the copy must not read an older version of it.
            "ConsistentRead": True,
        }
        if segment.last_key is not None:
            request["ExclusiveStartKey"] = segment.last_key
        page = call(tables.client.scan, deadline, tables.counters, **request)
        items = page.get("Items", [])
        counts = copy_page(tables, items, deadline)
        segment.last_key = page.get("LastEvaluatedKey")
        segment.done = segment.last_key is None
        tables.state.checkpoint(
            segment,
            owner,
            scanned=len(items),
            written=counts.written,
            skipped=counts.skipped,
            repaired=counts.repaired,
            deadline=deadline,
        )
        segment.scanned += len(items)
        segment.written += counts.written
        segment.skipped += counts.skipped
        segment.repaired += counts.repaired
        page_ms = (time.monotonic() - began) * 1000
        yield len(items), counts


def _summary(
    segments: dict[int, Segment], run: PageCounts, scanned_now: int, seconds: float, estimated: int | None
) -> dict[str, Any]:
    totals = {
        "segments": len(segments),
        "segments_done": sum(s.done for s in segments.values()),
        "scanned": sum(s.scanned for s in segments.values()),
        "written": sum(s.written for s in segments.values()),
        "skipped": sum(s.skipped for s in segments.values()),
        "repaired": sum(s.repaired for s in segments.values()),
    }
    rate = scanned_now / seconds if seconds > 0 else 0.0
    eta = None
    if estimated is not None and rate > 0:
        eta = round(max(0, estimated - totals["scanned"]) / rate, 1)
    this_run: dict[str, Any] = {
        "scanned": scanned_now,
        "written": run.written,
        "skipped": run.skipped,
        "repaired": run.repaired,
        "seconds": round(seconds, 3),
        "items_per_second": round(rate, 1),
    }
    return {"totals": totals, "this_run": this_run, "eta_seconds": eta}


def _describe(exc: BaseException) -> str:
    code = aws_error_code(exc)
    return f"{code}: {exc}" if code else str(exc)
