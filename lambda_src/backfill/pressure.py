"""Database pressure: the signals a backfill yields to (as gh-ost, pt-archiver and GitLab's batched
background migrations do), read between chunks.

- replica lag: PostgreSQL's `pg_stat_replication.replay_lag` (the worst standby, read on the
  primary); MySQL/MariaDB have no view of their replicas on the primary, so each replica named in
  `BACKFILL_DB_REPLICA_HOSTS` is asked `SHOW REPLICA STATUS` (`SHOW SLAVE STATUS` before MySQL 8.0.22 /
  MariaDB 10.5). A replica whose replication is stopped (`Seconds_Behind_Master` NULL) counts as
  infinitely late, as pt-archiver counts it.
- running threads / active sessions: `Threads_running` (less this session) / `pg_stat_activity`
  sessions in state `active` other than this one.
- long transactions: the oldest open transaction of another session (InnoDB's
  `information_schema.INNODB_TRX`, PostgreSQL's `pg_stat_activity.xact_start`): while one is open,
  InnoDB cannot purge and PostgreSQL cannot vacuum what the backfill rewrites.

Only the checks a job turns on are read. They need the monitoring privileges of each engine
(MySQL: PROCESS, and REPLICATION CLIENT / REPLICA MONITOR on the replicas; PostgreSQL: pg_monitor),
without which the server shows only this user's own sessions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from backfill.jobs import PressureLimits
from pipeline_common.db import engine_of
from pipeline_common.errors import PermanentError


class NotAReplica(PermanentError):
    """A host named as a replica reports no replication."""


@dataclass(frozen=True)
class Reading:
    replica_lag_seconds: float | None = None
    running: int | None = None
    oldest_transaction_seconds: float | None = None

    def reasons(self, limits: PressureLimits) -> list[str]:
        """Why the database is under pressure (empty: it is not)."""
        out = []
        lag, running, oldest = self.replica_lag_seconds, self.running, self.oldest_transaction_seconds
        if limits.max_replica_lag_seconds and lag is not None and lag > limits.max_replica_lag_seconds:
            shown = "replication stopped" if math.isinf(lag) else f"{lag:.1f} s"
            out.append(f"replica lag {shown} > {limits.max_replica_lag_seconds:g} s")
        if limits.max_running_threads and running is not None and running > limits.max_running_threads:
            out.append(f"{running} running sessions > {limits.max_running_threads}")
        if limits.max_transaction_seconds and oldest is not None and oldest > limits.max_transaction_seconds:
            out.append(f"a transaction open for {oldest:.0f} s > {limits.max_transaction_seconds:g} s")
        return out


def read_pressure(conn: Any, limits: PressureLimits, replicas: Sequence[Callable[[], Any]] = ()) -> Reading:
    """Read the signals `limits` turns on. `replicas` give connections to MySQL replicas."""
    mysql = engine_of(conn) == "mysql"
    lag = running = oldest = None
    try:
        with conn.cursor() as cur:
            if limits.max_replica_lag_seconds:
                lag = max((_replica_lag(get()) for get in replicas), default=None) if mysql else _pg_lag(cur)
            if limits.max_running_threads:
                running = _mysql_running(cur) if mysql else _pg_running(cur)
            if limits.max_transaction_seconds:
                oldest = _mysql_oldest(cur) if mysql else _pg_oldest(cur)
    finally:
        conn.rollback()  # no snapshot or transaction kept open between chunks
    return Reading(lag, running, oldest)


def _pg_lag(cur: Any) -> float:
    # replay_lag is NULL for a standby that caught up and has been idle since: no lag.
    cur.execute("SELECT COALESCE(EXTRACT(EPOCH FROM MAX(replay_lag)), 0) FROM pg_stat_replication")
    return float(cur.fetchone()[0])


def _pg_running(cur: Any) -> int:
    cur.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() "
        "AND backend_type = 'client backend'"
    )
    return int(cur.fetchone()[0])


def _pg_oldest(cur: Any) -> float:
    cur.execute(
        "SELECT COALESCE(EXTRACT(EPOCH FROM MAX(clock_timestamp() - xact_start)), 0) FROM pg_stat_activity "
        "WHERE pid <> pg_backend_pid() AND xact_start IS NOT NULL AND backend_type = 'client backend'"
    )
    return float(cur.fetchone()[0])


def _mysql_running(cur: Any) -> int:
    cur.execute("SHOW GLOBAL STATUS LIKE 'Threads_running'")
    return max(0, int(cur.fetchone()[1]) - 1)  # this session's own thread runs the statement


def _mysql_oldest(cur: Any) -> float:
    # trx_started is in the server's system time zone whatever the session's is.
    cur.execute(
        "SELECT COALESCE(MAX(TIMESTAMPDIFF(MICROSECOND, trx_started, CONVERT_TZ(UTC_TIMESTAMP(6), '+00:00', "
        "'SYSTEM'))), 0) / 1e6 FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id <> CONNECTION_ID()"
    )
    return float(cur.fetchone()[0])


def _replica_lag(conn: Any) -> float:
    import pymysql

    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        try:
            cur.execute("SHOW REPLICA STATUS")
        except pymysql.err.ProgrammingError:  # before MySQL 8.0.22 / MariaDB 10.5
            cur.execute("SHOW SLAVE STATUS")
        rows = cur.fetchall()
    conn.rollback()
    if not rows:
        raise NotAReplica(f"replica {conn.host}:{conn.port} reports no replication (SHOW REPLICA STATUS is empty)")
    worst = 0.0
    for row in rows:
        seconds = row.get("Seconds_Behind_Source", row.get("Seconds_Behind_Master"))
        worst = max(worst, math.inf if seconds is None else float(seconds))
    return worst
