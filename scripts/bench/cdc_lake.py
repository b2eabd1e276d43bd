"""CDC lake benchmark: the partitioner and the apply against hand-made baselines, in the same run.

1. Partitioner: CDC_LAKE_BENCH_OBJECTS small DMS files (default 1,000) copied into their lake
   partitions by CDC_LAKE_BENCH_CONCURRENCY worker processes (default 4, each one sandbox with its
   client and connection, as Lambda runs them) through `partition_object` (ledger lock, status,
   copy, ledger row, commit; arrival partitioning, no counting), against the same processes
   running a bare `copy_object` loop over the same files, on the same moto server (the project's
   launcher, in a process of its own); best of CDC_LAKE_BENCH_REPEATS runs each, the sides taking
   turns to go first. Events carry the version id, as a versioned bucket's do. S3 calls per file
   are counted with a botocore event hook: one (the CopyObject) is the target.
2. Apply: a DMS CDC file of CDC_LAKE_BENCH_CHANGES changes (default 1,000,000: 70% updates, 15%
   inserts, 15% deletes, some keys changed twice) applied by `apply_file` (read from S3, COPY into
   a staging table, the guarded merge with tombstones, the ledger) to a table of as many rows,
   against a hand-written COPY of the same file from disk into a temp table + the last change per
   key upserted and deleted, in one transaction. Both start from the same table.
3. Memory: the Lambda handler in a separate process copies, counts and applies a CDC file of each
   size in CDC_LAKE_BENCH_MEMORY_ROWS (default 100000,1000000 rows); its peak RSS (VmHWM) should
   not grow with the file.

CDC_LAKE_BENCH_REPEATS (default 3) repeats the partitioner, the apply and their baselines (the best
run counts).
CDC_LAKE_BENCH_CHANGES=100000 CDC_LAKE_BENCH_MEMORY_ROWS=50000,500000 gives a quick run.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import psycopg2

from cdc_lake.apply import applied_ledger, apply_file
from cdc_lake.config import LakeConfig, parse_apply_tables
from cdc_lake.copier import Copier
from cdc_lake.merge import Tombstones, tombstone_table_name
from cdc_lake.partitioner import copies_ledger, partition_object
from cdc_lake.reading import ObjectVersion
from pipeline_common.config import DatabaseSettings
from pipeline_common.db import ManagedConnection
from pipeline_common.deadline import Deadline
from pipeline_common.events import S3Object
from pipeline_common.identifiers import QualifiedName
from pipeline_common.ledger import ObjectId
from pipeline_common.secrets import SecretCache
from scripts.bench._child import run_handler_process
from scripts.bench._results import record
from scripts.demo.processes import moto_server
from scripts.localdb import PostgresServer, postgres_server

REGION = "us-east-1"
STAGING, LAKE = "bench-staging", "bench-lake"
COLUMNS = ["Op", "dms_commit_ts", "order_id", "customer_id", "status", "amount", "dms_change_seq"]
TABLE_DDL = """
CREATE SCHEMA IF NOT EXISTS replica;
CREATE TABLE replica.orders (
    order_id bigint PRIMARY KEY, customer_id bigint NOT NULL, status text, amount numeric(12, 2),
    dms_commit_ts timestamp, dms_change_seq numeric(38))
"""
BASE = datetime(2026, 3, 1, 10, tzinfo=UTC)


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def change_lines(changes: int, existing: int, seed: int = 7) -> Iterator[bytes]:
    """A DMS CDC file's rows in 1 MB blocks: header, then changes in commit order."""
    rng = random.Random(seed)
    yield (",".join(COLUMNS) + "\n").encode()
    block: list[str] = []
    next_new = existing + 1
    for i in range(changes):
        stamp = (BASE + timedelta(microseconds=i * 50)).strftime("%Y-%m-%d %H:%M:%S.%f")
        kind = rng.random()
        if kind < 0.15:
            op, key = "I", next_new
            next_new += 1
        else:
            op, key = ("D" if kind < 0.30 else "U"), rng.randint(1, existing)
        if op == "D":
            block.append(f"D,{stamp},{key},,,,{i:035d}\n")
        else:
            block.append(
                f"{op},{stamp},{key},{key % 5000},{'shipped' if i % 2 else 'paid'},{(i % 9999) / 100:.2f},{i:035d}\n"
            )
        if len(block) == 10_000:
            yield "".join(block).encode()
            block = []
    if block:
        yield "".join(block).encode()


