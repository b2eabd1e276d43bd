"""Sources and targets for the table sync tests.

`source` is parametrised over the four real ways a source is read: PostgreSQL and MariaDB, each
through pyodbc (psqlODBC, MariaDB ODBC) and through its native driver (psycopg2, PyMySQL). The
target is a second database on the session's PostgreSQL server. Connections go through
`pipeline_common.db.ManagedConnection` with secrets in moto, as in Lambda.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import psycopg2
import pytest

from pipeline_common.config import DatabaseSettings
from pipeline_common.db import ManagedConnection
from pipeline_common.deadline import Deadline
from pipeline_common.secrets import SecretCache
from table_sync.config import parse_tables
from table_sync.sync import SyncReport, run_sync

SOURCE_KINDS = ["postgresql-odbc", "postgresql-native", "mysql-odbc", "mysql-native"]


@dataclass
class Source:
    kind: str
    engine: str
    provider: ManagedConnection
    execute: Callable[..., list[tuple[Any, ...]]]
    admin: Any  # native autocommit connection for test setup and concurrent writers
    connect: Callable[[], Any]  # a fresh native connection (own transaction)

    def create_versioned(self, name: str, columns_sql: str) -> None:
        """A table with a `version` column standing in for SQL Server's rowversion."""
        if self.engine == "postgresql":
            self.execute(
                f"CREATE TABLE {name} ({columns_sql}, version bigint NOT NULL DEFAULT 0);"
                f"CREATE FUNCTION {name}_version() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "NEW.version := pg_current_xact_id()::text::bigint; RETURN NEW; END $$;"
                f"CREATE TRIGGER {name}_version BEFORE INSERT OR UPDATE ON {name} "
                f"FOR EACH ROW EXECUTE FUNCTION {name}_version()"
            )
        else:
            self.execute(
                "CREATE TABLE IF NOT EXISTS version_counter (id int PRIMARY KEY, v bigint NOT NULL);"
                "INSERT IGNORE INTO version_counter VALUES (1, 0)"
            )
            self.execute(f"CREATE TABLE {name} ({columns_sql}, version bigint NOT NULL DEFAULT 0)")
            for event in ("INSERT", "UPDATE"):
                # The counter row's lock serialises writers, so versions commit in order.
                self.execute(
                    f"CREATE TRIGGER {name}_{event.lower()} BEFORE {event} ON {name} FOR EACH ROW BEGIN "
                    "UPDATE version_counter SET v = LAST_INSERT_ID(v + 1) WHERE id = 1; "
                    "SET NEW.version = LAST_INSERT_ID(); END"
                )


def _pg_admin_execute(conn: Any) -> Callable[..., list[tuple[Any, ...]]]:
    def execute(statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []

    return execute


def _mysql_admin_execute(conn: Any) -> Callable[..., list[tuple[Any, ...]]]:
    def execute(statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        results: list[tuple[Any, ...]] = []
        with conn.cursor() as cur:
            # PyMySQL runs one statement per call unless params are given; split simple scripts.
            parts = [statement] if params is not None or "BEGIN" in statement else statement.split(";")
            for part in parts:
                if part.strip():
                    cur.execute(part, params)
                    if cur.description:
                        results = list(cur.fetchall())
        return results

    return execute


def _secrets() -> SecretCache:
    return SecretCache(lambda: boto3.client("secretsmanager"))


@pytest.fixture(params=SOURCE_KINDS)
def source(request: pytest.FixtureRequest, make_secret: Callable[[dict[str, Any]], str]) -> Iterator[Source]:
    kind: str = request.param
    engine, via = kind.split("-")
    if engine == "postgresql":
        server = request.getfixturevalue("pg_server")
        database = request.getfixturevalue("pg_database")
        settings = DatabaseSettings(
            engine="postgresql",
            host=server.host,
            port=server.port,
            database=database,
            secret_arn=make_secret(server.secret(database)),
            sslmode="require",
            odbc_driver="PostgreSQL Unicode" if via == "odbc" else None,
        )

        def connect() -> Any:
            return psycopg2.connect(server.dsn(database))

        admin = connect()
        admin.autocommit = True
        execute = _pg_admin_execute(admin)
    else:
        server = request.getfixturevalue("mariadb")
        database = request.getfixturevalue("mariadb_database")
        settings = DatabaseSettings(
            engine="mysql",
            host=server.host,
            port=server.port,
            database=database,
            secret_arn=make_secret(server.secret(database)),
            sslmode="disable",  # the test server has no TLS certificate
            odbc_driver="MariaDB Unicode" if via == "odbc" else None,
        )

        def connect() -> Any:
            return server.connect(database)

        admin = connect()
        admin.autocommit(True)
        execute = _mysql_admin_execute(admin)
    provider = ManagedConnection(settings, _secrets())
    yield Source(kind, engine, provider, execute, admin, connect)
    provider.close()
    admin.close()


@dataclass
class Target:
    provider: ManagedConnection
    conn: Any  # the test's own autocommit connection for setup and assertions
    dsn: str

    def execute(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []


@pytest.fixture
def target(pg_server: Any, make_secret: Callable[[dict[str, Any]], str]) -> Iterator[Target]:
    """A fresh target database on the session's PostgreSQL server."""
    name = "tgt_" + uuid.uuid4().hex[:12]
    admin = psycopg2.connect(pg_server.dsn())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    settings = DatabaseSettings(
        engine="postgresql",
        host=pg_server.host,
        port=pg_server.port,
        database=name,
        secret_arn=make_secret(pg_server.secret(name)),
        sslmode="require",
    )
    provider = ManagedConnection(settings, _secrets())
    conn = psycopg2.connect(pg_server.dsn(name))
    conn.autocommit = True
    try:
        yield Target(provider, conn, pg_server.dsn(name))
    finally:
        provider.close()
        conn.close()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def sync(source: Source, target: Target) -> Callable[..., SyncReport]:
    """Run the sync of the given SYNC_TABLES list against the test's source and target."""

    def run(tables: list[dict[str, Any]], deadline: Deadline | None = None, **overrides: Any) -> SyncReport:
        return run_sync(
            parse_tables(tables, source.engine),
            overrides.get("source_provider", source.provider),
            overrides.get("target_provider", target.provider),
            engine=source.engine,
            state_schema="pipeline_state",
            deadline=deadline or Deadline.in_seconds(600),
        )

    return run
