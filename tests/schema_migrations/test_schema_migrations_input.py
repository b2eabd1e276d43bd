"""Bad input is refused before any download or SQL; configuration; connection details."""

from __future__ import annotations

import dataclasses
import getpass

import pytest

from pipeline_common.config import ConfigError, DatabaseSettings
from schema_migrations.backend import user_name, yoyo_database
from schema_migrations.config import Settings
from schema_migrations.keys import RequestRefused, parse_key


def _unreachable(env):
    """Settings whose database cannot be reached: any connection attempt would fail the run instead
    of refusing it, which proves refusals happen before SQL."""
    database = dataclasses.replace(env.settings.database, port=1, connect_timeout=1)
    return dataclasses.replace(env.settings, database=database)


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("../0001.sql", "invalid database name '..'"),
        ("../etc/0001.sql", "no nested folders"),
        ("app/../../0001.sql", "no nested folders"),
        ("app/sub/0001.sql", "no nested folders"),
        ("/app/0001.sql", "no nested folders"),
        ("app-db/0001.sql", "invalid database name 'app-db'"),
        ("1app/0001.sql", "invalid database name '1app'"),
        ("app;drop/0001.sql", "invalid database name"),
        ("app/0001.py", "migrations are .sql files"),
        ("app/0001 x.sql", "a migration id uses"),
        ("app/..sql", "a migration id uses"),
        ("app/.sql", "a migration id uses"),
        ("app/post-apply.sql", "post-apply hooks are not supported"),
    ],
)
def test_bad_keys_are_refused_before_any_sql(migration_env, key, reason):
    env = migration_env
    env.put(key, "CREATE TABLE should_not_exist (id int);")
    result = env.invoke(env.event(key), settings=_unreachable(env))
    assert result["status"] == "failed"
    [refused] = result["results"]
    assert refused["status"] == "refused" and refused["retryable"] is False
    assert reason in refused["error"]["message"] and refused["triggers"] == [key]
    assert env.published()[0]["result"]["status"] == "refused"


def test_databases_not_on_the_allow_list_are_refused_and_others_still_run(migration_env, create_db_sql):
    env = migration_env
    app, other = env.db_name("app"), env.db_name("other")
    env.put("postgres/0001_create.sql", create_db_sql(app, other))
    env.put(f"{app}/0001_t.sql", "CREATE TABLE t (id int);")
    env.put(f"{other}/0001_t.sql", "CREATE TABLE t (id int);")
    allow = dataclasses.replace(env.settings, allowed_databases=frozenset({"postgres", app}))
    result = env.invoke(env.event(f"{other}/0001_t.sql", f"{app}/0001_t.sql"), settings=allow)
    by_db = {r["database"]: r for r in result["results"]}
    assert by_db[other]["status"] == "refused" and "ALLOWED_DATABASES" in by_db[other]["error"]["message"]
    assert by_db[app]["applied"] == ["0001_t"]
    assert "public.t" not in env.tables(other)

    unreachable_allow = dataclasses.replace(_unreachable(env), allowed_databases=allow.allowed_databases)
    refused = env.invoke({"action": "migrate", "database": other}, settings=unreachable_allow)
    assert refused["results"][0]["status"] == "refused"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"action": "drop", "database": "app"}, "unknown action"),
        ({"action": "migrate", "database": "app; DROP"}, "invalid database name"),
        ({"action": "migrate", "database": 7}, "must be a string"),
        ({"action": "rollback"}, "needs a database"),
        ({"action": "rollback", "database": "app", "count": 0}, "count must be a positive integer"),
        ({"action": "rollback", "database": "app", "count": "2"}, "count must be a positive integer"),
        ({"action": "migrate", "database": "app", "dry_run": "yes"}, "dry_run must be true or false"),
        ({"action": "migrate", "databse": "app"}, "unknown field"),
    ],
)
def test_bad_operator_payloads_are_refused_before_any_sql(migration_env, payload, reason):
    env = migration_env
    result = env.invoke(payload, settings=_unreachable(env))
    [refused] = result["results"]
    assert refused["status"] == "refused" and reason in refused["error"]["message"]


def test_an_odd_key_in_the_prefix_refuses_the_database_before_download_or_sql(migration_env, create_db_sql):
    env = migration_env
    app = env.db_name("app")
    env.put("postgres/0001_create.sql", create_db_sql(app))
    env.invoke({"action": "migrate", "database": "postgres"})
    env.put(f"{app}/0001_t.sql", "CREATE TABLE t (id int);")
    env.put(f"{app}/notes/0002_u.sql", "CREATE TABLE u (id int);")
    result = env.invoke(env.event(f"{app}/0001_t.sql"))["results"][-1]
    assert result["status"] == "refused" and f"{app}/notes/0002_u.sql" in result["error"]["message"]
    assert result["files"] == 0
    assert env.tables(app) == set()  # not even yoyo's tables


def test_folder_markers_from_the_console_are_ignored(migration_env):
    env = migration_env
    env.put("app/", "")
    result = env.invoke(env.event("app/"), settings=_unreachable(env))
    assert result == {"status": "succeeded", "results": []}


