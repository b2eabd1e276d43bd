"""Connections to a fresh database on either engine, for the shared mechanisms that speak both."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import psycopg2
import pytest


@pytest.fixture(params=["postgresql", "mysql"])
def connect(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """`connect(autocommit=False)`: a new connection to the test's fresh database, PostgreSQL or
    MariaDB (the test runs once for each); all are closed after the test."""
    if request.param == "postgresql":
        server = request.getfixturevalue("pg_server")
        dsn = server.dsn(request.getfixturevalue("pg_database"))

        def open_one() -> Any:
            return psycopg2.connect(dsn)

    else:
        server = request.getfixturevalue("mariadb")
        database = request.getfixturevalue("mariadb_database")

        def open_one() -> Any:
            return server.connect(database)

    opened: list[Any] = []

    def make(autocommit: bool = False) -> Any:
        conn = open_one()
        if request.param == "postgresql":
            conn.autocommit = autocommit
        else:
            conn.autocommit(autocommit)
        opened.append(conn)
        return conn

    make.engine = request.param  # type: ignore[attr-defined]
    yield make
    for conn in opened:
        with contextlib.suppress(Exception):  # already closed by the test
            conn.close()
