"""Benchmark: table sync of 1,000,000 changed rows, PostgreSQL source via pyodbc (psqlODBC,
streaming) into a PostgreSQL target, against `psql \\copy ... TO STDOUT | psql \\copy ... FROM STDIN`
measured in the same run on the same server.

    python -m scripts.bench table_sync
    TABLE_SYNC_BENCH_ROWS=100000 python -m scripts.bench table_sync    # quick run
    TABLE_SYNC_BENCH_ROUNDS=3 python -m scripts.bench table_sync       # best of three rounds

Three target states, each timed in every round right after a fresh baseline:

- `new rows`: the 1,000,000 changed rows are all new to the target, which holds the rows the
  previous run left (an append-mostly table, seed 000's "new records"). Chunks COPY straight in.
- `first copy`: the same rows into an empty target, a table's first pass.
- `updates`: four in five changed rows are updates of rows the target holds in an older version,
  one in five are new: COPY into staging, then the version-guarded upsert. A second baseline does
  the same server work from psql (`\\copy` into a temporary table, then the sync's own upsert
  statement), because no client can make PostgreSQL's updates as cheap as a plain COPY.

The summary takes each side's best round (the least disturbed on a shared machine). The sync runs
in a subprocess so its peak RSS (VmHWM) is its own. Targets: at least 0.5x the baseline's
rows/s, peak RSS under 200 MB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from scripts.bench._child import own_peak_rss_mb, run_python
from scripts.bench._results import record
from scripts.localdb import PostgresServer, postgres_server

ROOT = Path(__file__).resolve().parents[2]
ROWS = int(os.environ.get("TABLE_SYNC_BENCH_ROWS", "1000000"))
CHUNK_SIZE = int(os.environ.get("TABLE_SYNC_BENCH_CHUNK", "10000"))
ROUNDS = int(os.environ.get("TABLE_SYNC_BENCH_ROUNDS", "1"))
TARGET_RATIO = 0.5
TARGET_RSS_MB = 200

COLUMNS = "id, customer_id, amount, status, note, created_at, updated_at"
TABLE_DDL = (
    "CREATE TABLE {name} (id bigint PRIMARY KEY, customer_id int NOT NULL, amount numeric(12, 2) NOT NULL, "
    "status text NOT NULL, note text, created_at timestamptz NOT NULL, updated_at timestamp NOT NULL)"
)
# One in ten rows changed before the window opens; the sync and the baseline move the rest.
SINCE = "2024-01-01 00:00:00"
SELECT_CHANGED = f"SELECT {COLUMNS} FROM orders WHERE updated_at >= '{SINCE}' ORDER BY updated_at, id"


def _rows_sql(total: int, before: bool) -> str:
    """The source's rows; `before`: the target as the previous run left it (older versions of four
    in five changed rows, none of the new fifth)."""
    changed_from = total - ROWS
    if not before:
        status, amount = "(ARRAY['new', 'paid', 'shipped', 'returned'])[g % 4 + 1]", "(g % 100000) / 100.0"
        updated = f"timestamp '{SINCE}' + (g / 3) * interval '1 millisecond'"
        where = ""
    else:
        status, amount = "'new'", "(g % 100000) / 100.0 + 1"
        updated = "timestamp '2023-12-01' + g * interval '1 millisecond'"
        where = f"WHERE g <= {changed_from} OR g % 5 <> 0"
    return f"""SELECT g, g % 50000, CASE WHEN g <= {changed_from} THEN (g % 100000) / 100.0 ELSE {amount} END,
                   CASE WHEN g <= {changed_from} THEN (ARRAY['new', 'paid', 'shipped', 'returned'])[g % 4 + 1]
                        ELSE {status} END,
                   CASE WHEN g % 7 = 0 THEN NULL ELSE 'note ' || md5(g::text) END,
                   timestamptz '2023-06-01 00:00:00+00' + g * interval '1 second',
                   CASE WHEN g <= {changed_from} THEN timestamp '2023-12-01' + g * interval '1 millisecond'
                        ELSE {updated} END
            FROM generate_series(1, {total}) AS g {where}"""


def _prepare(server: PostgresServer) -> None:
    total = ROWS + ROWS // 9
    server.psql("postgres", "-c", "CREATE DATABASE bench_src", "-c", "CREATE DATABASE bench_tgt")
    server.psql(
        "bench_src",
        "-c",
        TABLE_DDL.format(name="orders"),
        "-c",
        f"INSERT INTO orders {_rows_sql(total, before=False)}",
        "-c",
        "CREATE INDEX orders_cursor ON orders (updated_at, id)",
        "-c",
        "VACUUM ANALYZE orders",
    )
    server.psql(
        "bench_tgt",
        "-c",
        TABLE_DDL.format(name="orders"),
        "-c",
        TABLE_DDL.format(name="orders_baseline"),
    )


def _set_target(server: PostgresServer, state: str, table: str = "orders") -> None:
    """Reset `table` to `state`: `updates`: as the previous run left it; `new`: only the rows
    before the window; `first`: empty. The plain baseline's table starts empty."""
    statements = ["DROP SCHEMA IF EXISTS pipeline_state CASCADE", "TRUNCATE orders, orders_baseline"]
    if table != "orders":
        statements = [f"TRUNCATE {table}"]
    before = f"{_rows_sql(ROWS + ROWS // 9, before=True)}"
    if state == "updates":
        statements += [f"INSERT INTO {table} {before}"]
    elif state == "new":
        statements += [f"INSERT INTO {table} SELECT * FROM ({before}) AS b WHERE g <= {ROWS // 9}"]
    statements += [f"VACUUM ANALYZE {table}", "CHECKPOINT"]
    for statement in statements:
        server.psql("bench_tgt", "-c", statement)


