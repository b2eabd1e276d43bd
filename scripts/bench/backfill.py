"""Benchmark: the seed's job (docs/backfill.md) over 1,000,000 orders with their items and status
history on MariaDB, against two baselines measured in the same run on the same server.

    python -m scripts.bench backfill
    BACKFILL_BENCH_ORDERS=200000 python -m scripts.bench backfill    # quick run

- set-based: the job's three statements over the whole key range, one `INSERT ... SELECT` each,
  in one transaction: what a DBA would run by hand with no limits, the speed to reach (>= 0.7x);
- the seed's approach re-created: pages of 100 final orders by `LIMIT 100 OFFSET n` over the
  status filter, their items and history loaded with each page (one query per relation, as an
  ORM's eager loading does), then one autocommitted INSERT per archived row (as an ORM's save
  does). Running it to the end would take far too long, so it is measured on a sample: 5 pages at
  each of 5 offsets spread over the table, the time per page interpolated between them and summed
  over all pages (the pages slow down as OFFSET grows). That is an estimate, and said so; the job
  must be >= 30x faster than it. It runs on loopback to a server that does not flush its log at
  each commit, the most favourable setting for a chatty client: over a network to RDS each of its
  round trips costs more.

The job runs in a child process through the real runner (keyset chunks, checkpoint per chunk,
adaptive chunk size toward 2 s) on the full table and on a tenth of it, in separate databases;
the child's peak RSS (VmHWM) shows whether memory grows with the table. Both baselines and the
job start from empty targets with the source tables read once beforehand, and the job's archive is
checked to equal the set-based one (row counts and CHECKSUM TABLE).
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from typing import Any

from scripts import backfill_example as example
from scripts.bench._child import own_peak_rss_mb, run_python
from scripts.bench._results import record
from scripts.localdb import MariaDBServer, mariadb_server

ORDERS = int(os.environ.get("BACKFILL_BENCH_ORDERS", "1000000"))
SMALL = ORDERS // 10
PAGE = 100
SAMPLE_OFFSETS = 5
SAMPLE_PAGES = 5
SET_BASED_TARGET = 0.7
SEED_TARGET = 30.0
FINAL = example.FINAL


def _execute(server: MariaDBServer, database: str, *statements: str) -> float:
    connection = server.connect(database)
    try:
        started = time.perf_counter()
        with connection.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
        connection.commit()
        return time.perf_counter() - started
    finally:
        connection.close()


def _prepare(server: MariaDBServer, database: str, orders: int) -> None:
    server.sql(f"CREATE DATABASE {database}")
    _execute(server, database, *example.schema_statements("mysql"), *example.fill_statements("mysql", orders))
    _execute(server, database, *(f"ANALYZE TABLE {table}" for table in example.SOURCE_TABLES))


def _warm(server: MariaDBServer, database: str) -> None:
    """Read the source tables and their order_id indexes once, so every contender starts warm."""
    for table in example.SOURCE_TABLES:
        server.sql(f"SELECT COUNT(*) FROM {table} FORCE INDEX (PRIMARY)", database)
    server.sql("SELECT COUNT(*) FROM order_items FORCE INDEX (order_items_order_id)", database)
    server.sql("SELECT COUNT(*) FROM order_status_history FORCE INDEX (order_status_history_order_id)", database)


def _truncate(server: MariaDBServer, database: str) -> None:
    server.sql("".join(f"TRUNCATE TABLE {table};" for table in example.TARGET_TABLES), database)
    server.sql("DROP TABLE IF EXISTS backfill_jobs", database)


def _set_based(server: MariaDBServer, database: str, orders: int) -> float:
    whole = [s.replace(":lo", "0").replace(":hi", str(orders)) for s in example.statements("mysql")]
    return _execute(server, database, *whole)


def _run_job(server: MariaDBServer, database: str) -> dict[str, Any]:
    spec = json.dumps(
        {
            "host": server.host,
            "port": server.port,
            "user": server.user,
            "password": server.password,
            "database": database,
        }
    )
    return run_python(["-m", "scripts.bench.backfill", "worker", spec], "backfill worker")


def _worker(raw: str) -> None:
    """The job through the real runner, in this process (its peak RSS is the job's own)."""
    from backfill.jobs import parse_jobs
    from backfill.runner import Runtime, run_jobs, state_table
    from pipeline_common.config import DatabaseSettings
    from pipeline_common.deadline import Deadline

    server = json.loads(raw)
    settings = DatabaseSettings("mysql", server["host"], server["port"], server["database"], "bench", "require")
    secret = {"username": server["user"], "password": server["password"]}

    class Provider:
        connection: Any = None

        def get(self) -> Any:
            from pipeline_common.db import connect

            if self.connection is None:
                self.connection = connect(settings, secret)
            return self.connection

        def close(self) -> None:
            self.connection = None

    jobs = parse_jobs([example.job("mysql")], "mysql")
    started, cpu_started = time.perf_counter(), time.process_time()
    report = run_jobs(jobs, Provider(), Runtime(state_table(server["database"]), Deadline.in_seconds(3600)))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    peak_mb = own_peak_rss_mb()
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak_mb, "result": report.to_json()}))


