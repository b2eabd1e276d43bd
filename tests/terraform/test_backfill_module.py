"""modules/backfill planned offline from a scratch root that calls it: a MySQL database with
replicas, the unified PostgreSQL database, a created secret, a disabled call. The jobs Terraform
passes are parsed by the function's own parser (`backfill.jobs.parse_jobs`), so the two sides
cannot drift; bad job definitions are refused by the plan and by the parser, each naming the field.
The apply to moto runs with the root (test_apply_moto.py)."""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from backfill.jobs import ChunkSizing, PressureLimits, parse_jobs
from pipeline_common.config import ConfigError
from scripts import backfill_example as example
from tests.terraform import tfkit

ACCOUNT = "111122223333"
SECRET = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:backfill/shop-Ab12Cd"
SECRET_KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
TOPIC = f"arn:aws:sns:eu-west-1:{ACCOUNT}:pipelines-dev-alarms"
NETWORK = {
    "vpc_id": "vpc-0123456789abcdef0",
    "vpc_subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "vpc_security_group_ids": ["sg-0e1e2e3e4e5e6e7e8"],
}
MYSQL = {
    "engine": "mysql",
    "host": "shop-db.internal",
    "name": "shop",
    "cidr_blocks": ["10.20.0.0/24", "10.20.1.0/24"],
    "replica_hosts": ["shop-replica-1.internal", "shop-replica-2.internal:3307"],
}
UNIFIED = {
    "host": "pipelines.c0ffee.eu-west-1.rds.amazonaws.com",
    "name": "pipelines",
    "secret_arn": f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:rds!db-0a1b-Ab12Cd",
}


def _package(build: Path) -> dict[str, str]:
    entry = json.loads((build / "manifest.json").read_text())["functions"]["backfill"]
    return {
        "filename": str(build / entry["zip"]),
        "handler": entry["handler"],
        "source_code_hash": entry["source_code_hash"],
    }


def _calls(build: Path) -> dict[str, dict[str, Any]]:
    common = {"package": _package(build), "kms_key_arn": KEY, **NETWORK}
    minimal_job = {
        "name": "minimal",
        "table": "orders",
        "key": ["id"],
        "statements": example.statements("postgresql")[:1],
    }
    return {
        "mysql": {
            **common,
            "name": "pipelines-dev-backfill",
            "jobs": [example.job("mysql", max_rows_per_second=5000, start_after=["0"])],
            "source_database": MYSQL,
            "source_secret_arn": SECRET,
            "source_secret_kms_key_arn": SECRET_KEY,
            "alarm_topic_arn": TOPIC,
            "tags": {"Team": "data"},
        },
        "unified": {
            **common,
            "name": "pipelines-dev-backfill-pg",
            "jobs": [example.job("postgresql"), minimal_job],
            "database": UNIFIED,
            "state_schema": "backfill_state",
            "schedule_rate_minutes": 5,
            "timeout": 240,
            "stalled_alarm_minutes": 30,
            "disable_schedule_when_done": False,
        },
        "created_secret": {
            **common,
            "name": "pipelines-dev-backfill-new",
            "jobs": [example.job("mysql")],
            "source_database": {**MYSQL, "replica_hosts": [], "port": 3310},
            "create_alarms": False,
        },
        # Switched off with nothing else given: plans to nothing, fails on nothing.
        "disabled": {"create": False, "name": None, "package": None, "jobs": None},
    }


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory, tf_env: dict[str, str], build_dir: Path) -> dict[str, Any]:
    root = tfkit.module_root(tmp_path_factory.mktemp("backfill-plan"), "backfill", _calls(build_dir))
    tfkit.write_offline_provider(root)
    tfkit.init(root, tf_env)
    args = ("plan", "-refresh=false", "-lock=false", "-input=false", "-no-color", "-out=backfill.tfplan")
    tfkit.terraform(root, *args, env=tf_env).check()
    return json.loads(tfkit.terraform(root, "show", "-json", "backfill.tfplan", env=tf_env).check().stdout)


def _in(plan: dict[str, Any], call: str, resource_type: str) -> list[dict[str, Any]]:
    return [r for r in tfkit.of_type(plan, resource_type) if tfkit.module_of(r["address"]).startswith(f"module.{call}")]


def _function(plan: dict[str, Any], call: str) -> tuple[dict[str, Any], dict[str, str]]:
    (function,) = _in(plan, call, "aws_lambda_function")
    summary = plan["output_changes"][call]["after"]["functions"]["backfill"]
    return tfkit.after(function), summary["environment_variables"]


