"""DynamoDB migration: a source table reshaped into a new one while it changes, then proven equal.

Before the apply, `prepare` creates the source table environments/local.tfvars names, with its
stream, and passes the stream's ARN to Terraform; the sync's stream mapping (TRIM_HORIZON) is
therefore attached before any item exists. The driver fills the table, invokes the copy and, while
the copy runs, inserts, updates and deletes source items; the router delivers the stream's batches
to the sync meanwhile. Once the stream is drained, verify compares both tables key by key.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from scripts.demo.environment import Demo
from scripts.demo.processes import aws_client
from scripts.demo.report import PipelineReport, wait_idle
from scripts.localenv.dynamodb_source import create_source_table, local_settings, terraform_value
from scripts.localenv.wiring import FunctionSpec

ORDER = 40
PACKAGE = "dynamodb_migration"


def prepare(endpoint: str) -> dict[str, str]:
    settings = local_settings()
    stream_arn = create_source_table(aws_client("dynamodb", endpoint), settings)
    return {"dynamodb_migration": terraform_value(settings, stream_arn)}


def function(demo: Demo, role: str) -> FunctionSpec:
    """The deployed function of one role (copy, sync, verify): one package, three functions."""
    for spec in demo.wiring.functions.values():
        if spec.handler.split(".")[0] == PACKAGE and spec.environment.get("MIGRATION_FUNCTION") == role:
            return spec
    raise KeyError(f"no {PACKAGE} function with MIGRATION_FUNCTION={role}")


def _item(index: int, pref: str) -> dict[str, Any]:
    return {
        "id": {"S": f"user-{index:05d}"},
        "preferenceType": {"S": ("email", "sms", "push")[index % 3]},
        "pref": {"S": pref},
        "updatedAt": {"N": str(index)},
    }


def _write(client: Any, table: str, requests: list[dict[str, Any]]) -> None:
    for start in range(0, len(requests), 25):
        pending = requests[start : start + 25]
        while pending:  # moto never holds items back, DynamoDB may
            response = client.batch_write_item(RequestItems={table: pending})
            pending = response.get("UnprocessedItems", {}).get(table, [])


def _change_while_copying(client: Any, table: str, items: int, copying: threading.Event) -> dict[str, int]:
    """Insert, update and delete source items in rounds while the copy runs (at least one round)."""
    changes = {"inserted": 0, "updated": 0, "deleted": 0}
    per_round = max(5, items // 40)
    round_ = 0
    while round_ == 0 or (copying.is_set() and round_ < 20):
        base = items + round_ * per_round
        _write(client, table, [{"PutRequest": {"Item": _item(base + i, "new")}} for i in range(per_round)])
        updated = range(round_ * per_round, (round_ + 1) * per_round)
        _write(client, table, [{"PutRequest": {"Item": _item(i, "changed")}} for i in updated])
        deleted = range(items - (round_ + 1) * per_round, items - round_ * per_round)
        keys = [{k: v for k, v in _item(i, "").items() if k in ("id", "preferenceType")} for i in deleted]
        _write(client, table, [{"DeleteRequest": {"Key": key}} for key in keys])
        changes["inserted"] += per_round
        changes["updated"] += per_round
        changes["deleted"] += per_round
        round_ += 1
        time.sleep(0.2)
    return changes


def drive(demo: Demo) -> PipelineReport:
    started = time.monotonic()
    copy, sync, verify = function(demo, "copy"), function(demo, "sync"), function(demo, "verify")
    source, target = copy.environment["SOURCE_TABLE"], copy.environment["TARGET_TABLE"]
    client = demo.client("dynamodb")
    # Every item also passes the stream (the sync is attached first): enough to watch the copy and the
    # sync race, few enough to keep the demo short.
    items = 400 if demo.small else 1500
    _write(client, source, [{"PutRequest": {"Item": _item(i, f"p{i % 7}")}} for i in range(items)])

    copying = threading.Event()
    copying.set()
    copies: list[dict[str, Any]] = []

    def run_copy() -> None:
        try:
            for _ in range(10):  # a copy that stops before its timeout is invoked again, as its schedule would
                invocation = demo.router.invoke(copy.name, {})
                copies.append(invocation.result if invocation.ok else {"status": "failed", "error": invocation.error})
                if copies[-1].get("status") != "continues":
                    break
        finally:
            copying.clear()

    copier = threading.Thread(target=run_copy, name="copy")
    copier.start()
    changes = _change_while_copying(client, source, items, copying)
    copier.join()
    wait_idle(demo, "dynamodb migration")
    checked = demo.router.invoke(verify.name, {"mode": "compare"})
    result: dict[str, Any] = checked.result if checked.ok else {"match": False, "error": checked.error}

    last = copies[-1] if copies else {}
    totals = last.get("totals", {})
    expected_count = items + changes["inserted"] - changes["deleted"]
    sample = client.get_item(TableName=target, Key={"id": {"S": "user-00000"}, "preferenceType": {"S": "email"}})
    sync_stats = demo.router.stats[sync.name]
    return PipelineReport(
        pipeline="dynamodb migration",
        went_in=[
            f"{items} items in source table {source} (stream NEW_AND_OLD_IMAGES, sync attached at TRIM_HORIZON)",
            f"copy invoked ({len(copies)}x) while {changes['inserted']} items were inserted, "
            f"{changes['updated']} updated and {changes['deleted']} deleted",
        ],
        came_out=[
            f"copy: {last.get('status')}, scanned {totals.get('scanned')}, written {totals.get('written')}, "
            f"skipped {totals.get('skipped')} (touched by the stream), repaired {totals.get('repaired')}",
            f"sync: {sync_stats.records} stream records in {sync_stats.invocations} batches",
            f"verify: {'match' if result.get('match') else 'MISMATCH'}, {result.get('source_count')} source items, "
            f"{result.get('target_count')} target items, missing {result.get('missing')}, extra {result.get('extra')}, "
            f"different {result.get('different')}",
            f"user-00000 in the target: {_plain(sample.get('Item', {}))}",
        ],
        where=f"DynamoDB table {target}",
        seconds=time.monotonic() - started,
        numbers={
            "items": items,
            **changes,
            "expected_count": expected_count,
            "copy_status": last.get("status"),
            "copy_invocations": len(copies),
            "verify": result,
        },
        ok=(
            last.get("status") == "done"
            and result.get("match") is True
            and result.get("source_count") == result.get("target_count") == expected_count
        ),
    )


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {name: next(iter(value.values())) for name, value in sorted(item.items())}
