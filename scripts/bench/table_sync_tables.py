"""Table sync benchmark, many small tables: 50 tables in one invocation, where per-table overhead shows.

    python -m scripts.bench table_sync_tables
    TABLE_SYNC_TABLES_ROWS=10000 python -m scripts.bench table_sync_tables    # bigger tables

50 source tables of TABLE_SYNC_TABLES_ROWS rows (default 1,000) in a PostgreSQL database, all
changed since the cursor's start, copied into 50 empty tables of another database:

- the sync: one `run_sync` over the 50 tables (PostgreSQL source via pyodbc/psqlODBC, as
  `table_sync`), in a subprocess so its peak RSS is its own; every table gets its lock,
  checkpoint read, chunked keyset read, COPY and checkpoint write;
- baseline: the same 50 through psql, as tightly as a person would script it: one psql session
  on the source runs 50 `\\copy (SELECT ... WHERE updated_at >= start ORDER BY updated_at, id) TO
  file`, then one psql session on the target runs 50 `\\copy ... FROM file`.

Reports tables/s against the baseline (target >= 0.5x, the table sync's) and the per-table
overhead: (sync time - baseline time) / 50.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from scripts.bench._results import record
from scripts.bench.table_sync import COLUMNS, SINCE, TABLE_DDL, run_worker, sync_worker
from scripts.localdb import PostgresServer, postgres_server

ROOT = Path(__file__).resolve().parents[2]
TABLES = 50
ROWS = int(os.environ.get("TABLE_SYNC_TABLES_ROWS", "1000"))
TARGET = 0.5
NAMES = [f"t{n:02d}" for n in range(TABLES)]


def _prepare(server: PostgresServer) -> None:
    server.psql("postgres", "-c", "CREATE DATABASE bench_src", "-c", "CREATE DATABASE bench_tgt")
    rows = (
        "SELECT g, g % 50000, (g % 100000) / 100.0, (ARRAY['new', 'paid', 'shipped'])[g % 3 + 1], 'note ' || g, "
        f"timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', timestamp '{SINCE}' + g * interval '1 ms' "
        f"FROM generate_series(1, {ROWS}) g"
    )
    source = "".join(f"{TABLE_DDL.format(name=name)}; INSERT INTO {name} {rows};\n" for name in NAMES)
    server.psql("bench_src", "-1", "-f", "-", input_text=source)
    server.psql("bench_src", "-c", "VACUUM ANALYZE")
    _empty_targets(server)


def _empty_targets(server: PostgresServer) -> None:
    statements = "".join(f"DROP TABLE IF EXISTS {name}; {TABLE_DDL.format(name=name)};\n" for name in NAMES)
    server.psql("bench_tgt", "-1", "-f", "-", input_text="DROP SCHEMA IF EXISTS pipeline_state CASCADE;\n" + statements)


def _baseline(server: PostgresServer, workdir: Path) -> float:
    out = "".join(
        f"\\copy (SELECT {COLUMNS} FROM {name} WHERE updated_at >= '{SINCE}' ORDER BY updated_at, id) "
        f"TO '{workdir / name}.tsv'\n"
        for name in NAMES
    )
    into = "".join(f"\\copy {name} ({COLUMNS}) FROM '{workdir / name}.tsv'\n" for name in NAMES)
    started = time.perf_counter()
    server.psql("bench_src", "-f", "-", input_text=out)
    server.psql("bench_tgt", "-f", "-", input_text=into)
    return time.perf_counter() - started


def _worker(raw: str) -> None:
    sync_worker(
        raw,
        [
            {
                "source": f"public.{name}",
                "target": f"public.{name}",
                "primary_key": ["id"],
                "cursor": {"column": "updated_at", "type": "timestamp"},
                "initial_value": SINCE.replace(" ", "T"),
            }
            for name in NAMES
        ],
    )


def _check(server: PostgresServer, measured: dict) -> None:
    finished = [t for t in measured["result"]["tables"] if t["status"] == "finished"]
    counts = server.psql("bench_tgt", "-tAc", " UNION ALL ".join(f"SELECT count(*) FROM {n}" for n in NAMES)).split()
    if len(finished) != TABLES or any(int(c) != ROWS for c in counts):
        raise SystemExit(f"table sync result is wrong: {len(finished)} finished, row counts {counts}")


def main() -> None:
    with postgres_server() as server, tempfile.TemporaryDirectory(prefix="bench-tables-") as workdir:
        os.chmod(workdir, 0o777)  # psql writes and reads the files as this user
        print(f"preparing {TABLES} tables of {ROWS:,} rows ...", flush=True)
        _prepare(server)
        baseline = _baseline(server, Path(workdir))
        _empty_targets(server)
        measured = run_worker(server, "scripts.bench.table_sync_tables")
        _check(server, measured)
    seconds = measured["seconds"]
    overhead_ms = (seconds - baseline) * 1000 / TABLES
    print(
        f"{TABLES} tables of {ROWS:,} rows: psql (one session out, one in) {baseline:.2f} s, table sync in one "
        f"invocation {seconds:.2f} s: {baseline / seconds:.3g}x (target >= {TARGET}x); "
        f"{seconds * 1000 / TABLES:.0f} ms per table against {baseline * 1000 / TABLES:.0f} ms: "
        f"overhead {overhead_ms:.0f} ms per table; "
        f"peak RSS {measured['peak_rss_mb']:.0f} MB",
        flush=True,
    )
    record(
        "table_sync",
        "50_small_tables",
        unit="tables/s",
        ours=TABLES / seconds,
        baseline=TABLES / baseline,
        baseline_what="one psql session \\copy-ing the 50 tables out to files, one \\copy-ing them in",
        target=TARGET,
        peak_rss_mb=measured["peak_rss_mb"],
        details={
            "tables": TABLES,
            "rows_per_table": ROWS,
            "seconds": round(seconds, 2),
            "baseline_seconds": round(baseline, 2),
            "ms_per_table": round(seconds * 1000 / TABLES, 1),
            "baseline_ms_per_table": round(baseline * 1000 / TABLES, 1),
            "overhead_ms_per_table": round(overhead_ms, 1),
        },
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "worker":
        _worker(sys.argv[2])
    else:
        main()
