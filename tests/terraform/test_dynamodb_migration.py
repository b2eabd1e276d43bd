"""modules/dynamodb_migration on its own: planned from scratch roots (every kind of target, an
existing target with an encrypted source, disabled, refused transforms) with the real package.
The root's environments plan it too (test_plan.py), and test_apply_moto.py applies it to moto with
the local environment.

The planned TRANSFORM is fed to the function's own parser, and every transform the plan refuses is
refused by the parser too: one grammar on both sides.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from dynamodb_migration.transform import TransformError, parse_transform
from tests.terraform import tfkit

REGION = "eu-west-1"
ACCOUNT = "111122223333"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
SOURCE_KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/99999999-4e5f-6071-8293-a4b5c6d7e8f9"
STREAM_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/userpreferences/stream/2024-01-01T00:00:00.000"

# Scratch roots: fixtures/dynamodb_migration/<name>/main.tf with the shared package.tf, beside a
# copy of modules/. `planned` calls the module three times (a created target with everything on, an
# existing target, create = false); `refused` takes the transform as a variable.
FIXTURES = Path(__file__).parent / "fixtures" / "dynamodb_migration"

# name: (HCL transform, JSON the parser gets, what the plan says)
REFUSED = {
    "unknown_step": ('{ copy = { a = "b" } }', '{"copy": {"a": "b"}}', "transform must be an object with keys among"),
    "rename_to_a_number": (
        "{ rename = { a = 1 } }",
        '{"rename": {"a": 1}}',
        "transform.rename must map attribute names",
    ),
    "drop_not_a_list": ('{ drop = "a" }', '{"drop": "a"}', "transform.drop must be a list of attribute names"),
    "name_in_two_steps": (
        "{ add = { a = 1 }, set = { a = 2 } }",
        '{"add": {"a": 1}, "set": {"a": 2}}',
        "use each name in one step only",
    ),
    "key_renamed": (
        '{ rename = { preferenceType = "kind" } }',
        '{"rename": {"preferenceType": "kind"}}',
        "transform must not rename, drop, add or set a key attribute",
    ),
    "key_dropped": (
        '{ drop = ["id"] }',
        '{"drop": ["id"]}',
        "transform must not rename, drop, add or set a key attribute",
    ),
}


def _root(directory: Path, fixture: str) -> Path:
    """A scratch root holding modules/ and the fixture's configuration, with an offline provider."""
    shutil.copytree(
        tfkit.REPO / "modules", directory / "modules", ignore=shutil.ignore_patterns(".terraform*", "README.md")
    )
    shutil.copy2(FIXTURES / "package.tf", directory / "package.tf")
    shutil.copy2(FIXTURES / fixture / "main.tf", directory / "main.tf")
    tfkit.write_offline_provider(directory, REGION)
    return directory


def _migration_build(build_dir: Path) -> Path:
    if "dynamodb_migration" not in json.loads((build_dir / "manifest.json").read_text())["functions"]:
        pytest.fail("build/manifest.json has no dynamodb_migration: run `make package`")
    return build_dir


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory, tf_env: dict[str, str], build_dir: Path) -> dict[str, Any]:
    root = _root(tmp_path_factory.mktemp("dynamodb-plan"), "planned")
    tfkit.init(root, tf_env)
    args = [
        "plan",
        "-refresh=false",
        "-lock=false",
        "-input=false",
        "-no-color",
        f"-var=build_dir={_migration_build(build_dir)}",
    ]
    tfkit.terraform(root, *args, "-out=tfplan", env=tf_env).check()
    return json.loads(tfkit.terraform(root, "show", "-json", "tfplan", env=tf_env).check().stdout)


def _in(plan: dict[str, Any], module: str, resource_type: str) -> list[dict[str, Any]]:
    return [r for r in tfkit.of_type(plan, resource_type) if r["address"].startswith(f"module.{module}.")]


def test_every_kind_of_target_plans_and_create_false_plans_nothing(planned: dict[str, Any]) -> None:
    assert planned["errored"] is False
    counts = {
        m: Counter(r["type"] for r in tfkit.resources(planned) if r["address"].startswith(f"module.{m}."))
        for m in ("full", "existing", "off")
    }
    assert counts["off"] == Counter()
    assert counts["full"]["aws_lambda_function"] == counts["existing"]["aws_lambda_function"] == 3
    assert counts["full"]["aws_dynamodb_table"] == 2 and counts["existing"]["aws_dynamodb_table"] == 1
    assert counts["full"]["aws_lambda_event_source_mapping"] == 1
    assert counts["full"]["aws_scheduler_schedule"] == 1 and counts["existing"]["aws_scheduler_schedule"] == 0
    assert counts["full"]["aws_cloudwatch_metric_alarm"] == 3 * 2 + 2  # errors + throttles each; iterator age, queue
    outputs = planned["planned_values"]["outputs"]
    assert outputs["off"]["value"]["functions"] == {}
    assert outputs["off"]["value"]["state_table_name"] is None


