import json
import time

import boto3
import psycopg2
import pytest

from pipeline_common import db
from pipeline_common.config import ConfigError, DatabaseSettings
from pipeline_common.db import ManagedConnection, connection_parameters, is_alive, odbc_connection_string
from pipeline_common.secrets import SecretCache


def _pg_settings(pg_server, database, secret_arn, **overrides):
    values = dict(
        engine="postgresql", host=pg_server.host, port=pg_server.port, database=database, secret_arn=secret_arn
    )
    return DatabaseSettings(**(values | overrides))


def _backend_pid(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return cur.fetchone()[0]


def test_postgres_connection_is_lazy_reused_and_uses_tls_by_default(pg_server, pg_database, make_secret):
    arn = make_secret({"username": pg_server.superuser, "password": pg_server.password})
    managed = ManagedConnection(
        _pg_settings(pg_server, pg_database, arn), SecretCache(lambda: boto3.client("secretsmanager"))
    )
    assert managed.opened == 0
    first = managed.get()
    pid = _backend_pid(first)
    with first.cursor() as cur:
        cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert cur.fetchone() == (True,)
    first.rollback()
    assert managed.get() is first
    assert _backend_pid(managed.get()) == pid
    assert managed.opened == 1
    managed.close()


def _terminate(pg_server, pid: int) -> None:
    """End the session and wait until the server is done with it, as between two invocations."""
    admin = psycopg2.connect(pg_server.dsn())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        for _ in range(500):
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
            if cur.fetchone() == (0,):
                break
            time.sleep(0.01)
    admin.close()


def test_postgres_reconnects_after_the_server_drops_the_connection(pg_server, pg_database, make_secret):
    arn = make_secret({"username": pg_server.superuser, "password": pg_server.password})
    managed = ManagedConnection(_pg_settings(pg_server, pg_database, arn))
    pid = _backend_pid(managed.get())
    _terminate(pg_server, pid)
    conn = managed.get()
    assert _backend_pid(conn) != pid
    assert managed.opened == 2
    managed.close()


def test_a_quiet_connection_is_reused_without_a_round_trip(pg_server, pg_database, make_secret, monkeypatch):
    """The health check pings only when the socket has something to read: the reason of a server
    that ended the session (previous test), or a notification."""
    arn = make_secret({"username": pg_server.superuser, "password": pg_server.password})
    managed = ManagedConnection(_pg_settings(pg_server, pg_database, arn))
    conn = managed.get()
    real_ping = db._ping_outside_transaction
    pings = []
    monkeypatch.setattr(db, "_ping_outside_transaction", lambda c: pings.append(c) or real_ping(c))
    assert managed.get() is conn and pings == []
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("LISTEN test_db_channel")
    conn.autocommit = False
    admin = psycopg2.connect(pg_server.dsn(pg_database))
    admin.autocommit = True
    admin.cursor().execute("NOTIFY test_db_channel")
    admin.close()
    for _ in range(500):
        if managed.get() is conn and pings:
            break
        time.sleep(0.01)
    assert pings == [conn] and managed.opened == 1
    managed.close()


@pytest.mark.parametrize("autocommit", [False, True])
def test_health_check_leaves_the_connection_idle_and_its_mode_unchanged(pg_server, pg_database, autocommit):
    conn = psycopg2.connect(pg_server.dsn(pg_database))
    conn.autocommit = autocommit
    assert is_alive(conn)
    assert conn.autocommit is autocommit
    assert conn.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    conn.close()
    assert not is_alive(conn)


def test_transaction_left_open_by_a_crashed_invocation_is_rolled_back(pg_server, pg_database, make_secret):
    arn = make_secret({"username": pg_server.superuser, "password": pg_server.password})
    managed = ManagedConnection(_pg_settings(pg_server, pg_database, arn))
    conn = managed.get()
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (x int)")
    conn.commit()
    with conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (1)")  # the invocation dies here, no commit
    conn = managed.get()
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM t")
        assert cur.fetchone() == (0,)


def test_rotated_password_is_refetched_once(pg_server, pg_database, make_secret):
    sm = boto3.client("secretsmanager")
    arn = make_secret({"username": "app", "password": "old-password"})
    admin = psycopg2.connect(pg_server.dsn())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("CREATE ROLE app LOGIN PASSWORD 'old-password'")
    cache = SecretCache(lambda: sm)
    managed = ManagedConnection(_pg_settings(pg_server, pg_database, arn), cache)
    managed.get()
    managed.close()
    with admin.cursor() as cur:
        cur.execute("ALTER ROLE app PASSWORD 'new-password'")
        cur.execute("DROP ROLE IF EXISTS never")
    sm.put_secret_value(SecretId=arn, SecretString=json.dumps({"username": "app", "password": "new-password"}))
    managed.get()  # the cached old password fails, the refetched one works
    assert managed.opened == 2
    managed.close()
    with admin.cursor() as cur:
        cur.execute(f'REVOKE ALL ON DATABASE "{pg_database}" FROM app')
        cur.execute("DROP ROLE app")
    admin.close()


def test_wrong_password_fails_loudly(pg_server, pg_database, make_secret):
    arn = make_secret({"username": pg_server.superuser, "password": "wrong"})
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        ManagedConnection(_pg_settings(pg_server, pg_database, arn)).get()


def test_host_and_database_may_come_from_the_secret(pg_server, pg_database, make_secret):
    arn = make_secret(pg_server.secret(pg_database))
    settings = DatabaseSettings(engine="postgresql", host=None, port=None, database=None, secret_arn=arn)
    conn = ManagedConnection(settings).get()
    with conn.cursor() as cur:
        cur.execute("SELECT current_database()")
        assert cur.fetchone() == (pg_database,)


def test_missing_connection_details_are_named():
    settings = DatabaseSettings(engine="postgresql", host=None, port=None, database="d", secret_arn="arn:s")
    with pytest.raises(ConfigError, match="lacks host, password"):
        connection_parameters(settings, {"username": "u"})


def test_mysql_connection_through_pymysql(mariadb, mariadb_database, make_secret):
    arn = make_secret({"username": mariadb.user, "password": mariadb.password})
    settings = DatabaseSettings(
        engine="mysql",
        host=mariadb.host,
        port=mariadb.port,
        database=mariadb_database,
        secret_arn=arn,
        sslmode="disable",
    )
    managed = ManagedConnection(settings)
    conn = managed.get()
    with conn.cursor() as cur:
        cur.execute("SELECT DATABASE(), @@character_set_connection")
        assert cur.fetchone() == (mariadb_database, "utf8mb4")
        cur.execute("SELECT CONNECTION_ID()")
        connection_id = cur.fetchone()[0]
    mariadb.sql(f"KILL {connection_id}")
    with managed.get().cursor() as cur:
        cur.execute("SELECT CONNECTION_ID()")
        assert cur.fetchone()[0] != connection_id
    assert managed.opened == 2


@pytest.mark.parametrize("driver", ["PostgreSQL Unicode", "MariaDB Unicode"])
def test_odbc_connections(driver, request, make_secret):
    if driver.startswith("PostgreSQL"):
        server = request.getfixturevalue("pg_server")
        database = request.getfixturevalue("pg_database")
        secret = {"username": server.superuser, "password": server.password}
        engine, sslmode = "postgresql", "require"
    else:
        server = request.getfixturevalue("mariadb")
        database = request.getfixturevalue("mariadb_database")
        secret = {"username": server.user, "password": server.password}
        engine, sslmode = "mysql", "disable"
    settings = DatabaseSettings(
        engine=engine,
        host=server.host,
        port=server.port,
        database=database,
        secret_arn=make_secret(secret),
        sslmode=sslmode,
        odbc_driver=driver,
    )
    conn = ManagedConnection(settings).get()
    cursor = conn.cursor()
    cursor.execute("SELECT 'ünïcode ✓'")
    assert cursor.fetchone()[0] == "ünïcode ✓"


def test_odbc_connection_string_escapes_values():
    settings = DatabaseSettings(engine="sqlserver", host="h", port=1433, database="d", secret_arn="s")
    text = odbc_connection_string(
        settings, {"host": "h", "port": 1433, "database": "d", "user": "u", "password": "p;w}d=x"}
    )
    assert "PWD={p;w}}d=x}" in text
    assert "DRIVER={FreeTDS}" in text
    assert "Encryption=require" in text
