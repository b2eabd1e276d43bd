"""Serialising runs: a PostgreSQL advisory lock per database, then yoyo's own lock row.

The advisory lock (`pipeline_common.locks`, key `schema_migrations:<database>`) is taken on the
connection to the root `postgres` database, so it serialises runs for a database even before that
database exists (its CREATE DATABASE runs under the lock of `postgres`, and a run for the new
database waits for it). It is a session lock: if the Lambda is killed the server drops the session
and the lock with it. Releases before the shared key scheme locked `(0x53434D47, sha256 prefix)`;
that key is taken too, so old and new releases keep excluding each other during a rolling deploy.

yoyo's lock row (`yoyo_lock`) is what the yoyo CLI and other yoyo users respect. A row survives a
killed Lambda, so a row older than the stale age (the function timeout: no run of ours can hold it
longer) is broken; a younger one belongs to a live run (e.g. an operator's yoyo CLI) and is waited
for, as long as the deadline allows.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg2

from pipeline_common.deadline import Deadline
from pipeline_common.locks import LockKey, LockTimeout, Scope, lock, unlock
from schema_migrations.backend import LambdaBackend

logger = logging.getLogger(__name__)

# First half of the two-int advisory key of releases before the shared key scheme.
LEGACY_LOCK_NAMESPACE = 0x53434D47  # "SCMG"


def lock_key(database: str) -> LockKey:
    legacy = int.from_bytes(hashlib.sha256(database.encode("utf-8")).digest()[:4], "big") & 0x7FFFFFFF
    return LockKey("schema_migrations", database, legacy=((LEGACY_LOCK_NAMESPACE, legacy),))


@contextlib.contextmanager
def advisory_lock(root: Any, database: str, deadline: Deadline) -> Iterator[float]:
    """Hold the advisory lock of `database` on the autocommit connection `root`, waiting as long as
    the deadline allows (a blocking wait is handed the lock the moment it is released); yields the
    wait in seconds."""
    key = lock_key(database)
    waited = lock(root, key, Scope.SESSION, timeout_ms=deadline.usable_ms())
    try:
        yield waited
    finally:
        with contextlib.suppress(psycopg2.Error):
            unlock(root, key)


@dataclass
class YoyoLock:
    waited_seconds: float = 0.0
    broken: dict[str, Any] | None = None  # the stale row that was removed, if any


@contextlib.contextmanager
def hold_yoyo_lock(
    backend: LambdaBackend, stale_seconds: float, deadline: Deadline, poll_seconds: float = 0.5
) -> Iterator[YoyoLock]:
    """Insert yoyo's lock row for the whole run, breaking a stale row and waiting for a fresh one."""
    pid = os.getpid()
    report = YoyoLock()
    started = time.monotonic()
    connection = backend.connection  # autocommit: each statement commits on its own
    database = backend.uri.database
    while True:
        with connection.cursor() as cur:
            cur.execute(
                "INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, now() AT TIME ZONE 'UTC', %s) "
                "ON CONFLICT (locked) DO NOTHING RETURNING ctime",
                (pid,),
            )
            row = cur.fetchone()
            if row is not None:
                ctime = row[0]
                break
            cur.execute(
                "SELECT pid, ctime, EXTRACT(EPOCH FROM (now() AT TIME ZONE 'UTC') - ctime)::float8 "
                "FROM yoyo_lock WHERE locked = 1"
            )
            holder = cur.fetchone()
            if holder is None:  # released between the two statements
                continue
            holder_pid, holder_ctime, age = holder
            if age is None or age > stale_seconds:
                cur.execute(
                    "DELETE FROM yoyo_lock WHERE locked = 1 AND pid = %s AND ctime IS NOT DISTINCT FROM %s",
                    (holder_pid, holder_ctime),
                )
                if cur.rowcount:
                    report.broken = {
                        "pid": holder_pid,
                        "ctime": holder_ctime.isoformat() if holder_ctime else None,
                        "age_seconds": None if age is None else round(age, 1),
                    }
                    logger.warning("broke stale yoyo lock", extra={"database": database, **report.broken})
                continue
            if deadline.expired(poll_seconds * 1000):
                raise LockTimeout(
                    f"yoyo lock of database {database!r} held by pid {holder_pid} since {holder_ctime} UTC "
                    f"({age:.0f} s old; stale after {stale_seconds:.0f} s); waited {time.monotonic() - started:.1f} s"
                )
        time.sleep(poll_seconds)
    report.waited_seconds = time.monotonic() - started
    backend.lock_held = True
    try:
        yield report
    finally:
        backend.lock_held = False
        try:
            with connection.cursor() as cur:
                cur.execute("DELETE FROM yoyo_lock WHERE pid = %s AND ctime = %s", (pid, ctime))
        except psycopg2.Error:
            # The row turns stale and the next run breaks it; the run's own outcome matters more.
            logger.warning("could not release the yoyo lock", extra={"database": database}, exc_info=True)
