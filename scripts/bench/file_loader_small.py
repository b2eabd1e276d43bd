"""File loader benchmark, many small objects: where per-object overhead shows.

    python -m scripts.bench file_loader_small
    FILE_LOADER_SMALL_SCALE=0.1 python -m scripts.bench file_loader_small    # a tenth of the objects

Two shapes, each measured against its baseline in the same run on the same servers:

- 10,000 CSV objects of 100 rows (~10 KB each);
- 1,000 CSV objects of 10,000 rows (~1 MB each).

The real event path: every object is put into a moto S3 bucket (a server in its own process)
whose ObjectCreated notifications go to an SQS queue; the notifications are received in batches of
10 and each batch is one handler invocation, in this process, in one warm sandbox (the first
invocation fetches the secret and connects), with the exactly-once ledger. The messages are taken
off the queue before the clock starts and deleted after each batch, as the event source mapping
does outside the function; "ours" is the time spent in the handler.

Baseline: one psycopg2 connection (TLS, as the handler's) that, for each key, GETs the object from
the same moto S3 and runs `COPY ... FROM STDIN (FORMAT csv, HEADER)` from the response body, then
commits: no lock, no ledger, no event. Target: objects/s >= 0.7x the baseline.

Both sides run with `_phases.PhaseTimer`, which files every round trip under a phase (S3 GET,
lock, ledger check, ledger write, COPY, commit, ...): the per-object overhead is the difference
of the two time-per-object figures, and the phases say where it goes.
"""

from __future__ import annotations

import os
import time
from typing import Any

import psycopg2

from scripts.bench._loader_env import LoaderEnvironment, csv_object, loader_environment
from scripts.bench._phases import PhaseTimer
from scripts.bench._results import own_peak_rss_mb, record
from scripts.bench.file_loader import BUCKET, COLUMNS
from scripts.demo.processes import aws_client

SCALE = float(os.environ.get("FILE_LOADER_SMALL_SCALE", "1"))
SHAPES = (("objects_of_100_rows", 10_000, 100), ("objects_of_10000_rows", 1_000, 10_000))
TARGET = 0.7


def _baseline(env: LoaderEnvironment, timer: PhaseTimer, keys: list[str], table: str) -> float:
    s3 = timer.timed_s3(aws_client("s3", env.endpoint))
    conn = psycopg2.connect(env.dsn)
    copy = f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT csv, HEADER true)"
    try:
        started = time.perf_counter()
        for key in keys:
            body = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
            with conn.cursor() as cur:
                cur.copy_expert(copy, body, 256 * 1024)
            conn.commit()
        return time.perf_counter() - started
    finally:
        conn.close()


def _handler(env: LoaderEnvironment, timer: PhaseTimer, events: list[dict[str, Any]], table: str) -> dict[str, float]:
    os.environ.update(env.handler_env([{"prefix": f"{table}/", "table": f"public.{table}"}]))
    from file_loader import handler
    from scripts.lambda_context import LocalLambdaContext

    handler.sandbox.reset()
    timer.timed_s3(handler.sandbox.client("s3"))
    in_handler = 0.0
    started = time.perf_counter()
    for event in events:
        invoked = time.perf_counter()
        result = handler.handler(event, LocalLambdaContext(timeout_seconds=900))
        in_handler += time.perf_counter() - invoked
        if result["batchItemFailures"] or result["objects"].get("loaded") != len(event["Records"]):
            raise RuntimeError(f"handler did not load the batch: {result}")
        env.delete(event["Records"])
    wall = time.perf_counter() - started
    handler.sandbox.reset()
    return {"handler_seconds": in_handler, "wall_seconds_with_sqs_deletes": wall}


def _shape(env: LoaderEnvironment, timer: PhaseTimer, name: str, objects: int, rows: int) -> None:
    table = name
    env.create_tables(table, f"{table}_baseline")
    keys = [f"{table}/part-{i:05d}.csv" for i in range(objects)]
    started = time.perf_counter()

    def put(i: int) -> int:
        body = csv_object(rows, i * rows)
        env.s3.put_object(Bucket=BUCKET, Key=keys[i], Body=body)
        return len(body)

    size, events = env.put_and_receive(objects, put)
    print(
        f"{name}: put {objects:,} objects ({size / 1e6:,.0f} MB) and received {len(events)} batches in "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )
    timer.reset()
    baseline_seconds = _baseline(env, timer, keys, f"{table}_baseline")
    baseline_phases = timer.per_object_ms(objects)
    timer.reset()
    ours = _handler(env, timer, events, table)
    phases = timer.per_object_ms(objects)
    for checked in (table, f"{table}_baseline"):
        loaded = env.sql(f"SELECT count(*), count(DISTINCT id) FROM {checked}")[0]
        if loaded != (objects * rows, objects * rows):
            raise RuntimeError(f"{checked} holds {loaded} rows (all, distinct), expected {objects * rows}")
    (ledger,) = env.sql(
        f"SELECT count(*) FROM pipeline_state.file_loads WHERE key LIKE '{table}/%' AND status = 'loaded'"
    )[0]
    if ledger != objects:
        raise RuntimeError(f"the ledger holds {ledger} loaded objects, expected {objects}")

    seconds = ours["handler_seconds"]
    ours_ms, baseline_ms = seconds * 1000 / objects, baseline_seconds * 1000 / objects
    print(
        f"{name}: baseline {objects / baseline_seconds:,.1f} objects/s ({baseline_ms:.2f} ms each), handler "
        f"{objects / seconds:,.1f} objects/s ({ours_ms:.2f} ms each; {ours['wall_seconds_with_sqs_deletes']:.1f} s "
        f"with the SQS deletes): {baseline_seconds / seconds:.2f}x (target >= {TARGET}x); overhead "
        f"{ours_ms - baseline_ms:.2f} ms per object",
        flush=True,
    )
    for phase in sorted(set(phases) | set(baseline_phases), key=lambda p: -phases.get(p, 0)):
        print(
            f"    {phase:<28} handler {phases.get(phase, 0):7.3f} ms  baseline {baseline_phases.get(phase, 0):7.3f} ms"
        )
    untimed = ours_ms - sum(phases.values())
    print(
        f"    {'(Python: event, routing, ...)':<28} handler {untimed:7.3f} ms  baseline "
        f"{baseline_ms - sum(baseline_phases.values()):7.3f} ms",
        flush=True,
    )
    record(
        "file_loader",
        name,
        unit="objects/s",
        ours=objects / seconds,
        baseline=objects / baseline_seconds,
        baseline_what="one psycopg2 connection: S3 GET + COPY + commit per object, no ledger",
        target=TARGET,
        peak_rss_mb=own_peak_rss_mb(),
        details={
            "objects": objects,
            "rows_per_object": rows,
            "mb": round(size / 1e6, 1),
            "ms_per_object": round(ours_ms, 3),
            "baseline_ms_per_object": round(baseline_ms, 3),
            "overhead_ms_per_object": round(ours_ms - baseline_ms, 3),
            "phases_ms_per_object": phases,
            "baseline_phases_ms_per_object": baseline_phases,
            "wall_seconds_with_sqs_deletes": round(ours["wall_seconds_with_sqs_deletes"], 1),
        },
    )


def main() -> None:
    timer = PhaseTimer()
    timer.install()
    try:
        with loader_environment() as env:
            for name, objects, rows in SHAPES:
                _shape(env, timer, name, max(10, int(objects * SCALE)), rows)
    finally:
        timer.uninstall()
