"""DMS files applied to real PostgreSQL tables through the deployed flow (staging -> lake ->
PostgreSQL): full load, inserts, updates and deletes, out-of-order and replayed files, and files
PostgreSQL refuses."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cdc_lake.merge import tombstone_table_name
from pipeline_common.identifiers import QualifiedName
from tests.cdc_lake.conftest import FOLDER, TS, Lake, dms_csv

COLUMNS = ["Op", TS, "order_id", "customer", "amount", "status", "dms_change_seq"]
T0 = "2026-03-01 10:00:00.000000"  # the task's start: every full-load row carries it


def orders(*rows: tuple) -> bytes:
    return dms_csv(COLUMNS, rows)


def key(name: str, table: str = "orders") -> str:
    return f"{FOLDER}/sales/{table}/{name}"


def table(lake: Lake) -> dict[int, tuple]:
    rows = lake.query("SELECT order_id, customer, amount, status FROM replica.orders ORDER BY 1")
    return {row[0]: row[1:] for row in rows}


FULL_LOAD = orders(
    ("I", T0, 1, "ann", "10.00", "new", None),
    ("I", T0, 2, "bob", "20.00", "new", None),
    ("I", T0, 3, "cy", "30.00", "new", None),
)
CHANGES = orders(
    ("U", "2026-03-01 10:05:00.000000", 1, "ann", "11.00", "paid", 100),
    ("I", "2026-03-01 10:05:01.000000", 4, "dee", "40.00", "new", 101),
    ("D", "2026-03-01 10:05:02.000000", 2, None, None, None, 102),
)


def test_full_load_then_inserts_updates_and_deletes(lake: Lake) -> None:
    first = lake.put_and_run(key("LOAD00000001.csv"), FULL_LOAD)
    assert first["applies"] == {"applied": 1}
    assert table(lake) == {
        i: (n, Decimal(a), "new") for i, n, a in [(1, "ann", "10.00"), (2, "bob", "20.00"), (3, "cy", "30.00")]
    }

    second = lake.put_and_run(key("20260301-100503000.csv"), CHANGES)
    assert second["applies"] == {"applied": 1} and second["batchItemFailures"] == []
    assert table(lake) == {
        1: ("ann", Decimal("11.00"), "paid"),
        3: ("cy", Decimal("30.00"), "new"),
        4: ("dee", Decimal("40.00"), "new"),
    }
    assert lake.query("SELECT dms_commit_ts::text, dms_change_seq FROM replica.orders WHERE order_id = 1") == [
        ("2026-03-01 10:05:00", Decimal(100))
    ]
    ledger = lake.query(
        "SELECT status, lines, rows_loaded, details FROM pipeline_state.cdc_lake_applied WHERE key = %s",
        (key("20260301-100503000.csv"),),
    )
    ((status, lines, written, details),) = ledger
    assert (status, lines, written) == ("loaded", 3, 3)
    assert {k: details[k] for k in ("inserts", "updates", "deletes", "upserted", "deleted", "unchanged")} == {
        "inserts": 1,
        "updates": 1,
        "deletes": 1,
        "upserted": 2,
        "deleted": 1,
        "unchanged": 0,
    }
    assert (details["min_commit_ts"], details["max_commit_ts"]) == (
        "2026-03-01 10:05:00.000000",
        "2026-03-01 10:05:02.000000",
    )
    tombstones = tombstone_table_name(QualifiedName("replica", "orders"))
    assert lake.query(f'SELECT order_id, deleted_commit_ts::text FROM pipeline_state."{tombstones}"') == [
        (2, "2026-03-01 10:05:02+00")
    ]


def test_a_replayed_file_applies_nothing_twice(lake: Lake) -> None:
    lake.put(key("20260301-100503000.csv"), CHANGES)
    event = lake.receive()
    lake.run(event)
    lake.query("UPDATE replica.orders SET status = 'touched by hand' WHERE order_id = 4")
    again = lake.run(event)
    assert again["applies"] == {"duplicate": 1}
    assert table(lake)[4][2] == "touched by hand"
    assert lake.query("SELECT count(*), max(attempts) FROM pipeline_state.cdc_lake_applied") == [(1, 1)]


def test_files_out_of_order_end_in_the_newest_state(lake: Lake) -> None:
    """The later file is applied first; the earlier one arrives after it and changes nothing it
    must not: an older change never overwrites a newer one, and a delete is not undone."""
    later = orders(
        ("U", "2026-03-01 11:00:00.000000", 1, "ann", "99.00", "refunded", 200),
        ("D", "2026-03-01 11:00:01.000000", 3, None, None, None, 201),
    )
    earlier = orders(
        ("U", "2026-03-01 10:30:00.000000", 1, "ann", "50.00", "paid", 150),
        ("U", "2026-03-01 10:30:01.000000", 3, "cy", "35.00", "paid", 151),
        ("I", "2026-03-01 10:30:02.000000", 5, "eve", "5.00", "new", 152),
    )
    lake.put_and_run(key("LOAD00000001.csv"), FULL_LOAD)
    lake.put_and_run(key("20260301-110001000.csv"), later)
    result = lake.put_and_run(key("20260301-103002000.csv"), earlier)
    assert result["applies"] == {"applied": 1}
    assert table(lake) == {
        1: ("ann", Decimal("99.00"), "refunded"),
        2: ("bob", Decimal("20.00"), "new"),
        5: ("eve", Decimal("5.00"), "new"),
    }
    (details,) = lake.query(
        "SELECT details FROM pipeline_state.cdc_lake_applied WHERE key = %s", (key("20260301-103002000.csv"),)
    )[0]
    assert (details["upserted"], details["unchanged"]) == (1, 2)


def test_changes_in_the_same_commit_are_ordered_by_the_change_sequence(lake: Lake) -> None:
    same = "2026-03-01 12:00:00.000000"
    lake.put_and_run(key("LOAD00000001.csv"), FULL_LOAD)
    lake.put_and_run(key("20260301-120000002.csv"), orders(("U", same, 1, "ann", "2.00", "second", 302)))
    lake.put_and_run(key("20260301-120000001.csv"), orders(("U", same, 1, "ann", "1.00", "first", 301)))
    assert table(lake)[1] == ("ann", Decimal("2.00"), "second")
    # Within one file too: the sequence decides, not the line order.
    lake.put_and_run(
        key("20260301-120000003.csv"),
        orders(("U", same, 2, "bob", "4.00", "fourth", 304), ("U", same, 2, "bob", "3.00", "third", 303)),
    )
    assert table(lake)[2] == ("bob", Decimal("4.00"), "fourth")


def test_changes_to_one_key_within_a_file_end_in_the_last_one(lake: Lake) -> None:
    lake.put_and_run(
        key("20260301-100000000.csv"),
        orders(
            ("I", "2026-03-01 10:00:00.000000", 7, "gus", "1.00", "new", 1),
            ("U", "2026-03-01 10:00:01.000000", 7, "gus", "2.00", "paid", 2),
            ("I", "2026-03-01 10:00:02.000000", 8, "hal", "3.00", "new", 3),
            ("D", "2026-03-01 10:00:03.000000", 8, None, None, None, 4),
            ("U", "2026-03-01 10:00:04.000000", 7, "gus", "3.00", "shipped", 5),
        ),
    )
    assert table(lake) == {7: ("gus", Decimal("3.00"), "shipped")}


def test_a_full_load_row_never_shadows_a_change_committed_during_the_load(lake: Lake) -> None:
    """Full-load rows carry the task's start time, older than every captured change: a change
    applied before the full-load file arrives survives it, and one arriving after wins too."""
    lake.put_and_run(
        key("20260301-100500000.csv"), orders(("U", "2026-03-01 10:05:00.000000", 1, "ann", "1.00", "paid", 5))
    )
    lake.put_and_run(key("LOAD00000001.csv"), FULL_LOAD)
    assert table(lake)[1] == ("ann", Decimal("1.00"), "paid")
    assert table(lake)[2] == ("bob", Decimal("20.00"), "new")


def test_a_reload_replaces_what_older_changes_wrote(lake: Lake) -> None:
    lake.put_and_run(key("LOAD00000001.csv"), FULL_LOAD)
    lake.put_and_run(key("20260301-100503000.csv"), CHANGES)
    reload = orders(
        ("I", "2026-03-02 08:00:00.000000", 1, "ann", "12.00", "paid", None),
        ("I", "2026-03-02 08:00:00.000000", 2, "bob", "21.00", "back", None),
    )
    result = lake.put_and_run(key("LOAD00000001.csv"), reload)
    assert result["full_load_restarts"] == [key("LOAD00000001.csv")]
    assert table(lake)[1] == ("ann", Decimal("12.00"), "paid")
    assert table(lake)[2] == ("bob", Decimal("21.00"), "back")  # deleted before the reload, back now


def test_a_full_load_without_an_op_column_loads_as_inserts(lake: Lake) -> None:
    body = dms_csv([TS, "order_id", "line", "sku"], [(T0, 1, 1, "a"), (T0, 1, 2, "b")])
    result = lake.put_and_run(key("LOAD00000001.csv", "order_lines"), body)
    assert result["applies"] == {"applied": 1}
    assert lake.query("SELECT order_id, line, sku FROM replica.order_lines ORDER BY 2") == [(1, 1, "a"), (1, 2, "b")]


def test_a_delete_on_a_composite_key_is_not_undone_by_an_older_insert(lake: Lake) -> None:
    """Each target keeps its tombstones in its own table, keyed by its own key columns."""
    columns = ["Op", TS, "order_id", "line", "sku"]
    lake.put_and_run(
        key("20260301-110000000.csv", "order_lines"),
        dms_csv(columns, [("I", "2026-03-01 10:59:00", 1, 1, "a"), ("D", "2026-03-01 11:00:00", 1, 2, None)]),
    )
    lake.put_and_run(key("20260301-100503000.csv"), CHANGES)  # a delete of order 2 in replica.orders
    lake.put_and_run(
        key("20260301-100000000.csv", "order_lines"),
        dms_csv(columns, [("I", "2026-03-01 10:00:00", 1, 2, "old"), ("I", "2026-03-01 10:00:01", 2, 2, "b")]),
    )
    assert lake.query("SELECT order_id, line, sku FROM replica.order_lines ORDER BY 1, 2") == [
        (1, 1, "a"),
        (2, 2, "b"),
    ]
    lines = tombstone_table_name(QualifiedName("replica", "order_lines"))
    assert lake.query(f'SELECT order_id, line, deleted_commit_ts::text FROM pipeline_state."{lines}"') == [
        (1, 2, "2026-03-01 11:00:00+00")
    ]


@pytest.mark.parametrize(
    ("bad_row", "line", "reason"),
    [
        (
            ("U", "2026-03-01 10:05:00.000000", 1, "ann", "not a number", "paid", 1),
            3,
            "invalid input syntax for type numeric",
        ),
        (("X", "2026-03-01 10:05:00.000000", 1, "ann", "1.00", "paid", 1), 3, "violates check constraint"),
        (("U", "2026-03-01 10:05:00.000000", None, "ann", "1.00", "paid", 1), 3, 'null value in column "order_id"'),
        (("U", "yesterday-ish", 1, "ann", "1.00", "paid", 1), 3, "invalid input syntax for type timestamp"),
    ],
)
def test_a_bad_file_is_rejected_with_its_line_and_nothing_applied(
    lake: Lake, bad_row: tuple, line: int, reason: str
) -> None:
    body = orders(("I", "2026-03-01 10:04:00.000000", 9, "ivy", "9.00", "new", 0), bad_row)
    result = lake.put_and_run(key("20260301-100500000.csv"), body)
    assert result["batchItemFailures"] == [] and result["applies"] == {"rejected": 1}
    assert table(lake) == {}
    ((status, error_line, error),) = lake.query("SELECT status, error_line, error FROM pipeline_state.cdc_lake_applied")
    assert (status, error_line) == ("rejected", line)
    assert error.startswith(f"line {line}: ") and reason in error
    assert lake.copies()[key("20260301-100500000.csv")]["status"] == "loaded"  # the lake has it all the same


def test_a_file_without_the_timestamp_column_is_rejected(lake: Lake) -> None:
    result = lake.put_and_run(key("20260301-100500000.csv"), dms_csv(["Op", "order_id", "customer"], [("I", 1, "a")]))
    assert result["applies"] == {"rejected": 1}
    assert "no 'dms_commit_ts' column" in result["rejected"][0]


def test_a_column_the_target_lacks_keeps_the_file_waiting(lake: Lake) -> None:
    body = dms_csv([*COLUMNS, "coupon"], [("I", "2026-03-01 10:05:00.000000", 1, "ann", "1.00", "new", 1, "X")])
    lake.put(key("20260301-100500000.csv"), body)
    event = lake.receive()
    first = lake.run(event)
    assert len(first["batchItemFailures"]) == 1 and table(lake) == {}
    assert lake.query("SELECT status, error FROM pipeline_state.cdc_lake_applied")[0][0] == "failed"
    lake.query("ALTER TABLE replica.orders ADD COLUMN coupon text")  # the migration lands
    second = lake.run(event)
    assert second["batchItemFailures"] == [] and second["applies"] == {"applied": 1}
    assert lake.query("SELECT coupon FROM replica.orders") == [("X",)]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("DROP TABLE replica.orders", "TableNotFound: table replica.orders does not exist"),
        ("ALTER TABLE replica.orders DROP CONSTRAINT orders_pkey", "replica.orders has no primary key"),
        (
            "ALTER TABLE replica.orders RENAME COLUMN order_id TO deleted_at",
            "key column(s) ['deleted_at'] of replica.orders have the name of a tombstone column",
        ),
    ],
)
def test_a_target_the_merge_cannot_use_keeps_the_file_waiting_and_says_why(
    lake: Lake, change: str, reason: str
) -> None:
    lake.query(change)
    lake.put(key("20260301-100503000.csv"), CHANGES)
    result = lake.run(lake.receive())
    assert len(result["batchItemFailures"]) == 1
    ((status, error),) = lake.query("SELECT status, error FROM pipeline_state.cdc_lake_applied")
    assert status == "failed" and reason in error, error