def _baseline(server: PostgresServer, upsert: str | None = None) -> float:
    """The issue's baseline: psql `\\copy` out piped into psql `\\copy` in. With `upsert`, the
    like-for-like one: into a temporary table, then that statement, in one transaction."""
    env = {**os.environ, "PGPASSWORD": server.password, "PGSSLMODE": "require"}
    psql = str(server._bin / "psql")
    connect = f"-X -h {server.host} -p {server.port} -U {server.superuser}"
    load = f'-c "\\copy orders_baseline ({COLUMNS}) FROM STDIN"'
    if upsert is not None:
        load = (
            f'-1 -c "CREATE TEMP TABLE staging ON COMMIT DROP AS SELECT {COLUMNS} FROM orders_baseline WITH NO DATA" '
            f'-c "\\copy staging FROM STDIN" -c "{upsert}"'
        )
    pipeline = (
        f'{psql} {connect} -d bench_src -c "\\copy ({SELECT_CHANGED}) TO STDOUT" | {psql} {connect} -d bench_tgt {load}'
    )
    started = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def _sync(server: PostgresServer) -> dict[str, Any]:
    return run_worker(server, "scripts.bench.table_sync")


def run_worker(server: PostgresServer, module: str) -> dict[str, Any]:
    """Run `python -m module worker <server>` (a `sync_worker`), return the JSON it prints last."""
    args = json.dumps({"host": server.host, "port": server.port, "user": server.superuser, "password": server.password})
    return run_python(["-m", module, "worker", args], "sync worker")


class _Provider:
    """A connection provider without Secrets Manager: the benchmark passes the secret itself."""

    def __init__(self, settings: Any, secret: dict[str, Any]) -> None:
        self.settings, self.secret, self.connection = settings, secret, None

    def get(self) -> Any:
        from pipeline_common.db import connect

        if self.connection is None:
            self.connection = connect(self.settings, self.secret)
        return self.connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def _upsert_statement(server: PostgresServer) -> str:
    """The sync's own upsert statement (`pipeline_common.pgload`), aimed at the baseline table."""
    sys.path.insert(0, str(ROOT / "lambda_src"))
    import psycopg2
    from psycopg2 import sql

    from pipeline_common.identifiers import QualifiedName
    from pipeline_common.pgload import upsert_sql

    columns = COLUMNS.split(", ")
    statement = upsert_sql(
        sql.Identifier("staging"),
        QualifiedName("public", "orders_baseline"),
        columns,
        ["id"],
        columns[1:],
        version_column="updated_at",
        skip_unchanged=True,
        dedupe=False,
    )
    with psycopg2.connect(server.dsn("bench_tgt")) as connection:
        return statement.as_string(connection).replace('"', '\\"')


def _worker(raw: str) -> None:
    sync_worker(
        raw,
        [
            {
                "source": "public.orders",
                "target": "public.orders",
                "primary_key": ["id"],
                "cursor": {"column": "updated_at", "type": "timestamp"},
                "initial_value": SINCE.replace(" ", "T"),
                "chunk_size": CHUNK_SIZE,
            }
        ],
    )


def sync_worker(raw: str, table_configs: list[dict[str, Any]]) -> None:
    """In the worker process: one `run_sync` over `table_configs` from bench_src (pyodbc, psqlODBC)
    into bench_tgt; prints its seconds, CPU seconds, peak RSS and report as JSON."""
    sys.path.insert(0, str(ROOT / "lambda_src"))
    from pipeline_common.config import DatabaseSettings
    from pipeline_common.deadline import Deadline
    from table_sync.config import parse_tables
    from table_sync.sync import run_sync

    server = json.loads(raw)
    secret = {"username": server["user"], "password": server["password"]}

    def settings(database: str, driver: str | None) -> DatabaseSettings:
        return DatabaseSettings(
            "postgresql", server["host"], server["port"], database, "bench", "require", odbc_driver=driver
        )

    tables = parse_tables(table_configs, "postgresql")
    source = _Provider(settings("bench_src", "PostgreSQL Unicode"), secret)
    target = _Provider(settings("bench_tgt", None), secret)
    started, cpu_started = time.perf_counter(), time.process_time()
    report = run_sync(
        tables, source, target, engine="postgresql", state_schema="pipeline_state", deadline=Deadline.in_seconds(3600)
    )
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    peak_mb = own_peak_rss_mb()
    print(
        json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_mb": peak_mb, "result": report.to_json()})
    )


