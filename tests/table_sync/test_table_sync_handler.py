"""The Lambda entry point end to end: environment variables exactly as modules/table_sync sets
them, secrets in moto Secrets Manager, real sources read through ODBC (the product's path) and a
real PostgreSQL target; the returned and the logged per-table result."""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest

import pipeline_common.secrets
from table_sync import handler as handler_module

T0 = dt.datetime(2024, 3, 1, 12, 0, 0)
ODBC_SOURCES = ["postgresql-odbc", "mysql-odbc"]


def _odbc_sysini() -> str:
    """The directory holding the installed odbcinst.ini (Lambda: /opt, where the layer puts it)."""
    listing = subprocess.run(["odbcinst", "-j"], capture_output=True, text=True, check=True).stdout
    drivers = next(line for line in listing.splitlines() if line.startswith("DRIVERS"))
    return str(Path(drivers.split(":", 1)[1].strip()).parent)


def _terraform_environment(source: Any, target: Any, tables: list[dict[str, Any]]) -> dict[str, str]:
    """The function's variables as modules/table_sync/main.tf writes them (all strings)."""
    src, tgt = source.provider.settings, target.provider.settings
    return {
        "SYNC_TABLES": json.dumps(tables),
        "SOURCE_DB_ENGINE": src.engine,
        "SOURCE_DB_HOST": src.host,
        "SOURCE_DB_PORT": str(src.port),
        "SOURCE_DB_NAME": src.database,
        "SOURCE_DB_SECRET_ARN": src.secret_arn,
        "SOURCE_DB_SSLMODE": src.sslmode,
        "SOURCE_DB_ODBC_DRIVER": src.odbc_driver,
        "ODBCSYSINI": _odbc_sysini(),
        "DB_HOST": tgt.host,
        "DB_PORT": str(tgt.port),
        "DB_NAME": tgt.database,
        "DB_SECRET_ARN": tgt.secret_arn,
        "DB_SSLMODE": tgt.sslmode,
        "STATE_SCHEMA": "sync_state",
    }


class _LogLines(logging.Handler):
    """The handler's log lines as the JSON Lambda writes to CloudWatch."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))

    def results(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("message") == "table sync result"]


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Set the environment, start from a cold sandbox, capture the log; yields `configure(env)`."""
    log = _LogLines()
    log.setFormatter(handler_module.logger.registered_formatter)
    handler_module.logger.addHandler(log)
    monkeypatch.setattr(pipeline_common.secrets, "_default_cache", None)
    handler_module.sandbox.reset()

    def configure(env: dict[str, str]) -> _LogLines:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return log

    yield configure
    handler_module.sandbox.reset()
    handler_module.logger.removeHandler(log)


def _setup(source: Any, target: Any) -> str:
    source.execute(
        "CREATE TABLE items (id int PRIMARY KEY, name varchar(100), amount decimal(12, 2), "
        f"updated_at {'timestamp' if source.engine == 'postgresql' else 'datetime'}(6) NOT NULL)"
    )
    for i in range(1, 26):
        source.execute(
            "INSERT INTO items VALUES (%s, %s, %s, %s)", (i, f"item {i}", Decimal(i) / 4, T0 + dt.timedelta(seconds=i))
        )
    target.execute(
        "CREATE TABLE public.items (id int PRIMARY KEY, name text, amount numeric(12, 2), updated_at timestamp)"
    )
    # MariaDB has no schemas: the database is the qualifier.
    return "public.items" if source.engine == "postgresql" else f"{source.provider.settings.database}.items"


@pytest.mark.parametrize("source", ODBC_SOURCES, indirect=True)
def test_handler_syncs_from_terraform_environment_and_returns_and_logs_the_per_table_result(
    source, target, lambda_env, lambda_context
):
    table = {
        "source": _setup(source, target),
        "target": "public.items",
        "primary_key": ["id"],
        "cursor": {"column": "updated_at", "type": "timestamp"},
        "chunk_size": 10,
    }
    log = lambda_env(_terraform_environment(source, target, [table]))
    context = lambda_context(timeout_seconds=120)

    first = handler_module.handler({"source": "schedule"}, context)

    (result,) = first["tables"]
    assert first["finished"] is True
    assert result["duration_seconds"] >= 0
    assert {k: v for k, v in result.items() if k != "duration_seconds"} == {
        "table": "public.items",
        "source": table["source"],
        "target": "public.items",
        "status": "finished",
        "rows_read": 25,
        "rows_upserted": 25,
        "rows_deleted": 0,
        "chunks": 3,
        "watermark_before": None,
        "watermark_after": "2024-03-01T12:00:25",
        "upper_bound": None,
        "deletes": "off",
        "read_mode": "encoded",
        "error": None,
    }
    (line,) = log.results()
    assert line["result"] == first  # the logged line carries exactly what was returned
    assert line["level"] == "INFO"
    assert line["function_request_id"] == context.aws_request_id
    assert target.execute("SELECT count(*), sum(amount) FROM public.items") == [(25, Decimal("81.25"))]
    state = target.execute("SELECT watermark, position FROM sync_state.table_sync_state")
    assert state == [({"datetime": "2024-03-01T12:00:25"}, None)]

    # The next scheduled run, in the same warm sandbox: only the changes since the watermark.
    later = T0 + dt.timedelta(hours=1)
    source.execute("UPDATE items SET name = 'renamed', updated_at = %s WHERE id IN (3, 4)", (later,))
    source.execute("INSERT INTO items VALUES (26, 'new', 6.5, %s)", (later,))
    second = handler_module.handler({"source": "schedule"}, lambda_context(timeout_seconds=120))

    (result,) = second["tables"]
    assert result["status"] == "finished"
    assert result["watermark_before"] == "2024-03-01T12:00:25"
    assert result["watermark_after"] == later.isoformat()
    # The watermark's own row is read again (the bound is inclusive) but, unchanged, not rewritten.
    assert (result["rows_read"], result["rows_upserted"], result["chunks"]) == (4, 3, 1)
    assert [line["result"] for line in log.results()] == [first, second]
    assert target.execute("SELECT id FROM public.items WHERE name IN ('renamed', 'new') ORDER BY id") == [
        (3,),
        (4,),
        (26,),
    ]
    # One connection per database for the sandbox's lifetime, not one per invocation.
    box = handler_module.sandbox
    assert box.connection("source", box.settings.source).opened == 1
    assert box.connection("target", box.settings.target).opened == 1