def _sql(dsn: str, *statements: str) -> Any:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    value = None
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
            value = cur.fetchone() if cur.description else None
    conn.close()
    return value


def _database(server: PostgresServer, endpoint: str) -> tuple[DatabaseSettings, Any]:
    secret = _client("secretsmanager", endpoint).create_secret(
        Name=f"bench/db-{time.monotonic_ns()}",
        SecretString=json.dumps({"username": server.superuser, "password": server.password}),
    )["ARN"]
    settings = DatabaseSettings("postgresql", server.host, server.port, "bench", secret)
    return settings, lambda: ManagedConnection(settings, SecretCache(lambda: _client("secretsmanager", endpoint)))


# One sandbox per worker process, as Lambda runs them: threads sharing one interpreter lock would
# add waits for it after every round trip, which the side making more of them feels more.
_sandbox: dict[str, Any] = {}


def _count_call(**_: Any) -> None:
    _sandbox["calls"] += 1


def _start_sandbox(endpoint: str, settings: DatabaseSettings, config: LakeConfig) -> None:
    s3 = _client("s3", endpoint)
    s3.meta.events.register("before-call.s3", _count_call)
    db = ManagedConnection(settings, SecretCache(lambda: _client("secretsmanager", endpoint)))
    copier = Copier(s3, config.multipart_threshold, config.multipart_chunk_size)
    _sandbox.update(s3=s3, db=db, copier=copier, config=config, ledger=copies_ledger("pipeline_state"), calls=0)


def _warm(_: int) -> None:
    _sandbox["db"].get()
    time.sleep(0.05)  # so that every process gets some of the work


def _bare_copy(obj: S3Object) -> int:
    """A bare CopyObject; returns the S3 calls made. The same key every run, as the partitioner's."""
    before = _sandbox["calls"]
    _sandbox["s3"].copy_object(CopySource={"Bucket": obj.bucket, "Key": obj.key}, Bucket=LAKE, Key=f"bare/{obj.key}")
    return _sandbox["calls"] - before


def _partition(obj: S3Object) -> int:
    """`partition_object` on the object's event; returns the S3 calls made."""
    before = _sandbox["calls"]
    now = datetime.now(UTC).isoformat()
    event = S3Object(obj.bucket, obj.key, obj.version_id, obj.etag, obj.size, obj.event_name, event_time=now)
    result = partition_object(
        event,
        config=_sandbox["config"],
        s3=_sandbox["s3"],
        copier=_sandbox["copier"],
        db=_sandbox["db"],
        ledger=_sandbox["ledger"],
        deadline=Deadline.in_seconds(300),
    )
    if result.status != "copied":
        raise RuntimeError(f"{obj.key}: {result}")
    return _sandbox["calls"] - before


