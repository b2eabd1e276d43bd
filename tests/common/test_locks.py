"""Advisory locks on real PostgreSQL and MariaDB: contention between connections, scopes, waits,
legacy keys across a rolling deploy, and DDL under a lock."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest

from pipeline_common.db import SessionScopeOnly
from pipeline_common.errors import is_retryable
from pipeline_common.locks import (
    Ddl,
    LockKey,
    LockTimeout,
    Scope,
    ddl_key,
    lock,
    mysql_lock_name,
    session_lock,
    try_lock,
    unlock,
)

KEY = LockKey("pipeline_state.jobs", "orders backfill")


def test_one_key_scheme_gives_valid_keys_for_both_engines():
    keys = {LockKey(namespace, name).pg for namespace in ("a", "b") for name in ("x", "y", "a\0x")}
    assert len(keys) == 6 and all(-(2**63) <= k < 2**63 for k in keys)
    assert LockKey("a", "b\0c").pg != LockKey("a\0b", "c").pg
    assert LockKey("a", "b", legacy=(7,)) == LockKey("a", "b")  # legacy keys do not change identity
    assert len(LockKey("x" * 500, "y" * 5000).digest.hex()) == 32


def test_a_session_lock_excludes_another_connection_until_released(connect):
    holder, other = connect(), connect()
    assert try_lock(holder, KEY, Scope.SESSION)
    assert not try_lock(other, KEY, Scope.SESSION)
    # Session locks are not transactional: a rollback on the holder keeps the lock.
    holder.rollback()
    assert not try_lock(other, KEY, Scope.SESSION)
    assert try_lock(other, LockKey(KEY.namespace, "another job"), Scope.SESSION)
    unlock(holder, KEY)
    assert try_lock(other, KEY, Scope.SESSION)


def test_a_closed_connection_releases_its_lock(connect):
    holder, other = connect(), connect()
    assert try_lock(holder, KEY, Scope.SESSION)
    holder.close()  # what the server does when a Lambda sandbox is killed
    deadline = time.monotonic() + 5
    while not try_lock(other, KEY, Scope.SESSION):
        assert time.monotonic() < deadline, "the lock outlived its session"
        time.sleep(0.05)


def test_session_lock_block_yields_false_when_busy_and_releases_after(connect):
    holder, other = connect(), connect()
    with session_lock(holder, KEY) as held:
        assert held
        with session_lock(other, KEY) as also:
            assert not also
    with session_lock(other, KEY) as held:
        assert held


def test_waiting_for_a_lock_gets_it_when_released_or_times_out(connect):
    holder, waiter = connect(autocommit=True), connect(autocommit=True)
    assert try_lock(holder, KEY, Scope.SESSION)
    with pytest.raises(LockTimeout, match="still held by another session") as timeout:
        lock(waiter, KEY, Scope.SESSION, timeout_ms=300)
    assert is_retryable(timeout.value)

    releaser = threading.Timer(0.4, unlock, (holder, KEY))
    releaser.start()
    waited = lock(waiter, KEY, Scope.SESSION, timeout_ms=10_000)
    releaser.join()
    assert 0.3 < waited < 5
    assert not try_lock(holder, KEY, Scope.SESSION)
    with pytest.raises(LockTimeout, match="no time left"):
        lock(holder, KEY, Scope.SESSION, timeout_ms=0)


def test_postgresql_transaction_locks_end_with_the_transaction(pg_server, pg_database):
    holder, other = (psycopg2.connect(pg_server.dsn(pg_database)) for _ in range(2))
    try:
        assert try_lock(holder, KEY, Scope.TRANSACTION)
        assert not try_lock(other, KEY, Scope.SESSION)
        holder.commit()
        assert try_lock(other, KEY, Scope.TRANSACTION)
        other.rollback()
        # A timed-out wait inside a transaction aborts it; the caller rolls back and nothing stays set.
        assert try_lock(holder, KEY, Scope.SESSION)
        with pytest.raises(LockTimeout):
            lock(other, KEY, Scope.TRANSACTION, timeout_ms=200)
        other.rollback()
        with other.cursor() as cur:
            cur.execute("SHOW lock_timeout")
            assert cur.fetchone() == ("0",)
    finally:
        holder.close()
        other.close()


def test_mysql_refuses_transaction_scoped_locks(mariadb_conn):
    with pytest.raises(SessionScopeOnly, match="session-scoped"):
        try_lock(mariadb_conn, KEY, Scope.TRANSACTION)
    with pytest.raises(SessionScopeOnly):
        lock(mariadb_conn, KEY, Scope.TRANSACTION, timeout_ms=100)


def test_mysql_lock_names_are_per_database_and_fit_64_characters(mariadb, mariadb_database):
    mariadb.sql("CREATE DATABASE IF NOT EXISTS other_db")

    here, again, elsewhere = (mariadb.connect(db) for db in (mariadb_database, mariadb_database, "other_db"))
    try:
        long_key = LockKey("n" * 300, "j" * 300)
        assert try_lock(here, long_key, Scope.SESSION)
        assert not try_lock(again, long_key, Scope.SESSION)
        assert try_lock(elsewhere, long_key, Scope.SESSION)  # another database, another lock
        name = mysql_lock_name(here, long_key)
        assert name.startswith("pipelines:") and len(name) <= 64
        assert name != mysql_lock_name(elsewhere, long_key)
        with here.cursor() as cur:
            cur.execute("SELECT IS_USED_LOCK(%s) = CONNECTION_ID()", (name,))
            assert cur.fetchone() == (1,)
    finally:
        for conn in (here, again, elsewhere):
            conn.close()
        mariadb.sql("DROP DATABASE IF EXISTS other_db")


def test_legacy_keys_keep_old_and_new_releases_apart_during_a_rolling_deploy(pg_server, pg_database):
    """An old sandbox locks with its own scheme (a bigint, or two int4s); the new code takes the
    new key and the old one, so neither can enter while the other is inside."""
    old, new = (psycopg2.connect(pg_server.dsn(pg_database)) for _ in range(2))
    for conn in (old, new):
        conn.autocommit = True
    key = LockKey("pipeline_state.file_loads", "b\0k\0v", legacy=(1234567890123, (0x7A5C, 42)))
    try:
        with old.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s, %s)", (0x7A5C, 42))  # old code is loading
        assert not try_lock(new, key, Scope.SESSION)
        # The refused try left nothing behind, not even the keys it did get.
        with new.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
            assert cur.fetchone() == (0,)
        with pytest.raises(LockTimeout):
            lock(new, key, Scope.SESSION, timeout_ms=200)
        with old.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s, %s)", (0x7A5C, 42))

        assert try_lock(new, key, Scope.SESSION)  # new code is loading: old code sees it busy
        with old.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s), pg_try_advisory_lock(%s, %s)", (1234567890123, 0x7A5C, 42))
            assert cur.fetchone() == (False, False)
        unlock(new, key)
        with old.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (1234567890123,))
            assert cur.fetchone() == (True,)
    finally:
        old.close()
        new.close()


def test_ddl_under_a_lock_runs_once_per_connection_and_races_cleanly(connect):
    table = "jobs" if connect.engine == "postgresql" else "`jobs`"
    ddl = Ddl(ddl_key("public"), [f"CREATE TABLE IF NOT EXISTS {table} (id int PRIMARY KEY)"])
    connections = [connect() for _ in range(6)]
    barrier = threading.Barrier(len(connections))

    def ensure(conn: object) -> None:
        barrier.wait()
        ddl.ensure(conn)

    with ThreadPoolExecutor(len(connections)) as pool:
        list(pool.map(ensure, connections))  # re-raises any failure
    check = connections[0]
    with check.cursor() as cur:
        cur.execute(f"INSERT INTO {table} VALUES (1)")
    check.commit()
    ddl.statements = ["this is not SQL"]  # a second ensure on the same connection runs nothing
    ddl.ensure(check)
