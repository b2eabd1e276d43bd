"""The function's actions, chosen by the event (plain functions over explicit arguments):

- `{"action": "run"}`, or any scheduled event: advance every job (`backfill.runner`), report
  progress as the result and as metrics, and disable the schedule once every job is finished;
- `{"action": "plan"}`: the dry run (`backfill.inspection.dry_run`);
- `{"action": "verify", "after": [...], "range_rows": N}`: compare what the jobs wrote
  (`backfill.inspection.verify`; `after` continues where a stopped verify said).

`"jobs": ["name", ...]` limits any action to those jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from backfill.config import Settings
from backfill.inspection import dry_run, verify
from backfill.jobs import Job
from backfill.results import emit_metrics
from backfill.runner import ConnectionProvider, Runtime, current_schema, run_jobs, state_table
from backfill.schedule import disable_schedule
from pipeline_common.deadline import Deadline
from pipeline_common.errors import PermanentError, is_retryable

logger = logging.getLogger(__name__)

ACTIONS = ("run", "plan", "verify")


class BadRequest(PermanentError, ValueError):
    """The invocation's event asks for something the function does not do."""


def select_jobs(jobs: list[Job], event: Mapping[str, Any]) -> list[Job]:
    wanted = event.get("jobs")
    if wanted is None:
        return jobs
    names = {job.name for job in jobs}
    if not isinstance(wanted, list) or not all(isinstance(n, str) for n in wanted):
        raise BadRequest("'jobs' must be a list of job names")
    unknown = sorted(set(wanted) - names)
    if unknown:
        raise BadRequest(f"unknown job(s) {', '.join(unknown)}; configured: {', '.join(sorted(names))}")
    return [job for job in jobs if job.name in wanted]


def handle(
    event: Mapping[str, Any],
    settings: Settings,
    connection: ConnectionProvider,
    deadline: Deadline,
    *,
    replicas: tuple[Callable[[], Any], ...] = (),
    scheduler: Callable[[], Any] | None = None,
    metrics: Any = None,
) -> dict[str, Any]:
    action = event.get("action", "run") if isinstance(event, Mapping) else "run"
    if action not in ACTIONS:
        raise BadRequest(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
    jobs = select_jobs(settings.jobs, event)
    conn = connection.get()
    state = state_table(settings.state_schema or current_schema(conn))
    if action == "plan":
        return dry_run(jobs, conn, state)
    if action == "verify":
        range_rows = event.get("range_rows")
        if range_rows is not None and (
            isinstance(range_rows, bool) or not isinstance(range_rows, int) or range_rows < 1
        ):
            raise BadRequest("'range_rows' must be a whole number above 0")
        after = event.get("after")
        if after is not None and (len(jobs) != 1 or not isinstance(after, list)):
            raise BadRequest("'after' (a key as a list) continues the verify of one job: name it in 'jobs'")
        return verify(jobs, conn, state, deadline, after=after, range_rows=range_rows)
    report = run_jobs(jobs, connection, Runtime(state, deadline, replicas))
    if metrics is not None:
        emit_metrics(report, metrics)
    if report.all_finished and len(jobs) == len(settings.jobs):
        report.schedule_disabled = _disable(settings, scheduler)
    return report.to_json()


def _disable(settings: Settings, scheduler: Callable[[], Any] | None) -> bool:
    if not (settings.disable_schedule_when_done and settings.schedule_name and scheduler):
        return False
    try:
        return disable_schedule(scheduler(), settings.schedule_name, settings.schedule_group)
    except Exception as exc:  # noqa: BLE001 - every job is done either way: later runs are no-ops
        logger.warning(
            "could not disable the schedule",
            extra={"schedule": settings.schedule_name, "error": str(exc), "retryable": is_retryable(exc)},
        )
        return False
