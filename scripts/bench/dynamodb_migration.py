"""Benchmark: the DynamoDB migration's copy against a bare BatchWriteItem loop writing the same items
at the same concurrency, on the same moto server (its own process) in the same run.

    python -m scripts.bench dynamodb_migration
    DYNAMODB_BENCH_ITEMS=5000 python -m scripts.bench dynamodb_migration       # quick run, one size
    DYNAMODB_BENCH_ROUNDS=3 python -m scripts.bench dynamodb_migration         # best of three rounds

For each table size (default 10,000 and 40,000 items of ~200 bytes), every round measures:

- `write`: the baseline: the transformed items, already in memory, written with BatchWriteItem
  (25 per call) by `concurrency` threads into an empty table;
- `bare copy`: parallel Scan segments + BatchWriteItem, no guard, no checkpoints (the seed's
  migrate function, made parallel): what any copy costs on this server;
- `copy`: the copy function, through its Lambda handler in a child process (so its peak RSS is
  its own), guard and checkpoints on;
- `copy unguarded`: the same with the touched-key checks switched off: the guard's cost;
- `scan`: the parallel Scan alone: the part of a copy the baseline does not do.

A small sample of TransactWriteItems (Put + ConditionCheck per item, 100 actions per call) shows
the transactional guard the design did not take. Target: copy >= 0.8x `write`; memory constant
in table size.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from botocore.config import Config

from scripts.bench._child import own_peak_rss_mb, run_python

SIZES = [int(s) for s in os.environ.get("DYNAMODB_BENCH_ITEMS", "10000,40000").split(",")]
ROUNDS = int(os.environ.get("DYNAMODB_BENCH_ROUNDS", "1"))
CONCURRENCY = int(os.environ.get("DYNAMODB_BENCH_CONCURRENCY", "4"))
TOTAL_SEGMENTS = 8
PAGE_SIZE = 1000
TRANSACTION_SAMPLE = 300
TARGET_RATIO = 0.8
TRANSFORM = {"rename": {"pref": "preference"}, "add": {"channel": "email"}, "set": {"schema_version": 2}}
KEY = ("id",)


def item(i: int) -> dict[str, Any]:
    return {
        "id": {"S": f"user-{i:08d}"},
        "pref": {"S": ("email", "sms", "push")[i % 3]},
        "n": {"N": str(i)},
        "note": {"S": f"note {i:08d} " + "x" * 120},
    }


def client(endpoint: str) -> Any:
    import boto3

    config = Config(max_pool_connections=CONCURRENCY * 2, retries={"mode": "standard", "max_attempts": 3})
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )


def create_table(dynamodb: Any, name: str, key: str = "id", stream: bool = False) -> None:
    extra = {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}} if stream else {}
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )


def write_all(dynamodb: Any, table: str, items: list[dict[str, Any]]) -> None:
    """BatchWriteItem, 25 at a time, every unprocessed remainder resent."""
    for start in range(0, len(items), 25):
        pending = [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]
        while pending:
            response = dynamodb.batch_write_item(RequestItems={table: pending})
            pending = response.get("UnprocessedItems", {}).get(table, [])


def timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def in_threads(work: Callable[[int], None], count: int) -> None:
    with ThreadPoolExecutor(max_workers=count) as pool:
        list(pool.map(work, range(count)))


def baseline_write(dynamodb: Any, table: str, items: list[dict[str, Any]]) -> float:
    share = -(-len(items) // CONCURRENCY)
    return timed(
        lambda: in_threads(lambda t: write_all(dynamodb, table, items[t * share : (t + 1) * share]), CONCURRENCY)
    )


def parallel_scan(dynamodb: Any, table: str, each_page: Callable[[list[dict[str, Any]]], None]) -> None:
    segments = list(range(TOTAL_SEGMENTS))
    lock = threading.Lock()

    def worker(_: int) -> None:
        while True:
            with lock:
                if not segments:
                    return
                segment = segments.pop(0)
            start: dict[str, Any] = {}
            while True:
                page = dynamodb.scan(
                    TableName=table,
                    Segment=segment,
                    TotalSegments=TOTAL_SEGMENTS,
                    Limit=PAGE_SIZE,
                    ConsistentRead=True,
                    **start,
                )
                each_page(page["Items"])
                if "LastEvaluatedKey" not in page:
                    break
                start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}

    in_threads(worker, CONCURRENCY)


def bare_copy(dynamodb: Any, source: str, target: str, transform: Any) -> float:
    return timed(
        lambda: parallel_scan(
            dynamodb, source, lambda items: write_all(dynamodb, target, [transform.apply(i) for i in items])
        )
    )


def copy_in_child(endpoint: str, tables: dict[str, str], stream_arn: str, guarded: bool) -> dict[str, Any]:
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "LOG_LEVEL": "WARNING",
        "MIGRATION_FUNCTION": "copy",
        "SOURCE_TABLE": tables["source"],
        "TARGET_TABLE": tables["target"],
        "STATE_TABLE": tables["state"],
        "KEY_ATTRIBUTES": ",".join(KEY),
        "TRANSFORM": json.dumps(TRANSFORM),
        "SOURCE_STREAM_ARN": stream_arn,
        "TOTAL_SEGMENTS": str(TOTAL_SEGMENTS),
        "COPY_CONCURRENCY": str(CONCURRENCY),
        "PAGE_SIZE": str(PAGE_SIZE),
        "BENCH_GUARDED": "1" if guarded else "0",
    }
    return run_python(["-m", "scripts.bench.dynamodb_migration", "--child"], "copy process", env)


def child() -> None:
    """The copy function's handler, run once in this process; prints seconds, result and peak RSS."""
    from dynamodb_migration import handler
    from dynamodb_migration.state import StateTable
    from scripts.lambda_context import LocalLambdaContext

    if os.environ["BENCH_GUARDED"] != "1":
        StateTable.touched = lambda self, tokens, deadline, **options: {}  # type: ignore[method-assign]
    started = time.perf_counter()
    result = handler.handler({}, LocalLambdaContext(function_name="bench-copy", timeout_seconds=900))
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "result": result, "peak_rss_mb": own_peak_rss_mb()}))


