"""The invariants of point 4, each under a forced interleaving, each with a control that removes its
guard and shows the interleaving then breaks the target (so the test can fail).

The copy runs one segment in one page; a hook on the copy's own client makes the source writer and
the stream sync act (on a client of their own) at the exact moment between two of the copy's calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dynamodb_migration import guard, state
from dynamodb_migration.state import StateTable
from tests.dynamodb_migration.conftest import Migration, on_call

VICTIM = "item-00003"


@pytest.fixture
def live(make_migration: Callable[..., Migration]) -> Migration:
    """A source of 20 items written before the stream mattered (their records are consumed), copied
    as one segment in one page, with a writer and the sync acting beside it."""
    migration = make_migration(total_segments=1, copy_concurrency=1, page_size=100)
    migration.fill_source(20)
    migration.stream.read()
    return migration


def _once_before(
    migration: Migration,
    operation: str,
    action: Callable[[], None],
    when: Callable[[dict[str, Any]], bool] = lambda p: True,
    nth: int = 1,
) -> None:
    """Run `action` once, right before the `nth` `operation` call of the copy's client matching `when`."""
    seen = {"calls": 0}

    def hook(params: dict[str, Any], **kwargs: Any) -> None:
        if when(params):
            seen["calls"] += 1
            if seen["calls"] == nth:
                action()

    on_call(migration.client, operation, hook)


def _writes_to(table: str) -> Callable[[dict[str, Any]], bool]:
    return lambda params: table in params.get("RequestItems", {}) or params.get("TableName") == table


def _update_and_sync(migration: Migration, **item: Any) -> Callable[[], None]:
    actor = migration.actor()

    def act() -> None:
        actor.put_source(**item)
        assert actor.sync() == {"batchItemFailures": []}

    return act


def _delete_and_sync(migration: Migration, key: str) -> Callable[[], None]:
    actor = migration.actor()

    def act() -> None:
        actor.delete_source(id=key)
        assert actor.sync() == {"batchItemFailures": []}

    return act


def _without_copy_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The copy no longer looks at the keys the stream touched."""
    monkeypatch.setattr(StateTable, "touched", lambda self, tokens, deadline, **options: {})


def _without_second_look(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check after each write sees what the check before it saw: nothing seems to change."""
    real = StateTable.touched
    calls: list[dict[str, str]] = []

    def touched(self: StateTable, tokens: Any, deadline: Any, **options: Any) -> dict[str, str]:
        calls.append(real(self, tokens, deadline, **options) if len(calls) % 2 == 0 else calls[-1])
        return calls[-1]

    monkeypatch.setattr(StateTable, "touched", touched)


def _touched_check(migration: Migration) -> Callable[[dict[str, Any]], bool]:
    state_table = migration.settings.state_table
    return lambda params: any(
        key["pk"]["S"].startswith("touched#")
        for key in params.get("RequestItems", {}).get(state_table, {}).get("Keys", [])
    )


# --- a copy write never leaves an image older than one the sync wrote ---------------------------


def test_a_newer_image_synced_while_the_copy_writes_stands(live: Migration) -> None:
    # The copy scanned v1; before its write lands, the item changes and the sync applies v2.
    _once_before(
        live,
        "BatchWriteItem",
        _update_and_sync(live, id=VICTIM, pref="v2", n=-1),
        _writes_to(live.settings.target_table),
    )

    result = live.copy()

    assert live.target()[VICTIM]["preference"] == "v2"
    assert live.target() == live.expected()
    assert result.totals["repaired"] == 1


