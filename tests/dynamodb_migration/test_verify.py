"""Verify: exact counts, a key-by-key comparison with examples, and repairs through the guard."""

from __future__ import annotations

from typing import Any

import pytest

from dynamodb_migration.verify import VerifyResult, run_verify, verify_request
from pipeline_common.events import EventError
from tests.dynamodb_migration.conftest import Budget, Migration, on_call, typed


def _verify(migration: Migration, mode: str = "compare", **options: Any) -> VerifyResult:
    return run_verify(
        migration.tables,
        mode=mode,
        total_segments=options.pop("total_segments", migration.settings.total_segments),
        concurrency=2,
        page_size=options.pop("page_size", 25),
        examples=options.pop("examples", 10),
        deadline=options.pop("deadline", migration.deadline),
        **options,
    )


@pytest.fixture
def migrated(migration: Migration) -> Migration:
    migration.fill_source(60)
    migration.stream.read()  # written before the migration: the copy carries them
    assert migration.copy().status == "done"
    return migration


def _break_the_target(migration: Migration) -> None:
    client, target = migration.client, migration.settings.target_table
    client.delete_item(TableName=target, Key=typed({"id": "item-00005"}))  # missing
    client.put_item(TableName=target, Item=typed({"id": "ghost", "preference": "x"}))  # extra
    client.update_item(  # different: a stale value
        TableName=target,
        Key=typed({"id": "item-00007"}),
        UpdateExpression="SET preference = :p REMOVE channel",
        ExpressionAttributeValues={":p": {"S": "secret-value"}},
    )


def test_a_faithful_copy_matches(migrated: Migration) -> None:
    migrated.put_source(id="item-00001", pref="changed", n=1)
    migrated.delete_source(id="item-00002")
    migrated.sync()

    result = _verify(migrated)

    assert result.match and result.complete
    assert result.source_count == result.target_count == 59
    assert (result.missing, result.extra, result.different, result.in_flight) == (0, 0, 0, 0)
    assert result.segments_checked == [0, 1, 2, 3]


def test_differences_are_counted_with_examples_but_no_values(migrated: Migration) -> None:
    _break_the_target(migrated)

    result = _verify(migrated).to_json()

    assert result["match"] is False
    assert (result["missing"], result["extra"], result["different"]) == (1, 1, 1)
    assert (result["source_count"], result["target_count"]) == (60, 60)
    assert result["examples"] == {
        "missing": [{"id": "item-00005"}],
        "extra": [{"id": "ghost"}],
        "different": [{"key": {"id": "item-00007"}, "attributes": ["channel", "preference"]}],
    }
    assert "secret-value" not in str(result)


def test_examples_are_bounded(migrated: Migration) -> None:
    migrated.client.delete_table(TableName=migrated.settings.target_table)
    migrated.client.create_table(
        TableName=migrated.settings.target_table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    result = _verify(migrated, examples=3)
    assert result.missing == 60 and len(result.examples["missing"]) == 3


def test_count_mode_counts_with_scans_never_item_count(migrated: Migration) -> None:
    _break_the_target(migrated)
    migrated.client.delete_item(TableName=migrated.settings.target_table, Key=typed({"id": "item-00009"}))
    calls: list[dict[str, Any]] = []
    on_call(migrated.client, "Scan", lambda params, **kw: calls.append(params))
    on_call(migrated.client, "DescribeTable", lambda params, **kw: calls.append({"DescribeTable": params}))

    result = _verify(migrated, mode="count")

    assert (result.source_count, result.target_count) == (60, 59)
    assert result.match is False
    assert calls and all(c.get("Select") == "COUNT" and c.get("ConsistentRead") is True for c in calls)
    assert {c["Segment"] for c in calls} == {0, 1, 2, 3}


def test_repair_rewrites_every_difference_and_compare_then_matches(migrated: Migration) -> None:
    _break_the_target(migrated)
    migrated.put_source(id="item-00011", pref="changed-without-the-sync", n=0)
    migrated.stream.read()  # pretend its record was lost (gone to the on-failure queue)

    repaired = _verify(migrated, mode="repair")

    assert repaired.repaired == 4 and repaired.match
    assert migrated.target() == migrated.expected()
    assert _verify(migrated).match


def test_a_difference_that_settles_while_verify_looks_is_in_flight(migrated: Migration) -> None:
    migrated.put_source(id="item-00004", pref="new", n=4)
    actor = migrated.actor()
    done = {"yet": False}

    def sync_now(**kwargs: Any) -> None:
        if not done["yet"]:
            done["yet"] = True
            assert actor.sync() == {"batchItemFailures": []}

    on_call(migrated.client, "GetItem", sync_now)  # the second look at a difference

    result = _verify(migrated)

    assert result.in_flight == 1 and result.different == 0 and result.match


def test_a_verify_cut_short_by_the_deadline_says_so(migrated: Migration) -> None:
    budget = Budget(ms=8_000)
    on_call(migrated.client, "Scan", lambda **kw: budget.spend(3_000))

    result = _verify(migrated, deadline=budget.deadline)

    assert not result.complete and not result.match
    assert result.segments_incomplete


def test_a_subset_of_segments(migrated: Migration) -> None:
    result = _verify(migrated, segments=[1, 3])
    assert result.segments_checked == [1, 3] and result.match
    assert 0 < result.source_count < 60
    with pytest.raises(ValueError, match="verify segments must be between 0 and 3"):
        _verify(migrated, segments=[4])


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"mode": "fix"}, "verify mode must be one of count, compare, repair"),
        ({"segments": "0"}, "verify segments must be a list of segment numbers"),
        ({"segments": [True]}, "verify segments must be a list of segment numbers"),
        ({"mode": "count", "table": "x"}, "verify request has unknown key(s) table"),
    ],
)
def test_bad_verify_requests_are_refused(event: dict[str, Any], message: str) -> None:
    with pytest.raises(EventError) as raised:
        verify_request(event)
    assert message in str(raised.value)
    assert verify_request({}) == ("compare", None)