def bench_partitioner(
    endpoint: str, dsn: str, settings: DatabaseSettings, objects: int, concurrency: int, repeats: int
) -> dict[str, Any]:
    s3 = _client("s3", endpoint)
    body = b"".join(change_lines(100, 10_000))  # ~8 KB, a small CDC file
    sources = []
    for i in range(objects):
        key = f"dms/sales/orders/20260301-{i:09d}.csv"
        put = s3.put_object(Bucket=STAGING, Key=key, Body=body)
        # As S3 notifies for a versioned bucket (the module's always are): with the version id.
        sources.append(S3Object(STAGING, key, put["VersionId"], put["ETag"].strip('"'), len(body), "ObjectCreated:Put"))
    config = LakeConfig(
        staging_bucket=STAGING, staging_folder="dms", lake_bucket=LAKE, lake_prefix="cdc", count_rows=False
    )
    times: dict[str, list[float]] = {"bare": [], "ours": []}
    calls: dict[str, int] = {}
    context = multiprocessing.get_context("fork")
    with context.Pool(concurrency, initializer=_start_sandbox, initargs=(endpoint, settings, config)) as pool:
        # Every process connects first: neither side pays for setup in the timing.
        pool.map(_warm, range(concurrency * 4), chunksize=1)
        for run in range(repeats):
            # Sides take turns going first (bare, ours, ours, bare, ...): moto's copies slow down
            # as its store fills, which would otherwise always favour the side that goes first.
            for side in ("bare", "ours") if run % 2 == 0 else ("ours", "bare"):
                if side == "ours" and times["ours"]:  # every run copies every file again
                    _sql(dsn, "TRUNCATE pipeline_state.cdc_lake_copies")
                started = time.perf_counter()
                made = pool.map(_bare_copy if side == "bare" else _partition, sources, chunksize=10)
                times[side].append(time.perf_counter() - started)
                calls[side] = sum(made)
    bare_rate, our_rate = objects / min(times["bare"]), objects / min(times["ours"])
    result = {
        "objects": objects,
        "concurrency": concurrency,
        "bare_objects_per_s": round(bare_rate, 1),
        "partitioner_objects_per_s": round(our_rate, 1),
        "ratio": round(our_rate / bare_rate, 3),
        "s3_calls_per_object": calls["ours"] / objects,
        "bare_s3_calls_per_object": calls["bare"] / objects,
        "bare_seconds": [round(t, 3) for t in times["bare"]],
        "partitioner_seconds": [round(t, 3) for t in times["ours"]],
    }
    print(
        f"partitioner: bare copy_object loop {bare_rate:,.0f} objects/s, partitioner {our_rate:,.0f} objects/s in "
        f"{concurrency} processes: {our_rate / bare_rate:.3g}x (target >= 0.9x); "
        f"{calls['ours'] / objects:g} S3 call(s) per object (target 1)",
        flush=True,
    )
    return result


def _reset_table(dsn: str) -> None:
    _sql(
        dsn,
        "TRUNCATE replica.orders",
        "INSERT INTO replica.orders SELECT * FROM orders_base",
        f'DROP TABLE IF EXISTS pipeline_state."{tombstone_table_name(QualifiedName("replica", "orders"))}", '
        "pipeline_state.cdc_lake_applied",
        "VACUUM ANALYZE replica.orders",
    )


