"""modules/dms planned offline (fake credentials, no API call) from a scratch root that calls it:
every source engine, the replication instance and DMS Serverless, the account-wide roles created
and reused, a disabled call; then wrong inputs refused at plan with the message that says what to
fix. The apply to moto is the local environment's (test_apply_moto.py); the missing-role check
against an IAM API is in test_dms_roles_moto.py.
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

from tests.terraform import tfkit

ACCOUNT = "111122223333"
KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
STAGING_KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/9f8e7d6c-5b4a-3928-1706-f5e4d3c2b1a0"
SECRET = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:dms/sales-source-Ab12Cd"
SECRET_KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
TOPIC = f"arn:aws:sns:eu-west-1:{ACCOUNT}:pipelines-dev-alarms"
CERTIFICATE = f"arn:aws:dms:eu-west-1:{ACCOUNT}:cert:ABCDEFGHIJKLMNOP"
S3_PREFIX_LIST = "pl-6da54004"
ENDPOINTS_GROUP = "sg-0e1e2e3e4e5e6e7e8"
SOURCE_GROUP = "sg-0a1a2a3a4a5a6a7a8"

NETWORK = {
    "vpc_id": "vpc-0123456789abcdef0",
    "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "https_egress_prefix_list_ids": [S3_PREFIX_LIST],
    "https_egress_security_group_ids": [ENDPOINTS_GROUP],
}
SOURCE = {
    "engine": "sqlserver",
    "database_name": "sales",
    "secret_arn": SECRET,
    "secret_kms_key_arn": SECRET_KEY,
    "cidr_blocks": ["10.20.0.15/32"],
}
TARGET = {"bucket_name": "pipelines-dev-staging", "bucket_folder": "cdc/sales", "kms_key_arn": STAGING_KEY}
MAPPINGS = [
    {
        "schema": "dbo",
        "table": "orders",
        "exclude_columns": ["card_number", "cvv"],
        "filters": [
            {"column": "region", "operator": "eq", "value": "EU"},
            {"column": "created_at", "operator": "between", "start": "2024-01-01", "end": "2030-01-01"},
        ],
    },
    {"schema": "dbo", "table": "customers"},
    {"schema": "dbo", "table": "tmp%", "action": "exclude"},
]

# The replication instance reading SQL Server, creating the account-wide roles, alarms on.
SQLSERVER = {
    "name": "pipelines-dev-sales",
    **NETWORK,
    "kms_key_arn": KEY,
    "replication_instance": {
        "class": "dms.r6i.large",
        "allocated_storage": 100,
        "multi_az": True,
        "preferred_maintenance_window": "sun:04:00-sun:04:30",
    },
    "source_database": SOURCE,
    "target": TARGET,
    "table_mappings": MAPPINGS,
    "change_sequence_column_name": "dms_change_seq",
    "create_dms_iam_roles": True,
    "alarm_topic_arn": TOPIC,
    "tags": {"Team": "data"},
}

CALLS: dict[str, dict[str, Any]] = {
    "sqlserver": SQLSERVER,
    # Reusing the roles, without the plan-time lookup (this plan makes no API call); Parquet.
    "mysql": {
        "name": "pipelines-dev-shop",
        **NETWORK,
        "source_database": {
            "engine": "mysql",
            "database_name": "shop",
            "secret_arn": SECRET,
            "cidr_blocks": ["10.20.1.0/24", "10.20.2.0/24"],
        },
        "target": {**TARGET, "bucket_folder": "cdc/shop", "data_format": "parquet", "compression_type": "GZIP"},
        "table_mappings": [{"schema": "shop"}],
        "verify_dms_iam_roles": False,
        "create_event_subscriptions": False,
    },
    "mariadb": {
        "name": "pipelines-dev-crm",
        **NETWORK,
        "source_database": {
            "engine": "mariadb",
            "database_name": "crm",
            "secret_arn": SECRET,
            "port": 3307,
            "security_group_ids": [SOURCE_GROUP],
        },
        "target": {**TARGET, "bucket_folder": "cdc/crm"},
        "table_mappings": [{"schema": "crm", "table": "accounts"}],
        "verify_dms_iam_roles": False,
        "alarm_topic_arn": TOPIC,
    },
    # DMS Serverless reading PostgreSQL with the server's certificate verified.
    "postgres": {
        "name": "pipelines-dev-app",
        **NETWORK,
        "kms_key_arn": KEY,
        "serverless": {"max_capacity_units": 16, "min_capacity_units": 2, "multi_az": True},
        "source_database": {
            "engine": "postgres",
            "database_name": "app",
            "secret_arn": SECRET,
            "security_group_ids": [SOURCE_GROUP],
            "ssl_mode": "verify-full",
            "certificate_arn": CERTIFICATE,
        },
        "target": {**TARGET, "bucket_folder": "cdc/app"},
        "table_mappings": [{"schema": "public", "table": "%"}],
        "verify_dms_iam_roles": False,
    },
    # Switched off with nothing else given: plans to nothing, fails on nothing.
    "disabled": {"create": False, "name": "pipelines-dev-off", "source_database": None, "target": None},
}
INSTANCES = ("sqlserver", "mysql", "mariadb")


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory, tf_env: dict[str, str]) -> dict[str, Any]:
    root = tfkit.module_root(tmp_path_factory.mktemp("dms-plan"), "dms", CALLS)
    tfkit.write_offline_provider(root)
    tfkit.init(root, tf_env)
    tfkit.terraform(
        root, "plan", "-refresh=false", "-lock=false", "-input=false", "-no-color", "-out=dms.tfplan", env=tf_env
    ).check()
    return json.loads(tfkit.terraform(root, "show", "-json", "dms.tfplan", env=tf_env).check().stdout)


def _in(plan: dict[str, Any], call: str, resource_type: str) -> list[dict[str, Any]]:
    return [r for r in tfkit.of_type(plan, resource_type) if tfkit.module_of(r["address"]) == f"module.{call}"]


def _one(plan: dict[str, Any], call: str, resource_type: str) -> dict[str, Any]:
    (resource,) = _in(plan, call, resource_type)
    return tfkit.after(resource)


def _module_config(plan: dict[str, Any], call: str) -> dict[str, Any]:
    return plan["configuration"]["root_module"]["module_calls"][call]["module"]


INVENTORY = {
    "aws_dms_replication_subnet_group": 1,
    "aws_security_group": 1,
    "aws_dms_endpoint": 1,
    "aws_dms_s3_endpoint": 1,
    "aws_iam_role_policy": 2,
}


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            "sqlserver",
            {
                "aws_dms_replication_instance": 1,
                "aws_dms_replication_task": 1,
                "aws_dms_replication_config": 0,
                "aws_dms_event_subscription": 2,
                "aws_iam_role": 5,
                "aws_iam_role_policy_attachment": 3,
                "aws_vpc_security_group_egress_rule": 3,
            },
        ),
        (
            "mysql",
            {
                "aws_dms_replication_instance": 1,
                "aws_dms_replication_task": 1,
                "aws_dms_event_subscription": 0,
                "aws_iam_role": 2,
                "aws_iam_role_policy_attachment": 0,
                "aws_vpc_security_group_egress_rule": 4,
            },
        ),
        ("mariadb", {"aws_dms_replication_instance": 1, "aws_dms_event_subscription": 2, "aws_iam_role": 2}),
        (
            "postgres",
            {
                "aws_dms_replication_config": 1,
                "aws_dms_replication_instance": 0,
                "aws_dms_replication_task": 0,
                "aws_dms_event_subscription": 0,
                "aws_iam_role": 2,
            },
        ),
    ],
)
def test_inventory(call: str, expected: dict[str, int], plan: dict[str, Any]) -> None:
    counts = Counter(r["type"] for r in tfkit.resources(plan) if tfkit.module_of(r["address"]) == f"module.{call}")
    wrong = {t: (counts.get(t, 0), n) for t, n in {**INVENTORY, **expected}.items() if counts.get(t, 0) != n}
    assert not wrong, f"{call}: resource counts (planned, expected) differ: {wrong}"
    for resource in tfkit.resources(plan):
        if tfkit.module_of(resource["address"]) == f"module.{call}" and "tags" in tfkit.after(resource):
            assert (tfkit.after(resource)["tags"] or {}).get("Team") == ("data" if call == "sqlserver" else None)


def test_a_disabled_call_plans_nothing_and_reads_nothing(plan: dict[str, Any]) -> None:
    changes = [r for r in plan["resource_changes"] if tfkit.module_of(r["address"]) == "module.disabled"]
    assert [r["type"] for r in changes if r["mode"] == "managed"] == []
    # No lookup that would call AWS (the IAM role check) either.
    assert not [r for r in changes if r["type"] == "aws_iam_roles"]
    outputs = plan["output_changes"]["disabled"]["after"]
    assert outputs["staging"] is None and outputs["replication_task_arn"] is None
    assert outputs["event_subscription_arns"] == {} and outputs["dms_iam_role_names"] == []


@pytest.mark.parametrize(
    ("call", "engine", "ssl_mode", "certificate"),
    [
        ("sqlserver", "sqlserver", "require", None),
        ("mysql", "mysql", "require", None),
        ("mariadb", "mariadb", "require", None),
        ("postgres", "postgres", "verify-full", CERTIFICATE),
    ],
)
def test_source_endpoint_logs_in_with_the_secret_over_tls(
    call: str, engine: str, ssl_mode: str, certificate: str | None, plan: dict[str, Any]
) -> None:
    endpoint = _one(plan, call, "aws_dms_endpoint")
    assert (endpoint["endpoint_type"], endpoint["engine_name"]) == ("source", engine)
    assert endpoint["endpoint_id"] == f"{CALLS[call]['name']}-source"
    assert endpoint["database_name"] == CALLS[call]["source_database"]["database_name"]
    assert endpoint["secrets_manager_arn"] == SECRET
    assert (endpoint["ssl_mode"], endpoint.get("certificate_arn")) == (ssl_mode, certificate)
    # Credentials, host and port come from the secret: none of them is in the plan (or the state).
    for attribute in ("username", "password", "server_name", "port"):
        assert endpoint.get(attribute) is None, attribute
    config = next(r for r in _module_config(plan, call)["resources"] if r["address"] == "aws_dms_endpoint.source")
    assert 'aws_iam_role.this["source"].arn' in config["expressions"]["secrets_manager_access_role_arn"]["references"]


@pytest.mark.parametrize(
    ("call", "egress"),
    [
        (
            "sqlserver",
            {
                ("tcp", 1433, "cidr_ipv4", "10.20.0.15/32"),
                ("tcp", 443, "prefix_list_id", S3_PREFIX_LIST),
                ("tcp", 443, "referenced_security_group_id", ENDPOINTS_GROUP),
            },
        ),
        (
            "mysql",
            {
                ("tcp", 3306, "cidr_ipv4", "10.20.1.0/24"),
                ("tcp", 3306, "cidr_ipv4", "10.20.2.0/24"),
                ("tcp", 443, "prefix_list_id", S3_PREFIX_LIST),
                ("tcp", 443, "referenced_security_group_id", ENDPOINTS_GROUP),
            },
        ),
        (
            "mariadb",
            {
                ("tcp", 3307, "referenced_security_group_id", SOURCE_GROUP),
                ("tcp", 443, "prefix_list_id", S3_PREFIX_LIST),
                ("tcp", 443, "referenced_security_group_id", ENDPOINTS_GROUP),
            },
        ),
        (
            "postgres",
            {
                ("tcp", 5432, "referenced_security_group_id", SOURCE_GROUP),
                ("tcp", 443, "prefix_list_id", S3_PREFIX_LIST),
                ("tcp", 443, "referenced_security_group_id", ENDPOINTS_GROUP),
            },
        ),
    ],
)
def test_own_security_group_reaches_only_the_source_and_the_endpoints(
    call: str, egress: set[tuple[str, int, str, str]], plan: dict[str, Any]
) -> None:
    group = _one(plan, call, "aws_security_group")
    assert group["vpc_id"] == NETWORK["vpc_id"]
    # Rules are separate resources, none inline: the provider removes AWS's default allow-all egress.
    config = next(r for r in _module_config(plan, call)["resources"] if r["address"] == "aws_security_group.this")
    assert not {"egress", "ingress"} & set(config["expressions"])
    assert _in(plan, call, "aws_vpc_security_group_ingress_rule") == []
    planned = set()
    for rule in _in(plan, call, "aws_vpc_security_group_egress_rule"):
        values = tfkit.after(rule)
        assert values["from_port"] == values["to_port"]
        (target,) = [k for k in ("cidr_ipv4", "prefix_list_id", "referenced_security_group_id") if values.get(k)]
        planned.add((values["ip_protocol"], values["from_port"], target, values[target]))
    assert planned == egress


@pytest.mark.parametrize("call", INSTANCES)
def test_replication_instance_is_private_and_encrypted(call: str, plan: dict[str, Any]) -> None:
    instance = _one(plan, call, "aws_dms_replication_instance")
    assert instance["publicly_accessible"] is False
    assert instance["replication_instance_id"] == CALLS[call]["name"]
    assert instance["allow_major_version_upgrade"] is False
    settings = {
        **{"class": "dms.t3.medium", "allocated_storage": 50, "multi_az": False},
        **CALLS[call].get("replication_instance", {}),
    }
    assert instance["replication_instance_class"] == settings["class"]
    assert instance["allocated_storage"] == settings["allocated_storage"]
    assert instance["multi_az"] is settings["multi_az"]
    assert instance["auto_minor_version_upgrade"] is True
    assert instance.get("preferred_maintenance_window") == settings.get("preferred_maintenance_window")
    assert instance.get("kms_key_arn") == CALLS[call].get("kms_key_arn")


@pytest.mark.parametrize("call", ["sqlserver", "mysql", "mariadb", "postgres"])
def test_target_writes_the_staging_folder_with_op_timestamps_and_sse_kms(call: str, plan: dict[str, Any]) -> None:
    target = CALLS[call]["target"]
    endpoint = _one(plan, call, "aws_dms_s3_endpoint")
    assert (endpoint["endpoint_type"], endpoint["bucket_name"]) == ("target", target["bucket_name"])
    assert endpoint["bucket_folder"] == target["bucket_folder"]
    assert endpoint["data_format"] == target.get("data_format", "csv")
    assert endpoint.get("parquet_version") == ("parquet-2-0" if target.get("data_format") == "parquet" else None)
    assert endpoint["compression_type"] == target.get("compression_type", "NONE")
    assert endpoint["add_column_name"] is True
    assert endpoint["include_op_for_full_load"] is True
    assert endpoint["timestamp_column_name"] == "dms_commit_ts"
    assert endpoint["use_task_start_time_for_full_load_timestamp"] is True
    assert (endpoint["cdc_max_batch_interval"], endpoint["cdc_min_file_size"]) == (60, 32000)
    assert endpoint["date_partition_enabled"] is False
    assert endpoint["encryption_mode"] == "SSE_KMS"
    assert endpoint["server_side_encryption_kms_key_id"] == STAGING_KEY
    # Left to DMS's defaults: every change is written, inserts and updates alike.
    assert not endpoint.get("cdc_inserts_and_updates") and not endpoint.get("cdc_inserts_only")


def test_table_mappings_and_task_settings(plan: dict[str, Any]) -> None:
    task = _one(plan, "sqlserver", "aws_dms_replication_task")
    assert task["migration_type"] == "full-load-and-cdc"
    assert task["start_replication_task"] is False
    rules = json.loads(task["table_mappings"])["rules"]
    assert [r["rule-id"] for r in rules] == ["1", "2", "3", "4", "5", "6"]
    assert len({r["rule-name"] for r in rules}) == len(rules)
    selections = [
        (r["object-locator"]["schema-name"], r["object-locator"]["table-name"], r["rule-action"])
        for r in rules
        if r["rule-type"] == "selection"
    ]
    assert selections == [("dbo", "orders", "include"), ("dbo", "customers", "include"), ("dbo", "tmp%", "exclude")]
    assert rules[0]["filters"] == [
        {
            "filter-type": "source",
            "column-name": "region",
            "filter-conditions": [{"filter-operator": "eq", "value": "EU"}],
        },
        {
            "filter-type": "source",
            "column-name": "created_at",
            "filter-conditions": [
                {"filter-operator": "between", "start-value": "2024-01-01", "end-value": "2030-01-01"}
            ],
        },
    ]
    assert "filters" not in rules[1]
    removed = [
        (r["object-locator"]["table-name"], r["object-locator"]["column-name"])
        for r in rules
        if r["rule-action"] == "remove-column"
    ]
    assert removed == [("orders", "card_number"), ("orders", "cvv")]
    (sequence,) = [r for r in rules if r["rule-action"] == "add-column"]
    assert (sequence["value"], sequence["expression"]) == ("dms_change_seq", "$AR_H_CHANGE_SEQ")
    assert sequence["object-locator"] == {"schema-name": "%", "table-name": "%"}

    settings = json.loads(task["replication_task_settings"])
    assert settings["Logging"]["EnableLogging"] is True
    assert {c["Id"] for c in settings["Logging"]["LogComponents"]} >= {"SOURCE_CAPTURE", "TARGET_APPLY", "TASK_MANAGER"}
    assert settings["FullLoadSettings"]["TargetTablePrepMode"] == "DO_NOTHING"
    assert _one(plan, "mysql", "aws_dms_replication_task")["table_mappings"] == json.dumps(
        {
            "rules": [
                {
                    "object-locator": {"schema-name": "shop", "table-name": "%"},
                    "rule-action": "include",
                    "rule-id": "1",
                    "rule-name": "include-1",
                    "rule-type": "selection",
                }
            ]
        },
        separators=(",", ":"),
    )


def test_serverless_replication_config(plan: dict[str, Any]) -> None:
    config = _one(plan, "postgres", "aws_dms_replication_config")
    assert config["replication_config_identifier"] == "pipelines-dev-app"
    assert config["replication_type"] == "full-load-and-cdc"
    assert config["start_replication"] is False
    assert json.loads(config["replication_settings"])["Logging"]["EnableLogging"] is True
    assert json.loads(config["table_mappings"])["rules"][0]["object-locator"] == {
        "schema-name": "public",
        "table-name": "%",
    }
    (compute,) = config["compute_config"]
    assert (compute["max_capacity_units"], compute["min_capacity_units"], compute["multi_az"]) == (16, 2, True)
    assert compute["kms_key_id"] == KEY
    expressions = next(
        r for r in _module_config(plan, "postgres")["resources"] if r["address"] == "aws_dms_replication_config.this"
    )["expressions"]["compute_config"][0]
    assert "aws_security_group.this" in expressions["vpc_security_group_ids"]["references"]
    assert "aws_dms_replication_subnet_group.this" in expressions["replication_subnet_group_id"]["references"]


def test_account_wide_roles_are_created_only_when_asked(plan: dict[str, Any]) -> None:
    roles = {tfkit.after(r)["name"]: tfkit.after(r) for r in _in(plan, "sqlserver", "aws_iam_role")}
    assert {"dms-vpc-role", "dms-cloudwatch-logs-role", "dms-access-for-endpoint"} <= set(roles)
    for name in ("dms-vpc-role", "dms-cloudwatch-logs-role"):
        principals = [s["Principal"] for s in json.loads(roles[name]["assume_role_policy"])["Statement"]]
        assert principals == [{"Service": "dms.amazonaws.com"}]
    attachments = {
        tfkit.after(r)["role"]: tfkit.after(r)["policy_arn"]
        for r in _in(plan, "sqlserver", "aws_iam_role_policy_attachment")
    }
    assert attachments == {
        "dms-vpc-role": "arn:aws:iam::aws:policy/service-role/AmazonDMSVPCManagementRole",
        "dms-cloudwatch-logs-role": "arn:aws:iam::aws:policy/service-role/AmazonDMSCloudWatchLogsRole",
        "dms-access-for-endpoint": "arn:aws:iam::aws:policy/service-role/AmazonDMSRedshiftS3Role",
    }
    for call in ("mysql", "mariadb", "postgres"):
        names = {tfkit.after(r)["name"] for r in _in(plan, call, "aws_iam_role")}
        assert names == {f"{CALLS[call]['name']}-dms-source", f"{CALLS[call]['name']}-dms-target"}
    outputs = plan["output_changes"]
    assert sorted(outputs["sqlserver"]["after"]["dms_iam_role_names"]) == sorted(
        roles.keys() & {"dms-vpc-role", "dms-cloudwatch-logs-role", "dms-access-for-endpoint"}
    )
    assert outputs["mysql"]["after"]["dms_iam_role_names"] == ["dms-vpc-role", "dms-cloudwatch-logs-role"]
    assert outputs["postgres"]["after"]["dms_iam_role_names"] == ["dms-vpc-role"]


def test_replication_waits_for_the_roles_policies(plan: dict[str, Any]) -> None:
    """IAM is eventually consistent: the subnet group waits for dms-vpc-role's policy, the task and
    the serverless config for every policy they run with."""
    for call, address in (
        ("sqlserver", "aws_dms_replication_task.this"),
        ("postgres", "aws_dms_replication_config.this"),
    ):
        config = next(r for r in _module_config(plan, call)["resources"] if r["address"] == address)
        assert {
            "aws_iam_role_policy_attachment.global",
            "aws_iam_role_policy.this",
        } <= set(config["depends_on"])
    subnet_group = next(
        r
        for r in _module_config(plan, "sqlserver")["resources"]
        if r["address"] == "aws_dms_replication_subnet_group.this"
    )
    assert "aws_iam_role_policy_attachment.global" in subnet_group["depends_on"]


def test_iam_least_privilege(plan: dict[str, Any]) -> None:
    statements, _ = tfkit.plan_statements(plan)
    findings = tfkit.iam_findings(statements)
    assert not findings, "over-broad IAM statements:\n" + "\n".join(findings)

    def granted(call: str, policy: str) -> dict[str, set[str]]:
        """action -> resources granted by the module's policy document."""
        where = f'module.{call}.aws_iam_role_policy.this["{policy}"].policy'
        own = [s for s in statements if s.where == where]
        assert own, where
        return {action: set(s.resources) for s in own for action in s.actions}

    bucket = "arn:aws:s3:::pipelines-dev-staging"
    assert granted("sqlserver", "target") == {
        "s3:PutObject": {f"{bucket}/cdc/sales/*"},
        "s3:PutObjectTagging": {f"{bucket}/cdc/sales/*"},
        "s3:DeleteObject": {f"{bucket}/cdc/sales/*"},
        "s3:ListBucket": {bucket},
        "kms:GenerateDataKey": {STAGING_KEY},
        "kms:Decrypt": {STAGING_KEY},
    }
    assert granted("sqlserver", "source") == {
        "secretsmanager:GetSecretValue": {SECRET},
        "kms:Decrypt": {SECRET_KEY},
    }
    # Its secret uses aws/secretsmanager: no key to grant.
    assert granted("mysql", "source") == {"secretsmanager:GetSecretValue": {SECRET}}

    # Keys are used through their service only; the roles trust DMS acting for this account only.
    policies = {
        tfkit.after(r)["name"]: json.loads(tfkit.after(r)["policy"])
        for r in _in(plan, "sqlserver", "aws_iam_role_policy")
    }
    for name, service in (
        ("pipelines-dev-sales-dms-target", "s3"),
        ("pipelines-dev-sales-dms-source", "secretsmanager"),
    ):
        (kms,) = [st for st in policies[name]["Statement"] if "kms:Decrypt" in st["Action"]]
        assert kms["Condition"] == {"StringEquals": {"kms:ViaService": f"{service}.eu-west-1.amazonaws.com"}}, name
    # The account is read from the security group at apply, so the trust documents are read then.
    documents = {
        c["address"]: c["change"]["after"] for c in plan["resource_changes"] if c["type"] == "aws_iam_policy_document"
    }
    for role, principals in (
        ("source", ["dms.eu-west-1.amazonaws.com", "dms.amazonaws.com"]),
        ("target", ["dms.amazonaws.com"]),
    ):
        (trust,) = documents[f'module.sqlserver.data.aws_iam_policy_document.assume["{role}"]']["statement"]
        assert sorted(trust["principals"][0]["identifiers"]) == sorted(principals)
        assert trust["condition"][0]["variable"] == "aws:SourceAccount"


