"""The copy: parallel checkpointed segments, deadline stops, crashes, leases, refused settings."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from dynamodb_migration.copy import run_copy
from dynamodb_migration.handler import tables_for
from dynamodb_migration.state import StateTable
from pipeline_common.deadline import Deadline, RateLimit
from pipeline_common.errors import PermanentError
from tests.dynamodb_migration.conftest import Budget, Migration, on_call, untyped


def _state(migration: Migration) -> dict[str, dict[str, Any]]:
    items = migration.client.scan(TableName=migration.settings.state_table, ConsistentRead=True)["Items"]
    return {item["pk"]: item for item in (untyped(i) for i in items)}


def test_copy_writes_every_item_transformed_and_reports_progress(migration: Migration) -> None:
    migration.fill_source(230)
    result = migration.copy()

    assert result.status == "done" and result.errors == []
    assert migration.target() == migration.expected()
    sample = migration.target_item(id="item-00008")
    assert sample == {"id": "item-00008", "preference": "p1", "n": 8, "channel": "email", "schema_version": 2}
    # Progress per segment adds up; nothing of the bookkeeping is in the target.
    assert len(result.segments) == 4 and all(s["done"] for s in result.segments)
    assert sum(s["scanned"] for s in result.segments) == 230 == result.totals["scanned"] == result.totals["written"]
    assert result.this_run["scanned"] == 230 and result.this_run["items_per_second"] > 0
    assert result.eta_seconds == 0.0 and result.estimated_items == 230
    state = _state(migration)
    assert state["copy"]["finished_at"] >= state["copy"]["started_at"]
    assert {pk for pk in state if pk.startswith("segment#")} == {f"segment#{i:05d}" for i in range(4)}
    assert all("lease_owner" not in state[f"segment#{i:05d}"] for i in range(4)), "leases are released"


def test_a_finished_copy_invoked_again_writes_nothing(migration: Migration) -> None:
    migration.fill_source(60)
    migration.copy()
    writes: list[Any] = []
    on_call(migration.client, "BatchWriteItem", lambda **kw: writes.append(kw))
    scans: list[Any] = []
    on_call(migration.client, "Scan", lambda **kw: scans.append(kw))

    again = migration.copy()

    assert again.status == "done" and again.this_run["scanned"] == 0
    assert writes == [] and scans == []
    assert again.totals["scanned"] == 60


def test_the_deadline_stops_the_copy_between_pages_and_the_next_run_continues(migration: Migration) -> None:
    migration.fill_source(230)
    budget = Budget(ms=20_000)
    on_call(migration.client, "Scan", lambda **kw: budget.spend(4_000))

    first = migration.copy(deadline=budget.deadline)

    assert first.status == "continues"
    assert 0 < first.totals["scanned"] < 230
    assert first.eta_seconds is not None and first.eta_seconds > 0
    stopped = [s for s in first.segments if not s["done"]]
    assert stopped, first.segments
    copied = len(migration.target())
    assert copied == first.totals["written"], "every committed page is in the target, nothing beyond"

    second = migration.copy()
    assert second.status == "done"
    assert second.totals["scanned"] == 230, "pages committed by the first run are not read again"
    assert second.this_run["scanned"] == 230 - first.totals["scanned"]
    assert migration.target() == migration.expected()


def test_a_crash_mid_page_resumes_from_the_last_checkpoint(
    migration: Migration, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An invocation killed mid-page (no cleanup at all) leaves its leases; once they expire, the
    next invocation redoes the uncommitted page and finishes, each page counted once."""
    migration.fill_source(230)
    calls = {"n": 0}

    def kill_on_fifth_write(**kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("Lambda timed out")  # not an error the copy handles

    remove = on_call(migration.client, "BatchWriteItem", kill_on_fifth_write)
    monkeypatch.setattr(StateTable, "release", lambda *a, **k: None)  # a killed sandbox cleans nothing
    with pytest.raises(KeyboardInterrupt):
        migration.copy(concurrency=1)
    remove()
    monkeypatch.undo()
    crashed = [s for s in migration.tables.state.segments(4, migration.deadline) if not s.done]
    assert crashed

    # Right after the crash the dead invocation still holds its segment.
    busy = migration.copy()
    assert busy.busy_segments and busy.status == "continues"

    later = migration.tables
    later.state.clock = lambda: time.time() + 3600  # past the dead invocation's lease
    resumed = run_copy(later, total_segments=4, concurrency=2, page_size=50, deadline=migration.deadline, owner="next")
    assert resumed.status == "done", resumed.to_json()
    assert resumed.totals["scanned"] == 230
    assert migration.target() == migration.expected()


def test_two_invocations_never_work_the_same_segment(migration: Migration) -> None:
    migration.fill_source(40)
    state = migration.tables.state
    for segment in range(4):
        assert state.lease(segment, "other-invocation", 900, migration.deadline) is not None

    result = migration.copy(owner="me")

    assert result.status == "continues" and result.busy_segments == [0, 1, 2, 3]
    assert migration.target() == {}
    assert state.lease(0, "third-invocation", 900, migration.deadline) is None


def test_a_copy_started_with_other_settings_is_not_resumed(
    migration: Migration, make_migration: Callable[..., Migration]
) -> None:
    migration.fill_source(30)
    migration.copy()
    changed = make_migration(transform={"set": {"schema_version": 3}})
    same_tables = ("source_table", "target_table", "state_table", "source_stream_arn")
    changed.settings = replace(changed.settings, **{k: getattr(migration.settings, k) for k in same_tables})
    with pytest.raises(PermanentError, match=r"started with fingerprint .* resuming would mix both"):
        changed.copy()
    with pytest.raises(PermanentError, match="started with total_segments '4', now '8'"):
        migration.copy(total_segments=8)


def test_tables_are_checked_before_anything_is_copied(make_migration: Callable[..., Migration]) -> None:
    keys_only = make_migration(stream_view="KEYS_ONLY")
    with pytest.raises(PermanentError, match=r"needs a stream with NEW_AND_OLD_IMAGES .* its stream is KEYS_ONLY"):
        keys_only.copy()

    migration = make_migration()
    migration.client.update_table(
        TableName=migration.settings.source_table, StreamSpecification={"StreamEnabled": False}
    )
    with pytest.raises(PermanentError, match="its stream is off"):
        migration.copy()
    # A sync following an earlier stream of the table (switched off and on since) would miss changes.
    renewed = make_migration()
    renewed.settings = replace(renewed.settings, source_stream_arn=renewed.settings.source_stream_arn + "-old")
    with pytest.raises(PermanentError, match="was the stream switched off and on"):
        renewed.copy()

    composite = make_migration(key=("id", "sort"))
    composite.settings = replace(composite.settings, key_attributes=("id",))
    with pytest.raises(PermanentError, match=r"has key \['id', 'sort'\], but KEY_ATTRIBUTES is \['id'\]"):
        composite.copy()
    assert migration.scan(migration.settings.state_table) == {}, "nothing recorded for a refused copy"


def test_composite_keys_binary_and_numbers_copy_exactly(make_migration: Callable[..., Migration]) -> None:
    migration = make_migration(transform={"drop": ["tmp"]}, key=("id", "sort"))
    for i in range(30):
        migration.client.put_item(
            TableName=migration.settings.source_table,
            Item={
                "id": {"S": f"u{i % 3}"},
                "sort": {"S": f"s{i:03d}"},
                "blob": {"B": bytes([i, 0, 255])},
                "tags": {"SS": ["a", "b"]},
                "price": {"N": "12.50"},
                "nested": {"M": {"l": {"L": [{"N": "1"}, {"NULL": True}]}}},
                "tmp": {"S": "x"},
            },
        )
    assert migration.copy().status == "done"
    target = migration.client.scan(TableName=migration.settings.target_table)["Items"]
    assert len(target) == 30
    for item in target:
        i = int(item["sort"]["S"][1:])
        assert item["blob"] == {"B": bytes([i, 0, 255])} and "tmp" not in item
        assert untyped(item)["price"] == untyped({"p": {"N": "12.5"}})["p"]


def test_a_page_the_target_refuses_fails_its_segment_only(make_migration: Callable[..., Migration]) -> None:
    """An item the transform makes too big for DynamoDB (400 KB) stops its segment with the error;
    the other segments finish, and the failed page is not checkpointed."""
    migration = make_migration(transform={"add": {"padding": "x" * 200_000}})
    migration.fill_source(40)
    migration.put_source(id="huge", pref="p", blob="y" * 250_000)

    result = migration.copy()

    assert result.status == "failed"
    (error,) = result.errors
    assert "ValidationException" in error
    failed = int(error.split(":")[0].removeprefix("segment "))
    assert [s["segment"] for s in result.segments if not s["done"]] == [failed]
    assert "huge" not in migration.target()


def test_the_write_rate_cap_paces_every_write(migration: Migration) -> None:
    migration.fill_source(120)
    taken: list[int] = []
    slept: list[float] = []

    class CountingRateLimit(RateLimit):
        def take(self, units: int, deadline: Deadline) -> float:
            taken.append(units)
            return super().take(units, deadline)

    tables = migration.tables
    tables.rate_limit = CountingRateLimit(50)
    deadline = Deadline.in_seconds(600, sleep=slept.append)
    result = run_copy(tables, total_segments=4, concurrency=2, page_size=50, deadline=deadline, owner="x")
    assert result.status == "done"
    assert sum(taken) == 120 and max(taken) <= 25
    assert sum(slept) >= 1.0, "120 items at 50/s with a one-second burst wait more than a second"

    # Through the handler's settings: WRITE_RATE_LIMIT=0 means no cap.
    assert tables_for(replace(migration.settings, write_rate_limit=0), migration.client).rate_limit is None
