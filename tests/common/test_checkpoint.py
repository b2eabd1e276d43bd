"""Checkpoints on real PostgreSQL and MariaDB (InnoDB): typed positions round trip, progress
commits and rolls back with the caller's transaction, a vanished row is noticed."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from pipeline_common.checkpoint import CheckpointLost, CheckpointTable
from pipeline_common.errors import is_retryable
from pipeline_common.locks import Scope, try_lock


def _table(connect) -> CheckpointTable:
    # On MariaDB the "schema" is the test's database.
    schema = "pipeline_state" if connect.engine == "postgresql" else _database(connect)
    return CheckpointTable(schema, "backfill_jobs", identity=("target",), labels=("source",))


def _database(connect) -> str:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("SELECT DATABASE()")
        return cur.fetchone()[0]


POSITION = (
    dt.datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=dt.UTC),
    Decimal("10.50"),
    "ключ",
    b"\x00\xff",
    uuid.UUID(int=7),
    42,
)


def test_positions_keep_their_types_and_counters_add_up(connect):
    table = _table(connect)
    conn = connect()
    table.ensure(conn)
    with conn.cursor() as cur:
        assert table.load(cur, "orders") is None
        table.start(cur, "orders", identity={"target": "t.orders"}, labels={"source": "s.orders"}, stamp="started_at")
        table.save(cur, "orders", positions={"position": POSITION}, add={"rows_done": 500})
        table.save(cur, "orders", positions={"position": {"segment": 3, "key": [1, "a"]}}, add={"rows_done": 250})
    conn.commit()

    with connect().cursor() as cur:
        checkpoint = table.load(cur, "orders")
    assert checkpoint is not None
    assert checkpoint["position"] == {"segment": 3, "key": [1, "a"]}
    assert checkpoint["rows_done"] == 750
    assert checkpoint["target"] == "t.orders" and checkpoint["source"] == "s.orders"
    assert checkpoint["started_at"] is not None and checkpoint["finished_at"] is None

    with conn.cursor() as cur:
        table.save(cur, "orders", positions={"position": POSITION})
    conn.commit()
    with conn.cursor() as cur:
        stored = table.load(cur, "orders")["position"]
    assert stored == list(POSITION)
    assert [type(v) for v in stored] == [type(v) for v in POSITION]


def test_progress_rolls_back_with_the_chunk_it_describes(connect):
    table = _table(connect)
    conn = connect()
    table.ensure(conn)
    data = "chunk_data" if connect.engine == "postgresql" else "`chunk_data`"
    with conn.cursor() as cur:
        cur.execute(
            f"CREATE TABLE {data} (id int PRIMARY KEY)" + ("" if connect.engine == "postgresql" else " ENGINE=InnoDB")
        )
        table.start(cur, "job", identity={"target": "t"}, labels={"source": "s"})
        table.save(cur, "job", positions={"position": (100,)}, add={"rows_done": 100})
    conn.commit()

    # The next chunk: its rows and its checkpoint in one transaction, which fails before COMMIT.
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {data} VALUES (101), (102)")
        table.save(cur, "job", positions={"position": (200,)}, add={"rows_done": 100}, stamp=("finished_at",))
    conn.rollback()

    reader = connect()
    with reader.cursor() as cur:
        checkpoint = table.load(cur, "job")
        cur.execute(f"SELECT count(*) FROM {data}")
        assert cur.fetchone()[0] == 0
    assert checkpoint["position"] == [100] and checkpoint["rows_done"] == 100
    assert checkpoint["finished_at"] is None


def test_start_keeps_the_identity_and_refreshes_labels(connect):
    table = _table(connect)
    conn = connect()
    table.ensure(conn)
    with conn.cursor() as cur:
        table.start(cur, "job", identity={"target": "first"}, labels={"source": "a"}, stamp="started_at")
        table.start(cur, "job", identity={"target": "second"}, labels={"source": "b"}, stamp="started_at")
        checkpoint = table.load_all(cur)["job"]
    conn.commit()
    assert (checkpoint["target"], checkpoint["source"]) == ("first", "b")


def test_a_row_deleted_during_the_run_is_noticed(connect):
    table = _table(connect)
    conn, operator = connect(), connect()
    table.ensure(conn)
    with conn.cursor() as cur:
        table.start(cur, "job", identity={"target": "t"}, labels={"source": "s"})
    conn.commit()
    with operator.cursor() as cur:
        assert table.delete(cur, "job")
    operator.commit()
    with conn.cursor() as cur, pytest.raises(CheckpointLost, match="vanished") as lost:
        table.save(cur, "job", positions={"position": (1,)})
    conn.rollback()
    assert is_retryable(lost.value)
    # Two saves in a row (MySQL counts changed rows only) still find the row.
    with conn.cursor() as cur:
        table.start(cur, "job", identity={"target": "t"}, labels={"source": "s"})
        table.save(cur, "job", positions={"position": (1,)})
        table.save(cur, "job", positions={"position": (1,)})
    conn.commit()


def test_one_runner_per_job_through_the_job_lock(connect):
    table = _table(connect)
    first, second = connect(), connect()
    assert try_lock(first, table.lock_key("job"), Scope.SESSION)
    assert not try_lock(second, table.lock_key("job"), Scope.SESSION)
    assert try_lock(second, table.lock_key("other job"), Scope.SESSION)


def test_bad_definitions_and_unknown_columns_are_refused():
    with pytest.raises(ValueError, match="invalid column name"):
        CheckpointTable("s", "t", positions=("bad name",))
    with pytest.raises(ValueError, match="named twice"):
        CheckpointTable("s", "t", counters=("position",))
    table = CheckpointTable("s", "t")
    with pytest.raises(ValueError, match="no positions column"):
        table.save(object(), "job", positions={"watermark": 1})