def test_event_subscriptions_go_to_the_alarm_topic(plan: dict[str, Any]) -> None:
    subscriptions = {
        tfkit.after(r)["source_type"]: tfkit.after(r) for r in _in(plan, "sqlserver", "aws_dms_event_subscription")
    }
    assert set(subscriptions) == {"replication-instance", "replication-task"}
    assert sorted(subscriptions["replication-instance"]["event_categories"]) == ["failover", "failure", "low storage"]
    assert sorted(subscriptions["replication-task"]["event_categories"]) == ["failure", "state change"]
    for subscription in subscriptions.values():
        assert subscription["sns_topic_arn"] == TOPIC and subscription["enabled"] is True


def test_staging_output_describes_what_dms_writes(plan: dict[str, Any]) -> None:
    staging = plan["output_changes"]["sqlserver"]["after"]["staging"]
    assert staging == {
        "bucket": "pipelines-dev-staging",
        "folder": "cdc/sales",
        "data_format": "csv",
        "compression_type": "NONE",
        "header": True,
        "timestamp_column_name": "dms_commit_ts",
        "change_sequence_column_name": "dms_change_seq",
        "kms_key_arn": STAGING_KEY,
    }


################################################################################
# Wrong inputs are refused at plan
################################################################################


def _case(**changes: Any) -> dict[str, Any]:
    """SQLSERVER with some arguments replaced; `source_database`/`target` dicts are merged."""
    arguments = dict(SQLSERVER)
    for name, value in changes.items():
        arguments[name] = {**arguments[name], **value} if name in ("source_database", "target") and value else value
    return arguments


