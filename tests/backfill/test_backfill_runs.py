"""Runs of real jobs on MariaDB and PostgreSQL: the exact result, the checkpoint committed with each
chunk, deadline stops and resumes, one runner per job, rows changing status while the job runs,
composite keys, and the database checks that refuse a job before any row moves."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from backfill.catalog import PlanError
from backfill.runner import CheckpointMismatch
from pipeline_common.deadline import Deadline
from scripts import backfill_example as example
from tests.backfill.conftest import ORDERS, Db, slow_job

FIXED = {"initial_rows": 200, "min_rows": 200, "max_rows": 200, "target_seconds": 1}


def _finish(db: Db, jobs: list[Any], runs: int = 50) -> list[Any]:
    results = []
    for _ in range(runs):
        (result,) = db.run(jobs).jobs
        results.append(result)
        if result.status == "finished":
            return results
        assert result.status == "continues", result
    raise AssertionError(f"not finished after {runs} runs")


def test_a_run_copies_exactly_what_one_insert_select_would(orders: Db) -> None:
    jobs = orders.jobs(example.job(orders.engine))
    (result,) = orders.run(jobs).jobs
    assert result.status == "finished", result
    expected = orders.expected()
    assert orders.archive() == expected
    written = sum(len(rows) for rows in expected.values())
    assert (result.rows, result.rows_done, result.rows_written, result.rows_written_total) == (
        ORDERS,
        ORDERS,
        written,
        written,
    )
    assert result.percent == 100.0 and result.remaining_rows == 0 and result.position == (ORDERS,)
    checkpoint = orders.checkpoint()
    assert checkpoint["position"] == [ORDERS] and checkpoint["end_key"] == [ORDERS] and checkpoint["start_key"] == [0]
    assert (checkpoint["rows_done"], checkpoint["rows_written"], checkpoint["chunks"]) == (
        ORDERS,
        written,
        result.chunks,
    )
    assert checkpoint["finished_at"] is not None and checkpoint["key_columns"] == "id"

    # A finished job makes later runs no-ops, even when new rows arrive beyond its end.
    for statement in example.fill_statements(orders.engine, 100, first=ORDERS + 1):
        orders.execute(statement)
    (again,) = orders.run(jobs).jobs
    assert (again.status, again.chunks, again.rows_written) == ("done_before", 0, 0)
    assert orders.archive() == expected


def test_the_deadline_stops_between_chunks_and_the_next_run_continues(orders: Db) -> None:
    jobs = orders.jobs(slow_job(orders.engine, 0.1, chunk=FIXED))
    (first,) = orders.run(jobs, deadline=Deadline.in_seconds(0.8)).jobs
    assert first.status == "continues" and 1 <= first.chunks < ORDERS // 200, first
    assert orders.checkpoint()["position"] == [first.chunks * 200] == list(first.position)
    assert 0 < first.percent < 100 and first.remaining_rows == pytest.approx(ORDERS - first.rows_done, rel=0.5)
    assert first.eta_seconds and first.eta_seconds > 0 and first.estimated_total_rows
    # Nothing after the checkpoint was written: the archive holds exactly the committed ranges.
    assert max(row[0] for row in orders.archive()["order_archive"]) <= first.chunks * 200
    results = _finish(orders, jobs)
    assert sum(r.chunks for r in [first, *results]) == ORDERS // 200
    assert orders.archive() == orders.expected()


def test_a_statement_running_into_the_reserve_is_cancelled_by_the_server(orders: Db) -> None:
    """The chunk's statements are bounded by the time left: a chunk that would overrun is rolled
    back by the server (max_statement_time / statement_timeout), not killed with the sandbox."""
    jobs = orders.jobs(slow_job(orders.engine, 5, chunk=FIXED))
    (result,) = orders.run(jobs, deadline=Deadline.in_seconds(1.0)).jobs
    assert (result.status, result.chunks, result.error) == ("continues", 0, None), result
    assert result.duration_seconds < 4
    assert orders.checkpoint()["rows_done"] == 0 and orders.archive()["order_archive"] == []
    _finish(orders, orders.jobs(example.job(orders.engine, chunk=FIXED)))
    assert orders.archive() == orders.expected()


def test_one_runner_per_job(orders: Db) -> None:
    """A second run while the first is in a chunk skips the job ("busy") and writes nothing."""
    jobs = orders.jobs(slow_job(orders.engine, 0.3, chunk=FIXED))
    outcome: dict[str, Any] = {}
    first = threading.Thread(target=lambda: outcome.update(first=orders.run(jobs, deadline=Deadline.in_seconds(3))))
    first.start()
    orders.wait_for("backfill-slow")
    (second,) = orders.run(jobs).jobs
    first.join()
    assert (second.status, second.chunks, second.rows_written) == ("busy", 0, 0)
    (result,) = outcome["first"].jobs
    assert result.status == "continues" and result.chunks >= 2
    assert orders.checkpoint()["chunks"] == result.chunks
    _finish(orders, jobs)
    assert orders.archive() == orders.expected()


def test_rows_changing_status_between_chunks_are_neither_skipped_nor_doubled(orders: Db) -> None:
    """The key range is the unit: a range is judged by the statements when it comes up. Rows of
    ranges done keep what they had; rows of ranges to come are taken as they are then. OFFSET
    paging over `status IN (...)` would skip rows here, since rows leaving the filter shift every
    later page."""
    jobs = orders.jobs(slow_job(orders.engine, 0.1, chunk=FIXED))
    (first,) = orders.run(jobs, deadline=Deadline.in_seconds(0.8)).jobs
    done = first.position[0]
    assert first.status == "continues" and 0 < done < ORDERS
    before = orders.expected()
    # Every order changes status: final ones become "paid" again (a refund), others become final.
    orders.execute(
        "UPDATE orders SET status = CASE WHEN status IN ('uncollected', 'cancelled', 'dispensed') THEN 'paid' "
        "ELSE 'dispensed' END"
    )
    after = orders.expected()
    _finish(orders, jobs)
    archive = orders.archive()
    for table, rows in archive.items():
        order_of = (lambda row: row[0]) if table == "order_archive" else (lambda row: row[1])
        wanted = [r for r in before[table] if order_of(r) <= done] + [r for r in after[table] if order_of(r) > done]
        assert rows == sorted(wanted, key=lambda row: row[0]), table
    assert orders.checkpoint()["rows_done"] == ORDERS


def test_a_composite_key_walks_in_row_value_order(db: Db) -> None:
    db.execute(
        "CREATE TABLE events (region varchar(8) NOT NULL, seq int NOT NULL, payload varchar(40) NOT NULL, "
        "PRIMARY KEY (region, seq))"
    )
    db.execute(
        "CREATE TABLE events_copy (region varchar(8) NOT NULL, seq int NOT NULL, payload varchar(40), "
        "PRIMARY KEY (region, seq))"
    )
    rows = [(region, seq, f"{region}-{seq}") for region in ("eu", "us", "ap", "sa") for seq in range(1, 151)]
    with db.admin.cursor() as cur:
        cur.executemany("INSERT INTO events VALUES (%s, %s, %s)", rows)
    ignore = "IGNORE " if db.engine == "mysql" else ""
    conflict = "" if db.engine == "mysql" else " ON CONFLICT DO NOTHING"
    job = {
        "name": "events_copy",
        "table": "events",
        "key": ["region", "seq"],
        "statements": [
            f"INSERT {ignore}INTO events_copy (region, seq, payload) SELECT e.region, e.seq, e.payload FROM events e "
            f"WHERE (e.region, e.seq) > :lo AND (e.region, e.seq) <= :hi{conflict}"
        ],
        "chunk": {"initial_rows": 70, "min_rows": 70, "max_rows": 70},
    }
    (result,) = db.run(db.jobs(job)).jobs
    assert result.status == "finished" and result.chunks == -(-len(rows) // 70), result
    assert sorted(db.execute("SELECT region, seq, payload FROM events_copy")) == sorted(rows)
    checkpoint = db.checkpoint("events_copy")
    assert checkpoint["start_key"] == ["", 1] and checkpoint["end_key"] == ["us", 150]

    # A smallest key of '' leaves nothing below it: the job must say where to start.
    db.execute("INSERT INTO events VALUES ('', 1, 'blank')")
    (refused,) = db.run(db.jobs({**job, "name": "events_blank"})).jobs
    assert refused.status == "failed" and "set start_after" in refused.error and refused.retryable is False


def test_start_after_and_an_empty_table(orders: Db) -> None:
    (result,) = orders.run(orders.jobs(example.job(orders.engine, start_after=2000))).jobs
    assert result.status == "finished" and result.rows_done == ORDERS - 2000
    assert min(row[0] for row in orders.archive()["order_archive"]) > 2000
    orders.execute("CREATE TABLE nothing (id int NOT NULL PRIMARY KEY)")
    ignore, conflict = ("IGNORE ", "") if orders.engine == "mysql" else ("", " ON CONFLICT DO NOTHING")
    empty = {
        "name": "empty",
        "table": "nothing",
        "key": "id",
        "statements": [
            f"INSERT {ignore}INTO order_archive (order_id) SELECT id FROM nothing "
            f"WHERE id > :lo AND id <= :hi{conflict}"
        ],
    }
    (done,) = orders.run(orders.jobs(empty)).jobs
    assert (done.status, done.chunks, done.rows_done, done.percent) == ("finished", 0, 0, 100.0)


def test_jobs_the_database_cannot_replay_are_refused_before_any_row_moves(orders: Db) -> None:
    mysql = orders.engine == "mysql"
    serial = "bigint AUTO_INCREMENT" if mysql else "bigserial"
    orders.execute(
        f"CREATE TABLE log_no_key (log_id {serial} PRIMARY KEY, order_id bigint NOT NULL, status varchar(20))"
    )
    orders.execute("CREATE TABLE loose (id int, note varchar(10))")
    orders.execute("CREATE TABLE unindexed (id int NOT NULL, note varchar(10))")
    ignore, conflict = ("IGNORE ", "") if mysql else ("", " ON CONFLICT DO NOTHING")

    def job(name: str, table: str, target: str, columns: str) -> dict[str, Any]:
        select = columns.replace("order_id", "id")
        return {
            "name": name,
            "table": table,
            "key": "id",
            "statements": [
                f"INSERT {ignore}INTO {target} ({columns}) SELECT {select} FROM {table} "
                f"WHERE id > :lo AND id <= :hi{conflict}"
            ],
        }

    cases = {
        "auto_key": (
            job("auto-key", "orders", "log_no_key", "order_id, status"),
            "has no primary key or unique index among the inserted columns",
        ),
        "nullable": (job("nullable", "loose", "order_archive", "order_id"), "allow NULL"),
        "unindexed": (
            job("unindexed", "unindexed", "order_archive", "order_id"),
            "no index of unindexed starts with (id)",
        ),
        "missing": (job("missing", "orders", "nowhere", "order_id"), "target table nowhere does not exist"),
        "no_table": (job("no-table", "ghost", "order_archive", "order_id"), "driving table ghost does not exist"),
    }
    report = orders.run(orders.jobs(*(definition for definition, _ in cases.values())))
    for result, (_, message) in zip(report.jobs, cases.values(), strict=True):
        assert result.status == "failed" and message in result.error, (result.name, result.error)
        assert result.retryable is False and result.chunks == 0
    assert PlanError.__name__ in report.jobs[2].error and "no unique index of unindexed" in report.jobs[2].error
    assert orders.execute("SELECT COUNT(*) FROM log_no_key") == [(0,)]


def test_a_checkpoint_made_for_another_key_is_not_resumed(orders: Db) -> None:
    jobs = orders.jobs(slow_job(orders.engine, 0.1, chunk=FIXED))
    (first,) = orders.run(jobs, deadline=Deadline.in_seconds(0.5)).jobs
    assert first.status == "continues"
    orders.execute("CREATE INDEX orders_customer ON orders (customer_id, id)")
    moved = example.job(orders.engine, key=["customer_id", "id"], chunk=FIXED, verify=[])
    moved["statements"] = [
        s.replace("o.id > :lo AND o.id <= :hi", "(o.customer_id, o.id) > :lo AND (o.customer_id, o.id) <= :hi")
        for s in moved["statements"]
    ]
    (refused,) = orders.run(orders.jobs(moved)).jobs
    assert refused.status == "failed" and CheckpointMismatch.__name__ in refused.error
    assert "was started on orders (id) but now names orders (customer_id,id)" in refused.error
