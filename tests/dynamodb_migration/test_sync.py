"""The stream sync, fed the source table's real stream records (moto), as Lambda delivers them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tests.dynamodb_migration.conftest import Budget, Migration, on_call, untyped


def _target_writes(migration: Migration) -> list[dict[str, Any]]:
    """Every PutItem / DeleteItem the sync sends to the target from now on."""
    writes: list[dict[str, Any]] = []
    target = migration.settings.target_table

    def record(params: dict[str, Any], model: Any, **kwargs: Any) -> None:
        if params.get("TableName") == target:
            writes.append({"operation": model.name, **params})

    on_call(migration.client, "PutItem", record)
    on_call(migration.client, "DeleteItem", record)
    return writes


def _sequence(record: dict[str, Any]) -> str:
    return record["dynamodb"]["SequenceNumber"]


def test_inserts_updates_and_deletes_reach_the_target_transformed(migration: Migration) -> None:
    migration.put_source(id="a", pref="x", n=1)
    migration.put_source(id="b", pref="y", n=2)
    migration.put_source(id="a", pref="z", n=3)
    migration.delete_source(id="b")
    migration.put_source(id="c", n=4, channel="sms")

    assert migration.sync() == {"batchItemFailures": []}

    assert migration.target() == {
        "a": {"id": "a", "preference": "z", "n": 3, "channel": "email", "schema_version": 2},
        "c": {"id": "c", "n": 4, "channel": "sms", "schema_version": 2},
    }
    state = {
        item["pk"]: item
        for item in (untyped(i) for i in migration.client.scan(TableName=migration.settings.state_table)["Items"])
    }
    touched = {pk: item for pk, item in state.items() if pk.startswith("touched#")}
    assert len(touched) == 3
    assert touched['touched#[["S","b"]]']["deleted"] is True
    now = time.time()
    for item in touched.values():
        assert len(item["seq"]) == 40 and item["seq"].isdigit()
        assert now + 29 * 86400 < item["expires_at"] < now + 31 * 86400


def test_a_redelivered_batch_writes_no_older_image(migration: Migration) -> None:
    for n in range(3):
        migration.put_source(id="a", pref=f"v{n}", n=n)
    migration.put_source(id="b", pref="x", n=9)
    batch = migration.stream.read()
    assert migration.sync(batch) == {"batchItemFailures": []}
    settled = migration.target()
    writes = _target_writes(migration)

    assert migration.sync(batch) == {"batchItemFailures": []}

    assert migration.target() == settled
    # Only each key's latest record passes the guard again, rewriting the image already there
    # (DynamoDB writes no stream record and changes nothing for an identical put).
    assert sorted(w["Item"]["id"]["S"] for w in writes) == ["a", "b"]
    assert all(untyped(w["Item"]) == settled[w["Item"]["id"]["S"]] for w in writes)


def test_a_batch_redelivered_after_later_ones_changes_nothing(migration: Migration) -> None:
    migration.put_source(id="a", pref="old", n=1)
    migration.put_source(id="b", pref="old", n=1)
    first = migration.stream.read()
    migration.sync(first)
    migration.put_source(id="a", pref="new", n=2)
    migration.delete_source(id="b")
    migration.sync()
    writes = _target_writes(migration)

    assert migration.sync(first) == {"batchItemFailures": []}

    assert writes == []
    assert migration.target() == migration.expected()
    assert migration.target()["a"]["preference"] == "new" and "b" not in migration.target()


def test_a_failing_record_stops_the_batch_and_the_retry_continues_from_it(migration: Migration) -> None:
    for i in range(6):
        migration.put_source(id=f"k{i}", pref="x", n=i)
    batch = migration.stream.read()
    failures = {"left": 1}

    def fail_once_on_k3(params: dict[str, Any], **kwargs: Any) -> None:
        if params.get("Item", {}).get("id") == {"S": "k3"} and failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("the target write failed")

    on_call(migration.client, "PutItem", fail_once_on_k3)

    response = migration.sync(batch)

    assert response == {"batchItemFailures": [{"itemIdentifier": _sequence(batch[3])}]}
    assert sorted(migration.target()) == ["k0", "k1", "k2"], "records after the failed one wait for it"
    # Lambda retries from the reported record; a bisecting retry then delivers halves again.
    assert migration.sync(batch[3:]) == {"batchItemFailures": []}
    assert migration.sync(batch[:3]) == migration.sync(batch[3:]) == {"batchItemFailures": []}
    assert migration.target() == migration.expected()


def test_a_record_delivered_after_a_later_one_of_its_key_is_skipped(migration: Migration) -> None:
    migration.put_source(id="a", pref="first", n=1)
    migration.put_source(id="a", pref="second", n=2)
    older, newer = migration.stream.read()

    migration.sync([newer])
    migration.sync([older])

    assert migration.target()["a"]["preference"] == "second"


def test_binary_keys_and_values_arrive_as_bytes(make_migration: Callable[..., Migration]) -> None:
    migration = make_migration(transform={"rename": {"payload": "body"}})
    migration.client.put_item(
        TableName=migration.settings.source_table,
        Item={
            "id": {"S": "bin"},
            "payload": {"B": b"\x00\xff"},
            "set": {"BS": [b"\x01", b"\x02"]},
            "m": {"M": {"x": {"B": b"\x03"}}},
        },
    )
    (record,) = migration.stream.read()
    assert isinstance(record["dynamodb"]["NewImage"]["payload"]["B"], str), "Lambda sends base64 text"

    assert migration.sync([record]) == {"batchItemFailures": []}

    item = migration.client.get_item(TableName=migration.settings.target_table, Key={"id": {"S": "bin"}})["Item"]
    assert item["body"] == {"B": b"\x00\xff"}
    assert sorted(item["set"]["BS"]) == [b"\x01", b"\x02"] and item["m"] == {"M": {"x": {"B": b"\x03"}}}


def test_records_without_a_new_image_are_refused(make_migration: Callable[..., Migration]) -> None:
    migration = make_migration(stream_view="KEYS_ONLY")
    migration.put_source(id="a", pref="x")
    (record,) = migration.stream.read()

    assert migration.sync([record]) == {"batchItemFailures": [{"itemIdentifier": _sequence(record)}]}
    assert migration.target() == {}


def test_records_of_another_stream_are_refused(migration: Migration) -> None:
    migration.put_source(id="a", pref="x")
    (record,) = migration.stream.read()
    migration.settings = replace(
        migration.settings, source_stream_arn="arn:aws:dynamodb:us-east-1:123456789012:table/x/stream/1"
    )

    assert migration.sync([record]) == {"batchItemFailures": [{"itemIdentifier": _sequence(record)}]}
    assert migration.target() == {}


def test_the_deadline_hands_the_rest_of_the_batch_back(migration: Migration) -> None:
    for i in range(4):
        migration.put_source(id=f"k{i}", pref="x")
    batch = migration.stream.read()
    budget = Budget(ms=5_500)
    on_call(migration.client, "PutItem", lambda **kw: budget.spend(2_000))
    migration.deadline = budget.deadline

    response = migration.sync(batch)

    assert response == {"batchItemFailures": [{"itemIdentifier": _sequence(batch[2])}]}
    assert sorted(migration.target()) == ["k0", "k1"]