def _mapping(**changes: Any) -> list[dict[str, Any]]:
    return [{**MAPPINGS[0], **changes}]


REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "engine_unknown": (
        _case(source_database={"engine": "oracle"}),
        "source_database.engine must be sqlserver, mysql, mariadb or postgres",
    ),
    "timestamp_column_empty": (
        _case(target={"timestamp_column_name": ""}),
        "target.timestamp_column_name must be a non-empty column name",
    ),
    "timestamp_column_not_a_name": (
        _case(target={"timestamp_column_name": "commit ts"}),
        "target.timestamp_column_name must be a non-empty column name",
    ),
    "no_table_mappings": (_case(table_mappings=[]), "table_mappings must include at least one table"),
    "only_excludes": (
        _case(table_mappings=[{"schema": "dbo", "action": "exclude"}]),
        "table_mappings must include at least one table",
    ),
    "mapping_table_not_a_name": (
        _case(table_mappings=_mapping(table="orders; drop table x")),
        "every schema and table must be a name",
    ),
    "mapping_schema_empty": (_case(table_mappings=_mapping(schema="")), "every schema and table must be a name"),
    "mapping_action_unknown": (_case(table_mappings=_mapping(action="copy")), "action must be include or exclude"),
    "mapping_twice": (_case(table_mappings=[MAPPINGS[1], MAPPINGS[1]]), "a schema and table appear twice"),
    "excluded_table_with_filters": (
        _case(table_mappings=[{"schema": "dbo", "table": "x", "action": "exclude", "exclude_columns": ["a"]}]),
        "exclude_columns and filters apply to include entries only",
    ),
    "filter_between_without_end": (
        _case(table_mappings=_mapping(filters=[{"column": "id", "operator": "between", "start": "1"}])),
        "between or notbetween with start and end",
    ),
    "filter_operator_unknown": (
        _case(table_mappings=_mapping(filters=[{"column": "id", "operator": "like", "value": "1%"}])),
        "a filter operator must be eq, noteq, gte or ste with a value",
    ),
    "tls_off": (_case(source_database={"ssl_mode": "none"}), "TLS is mandatory"),
    "verify_full_without_certificate": (
        _case(source_database={"ssl_mode": "verify-full"}),
        "verify-full with certificate_arn",
    ),
    "source_open_to_the_world": (_case(source_database={"cidr_blocks": ["0.0.0.0/0"]}), "not 0.0.0.0/0"),
    "source_nowhere": (_case(source_database={"cidr_blocks": []}), "source_database needs cidr_blocks"),
    "secret_arn_without_suffix": (
        _case(source_database={"secret_arn": f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:dms/sales"}),
        "with the 6-character suffix",
    ),
    "staging_key_is_an_alias": (
        _case(target={"kms_key_arn": f"arn:aws:kms:eu-west-1:{ACCOUNT}:alias/staging"}),
        "target.kms_key_arn must be a KMS key ARN",
    ),
    "staging_folder_with_slashes": (
        _case(target={"bucket_folder": "/cdc/"}),
        "target.bucket_folder must be a non-empty key prefix",
    ),
    "serverless_capacity_not_a_step": (_case(serverless={"max_capacity_units": 3}), "must be DMS capacity units"),
    "one_subnet": (_case(subnet_ids=["subnet-0123456789abcdef0"]), "subnet_ids must list at least 2 subnets"),
    "name_too_long": (_case(name="a" * 41), "name must be 3-40 characters"),
    "alarms_without_topic": (_case(alarm_topic_arn=None), "create_event_subscriptions needs alarm_topic_arn"),
    "enabled_without_source": (
        _case(source_database=None),
        "source_database and target are required when create = true",
    ),
}


def _errors_by_call(result: tfkit.Result, calls_tf: str) -> dict[str, str]:
    """The error diagnostics of a `plan -json`, joined per module call: by the call's address, or
    for an input refused by a variable validation, by the line of calls.tf it points at."""
    starts = [
        (n, m[1]) for n, line in enumerate(calls_tf.splitlines(), 1) if (m := re.match(r'module "([^"]+)"', line))
    ]
    errors: dict[str, str] = {}
    for line in result.stdout.splitlines():
        diagnostic = json.loads(line).get("diagnostic") if '"diagnostic"' in line else None
        if not diagnostic or diagnostic["severity"] != "error":
            continue
        if diagnostic.get("address", "").startswith("module."):
            call = diagnostic["address"].split(".")[1]
        else:
            at = diagnostic["range"]["start"]["line"]
            call = [label for start, label in starts if start <= at][-1]
        errors[call] = errors.get(call, "") + f" {diagnostic['summary']}: {diagnostic['detail']}"
    return errors


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory, tf_env: dict[str, str]) -> dict[str, str]:
    """The errors of each case. One plan holds every case as its own module call and reports every
    refused input (variable validations). It stops there, and a plan stops at its first failed
    precondition, so the cases left are planned one per copy of the initialised root, in parallel."""
    cases = {case: arguments for case, (arguments, _) in REFUSED.items()}
    root = tfkit.module_root(tmp_path_factory.mktemp("dms-refused"), "dms", cases)
    tfkit.write_offline_provider(root)
    tfkit.init(root, tf_env)

    def plan(directory: Path, calls: dict[str, dict[str, Any]]) -> dict[str, str]:
        tfkit.write_module_calls(directory, "dms", calls)
        result = tfkit.terraform(
            directory, "plan", "-refresh=false", "-lock=false", "-input=false", "-json", env=tf_env
        )
        return _errors_by_call(result, (directory / "calls.tf").read_text())

    def plan_alone(case: str) -> dict[str, str]:
        directory = shutil.copytree(root, root.with_name(f"{root.name}-{case}"), symlinks=True)
        return plan(directory, {case: cases[case]})

    errors = plan(root, cases)
    with ThreadPoolExecutor(max_workers=3) as pool:
        for found in pool.map(plan_alone, [case for case in cases if case not in errors]):
            errors.update(found)
    return errors


@pytest.mark.parametrize("case", REFUSED)
def test_plan_is_refused_with_a_clear_message(case: str, refused: dict[str, str]) -> None:
    assert case in refused, f"{case}: the plan was not refused"
    output = re.sub(r"\s+", " ", refused[case])
    assert REFUSED[case][1] in output, f"{case}: expected {REFUSED[case][1]!r} in\n{refused[case]}"