def test_the_tables_are_encrypted_recoverable_and_protected(planned: dict[str, Any]) -> None:
    tables = {tfkit.after(t)["name"]: tfkit.after(t) for t in _in(planned, "full", "aws_dynamodb_table")}
    target, state = tables["userpreferences-v2"], tables["prefs-state"]
    assert (target["hash_key"], target["range_key"]) == ("id", "preferenceType")
    assert target["billing_mode"] == "PROVISIONED" and (target["read_capacity"], target["write_capacity"]) == (5, 50)
    assert {(a["name"], a["type"]) for a in target["attribute"]} == {
        ("id", "S"),
        ("preferenceType", "S"),
        ("channel", "S"),
    }
    (index,) = target["global_secondary_index"]
    assert (index["name"], index["hash_key"], index["range_key"]) == ("by-channel", "channel", "id")
    for table in (target, state):
        assert table["server_side_encryption"] == [{"enabled": True, "kms_key_arn": KEY_ARN}]
        assert table["point_in_time_recovery"][0]["enabled"] is True
    assert target["deletion_protection_enabled"] is True
    assert state["ttl"] == [{"attribute_name": "expires_at", "enabled": True}]
    assert state["billing_mode"] == "PAY_PER_REQUEST" and state["hash_key"] == "pk"


def test_the_sync_reads_the_stream_from_the_start_with_bounded_retries(planned: dict[str, Any]) -> None:
    (mapping,) = _in(planned, "full", "aws_lambda_event_source_mapping")
    values = tfkit.after(mapping)
    assert values["event_source_arn"] == STREAM_ARN
    assert values["starting_position"] == "TRIM_HORIZON"
    assert values["function_response_types"] == ["ReportBatchItemFailures"]
    assert values["bisect_batch_on_function_error"] is True
    assert values["maximum_retry_attempts"] == 10 and values["maximum_record_age_in_seconds"] == 86400
    assert tfkit.after_unknown(mapping)["destination_config"][0]["on_failure"][0]["destination_arn"] is True
    alarms = {tfkit.after(a)["alarm_name"]: tfkit.after(a) for a in _in(planned, "full", "aws_cloudwatch_metric_alarm")}
    assert alarms["prefs-sync-iterator-age"]["metric_name"] == "IteratorAge"
    assert alarms["prefs-sync-dlq-0"]["dimensions"] == {"QueueName": "prefs-sync-failures"}
    (schedule,) = _in(planned, "full", "aws_scheduler_schedule")
    assert tfkit.after(schedule)["schedule_expression"] == "rate(5 minutes)"
    assert tfkit.after(schedule)["name"] == "prefs-copy"


def test_the_planned_transform_is_what_the_function_parses(planned: dict[str, Any]) -> None:
    # The provider plans a function's environment as a whole (unknown while the topic ARN is), so
    # read it from the module's `functions` output, where each variable is known or not on its own.
    functions = planned["output_changes"]["full"]["after"]["functions"]
    pending = planned["output_changes"]["full"]["after_unknown"]["functions"]
    assert set(functions) == {"dynamodb_migration_copy", "dynamodb_migration_sync", "dynamodb_migration_verify"}
    for key, function in functions.items():
        variables = function["environment_variables"]
        assert variables["MIGRATION_FUNCTION"] == key.removeprefix("dynamodb_migration_")
        assert variables["KEY_ATTRIBUTES"] == "id,preferenceType"
        transform = parse_transform(variables["TRANSFORM"], variables["KEY_ATTRIBUTES"].split(","))
        assert transform.rename == {"pref": "preference"}
        assert transform.add == {"channel": {"S": "email"}} and transform.set == {"schema_version": {"N": "2"}}
        assert variables["SOURCE_STREAM_ARN"] == STREAM_ARN and variables["STATE_TABLE"] == "prefs-state"
        assert variables["WRITE_RATE_LIMIT"] == "500" and variables["TOTAL_SEGMENTS"] == "8"
        assert function["handler"] == "dynamodb_migration.handler.handler"
    assert pending["dynamodb_migration_verify"]["environment_variables"]["RESULTS_TOPIC_ARN"] is True
    assert functions["dynamodb_migration_copy"]["trigger"] == "schedule"
    assert functions["dynamodb_migration_sync"]["trigger"] == "dynamodb"
    assert functions["dynamodb_migration_verify"]["trigger"] == "invoke"
    copy = {tfkit.after(f)["function_name"]: tfkit.after(f) for f in _in(planned, "full", "aws_lambda_function")}[
        "prefs-copy"
    ]
    assert copy["reserved_concurrent_executions"] == 1 and copy["timeout"] == 900