def manual_merge(dsn: str, path: Path) -> float:
    """What a careful engineer writes by hand: COPY into a temp table, the last change per key,
    upserts and deletes, one transaction."""
    conn = psycopg2.connect(dsn)
    start = time.perf_counter()
    with conn, conn.cursor() as cur, open(path, "rb") as data:
        cur.execute("SET LOCAL work_mem = '128MB'")
        cur.execute(
            'CREATE TEMP TABLE s ON COMMIT DROP AS SELECT *, NULL::text AS "Op" FROM replica.orders WITH NO DATA'
        )
        columns = ", ".join(f'"{c}"' for c in COLUMNS)
        cur.copy_expert(f"COPY s ({columns}) FROM STDIN WITH (FORMAT csv, HEADER true)", data, 256 * 1024)
        cur.execute(
            "CREATE TEMP TABLE last ON COMMIT DROP AS SELECT DISTINCT ON (order_id) * FROM s "
            "ORDER BY order_id, dms_commit_ts DESC, dms_change_seq DESC"
        )
        cur.execute("DELETE FROM replica.orders o USING last l WHERE l.\"Op\" = 'D' AND o.order_id = l.order_id")
        cur.execute(
            "INSERT INTO replica.orders SELECT order_id, customer_id, status, amount, dms_commit_ts, dms_change_seq "
            "FROM last WHERE \"Op\" <> 'D' ON CONFLICT (order_id) DO UPDATE SET customer_id = EXCLUDED.customer_id, "
            "status = EXCLUDED.status, amount = EXCLUDED.amount, dms_commit_ts = EXCLUDED.dms_commit_ts, "
            "dms_change_seq = EXCLUDED.dms_change_seq"
        )
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def bench_apply(endpoint: str, dsn: str, connect: Any, changes: int, repeats: int, workdir: Path) -> dict[str, Any]:
    s3 = _client("s3", endpoint)
    _sql(
        dsn,
        "INSERT INTO replica.orders SELECT g, g % 5000, 'new', (g % 9999) / 100.0, "
        f"'2026-03-01 09:00:00', NULL FROM generate_series(1, {changes}) g",
        "CREATE TABLE orders_base AS SELECT * FROM replica.orders",
    )
    path = workdir / "changes.csv"
    with open(path, "wb") as out:
        out.writelines(change_lines(changes, changes))
    key = "cdc/sales/orders/year=2026/month=03/day=01/hour=10/20260301-100000000.csv"
    s3.upload_file(str(path), LAKE, key)
    size = path.stat().st_size
    table = parse_apply_tables([{"source": "sales.orders", "target": "replica.orders"}])[0]
    manual_times, our_times, expected = [], [], None
    for run in range(repeats):
        _reset_table(dsn)
        manual_times.append(manual_merge(dsn, path))
        expected = _sql(dsn, "SELECT count(*), sum(amount), count(*) FILTER (WHERE status = 'new') FROM replica.orders")
        _reset_table(dsn)
        db = connect()
        started = time.perf_counter()
        result = apply_file(
            table=table,
            object_id=ObjectId(STAGING, f"dms/sales/orders/20260301-100000000-{run}.csv", "v"),
            source=ObjectVersion(LAKE, key),
            compressed=False,
            timestamp_column="dms_commit_ts",
            sequence_column="dms_change_seq",
            s3=s3,
            db=db,
            ledger=applied_ledger("pipeline_state"),
            tombstones=Tombstones("pipeline_state"),
            deadline=Deadline.in_seconds(900),
        )
        our_times.append(time.perf_counter() - started)
        db.close()
        got = _sql(dsn, "SELECT count(*), sum(amount), count(*) FILTER (WHERE status = 'new') FROM replica.orders")
        if result.status != "applied" or got != expected:
            raise RuntimeError(f"the apply and the hand-written merge disagree: {result} {got} != {expected}")
    manual_rate, our_rate = changes / min(manual_times), changes / min(our_times)
    print(
        f"apply: {changes:,} changes ({size / 1e6:.0f} MB): hand-written COPY + merge {manual_rate:,.0f} changes/s "
        f"({min(manual_times):.2f} s), apply_file from S3 {our_rate:,.0f} changes/s ({min(our_times):.2f} s): "
        f"{our_rate / manual_rate:.2f}x (target >= 0.8x)",
        flush=True,
    )
    path.unlink()
    return {
        "changes": changes,
        "file_mb": round(size / 1e6, 1),
        "manual_seconds": round(min(manual_times), 2),
        "apply_seconds": round(min(our_times), 2),
        "ratio": round(our_rate / manual_rate, 2),
    }


def bench_memory(
    endpoint: str, server: PostgresServer, settings: DatabaseSettings, sizes: list[int], workdir: Path
) -> dict[str, Any]:
    s3 = _client("s3", endpoint)
    results = {}
    for rows in sizes:
        key = f"dms/sales/orders/20260302-{rows:09d}.csv"
        # One PutObject, as DMS writes its files: moto gives the copy of a multipart upload its
        # composite checksum as a full-object one, which the GET of the lake copy then refuses.
        path = workdir / "memory.csv"
        with open(path, "wb") as out:
            out.writelines(change_lines(rows, 1_000, seed=rows))
        with open(path, "rb") as data:
            s3.put_object(Bucket=STAGING, Key=key, Body=data)
        path.unlink()
        head = s3.head_object(Bucket=STAGING, Key=key)
        body = {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "eventTime": datetime.now(UTC).isoformat(),
                    "s3": {
                        "bucket": {"name": STAGING},
                        "object": {"key": key, "size": head["ContentLength"], "eTag": head["ETag"].strip('"')},
                    },
                }
            ]
        }
        event = {"Records": [{"messageId": key, "eventSource": "aws:sqs", "body": json.dumps(body)}]}
        environment = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "DB_HOST": server.host,
            "DB_PORT": str(server.port),
            "DB_NAME": "bench",
            "DB_SECRET_ARN": settings.secret_arn,
            "STAGING_BUCKET": STAGING,
            "STAGING_FOLDER": "dms",
            "LAKE_BUCKET": LAKE,
            "LAKE_PREFIX": "cdc",
            "CHANGE_SEQUENCE_COLUMN": "dms_change_seq",
            "APPLY_TABLES": json.dumps([{"source": "sales.orders", "target": "replica.orders"}]),
            "LOG_LEVEL": "WARNING",
            "POWERTOOLS_SERVICE_NAME": "bench",
        }
        report = run_handler_process("cdc_lake", event, environment, memory_mb=1024)
        if report["result"]["copies"] != {"copied": 1} or report["result"]["applies"] != {"applied": 1}:
            raise RuntimeError(f"the handler did not copy and apply the file: {report['result']}")
        peak = report["peak_rss_mb"]
        results[rows] = {
            "mb": round(head["ContentLength"] / 1e6, 1),
            "seconds": round(report["seconds"], 1),
            "peak_rss_mb": round(peak, 1),
        }
        print(
            f"memory: {rows:,}-change file ({head['ContentLength'] / 1e6:,.0f} MB) copied, counted and applied in "
            f"{report['seconds']:.1f} s; handler peak RSS {peak:.0f} MB",
            flush=True,
        )
    peaks = [r["peak_rss_mb"] for r in results.values()]
    print(
        f"memory: peak RSS grows by {max(peaks) - min(peaks):.0f} MB over a {max(sizes) // min(sizes)}x larger file",
        flush=True,
    )
    return {str(k): v for k, v in results.items()}


