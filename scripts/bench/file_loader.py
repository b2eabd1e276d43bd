"""File loader benchmark: the handler against psql and a hand-written upsert, in the same run.

1. Append: a CSV object of FILE_LOADER_BENCH_ROWS rows (default 1,000,000, ~100 MB) loaded by
   the Lambda handler end to end (SQS event -> S3 GET over HTTP from a moto server -> COPY ->
   ledger commit) against `psql \\copy` of the same file into the same table.
2. Upsert: the handler's upsert route against a hand-written COPY into a temp table + INSERT ...
   ON CONFLICT DO UPDATE of the same file, both updating every row of a filled table.
3. Memory: peak RSS (VmHWM) of a separate handler process loading a
   FILE_LOADER_BENCH_RSS_MB object (default 1024 MB), generated and uploaded as a stream.

Set FILE_LOADER_BENCH_ROWS=100000 FILE_LOADER_BENCH_RSS_MB=100 for a quick run.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import psycopg2

from scripts.bench._child import own_peak_rss_mb, run_handler_process
from scripts.bench._results import record
from scripts.localdb import PostgresServer, postgres_server
from scripts.localenv.moto_server import MotoServer

REGION = "us-east-1"
BUCKET = "bench-landing"
COLUMNS = ["id", "customer", "amount", "note", "created"]
TABLE_DDL = """
CREATE TABLE {name} (
    id bigint {pk},
    customer text NOT NULL,
    amount numeric(12, 2),
    note text,
    created timestamptz
)
"""


def csv_lines(rows: int, start: int = 0) -> Iterator[bytes]:
    """~100-byte rows with quoting, an embedded comma and NULLs, in 1 MB blocks."""
    block: list[str] = []
    for i in range(start, start + rows):
        note = f'"note {i % 977}, with a comma"' if i % 3 else ""
        block.append(
            f"{i},customer-{i % 50_000:06d} of segment {i % 7},{(i % 100_000) / 100:.2f},{note},"
            f"2024-{1 + i % 12:02d}-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}+00\n"
        )
        if len(block) == 10_000:
            yield "".join(block).encode()
            block = []
    if block:
        yield "".join(block).encode()


class GeneratedFile(io.RawIOBase):
    """A readable stream of a CSV of about `size` bytes, produced on the fly (for a 1 GB upload
    without a 1 GB file)."""

    def __init__(self, size: int) -> None:
        self._blocks = self._generate(size)
        self._pending = b""

    @staticmethod
    def _generate(size: int) -> Iterator[bytes]:
        yield (",".join(COLUMNS) + "\n").encode()
        produced = 0
        start = 0
        while produced < size:
            for block in csv_lines(100_000, start):
                produced += len(block)
                yield block
            start += 100_000

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            block = next(self._blocks, None)
            if block is None:
                return 0
            self._pending = block
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def sqs_event(bucket: str, key: str, size: int, etag: str) -> dict[str, Any]:
    body = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": size, "eTag": etag}},
            }
        ]
    }
    return {"Records": [{"messageId": "m-" + key, "eventSource": "aws:sqs", "body": json.dumps(body)}]}


def handler_env(server: PostgresServer, database: str, endpoint: str, secret_arn: str, routes: list[Any]) -> dict:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "DB_HOST": server.host,
        "DB_PORT": str(server.port),
        "DB_NAME": database,
        "DB_SECRET_ARN": secret_arn,
        "SOURCE_BUCKET": BUCKET,
        "ROUTES": json.dumps(routes),
        "LOG_LEVEL": "WARNING",
        "POWERTOOLS_SERVICE_NAME": "bench",
    }


ROUTES = [
    {"prefix": "append/", "table": "public.bench"},
    {"prefix": "upsert/", "table": "public.bench_pk", "mode": "upsert"},
    {"prefix": "big/", "table": "public.bench_big"},
]


def run_handler_in_process(event: dict[str, Any], env: dict[str, str]) -> float:
    from file_loader import handler
    from scripts.lambda_context import LocalLambdaContext

    # The handler reads its settings from the environment; they go again afterwards, so nothing
    # run later in this process talks to this benchmark's (stopped) moto server.
    with mock.patch.dict(os.environ, env):
        handler.sandbox.reset()
        start = time.perf_counter()
        result = handler.handler(event, LocalLambdaContext(timeout_seconds=900))
        elapsed = time.perf_counter() - start
        handler.sandbox.reset()
    if result["batchItemFailures"] or result["objects"].get("loaded") != 1:
        raise RuntimeError(f"handler did not load the object: {result}")
    return elapsed


def sql(dsn: str, statement: str) -> Any:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(statement)
        value = cur.fetchone() if cur.description else None
    conn.close()
    return value


def psql_copy(server: PostgresServer, database: str, table: str, path: Path) -> float:
    start = time.perf_counter()
    server.psql(database, "-c", f"\\copy {table} ({', '.join(COLUMNS)}) FROM '{path}' WITH (FORMAT csv, HEADER true)")
    return time.perf_counter() - start


def manual_upsert(dsn: str, path: Path) -> float:
    """What a careful engineer writes by hand: COPY into a temp table, INSERT ... ON CONFLICT."""
    conn = psycopg2.connect(dsn)
    start = time.perf_counter()
    with conn, conn.cursor() as cur, open(path, "rb") as data:
        cur.execute("CREATE TEMP TABLE s (LIKE bench_pk) ON COMMIT DROP")
        cur.copy_expert(f"COPY s ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT csv, HEADER true)", data, 256 * 1024)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS[1:])
        cur.execute(f"INSERT INTO bench_pk SELECT * FROM s ON CONFLICT (id) DO UPDATE SET {updates}")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def main() -> None:
    rows = int(os.environ.get("FILE_LOADER_BENCH_ROWS", "1000000"))
    rss_mb = int(os.environ.get("FILE_LOADER_BENCH_RSS_MB", "1024"))
    repeats = int(os.environ.get("FILE_LOADER_BENCH_REPEATS", "2"))
    results: dict[str, Any] = {"rows": rows}
    moto = MotoServer()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    endpoint = moto.start()
    workdir = Path(tempfile.mkdtemp(prefix="bench-file-loader-"))
    try:
        with postgres_server() as server:
            database = "bench"
            sql(server.dsn(), f"CREATE DATABASE {database}")
            dsn = server.dsn(database)
            for name, pk in (("bench", ""), ("bench_pk", "PRIMARY KEY"), ("bench_big", "")):
                sql(dsn, TABLE_DDL.format(name=name, pk=pk))
            s3 = boto3.client(
                "s3",
                endpoint_url=endpoint,
                region_name=REGION,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            secrets = boto3.client(
                "secretsmanager",
                endpoint_url=endpoint,
                region_name=REGION,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            s3.create_bucket(Bucket=BUCKET)
            secret_arn = secrets.create_secret(
                Name="bench/db", SecretString=json.dumps({"username": server.superuser, "password": server.password})
            )["ARN"]
            env = handler_env(server, database, endpoint, secret_arn, ROUTES)

            path = workdir / "bench.csv"
            with open(path, "wb") as out:
                out.write((",".join(COLUMNS) + "\n").encode())
                for block in csv_lines(rows):
                    out.write(block)
            size = path.stat().st_size
            results["csv_mb"] = round(size / 1e6, 1)
            print(f"generated {rows:,} rows, {size / 1e6:.1f} MB", flush=True)
            events = {}
            for prefix in ("append/", "upsert/"):
                s3.upload_file(str(path), BUCKET, prefix + "bench.csv")
                etag = s3.head_object(Bucket=BUCKET, Key=prefix + "bench.csv")["ETag"].strip('"')
                events[prefix] = sqs_event(BUCKET, prefix + "bench.csv", size, etag)

            # Append: alternate psql and the handler; best of `repeats` each.
            psql_times, handler_times = [], []
            for attempt in range(repeats):
                sql(dsn, "TRUNCATE bench")
                psql_times.append(psql_copy(server, database, "bench", path))
                assert sql(dsn, "SELECT count(*) FROM bench")[0] == rows
                sql(dsn, "TRUNCATE bench; TRUNCATE pipeline_state.file_loads" if attempt else "TRUNCATE bench")
                sql(dsn, "CREATE SCHEMA IF NOT EXISTS pipeline_state")
                handler_times.append(run_handler_in_process(events["append/"], env))
                assert sql(dsn, "SELECT count(*) FROM bench")[0] == rows
                sql(dsn, "TRUNCATE pipeline_state.file_loads")
            psql_rps, handler_rps = rows / min(psql_times), rows / min(handler_times)
            results["append"] = {
                "psql_seconds": round(min(psql_times), 2),
                "handler_seconds": round(min(handler_times), 2),
                "psql_rows_per_s": round(psql_rps),
                "handler_rows_per_s": round(handler_rps),
                "ratio": round(handler_rps / psql_rps, 2),
            }
            print(
                f"append: psql \\copy {psql_rps:,.0f} rows/s ({min(psql_times):.2f} s), handler "
                f"{handler_rps:,.0f} rows/s ({min(handler_times):.2f} s): {handler_rps / psql_rps:.2f}x "
                "(target >= 0.6x)",
                flush=True,
            )
            # No peak RSS here: the handler shares this process with the moto server and the
            # objects it holds; the memory case below measures a handler process of its own.
            record(
                "file_loader",
                "append",
                unit="rows/s",
                ours=handler_rps,
                baseline=psql_rps,
                baseline_what=f"psql \\copy of the same {rows:,}-row CSV into the same table",
                target=0.6,
                details=results["append"],
            )

            # Upsert: both update every row of a filled table.
            sql(dsn, "INSERT INTO bench_pk SELECT * FROM bench")
            sql(dsn, "VACUUM ANALYZE bench_pk")
            manual_times, upsert_times = [], []
            for _ in range(repeats):
                manual_times.append(manual_upsert(dsn, path))
                sql(dsn, "VACUUM bench_pk")
                upsert_times.append(run_handler_in_process(events["upsert/"], env))
                sql(dsn, "TRUNCATE pipeline_state.file_loads")
                sql(dsn, "VACUUM bench_pk")
            manual_rps, upsert_rps = rows / min(manual_times), rows / min(upsert_times)
            results["upsert"] = {
                "manual_seconds": round(min(manual_times), 2),
                "handler_seconds": round(min(upsert_times), 2),
                "manual_rows_per_s": round(manual_rps),
                "handler_rows_per_s": round(upsert_rps),
                "ratio": round(upsert_rps / manual_rps, 2),
            }
            print(
                f"upsert: hand-written COPY+ON CONFLICT {manual_rps:,.0f} rows/s ({min(manual_times):.2f} s), "
                f"handler {upsert_rps:,.0f} rows/s ({min(upsert_times):.2f} s): {upsert_rps / manual_rps:.2f}x "
                "(target >= 0.8x)",
                flush=True,
            )
            record(
                "file_loader",
                "upsert",
                unit="rows/s",
                ours=upsert_rps,
                baseline=manual_rps,
                baseline_what="hand-written COPY into a temp table + INSERT ... ON CONFLICT DO UPDATE",
                target=0.8,
                details=results["upsert"],
            )
            path.unlink()
            sql(dsn, "TRUNCATE bench, bench_pk")

            # Memory: a big object, streamed up and loaded by a separate handler process.
            key = "big/big.csv"
            started = time.perf_counter()
            s3.upload_fileobj(io.BufferedReader(GeneratedFile(rss_mb * 1024 * 1024), 8 * 1024 * 1024), BUCKET, key)
            head = s3.head_object(Bucket=BUCKET, Key=key)
            big_size = head["ContentLength"]
            print(f"uploaded {big_size / 1e6:,.0f} MB in {time.perf_counter() - started:.0f} s", flush=True)
            event = sqs_event(BUCKET, key, big_size, head["ETag"].strip('"'))
            report = run_handler_process("file_loader", event, env, memory_mb=256)
            if report["result"]["objects"].get("loaded") != 1:
                raise RuntimeError(f"big object not loaded: {report}")
            big_rows = sql(dsn, "SELECT count(*) FROM bench_big")[0]
            peak_mb = report["peak_rss_mb"]
            results["memory"] = {
                "object_mb": round(big_size / 1e6),
                "rows": big_rows,
                "seconds": round(report["seconds"], 1),
                "mb_per_s": round(big_size / 1e6 / report["seconds"], 1),
                "peak_rss_mb": round(peak_mb, 1),
            }
            print(
                f"memory: {big_size / 1e6:,.0f} MB object ({big_rows:,} rows) loaded in {report['seconds']:.1f} s "
                f"({big_size / 1e6 / report['seconds']:.1f} MB/s); handler peak RSS {peak_mb:.1f} MB "
                "(target < 150 MB)",
                flush=True,
            )
            record(
                "file_loader",
                "memory",
                unit="MB/s",
                ours=big_size / 1e6 / report["seconds"],
                baseline=None,
                baseline_what=None,
                target=None,
                peak_rss_mb=peak_mb,
                rss_target_mb=150,
                details=results["memory"],
            )
    finally:
        moto.stop()
        for leftover in workdir.glob("*"):
            leftover.unlink()
        workdir.rmdir()
    print("file_loader results: " + json.dumps(results), flush=True)
    print(f"(benchmark process peak RSS {own_peak_rss_mb():.0f} MB)")
