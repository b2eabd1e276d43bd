"""Table sync: rows inserted and changed in a stand-in source database, the schedule fired twice."""

from __future__ import annotations

import contextlib
import json
import time

from scripts.demo.environment import Demo
from scripts.demo.report import PipelineReport, count_query

ORDER = 30


def drive(demo: Demo) -> PipelineReport:
    started = time.monotonic()
    environment = demo.function_env("table_sync")
    source_db = environment["SOURCE_DB_NAME"]
    target_db = environment["DB_NAME"]
    tables = json.loads(environment["SYNC_TABLES"])
    source_table = tables[0].get("source") or "public.orders"
    target_table = tables[0]["target"]
    rows = 300 if demo.small else 20000
    with contextlib.closing(demo.databases.connect(source_db)) as conn, conn.cursor() as cur:
        cur.execute(
            f"CREATE TABLE {source_table} (order_id bigint PRIMARY KEY, customer_id bigint NOT NULL, "
            "status text NOT NULL, amount numeric(12,2) NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())"
        )
        cur.execute(
            f"INSERT INTO {source_table} (order_id, customer_id, status, amount, updated_at) "
            "SELECT g, 1 + mod(g, 500), 'new', round(mod(g, 997) * 1.37, 2), now() - interval '2 hours' "
            "FROM generate_series(1, %s) g",
            (rows,),
        )
        conn.commit()
    schedule = next(s.name for s in demo.wiring.schedules if s.function == demo.function_spec("table_sync").name)
    first = demo.router.fire_schedule(schedule)
    first_count = count_query(demo, target_db, f"SELECT count(*) FROM {target_table}")
    changed, added = rows // 10, rows // 20
    with contextlib.closing(demo.databases.connect(source_db)) as conn, conn.cursor() as cur:
        cur.execute(
            f"UPDATE {source_table} SET status = 'shipped', updated_at = now() WHERE order_id <= %s", (changed,)
        )
        cur.execute(
            f"INSERT INTO {source_table} (order_id, customer_id, status, amount) "
            "SELECT g, 1 + mod(g, 500), 'new', 10 FROM generate_series(%s, %s) g",
            (rows + 1, rows + added),
        )
        conn.commit()
    second = demo.router.fire_schedule(schedule)
    total = count_query(demo, target_db, f"SELECT count(*) FROM {target_table}")
    shipped = count_query(demo, target_db, f"SELECT count(*) FROM {target_table} WHERE status = 'shipped'")
    return PipelineReport(
        pipeline="table sync",
        went_in=[
            f"{rows} rows in stand-in source {source_db}.{source_table}, schedule '{schedule}' fired",
            f"then {changed} rows updated and {added} inserted, schedule fired again",
        ],
        came_out=[
            f"run 1: {first_count} rows in {target_table} ({'ok' if first.ok else first.error_type})",
            f"run 2: {total} rows, {shipped} with the updated status ({'ok' if second.ok else second.error_type})",
        ],
        where=f"PostgreSQL database {target_db}",
        seconds=time.monotonic() - started,
        numbers={
            "source_rows": rows,
            "first_run_rows": first_count,
            "changed": changed,
            "added": added,
            "total_rows": total,
            "shipped": shipped,
        },
        ok=first.ok and second.ok and first_count == rows and total == rows + added and shipped == changed,
    )