def test_control_without_the_post_write_check_the_copy_overwrites_the_newer_image(
    live: Migration, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_copy_checks(monkeypatch)
    _once_before(
        live,
        "BatchWriteItem",
        _update_and_sync(live, id=VICTIM, pref="v2", n=-1),
        _writes_to(live.settings.target_table),
    )

    live.copy()

    assert live.target()[VICTIM]["preference"] == "p3", "the older scanned image won: the guard is what prevents it"


# --- an item deleted while the copy runs never comes back ---------------------------------------


def test_an_item_deleted_while_the_copy_writes_stays_deleted(live: Migration) -> None:
    _once_before(live, "BatchWriteItem", _delete_and_sync(live, VICTIM), _writes_to(live.settings.target_table))

    result = live.copy()

    assert VICTIM not in live.target()
    assert live.target() == live.expected()
    assert result.totals["repaired"] == 1


def test_control_without_the_check_a_deleted_item_is_resurrected(
    live: Migration, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_copy_checks(monkeypatch)
    _once_before(live, "BatchWriteItem", _delete_and_sync(live, VICTIM), _writes_to(live.settings.target_table))

    live.copy()

    assert VICTIM in live.target(), "resurrected: the guard is what prevents it"


def test_an_item_deleted_before_the_copy_writes_its_page_is_skipped(live: Migration) -> None:
    # Scanned, then deleted and synced before the copy looks at the page's keys: its tombstone
    # (the touched entry) keeps the copy from writing it at all.
    _once_before(live, "BatchGetItem", _delete_and_sync(live, VICTIM), _touched_check(live))

    result = live.copy()

    assert VICTIM not in live.target()
    assert result.totals["skipped"] == 1 and result.totals["written"] == 19 and result.totals["repaired"] == 0


def test_control_without_the_checks_the_tombstone_is_ignored(live: Migration, monkeypatch: pytest.MonkeyPatch) -> None:
    _without_copy_checks(monkeypatch)
    # With the checks gone there is no look at the touched keys: delete right before the write.
    _once_before(live, "BatchWriteItem", _delete_and_sync(live, VICTIM), _writes_to(live.settings.target_table))

    live.copy()

    assert VICTIM in live.target()


# --- a repair that races the sync repeats until no record slipped in ---------------------------


def _race_the_repair(live: Migration) -> None:
    """v2 is synced while the copy writes the page (so the key goes round again, from the source);
    while that second write of the v2 it read goes out, v3 is synced."""
    target = _writes_to(live.settings.target_table)
    _once_before(live, "BatchWriteItem", _update_and_sync(live, id=VICTIM, pref="v2", n=-1), target)
    _once_before(live, "BatchWriteItem", _update_and_sync(live, id=VICTIM, pref="v3", n=-1), target, nth=2)


def test_a_repair_raced_by_the_sync_goes_round_again(live: Migration) -> None:
    _race_the_repair(live)

    result = live.copy()

    assert live.target()[VICTIM]["preference"] == "v3"
    assert live.target() == live.expected()
    assert result.totals["repaired"] == 2


def test_control_without_the_second_look_the_older_image_stays(
    live: Migration, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_second_look(monkeypatch)
    _race_the_repair(live)

    live.copy()

    assert live.target()[VICTIM]["preference"] == "p3", "stale: the look after each write is what prevents it"


def test_a_key_that_never_settles_fails_the_page_and_the_next_run_fixes_it(
    live: Migration, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two rounds only: the second write (v2) lands over the v3 the sync wrote, and the page gives up.
    monkeypatch.setattr(guard, "MAX_ROUNDS", 2)
    _race_the_repair(live)

    result = live.copy()

    assert result.status == "failed" and "kept changing while they were written" in result.errors[0]
    assert result.segments[0]["scanned"] == 0, "the page is not checkpointed"
    assert live.target()[VICTIM]["preference"] == "v2"
    # The next run reads the page again; the key is touched, so its image comes from the source.
    again = live.copy()
    assert again.status == "done" and again.totals["skipped"] == 1
    assert live.target() == live.expected()


# --- a re-delivered stream batch changes nothing; per-key order holds ---------------------------


def _replay_after_newer(migration: Migration) -> None:
    migration.put_source(id="a", pref="old", n=1)
    first = migration.stream.read()
    migration.sync(first)
    migration.put_source(id="a", pref="new", n=2)
    migration.sync()
    migration.sync(first)


def test_a_replayed_older_record_is_refused(migration: Migration) -> None:
    _replay_after_newer(migration)
    assert migration.target()["a"]["preference"] == "new"


def test_control_without_the_sequence_guard_a_replay_rolls_the_item_back(
    migration: Migration, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state, "CLAIM_CONDITION", "attribute_not_exists(#seq) OR attribute_exists(#seq)")
    _replay_after_newer(migration)
    assert migration.target()["a"]["preference"] == "old"


def _cut_short_then_retry(migration: Migration) -> None:
    """The sync claims a record, then its target write fails (a timeout); Lambda retries it."""
    migration.put_source(id="a", pref="x", n=1)
    batch = migration.stream.read()
    failed = {"yet": False}

    def fail_first_write(params: dict[str, Any], **kwargs: Any) -> None:
        if params.get("TableName") == migration.settings.target_table and not failed["yet"]:
            failed["yet"] = True
            raise TimeoutError("the target write timed out")

    on_call(migration.client, "PutItem", fail_first_write)
    assert migration.sync(batch)["batchItemFailures"]
    assert migration.sync(batch) == {"batchItemFailures": []}


def test_a_record_cut_short_after_its_claim_is_applied_on_retry(migration: Migration) -> None:
    _cut_short_then_retry(migration)
    assert migration.target() == migration.expected()


def test_control_a_strict_guard_would_lose_the_record_cut_short(
    migration: Migration, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state, "CLAIM_CONDITION", "attribute_not_exists(#seq) OR #seq < :seq")
    _cut_short_then_retry(migration)
    assert migration.target() == {}, "lost: applying equal sequence numbers again is what prevents it"


def test_the_sync_claims_before_it_writes(migration: Migration) -> None:
    """The order the copy's check relies on: the touched entry exists before the target write."""
    migration.put_source(id="a", pref="x")
    seen: list[Any] = []

    def look(params: dict[str, Any], **kwargs: Any) -> None:
        if params.get("TableName") == migration.settings.target_table:
            tables = migration.actor().tables
            seen.append(tables.state.touched([tables.token({"id": {"S": "a"}})], migration.deadline))

    on_call(migration.client, "PutItem", look)
    migration.sync()
    assert seen and seen[0], "no touched entry yet when the target was written"
