"""Backfill: the seed's job on MariaDB. Orders with items and status history are created in the
shop database, a dry run explains the first chunk, the schedule fires and the job copies every
final order with its relations into the archive tables, disables its own schedule, and verify
compares source and archive range by range."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from scripts import backfill_example as example
from scripts.demo.environment import Demo
from scripts.demo.report import PipelineReport

ORDER = 40


def drive(demo: Demo) -> PipelineReport:
    started = time.monotonic()
    spec = demo.function_spec("backfill")
    database = demo.function_env("backfill")["BACKFILL_DB_NAME"]
    server = demo.databases.mariadb
    if server is None:
        raise RuntimeError("the backfill of environments/local.tfvars runs on MySQL, but MariaDB is not running")
    orders = 2000 if demo.small else 100_000
    with contextlib.closing(server.connect(database, autocommit=True)) as conn, conn.cursor() as cur:
        for statement in example.schema_statements("mysql") + example.fill_statements("mysql", orders):
            cur.execute(statement)
        sources = {table: _count(cur, table) for table in example.SOURCE_TABLES}

    (planned,) = demo.router.invoke(spec.name, {"action": "plan"}).result["jobs"]
    schedule = next(s.name for s in demo.wiring.schedules if s.function == spec.name)
    first = demo.router.fire_schedule(schedule)
    (run,) = first.result["jobs"] if first.ok else [{"status": first.error_type, "chunks": 0, "rows_written": 0}]
    second = demo.router.fire_schedule(schedule)
    (again,) = second.result["jobs"] if second.ok else [{"status": second.error_type}]
    state = demo.client("scheduler").get_schedule(Name=schedule)["State"]
    (verified,) = demo.router.invoke(spec.name, {"action": "verify"}).result["jobs"]

    with contextlib.closing(server.connect(database)) as conn, conn.cursor() as cur:
        exact = example.archive_contents(cur) == example.expected_contents(cur)
        archived = {table: _count(cur, table) for table in example.TARGET_TABLES}
    return PipelineReport(
        pipeline="backfill",
        went_in=[
            f"{sources['orders']} orders, {sources['order_items']} items, {sources['order_status_history']} status "
            f"changes in MariaDB {database}; half the orders in a final status",
            f"dry run: first chunk (0, {planned['next_chunk']['hi'][0]}] explained, about "
            f"{planned['estimated_chunks']} chunks of {planned['chunk_rows']} orders",
            f"schedule '{schedule}' fired twice",
        ],
        came_out=[
            f"run 1: {run['status']} in {run['chunks']} chunks (sized toward 2 s, up to {run.get('chunk_rows')} "
            "orders), "
            f"{run['rows_written']} rows archived; schedule now {state}",
            f"run 2: {again['status']}",
            ", ".join(f"{table}: {count}" for table, count in archived.items())
            + f" ({'exactly' if exact else 'NOT'} the final orders' rows)",
            f"verify: {verified['ranges']} ranges, {verified['ranges_mismatched']} mismatched",
        ],
        where=f"MariaDB database {database}",
        seconds=time.monotonic() - started,
        numbers={
            "orders": sources["orders"],
            "chunks": run["chunks"],
            "rows_written": run["rows_written"],
            **archived,
            "mismatched_ranges": verified["ranges_mismatched"],
        },
        ok=first.ok
        and second.ok
        and exact
        and run["status"] == "finished"
        and again["status"] == "done_before"
        and state == "DISABLED"
        and verified["complete"]
        and verified["ranges_mismatched"] == 0,
    )


def _count(cur: Any, table: str) -> int:
    cur.execute(f"SELECT COUNT(*) FROM {table}")
    return int(cur.fetchone()[0])