INVENTORY = {
    "mysql": {
        "aws_lambda_function": 1,
        "aws_scheduler_schedule": 1,
        "aws_secretsmanager_secret": 0,
        "aws_security_group": 1,
        "aws_vpc_security_group_egress_rule": 4,  # two CIDR blocks x ports 3306 (primary, replica 1), 3307
        "aws_iam_role": 2,  # the function's and the schedule's
        "aws_iam_role_policy": 3,  # the function's, the schedule's, disabling its own schedule
        "aws_cloudwatch_metric_alarm": 3,  # errors, throttles, stalled order_archive
    },
    "unified": {
        "aws_secretsmanager_secret": 0,
        "aws_security_group": 0,
        "aws_iam_role_policy": 2,
        "aws_cloudwatch_metric_alarm": 4,  # errors, throttles, two stalled jobs
    },
    "created_secret": {
        "aws_secretsmanager_secret": 1,
        "aws_vpc_security_group_egress_rule": 2,
        "aws_cloudwatch_metric_alarm": 0,
    },
    "disabled": {"aws_lambda_function": 0, "aws_scheduler_schedule": 0, "aws_iam_role": 0, "terraform_data": 0},
}


@pytest.mark.parametrize("call", INVENTORY)
def test_inventory(plan: dict[str, Any], call: str) -> None:
    counts = Counter(
        r["type"] for r in tfkit.resources(plan) if tfkit.module_of(r["address"]).startswith(f"module.{call}")
    )
    wrong = {t: (counts.get(t, 0), n) for t, n in INVENTORY[call].items() if counts.get(t, 0) != n}
    assert not wrong, f"{call}: resource counts (planned, expected) differ: {wrong}"
    if call == "disabled":
        assert not counts and plan["output_changes"]["disabled"]["after"]["functions"] == {}


def test_the_function_runs_one_at_a_time_on_a_schedule_with_its_database(plan: dict[str, Any], build_dir: Path) -> None:
    function, environment = _function(plan, "mysql")
    assert function["reserved_concurrent_executions"] == 1 and function["timeout"] == 840
    assert function["memory_size"] == 256 and function["tags"]["Team"] == "data"
    assert function["source_code_hash"] == _package(build_dir)["source_code_hash"]
    (schedule,) = _in(plan, "mysql", "aws_scheduler_schedule")
    values = tfkit.after(schedule)
    assert values["schedule_expression"] == "rate(15 minutes)" and values["state"] == "ENABLED"
    assert json.loads(values["target"][0]["input"]) == {"source": "schedule"}
    assert values["target"][0]["retry_policy"][0]["maximum_retry_attempts"] == 0
    assert {
        "BACKFILL_DB_ENGINE": "mysql",
        "BACKFILL_DB_HOST": "shop-db.internal",
        "BACKFILL_DB_PORT": "3306",
        "BACKFILL_DB_NAME": "shop",
        "BACKFILL_DB_SECRET_ARN": SECRET,
        "BACKFILL_DB_SSLMODE": "require",
        "BACKFILL_DB_REPLICA_HOSTS": "shop-replica-1.internal,shop-replica-2.internal:3307",
        "SCHEDULE_NAME": "pipelines-dev-backfill",
        "DISABLE_SCHEDULE_WHEN_DONE": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "Pipelines/Backfill",
        "POWERTOOLS_SERVICE_NAME": "pipelines-dev-backfill",
    }.items() <= environment.items()
    assert "STATE_SCHEMA" not in environment and "DB_HOST" not in environment
    rules = {
        (tfkit.after(r)["cidr_ipv4"], tfkit.after(r)["from_port"])
        for r in _in(plan, "mysql", "aws_vpc_security_group_egress_rule")
    }
    assert rules == {(c, p) for c in MYSQL["cidr_blocks"] for p in (3306, 3307)}

    _, unified = _function(plan, "unified")
    assert unified["BACKFILL_DB_HOST"] == UNIFIED["host"] and unified["BACKFILL_DB_PORT"] == "5432"
    assert unified["STATE_SCHEMA"] == "backfill_state" and unified["DISABLE_SCHEDULE_WHEN_DONE"] == "false"
    (schedule,) = _in(plan, "unified", "aws_scheduler_schedule")
    assert tfkit.after(schedule)["schedule_expression"] == "rate(5 minutes)"
    _, created = _function(plan, "created_secret")
    assert created["BACKFILL_DB_PORT"] == "3310" and "BACKFILL_DB_SECRET_ARN" not in created  # known after apply


