"""Shared fixtures: real PostgreSQL and MariaDB servers, moto for AWS, ODBC connection strings.

Servers start once per test session from the installed binaries, in temporary directories on free
ports; every test that asks for a database gets a fresh one. A server that cannot start fails the
tests that need it with its log; nothing is skipped.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import psycopg2
import pytest
from moto import mock_aws

from scripts.lambda_context import LocalLambdaContext
from scripts.localdb import MariaDBServer, PostgresServer, mariadb_server, postgres_server
from scripts.localenv.moto_server import MotoServer

REGION = "us-east-1"

# No test may reach a real AWS account: fake credentials and a fixed region for the whole session.
# DynamoDB Streams calls escape moto unless account-id endpoints are disabled.
_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}
for _name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
    os.environ.pop(_name, None)
os.environ.update(_AWS_ENV)
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "tests")


# Fixtures computed once per session that several Terraform test files share: the files using them
# run in one test process (`make test` runs two, pytest-xdist --dist loadgroup) so each is computed
# once; every other file is a unit of its own, so its module fixtures are built once too.
_SHARED_TERRAFORM_FIXTURES = {"validated", "plan_root", "plans", "pipeline_secrets_plan"}


# tryfirst: xdist's worker reads the marks in its own hook, which would otherwise run before this one.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        shared = _SHARED_TERRAFORM_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        group = "terraform-shared-plans" if shared else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


def _new_database_name() -> str:
    return "t_" + uuid.uuid4().hex[:16]


@pytest.fixture
def pg_database(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's PostgreSQL server; dropped after the test."""
    name = _new_database_name()
    admin = psycopg2.connect(pg_server.dsn())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def pg_conn(pg_server: PostgresServer, pg_database: str) -> Iterator[Any]:
    """A psycopg2 connection to the test's fresh database (autocommit off)."""
    conn = psycopg2.connect(pg_server.dsn(pg_database))
    yield conn
    conn.close()


# --- MariaDB ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDBServer]:
    with mariadb_server() as server:
        yield server


@pytest.fixture
def mariadb_database(mariadb: MariaDBServer) -> Iterator[str]:
    name = _new_database_name()
    mariadb.sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        yield name
    finally:
        mariadb.sql(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def mariadb_conn(mariadb: MariaDBServer, mariadb_database: str) -> Iterator[Any]:
    conn = mariadb.connect(mariadb_database)
    yield conn
    conn.close()


# --- ODBC -------------------------------------------------------------------------------------


@pytest.fixture
def odbc_postgres(pg_server: PostgresServer, pg_database: str) -> str:
    """pyodbc connection string for the test database through psqlODBC, streaming results."""
    return (
        "DRIVER={PostgreSQL Unicode};"
        f"SERVER={pg_server.host};PORT={pg_server.port};DATABASE={pg_database};"
        f"UID={pg_server.superuser};PWD={{{pg_server.password}}};SSLmode=require;"
        "UseDeclareFetch=1;Fetch=10000"
    )


@pytest.fixture
def odbc_mariadb(mariadb: MariaDBServer, mariadb_database: str) -> str:
    return (
        "DRIVER={MariaDB Unicode};"
        f"SERVER={mariadb.host};PORT={mariadb.port};DATABASE={mariadb_database};"
        f"UID={mariadb.user};PWD={{{mariadb.password}}};CHARSET=utf8mb4"
    )


# --- AWS (moto) -------------------------------------------------------------------------------


@pytest.fixture
def aws() -> Iterator[None]:
    """moto in-process for the duration of the test."""
    with mock_aws():
        yield


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The project's moto server (scripts/localenv/moto_server.py: moto with the DMS corrections the
    AWS provider needs) on a free loopback port, for code that needs a real HTTP endpoint
    (Terraform, subprocesses). Yields the endpoint URL."""
    with MotoServer() as endpoint:
        yield endpoint


@pytest.fixture
def make_secret(aws: None) -> Callable[[dict[str, Any]], str]:
    """Create a Secrets Manager secret in moto holding the given JSON; returns its ARN."""
    client = boto3.client("secretsmanager", region_name=REGION)

    def create(value: dict[str, Any]) -> str:
        name = "test/" + uuid.uuid4().hex[:12]
        return client.create_secret(Name=name, SecretString=json.dumps(value))["ARN"]

    return create


@pytest.fixture
def lambda_context() -> Callable[..., LocalLambdaContext]:
    """Factory for a Lambda-like context: `lambda_context(timeout_seconds=30)`."""
    return LocalLambdaContext