def transactional_sample(dynamodb: Any, items: list[dict[str, Any]], transform: Any) -> float:
    create_table(dynamodb, "bench-tx-target")
    create_table(dynamodb, "bench-tx-state", key="pk")
    sample = [transform.apply(i) for i in items[:TRANSACTION_SAMPLE]]

    def write() -> None:
        for start in range(0, len(sample), 50):
            actions: list[dict[str, Any]] = []
            for image in sample[start : start + 50]:
                actions.append({"Put": {"TableName": "bench-tx-target", "Item": image}})
                actions.append(
                    {
                        "ConditionCheck": {
                            "TableName": "bench-tx-state",
                            "Key": {"pk": {"S": "touched#" + image["id"]["S"]}},
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    }
                )
            dynamodb.transact_write_items(TransactItems=actions)

    seconds = timed(write)
    for table in ("bench-tx-target", "bench-tx-state"):
        dynamodb.delete_table(TableName=table)
    return len(sample) / seconds


def measure(dynamodb: Any, endpoint: str, size: int) -> dict[str, Any]:
    from dynamodb_migration.transform import parse_transform

    transform = parse_transform(TRANSFORM, KEY)
    source = f"bench-source-{size}"
    create_table(dynamodb, source, stream=True)
    stream_arn = dynamodb.describe_table(TableName=source)["Table"]["LatestStreamArn"]
    fill = timed(lambda: write_all(dynamodb, source, [item(i) for i in range(size)]))
    print(f"{size:,} items: source filled in {fill:.1f} s ({size / fill:,.0f} items/s from one client)", flush=True)
    images = [transform.apply(item(i)) for i in range(size)]
    best: dict[str, float] = {}
    peak: list[float] = []
    for round_ in range(ROUNDS):
        runs: dict[str, float] = {}
        create_table(dynamodb, "bench-write")
        runs["write"] = baseline_write(dynamodb, "bench-write", images)
        dynamodb.delete_table(TableName="bench-write")
        create_table(dynamodb, "bench-bare")
        runs["bare copy"] = bare_copy(dynamodb, source, "bench-bare", transform)
        dynamodb.delete_table(TableName="bench-bare")
        runs["scan"] = timed(lambda: parallel_scan(dynamodb, source, lambda items: None))
        for name, guarded in (("copy", True), ("copy unguarded", False)):
            tables = {"source": source, "target": f"bench-target-{round_}", "state": f"bench-state-{round_}"}
            create_table(dynamodb, tables["target"])
            create_table(dynamodb, tables["state"], key="pk")
            report = copy_in_child(endpoint, tables, stream_arn, guarded)
            if report["result"]["status"] != "done" or report["result"]["totals"]["written"] != size:
                raise RuntimeError(f"{name} did not copy every item: {report['result']}")
            runs[name] = report["seconds"]
            if guarded:
                peak.append(report["peak_rss_mb"])
            for table in (tables["target"], tables["state"]):
                dynamodb.delete_table(TableName=table)
        for name, seconds in runs.items():
            best[name] = min(best.get(name, seconds), seconds)
        print(f"  round {round_ + 1}: " + ", ".join(f"{k} {size / v:,.0f}/s" for k, v in runs.items()), flush=True)
    dynamodb.delete_table(TableName=source)
    rates = {name: size / seconds for name, seconds in best.items()}
    return {"items": size, "items_per_second": rates, "peak_rss_mb": max(peak)}


def main() -> None:
    from scripts.bench._results import record
    from scripts.demo.processes import moto_server

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-dynamodb-") as run_dir, moto_server(Path(run_dir)) as endpoint:
        dynamodb = client(endpoint)
        for size in SIZES:
            results.append(measure(dynamodb, endpoint, size))
        from dynamodb_migration.transform import parse_transform

        tx_rate = transactional_sample(
            dynamodb, [item(i) for i in range(TRANSACTION_SAMPLE)], parse_transform(TRANSFORM, KEY)
        )
    print(f"\nconcurrency {CONCURRENCY}, {TOTAL_SEGMENTS} segments, pages of {PAGE_SIZE}, best of {ROUNDS} round(s)")
    for result in results:
        r = result["items_per_second"]
        guard_cost = 1 - r["copy"] / r["copy unguarded"]
        print(
            f"{result['items']:>7,} items: write {r['write']:,.0f}/s, bare copy {r['bare copy']:,.0f}/s, "
            f"scan {r['scan']:,.0f}/s, copy {r['copy']:,.0f}/s, copy unguarded {r['copy unguarded']:,.0f}/s"
        )
        print(
            f"         copy / write = {r['copy'] / r['write']:.2f}x (target >= {TARGET_RATIO}x), "
            f"copy / bare copy = {r['copy'] / r['bare copy']:.2f}x, guard cost {guard_cost:.0%}, "
            f"copy peak RSS {result['peak_rss_mb']:.0f} MB"
        )
        record(
            "dynamodb_migration",
            f"copy {result['items']} items",
            unit="items/s",
            ours=r["copy"],
            baseline=r["write"],
            baseline_what="a bare BatchWriteItem loop writing the same transformed items",
            target=TARGET_RATIO,
            peak_rss_mb=result["peak_rss_mb"],
            details={"bare_copy_items_per_s": round(r["bare copy"]), "guard_cost": round(guard_cost, 3)},
        )
    print(
        f"transactional guard sample ({TRANSACTION_SAMPLE} items, Put + ConditionCheck, 100 actions per call): "
        f"{tx_rate:,.0f} items/s = {tx_rate / results[0]['items_per_second']['write']:.3f}x write"
    )


if __name__ == "__main__" and sys.argv[1:] == ["--child"]:
    child()
