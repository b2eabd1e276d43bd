"""A backfill runner in its own process, for the crash tests to SIGKILL at a random moment.

`python -m tests.backfill.crash_runner` reads {"engine", "connect", "schema", "job"} as JSON on
stdin, prints its database session id once connected, then runs the job until it is finished.
"""

from __future__ import annotations

import json
import sys

import psycopg2
import pymysql

from backfill.jobs import parse_jobs
from backfill.runner import Runtime, run_jobs, state_table
from pipeline_common.deadline import Deadline
from tests.backfill.conftest import Provider


def main() -> None:
    spec = json.loads(sys.stdin.read())
    engine = spec["engine"]

    def connect() -> object:
        if engine == "postgresql":
            return psycopg2.connect(spec["connect"])
        return pymysql.connect(**spec["connect"], charset="utf8mb4", autocommit=False)

    provider = Provider(connect)
    conn = provider.get()
    print(conn.get_backend_pid() if engine == "postgresql" else conn.thread_id(), flush=True)
    jobs = parse_jobs([spec["job"]], engine)
    while (
        run_jobs(jobs, provider, Runtime(state_table(spec["schema"]), Deadline.in_seconds(600))).jobs[0].status
        != "finished"
    ):
        pass


if __name__ == "__main__":
    main()
