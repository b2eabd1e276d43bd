"""What a pipeline driver reports, and the helpers drivers share to find out what arrived."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from scripts.demo.environment import Demo

IDLE_TIMEOUT_SECONDS = 180


@dataclass
class PipelineReport:
    pipeline: str
    went_in: list[str]
    came_out: list[str]
    where: str
    seconds: float
    numbers: dict[str, Any] = field(default_factory=dict)
    ok: bool = True


def wait_idle(demo: Demo, what: str) -> None:
    if not demo.router.wait_idle(IDLE_TIMEOUT_SECONDS):
        raise RuntimeError(f"{what}: the pipelines did not go idle within {IDLE_TIMEOUT_SECONDS}s")


def count_query(demo: Demo, database: str, query: str) -> int:
    with contextlib.closing(demo.databases.connect(database)) as conn, conn.cursor() as cur:
        cur.execute(query)
        return int(cur.fetchone()[0])


def dead_letters(demo: Demo, package: str) -> int:
    """Messages in the dead-letter queues of the function's queue mappings."""
    spec = demo.function_spec(package)
    sqs = demo.client("sqs")
    total = 0
    for mapping in demo.wiring.queues:
        if mapping.function != spec.name:
            continue
        url = sqs.get_queue_url(QueueName=mapping.queue_name)["QueueUrl"]
        redrive = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]
        if "RedrivePolicy" in redrive:
            dlq_name = json.loads(redrive["RedrivePolicy"])["deadLetterTargetArn"].rsplit(":", 1)[-1]
            dlq_url = sqs.get_queue_url(QueueName=dlq_name)["QueueUrl"]
            attributes = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])
            total += int(attributes["Attributes"]["ApproximateNumberOfMessages"])
    return total


def format_report(reports: list[PipelineReport], demo: Demo, total_seconds: float) -> str:
    lines = ["", "=" * 78, "Local demo report", "=" * 78]
    for report in reports:
        status = "ok" if report.ok else "CHECK FAILED"
        lines.append(f"{report.pipeline}  [{status}, {report.seconds:.1f}s]  -> {report.where}")
        lines += [f"  in:  {item}" for item in report.went_in]
        lines += [f"  out: {item}" for item in report.came_out]
    lines.append("-" * 78)
    lines.append("invocations (local sandboxes from build/local/*.zip):")
    for name, stats in demo.router.stats.items():
        if stats.invocations:
            lines.append(
                f"  {name}: {stats.invocations} invocations, {stats.records} records, {stats.errors} errors, "
                f"max {stats.max_ms:.0f} ms, max memory {stats.max_memory_mb:.0f} MB"
            )
    timing = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in demo.timings.items())
    lines.append(f"total {total_seconds:.0f}s ({timing})")
    lines.append("=" * 78)
    return "\n".join(lines)