def test_the_planned_jobs_are_what_the_function_parses(plan: dict[str, Any]) -> None:
    """The drift check: BACKFILL_JOBS as planned goes through the function's own parser, and the
    Terraform defaults of a job are the parser's."""
    _, environment = _function(plan, "mysql")
    (planned,) = parse_jobs(json.loads(environment["BACKFILL_JOBS"]), "mysql")
    (direct,) = parse_jobs([example.job("mysql", max_rows_per_second=5000, start_after=["0"])], "mysql")
    assert planned == direct
    _, environment = _function(plan, "unified")
    jobs = json.loads(environment["BACKFILL_JOBS"])
    assert all(None not in job.values() for job in jobs), "null attributes must be left out"
    full, minimal = parse_jobs(jobs, "postgresql")
    assert full == parse_jobs([example.job("postgresql")], "postgresql")[0]
    assert (minimal.chunk, minimal.pressure, minimal.verify) == (ChunkSizing(), PressureLimits(), ())
    assert minimal.idempotence == "insert_ignore" and minimal.max_rows_per_second is None


def test_least_privilege_and_the_own_schedule(plan: dict[str, Any]) -> None:
    statements, _ = tfkit.plan_statements(plan)
    mine = [s for s in statements if s.where.startswith("module.mysql.")]
    assert not tfkit.iam_findings(mine), tfkit.iam_findings(mine)
    own = [s for s in mine if s.where.startswith("module.mysql.data.aws_iam_policy_document.own_schedule")]
    by_action = {a: s for s in own for a in s.actions}
    assert set(by_action) == {"scheduler:GetSchedule", "scheduler:UpdateSchedule", "iam:PassRole"}
    assert by_action["scheduler:UpdateSchedule"].resources == ["?"]  # the schedule's ARN, known after apply
    assert by_action["iam:PassRole"].resources == ["?"]
    (document,) = [
        r
        for r in plan["resource_changes"]
        if r["address"] == "module.mysql.data.aws_iam_policy_document.own_schedule[0]"
    ]
    (pass_role,) = [s for s in document["change"]["after"]["statement"] if s["actions"] == ["iam:PassRole"]]
    assert pass_role["condition"] == [
        {"test": "StringEquals", "variable": "iam:PassedToService", "values": ["scheduler.amazonaws.com"]}
    ]
    references = tfkit.config_resources(plan, "module.mysql", "aws_iam_role_policy")
    (own_policy,) = [r for r in references if r["name"] == "own_schedule"]
    assert own_policy["expressions"]["role"]["references"][:1] == ["module.function.role_name"]
    # The function may read exactly its database's secret, decrypting only with its key.
    function_policy = [
        s for s in mine if s.where.startswith("module.mysql.module.function.data.aws_iam_policy_document.this")
    ]
    reads = {r for s in function_policy if "secretsmanager:GetSecretValue" in s.actions for r in s.resources}
    decrypts = {r for s in function_policy if "kms:Decrypt" in s.actions for r in s.resources}
    assert (reads, decrypts) == ({SECRET}, {SECRET_KEY})
    assert not [
        r
        for r in plan["resource_changes"]
        if r["address"].startswith("module.unified.data.aws_iam_policy_document.own")
    ]


def test_a_stalled_job_alarms(plan: dict[str, Any]) -> None:
    (alarm,) = [
        a for a in _in(plan, "mysql", "aws_cloudwatch_metric_alarm") if "stalled" in tfkit.after(a)["alarm_name"]
    ]
    values = tfkit.after(alarm)
    assert values["alarm_name"] == "pipelines-dev-backfill-stalled-order_archive"
    assert (values["namespace"], values["metric_name"], values["statistic"]) == (
        "Pipelines/Backfill",
        "RowsAdvanced",
        "Sum",
    )
    assert values["dimensions"] == {"job": "order_archive", "service": "pipelines-dev-backfill"}
    assert (values["period"], values["evaluation_periods"], values["threshold"]) == (3600, 1, 0)
    assert (
        values["comparison_operator"] == "LessThanOrEqualToThreshold" and values["treat_missing_data"] == "notBreaching"
    )
    assert values["alarm_actions"] == [TOPIC]
    periods = {
        tfkit.after(a)["period"]
        for a in _in(plan, "unified", "aws_cloudwatch_metric_alarm")
        if "stalled" in tfkit.after(a)["alarm_name"]
    }
    assert periods == {1800}


# --- refused at plan and by the parser, naming the field -------------------------------------


def _job(**changes: Any) -> dict[str, Any]:
    job = copy.deepcopy(example.job("mysql"))
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = job
        for part in parents:
            target = target[part]
        target[last] = value
    return job


