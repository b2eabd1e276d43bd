"""Every toggle combination plans: one scratch configuration instantiates the root module once per
combination, and every module under modules/ once disabled with its required inputs null, and one
`terraform plan` covers them all (an error names the module instance that failed).

The pipelines come from the root module itself: the keys of local.pipelines, each toggled by its
`enable_<pipeline>` variable. Their settings come from environments/dev.tfvars, which enables every
pipeline. A pipeline added to the table joins the matrix with no change here.

Combinations: no pipeline, each pipeline alone (a pipeline leaning on another one's resources fails
there) and all of them, each with a created and with an adopted VPC; all against an existing
database (create_database = false); all with S3 events through EventBridge instead of SNS and server
access logs to an existing bucket, without a KMS key of the module's own; the root with
create = false; the README's example. The "all" instance also sets user tags over the module's
defaults, an IAM role path and a permissions boundary. Each pipeline adds two small instances, so
the one plan grows slowly with the table.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import hcl2
import pytest

from scripts import tf_docs
from tests.terraform import tfkit

DEV_TFVARS = tfkit.REPO / "environments" / "dev.tfvars"
PIPELINES = sorted(tfkit.pipeline_table())
MODULES = sorted(p.name for p in (tfkit.REPO / "modules").iterdir() if (p / "variables.tf").is_file())

MASTER_SECRET_KEY = "arn:aws:kms:eu-west-1:111122223333:key/0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
ADOPTED_VPC = {
    "create_vpc": "false",
    "vpc_id": '"vpc-0a1b2c3d4e5f60718"',
    "vpc_cidr_block": '"10.90.0.0/16"',
    "private_subnet_ids": '["subnet-0a1b2c3d4e5f60711", "subnet-0a1b2c3d4e5f60722"]',
    "private_route_table_ids": '["rtb-0a1b2c3d4e5f60711", "rtb-0a1b2c3d4e5f60722"]',
}
EXISTING_DATABASE = {
    "create_database": "false",
    "create_db_proxy": "false",
    "db_host": '"shared-pg.cluster-c0ffee.eu-west-1.rds.amazonaws.com"',
    "db_port": "6432",
    "db_name": '"warehouse"',
    "db_master_user_secret_arn": '"arn:aws:secretsmanager:eu-west-1:111122223333:secret:rds!cluster-shared-Ab12Cd"',
    "db_master_user_secret_kms_key_arn": f'"{MASTER_SECRET_KEY}"',
    "db_security_group_id": '"sg-0a1b2c3d4e5f60799"',
}
# Every pipeline fed by S3 on EventBridge (settings objects with a `notifications` attribute),
# access logs to a bucket of the user's, and a customer key given instead of created.
EVENTBRIDGE = {
    "s3_access_logs": '{ bucket = "central-access-logs-111122223333" }',
    "create_kms_key": "false",
    "kms_key_arn": f'"{MASTER_SECRET_KEY}"',
}
CONVENTIONS = {
    # User tags win over the module's Environment and ManagedBy.
    "tags": 'merge(local.tags, { Environment = "staging", ManagedBy = "platform-team" })',
    "iam_role_path": '"/data-pipelines/"',
    "iam_role_permissions_boundary": '"arn:aws:iam::111122223333:policy/pipelines-boundary"',
}


def _toggles(enabled: set[str]) -> dict[str, str]:
    return {f"enable_{p}": "true" if p in enabled else "false" for p in PIPELINES}


def _instances() -> dict[str, dict[str, str]]:
    """Root module instances of the matrix: name -> arguments set over dev.tfvars."""
    everything = set(PIPELINES)
    instances: dict[str, dict[str, str]] = {
        "none": _toggles(set()),
        "none_adopted_vpc": {**_toggles(set()), **ADOPTED_VPC},
    }
    for pipeline in PIPELINES:
        instances[f"only_{pipeline}"] = _toggles({pipeline})
        instances[f"only_{pipeline}_adopted_vpc"] = {**_toggles({pipeline}), **ADOPTED_VPC}
    instances["all"] = {**_toggles(everything), **CONVENTIONS}
    instances["all_adopted_vpc"] = {**_toggles(everything), **ADOPTED_VPC}
    instances["all_existing_database"] = {**_toggles(everything), **ADOPTED_VPC, **EXISTING_DATABASE}
    instances["all_eventbridge"] = {**_toggles(everything), **EVENTBRIDGE, **_on_eventbridge()}
    instances["create_false"] = {**_toggles(everything), "create": "false"}
    return instances


def _on_eventbridge() -> dict[str, str]:
    """`notifications = "eventbridge"` merged into the dev settings of every pipeline that has it."""
    settings = hcl2.loads(DEV_TFVARS.read_text())
    variables = {v.name: v for v in tf_docs.read_module(tfkit.REPO)[0]}
    return {
        name: f'merge(local.{name}, {{ notifications = "eventbridge" }})'
        for name in settings
        if name in variables and "notifications" in variables[name].type
    }


INSTANCES = _instances()
DISABLED_MODULES = {f"disabled_{m}": m for m in MODULES}


def _readme_example(source: str, build_dir: Path) -> str:
    """The README's "Using the module" example as a module call named readme_example, with the
    module and the packages taken from here."""
    readme = (tfkit.REPO / "README.md").read_text()
    match = re.search(r'```hcl\n(module "pipelines" \{\n.*?\n\})\n```', readme, re.DOTALL)
    assert match, 'README.md has no ```hcl block with module "pipelines"'
    block = match.group(1).replace('module "pipelines"', 'module "readme_example"', 1)
    block = re.sub(r"(?m)^(\s*source\s*=).*$", rf'\1 "{source}"', block, count=1)
    return re.sub(r"(?m)^(\s*build_dir\s*=).*$", rf'\1 "{build_dir}"', block, count=1)


def _name(instance: str) -> str:
    """The instance's `name` (resource names must stay short and distinct)."""
    return f"m{list(INSTANCES).index(instance):02d}"


