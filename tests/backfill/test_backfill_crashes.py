"""Crashes: a connection killed in the middle of a chunk, and the runner's process killed at random
moments. Each time the archive holds exactly the chunks committed before the crash (the checkpoint
and the data commit together); resuming then ends with exactly the result of one uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pipeline_common.deadline import Deadline
from scripts import backfill_example as example
from tests.backfill.conftest import ORDERS, Db, slow_job

REPO = Path(__file__).resolve().parents[2]
FIXED = {"initial_rows": 100, "min_rows": 100, "max_rows": 100, "target_seconds": 1}


def _committed_exactly(db: Db) -> int:
    """The archive holds the expected rows of the ranges up to the checkpoint, and nothing else."""
    checkpoint = db.checkpoint()
    done = checkpoint["position"][0] if checkpoint is not None else 0
    expected, archive = db.expected(), db.archive()
    for table, rows in archive.items():
        order_of = 0 if table == "order_archive" else 1
        assert rows == [row for row in expected[table] if row[order_of] <= done], (table, done)
    if checkpoint is not None:
        assert checkpoint["rows_written"] == sum(len(rows) for rows in archive.values())
        assert checkpoint["rows_done"] == done
    return done


def test_a_connection_killed_in_the_middle_of_a_chunk_leaves_no_trace(orders: Db) -> None:
    """The last statement of a chunk sleeps; once two chunks have committed, its session is killed
    (KILL / pg_terminate_backend) after the chunk's first two statements wrote their rows."""
    jobs = orders.jobs(slow_job(orders.engine, 0.4, statement=2, chunk=FIXED))
    provider = orders.provider()
    outcome: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: outcome.update(report=orders.run(jobs, provider, Deadline.in_seconds(60))))
    runner.start()
    deadline = time.monotonic() + 30
    while (orders.checkpoint() or {"chunks": 0})["chunks"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    session = orders.wait_for("backfill-slow")
    orders.kill(session)
    runner.join(30)
    (result,) = outcome["report"].jobs
    assert result.status == "failed" and result.retryable is True, result
    assert result.chunks >= 2
    done = _committed_exactly(orders)
    assert done == result.chunks * 100
    # The next run reconnects (the provider's connection died) and finishes the job (without the nap).
    while orders.run(orders.jobs(example.job(orders.engine, chunk=FIXED)), provider).jobs[0].status != "finished":
        pass
    assert provider.opened == 2
    assert orders.archive() == orders.expected()
    assert orders.checkpoint()["rows_done"] == ORDERS


def _connection_spec(db: Db, request: Any) -> Any:
    if db.engine == "postgresql":
        return request.getfixturevalue("pg_server").dsn(request.getfixturevalue("pg_database"))
    server = request.getfixturevalue("mariadb")
    return {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "password": server.password,
        "database": request.getfixturevalue("mariadb_database"),
    }


def _session_gone(db: Db, session: int, timeout: float = 20) -> None:
    """The server ends a killed client's session (and releases its lock) a moment after it left."""
    query = (
        "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = %s"
        if db.engine == "postgresql"
        else "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s"
    )
    end = time.monotonic() + timeout
    while db.scalar(query, (session,)) and time.monotonic() < end:
        time.sleep(0.02)


def test_the_runner_killed_at_random_moments_resumes_exactly(orders: Db, request: Any) -> None:
    rng = random.Random(int(os.environ.get("BACKFILL_CRASH_SEED", "16")))
    spec = {
        "engine": orders.engine,
        "connect": _connection_spec(orders, request),
        "schema": orders.state_schema,
        "job": slow_job(orders.engine, 0.03, statement=rng.randrange(3), chunk=FIXED),
    }
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "lambda_src"), str(REPO)])}
    positions = []
    for _ in range(5):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.backfill.crash_runner"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO,
            env=env,
            text=True,
        )
        child.stdin.write(json.dumps(spec))
        child.stdin.close()
        session = int(child.stdout.readline())
        time.sleep(rng.uniform(0.05, 0.6))
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        _session_gone(orders, session)
        positions.append(_committed_exactly(orders))
    assert positions == sorted(positions) and positions[-1] > 0, positions
    # One connection for the runs that finish the job; a run that does not advance it fails the test.
    provider = orders.provider()
    for _ in range(ORDERS):
        report = orders.run(orders.jobs(spec["job"]), provider)
        if report.jobs[0].status in ("finished", "done_before"):  # done_before: a killed run finished it
            break
        assert report.jobs[0].status in ("running", "paused"), report
    else:
        raise AssertionError(f"the job did not finish: {report}")
    assert orders.archive() == orders.expected()
    assert orders.checkpoint()["rows_done"] == ORDERS
