"""Retryable or permanent: the kinds pipelines raise, and real driver and AWS errors."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import psycopg2
import pymysql
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError

from pipeline_common.errors import (
    PermanentError,
    PipelineError,
    RetryableError,
    aws_error_code,
    error_message,
    is_retryable,
)

LAMBDA_SRC = Path(__file__).resolve().parents[2] / "lambda_src"


def _client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


def test_pipeline_kinds_and_instance_overrides():
    assert is_retryable(RetryableError("busy")) and not is_retryable(PermanentError("bad row"))
    assert not is_retryable(PipelineError("aggregate", retryable=False))
    assert is_retryable(PermanentError("a permanent class, retryable this time", retryable=True))
    assert RetryableError.retry_after_seconds is None


def test_aws_errors_by_code():
    for code in ("ThrottlingException", "ProvisionedThroughputExceededException", "SlowDown", "InternalServiceError"):
        assert is_retryable(_client_error(code)), code
    assert is_retryable(_client_error("Whatever", 503))
    for code in ("AccessDeniedException", "ResourceNotFoundException", "NoSuchKey", "ValidationException"):
        assert not is_retryable(_client_error(code)), code
    assert is_retryable(EndpointConnectionError(endpoint_url="https://sqs"))
    assert not is_retryable(ParamValidationError(report="bad"))
    assert is_retryable(TimeoutError()) and is_retryable(KeyError("unforeseen"))


def test_postgresql_errors_by_what_they_mean(pg_conn):
    def error_of(statement: str) -> psycopg2.Error:
        with pg_conn.cursor() as cur, pytest.raises(psycopg2.Error) as raised:
            cur.execute(statement)
        pg_conn.rollback()
        return raised.value

    assert not is_retryable(error_of("SELEC 1"))
    assert not is_retryable(error_of("SELECT 1/0"))
    assert not is_retryable(error_of("SELECT * FROM missing_table"))
    assert is_retryable(error_of("SET LOCAL statement_timeout = 50; SELECT pg_sleep(1)"))
    pg_conn.close()
    with pytest.raises(psycopg2.InterfaceError) as closed:
        pg_conn.cursor()
    assert is_retryable(closed.value)


def test_mysql_errors_by_what_they_mean(mariadb, mariadb_conn):
    with mariadb_conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id int PRIMARY KEY) ENGINE=InnoDB")
        cur.execute("INSERT INTO t VALUES (1)")
    mariadb_conn.commit()
    with mariadb_conn.cursor() as cur, pytest.raises(pymysql.err.IntegrityError) as duplicate:
        cur.execute("INSERT INTO t VALUES (1)")
    assert not is_retryable(duplicate.value)
    with mariadb_conn.cursor() as cur, pytest.raises(pymysql.err.ProgrammingError) as syntax:
        cur.execute("SELEC 1")
    assert not is_retryable(syntax.value)
    # A row lock held by another session: the lock wait timeout is worth another try.
    with mariadb_conn.cursor() as cur:
        cur.execute("UPDATE t SET id = 1 WHERE id = 1")
    other = mariadb.connect(mariadb_conn.db.decode())
    try:
        with other.cursor() as cur:
            cur.execute("SET SESSION innodb_lock_wait_timeout = 1")
            with pytest.raises(pymysql.err.OperationalError) as waited:
                cur.execute("UPDATE t SET id = 1 WHERE id = 1")
        assert waited.value.args[0] == 1205 and is_retryable(waited.value)
    finally:
        other.close()
        mariadb_conn.rollback()


def test_every_exception_a_pipeline_defines_has_a_kind():
    """The classes are found by reading the source, so a new one cannot be missed."""
    found = []
    for path in sorted(LAMBDA_SRC.rglob("*.py")):
        module_name = ".".join(path.relative_to(LAMBDA_SRC).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                module = importlib.import_module(module_name)
                cls = getattr(module, node.name, None)
                if inspect.isclass(cls) and issubclass(cls, BaseException):
                    found.append(cls)
    assert len(found) >= 23
    without_kind = [f"{c.__module__}.{c.__name__}" for c in found if not issubclass(c, PipelineError)]
    assert without_kind == []


def test_dynamodb_throttling_and_conflicts_are_retryable():
    """What a DynamoDB writer meets under load comes back later; what is about the request does not."""
    for code in (
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TransactionConflictException",
        "InternalServerError",
    ):
        assert is_retryable(_client_error(code)), code
    assert is_retryable(_client_error("ServiceUnavailable", 503))
    for code in ("ConditionalCheckFailedException", "ValidationException", "ItemCollectionSizeLimitExceededException"):
        assert not is_retryable(_client_error(code)), code
    assert aws_error_code(_client_error("ThrottlingException")) == "ThrottlingException"
    assert aws_error_code(ValueError("no response")) is None


@pytest.mark.parametrize("sslmode", ["disable", "require"])
def test_error_message_gives_the_servers_reason_for_ending_the_connection(pg_server, pg_database, sslmode):
    """Killed mid-COPY, psycopg2 raises "invalid socket" (or the TLS layer's complaint); the
    server's FATAL message is what an operator needs."""
    conn = psycopg2.connect(pg_server.dsn(pg_database, sslmode=sslmode))
    pid = conn.get_backend_pid()

    class KilledMidway:
        chunks = 0

        def read(self, size: int = -1) -> bytes:
            self.chunks += 1
            if self.chunks == 3:
                admin = psycopg2.connect(pg_server.dsn())
                admin.autocommit = True
                admin.cursor().execute("SELECT pg_terminate_backend(%s)", (pid,))
                admin.close()
            return b"1\n" * 10_000 if self.chunks < 50 else b""

    with conn.cursor() as cur:
        cur.execute("CREATE TEMPORARY TABLE t (a int)")
        with pytest.raises(psycopg2.OperationalError) as raised:
            cur.copy_expert("COPY t FROM STDIN", KilledMidway())
    message = error_message(raised.value)
    assert message.startswith("terminating connection due to administrator command ("), message
    assert str(raised.value).splitlines()[0] in message  # the client's words stay, in parentheses
    assert error_message(ValueError("plain")) == "plain"
    conn.close()