def test_objects_from_another_bucket_are_refused(migration_env):
    env = migration_env
    event = env.event("app/0001.sql")
    event["Records"][0]["Sns"]["Message"] = event["Records"][0]["Sns"]["Message"].replace(env.bucket, "elsewhere")
    [refused] = env.invoke(event, settings=_unreachable(env))["results"]
    assert refused["status"] == "refused" and "not in " + env.bucket in refused["error"]["message"]


def test_password_with_url_special_characters_reaches_the_database(migration_env, create_db_sql):
    env = migration_env
    password = "p@ss:w/rd?#%&+ =x[]"
    env.query("postgres", "CREATE ROLE smt_migrator LOGIN CREATEDB PASSWORD %s", (password,))
    try:
        app = env.db_name("app")
        env.query("postgres", f'CREATE DATABASE "{app}" OWNER smt_migrator')
        arn = env.secrets._client_factory().create_secret(
            Name="migrator", SecretString=f'{{"username": "smt_migrator", "password": "{password}"}}'
        )["ARN"]
        settings = dataclasses.replace(
            env.settings, database=dataclasses.replace(env.settings.database, secret_arn=arn)
        )
        env.put(f"{app}/0001_t.sql", "CREATE TABLE t (id int);")
        result = env.invoke({"action": "migrate", "database": app}, settings=settings)
        assert result["status"] == "succeeded", result
        assert env.query(app, "SELECT tableowner FROM pg_tables WHERE tablename = 't'") == [("smt_migrator",)]
    finally:
        env.query("postgres", "DROP DATABASE IF EXISTS " + f'"{app}"' + " WITH (FORCE)")
        env.query("postgres", "DROP ROLE IF EXISTS smt_migrator")


def test_yoyo_gets_every_connection_value_exactly_as_given():
    """No URI in between: yoyo decodes a URI's user and password but not its database name, so
    `app$1` reached the server as `app%241` (issue 13)."""
    params = {
        "host": "fd00::5",
        "port": 5432,
        "database": "app$1",
        "user": "ad@min",
        "password": "a:b/c@d?e#f%g&h+ i",
    }
    database = yoyo_database(params, "verify-full", 7)
    assert (database.username, database.password, database.hostname, database.port, database.database) == (
        "ad@min",
        "a:b/c@d?e#f%g&h+ i",
        "fd00::5",
        5432,
        "app$1",
    )
    assert database.args["sslmode"] == "verify-full" and database.args["connect_timeout"] == "7"


def test_user_name_falls_back_when_getpass_cannot_tell(monkeypatch):
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)

    def no_user() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr(getpass, "getuser", no_user)
    assert user_name() == "lambda"


def test_keys_parse_into_database_and_migration_id():
    key = parse_key("app/202401011200_create_users.rollback.sql", frozenset())
    assert (key.database, key.migration_id, key.rollback) == ("app", "202401011200_create_users", True)
    with pytest.raises(RequestRefused):
        parse_key("postgres/0001.sql", frozenset({"app"}))


_ENV = {
    "MIGRATIONS_BUCKET": "b",
    "RESULTS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:results",
    "DB_HOST": "db.abc123.us-east-1.rds.amazonaws.com",
    "DB_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1",
}


def test_settings_from_environment():
    settings = Settings.from_env({**_ENV, "ALLOWED_DATABASES": "postgres, app", "LOCK_STALE_SECONDS": "60"})
    assert settings.allowed_databases == {"postgres", "app"} and settings.lock_stale_seconds == 60
    assert settings.database.sslmode == "require"
    assert Settings.from_env(_ENV).allowed_databases == frozenset()


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"DB_HOST": "mydb.proxy-abc123.us-east-1.rds.amazonaws.com"}, "DB_HOST"),
        ({"ALLOWED_DATABASES": "app,bad-name"}, "ALLOWED_DATABASES"),
        ({"LOCK_STALE_SECONDS": "0"}, "LOCK_STALE_SECONDS"),
        ({"MIGRATIONS_BUCKET": ""}, "MIGRATIONS_BUCKET"),
        ({"RESULTS_TOPIC_ARN": ""}, "RESULTS_TOPIC_ARN"),
    ],
)
def test_bad_settings_name_the_variable(overrides, variable):
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({**_ENV, **overrides})


def test_a_missing_database_is_recognised_whatever_name_the_server_quotes(monkeypatch):
    """The check used to look for the unencoded name, missed `smt_x%24y`, and the failure was
    classified retryable (issue 13)."""
    import psycopg2

    from schema_migrations import connections
    from schema_migrations.connections import Connector, DatabaseMissing

    def refuse(*args, **kwargs):
        raise psycopg2.OperationalError(
            'connection to server at "db" (10.0.0.5), port 5432 failed: FATAL:  database "smt_x%24y" does not exist'
        )

    monkeypatch.setattr(connections, "open_backend", refuse)
    monkeypatch.setattr(Connector, "params", lambda self, database: {})
    settings = DatabaseSettings(engine="postgresql", host="db", port=5432, database=None, secret_arn="arn:secret")
    with pytest.raises(DatabaseMissing) as raised:
        Connector(settings, secrets=None).backend("smt_x$y")  # type: ignore[arg-type]
    assert not raised.value.retryable
