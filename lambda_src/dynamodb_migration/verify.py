"""Verify (the seed's counter, made exact): count both tables, compare them key by key, repair.

- `count`: parallel `Select=COUNT` scans of both tables, segment by segment (never `ItemCount`,
  which AWS refreshes about every six hours).
- `compare`: per segment, every source item is transformed and compared with the target's item of
  the same key (read in batches, strongly consistent): *missing* or *different*; then every target
  key is looked up in the source: *extra*. Each difference is read again before it is counted, so
  an item that changed while it was being compared counts as `in_flight`, not as a difference.
  Counts come from the same scans.
- `repair`: as compare, and each difference is rewritten from the source through the guard's
  `reconcile`, the same path the copy uses, so a repair never undoes the stream sync.

Only keys and attribute names appear in examples, never values.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from dynamodb_migration.dynamo import call, get_batch, projected, scan_segment
from dynamodb_migration.guard import Tables, reconcile
from dynamodb_migration.items import Item, differing_attributes, plain
from pipeline_common.deadline import Deadline
from pipeline_common.events import EventError

MODES = ("count", "compare", "repair")
PAGE_MS = 2_000  # time kept for one more page of a scan


@dataclass
class VerifyResult:
    mode: str
    source_table: str
    target_table: str
    source_count: int = 0
    target_count: int = 0
    missing: int = 0
    extra: int = 0
    different: int = 0
    in_flight: int = 0
    repaired: int = 0
    segments_checked: list[int] = field(default_factory=list)
    segments_incomplete: list[int] = field(default_factory=list)
    examples: dict[str, list[Any]] = field(default_factory=lambda: {"missing": [], "extra": [], "different": []})
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.segments_incomplete

    @property
    def match(self) -> bool:
        """count: the counts are equal; compare: no difference; repair: every difference repaired.
        Counts from compare scans are taken moments apart on a live table, so only the key-by-key
        comparison decides there."""
        if not self.complete:
            return False
        if self.mode == "count":
            return self.source_count == self.target_count
        return self.missing + self.extra + self.different == self.repaired

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "match": self.match,
            "complete": self.complete,
            "source_table": self.source_table,
            "target_table": self.target_table,
            "source_count": self.source_count,
            "target_count": self.target_count,
            "missing": self.missing,
            "extra": self.extra,
            "different": self.different,
            "in_flight": self.in_flight,
            "repaired": self.repaired,
            "segments_checked": self.segments_checked,
            "segments_incomplete": self.segments_incomplete,
            "examples": self.examples,
            "seconds": self.seconds,
        }


class _Tally:
    """The result under a lock, shared by the segment threads."""

    def __init__(self, result: VerifyResult, examples: int) -> None:
        self.result = result
        self.limit = examples
        self.lock = threading.Lock()

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self.result, name, getattr(self.result, name) + value)

    def difference(self, kind: str, example: Any) -> None:
        with self.lock:
            setattr(self.result, kind, getattr(self.result, kind) + 1)
            if len(self.result.examples[kind]) < self.limit:
                self.result.examples[kind].append(example)

    def segment(self, index: int, complete: bool) -> None:
        with self.lock:
            (self.result.segments_checked if complete else self.result.segments_incomplete).append(index)


def verify_request(event: Mapping[str, Any]) -> tuple[str, list[int] | None]:
    """`{"mode": ..., "segments": [...]}` of a verify invocation, both optional."""
    unknown = sorted(set(event) - {"mode", "segments"})
    if unknown:
        raise EventError(f"verify request has unknown key(s) {', '.join(unknown)}; allowed: mode, segments")
    mode = event.get("mode", "compare")
    if mode not in MODES:
        raise EventError(f"verify mode must be one of {', '.join(MODES)}, got {mode!r}")
    segments = event.get("segments")
    if segments is not None and (
        not isinstance(segments, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in segments)
    ):
        raise EventError(f"verify segments must be a list of segment numbers, got {segments!r}")
    return mode, segments


def run_verify(
    tables: Tables,
    *,
    mode: str,
    total_segments: int,
    concurrency: int,
    page_size: int,
    examples: int,
    deadline: Deadline,
    segments: Sequence[int] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> VerifyResult:
    if mode not in MODES:
        raise ValueError(f"verify mode must be one of {', '.join(MODES)}, got {mode!r}")
    wanted = sorted(set(range(total_segments) if segments is None else segments))
    if any(not 0 <= s < total_segments for s in wanted):
        raise ValueError(f"verify segments must be between 0 and {total_segments - 1}, got {list(segments or [])}")
    started = clock()
    tally = _Tally(VerifyResult(mode, tables.source, tables.target), examples)

    def check(segment: int) -> None:
        if mode == "count":
            complete = _count(tables, tables.source, segment, total_segments, deadline, tally, "source_count")
            complete &= _count(tables, tables.target, segment, total_segments, deadline, tally, "target_count")
        else:
            complete = _compare_source(tables, segment, total_segments, page_size, deadline, tally, mode == "repair")
            complete &= _compare_target(tables, segment, total_segments, page_size, deadline, tally, mode == "repair")
        tally.segment(segment, complete)

    with ThreadPoolExecutor(max_workers=min(concurrency, len(wanted)) or 1, thread_name_prefix="verify") as pool:
        list(pool.map(check, wanted))
    result = tally.result
    result.segments_checked.sort()
    result.segments_incomplete.sort()
    result.seconds = round(clock() - started, 3)
    return result


def _count(
    tables: Tables, table: str, segment: int, total: int, deadline: Deadline, tally: _Tally, counter: str
) -> bool:
    page: dict[str, Any] = {}
    for page in scan_segment(
        tables.client, table, segment, total, deadline, need_ms=PAGE_MS, counters=tables.counters, Select="COUNT"
    ):
        tally.add(**{counter: page["Count"]})
    return bool(page) and "LastEvaluatedKey" not in page


def _compare_source(
    tables: Tables, segment: int, total: int, page_size: int, deadline: Deadline, tally: _Tally, repair: bool
) -> bool:
    """Source items against the target's: missing and different."""
    page: dict[str, Any] = {}
    for page in scan_segment(
        tables.client,
        tables.source,
        segment,
        total,
        deadline,
        need_ms=PAGE_MS,
        counters=tables.counters,
        Limit=page_size,
    ):
        items = page.get("Items", [])
        tally.add(source_count=len(items))
        keys = [tables.key(item) for item in items]
        found = {
            tables.token(tables.key(t)): t
            for t in get_batch(tables.client, tables.target, keys, deadline, counters=tables.counters)
        }
        for key, item in zip(keys, items, strict=True):
            target = found.get(tables.token(key))
            if target is None or differing_attributes(tables.transform.apply(item), target):
                _settle(tables, key, deadline, tally, repair)
    return bool(page) and "LastEvaluatedKey" not in page


