"""Applying migrations from the bucket: creation of databases, incremental runs, failures,
checksums and repair, rollback, dry runs. Real PostgreSQL, S3 and SNS in moto."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import uuid

import boto3
import pytest

from schema_migrations.service import RetryableFailure


def _applied(env, database: str) -> list[str]:
    return [r[0] for r in env.query(database, "SELECT migration_id FROM _yoyo_migration ORDER BY migration_id")]


def _apply_log_counts(env, database: str) -> dict[str, int]:
    rows = env.query(
        database, "SELECT migration_id, count(*) FROM _yoyo_log WHERE operation = 'apply' GROUP BY migration_id"
    )
    return dict(rows)


def test_postgres_migrations_create_two_databases_then_each_is_migrated(migration_env, create_db_sql):
    env = migration_env
    app, reports = env.db_name("app"), env.db_name("reports")
    env.put("postgres/0001_create_databases.sql", create_db_sql(app, reports))
    env.put(f"{app}/0001_users.sql", "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);")
    env.put(f"{app}/0002_widgets.sql", "CREATE TABLE widgets (id bigint PRIMARY KEY, owner bigint REFERENCES users);")
    env.put(f"{reports}/0001_daily.sql", "CREATE TABLE daily (day date PRIMARY KEY, n bigint);")

    # The upload of an app migration arrives first: postgres/ runs before it and creates both databases.
    first = env.invoke(env.event(f"{app}/0002_widgets.sql"))
    assert first["status"] == "succeeded"
    assert [(r["database"], r["applied"]) for r in first["results"]] == [
        ("postgres", ["0001_create_databases"]),
        (app, ["0001_users", "0002_widgets"]),
    ]
    assert {app, reports} <= env.databases()
    assert {"public.users", "public.widgets"} <= env.tables(app)

    second = env.invoke(env.event(f"{reports}/0001_daily.sql"))
    assert [(r["database"], r["status"], r["applied"]) for r in second["results"]] == [
        ("postgres", "succeeded", []),
        (reports, "succeeded", ["0001_daily"]),
    ]
    assert "public.daily" in env.tables(reports)
    assert _applied(env, "postgres") == ["0001_create_databases"]

    published = env.published()
    assert [(p["result"]["database"], p["result"]["status"]) for p in published] == [
        ("postgres", "succeeded"),
        (app, "succeeded"),
        ("postgres", "succeeded"),
        (reports, "succeeded"),
    ]
    assert published[1]["attributes"]["status"]["Value"] == "succeeded"
    assert published[1]["result"]["applied"] == ["0001_users", "0002_widgets"]
    # Checksums of what was applied are kept next to yoyo's tables, with the S3 version applied.
    rows = env.query(app, "SELECT migration_id, sha256, s3_version_id, source FROM _yoyo_migration_checksum")
    assert len(rows) == 2 and all(len(sha) == 64 and version and source == "apply" for _, sha, version, source in rows)


def test_files_added_later_are_applied_incrementally(migration_env, create_db_sql):
    env = migration_env
    app = env.db_name("app")
    env.put("postgres/0001_create.sql", create_db_sql(app))
    result = env.upload(f"{app}/0001_t.sql", "CREATE TABLE t (id int PRIMARY KEY);")
    assert result["results"][-1]["applied"] == ["0001_t"]

    result = env.upload(f"{app}/0002_t_name.sql", "ALTER TABLE t ADD COLUMN name text;")
    assert result["results"][-1]["applied"] == ["0002_t_name"]
    result = env.upload(f"{app}/0003_seed.sql", "INSERT INTO t VALUES (1, 'one');\nINSERT INTO t VALUES (2, 'two');")
    assert result["results"][-1]["applied"] == ["0003_seed"]
    # A replayed notification finds nothing to do.
    again = env.invoke(env.event(f"{app}/0003_seed.sql"))
    assert again["results"][-1]["applied"] == [] and again["results"][-1]["status"] == "succeeded"
    assert env.query(app, "SELECT id, name FROM t ORDER BY id") == [(1, "one"), (2, "two")]
    assert _apply_log_counts(env, app) == {"0001_t": 1, "0002_t_name": 1, "0003_seed": 1}


def test_one_sns_message_with_several_records_runs_each_database_once(migration_env, create_db_sql):
    env = migration_env
    a, b = env.db_name("a"), env.db_name("b")
    env.put("postgres/0001_create.sql", create_db_sql(a, b))
    for db in (a, b):
        env.put(f"{db}/0001_t.sql", "CREATE TABLE t (id int);")
        env.put(f"{db}/0002_u.sql", "CREATE TABLE u (id int);")
    event = env.event(f"{a}/0001_t.sql", f"{a}/0002_u.sql", f"{b}/0001_t.sql", f"{b}/0002_u.sql")
    result = env.invoke(event)
    assert [(r["database"], r["applied"]) for r in result["results"]] == [
        ("postgres", ["0001_create"]),
        (a, ["0001_t", "0002_u"]),
        (b, ["0001_t", "0002_u"]),
    ]
    assert result["results"][1]["triggers"] == [f"{a}/0001_t.sql", f"{a}/0002_u.sql"]


def test_failing_migration_rolls_back_reports_file_and_statement_and_fixed_upload_applies(migration_env, create_db_sql):
    env = migration_env
    app = env.db_name("app")
    env.put("postgres/0001_create.sql", create_db_sql(app))
    env.put(f"{app}/0001_base.sql", "CREATE TABLE base (id int PRIMARY KEY);")
    broken = "CREATE TABLE half (id int);\nINSERT INTO base SELECT id FROM no_such_table;\n"
    env.put(f"{app}/0002_broken.sql", broken)
    env.put(f"{app}/0003_after.sql", "CREATE TABLE after_broken (id int);")

    result = env.invoke(env.event(f"{app}/0002_broken.sql"))
    assert result["status"] == "failed"
    failed = result["results"][-1]
    assert failed["status"] == "failed" and failed["retryable"] is False
    assert failed["applied"] == ["0001_base"]
    assert failed["pending"] == ["0002_broken", "0003_after"]  # later migrations were not attempted
    error = failed["error"]
    assert error["file"] == f"{app}/0002_broken.sql"
    assert error["statement"].strip() == "INSERT INTO base SELECT id FROM no_such_table;"
    assert error["sqlstate"] == "42P01"
    assert 'relation "no_such_table" does not exist' in error["database_error"]
    # The whole migration was rolled back, including its first statement.
    assert "public.half" not in env.tables(app)
    assert "public.after_broken" not in env.tables(app)
    assert _applied(env, app) == ["0001_base"]
    published = env.published()
    assert published[-1]["result"]["error"]["file"] == f"{app}/0002_broken.sql"
    assert published[-1]["attributes"]["status"]["Value"] == "failed"

    fixed = env.upload(f"{app}/0002_broken.sql", "CREATE TABLE half (id int);\nINSERT INTO base VALUES (1);\n")
    assert fixed["status"] == "succeeded"
    assert fixed["results"][-1]["applied"] == ["0002_broken", "0003_after"]
    assert {"public.half", "public.after_broken"} <= env.tables(app)


def test_edited_applied_migration_is_refused_by_name_until_repair(migration_env, create_db_sql):
    env = migration_env
    app = env.db_name("app")
    env.put("postgres/0001_create.sql", create_db_sql(app))
    env.upload(f"{app}/0001_t.sql", "CREATE TABLE t (id int);")
    env.put(f"{app}/0001_t.sql", "CREATE TABLE t (id bigint);")  # edited after it was applied
    result = env.upload(f"{app}/0002_u.sql", "CREATE TABLE u (id int);")
    failed = result["results"][-1]
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "ChecksumMismatch"
    assert failed["changed"] == [f"{app}/0001_t.sql"]
    assert f"{app}/0001_t.sql" in failed["error"]["message"] and "repair" in failed["error"]["message"]
    assert _applied(env, app) == ["0001_t"]  # nothing else ran
    status = env.invoke({"action": "status", "database": app})["results"][0]
    assert {m["id"]: (m["state"], m["checksum"]) for m in status["migrations"]} == {
        "0001_t": ("applied", "changed"),
        "0002_u": ("pending", None),
    }

    dry = env.invoke({"action": "repair", "database": app, "dry_run": True})["results"][0]
    assert dry["pending"] == ["0001_t"] and dry["repaired"] == []
    repaired = env.invoke({"action": "repair", "database": app})["results"][0]
    assert repaired["status"] == "succeeded" and repaired["repaired"] == ["0001_t"]
    assert env.query(app, "SELECT source FROM _yoyo_migration_checksum WHERE migration_id = '0001_t'") == [("repair",)]

    result = env.invoke({"action": "migrate", "database": app})
    assert result["results"][-1]["applied"] == ["0002_u"]


def test_rollback_of_the_last_n_migrations(migration_env, create_db_sql):
    env = migration_env
    app = env.db_name("app")
    env.put("postgres/0001_create.sql", create_db_sql(app))
    for n in (1, 2, 3):
        env.put(f"{app}/000{n}_t{n}.sql", f"CREATE TABLE t{n} (id int);\nCREATE INDEX t{n}_id ON t{n} (id);")
        env.put(f"{app}/000{n}_t{n}.rollback.sql", f"DROP INDEX t{n}_id;\nDROP TABLE t{n};")
    env.invoke({"action": "migrate", "database": app})
    assert {"public.t1", "public.t2", "public.t3"} <= env.tables(app)

    dry = env.invoke({"action": "rollback", "database": app, "count": 2, "dry_run": True})["results"][0]
    assert dry["pending"] == ["0003_t3", "0002_t2"] and dry["rolled_back"] == []
    assert {"public.t1", "public.t2", "public.t3"} <= env.tables(app)

    result = env.invoke({"action": "rollback", "database": app, "count": 2})["results"][0]
    assert result["status"] == "succeeded"
    assert result["rolled_back"] == ["0003_t3", "0002_t2"]
    tables = env.tables(app)
    assert "public.t1" in tables and "public.t2" not in tables and "public.t3" not in tables
    assert _applied(env, app) == ["0001_t1"]
    assert env.query(app, "SELECT migration_id FROM _yoyo_migration_checksum") == [("0001_t1",)]

    # Rolled back migrations are pending again and the next run re-applies them.
    again = env.invoke({"action": "migrate", "database": app})["results"][-1]
    assert again["applied"] == ["0002_t2", "0003_t3"]


def test_rollback_without_a_rollback_file_is_refused(migration_env, create_db_sql):
    env = migration_env
    app = env.db_name("app")
    env.put("postgres/0001_create.sql", create_db_sql(app))
    env.upload(f"{app}/0001_t.sql", "CREATE TABLE t (id int);")
    result = env.invoke({"action": "rollback", "database": app})["results"][0]
    assert result["status"] == "refused"
    assert f"no {app}/0001_t.rollback.sql" in result["error"]["message"]
    assert _applied(env, app) == ["0001_t"]


def test_dry_run_reports_pending_and_changes_nothing(migration_env, create_db_sql):
    env = migration_env
    app = env.db_name("app")
    env.put("postgres/0001_create.sql", create_db_sql(app))
    env.put(f"{app}/0001_t.sql", "CREATE TABLE t (id int);")
    databases_before = env.databases()
    root_before = env.tables("postgres")

    result = env.invoke({"action": "migrate", "database": app, "dry_run": True})
    assert [(r["database"], r["status"], r["pending"], r["applied"]) for r in result["results"]] == [
        ("postgres", "succeeded", ["0001_create"], []),
        (app, "succeeded", ["0001_t"], []),
    ]
    assert env.databases() == databases_before
    assert env.tables("postgres") == root_before

    # Once the database exists, a dry run of a pending migration leaves it untouched too.
    env.invoke({"action": "migrate", "database": app})
    env.put(f"{app}/0002_u.sql", "CREATE TABLE u (id int);")
    app_before = env.tables(app)
    log_before = env.query(app, "SELECT count(*) FROM _yoyo_log")
    result = env.invoke({"action": "migrate", "database": app, "dry_run": True})
    assert result["results"][-1]["pending"] == ["0002_u"]
    assert env.tables(app) == app_before
    assert env.query(app, "SELECT count(*) FROM _yoyo_log") == log_before


def test_status_lists_every_migration(migration_env, create_db_sql):
    env = migration_env
    app = env.db_name("app")
    env.put("postgres/0001_create.sql", create_db_sql(app))
    env.upload(f"{app}/0001_t.sql", "CREATE TABLE t (id int);")
    env.put(f"{app}/0002_u.sql", "CREATE TABLE u (id int);")
    env.put(f"{app}/0002_u.rollback.sql", "DROP TABLE u;")
    result = env.invoke({"action": "status"})  # every database in the bucket, postgres first
    assert [r["database"] for r in result["results"]] == ["postgres", app]
    migrations = result["results"][1]["migrations"]
    assert [(m["id"], m["state"], m["checksum"], m["rollback_file"]) for m in migrations] == [
        ("0001_t", "applied", "ok", False),
        ("0002_u", "pending", None, True),
    ]
    assert result["results"][0]["migrations"][0]["transactional"] is False


def test_status_of_thousands_of_migrations_fits_in_one_sns_message(migration_env):
    env = migration_env
    big = env.db_name("big")
    count = 1500
    ids = [f"{n:04d}_" + "a_long_descriptive_migration_name" * 5 for n in range(count)]
    for migration_id in ids:
        env.put(f"{big}/{migration_id}.sql", "CREATE TABLE t (id int);")
    result = env.invoke({"action": "status", "database": big}, timeout=120)  # never migrated: all pending

    published = env.published()
    assert len(published) == 1
    message = published[0]["result"]
    assert len(json.dumps(message).encode("utf-8")) <= 256 * 1024
    # The lists keep their first entries and say how many were left out.
    shown, omitted = message["migrations"], message["omitted"]
    assert shown and [m["id"] for m in shown] == ids[: len(shown)]
    assert len(shown) + omitted["migrations"] == count
    assert message["pending"] == ids[: len(message["pending"])]
    assert len(message["pending"]) + omitted.get("pending", 0) == count
    assert message["files"] == count
    assert result["results"] == [message]


def test_non_transactional_migration_resumes_after_the_last_completed_statement(migration_env, create_db_sql):
    env = migration_env
    a, b = env.db_name("a"), env.db_name("b")
    # The second statement fails after the first created a database (no transaction to undo it).
    result = env.upload("postgres/0001_create.sql", create_db_sql(a, a))
    failed = result["results"][0]
    assert failed["status"] == "failed" and failed["error"]["sqlstate"] == "42P04"
    assert failed["error"]["statement"].strip() == f"CREATE DATABASE {a};"
    assert a in env.databases()

    # The fixed file keeps the completed statement; re-running skips it instead of failing on it.
    result = env.upload("postgres/0001_create.sql", create_db_sql(a, b))
    assert result["status"] == "succeeded", result
    assert {a, b} <= env.databases()
    assert env.query("postgres", "SELECT count(*) FROM _yoyo_migration_step") == [(0,)]


def test_unknown_database_is_reported(migration_env):
    env = migration_env
    ghost = env.db_name("ghost")
    result = env.upload(f"{ghost}/0001_t.sql", "CREATE TABLE t (id int);")
    failed = result["results"][0]
    assert failed["status"] == "failed" and failed["error"]["type"] == "DatabaseMissing"
    assert "postgres/" in failed["error"]["message"]


def test_a_database_name_with_a_dollar_sign_is_created_and_migrated(migration_env, create_db_sql):
    """`$` is legal in PostgreSQL names; it used to reach the server as `%24` (issue 13)."""
    env = migration_env
    name = env.db_name("pay$roll")
    env.put("postgres/0001_create.sql", create_db_sql(name))
    result = env.upload(f"{name}/0001_t.sql", "CREATE TABLE t (id int);")
    assert [(r["database"], r["status"], r["applied"]) for r in result["results"]] == [
        ("postgres", "succeeded", ["0001_create"]),
        (name, "succeeded", ["0001_t"]),
    ]
    assert "public.t" in env.tables(name)
    status = env.invoke({"action": "status", "database": name})
    assert status["results"][0]["status"] == "succeeded"


def test_a_missing_database_with_a_dollar_sign_is_permanent_not_retried(migration_env):
    env = migration_env
    ghost = env.db_name("gh$ost")
    result = env.upload(f"{ghost}/0001_t.sql", "CREATE TABLE t (id int);")
    failed = result["results"][0]
    assert failed["status"] == "failed" and failed["error"]["type"] == "DatabaseMissing"
    assert failed["retryable"] is False, failed


def test_lock_timeout_on_an_s3_event_is_raised_for_lambda_to_retry(migration_env, create_db_sql):
    env = migration_env
    app = env.db_name("app")
    env.put("postgres/0001_create.sql", create_db_sql(app))
    env.upload(f"{app}/0001_t.sql", "CREATE TABLE t (id int);")
    env.query(app, "INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, now() AT TIME ZONE 'UTC', 4242)")
    env.put(f"{app}/0002_u.sql", "CREATE TABLE u (id int);")
    with pytest.raises(RetryableFailure, match="held by pid 4242"):
        env.invoke(env.event(f"{app}/0002_u.sql"), timeout=1.5)
    published = env.published()
    assert published[-1]["result"]["retryable"] is True and published[-1]["result"]["error"]["type"] == "LockTimeout"


def test_unexpected_error_fails_its_database_and_every_result_is_still_published(migration_env, create_db_sql):
    env = migration_env
    app = env.db_name("app")
    env.put("postgres/0001_create.sql", create_db_sql(app))
    env.put(f"{app}/0001_t.sql", "CREATE TABLE t (id int);")
    gone = f"{app}/0001_t.sql"

    def delete_before_download(params, **_):
        # The object is deleted after the prefix was listed: moto's GetObject answers NoSuchKey.
        if params.get("Key") == gone:
            env.s3.delete_object(Bucket=env.bucket, Key=gone)

    env.s3.meta.events.register("before-parameter-build.s3.GetObject", delete_before_download)
    with pytest.raises(RetryableFailure, match="NoSuchKey"):
        env.invoke(env.event(gone))

    published = [p["result"] for p in env.published()]
    assert [(r["database"], r["status"], r["applied"]) for r in published] == [
        ("postgres", "succeeded", ["0001_create"]),
        (app, "failed", []),
    ]
    failed = published[1]
    assert failed["retryable"] is True
    assert failed["error"]["type"] == "NoSuchKey" and "GetObject" in failed["error"]["message"]


@pytest.mark.parametrize("header", ["", "-- transactional: false\n"], ids=["transactional", "non-transactional"])
def test_migration_running_past_the_deadline_is_cancelled_by_the_server(migration_env, create_db_sql, header):
    env = migration_env
    app = env.db_name("app")
    env.put("postgres/0001_create.sql", create_db_sql(app))
    env.upload(f"{app}/0001_t.sql", "CREATE TABLE t (id int);")
    env.published()
    slow = f"{app}/0002_slow.sql"
    env.put(slow, header + "CREATE TABLE slow (id int);\nSELECT pg_sleep(5);\n")

    started = time.monotonic()
    with pytest.raises(RetryableFailure, match="0002_slow"):
        env.invoke(env.event(slow), timeout=2.0)
    # Cancelled by PostgreSQL when the invocation's time ran out, not after the 5 s sleep.
    assert time.monotonic() - started < 3.5
    failed = env.published()[-1]["result"]
    assert failed["database"] == app and failed["status"] == "failed" and failed["retryable"] is True
    assert failed["error"]["file"] == slow and failed["error"]["sqlstate"] == "57014"
    assert "Lambda timeout" in failed["error"]["message"]
    assert failed["applied"] == [] and failed["pending"] == ["0002_slow"]
    assert _applied(env, app) == ["0001_t"]
    if not header:
        assert "public.slow" not in env.tables(app)  # rolled back with its migration

    result = env.invoke(env.event(slow), timeout=60)
    assert result["status"] == "succeeded", result
    assert result["results"][-1]["applied"] == ["0002_slow"]
    assert _applied(env, app) == ["0001_t", "0002_slow"]


@pytest.mark.parametrize(
    ("secret", "error_type"),
    [
        ("missing", "ResourceNotFoundException"),
        ("not json", "ConfigError"),
    ],
)
def test_a_secret_that_cannot_be_read_fails_every_request_with_a_published_result(migration_env, secret, error_type):
    env = migration_env
    secrets = boto3.client("secretsmanager", region_name=env.s3.meta.region_name)
    if secret == "missing":
        arn = env.settings.database.secret_arn + "-gone"
    else:
        arn = secrets.create_secret(Name=f"broken-{uuid.uuid4().hex[:8]}", SecretString="not json")["ARN"]
    settings = dataclasses.replace(env.settings, database=dataclasses.replace(env.settings.database, secret_arn=arn))
    app = env.db_name("app")
    env.put(f"{app}/0001_t.sql", "CREATE TABLE t (id int);")

    # Not retryable: Lambda's retries would meet the same secret; the failure is reported instead.
    result = env.invoke(env.event(f"{app}/0001_t.sql"), settings=settings)

    assert result["status"] == "failed"
    published = [p["result"] for p in env.published()]
    assert [(r["database"], r["status"], r["retryable"], r["error"]["type"]) for r in published] == [
        (app, "failed", False, error_type)
    ]
    assert (
        arn in published[0]["error"]["message"] or "can't find the specified secret" in published[0]["error"]["message"]
    )


def test_step_rows_of_the_previous_release_are_converted_and_resumed(migration_env, create_db_sql):
    """Earlier releases kept one row per completed statement; the first run converts them to a
    checkpoint and resumes after the last completed statement, as before."""
    env = migration_env
    a, b = env.db_name("a"), env.db_name("b")
    first = f"CREATE DATABASE {a};"
    env.query("postgres", f"CREATE DATABASE {a}")  # statement 0 ran, statement 1 had not when the run was cut off
    env.query(
        "postgres",
        "CREATE TABLE _yoyo_migration_step (migration_id varchar(191) NOT NULL, step integer NOT NULL, "
        "statement_sha256 char(64) NOT NULL, done_at timestamptz NOT NULL DEFAULT now(), "
        "PRIMARY KEY (migration_id, step))",
    )
    env.query(
        "postgres",
        "INSERT INTO _yoyo_migration_step (migration_id, step, statement_sha256) VALUES ('0001_create', 0, %s)",
        (hashlib.sha256(first.encode()).hexdigest(),),
    )
    result = env.upload("postgres/0001_create.sql", create_db_sql(a, b))
    assert result["status"] == "succeeded", result
    assert {a, b} <= env.databases()
    columns = env.query(
        "postgres",
        "SELECT column_name FROM information_schema.columns WHERE table_name = '_yoyo_migration_step' ORDER BY 1",
    )
    assert [c[0] for c in columns] == ["migration_id", "statements_done", "updated_at"]
    assert env.query("postgres", "SELECT count(*) FROM _yoyo_migration_step") == [(0,)]