def _check(server: PostgresServer, state: str, table: dict[str, Any]) -> None:
    """The sync's target must hold exactly what the baseline copied for the changed rows, and
    (changed) the unchanged rows as they were."""
    expected = ROWS if state == "first" else ROWS + ROWS // 9
    copied = int(server.psql("bench_tgt", "-tAc", "SELECT count(*) FROM orders").strip())
    baseline_rows = int(server.psql("bench_tgt", "-tAc", "SELECT count(*) FROM orders_baseline").strip())
    window = f"SELECT {COLUMNS} FROM orders WHERE updated_at >= '{SINCE}'"
    baseline_window = window.replace("FROM orders ", "FROM orders_baseline ")
    diff = server.psql(
        "bench_tgt",
        "-tAc",
        f"SELECT (SELECT count(*) FROM ({window} EXCEPT {baseline_window}) a)"
        f" + (SELECT count(*) FROM ({baseline_window} EXCEPT {window}) b)",
    ).strip()
    if table["status"] != "finished" or copied != expected or baseline_rows < ROWS or diff != "0":
        raise SystemExit(
            f"benchmark result is wrong ({state}): {table}, target rows {copied} (expected {expected}), "
            f"baseline {baseline_rows}, differing rows {diff}"
        )


STATES = {
    "new": "new rows, target as the last run left it",
    "first": "first copy, empty target",
    "updates": "updates (4 in 5) and new rows (1 in 5)",
}


def _summary(label: str, baseline_seconds: float, measured: dict[str, Any], case: str) -> None:
    seconds = measured["seconds"]
    ratio = baseline_seconds / seconds
    verdict = "OK" if ratio >= TARGET_RATIO else "BELOW TARGET"
    rate = ROWS / baseline_seconds
    print(f"    {label}: {baseline_seconds:8.2f} s  {rate:12,.0f} rows/s  ratio {ratio:.2f}x  {verdict}")
    record(
        "table_sync",
        case,
        unit="rows/s",
        ours=ROWS / seconds,
        baseline=rate,
        baseline_what=label.strip(),
        target=TARGET_RATIO,
        peak_rss_mb=measured["peak_rss_mb"],
        rss_target_mb=TARGET_RSS_MB,
        details={
            "rows": ROWS,
            "seconds": round(seconds, 2),
            "baseline_seconds": round(baseline_seconds, 2),
            "cpu_seconds": round(measured["cpu_seconds"], 2),
            "chunk_size": CHUNK_SIZE,
            "rounds": ROUNDS,
        },
    )


def main() -> None:
    baselines: dict[str, list[float]] = {state: [] for state in STATES}
    like_for_like: list[float] = []
    syncs: dict[str, list[dict[str, Any]]] = {state: [] for state in STATES}
    with postgres_server() as server:
        print(f"preparing {ROWS:,} changed rows (+{ROWS // 9:,} unchanged) ...", flush=True)
        _prepare(server)
        upsert = _upsert_statement(server)
        for round_number in range(1, ROUNDS + 1):
            for state in STATES:
                _set_target(server, state)
                baseline_seconds = _baseline(server)
                if state == "updates":
                    _set_target(server, state, table="orders_baseline")
                    like_for_like.append(_baseline(server, upsert))
                measured = _sync(server)
                table = measured["result"]["tables"][0]
                _check(server, state, table)
                baselines[state].append(baseline_seconds)
                syncs[state].append(measured)
                print(
                    f"round {round_number} {state:8s} baseline {baseline_seconds:6.2f} s"
                    + (f" (copy + upsert {like_for_like[-1]:.2f} s)" if state == "updates" else "")
                    + f"  sync {measured['seconds']:6.2f} s (cpu {measured['cpu_seconds']:.2f} s)"
                    f"  ratio {baseline_seconds / measured['seconds']:.2f}x  upserted {table['rows_upserted']:,}"
                    f"  read {table['read_mode']}  peak RSS {measured['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
    print(f"best of {ROUNDS} round(s) for each side, chunk_size {CHUNK_SIZE}, target >= {TARGET_RATIO}x:")
    for state, label in STATES.items():
        measured = min(syncs[state], key=lambda m: m["seconds"])
        seconds, peak = measured["seconds"], max(m["peak_rss_mb"] for m in syncs[state])
        print(f"  {label}:")
        print(f"    table sync (pyodbc psqlODBC): {seconds:8.2f} s  {ROWS / seconds:12,.0f} rows/s")
        _summary("baseline psql \\copy | \\copy", min(baselines[state]), measured, state)
        if state == "updates":
            _summary("psql \\copy | \\copy + upsert", min(like_for_like), measured, "updates_like_for_like")
        verdict = "OK" if peak < TARGET_RSS_MB else "ABOVE TARGET"
        print(f"    peak RSS {peak:.0f} MB (target < {TARGET_RSS_MB} MB)  {verdict}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "worker":
        _worker(sys.argv[2])
    else:
        main()
