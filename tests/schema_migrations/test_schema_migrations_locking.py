"""Concurrency and locks: concurrent invocations, stale and fresh yoyo lock rows."""

from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg2


def test_five_concurrent_invocations_for_one_upload_apply_each_migration_once(migration_env, create_db_sql):
    env = migration_env
    app = env.db_name("app")
    env.put("postgres/0001_create.sql", create_db_sql(app))
    # Not idempotent on purpose: a second application would fail or double the rows.
    env.put(f"{app}/0001_t.sql", "CREATE TABLE t (id int);")
    env.put(f"{app}/0002_rows.sql", "INSERT INTO t SELECT generate_series(1, 100);")
    env.put(f"{app}/0003_slow.sql", "SELECT pg_sleep(0.3);\nCREATE TABLE u (id int);")
    event = env.event(f"{app}/0003_slow.sql")
    barrier = threading.Barrier(5)

    def invoke(_: int) -> dict:
        barrier.wait()
        return env.invoke(event)

    with ThreadPoolExecutor(max_workers=5) as pool:
        outcomes = list(pool.map(invoke, range(5)))

    assert all(o["status"] == "succeeded" for o in outcomes), outcomes
    applied_by_run = [o["results"][-1]["applied"] for o in outcomes]
    assert sorted(m for applied in applied_by_run for m in applied) == ["0001_t", "0002_rows", "0003_slow"]
    assert sum(1 for o in outcomes if o["results"][0]["applied"] == ["0001_create"]) == 1
    assert env.query(app, "SELECT count(*) FROM t") == [(100,)]
    assert env.query(
        app, "SELECT migration_id, count(*) FROM _yoyo_log WHERE operation = 'apply' GROUP BY 1 ORDER BY 1"
    ) == [("0001_t", 1), ("0002_rows", 1), ("0003_slow", 1)]
    # The runs queued on the advisory lock rather than failing on yoyo's lock row.
    assert max(o["results"][-1]["lock"]["advisory_wait_seconds"] for o in outcomes) > 0.2
    assert len(env.published()) == 10


def test_stale_yoyo_lock_is_broken(migration_env, create_db_sql):
    env = migration_env
    app = env.db_name("app")
    env.put("postgres/0001_create.sql", create_db_sql(app))
    env.upload(f"{app}/0001_t.sql", "CREATE TABLE t (id int);")
    # Left behind by a run that was killed an hour ago (older than LOCK_STALE_SECONDS = 900).
    env.query(
        app,
        "INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, now() AT TIME ZONE 'UTC' - interval '1 hour', 777)",
    )
    result = env.upload(f"{app}/0002_u.sql", "CREATE TABLE u (id int);")["results"][-1]
    assert result["status"] == "succeeded" and result["applied"] == ["0002_u"]
    broken = result["lock"]["broke_stale_yoyo_lock"]
    assert broken["pid"] == 777 and 3590 < broken["age_seconds"] < 3700
    assert env.query(app, "SELECT count(*) FROM yoyo_lock") == [(0,)]


def test_fresh_yoyo_lock_is_waited_for(migration_env, create_db_sql):
    env = migration_env
    app = env.db_name("app")
    env.put("postgres/0001_create.sql", create_db_sql(app))
    env.upload(f"{app}/0001_t.sql", "CREATE TABLE t (id int);")
    # Held by a live run outside this function (say an operator's yoyo CLI), released after 1.5 s.
    env.query(
        app, "INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, now() AT TIME ZONE 'UTC' - interval '60 s', 555)"
    )
    env.put(f"{app}/0002_u.sql", "CREATE TABLE u (id int);")

    def release() -> None:
        time.sleep(1.5)
        env.query(app, "DELETE FROM yoyo_lock WHERE pid = 555")

    releaser = threading.Thread(target=release)
    releaser.start()
    started = time.monotonic()
    result = env.invoke(env.event(f"{app}/0002_u.sql"), timeout=30)["results"][-1]
    releaser.join()
    assert result["status"] == "succeeded" and result["applied"] == ["0002_u"]
    assert result["lock"]["broke_stale_yoyo_lock"] is None
    assert result["lock"]["yoyo_wait_seconds"] >= 1.0 and time.monotonic() - started >= 1.4


def test_fresh_yoyo_lock_that_outlives_the_deadline_fails_without_applying(migration_env, create_db_sql):
    env = migration_env
    app = env.db_name("app")
    env.put("postgres/0001_create.sql", create_db_sql(app))
    env.upload(f"{app}/0001_t.sql", "CREATE TABLE t (id int);")
    env.query(app, "INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, now() AT TIME ZONE 'UTC', 4242)")
    env.put(f"{app}/0002_u.sql", "CREATE TABLE u (id int);")
    result = env.invoke({"action": "migrate", "database": app}, timeout=1.5)["results"][-1]
    assert result["status"] == "failed" and result["retryable"] is True
    assert result["error"]["type"] == "LockTimeout" and "pid 4242" in result["error"]["message"]
    assert "public.u" not in env.tables(app)
    assert env.query(app, "SELECT pid FROM yoyo_lock") == [(4242,)]  # a live lock is never broken


def test_rolling_deploy_a_run_of_the_previous_release_holding_its_lock_is_waited_for(migration_env, create_db_sql):
    """Releases before the shared key scheme locked (0x53434D47, sha256 prefix) on `postgres`; a
    new run waits for that key too, so an old and a new sandbox never migrate one database at once."""
    env = migration_env
    app = env.db_name("app")
    env.put("postgres/0001_create.sql", create_db_sql(app))
    env.upload(f"{app}/0001_t.sql", "CREATE TABLE t (id int);")
    env.put(f"{app}/0002_u.sql", "CREATE TABLE u (id int);")
    old_key = (0x53434D47, int.from_bytes(hashlib.sha256(app.encode()).digest()[:4], "big") & 0x7FFFFFFF)
    old = psycopg2.connect(env.server.dsn("postgres"))
    old.autocommit = True
    try:
        with old.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s, %s)", old_key)  # an old sandbox mid-run
        result = env.invoke({"action": "migrate", "database": app}, timeout=1.5)["results"][-1]
        assert result["status"] == "failed" and result["retryable"] is True
        assert result["error"]["type"] == "LockTimeout" and "public.u" not in env.tables(app)
        threading.Timer(0.5, lambda: old.cursor().execute("SELECT pg_advisory_unlock(%s, %s)", old_key)).start()
        result = env.invoke({"action": "migrate", "database": app}, timeout=30)["results"][-1]
        assert result["status"] == "succeeded" and result["applied"] == ["0002_u"]
        assert result["lock"]["advisory_wait_seconds"] >= 0.3
    finally:
        old.close()
