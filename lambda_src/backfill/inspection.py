"""The two read-only actions: a dry run that explains a job's next chunk and estimates the work
left, and a verify step that compares, range by range, what the job should have written with what
the targets hold. Neither writes anything (a dry run before the first run does not even create the
checkpoint table).

Verify runs each check's `source` and `target` query for the key ranges the job has covered (from
its first key to its checkpoint, `range_rows` driving rows at a time), both in one REPEATABLE READ
transaction so they see the same moment, and reports the ranges whose rows differ. It stops before
the deadline and says where to continue (`next_after`). On a live database a row changed after its
range was copied shows up as a mismatch: that is what it is, and rerunning the job for that range
(its statements are idempotent) brings the target up to date.
"""

from __future__ import annotations

import math
from typing import Any

from backfill.catalog import check_job, table_shape
from backfill.jobs import Job
from backfill.keyset import Key, Keyset, params
from backfill.runner import prepare_session
from pipeline_common import values
from pipeline_common.checkpoint import Checkpoint, CheckpointTable
from pipeline_common.db import engine_of
from pipeline_common.deadline import Deadline, Pacer
from pipeline_common.errors import is_retryable

MAX_MISMATCHES = 20


def _checkpoint(cur: Any, state: CheckpointTable, job: Job) -> Checkpoint | None:
    if table_shape(cur, state.qualified) is None:
        return None
    return state.load(cur, job.name)


def _display(key: Key | None) -> Any:
    return None if key is None else [values.display(v) for v in key]


def _each_job(jobs: list[Job], conn: Any, action: str, work: Any) -> dict[str, Any]:
    prepare_session(conn)
    out = []
    for job in jobs:
        try:
            out.append({"name": job.name, "ok": True, **work(job)})
        except Exception as exc:  # noqa: BLE001 - reported per job
            out.append(
                {"name": job.name, "ok": False, "error": f"{type(exc).__name__}: {exc}", "retryable": is_retryable(exc)}
            )
        finally:
            conn.rollback()
    return {"action": action, "jobs": out}


def dry_run(jobs: list[Job], conn: Any, state: CheckpointTable) -> dict[str, Any]:
    """Per job: the checks against the database, the next chunk's bounds and plans, and how many
    rows and chunks are left (from the planner's estimate)."""

    def plan(job: Job) -> dict[str, Any]:
        keyset = Keyset.for_job(job, engine_of(conn))
        with conn.cursor() as cur:
            check_job(cur, job)
            checkpoint = _checkpoint(cur, state, job)
            if checkpoint is not None and checkpoint["finished_at"] is not None:
                return {"status": "finished", "rows_done": checkpoint["rows_done"]}
            first = keyset.edge(cur, last=False)
            if checkpoint is None and first is None:
                return {"status": "not_started", "estimated_rows": 0, "estimated_chunks": 0}
            if checkpoint is not None:
                lo, end = tuple(checkpoint["position"]), tuple(checkpoint["end_key"])
            else:
                lo = job.start_after if job.start_after is not None else keyset.below(cur, first)  # type: ignore[arg-type]
                end = keyset.edge(cur, last=True)  # type: ignore[assignment]
            size = (checkpoint["chunk_rows"] if checkpoint is not None else None) or job.chunk.initial_rows
            hi, rows = keyset.next_bound(cur, lo, end, size)
            explained = [
                _explain(cur, s.bound.text, s.bound.params({"lo": params(lo), "hi": params(hi)}))
                for s in job.statements
            ]
            remaining = keyset.estimate(cur, lo, end)
        return {
            "status": "in_progress" if checkpoint is not None else "not_started",
            "rows_done": checkpoint["rows_done"] if checkpoint is not None else 0,
            "next_chunk": {"lo": _display(lo), "hi": _display(hi), "rows": rows},
            "explain": explained,
            "estimated_rows": remaining,
            "estimated_chunks": math.ceil(remaining / size),
            "estimated_chunks_at_max_rows": math.ceil(remaining / job.chunk.max_rows),
            "chunk_rows": size,
            "end": _display(end),
        }

    return _each_job(jobs, conn, "plan", plan)


def _explain(cur: Any, text: str, parameters: dict[str, Any]) -> list[str]:
    """The server's plan of a statement, one line per row, without running it."""
    cur.execute("EXPLAIN " + text, parameters)
    if engine_of(cur) == "postgresql":
        return [row[0] for row in cur.fetchall()]
    names = [d[0] for d in cur.description]
    return [", ".join(f"{n}={v}" for n, v in zip(names, row, strict=True) if v is not None) for row in cur.fetchall()]


def verify(
    jobs: list[Job],
    conn: Any,
    state: CheckpointTable,
    deadline: Deadline,
    *,
    after: list[Any] | None = None,
    range_rows: int | None = None,
) -> dict[str, Any]:
    """Compare each job's verify checks over the ranges it covered (see the module docstring)."""

    def check(job: Job) -> dict[str, Any]:
        if not job.verify:
            return {"complete": True, "ranges": 0, "note": "the job declares no verify checks"}
        keyset = Keyset.for_job(job, engine_of(conn))
        with conn.cursor() as cur:
            checkpoint = _checkpoint(cur, state, job)
        conn.rollback()
        if checkpoint is None or checkpoint["position"] in (None, checkpoint["start_key"]):
            return {"complete": True, "ranges": 0, "note": "the job has covered no rows yet"}
        lo: Key = tuple(after) if after is not None else tuple(checkpoint["start_key"])
        upto: Key = tuple(checkpoint["position"])
        size = range_rows or job.chunk.max_rows
        pacer = Pacer(deadline)
        ranges = rows_checked = mismatched = 0
        mismatches: list[dict[str, Any]] = []
        while lo != upto and pacer.fits():
            with pacer.unit():
                hi, rows, differences = _verify_range(conn, job, keyset, lo, upto, size)
            ranges += 1
            rows_checked += rows
            mismatched += bool(differences)
            mismatches.extend(differences[: MAX_MISMATCHES - len(mismatches)])
            lo = hi
        return {
            "complete": lo == upto,
            "next_after": None if lo == upto else _display(lo),
            "verified_up_to": _display(lo),
            "covered_up_to": _display(upto),
            "finished": checkpoint["finished_at"] is not None,
            "ranges": ranges,
            "rows_checked": rows_checked,
            "ranges_mismatched": mismatched,
            "mismatches": mismatches,
        }

    return _each_job(jobs, conn, "verify", check)


def _verify_range(
    conn: Any, job: Job, keyset: Keyset, lo: Key, upto: Key, size: int
) -> tuple[Key, int, list[dict[str, Any]]]:
    conn.rollback()
    differences = []
    with conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        hi, rows = keyset.next_bound(cur, lo, upto, size)
        bounds = {"lo": params(lo), "hi": params(hi)}
        for index, pair in enumerate(job.verify):
            found = []
            for query in (pair.source, pair.target):
                cur.execute(query.text, query.params(bounds))
                found.append(tuple(cur.fetchone() or ()))
            if found[0] != found[1]:
                differences.append(
                    {
                        "check": index,
                        "lo": _display(lo),
                        "hi": _display(hi),
                        "source": [values.display(v) for v in found[0]],
                        "target": [values.display(v) for v in found[1]],
                    }
                )
    conn.rollback()
    return hi, rows, differences