def main() -> None:
    objects = int(os.environ.get("CDC_LAKE_BENCH_OBJECTS", "1000"))
    concurrency = int(os.environ.get("CDC_LAKE_BENCH_CONCURRENCY", "4"))
    changes = int(os.environ.get("CDC_LAKE_BENCH_CHANGES", "1000000"))
    memory_rows = [int(n) for n in os.environ.get("CDC_LAKE_BENCH_MEMORY_ROWS", "100000,1000000").split(",")]
    repeats = int(os.environ.get("CDC_LAKE_BENCH_REPEATS", "3"))
    results: dict[str, Any] = {}
    workdir = Path(tempfile.mkdtemp(prefix="bench-cdc-lake-"))
    try:
        with moto_server(workdir) as endpoint, postgres_server() as server:
            _sql(server.dsn(), "CREATE DATABASE bench")
            dsn = server.dsn("bench")
            _sql(dsn, TABLE_DDL)
            s3 = _client("s3", endpoint)
            for bucket in (STAGING, LAKE):
                s3.create_bucket(Bucket=bucket)
                s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            settings, connect = _database(server, endpoint)
            results["partitioner"] = bench_partitioner(endpoint, dsn, settings, objects, concurrency, repeats)
            results["apply"] = bench_apply(endpoint, dsn, connect, changes, repeats, workdir)
            _sql(dsn, "TRUNCATE replica.orders")
            results["memory"] = bench_memory(endpoint, server, settings, memory_rows, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("cdc_lake results: " + json.dumps(results), flush=True)
    partitioner, apply = results["partitioner"], results["apply"]
    record(
        "cdc_lake",
        "partitioner",
        unit="objects/s",
        ours=partitioner["partitioner_objects_per_s"],
        baseline=partitioner["bare_objects_per_s"],
        baseline_what=f"a bare copy_object loop over the same files in {concurrency} processes",
        target=0.9,
        details={"s3_calls_per_object": partitioner["s3_calls_per_object"]},
    )
    record(
        "cdc_lake",
        "apply",
        unit="s",
        ours=apply["apply_seconds"],
        baseline=apply["manual_seconds"],
        baseline_what="hand-written COPY into a temp table + last change per key, DELETE, INSERT ... ON CONFLICT",
        target=0.8,
        lower_is_better=True,
        details={"changes": apply["changes"], "file_mb": apply["file_mb"]},
    )
    memory = results["memory"]
    record(
        "cdc_lake",
        "memory",
        unit="MB peak RSS",
        ours=max(m["peak_rss_mb"] for m in memory.values()),
        baseline=None,
        baseline_what=None,
        target=None,
        peak_rss_mb=max(m["peak_rss_mb"] for m in memory.values()),
        rss_target_mb=256,
        details={"by_changes": memory},
    )