# case: (the job (MySQL), text of the plan's message, text of the parser's message)
BAD_JOBS = {
    "name": (_job(name="Order Archive"), "jobs[*].name must be unique", "BACKFILL_JOBS[0].name"),
    "table": (_job(table="shop.orders.x"), "jobs[*].table must be the driving table", "(order_archive).table"),
    "key": (_job(key=["id", "id"]), "jobs[*].key must list 1-4 distinct column names", "(order_archive).key"),
    "range": (
        _job(statements=["INSERT IGNORE INTO order_archive (order_id) SELECT o.id FROM orders o WHERE o.id > :lo"]),
        "not in order_archive.statements[0]",
        "(order_archive).statements[0]: the statement does not use :hi",
    ),
    "idempotence": (_job(idempotence="replace"), "jobs[*].idempotence must be", "(order_archive).idempotence"),
    "chunk": (_job(chunk__max_rows=10), "jobs[*].chunk: initial_rows, min_rows and max_rows", "(order_archive).chunk"),
    "rate": (
        _job(max_rows_per_second=0),
        "jobs[*].max_rows_per_second must be above 0",
        "(order_archive).max_rows_per_second",
    ),
    "pressure": (
        _job(pressure={"pause_seconds": 0}),
        "jobs[*].pressure: thresholds must be >= 0",
        "(order_archive).pressure: 0 < pause_seconds",
    ),
    "verify": (
        _job(
            verify=[{"source": "DELETE FROM orders WHERE id > :lo AND id <= :hi", "target": "SELECT 1 WHERE :lo < :hi"}]
        ),
        "jobs[*].verify: each source and target must be a SELECT",
        "(order_archive).verify[0].source",
    ),
    "start_after": (
        _job(start_after=["1", "2"]),
        "jobs[*].start_after must hold one value per key column",
        "(order_archive).start_after",
    ),
    "not_idempotent": (
        _job(
            statements=[
                "INSERT INTO order_archive (order_id) SELECT o.id FROM orders o WHERE o.id > :lo AND o.id <= :hi"
            ]
        ),
        "order_archive.statements[0] (insert_ignore: INSERT IGNORE INTO",
        "(order_archive).statements[0]: rule 'insert_ignore' needs INSERT IGNORE",
    ),
}


# Checked by preconditions, which Terraform evaluates once the variables are valid: a plan of their own.
PRECONDITION_CASES = ("not_idempotent",)


def _diagnostics(root: Path, tf_env: dict[str, str]) -> dict[str, str]:
    """The plan's error messages by the `bad_<case>` call they name."""
    result = tfkit.terraform(root, "plan", "-refresh=false", "-lock=false", "-input=false", "-no-color", env=tf_env)
    assert result.returncode == 1, result.stdout[-3000:]
    by_case: dict[str, str] = {}
    for diagnostic in (result.stderr + result.stdout).split("Error: ")[1:]:
        text = re.sub(r"\s+", " ", diagnostic.replace("│", " "))
        found = re.search(r'module[ .]"?bad_([a-z_]+)', text)
        assert found, f"a diagnostic names no call: {text[:500]}"
        by_case[found.group(1)] = by_case.get(found.group(1), "") + text
    return by_case


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory, tf_env: dict[str, str], build_dir: Path) -> dict[str, str]:
    """Two plans of a root calling the module once per bad job (variable validations, then the
    preconditions); each call's diagnostics by case."""
    base = {
        "package": _package(build_dir),
        "kms_key_arn": KEY,
        "source_database": MYSQL,
        "source_secret_arn": SECRET,
        **NETWORK,
    }
    by_case: dict[str, str] = {}
    for stage in ("validations", "preconditions"):
        cases = [c for c in BAD_JOBS if (c in PRECONDITION_CASES) == (stage == "preconditions")]
        calls = {f"bad_{c}": {**base, "name": f"bad-{c}".replace("_", "-"), "jobs": [BAD_JOBS[c][0]]} for c in cases}
        root = tfkit.module_root(tmp_path_factory.mktemp(f"backfill-{stage}"), "backfill", calls)
        tfkit.write_offline_provider(root)
        tfkit.init(root, tf_env)
        by_case.update(_diagnostics(root, tf_env))
    return by_case


@pytest.mark.parametrize("case", BAD_JOBS)
def test_a_bad_job_is_refused_at_plan_and_at_run_time_naming_the_field(case: str, refused: dict[str, str]) -> None:
    job, plan_message, parser_message = BAD_JOBS[case]
    assert plan_message in refused.get(case, ""), f"{case}: {refused.get(case, '')[:2000]}"
    with pytest.raises(ConfigError) as raised:
        parse_jobs([job], "mysql")
    assert parser_message in str(raised.value)