def _enabled(instance: str) -> set[str]:
    arguments = INSTANCES[instance]
    if arguments.get("create") == "false":
        return set()
    return {p for p in PIPELINES if arguments[f"enable_{p}"] == "true"}


def _configuration(tree: Path, directory: Path, build_dir: Path) -> str:
    """HCL of the matrix: dev.tfvars as locals, one root module call per instance, one call per
    building block with create = false and every required input null, and their outputs."""
    source = os.path.relpath(tree, directory)
    dev = DEV_TFVARS.read_text()
    settings = [key for key in hcl2.loads(dev) if not key.startswith("__")]
    lines = ["locals {", dev, "}", ""]
    for name, overrides in INSTANCES.items():
        arguments = {key: f"local.{key}" for key in settings}
        arguments.update(overrides)
        arguments.update(
            {
                "name": f'"{_name(name)}"',
                "environment": '"mx"',
                "build_dir": f'"{build_dir}"',
                # Offline: no IAM lookup of the account-wide DMS roles (modules/dms README).
                "verify_dms_iam_roles": "false",
            }
        )
        lines += [f'module "{name}" {{', f'  source = "{source}"']
        lines += [f"  {key} = {value}" for key, value in arguments.items()]
        lines += ["}", ""]
        lines += [
            f'output "{name}" {{',
            f"  value = {{ pipelines = module.{name}.pipelines, functions = module.{name}.functions, "
            f"network = module.{name}.network, database = module.{name}.database }}",
            "}",
            "",
        ]
    lines += [_readme_example(source, build_dir), ""]
    for name, module in DISABLED_MODULES.items():
        variables, _ = tf_docs.read_module(tfkit.REPO / "modules" / module)
        lines += [f'module "{name}" {{', f'  source = "{source}/modules/{module}"', "  create = false"]
        lines += [f"  {v.name} = null" for v in variables if v.required]
        lines += ["}", ""]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def matrix(tf_tree: Path, tf_env: dict[str, str], build_dir: Path) -> dict[str, Any]:
    directory = tf_tree.parent / "matrix"
    directory.mkdir(exist_ok=True)
    (directory / "main.tf").write_text(_configuration(tf_tree, directory, build_dir))
    tfkit.write_offline_provider(directory)
    tfkit.init(directory, tf_env)
    return tfkit.plan_json(directory, ["plan", "-refresh=false", "-lock=false", "-input=false", "-no-color"], tf_env)


def _resources(plan: dict[str, Any], instance: str) -> list[dict[str, Any]]:
    return [r for r in tfkit.resources(plan) if r["address"].startswith(f"module.{instance}.")]