@pytest.mark.parametrize("source", ["postgresql-odbc"], indirect=True)
def test_handler_fails_the_invocation_after_logging_when_a_table_failed(source, target, lambda_env, lambda_context):
    name = _setup(source, target)
    target.execute("CREATE TABLE public.broken (LIKE public.items INCLUDING ALL)")
    target.execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'target refuses rows'; END $$;"
        "CREATE TRIGGER refuse BEFORE INSERT ON public.broken FOR EACH ROW EXECUTE FUNCTION refuse()"
    )
    common = {"primary_key": ["id"], "cursor": {"column": "updated_at", "type": "timestamp"}}
    tables = [
        {"source": name, "target": "public.items", **common},
        {"name": "broken", "source": name, "target": "public.broken", **common},
    ]
    log = lambda_env(_terraform_environment(source, target, tables))

    with pytest.raises(handler_module.TableSyncFailed, match=r"broken \(RaiseException: target refuses rows\)"):
        handler_module.handler({"source": "schedule"}, lambda_context(timeout_seconds=120))

    (line,) = log.results()
    by_table = {t["table"]: t for t in line["result"]["tables"]}
    assert line["result"]["finished"] is False
    assert (by_table["public.items"]["status"], by_table["public.items"]["rows_upserted"]) == ("finished", 25)
    assert by_table["broken"]["status"] == "failed"
    assert by_table["broken"]["error"] == "RaiseException: target refuses rows"
    assert target.execute("SELECT count(*) FROM public.items") == [(25,)]
    assert target.execute("SELECT count(*) FROM public.broken") == [(0,)]


def test_secret_ttl_seconds_reaches_the_sandbox_secret_cache(make_secret, lambda_env):
    arn = make_secret({"username": "sync", "password": "before"})
    env = {
        "SYNC_TABLES": json.dumps(
            [
                {
                    "source": "dbo.items",
                    "target": "public.items",
                    "primary_key": "id",
                    "cursor": {"column": "v", "type": "rowversion"},
                }
            ]
        ),
        "SOURCE_DB_ENGINE": "sqlserver",
        "SOURCE_DB_HOST": "mssql.internal",
        "SOURCE_DB_NAME": "erp",
        "SOURCE_DB_SECRET_ARN": arn,
        "DB_HOST": "pg.internal",
        "DB_NAME": "unified",
        "DB_SECRET_ARN": arn,
        "SECRET_TTL_SECONDS": "0",
    }
    lambda_env(env)
    box = handler_module.sandbox
    source, target = box.connection("source", box.settings.source), box.connection("target", box.settings.target)
    cache = box.secrets()
    assert source._secrets is cache and target._secrets is cache
    assert cache.get_json(arn)["password"] == "before"
    boto3.client("secretsmanager").put_secret_value(
        SecretId=arn, SecretString=json.dumps({"username": "sync", "password": "after"})
    )
    # TTL 0: a rotated secret is read again on the next connect instead of the cached password.
    assert cache.get_json(arn)["password"] == "after"


@pytest.mark.parametrize("source", ["postgresql-odbc"], indirect=True)
def test_a_missing_source_table_fails_only_its_table_and_then_the_invocation(
    source, target, lambda_env, lambda_context
):
    name = _setup(source, target)
    target.execute("CREATE TABLE public.gone (LIKE public.items INCLUDING ALL)")
    common = {"primary_key": ["id"], "cursor": {"column": "updated_at", "type": "timestamp"}}
    tables = [
        {"name": "gone", "source": name.replace("items", "dropped"), "target": "public.gone", **common},
        {"source": name, "target": "public.items", **common},
    ]
    log = lambda_env(_terraform_environment(source, target, tables))

    with pytest.raises(handler_module.TableSyncFailed, match=r"gone \(SourceError: table gone: source table"):
        handler_module.handler({"source": "schedule"}, lambda_context(timeout_seconds=120))

    (line,) = log.results()
    by_table = {t["table"]: t for t in line["result"]["tables"]}
    assert (by_table["public.items"]["status"], by_table["public.items"]["rows_upserted"]) == ("finished", 25)
    assert by_table["gone"]["status"] == "failed"
    assert "dropped" in by_table["gone"]["error"] and "cannot be read" in by_table["gone"]["error"]
    assert target.execute("SELECT count(*) FROM public.items") == [(25,)]