def _compare_target(
    tables: Tables, segment: int, total: int, page_size: int, deadline: Deadline, tally: _Tally, repair: bool
) -> bool:
    """Target keys without a source item: extra."""
    keys_only = projected(tables.key_attributes)
    page: dict[str, Any] = {}
    for page in scan_segment(
        tables.client,
        tables.target,
        segment,
        total,
        deadline,
        need_ms=PAGE_MS,
        counters=tables.counters,
        Limit=page_size,
        **keys_only,
    ):
        keys = page.get("Items", [])
        tally.add(target_count=len(keys))
        present = {
            tables.token(tables.key(s))
            for s in get_batch(
                tables.client, tables.source, keys, deadline, projection=tables.key_attributes, counters=tables.counters
            )
        }
        for key in keys:
            if tables.token(key) not in present:
                _settle(tables, tables.key(key), deadline, tally, repair)
    return bool(page) and "LastEvaluatedKey" not in page


def _settle(tables: Tables, key: Item, deadline: Deadline, tally: _Tally, repair: bool) -> None:
    """Read a difference again (it may have been in flight); count what remains; repair it if asked."""
    source = _get(tables, tables.source, key, deadline)
    target = _get(tables, tables.target, key, deadline)
    expected = tables.transform.apply(source) if source is not None else None
    if expected is None and target is None:
        tally.add(in_flight=1)
        return
    if expected is None:
        tally.difference("extra", plain(key))
    elif target is None:
        tally.difference("missing", plain(key))
    else:
        attributes = differing_attributes(expected, target)
        if not attributes:
            tally.add(in_flight=1)
            return
        tally.difference("different", {"key": plain(key), "attributes": attributes})
    if repair:
        reconcile(tables, [key], deadline)
        tally.add(repaired=1)


def _get(tables: Tables, table: str, key: Item, deadline: Deadline) -> Item | None:
    response = call(tables.client.get_item, deadline, tables.counters, TableName=table, Key=key, ConsistentRead=True)
    return response.get("Item")