def test_each_role_names_exactly_its_tables_and_stream(planned: dict[str, Any]) -> None:
    statements, _ = tfkit.plan_statements(planned)
    assert tfkit.iam_findings(statements) == []
    by_function: dict[str, dict[str, list[str]]] = {}
    for statement in statements:
        match = re.search(r"module\.full\.module\.function\[\"(\w+)\"\]", statement.where)
        if match and statement.kind == "identity" and statement.effect == "Allow":
            for action in statement.actions:
                by_function.setdefault(match.group(1), {}).setdefault(action, []).extend(statement.resources)
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table"
    source, target, state = f"{table}/userpreferences", f"{table}/userpreferences-v2", f"{table}/prefs-state"
    dynamodb = {
        f: {a: sorted(set(r)) for a, r in actions.items() if a.startswith("dynamodb:")}
        for f, actions in by_function.items()
    }
    assert dynamodb["copy"] == {
        "dynamodb:DescribeTable": sorted([source, target]),
        "dynamodb:Scan": [source],
        "dynamodb:BatchGetItem": sorted([source, state]),
        "dynamodb:BatchWriteItem": [target],
        "dynamodb:GetItem": [state],
        "dynamodb:PutItem": [state],
        "dynamodb:UpdateItem": [state],
    }
    # The sync's document names the failure queue, unknown until apply: checked on the applied state.
    assert "sync" not in dynamodb
    assert dynamodb["verify"] == {
        "dynamodb:Scan": sorted([source, target]),
        "dynamodb:GetItem": sorted([source, target]),
        "dynamodb:BatchGetItem": sorted([source, state, target]),
        "dynamodb:BatchWriteItem": [target],
    }
    assert not any(
        "/index/" in r or r.endswith("/*") for actions in dynamodb.values() for rs in actions.values() for r in rs
    )
    for function in ("copy", "verify"):
        assert sorted(set(by_function[function]["kms:Encrypt"])) == [KEY_ARN], "the one key of the tables"


def test_an_existing_target_and_an_encrypted_source_get_their_keys(planned: dict[str, Any]) -> None:
    statements, _ = tfkit.plan_statements(planned)
    for role in ("copy", "verify"):
        where = f'module.existing.module.function["{role}"]'
        keys = {
            r
            for s in statements
            if s.where.startswith(where) and "kms:Decrypt" in s.actions and s.kind == "identity"
            for r in s.resources
        }
        assert keys >= {KEY_ARN, SOURCE_KEY_ARN}, role
    existing = planned["output_changes"]["existing"]["after"]
    assert existing["functions"]["dynamodb_migration_copy"]["environment_variables"]["TARGET_TABLE"] == "prefs-existing"
    assert existing["target_table_arn"] == f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/prefs-existing"
    (state,) = _in(planned, "existing", "aws_dynamodb_table")
    assert tfkit.after(state)["name"] == "prefs-into-existing-state"


@pytest.fixture(scope="module")
def refused(
    tmp_path_factory: pytest.TempPathFactory, tf_env: dict[str, str], build_dir: Path
) -> dict[str, tfkit.Result]:
    root = _root(tmp_path_factory.mktemp("dynamodb-refused"), "refused")
    tfkit.init(root, tf_env)
    build = _migration_build(build_dir)

    def plan(case: str) -> tfkit.Result:
        args = ["plan", "-refresh=false", "-lock=false", "-input=false", "-no-color", f"-var=build_dir={build}"]
        return tfkit.terraform(root, *args, f"-var=transform={REFUSED[case][0]}", env=tf_env)

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(REFUSED, pool.map(plan, REFUSED), strict=True))


@pytest.mark.parametrize("case", REFUSED)
def test_a_bad_transform_is_refused_by_the_plan_and_by_the_parser(case: str, refused: dict[str, tfkit.Result]) -> None:
    _, document, message = REFUSED[case]
    result = refused[case]
    output = re.sub(r"\s+", " ", (result.stderr + result.stdout).replace("│", ""))
    assert result.returncode == 1, f"{case}: the plan was not refused\n{result.stdout[-2000:]}"
    assert message in output, f"{case}: expected {message!r} in\n{output[-2000:]}"
    with pytest.raises(TransformError):
        parse_transform(document, ("id", "preferenceType"))