def _seed_page(cursor: Any, offset: int) -> None:
    """One page of the seed's loop: a page of final orders by OFFSET, their items and history
    loaded with it (one query per relation, as an ORM's eager loading does), then one
    autocommitted INSERT per archived row."""
    cursor.execute(
        "SELECT id, customer_id, status, total, created_at, updated_at FROM orders "
        f"WHERE status IN {FINAL} ORDER BY id LIMIT {PAGE} OFFSET {offset}"
    )
    orders = cursor.fetchall()
    if not orders:
        return
    ids = ", ".join(str(int(order[0])) for order in orders)
    cursor.execute(f"SELECT id, order_id, sku, quantity, unit_price FROM order_items WHERE order_id IN ({ids})")
    items = cursor.fetchall()
    cursor.execute(f"SELECT id, order_id, status, changed_at FROM order_status_history WHERE order_id IN ({ids})")
    history = cursor.fetchall()
    for order in orders:
        cursor.execute(
            "INSERT INTO order_archive (order_id, customer_id, final_status, total, created_at, finalized_at) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            order,
        )
    for item in items:
        cursor.execute(
            "INSERT INTO order_item_archive (item_id, order_id, sku, quantity, unit_price) VALUES (%s, %s, %s, %s, %s)",
            item,
        )
    for change in history:
        cursor.execute(
            "INSERT INTO order_status_archive (history_id, order_id, status, changed_at) VALUES (%s, %s, %s, %s)",
            change,
        )


