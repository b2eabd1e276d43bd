"""Fixtures of the backfill tests: a fresh database on the session's real MariaDB or PostgreSQL
server (each test runs on both), the worked example's tables filled, and a runner.

`Db.provider()` hands the runner connections the way `ManagedConnection` does in Lambda: one
connection, health-checked and reopened after the server dropped it (a killed session).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import pytest

from backfill.catalog import table_shape
from backfill.jobs import Job, parse_jobs
from backfill.results import RunReport
from backfill.runner import Runtime, run_jobs, state_table
from pipeline_common.checkpoint import CheckpointTable
from pipeline_common.db import is_alive
from pipeline_common.deadline import Deadline
from scripts import backfill_example as example

ORDERS = 3000


@dataclass
class Provider:
    """A ManagedConnection without secrets: one connection, reopened when it died."""

    connect: Callable[[], Any]
    conn: Any = None
    opened: int = 0

    def get(self) -> Any:
        if self.conn is not None and is_alive(self.conn):
            return self.conn
        self.close()
        self.conn = self.connect()
        self.opened += 1
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None


@dataclass
class Db:
    engine: str
    connect: Callable[[], Any]  # a new connection, autocommit off
    admin: Any  # autocommit connection for setup, assertions and killing sessions
    state_schema: str
    providers: list[Provider] = field(default_factory=list)

    def execute(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.admin.cursor() as cur:
            cur.execute(statement, params)
            return [tuple(row) for row in cur.fetchall()] if cur.description else []

    def scalar(self, statement: str, params: Any = None) -> Any:
        return self.execute(statement, params)[0][0]

    def provider(self) -> Provider:
        provider = Provider(self.connect)
        self.providers.append(provider)
        return provider

    @property
    def state(self) -> CheckpointTable:
        return state_table(self.state_schema)

    def jobs(self, *definitions: dict[str, Any]) -> list[Job]:
        return parse_jobs(list(definitions), self.engine)

    def run(
        self, jobs: list[Job], provider: Provider | None = None, deadline: Deadline | None = None, **runtime: Any
    ) -> RunReport:
        return run_jobs(
            jobs, provider or self.provider(), Runtime(self.state, deadline or Deadline.in_seconds(300), **runtime)
        )

    def session_id(self, conn: Any) -> int:
        return conn.get_backend_pid() if self.engine == "postgresql" else conn.thread_id()

    def kill(self, session: int) -> None:
        """End another session the way a failover or an operator does; its transaction rolls back."""
        if self.engine == "postgresql":
            self.execute("SELECT pg_terminate_backend(%s)", (session,))
        else:
            self.execute(f"KILL {int(session)}")

    def running(self, fragment: str) -> list[int]:
        """Sessions whose current statement contains `fragment`."""
        if self.engine == "postgresql":
            rows = self.execute(
                "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s AND pid <> pg_backend_pid()",
                (f"%{fragment}%",),
            )
        else:
            rows = self.execute(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE %s AND ID <> CONNECTION_ID()",
                (f"%{fragment}%",),
            )
        return [row[0] for row in rows]

    def wait_for(self, fragment: str, timeout: float = 20) -> int:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            sessions = self.running(fragment)
            if sessions:
                return sessions[0]
            time.sleep(0.01)
        raise AssertionError(f"no session ran {fragment!r} within {timeout} s")

    def archive(self) -> dict[str, list[tuple[Any, ...]]]:
        with self.admin.cursor() as cur:
            return example.archive_contents(cur)

    def expected(self) -> dict[str, list[tuple[Any, ...]]]:
        with self.admin.cursor() as cur:
            return example.expected_contents(cur)

    def checkpoint(self, name: str = example.JOB_NAME) -> Any:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                return self.state.load(cur, name) if table_shape(cur, self.state.qualified) else None
        finally:
            conn.close()


@pytest.fixture(params=["mysql", "postgresql"])
def db(request: pytest.FixtureRequest) -> Iterator[Db]:
    if request.param == "postgresql":
        server = request.getfixturevalue("pg_server")
        database = request.getfixturevalue("pg_database")

        def connect() -> Any:
            return psycopg2.connect(server.dsn(database))

        admin = connect()
        admin.autocommit = True
        schema = "pipeline_state"
    else:
        server = request.getfixturevalue("mariadb")
        database = request.getfixturevalue("mariadb_database")

        def connect() -> Any:
            return server.connect(database)

        admin = server.connect(database, autocommit=True)
        schema = database
    handle = Db(request.param, connect, admin, schema)
    yield handle
    for provider in handle.providers:
        provider.close()
    admin.close()


@pytest.fixture
def orders(db: Db) -> Db:
    """The worked example's tables with `ORDERS` orders (half in a final status)."""
    for statement in example.schema_statements(db.engine) + example.fill_statements(db.engine, ORDERS):
        db.execute(statement)
    if db.engine == "postgresql":
        db.execute("ANALYZE")
    return db


def slow_job(engine: str, seconds: float, *, statement: int = 0, **overrides: Any) -> dict[str, Any]:
    """The example job whose `statement`-th statement sleeps once per chunk (a window to kill a
    chunk in, or a chunk long enough to meet a deadline), marked `backfill-slow` in its text."""
    pause = "SELECT SLEEP({s}) AS s" if engine == "mysql" else "SELECT pg_sleep({s}) AS s"
    statements = example.statements(engine)
    slow = statements[statement].replace(
        "FROM orders o ", f"FROM orders o JOIN ({pause.format(s=seconds)}) AS backfill_slow ON 1 = 1 ", 1
    )
    statements[statement] = f"/* backfill-slow */ {slow}"
    return example.job(engine, statements=statements, **overrides)
