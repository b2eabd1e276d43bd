"""The Lambda entry point end to end: environment variables as modules/backfill sets them, the
database secret in moto Secrets Manager, the function's own schedule in moto EventBridge
Scheduler, real MariaDB / PostgreSQL; the result, the EMF metrics, the dry run and verify."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

import pipeline_common.secrets
from backfill import handler as handler_module
from backfill.service import BadRequest
from scripts import backfill_example as example
from scripts.lambda_context import LocalLambdaContext
from tests.backfill.conftest import ORDERS, Db

SCHEDULE = "pipelines-test-backfill"


@pytest.fixture
def invoke(
    orders: Db,
    request: pytest.FixtureRequest,
    make_secret: Callable[[dict[str, Any]], str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., dict[str, Any]]]:
    """`invoke(event, jobs=None)`: the handler with the environment Terraform would set."""
    if orders.engine == "postgresql":
        server, database, sslmode = (
            request.getfixturevalue("pg_server"),
            request.getfixturevalue("pg_database"),
            "require",
        )
    else:
        server, database, sslmode = (
            request.getfixturevalue("mariadb"),
            request.getfixturevalue("mariadb_database"),
            "disable",
        )
    secret = make_secret(server.secret(database))
    scheduler = boto3.client("scheduler")
    role = "arn:aws:iam::123456789012:role/pipelines-test-backfill-sched"
    scheduler.create_schedule(
        Name=SCHEDULE,
        ScheduleExpression="rate(5 minutes)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": "arn:aws:lambda:us-east-1:123456789012:function:f", "RoleArn": role, "Input": "{}"},
    )
    environment = {
        "BACKFILL_DB_ENGINE": orders.engine,
        "BACKFILL_DB_HOST": server.host,
        "BACKFILL_DB_PORT": str(server.port),
        "BACKFILL_DB_NAME": database,
        "BACKFILL_DB_SECRET_ARN": secret,
        "BACKFILL_DB_SSLMODE": sslmode,
        "SCHEDULE_NAME": SCHEDULE,
        "POWERTOOLS_METRICS_NAMESPACE": "Pipelines/Backfill",
        "POWERTOOLS_SERVICE_NAME": "pipelines-test-backfill",
    }
    monkeypatch.setattr(pipeline_common.secrets, "_default_cache", None)

    def call(event: dict[str, Any], jobs: list[dict[str, Any]] | None = None, timeout: float = 60) -> dict[str, Any]:
        monkeypatch.setenv("BACKFILL_JOBS", json.dumps(jobs or [example.job(orders.engine)]))
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        handler_module.sandbox.reset()
        return handler_module.handler(event, LocalLambdaContext(function_name=SCHEDULE, timeout_seconds=timeout))

    yield call
    handler_module.sandbox.reset()


def _emf(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]


def test_a_scheduled_run_reports_progress_and_disables_its_schedule_when_done(
    orders: Db, invoke: Callable[..., dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    plan = invoke({"action": "plan"})
    (planned,) = plan["jobs"]
    assert planned["ok"] and planned["status"] == "not_started" and planned["next_chunk"]["hi"] == [2000]
    assert len(planned["explain"]) == 3 and all(planned["explain"])
    assert planned["estimated_chunks"] >= 1 and planned["estimated_rows"] > 0
    capsys.readouterr()

    result = invoke({"source": "schedule"})
    (job,) = result["jobs"]
    assert job["status"] == "finished" and job["rows_done"] == ORDERS and job["percent"] == 100.0
    assert result["all_finished"] and result["schedule_disabled"] is True
    assert boto3.client("scheduler").get_schedule(Name=SCHEDULE)["State"] == "DISABLED"
    assert orders.archive() == orders.expected()
    (metrics,) = _emf(capsys.readouterr().out)
    assert metrics["job"] == "order_archive" and metrics["service"] == "pipelines-test-backfill"
    assert metrics["RowsDone"] == [ORDERS] and metrics["ChunksCommitted"] == [job["chunks"]]
    assert "RowsAdvanced" not in metrics  # a finished job stops feeding the stall alarm
    namespace = metrics["_aws"]["CloudWatchMetrics"][0]
    assert namespace["Namespace"] == "Pipelines/Backfill" and namespace["Dimensions"] == [["job", "service"]]

    # Later runs (the schedule fired once more before it stopped) change nothing.
    again = invoke({"source": "schedule"})
    assert again["jobs"][0]["status"] == "done_before" and again["schedule_disabled"] is False
    assert _emf(capsys.readouterr().out) == []

    verified = invoke({"action": "verify", "range_rows": 700})
    (checked,) = verified["jobs"]
    assert checked["complete"] and checked["ranges"] == 5 and checked["mismatches"] == []
    assert checked["rows_checked"] == ORDERS and checked["verified_up_to"] == [ORDERS]

    # An archived item lost (or a source row changed after its range was copied) shows up, by range.
    orders.execute("DELETE FROM order_item_archive WHERE item_id = (SELECT MIN(item_id) FROM order_item_archive)")
    (broken,) = invoke({"action": "verify", "range_rows": 700})["jobs"]
    assert broken["ranges_mismatched"] == 1
    (mismatch,) = broken["mismatches"]
    assert mismatch["check"] == 1 and mismatch["lo"] == [0] and mismatch["hi"] == [700]
    assert mismatch["source"][0] == mismatch["target"][0] + 1


def test_an_unfinished_run_reports_an_estimate_and_feeds_the_stall_metric(
    orders: Db, invoke: Callable[..., dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.backfill.conftest import slow_job

    chunk = {"initial_rows": 200, "min_rows": 200, "max_rows": 200}
    # 15 s of Lambda time less the 15 s reserve: no time for a single chunk.
    result = invoke({}, jobs=[slow_job(orders.engine, 0.05, chunk=chunk)], timeout=15)
    (job,) = result["jobs"]
    assert job["status"] == "continues" and job["chunks"] == 0 and not result["schedule_disabled"]
    assert job["estimated_total_rows"] and job["remaining_rows"] and job["percent"] == 0.0
    (metrics,) = _emf(capsys.readouterr().out)
    assert metrics["RowsAdvanced"] == [0] and metrics["RowsRemaining"] == [job["remaining_rows"]]
    assert boto3.client("scheduler").get_schedule(Name=SCHEDULE)["State"] == "ENABLED"

    (verified,) = invoke({"action": "verify"})["jobs"]
    assert verified["complete"] and verified["ranges"] == 0 and "no rows" in verified["note"]


def test_bad_events_and_failed_jobs_fail_the_invocation(orders: Db, invoke: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(BadRequest, match="unknown action 'drop'"):
        invoke({"action": "drop"})
    with pytest.raises(BadRequest, match="unknown job"):
        invoke({"jobs": ["nope"]})
    with pytest.raises(BadRequest, match="'after'"):
        invoke({"action": "verify", "after": 5})
    broken = example.job(orders.engine, name="broken", table="missing_table")
    with pytest.raises(handler_module.BackfillFailed, match="backfill failed for broken") as raised:
        invoke({}, jobs=[example.job(orders.engine), broken])
    assert raised.value.retryable is False
    # The healthy job ran all the same, and the schedule stays on while a job is unfinished.
    assert orders.archive() == orders.expected()
    assert boto3.client("scheduler").get_schedule(Name=SCHEDULE)["State"] == "ENABLED"