def _output(plan: dict[str, Any], instance: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """An instance's outputs: (known values, after_unknown markers)."""
    change = plan["output_changes"][instance]
    return change["after"], change.get("after_unknown") or {}


def test_the_matrix_covers_every_pipeline_of_the_table(matrix: dict[str, Any]) -> None:
    assert PIPELINES, "local.pipelines is empty"
    variables = {v.name for v in tf_docs.read_module(tfkit.REPO)[0]}
    assert {f"enable_{p}" for p in PIPELINES} <= variables, "a pipeline of local.pipelines has no enable_ toggle"
    table = _output(matrix, "all")[0]["pipelines"]
    assert sorted(table) == PIPELINES
    assert all(table[p]["enabled"] and table[p]["functions"] for p in PIPELINES)
    assert {f"only_{p}" for p in PIPELINES} <= set(INSTANCES)
    assert set(MODULES) >= {"lambda_function", "network", "database", "bucket", "event_queue", *PIPELINES}


@pytest.mark.parametrize("instance", INSTANCES)
def test_each_combination_deploys_exactly_its_pipelines(instance: str, matrix: dict[str, Any]) -> None:
    enabled = _enabled(instance)
    values, _ = _output(matrix, instance)
    table = values["pipelines"]
    assert {p for p, entry in table.items() if entry["enabled"]} == enabled
    expected = {f for p in enabled for f in table[p]["functions"]}
    resources = _resources(matrix, instance)
    if not enabled:
        assert resources == [], f"{instance} creates {[r['address'] for r in resources]}"
        assert values["functions"] == {} and values["network"] is None and values["database"] is None
        return

    # The functions deployed are the enabled pipelines' (each from one of its packages, which the
    # handler names), and the `functions` output lists exactly them, each with its pipeline.
    functions = {tfkit.after(f)["function_name"]: f for f in resources if f["type"] == "aws_lambda_function"}
    assert set(values["functions"]) == expected and len(functions) == len(expected)
    for key, function in values["functions"].items():
        assert function["pipeline"] in enabled, key
        handler = tfkit.after(functions[function["function_name"]])["handler"]
        assert handler == function["handler"] and handler.split(".")[0] in table[function["pipeline"]]["packages"]

    counts = Counter(r["type"] for r in resources)
    needs_database = any(table[p]["unified_database"] for p in enabled)
    needs_network = needs_database or any(table[p]["vpc"] for p in enabled)
    adopted = INSTANCES[instance].get("create_vpc") == "false"
    created_database = needs_database and INSTANCES[instance].get("create_database") != "false"
    assert counts["aws_kms_key"] == (0 if INSTANCES[instance].get("create_kms_key") == "false" else 1)
    assert counts["aws_vpc"] == (1 if needs_network and not adopted else 0)
    assert counts["aws_security_group"] >= (1 if needs_network else 0)
    assert counts["aws_db_instance"] == (1 if created_database else 0)
    assert counts["aws_db_subnet_group"] == counts["aws_db_parameter_group"] == counts["aws_db_instance"]
    assert (values["database"] is not None) == needs_database
    if not needs_database:  # e.g. the DynamoDB migration alone: no RDS resource, no database security group
        assert not [r["address"] for r in resources if r["type"].startswith(("aws_db_", "aws_rds_"))]
        assert not [r for r in resources if r["type"] == "aws_security_group" and r["name"] == "database"]
    # Gateway endpoints besides S3's (DynamoDB's) exist exactly while an enabled pipeline needs them.
    gateways = {
        tfkit.after(r)["service_name"].rsplit(".", 1)[1]
        for r in resources
        if r["type"] == "aws_vpc_endpoint" and tfkit.after(r)["vpc_endpoint_type"] == "Gateway"
    }
    assert gateways - {"s3"} == {g for p in enabled for g in table[p]["gateway_endpoints"]}


@pytest.mark.parametrize("instance", [i for i in INSTANCES if INSTANCES[i].get("create_vpc") == "false"])
def test_an_adopted_vpc_is_used_not_created(instance: str, matrix: dict[str, Any]) -> None:
    resources = _resources(matrix, instance)
    assert not [r for r in resources if r["type"] in ("aws_vpc", "aws_subnet", "aws_route_table", "aws_flow_log")]
    subnets = sorted(re.findall(r'"(subnet-[0-9a-f]+)"', ADOPTED_VPC["private_subnet_ids"]))
    for function in (r for r in resources if r["type"] == "aws_lambda_function"):
        (vpc,) = tfkit.after(function)["vpc_config"]
        assert sorted(vpc["subnet_ids"]) == subnets, function["address"]
    for endpoint in (r for r in resources if r["type"] == "aws_vpc_endpoint"):
        assert tfkit.after(endpoint)["vpc_id"] == "vpc-0a1b2c3d4e5f60718", endpoint["address"]


@pytest.mark.parametrize("name", DISABLED_MODULES)
def test_a_disabled_module_creates_nothing_even_with_null_inputs(name: str, matrix: dict[str, Any]) -> None:
    assert _resources(matrix, name) == []


def test_an_existing_database_replaces_the_created_one(matrix: dict[str, Any]) -> None:
    """create_database = false: no RDS resource at all, every function's DB_* names the given
    database and its master secret, the given security group admits the functions on the given
    port, and each role reads exactly that secret with that key."""
    instance = "all_existing_database"
    resources = _resources(matrix, instance)
    assert not [r["address"] for r in resources if r["type"].startswith(("aws_db_", "aws_rds_"))]
    given = {k: v.strip('"') for k, v in EXISTING_DATABASE.items()}

    values, unknown = _output(matrix, instance)
    assert values["database"]["endpoint"] == values["database"]["connect_endpoint"] == given["db_host"]
    assert values["database"]["identifier"] is None
    connecting = [k for k, f in values["functions"].items() if values["pipelines"][f["pipeline"]]["unified_database"]]
    assert connecting and len(connecting) < len(values["functions"])  # the DynamoDB migration uses no database
    for key in connecting:
        # A pipeline names its database under its own prefix (DB_, BACKFILL_DB_, ...).
        environment = values["functions"][key]["environment_variables"]
        prefixes = [name.removesuffix("_SECRET_ARN") for name in environment if name.endswith("_SECRET_ARN")]
        assert prefixes, f"{key} reaches no database: {sorted(environment)}"
        for prefix in prefixes:
            assert f"{prefix}_HOST" not in unknown.get("functions", {}).get(key, {}).get("environment_variables", {})
            assert (environment[f"{prefix}_HOST"], environment[f"{prefix}_PORT"], environment[f"{prefix}_NAME"]) == (
                given["db_host"],
                given["db_port"],
                given["db_name"],
            ), key
            assert environment[f"{prefix}_SECRET_ARN"] == given["db_master_user_secret_arn"], key

    (ingress,) = [
        r for r in resources if r["type"] == "aws_vpc_security_group_ingress_rule" and r["name"] == "database"
    ]
    rule = tfkit.after(ingress)
    assert rule["security_group_id"] == given["db_security_group_id"]
    assert (rule["from_port"], rule["to_port"]) == (6432, 6432)
    assert tfkit.after_unknown(ingress).get("referenced_security_group_id") is True
    assert not [r for r in resources if r["type"] == "aws_security_group" and r["name"] == "database"]

    statements, _ = tfkit.plan_statements(matrix)
    for key in connecting:
        module = f"module.{instance}.module.{key}.module.function.data.aws_iam_policy_document.this"
        own = [s for s in statements if s.where.startswith(module)]
        reads = {r for s in own if "secretsmanager:GetSecretValue" in s.actions for r in s.resources}
        decrypts = {r for s in own if "kms:Decrypt" in s.actions for r in s.resources}
        assert given["db_master_user_secret_arn"] in reads, key
        assert given["db_master_user_secret_kms_key_arn"] in decrypts, key


def test_the_readme_example_plans(matrix: dict[str, Any]) -> None:
    resources = _resources(matrix, "readme_example")
    handlers = [tfkit.after(r)["handler"] for r in resources if r["type"] == "aws_lambda_function"]
    assert handlers == ["file_loader.handler.handler"]


def test_user_tags_win_over_the_module_defaults(matrix: dict[str, Any]) -> None:
    untagged = []
    for resource in _resources(matrix, "all"):
        values = tfkit.after(resource)
        if "tags" not in values and "tags_all" not in values:
            continue  # not taggable
        tags = values.get("tags") or {}
        if (tags.get("Environment"), tags.get("ManagedBy"), tags.get("Project"), tags.get("Owner")) != (
            "staging",
            "platform-team",
            _name("all"),
            "data-platform",
        ):
            untagged.append(f"{resource['address']}: {tags}")
    assert not untagged, "resources whose tags do not follow var.tags:\n" + "\n".join(untagged)


def test_every_role_gets_the_path_and_the_permissions_boundary(matrix: dict[str, Any]) -> None:
    roles = [r for r in _resources(matrix, "all") if r["type"] == "aws_iam_role"]
    assert len(roles) >= len([r for r in _resources(matrix, "all") if r["type"] == "aws_lambda_function"])
    for role in roles:
        values = tfkit.after(role)
        assert values["path"] == "/data-pipelines/", role["address"]
        assert values["permissions_boundary"] == "arn:aws:iam::111122223333:policy/pipelines-boundary", role["address"]


def test_every_combination_is_least_privilege(matrix: dict[str, Any]) -> None:
    statements, _ = tfkit.plan_statements(matrix)
    findings = tfkit.iam_findings(statements)
    assert not findings, "over-broad IAM statements:\n" + "\n".join(findings)


def test_s3_events_through_eventbridge_and_access_logs_to_an_existing_bucket(matrix: dict[str, Any]) -> None:
    """notifications = "eventbridge": each bucket sends its events to EventBridge, one rule per
    pipeline matches them, no SNS topic carries them; s3_access_logs names the user's bucket, so
    none is created; without a key of the module's own the buckets use SSE-S3."""
    resources = _resources(matrix, "all_eventbridge")
    # The pipelines with a `notifications` setting (the CDC lake's staging bucket is DMS's, wired by
    # its module alone).
    switched = tuple(f"module.all_eventbridge.module.{name}." for name in _on_eventbridge())
    assert len(switched) >= 2
    notified = [r for r in resources if r["type"] == "aws_s3_bucket_notification" and r["address"].startswith(switched)]
    rules = [r for r in resources if r["type"] == "aws_cloudwatch_event_rule"]
    assert len(notified) == len(switched) and all(tfkit.after(n)["eventbridge"] is True for n in notified)
    assert len(rules) == len(notified)
    topics = [r["address"] for r in resources if r["type"] == "aws_sns_topic" and ".module.events." in r["address"]]
    assert not [address for address in topics if address.startswith(switched)]
    targets = [tfkit.after(t) for t in resources if t["type"] == "aws_cloudwatch_event_target"]
    assert len(targets) == len(rules) and {t["target_id"] for t in targets} <= {"queue", "function"}
    logging = [tfkit.after(r) for r in resources if r["type"] == "aws_s3_bucket_logging"]
    assert len(logging) == len([r for r in resources if r["type"] == "aws_s3_bucket"])  # every pipeline bucket
    assert {entry["target_bucket"] for entry in logging} == {"central-access-logs-111122223333"}
    assert not [r for r in resources if r["address"].startswith("module.all_eventbridge.module.access_logs.")]
    encryption = [r for r in resources if r["type"] == "aws_s3_bucket_server_side_encryption_configuration"]
    algorithms = {
        tfkit.after(r)["rule"][0]["apply_server_side_encryption_by_default"][0]["sse_algorithm"] for r in encryption
    }
    assert algorithms == {"AES256"}


def test_buckets_use_the_modules_own_key_by_default(matrix: dict[str, Any]) -> None:
    """The module creates a key (create_kms_key): every pipeline bucket is SSE-KMS with it, known at plan time."""
    encryption = [
        r for r in _resources(matrix, "all") if r["type"] == "aws_s3_bucket_server_side_encryption_configuration"
    ]
    assert encryption
    for resource in encryption:
        (rule,) = tfkit.after(resource)["rule"]
        assert rule["apply_server_side_encryption_by_default"][0]["sse_algorithm"] == "aws:kms", resource["address"]
        assert rule["bucket_key_enabled"] is True
        unknown = tfkit.after_unknown(resource)["rule"][0]["apply_server_side_encryption_by_default"][0]
        assert unknown["kms_master_key_id"] is True  # the key created in the same plan
