"""File loader benchmark, concurrent loaders: several sandboxes loading into one table at once.

    python -m scripts.bench file_loader_concurrent
    FILE_LOADER_CONCURRENT_ROWS=200000 python -m scripts.bench file_loader_concurrent    # quick run

5 CSV files of FILE_LOADER_CONCURRENT_ROWS rows (default 1,000,000, ~79 MB each) whose keys
overlap: file i holds ids [0.8 i N, 0.8 i N + N), so neighbours share a fifth of their keys, with
values that differ per file. Each file is put into the moto S3 bucket under `append/` and copied
server-side under `upsert/`; the notifications reach the SQS queue and are received one per batch, one batch per
handler process. The 5 handler processes (5 sandboxes: `maximum_concurrency` = 5) start, import,
wait, and are released at once; each fetches the secret, connects and loads its file.

- append: 5 handlers into one table without a key, against 5 concurrent `psql \\copy` of the same
  files into a table of their own;
- upsert: 5 handlers (route mode `upsert`) into one table keyed by id, against 5 concurrent psql
  sessions running the hand-written upsert (`\\copy` into a temp table + `INSERT ... ON CONFLICT
  DO UPDATE`, one transaction) into a table of their own.

Aggregate rows/s = all rows / the time until the last of the 5 finished; target >= 0.8x. Checks:
no failed message, no deadlock (`pg_stat_database.deadlocks` unchanged), the append table equal
to its baseline's as a multiset (no duplicate, no loss), every id of the upsert tables once and as
one of the files holding it wrote it, and the handlers' connections, sampled from
`pg_stat_activity` every 20 ms, never above 5.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2

from scripts.bench._child import child_environment, own_peak_rss_mb
from scripts.bench._loader_env import HEADER, LoaderEnvironment, loader_environment
from scripts.bench._results import record
from scripts.bench.file_loader import BUCKET, COLUMNS

ROOT = Path(__file__).resolve().parents[2]
ROWS = int(os.environ.get("FILE_LOADER_CONCURRENT_ROWS", "1000000"))
LOADERS = 5
STEP = ROWS * 4 // 5
TARGET = 0.8
APPLICATION = "aws-data-pipelines"  # pipeline_common.db's application_name
UPDATES = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS[1:])


def _write_file(path: Path, index: int) -> None:
    with open(path, "wb") as out:
        out.write(HEADER)
        block: list[str] = []
        for i in range(index * STEP, index * STEP + ROWS):
            note = f'"file {index}, row {i % 977}"' if i % 3 else ""
            block.append(
                f"{i},customer-{i % 50_000:06d} of segment {i % 7},{(i % 100_000) / 100 + index:.2f},{note},"
                f"2024-{1 + i % 12:02d}-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}+00\n"
            )
            if len(block) == 10_000:
                out.write("".join(block).encode())
                block = []
        out.write("".join(block).encode())


class ConnectionSampler:
    """The most connections `application_name` held at once, and what its sessions were waiting
    on (`pg_stat_activity.wait_event`; "CPU" when none), sampled every 20 ms."""

    def __init__(self, dsn: str, application: str) -> None:
        self.dsn, self.application, self.peak = dsn, application, 0
        self.waits: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = psycopg2.connect(self.dsn, application_name="bench-sampler")
        conn.autocommit = True
        with contextlib.closing(conn), conn.cursor() as cur:
            while not self._stop.is_set():
                cur.execute(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity WHERE application_name = %s",
                    (self.application,),
                )
                sessions = cur.fetchall()
                self.peak = max(self.peak, len(sessions))
                self.waits.update(
                    state if state != "active" else f"{kind}:{event}" if event else "CPU"
                    for state, kind, event in sessions
                )
                time.sleep(0.02)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _deadlocks(env: LoaderEnvironment) -> int:
    return int(env.sql("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")[0][0])


def _psql_sessions(env: LoaderEnvironment, paths: list[Path], table: str, upsert: bool) -> float:
    server = env.server
    procs = []
    started = time.perf_counter()
    for path in paths:
        copy = f"\\copy {{}} ({', '.join(COLUMNS)}) FROM '{path}' WITH (FORMAT csv, HEADER true)"
        if upsert:
            args = [
                "-1",
                "-c",
                f"CREATE TEMP TABLE s (LIKE {table}) ON COMMIT DROP",
                "-c",
                copy.format("s"),
                "-c",
                f"INSERT INTO {table} SELECT * FROM s ON CONFLICT (id) DO UPDATE SET {UPDATES}",
            ]
        else:
            args = ["-c", copy.format(table)]
        argv = [str(server._bin / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-h", server.host, "-p", str(server.port)]
        env_vars = {**os.environ, "PGPASSWORD": server.password, "PGSSLMODE": "require"}
        procs.append(
            subprocess.Popen(
                [*argv, "-U", server.superuser, "-d", "bench", *args], env=env_vars, stdout=subprocess.DEVNULL
            )
        )
    for proc in procs:
        if proc.wait() != 0:
            raise RuntimeError(f"psql exited with {proc.returncode}")
    return time.perf_counter() - started


def _handlers(env: LoaderEnvironment, events: list[dict[str, Any]], routes: list[dict[str, Any]]) -> dict[str, Any]:
    """Start one handler process per event, release them together; wall time and their reports."""
    child_env = child_environment(env.handler_env(routes))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "scripts.bench.file_loader_concurrent", "child", json.dumps(event)],
            cwd=ROOT,
            env=child_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for event in events
    ]
    for proc in procs:
        if proc.stdout is None or proc.stdout.readline().strip() != "ready":
            raise RuntimeError("a handler process did not start")
    with ConnectionSampler(env.dsn, APPLICATION) as sampler:
        started = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        reports = [_report(proc) for proc in procs]
        wall = time.perf_counter() - started  # until the last handler returned, not until its process exited
    for proc in procs:
        proc.wait()
    for report in reports:
        result = report["result"]
        if result["batchItemFailures"] or result["objects"].get("loaded") != 1:
            raise RuntimeError(f"a handler did not load its file: {result}")
    samples = sum(sampler.waits.values()) or 1
    return {
        "seconds": wall,
        "peak_connections": sampler.peak,
        "reports": reports,
        "waits": sampler.waits,
        "samples": samples,
    }


def _report(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith('{"result"'):
            return json.loads(line)
    raise RuntimeError(f"a handler process exited with {proc.wait()} without a report")


def _child(raw_event: str) -> None:
    from file_loader import handler
    from scripts.lambda_context import LocalLambdaContext

    event = json.loads(raw_event)
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    cpu = time.process_time()
    result = handler.handler(event, LocalLambdaContext(timeout_seconds=900))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        json.dumps({"result": result, "seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": own_peak_rss_mb()}),
        flush=True,
    )


def _same_rows(env: LoaderEnvironment, table: str, expected: int) -> None:
    """Both tables hold `expected` rows and the same multiset of rows (a sum of row hashes)."""
    fingerprint = "SELECT count(*), sum(hashtext(t::text)::bigint) FROM {} t"
    ours, baseline = (env.sql(fingerprint.format(name))[0] for name in (table, f"{table}_baseline"))
    if ours != baseline or ours[0] != expected:
        raise RuntimeError(f"{table}: (rows, hash) {ours}, baseline {baseline}, expected {expected} rows")


def _upserted_rows(env: LoaderEnvironment, table: str, expected: int) -> None:
    """Each table holds every id once, each row as one of the files holding that id wrote it.
    Which file wrote an id two files share depends on which upsert committed last, in either run,
    so the tables are compared with the files, not with each other."""
    for name in (table, f"{table}_baseline"):
        rows, ids, low, high, foreign = env.sql(
            f"""
            SELECT count(*), count(DISTINCT id), min(id), max(id), count(*) FILTER (WHERE NOT EXISTS (
                SELECT 1 FROM generate_series(0, {LOADERS - 1}) k
                WHERE t.id >= k * {STEP} AND t.id < k * {STEP} + {ROWS}
                  AND t.amount = (t.id % 100000) / 100.0 + k
                  AND t.note IS NOT DISTINCT FROM
                      CASE WHEN t.id % 3 <> 0 THEN 'file ' || k || ', row ' || t.id % 977 END))
            FROM {name} t
            """
        )[0]
        if (rows, ids, low, high, foreign) != (expected, expected, 0, expected - 1, 0):
            raise RuntimeError(
                f"{name}: {rows} rows, {ids} ids from {low} to {high}, {foreign} rows no file wrote; "
                f"expected ids 0 to {expected - 1} once each"
            )


def _case(env: LoaderEnvironment, name: str, paths: list[Path], events: list[dict[str, Any]], expected: int) -> None:
    upsert = name == "upsert"
    table = f"concurrent_{name}"
    routes = [{"prefix": f"{name}/", "table": f"public.{table}", **({"mode": "upsert"} if upsert else {})}]
    env.sql("CHECKPOINT")
    deadlocks = _deadlocks(env)
    with ConnectionSampler(env.dsn, "psql") as psql_sampler:
        baseline = _psql_sessions(env, paths, f"{table}_baseline", upsert)
    env.sql("CHECKPOINT")
    moto_cpu = env.moto_cpu_seconds()
    ours = _handlers(env, events, routes)
    moto_cpu = env.moto_cpu_seconds() - moto_cpu
    handler_cpu = sum(r["cpu_seconds"] for r in ours["reports"])
    deadlocks = _deadlocks(env) - deadlocks
    (_upserted_rows if upsert else _same_rows)(env, table, expected)
    rows = LOADERS * ROWS
    ratio = baseline / ours["seconds"]
    peak_rss = max(r["peak_rss_mb"] for r in ours["reports"])
    what = "psql \\copy" if not upsert else "hand-written upserts (psql: \\copy to temp + INSERT ... ON CONFLICT)"
    print(
        f"{name}: {LOADERS} concurrent {what}: {rows / baseline:,.0f} rows/s ({baseline:.1f} s); {LOADERS} handler "
        f"processes {rows / ours['seconds']:,.0f} rows/s ({ours['seconds']:.1f} s; each "
        + ", ".join(f"{r['seconds']:.1f}" for r in ours["reports"])
        + f" s): {ratio:.2f}x (target >= {TARGET}x); deadlocks {deadlocks}; connections at most "
        f"{ours['peak_connections']} (maximum_concurrency {LOADERS}; psql {psql_sampler.peak}); "
        f"handler peak RSS {peak_rss:.0f} MB; CPU: handlers {handler_cpu:.1f} s, moto S3 serving {moto_cpu:.1f} s "
        f"(of {2 * ours['seconds']:.0f} core-seconds on 2 cores)",
        flush=True,
    )
    waits = ", ".join(f"{name} {count / ours['samples']:.0%}" for name, count in ours["waits"].most_common(5))
    print(f"    handler sessions' samples: {waits}", flush=True)
    if deadlocks or ours["peak_connections"] > LOADERS:
        raise RuntimeError(f"{name}: {deadlocks} deadlocks, {ours['peak_connections']} connections at once")
    record(
        "file_loader",
        f"concurrent_{name}",
        unit="rows/s",
        ours=rows / ours["seconds"],
        baseline=rows / baseline,
        baseline_what=f"{LOADERS} concurrent {what} of the same files",
        target=TARGET,
        peak_rss_mb=peak_rss,
        details={
            "loaders": LOADERS,
            "rows_per_file": ROWS,
            "rows_in_table": expected,
            "seconds": round(ours["seconds"], 2),
            "baseline_seconds": round(baseline, 2),
            "per_handler_seconds": [round(r["seconds"], 2) for r in ours["reports"]],
            "deadlocks": deadlocks,
            "peak_connections": ours["peak_connections"],
            "maximum_concurrency": LOADERS,
            "handler_cpu_seconds": round(handler_cpu, 1),
            "moto_cpu_seconds": round(moto_cpu, 1),
            "session_samples": dict(ours["waits"].most_common(8)),
        },
    )


def _files(workdir: Path) -> Iterator[Path]:
    for index in range(LOADERS):
        path = workdir / f"part-{index}.csv"
        _write_file(path, index)
        yield path


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-concurrent-") as workdir, loader_environment() as env:
        os.chmod(workdir, 0o755)  # psql runs as this user, the server as postgres: only psql reads the files
        started = time.perf_counter()
        paths = list(_files(Path(workdir)))

        def put(i: int) -> int:
            body = paths[i].read_bytes()  # one PutObject: a multipart upload would notify twice
            env.s3.put_object(Bucket=BUCKET, Key=f"append/{paths[i].name}", Body=body)
            return len(body)

        def copy(i: int) -> int:  # a server-side copy: its own notification, no second upload
            source = {"Bucket": BUCKET, "Key": f"append/{paths[i].name}"}
            env.s3.copy_object(Bucket=BUCKET, Key=f"upsert/{paths[i].name}", CopySource=source)
            return 0

        events = {"append": env.put_and_receive(LOADERS, put, batch_size=1)[1]}
        events["upsert"] = env.put_and_receive(LOADERS, copy, batch_size=1)[1]
        size = sum(p.stat().st_size for p in paths)
        print(
            f"wrote, put and copied {LOADERS} files of {ROWS:,} rows ({size / 1e6:,.0f} MB) in "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
        env.create_tables("concurrent_append", "concurrent_append_baseline")
        env.create_tables("concurrent_upsert", "concurrent_upsert_baseline", primary_key=True)
        _case(env, "append", paths, events["append"], LOADERS * ROWS)
        _case(env, "upsert", paths, events["upsert"], (LOADERS - 1) * STEP + ROWS)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        _child(sys.argv[2])
    else:
        main()
