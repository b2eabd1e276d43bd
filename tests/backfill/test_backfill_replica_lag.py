"""Replica lag on MariaDB, read on a real replica: a primary (binary log on) and a replica of it,
started for this module. With the replica's SQL thread stopped, `SHOW REPLICA STATUS` reports no
lag figure (NULL): the job pauses as for infinite lag, and continues once replication runs again."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from backfill.jobs import parse_jobs
from backfill.runner import Runtime, run_jobs, state_table
from scripts import backfill_example as example
from scripts.localdb import MariaDBServer, mariadb_server
from tests.backfill.conftest import Provider
from tests.backfill.test_backfill_pacing import PRESSURE, Paced

DATABASE = "shop"


def _status(replica: MariaDBServer) -> dict[str, Any]:
    import pymysql

    with contextlib.closing(replica.connect()) as conn, conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute("SHOW REPLICA STATUS")
        return cur.fetchone() or {}


def _wait_caught_up(replica: MariaDBServer, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        status = _status(replica)
        if status.get("Slave_SQL_Running") == "Yes" and status.get("Seconds_Behind_Master") == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"the replica did not catch up: {_status(replica)}")


@pytest.fixture(scope="module")
def replication() -> Iterator[tuple[MariaDBServer, MariaDBServer]]:
    with (
        mariadb_server(options=["--log-bin=primary-bin", "--server-id=1", "--binlog-format=ROW"]) as primary,
        mariadb_server(options=["--server-id=2"]) as replica,
    ):
        # Replicate from now on: the primary's own setup (its user) is in its binary log already.
        position = primary.sql("SELECT @@gtid_binlog_pos").strip()
        replica.sql(
            f"SET GLOBAL gtid_slave_pos = '{position}'; CHANGE MASTER TO MASTER_HOST='127.0.0.1', "
            f"MASTER_PORT={primary.port}, MASTER_USER='{primary.user}', MASTER_PASSWORD='{primary.password}', "
            "MASTER_USE_GTID=slave_pos; START SLAVE;"
        )
        primary.sql(f"CREATE DATABASE {DATABASE}")
        _wait_caught_up(replica)
        yield primary, replica


def test_a_stopped_replica_pauses_the_job_until_it_runs_again(replication: tuple[MariaDBServer, MariaDBServer]) -> None:
    primary, replica = replication
    with contextlib.closing(primary.connect(DATABASE, autocommit=True)) as admin, admin.cursor() as cur:
        for statement in example.schema_statements("mysql") + example.fill_statements("mysql", 2000):
            cur.execute(statement)
    _wait_caught_up(replica)
    replica.sql("STOP SLAVE SQL_THREAD")
    paced = Paced()

    def restart(calls: int) -> None:
        if calls == 2:
            replica.sql("START SLAVE SQL_THREAD")
            _wait_caught_up(replica)

    paced.on_sleep = restart
    jobs = parse_jobs([example.job("mysql", pressure={**PRESSURE, "max_replica_lag_seconds": 5})], "mysql")
    provider, replica_provider = Provider(lambda: primary.connect(DATABASE)), Provider(replica.connect)
    try:
        runtime = Runtime(state_table(DATABASE), replicas=(replica_provider.get,), **paced.runtime())
        (result,) = run_jobs(jobs, provider, runtime).jobs
        assert result.status == "finished" and paced.sleeps == [5, 10], result
        assert result.pressure == ["replica lag replication stopped > 5 s"]

        # A host that replicates nothing is a configuration error, not a reason to wait.
        runtime = Runtime(state_table(DATABASE), replicas=(provider.get,), **paced.runtime())
        other = parse_jobs([example.job("mysql", name="again", pressure={"max_replica_lag_seconds": 5})], "mysql")
        (refused,) = run_jobs(other, provider, runtime).jobs
        assert refused.status == "failed" and "reports no replication" in refused.error and refused.retryable is False
    finally:
        provider.close()
        replica_provider.close()
    _wait_caught_up(replica)
    with contextlib.closing(replica.connect(DATABASE)) as conn, conn.cursor() as cur:
        assert example.archive_contents(cur) == example.expected_contents(cur)  # ... and it all replicated
