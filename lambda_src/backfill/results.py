"""What a backfill run reports: per job, progress and what held it back; as JSON and as metrics.

Metrics are CloudWatch embedded metric format (EMF) lines written by Powertools Metrics to stdout,
which Lambda sends to the function's log group and CloudWatch turns into metrics: no API call and
no permission beyond writing logs. Namespace from `POWERTOOLS_METRICS_NAMESPACE`; dimensions
`service` (the function) and `job`. Per job and run:

- `RowsAdvanced` (Count): driving rows this run covered; emitted only while the job is unfinished,
  so a stalled job shows zeros (the Terraform module alarms when their sum stays at zero) and a
  finished one stops reporting;
- `RowsDone`, `RowsWritten`, `RowsRemaining`, `ChunksCommitted`, `ProgressPercent`,
  `EtaSeconds`, `PausedSeconds`, `ChunkRows`, `Failed` (1 when the job failed this run).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline_common import values
from pipeline_common.errors import is_retryable

# finished: done in this run; done_before: finished in an earlier run (nothing to do);
# continues: the deadline stopped it; paused: database pressure stopped it; busy: another run
# holds the job's lock; failed: an error (see `error`, `retryable`).
STATUSES = ("finished", "done_before", "continues", "paused", "busy", "failed")


@dataclass
class JobResult:
    name: str
    status: str = "continues"
    chunks: int = 0  # committed this run
    rows: int = 0  # driving rows covered this run
    rows_written: int = 0  # rows the statements reported changed this run
    rows_done: int = 0  # driving rows covered since the job started
    rows_written_total: int = 0
    estimated_total_rows: int | None = None
    remaining_rows: int | None = None  # estimate
    percent: float | None = None
    eta_seconds: float | None = None  # at the pace since the job started (schedule gaps included)
    chunk_rows: int | None = None  # size of the next chunk
    rows_per_second: float | None = None  # this run, pauses included
    paused_seconds: float = 0.0
    pressure: list[str] = field(default_factory=list)  # reasons this run paused
    position: Any = None  # last key committed
    end: Any = None  # last key the job covers
    duration_seconds: float = 0.0
    error: str | None = None
    retryable: bool | None = None

    def fail(self, exc: BaseException) -> None:
        self.status = "failed"
        self.error = f"{type(exc).__name__}: {exc}"
        self.retryable = is_retryable(exc)

    def note_pressure(self, reasons: list[str]) -> None:
        for reason in reasons:
            if reason not in self.pressure and len(self.pressure) < 10:
                self.pressure.append(reason)

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["position"] = _display(self.position)
        document["end"] = _display(self.end)
        for key in ("percent", "eta_seconds", "rows_per_second", "paused_seconds", "duration_seconds"):
            if document[key] is not None:
                document[key] = round(document[key], 3)
        return document


@dataclass
class RunReport:
    jobs: list[JobResult] = field(default_factory=list)
    schedule_disabled: bool = False

    @property
    def failed(self) -> list[JobResult]:
        return [job for job in self.jobs if job.status == "failed"]

    @property
    def all_finished(self) -> bool:
        return bool(self.jobs) and all(job.status in ("finished", "done_before") for job in self.jobs)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": "run",
            "all_finished": self.all_finished,
            "schedule_disabled": self.schedule_disabled,
            "jobs": [job.to_json() for job in self.jobs],
        }


def _display(key: Any) -> Any:
    if key is None:
        return None
    return [values.display(value) for value in key]


def emit_metrics(report: RunReport, metrics: Any) -> None:
    """One EMF document per job through a Powertools `Metrics` instance (flushed per job)."""
    from aws_lambda_powertools.metrics import MetricUnit

    for job in report.jobs:
        if job.status == "done_before":
            continue
        metrics.add_dimension(name="job", value=job.name)
        counts = {"RowsDone": job.rows_done, "RowsWritten": job.rows_written_total, "ChunksCommitted": job.chunks}
        if job.status != "finished":
            counts["RowsAdvanced"] = job.rows
        if job.remaining_rows is not None:
            counts["RowsRemaining"] = job.remaining_rows
        if job.chunk_rows is not None:
            counts["ChunkRows"] = job.chunk_rows
        counts["Failed"] = int(job.status == "failed")
        for name, value in counts.items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        if job.percent is not None:
            metrics.add_metric(name="ProgressPercent", unit=MetricUnit.Percent, value=job.percent)
        if job.eta_seconds is not None and math.isfinite(job.eta_seconds):
            metrics.add_metric(name="EtaSeconds", unit=MetricUnit.Seconds, value=job.eta_seconds)
        metrics.add_metric(name="PausedSeconds", unit=MetricUnit.Seconds, value=job.paused_seconds)
        metrics.flush_metrics()