def _seed_estimate(server: MariaDBServer, database: str, final_orders: int) -> dict[str, Any]:
    """Time per page at offsets spread over the table, interpolated and summed over every page."""
    pages = -(-final_orders // PAGE)
    connection = server.connect(database, autocommit=True)
    samples: list[tuple[int, float]] = []
    try:
        with connection.cursor() as cursor:
            for index in range(SAMPLE_OFFSETS):
                first_page = min(pages - SAMPLE_PAGES, index * (pages - SAMPLE_PAGES) // (SAMPLE_OFFSETS - 1))
                started = time.perf_counter()
                for page in range(first_page, first_page + SAMPLE_PAGES):
                    _seed_page(cursor, page * PAGE)
                samples.append((first_page, (time.perf_counter() - started) / SAMPLE_PAGES))
    finally:
        connection.close()
    total = 0.0
    for page in range(pages):
        (p0, t0), (p1, t1) = next(
            ((a, b) for a, b in itertools.pairwise(samples) if a[0] <= page <= b[0]),
            (samples[-2], samples[-1]),
        )
        total += t0 + (t1 - t0) * (page - p0) / max(p1 - p0, 1)
    return {"seconds": total, "pages": pages, "sampled_pages": SAMPLE_OFFSETS * SAMPLE_PAGES, "per_page": samples}


def _check(server: MariaDBServer, database: str, expected: str) -> None:
    digest = _archive_digest(server, database)
    if digest != expected:
        raise SystemExit(f"the job's archive differs from the set-based one: {digest} != {expected}")


def _archive_digest(server: MariaDBServer, database: str) -> str:
    parts = []
    for table in example.TARGET_TABLES:
        parts.append(server.sql(f"CHECKSUM TABLE {table}", database).split()[-1])
        parts.append(server.sql(f"SELECT COUNT(*) FROM {table}", database).strip())
    return " ".join(parts)


def main() -> None:
    options = ["--innodb-buffer-pool-size=2G", "--innodb-log-file-size=512M"]
    with mariadb_server(options=options) as server:
        for database, orders in (("bench", ORDERS), ("bench_small", SMALL)):
            print(f"preparing {orders:,} orders with items and status history in {database} ...", flush=True)
            started = time.perf_counter()
            _prepare(server, database, orders)
            print(f"  prepared in {time.perf_counter() - started:.1f} s", flush=True)
        rows = {t: int(server.sql(f"SELECT COUNT(*) FROM {t}", "bench")) for t in example.SOURCE_TABLES}
        final_orders = int(server.sql(f"SELECT COUNT(*) FROM orders WHERE status IN {FINAL}", "bench"))
        print(f"  source rows: {rows}; final orders: {final_orders:,}", flush=True)

        _warm(server, "bench")
        set_based = _set_based(server, "bench", ORDERS)
        written = {t: int(server.sql(f"SELECT COUNT(*) FROM {t}", "bench")) for t in example.TARGET_TABLES}
        expected = _archive_digest(server, "bench")
        print(f"set-based INSERT ... SELECT: {set_based:.2f} s, {sum(written.values()):,} rows {written}", flush=True)

        _truncate(server, "bench")
        _warm(server, "bench")
        job = _run_job(server, "bench")
        _check(server, "bench", expected)
        (result,) = job["result"]["jobs"]
        print(
            f"backfill job: {job['seconds']:.2f} s (cpu {job['cpu_seconds']:.2f} s), {result['chunks']} chunks, "
            f"chunks grown to {result['chunk_rows']} orders, {result['rows_written']:,} rows, "
            f"peak RSS {job['peak_rss_mb']:.0f} MB",
            flush=True,
        )
        small = _run_job(server, "bench_small")
        print(
            f"backfill job on {SMALL:,} orders: {small['seconds']:.2f} s, peak RSS {small['peak_rss_mb']:.0f} MB",
            flush=True,
        )

        _truncate(server, "bench")
        seed = _seed_estimate(server, "bench", final_orders)
        per_page = ", ".join(f"page {page}: {seconds * 1000:.0f} ms" for page, seconds in seed["per_page"])
        print(f"seed's approach (OFFSET pages of {PAGE}, row-by-row inserts): {per_page}", flush=True)

    set_ratio = set_based / job["seconds"]
    seed_ratio = seed["seconds"] / job["seconds"]
    print("summary:")
    print(f"  backfill job          {job['seconds']:9.2f} s  {ORDERS / job['seconds']:10,.0f} orders/s")
    print(
        f"  set-based baseline    {set_based:9.2f} s  ratio {set_ratio:.2f}x "
        f"{'OK' if set_ratio >= SET_BASED_TARGET else 'BELOW TARGET'} (target >= {SET_BASED_TARGET}x)"
    )
    print(
        f"  seed's approach       {seed['seconds']:9.0f} s  estimated from {seed['sampled_pages']} of "
        f"{seed['pages']:,} pages; job is {seed_ratio:.0f}x faster "
        f"{'OK' if seed_ratio >= SEED_TARGET else 'BELOW TARGET'} (target >= {SEED_TARGET:.0f}x)"
    )
    details = {"orders": ORDERS, "job_seconds": round(job["seconds"], 2), "chunk_rows": result["chunk_rows"]}
    record(
        "backfill",
        "set_based",
        unit="s",
        ours=job["seconds"],
        baseline=set_based,
        baseline_what="the job's three statements as one INSERT ... SELECT each, one transaction",
        target=SET_BASED_TARGET,
        lower_is_better=True,
        peak_rss_mb=job["peak_rss_mb"],
        details=details,
    )
    record(
        "backfill",
        "seed_approach",
        unit="s",
        ours=job["seconds"],
        baseline=seed["seconds"],
        baseline_what=f"seed's OFFSET pages + row-by-row inserts, estimated from {seed['sampled_pages']} pages",
        target=SEED_TARGET,
        lower_is_better=True,
        peak_rss_mb=job["peak_rss_mb"],
        details=details | {"pages": seed["pages"]},
    )
    growth = job["peak_rss_mb"] / small["peak_rss_mb"]
    print(
        f"  peak RSS              {small['peak_rss_mb']:.0f} MB at {SMALL:,} orders, {job['peak_rss_mb']:.0f} MB at "
        f"{ORDERS:,} ({growth:.2f}x for 10x the rows) {'OK' if growth < 1.2 else 'GROWS WITH THE TABLE'}"
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "worker":
        _worker(sys.argv[2])
    else:
        main()
