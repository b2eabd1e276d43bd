"""File loader benchmark, many small objects: where per-object overhead shows.

    python -m scripts.bench file_loader_small                               # 10,000 + 1,000 objects
    FILE_LOADER_SMALL_SCALE=0.1 python -m scripts.bench file_loader_small   # a tenth, for a quick look

Two shapes, each measured against its baseline in the same run on the same servers:

- 10,000 CSV objects of 100 rows (~8 KB each);
- 1,000 CSV objects of 10,000 rows (~0.8 MB each).

Both at full size take about 6 minutes here, most of it moto's: putting the objects and
serving their GETs.

The real event path: every object is put into a moto S3 bucket (a server in its own process)
whose ObjectCreated notifications go to an SQS queue; the notifications are received in batches of
10 and each batch is one handler invocation, in this process, in one warm sandbox (the first
invocation fetches the secret and connects), with the exactly-once ledger. The messages are taken
off the queue (and deleted, see `_loader_env.put_and_receive`) before the clock starts, as the
event source mapping does outside the function; "ours" is the time spent in the handler.

Baseline: one psycopg2 connection (TLS, as the handler's) that, for each key, GETs the object from
the same moto S3 and runs `COPY ... FROM STDIN (FORMAT csv, HEADER)` from the response body, then
commits: no lock, no ledger, no event. Target: objects/s >= 0.7x the baseline. The two sides take
turns batch by batch (the baseline loads a batch's 10 keys, then the handler gets the batch's
event), so on a shared machine both see the same load.

Both sides run with `_phases.PhaseTimer`, which files every round trip under a phase (S3 GET,
lock, ledger check, ledger write, COPY, commit, ...): the per-object overhead is the difference
of the two time-per-object figures, and the phases say where it goes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from typing import Any
from urllib.parse import unquote_plus

import psycopg2

from scripts.bench._child import own_peak_rss_mb
from scripts.bench._loader_env import LoaderEnvironment, csv_object, loader_environment
from scripts.bench._phases import PhaseTimer
from scripts.bench._results import record
from scripts.bench.file_loader import BUCKET, COLUMNS
from scripts.demo.processes import aws_client

SCALE = float(os.environ.get("FILE_LOADER_SMALL_SCALE", "1"))
SHAPES = (("objects_of_100_rows", 10_000, 100), ("objects_of_10000_rows", 1_000, 10_000))
TARGET = 0.7


class Baseline:
    """One psycopg2 connection: for each key, S3 GET (the body read whole), COPY, commit."""

    def __init__(self, env: LoaderEnvironment, timer: PhaseTimer, table: str) -> None:
        self.s3 = timer.timed_s3(aws_client("s3", env.endpoint))
        self.conn = psycopg2.connect(env.dsn)
        self.copy = f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT csv, HEADER true)"

    def load(self, keys: list[str]) -> None:
        for key in keys:
            with contextlib.closing(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"]) as body:
                data = body.read()
            with self.conn.cursor() as cur:
                cur.copy_expert(self.copy, io.BytesIO(data), 256 * 1024)
            self.conn.commit()


def _invoke(handler: Any, event: dict[str, Any]) -> None:
    from scripts.lambda_context import LocalLambdaContext

    result = handler.handler(event, LocalLambdaContext(timeout_seconds=900))
    if result["batchItemFailures"] or result["objects"].get("loaded") != len(event["Records"]):
        raise RuntimeError(f"handler did not load the batch: {result}")


def _keys(event: dict[str, Any]) -> list[str]:
    return [unquote_plus(json.loads(r["body"])["Records"][0]["s3"]["object"]["key"]) for r in event["Records"]]


def _shape(env: LoaderEnvironment, timer: PhaseTimer, name: str, objects: int, rows: int) -> None:
    table = name
    env.create_tables(table, f"{table}_baseline")
    keys = [f"{table}/part-{i:05d}.csv" for i in range(objects)]

    def put(i: int) -> int:
        body = csv_object(rows, i * rows)
        env.s3.put_object(Bucket=BUCKET, Key=keys[i], Body=body)
        return len(body)

    started = time.perf_counter()
    size, events = env.put_and_receive(objects, put)
    print(
        f"{name}: put {objects:,} objects ({size / 1e6:,.0f} MB) and received {len(events)} batches in "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )
    os.environ.update(env.handler_env([{"prefix": f"{table}/", "table": f"public.{table}"}]))
    from file_loader import handler

    handler.sandbox.reset()
    timer.timed_s3(handler.sandbox.client("s3"))
    baseline = Baseline(env, timer, f"{table}_baseline")
    timer.reset()
    seconds = {"ours": 0.0, "baseline": 0.0}
    # Batch by batch, the baseline's share and then the handler's: on a shared machine both
    # sides see the same load.
    for event in events:
        timer.side = "baseline"
        began = time.perf_counter()
        baseline.load(_keys(event))
        seconds["baseline"] += time.perf_counter() - began
        timer.side = "ours"
        began = time.perf_counter()
        _invoke(handler, event)
        seconds["ours"] += time.perf_counter() - began
    timer.side = "checks"
    baseline.conn.close()
    handler.sandbox.reset()
    for checked in (table, f"{table}_baseline"):
        loaded = env.sql(f"SELECT count(*), count(DISTINCT id) FROM {checked}")[0]
        if loaded != (objects * rows, objects * rows):
            raise RuntimeError(f"{checked} holds {loaded} rows (all, distinct), expected {objects * rows}")
    ledger = env.sql(f"SELECT count(*) FROM pipeline_state.file_loads WHERE key LIKE '{table}/%' AND status = 'loaded'")
    if ledger[0][0] != objects:
        raise RuntimeError(f"the ledger holds {ledger[0][0]} loaded objects, expected {objects}")
    _report(name, objects, rows, size, seconds, timer)


def _report(name: str, objects: int, rows: int, size: int, seconds: dict[str, float], timer: PhaseTimer) -> None:
    ours_ms, baseline_ms = (seconds[side] * 1000 / objects for side in ("ours", "baseline"))
    phases, baseline_phases = (timer.per_object_ms(side, objects) for side in ("ours", "baseline"))
    ratio = seconds["baseline"] / seconds["ours"]
    print(
        f"{name}: baseline {objects / seconds['baseline']:,.1f} objects/s ({baseline_ms:.2f} ms each), handler "
        f"{objects / seconds['ours']:,.1f} objects/s ({ours_ms:.2f} ms each): {ratio:.3g}x (target >= {TARGET}x); "
        f"overhead {ours_ms - baseline_ms:.2f} ms per object",
        flush=True,
    )
    for phase in sorted(set(phases) | set(baseline_phases), key=lambda p: -phases.get(p, 0)):
        ours_phase, baseline_phase = phases.get(phase, 0), baseline_phases.get(phase, 0)
        print(f"    {phase[:40]:<40} handler {ours_phase:7.3f} ms  baseline {baseline_phase:7.3f} ms")
    phases["Python (event, routing, logging)"] = round(ours_ms - sum(phases.values()), 3)
    baseline_phases["Python"] = round(baseline_ms - sum(baseline_phases.values()), 3)
    print(
        f"    {'Python (event, routing, logging)':<40} handler {phases['Python (event, routing, logging)']:7.3f} ms  "
        f"baseline {baseline_phases['Python']:7.3f} ms",
        flush=True,
    )
    record(
        "file_loader",
        name,
        unit="objects/s",
        ours=objects / seconds["ours"],
        baseline=objects / seconds["baseline"],
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
