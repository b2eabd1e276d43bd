"""Plans of the root module for every environments/*.tfvars, asserted on their JSON.

The plans run offline (fake credentials, no refresh, no API call: the module has no data source
that reaches AWS) against the real packages in build/, and are saved under build/plans/.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from backfill.jobs import parse_jobs
from cdc_lake.config import LakeConfig
from dynamodb_migration.config import Settings as MigrationSettings
from file_loader.routes import parse_routes
from table_sync.config import parse_tables
from tests.terraform import tfkit
from tests.terraform.conftest import ENVIRONMENTS

# What each environment must deploy (exact counts of the resource types that make the product).
COMMON_INVENTORY = {
    "aws_vpc": 1,
    "aws_flow_log": 1,
    "aws_default_security_group": 1,
    "aws_internet_gateway": 0,
    "aws_nat_gateway": 0,
    "aws_eip": 0,
    "aws_db_instance": 1,
    "aws_db_parameter_group": 1,
    "aws_db_subnet_group": 1,
    "aws_kms_key": 1,
    "aws_kms_key_policy": 1,
    # file loader, table sync, schema migrations, backfill, DynamoDB copy, sync, verify, CDC lake
    "aws_lambda_function": 8,
    "aws_cloudwatch_log_group": 9,  # eight functions + flow logs
    "aws_s3_bucket": 4,  # landing, migrations, CDC staging, CDC lake
    "aws_s3_bucket_policy": 4,
    "aws_s3_bucket_public_access_block": 4,
    "aws_s3_bucket_server_side_encryption_configuration": 4,
    "aws_s3_bucket_versioning": 4,
    "aws_s3_bucket_ownership_controls": 4,
    "aws_s3_bucket_logging": 0,
    "aws_s3_bucket_notification": 3,
    # landing events, migrations events, migration results, DynamoDB verify results, CDC staging
    # events, alarms
    "aws_sns_topic": 6,
    # file loader queue + DLQ, migrations async DLQ, DynamoDB sync failures, CDC lake queue + DLQ
    "aws_sqs_queue": 6,
    "aws_sqs_queue_policy": 6,  # one per queue: TLS only (and SNS delivery for the two queues)
    "aws_sns_topic_subscription": 3,  # topic -> queue (twice), topic -> migrations function
    "aws_lambda_event_source_mapping": 3,  # file loader queue, DynamoDB stream, CDC lake queue
    "aws_lambda_permission": 1,
    "aws_scheduler_schedule": 2,  # table sync, backfill
    "aws_lambda_layer_version": 1,
    # the table sync's, the backfill's and DMS's source database credentials
    "aws_secretsmanager_secret": 3,
    "aws_dynamodb_table": 2,  # the migration's target and state tables (the source is not the module's)
    # errors + throttles per function; file loader, migrations and CDC lake DLQs; the backfill job's
    # stall; DynamoDB iterator age and failures
    "aws_cloudwatch_metric_alarm": 22,
    "aws_dms_replication_instance": 1,
    "aws_dms_replication_task": 1,
    "aws_dms_replication_config": 0,
    "aws_dms_endpoint": 1,
    "aws_dms_s3_endpoint": 1,
    "aws_dms_event_subscription": 2,
    "aws_glue_catalog_database": 1,
    "aws_glue_catalog_table": 2,
}
# Roles: one per function, the two of the DMS replication (source secret, staging folder), and
# where this deployment creates them (local), the three account-wide DMS roles.
INVENTORY = {
    # Endpoints: S3 and DynamoDB gateways, five interface endpoints. Roles: one per function, the
    # table sync's and the backfill's schedulers, flow logs, DMS's source and target roles.
    "dev": {**COMMON_INVENTORY, "aws_db_proxy": 0, "aws_vpc_endpoint": 7, "aws_subnet": 2, "aws_iam_role": 13},
    # prod: three AZs, RDS Proxy (+ its role), Enhanced Monitoring role, an e-mail subscription, the
    # DynamoDB copy on a schedule (+ its scheduler role), S3 server access logs of the four pipeline
    # buckets into a log bucket of their own.
    "prod": {
        **COMMON_INVENTORY,
        "aws_s3_bucket": 5,
        "aws_s3_bucket_policy": 5,
        "aws_s3_bucket_public_access_block": 5,
        "aws_s3_bucket_server_side_encryption_configuration": 5,
        "aws_s3_bucket_versioning": 5,
        "aws_s3_bucket_ownership_controls": 5,
        "aws_s3_bucket_logging": 4,
        "aws_db_proxy": 1,
        "aws_db_proxy_target": 1,
        "aws_vpc_endpoint": 7,
        "aws_subnet": 3,
        "aws_iam_role": 16,
        "aws_sns_topic_subscription": 4,
        "aws_scheduler_schedule": 3,
    },
    # local: the account-wide DMS roles too (create_dms_iam_roles).
    "local": {**COMMON_INVENTORY, "aws_db_proxy": 0, "aws_vpc_endpoint": 7, "aws_subnet": 2, "aws_iam_role": 16},
}


def _var(plan: dict[str, Any], name: str) -> Any:
    return plan["variables"][name]["value"]


def _in_module(plan: dict[str, Any], module_address: str, resource_type: str) -> list[dict[str, Any]]:
    return [r for r in tfkit.of_type(plan, resource_type) if tfkit.module_of(r["address"]) == module_address]


def _set_at_apply(resource: dict[str, Any], attribute: str) -> bool:
    """The attribute has a value now or will get one from another resource at apply time."""
    return (
        tfkit.after(resource).get(attribute) not in (None, "") or tfkit.after_unknown(resource).get(attribute) is True
    )


def test_every_environment_is_planned(plans: dict[str, dict[str, Any]], build_dir: Path) -> None:
    assert set(ENVIRONMENTS) == {"dev", "prod", "local"}
    for environment in ENVIRONMENTS:
        assert json.loads((build_dir / "plans" / f"{environment}.json").read_text()) == plans[environment]
        assert plans[environment]["errored"] is False


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_inventory(environment: str, plans: dict[str, dict[str, Any]]) -> None:
    plan = plans[environment]
    counts = Counter(r["type"] for r in tfkit.resources(plan))
    wrong = {t: (counts.get(t, 0), n) for t, n in INVENTORY[environment].items() if counts.get(t, 0) != n}
    assert not wrong, f"{environment}: resource counts (planned, expected) differ: {wrong}"
    assert all(r["change"]["actions"] == ["create"] for r in tfkit.resources(plan))


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_taggable_resource_carries_the_tags(environment: str, plans: dict[str, dict[str, Any]]) -> None:
    plan = plans[environment]
    expected = {**_var(plan, "tags"), "Environment": environment, "ManagedBy": "terraform"}
    untagged = []
    for resource in tfkit.resources(plan):
        values = tfkit.after(resource)
        if "tags" not in values and "tags_all" not in values:
            continue  # not taggable
        tags = values.get("tags") or {}
        if not expected.items() <= tags.items():
            untagged.append(f"{resource['address']}: {tags}")
    assert not untagged, "resources missing the merged tags:\n" + "\n".join(untagged)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_buckets_are_hardened(environment: str, plans: dict[str, dict[str, Any]]) -> None:
    plan = plans[environment]
    buckets = tfkit.of_type(plan, "aws_s3_bucket")
    assert buckets
    for bucket in buckets:
        module = tfkit.module_of(bucket["address"])
        name = tfkit.after(bucket)["bucket"]

        (encryption,) = _in_module(plan, module, "aws_s3_bucket_server_side_encryption_configuration")
        default = tfkit.after(encryption)["rule"][0]["apply_server_side_encryption_by_default"][0]
        assert default["sse_algorithm"] in ("AES256", "aws:kms"), name

        (versioning,) = _in_module(plan, module, "aws_s3_bucket_versioning")
        assert tfkit.after(versioning)["versioning_configuration"][0]["status"] == "Enabled", name

        (pab,) = _in_module(plan, module, "aws_s3_bucket_public_access_block")
        flags = tfkit.after(pab)
        assert all(
            flags[f] is True
            for f in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
        ), name

        (ownership,) = _in_module(plan, module, "aws_s3_bucket_ownership_controls")
        assert tfkit.after(ownership)["rule"][0]["object_ownership"] == "BucketOwnerEnforced", name

        (policy_resource,) = _in_module(plan, module, "aws_s3_bucket_policy")
        policy = json.loads(tfkit.after(policy_resource)["policy"])
        tls = [
            s
            for s in policy["Statement"]
            if s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        ]
        assert tls, f"{name}: no TLS-only deny"
        assert set(tls[0]["Resource"]) == {f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"}
        assert tls[0]["Principal"] == "*" and tls[0]["Action"] == "s3:*"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_database_is_private_encrypted_and_tls_only(environment: str, plans: dict[str, dict[str, Any]]) -> None:
    plan = plans[environment]
    (db,) = tfkit.of_type(plan, "aws_db_instance")
    values = tfkit.after(db)
    assert values["publicly_accessible"] is False
    assert values["storage_encrypted"] is True
    assert values["manage_master_user_password"] is True
    assert values.get("password") is None
    assert values["engine"] == "postgres"
    assert values["multi_az"] is _var(plan, "db_multi_az")
    assert values["deletion_protection"] is _var(plan, "db_deletion_protection")
    assert values["backup_retention_period"] == _var(plan, "db_backup_retention_period")

    (parameters,) = tfkit.of_type(plan, "aws_db_parameter_group")
    force_ssl = [p for p in tfkit.after(parameters)["parameter"] if p["name"] == "rds.force_ssl"]
    assert force_ssl and force_ssl[0]["value"] == "1"
    assert tfkit.after(parameters)["family"] == f"postgres{_var(plan, 'db_engine_version').split('.')[0]}"
    # The instance uses that parameter group (its name is generated, so check the reference).
    refs = tfkit.referencing_types(plan, "module.database", "aws_db_parameter_group.this")
    assert "aws_db_instance" in refs

    for proxy in tfkit.of_type(plan, "aws_db_proxy"):
        assert tfkit.after(proxy)["require_tls"] is True
        assert tfkit.after(proxy)["auth"][0]["auth_scheme"] == "SECRETS"


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_environments_differ_sensibly(environment: str, plans: dict[str, dict[str, Any]]) -> None:
    (db,) = tfkit.of_type(plans[environment], "aws_db_instance")
    values = tfkit.after(db)
    if environment == "prod":
        assert values["multi_az"] and values["deletion_protection"] and not values["skip_final_snapshot"]
        assert values["backup_retention_period"] >= 7
        assert values["performance_insights_enabled"] and values["monitoring_interval"] > 0
    else:
        assert not values["multi_az"] and not values["deletion_protection"]
    retention = {
        tfkit.after(g)["retention_in_days"] for g in tfkit.of_type(plans[environment], "aws_cloudwatch_log_group")
    }
    assert retention == {_var(plans[environment], "log_retention_days")}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_network_is_private(environment: str, plans: dict[str, dict[str, Any]]) -> None:
    plan = plans[environment]
    for subnet in tfkit.of_type(plan, "aws_subnet"):
        assert tfkit.after(subnet)["map_public_ip_on_launch"] is False
    for route_table in tfkit.of_type(plan, "aws_route_table"):
        routes = tfkit.after(route_table).get("route") or []
        assert not [r for r in routes if r.get("gateway_id") or r.get("nat_gateway_id")], route_table["address"]
    endpoints = {tfkit.after(e)["service_name"]: tfkit.after(e) for e in tfkit.of_type(plan, "aws_vpc_endpoint")}
    region = "eu-west-1"
    for gateway in ("s3", "dynamodb"):  # DynamoDB's because the DynamoDB migration is enabled
        assert endpoints[f"com.amazonaws.{region}.{gateway}"]["vpc_endpoint_type"] == "Gateway"
    for service in ("secretsmanager", "sqs", "sns", "logs", "sts"):
        endpoint = endpoints[f"com.amazonaws.{region}.{service}"]
        assert endpoint["vpc_endpoint_type"] == "Interface" and endpoint["private_dns_enabled"] is True
    # The database port is open only to other security groups, never to a CIDR.
    for rule in tfkit.of_type(plan, "aws_vpc_security_group_ingress_rule"):
        values = tfkit.after(rule)
        assert values.get("cidr_ipv4") is None and values.get("cidr_ipv6") is None, rule["address"]
    for rule in tfkit.of_type(plan, "aws_vpc_security_group_egress_rule"):
        assert tfkit.after(rule).get("cidr_ipv4") != "0.0.0.0/0", rule["address"]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_vpc_endpoint_gets_the_data_perimeter_policy(environment: str, plans: dict[str, dict[str, Any]]) -> None:
    """The policy names this account, read from a security group created in the same apply (the
    plan makes no API call), so its JSON is unknown here: the plan shows that every endpoint's
    policy is the module's perimeter policy and will be set; test_apply_moto.py reads the document
    back from the deployed endpoints."""
    plan = plans[environment]
    endpoints = tfkit.of_type(plan, "aws_vpc_endpoint")
    assert len(endpoints) == INVENTORY[environment]["aws_vpc_endpoint"]
    for endpoint in endpoints:
        assert tfkit.module_of(endpoint["address"]) == "module.network", endpoint["address"]
        assert tfkit.after_unknown(endpoint).get("policy") is True, endpoint["address"]
    configured = tfkit.config_resources(plan, "module.network", "aws_vpc_endpoint")
    assert {r["name"] for r in configured} == {"s3", "dynamodb", "interface"}
    for resource in configured:
        policy = resource["expressions"].get("policy", {})
        assert policy.get("references") == ["local.endpoint_policy"], resource["address"]
    assert _var(plan, "endpoint_allowed_account_ids") == []


def _deployed_functions(plan: dict[str, Any], *, unified_database: bool | None = None) -> set[str]:
    """The functions the `pipelines` output says the enabled pipelines deploy (only those of the
    pipelines that use the unified database, or only the others, when asked)."""
    pipelines = plan["planned_values"]["outputs"]["pipelines"]["value"]
    return {
        f
        for p in pipelines.values()
        if p["enabled"] and unified_database in (None, p["unified_database"])
        for f in p["functions"]
    }


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_function_has_its_own_role_and_runs_in_private_subnets(
    environment: str, plans: dict[str, dict[str, Any]], build_dir: Path
) -> None:
    plan = plans[environment]
    functions = tfkit.of_type(plan, "aws_lambda_function")
    modules = tfkit.function_modules(plan)
    assert set(modules) == _deployed_functions(plan) == set(plan["output_changes"]["functions"]["after"])
    assert len(set(modules.values())) == len(functions), "two functions in one module"
    subnets = len(tfkit.of_type(plan, "aws_subnet"))
    role_names = []
    for function in functions:
        module = tfkit.module_of(function["address"])
        values = tfkit.after(function)
        roles = [
            r
            for r in _in_module(plan, module, "aws_iam_role")
            if "lambda.amazonaws.com" in (tfkit.after(r).get("assume_role_policy") or "")
        ]
        assert len(roles) == 1, f"{function['address']}: expected one execution role in its module"
        assert tfkit.after(roles[0])["name"] == values["function_name"]
        role_names.append(tfkit.after(roles[0])["name"])
        assert tfkit.referencing_types(plan, module, "aws_iam_role.this") >= {"aws_lambda_function"}
        assert values["runtime"] == _var(plan, "lambda_runtime")
        assert values["architectures"] == [_var(plan, "lambda_architecture")]
        assert values["logging_config"][0]["log_format"] == "JSON"
        assert values["tracing_config"][0]["mode"] == "Active"
        # Subnet and group IDs come from the network module at apply time (test_apply_moto.py
        # checks they are exactly its private subnets); here: the function is in a VPC.
        (vpc,) = values["vpc_config"]
        (vpc_unknown,) = tfkit.after_unknown(function)["vpc_config"]
        assert vpc_unknown.get("subnet_ids") is True or len(vpc.get("subnet_ids", [])) == subnets, function["address"]
        assert vpc_unknown.get("security_group_ids") is True or vpc.get("security_group_ids"), function["address"]
        manifest = json.loads((build_dir / "manifest.json").read_text())
        name = values["handler"].split(".")[0]
        assert values["source_code_hash"] == manifest["functions"][name]["source_code_hash"]
        assert values["handler"] == manifest["functions"][name]["handler"]
    assert len(set(role_names)) == len(role_names), "two functions share a role"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_function_environment_follows_the_contract(environment: str, plans: dict[str, dict[str, Any]]) -> None:
    # The provider plans a function's environment as a whole (unknown while DB_HOST is), so read
    # it from the root `functions` output, where each variable is known or unknown on its own.
    plan = plans[environment]
    functions = plan["output_changes"]["functions"]

    def env(name: str) -> dict[str, str]:
        variables = functions["after"][name]["environment_variables"]
        pending = functions["after_unknown"][name].get("environment_variables", {})
        assert {"DB_HOST", "DB_SECRET_ARN"} <= set(variables) | set(pending), name
        return variables

    # DB_HOST / DB_SECRET_ARN come from the database at apply time; the rest is known now.
    file_loader = env("file_loader")
    routes = json.loads(file_loader["ROUTES"])
    configured = _var(plan, "file_loader")["routes"]
    assert [(r["prefix"], r.get("suffix"), r["table"], r["format"], r["mode"]) for r in routes] == [
        (r["prefix"], r.get("suffix") or None, r["table"], r["format"], r.get("mode", "append")) for r in configured
    ]
    assert all(None not in r.values() for r in routes), "null keys must be left out of ROUTES"
    assert file_loader["SOURCE_BUCKET"].endswith("-landing")
    assert {
        "DB_PORT": "5432",
        "DB_NAME": "pipelines",
        "DB_SSLMODE": "require",
        "STATE_SCHEMA": "pipeline_state",
        "LOG_LEVEL": _var(plan, "log_level"),
    }.items() <= file_loader.items()

    # The functions' own parsers accept what Terraform passes (they refuse unknown keys).
    assert [r.prefix for r in parse_routes(routes)] == [r["prefix"] for r in configured]

    table_sync = env("table_sync")
    tables = json.loads(table_sync["SYNC_TABLES"])
    parsed = parse_tables(tables, engine=_var(plan, "table_sync")["source"]["engine"])
    assert [str(t.target) for t in parsed] == [t["target"] for t in _var(plan, "table_sync")["tables"]]
    assert [t["target"] for t in tables] == [t["target"] for t in _var(plan, "table_sync")["tables"]]
    assert all(None not in t.values() for t in tables), "null keys must be left out of SYNC_TABLES"
    source = _var(plan, "table_sync")["source"]
    assert table_sync["SOURCE_DB_ENGINE"] == source["engine"]
    assert table_sync["SOURCE_DB_HOST"] == source["host"]
    assert table_sync["SOURCE_DB_PORT"] == str(source["port"])
    # SQL Server goes through FreeTDS from the layer; other engines use their native drivers.
    expected_driver = "FreeTDS" if source["engine"] == "sqlserver" else None
    assert table_sync.get("SOURCE_DB_ODBC_DRIVER") == (source.get("odbc_driver") or expected_driver)
    assert table_sync["ODBCSYSINI"] == "/opt"

    # The backfill runs in its own database (the shop's MySQL); its jobs go through the function's parser.
    backfill = functions["after"]["backfill"]["environment_variables"]
    settings = _var(plan, "backfill")
    jobs = parse_jobs(json.loads(backfill["BACKFILL_JOBS"]), settings["source"]["engine"])
    assert [j.name for j in jobs] == [j["name"] for j in settings["jobs"]]
    assert [len(j.statements) for j in jobs] == [len(j["statements"]) for j in settings["jobs"]]
    assert all(None not in j.values() for j in json.loads(backfill["BACKFILL_JOBS"]))
    assert backfill["BACKFILL_DB_ENGINE"] == settings["source"]["engine"]
    assert backfill["BACKFILL_DB_HOST"] == settings["source"]["host"] and "DB_HOST" not in backfill
    assert backfill["SCHEDULE_NAME"] == f"pipelines-{environment}-backfill"
    assert backfill.get("BACKFILL_DB_REPLICA_HOSTS", "") == ",".join(settings["source"].get("replica_hosts") or [])

    migrations = env("schema_migrations")
    assert migrations["USER"] == "lambda" and migrations["LOGNAME"] == "lambda"
    assert migrations["LOCK_STALE_SECONDS"] == str(_var(plan, "schema_migrations")["timeout"])
    assert migrations["ALLOWED_DATABASES"] == ",".join(_var(plan, "schema_migrations")["allowed_databases"])
    assert migrations["MIGRATIONS_BUCKET"].endswith("-migrations")

    # The DynamoDB migration uses no database; each of its three functions parses its own settings
    # (the transform with the same parser Terraform's validations mirror).
    migration = _var(plan, "dynamodb_migration")
    for role in ("copy", "sync", "verify"):
        name = f"dynamodb_migration_{role}"
        variables = functions["after"][name]["environment_variables"]
        pending = functions["after_unknown"][name].get("environment_variables", {})
        assert not {v for v in set(variables) | set(pending) if v.startswith("DB_")}, name
        if role == "verify":
            assert pending["RESULTS_TOPIC_ARN"] is True  # the topic is created in the same apply
            variables = {**variables, "RESULTS_TOPIC_ARN": "arn:aws:sns:eu-west-1:111122223333:results"}
        settings = MigrationSettings.from_env(variables)
        assert settings.function == role
        assert (settings.source_table, settings.target_table) == (
            migration["source_table_name"],
            migration["target"]["name"],
        )
        assert settings.source_stream_arn == migration["source_stream_arn"]
        assert settings.transform.source == migration["transform"]

    # The CDC lake's parser takes what Terraform passes, database included.
    lake = env("cdc_lake")
    settings = _var(plan, "cdc_lake")
    config = LakeConfig.from_env({**lake, "DB_HOST": "db.internal", "DB_SECRET_ARN": "arn:aws:secretsmanager:x"})
    assert (config.staging_bucket, config.lake_bucket) == (
        f"pipelines-{environment}-cdc-staging",
        f"pipelines-{environment}-cdc-lake",
    )
    # (The plan lists the settings as given: optional attributes left out have the module's defaults.)
    assert (config.staging_folder, config.lake_prefix, config.partition_by) == (
        settings.get("staging_folder", "dms"),
        settings.get("lake_prefix", "cdc"),
        settings.get("partition_by", "arrival"),
    )
    assert (config.timestamp_column, config.change_sequence_column) == (
        settings.get("timestamp_column_name", "dms_commit_ts"),
        settings.get("change_sequence_column_name"),
    )
    applied = [t for t in settings["tables"] if t.get("apply_to")]
    assert [(t.source, str(t.target)) for t in config.apply_tables] == [
        (f"{t['schema']}.{t['table']}", t["apply_to"]) for t in applied
    ]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_triggers(environment: str, plans: dict[str, dict[str, Any]]) -> None:
    plan = plans[environment]
    modules = tfkit.function_modules(plan)
    for pipeline in ("file_loader", "cdc_lake"):
        (mapping,) = [
            m
            for m in tfkit.of_type(plan, "aws_lambda_event_source_mapping")
            if m["address"].startswith(modules[pipeline])
        ]
        values = tfkit.after(mapping)
        assert values["function_response_types"] == ["ReportBatchItemFailures"]
        assert values["scaling_config"][0]["maximum_concurrency"] == _var(plan, pipeline).get("maximum_concurrency", 5)

    # The DynamoDB sync reads the source's stream from its start, hands failed records back one by
    # one (partial batch responses, bisecting), gives up after bounded retries and record age, and
    # sends what it gave up on to its failure queue.
    (stream,) = _in_module(plan, modules["dynamodb_migration_sync"], "aws_lambda_event_source_mapping")
    values = tfkit.after(stream)
    assert values["event_source_arn"] == _var(plan, "dynamodb_migration")["source_stream_arn"]
    assert values["starting_position"] == "TRIM_HORIZON"
    assert values["function_response_types"] == ["ReportBatchItemFailures"]
    assert values["bisect_batch_on_function_error"] is True
    assert 0 <= values["maximum_retry_attempts"] <= 10 and 60 <= values["maximum_record_age_in_seconds"] <= 86400
    (destination,) = tfkit.after_unknown(stream)["destination_config"][0]["on_failure"]
    assert destination["destination_arn"] is True
    (copy,) = _in_module(plan, modules["dynamodb_migration_copy"], "aws_lambda_function")
    assert tfkit.after(copy)["reserved_concurrent_executions"] == 1

    queues = {tfkit.after(q)["name"]: q for q in tfkit.of_type(plan, "aws_sqs_queue")}
    for queue in queues.values():
        assert tfkit.after(queue)["sqs_managed_sse_enabled"] is True
    main = tfkit.after(queues["pipelines-" + environment + "-file-loader"])
    assert (
        main["visibility_timeout_seconds"] >= 6 * _var(plan, "file_loader")["timeout"]
        or main["visibility_timeout_seconds"] == 43200
    )
    assert tfkit.after_unknown(queues["pipelines-" + environment + "-file-loader"]).get("redrive_policy") is True

    for topic in tfkit.of_type(plan, "aws_sns_topic"):
        assert _set_at_apply(topic, "kms_master_key_id"), f"{topic['address']} is not encrypted"

    (schedule,) = _in_module(plan, modules["table_sync"], "aws_scheduler_schedule")
    assert tfkit.after(schedule)["schedule_expression"] == _var(plan, "table_sync")["schedule_expression"]
    (schedule,) = _in_module(plan, modules["backfill"], "aws_scheduler_schedule")
    minutes = _var(plan, "backfill").get("schedule_rate_minutes", 15)  # the raw input: 15 is the default
    assert tfkit.after(schedule)["schedule_expression"] == f"rate({minutes} minutes)"
    (backfill,) = _in_module(plan, modules["backfill"], "aws_lambda_function")
    assert tfkit.after(backfill)["reserved_concurrent_executions"] == 1
    assert tfkit.after(backfill)["timeout"] < 60 * minutes
    (sync,) = _in_module(plan, modules["table_sync"], "aws_lambda_function")
    assert tfkit.after(sync)["reserved_concurrent_executions"] == 1
    assert tfkit.after_unknown(sync).get("layers") in (True, [True])

    (migrations,) = _in_module(plan, modules["schema_migrations"], "aws_lambda_function")
    (dead_letter,) = tfkit.after_unknown(migrations)["dead_letter_config"]
    assert dead_letter["target_arn"] is True, "asynchronous invocations that fail every retry need a DLQ"
    assert tfkit.after(migrations)["reserved_concurrent_executions"] == _var(plan, "schema_migrations").get(
        "reserved_concurrency", 2
    )

    (permission,) = tfkit.of_type(plan, "aws_lambda_permission")
    assert tfkit.after(permission)["principal"] == "sns.amazonaws.com"
    assert _set_at_apply(permission, "source_arn")

    for group in tfkit.of_type(plan, "aws_cloudwatch_log_group"):
        assert _set_at_apply(group, "kms_key_id"), f"{group['address']} is not encrypted with the key"
    for secret in tfkit.of_type(plan, "aws_secretsmanager_secret"):
        assert _set_at_apply(secret, "kms_key_id"), secret["address"]


EXPECTED_GRANTS = {
    # function: (action, resource pattern known at plan time or None for "from another resource")
    "file_loader": [
        ("s3:GetObject", "arn:aws:s3:::pipelines-{env}-landing/sales/*"),
        ("s3:GetObject", "arn:aws:s3:::pipelines-{env}-landing/customers/*"),
        ("sqs:ReceiveMessage", None),
        ("secretsmanager:GetSecretValue", None),
    ],
    "table_sync": [("secretsmanager:GetSecretValue", None)],
    "backfill": [("secretsmanager:GetSecretValue", None)],
    "schema_migrations": [
        ("s3:ListBucket", "arn:aws:s3:::pipelines-{env}-migrations"),
        ("s3:GetObject", "arn:aws:s3:::pipelines-{env}-migrations/*"),
        ("sns:Publish", None),
        ("secretsmanager:GetSecretValue", None),
    ],
    "cdc_lake": [
        ("s3:GetObject", "arn:aws:s3:::pipelines-{env}-cdc-staging/dms/*"),
        ("s3:DeleteObjectVersion", "arn:aws:s3:::pipelines-{env}-cdc-staging/dms/*"),
        ("s3:PutObject", "arn:aws:s3:::pipelines-{env}-cdc-lake/cdc/*"),
        ("s3:ListBucket", "arn:aws:s3:::pipelines-{env}-cdc-lake"),
        ("kms:Decrypt", None),
        ("sqs:ReceiveMessage", None),
        ("secretsmanager:GetSecretValue", None),
    ],
}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_iam_least_privilege(environment: str, plans: dict[str, dict[str, Any]]) -> None:
    plan = plans[environment]
    statements, unchecked = tfkit.plan_statements(plan)
    findings = tfkit.iam_findings(statements)
    assert not findings, "over-broad IAM statements:\n" + "\n".join(findings)

    # The check saw every function's own policy (not vacuous): the grants each one needs are there,
    # with the exact bucket ARNs and prefixes wherever they are known before apply.
    modules = tfkit.function_modules(plan)
    for name, grants in EXPECTED_GRANTS.items():
        own = [s for s in statements if s.where.startswith(modules[name] + ".data.aws_iam_policy_document.this")]
        assert own and all(s.kind == "identity" for s in own), name
        for action, resource in grants:
            matching = [s for s in own if action in s.actions]
            assert matching, f"{name}: no statement grants {action}"
            if resource is not None:
                assert any(resource.format(env=environment) in s.resources for s in matching), (
                    f"{name}: {action} not granted on {resource.format(env=environment)}: {matching}"
                )
        # Identity statements name resources; "*" appears only with actions AWS grants on "*" alone.
        for statement in own:
            if "*" in statement.resources:
                assert set(statement.actions) <= set(tfkit.ALLOWED_STAR_ACTIONS), statement

    # Policies whose text is only known after apply (topic/queue policies name ARNs of resources
    # created in the same run) are checked on the applied state in test_apply_moto.py.
    assert all(u.endswith((".policy", ".assume_role_policy")) for u in unchecked)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_dynamodb_migration_roles_name_exactly_their_tables_and_stream(
    environment: str, plans: dict[str, dict[str, Any]]
) -> None:
    """Table ARNs are built from the source's stream ARN, so they are known at plan: the copy scans
    only the source and writes only the target, verify reads both and repairs the target; none of
    them reaches an index or every table."""
    plan = plans[environment]
    migration = _var(plan, "dynamodb_migration")
    stream = migration["source_stream_arn"]
    tables = stream.split(":table/")[0] + ":table/"
    source, target = tables + migration["source_table_name"], tables + migration["target"]["name"]
    state = tables + f"pipelines-{environment}-dynamodb-migration-state"
    statements, _ = tfkit.plan_statements(plan)
    modules = tfkit.function_modules(plan)

    def grants(role: str) -> dict[str, set[str]]:
        where = modules[f"dynamodb_migration_{role}"] + ".data.aws_iam_policy_document.this"
        found: dict[str, set[str]] = {}
        for statement in statements:
            if statement.where.startswith(where) and statement.effect == "Allow":
                for action in statement.actions:
                    if action.startswith("dynamodb:"):
                        found.setdefault(action, set()).update(statement.resources)
        return found

    assert grants("copy") == {
        "dynamodb:DescribeTable": {source, target},
        "dynamodb:Scan": {source},
        "dynamodb:BatchGetItem": {source, state},
        "dynamodb:BatchWriteItem": {target},
        "dynamodb:GetItem": {state},
        "dynamodb:PutItem": {state},
        "dynamodb:UpdateItem": {state},
    }
    # The sync's document also names its failure queue, whose ARN is known after apply only:
    # test_apply_moto.py checks it on the deployed role.
    assert grants("sync") == {}
    assert grants("verify") == {
        "dynamodb:Scan": {source, target},
        "dynamodb:GetItem": {source, target},
        "dynamodb:BatchGetItem": {source, target, state},
        "dynamodb:BatchWriteItem": {target},
    }


def test_iam_check_catches_over_broad_statements() -> None:
    """The checker itself: each kind of over-broad grant is reported, the allow-list is honoured."""

    def doc(statement: dict[str, Any]) -> str:
        return json.dumps({"Version": "2012-10-17", "Statement": [statement]})

    bad = [
        ({"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b"}, "identity"),
        ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}, "identity"),
        ({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}, "identity"),
        ({"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b"}, "identity"),
        ({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}, "resource"),
        ({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}, "trust"),
    ]
    for statement, kind in bad:
        assert tfkit.iam_findings(tfkit.statements_from_json(doc(statement), "test", kind)), statement
    good = [
        (
            {"Effect": "Allow", "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "Resource": "*"},
            "identity",
        ),
        ({"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*"}, "resource"),
        (
            {"Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "kms:Decrypt", "Resource": "*"},
            "key",
        ),
    ]
    for statement, kind in good:
        assert not tfkit.iam_findings(tfkit.statements_from_json(doc(statement), "test", kind)), statement


################################################################################
# Database users: the master secret by default, a least-privilege secret per pipeline when given
################################################################################


def _secret_reads(statements: list[tfkit.Statement], where: str) -> tuple[set[str], set[str]]:
    """Secrets a policy lets its role read and KMS keys it lets it decrypt with ("?" = an ARN
    known only after apply, such as the RDS-managed master secret)."""
    own = [s for s in statements if s.where.startswith(where) and s.effect == "Allow"]
    assert own, f"no statements of {where}"
    reads = {r for s in own if "secretsmanager:GetSecretValue" in s.actions for r in s.resources}
    decrypts = {r for s in own if "kms:Decrypt" in s.actions for r in s.resources}
    return reads, decrypts


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_without_pipeline_secrets_every_function_uses_the_master_secret(
    environment: str, plans: dict[str, dict[str, Any]]
) -> None:
    plan = plans[environment]
    assert _var(plan, "file_loader").get("database_secret_arn") is None
    assert _var(plan, "table_sync").get("database_secret_arn") is None
    functions = plan["output_changes"]["functions"]
    for name in _deployed_functions(plan, unified_database=True):
        # The master secret's ARN comes from the instance at apply time.
        assert functions["after_unknown"][name]["environment_variables"]["DB_SECRET_ARN"] is True, name
    statements, _ = tfkit.plan_statements(plan)
    modules = tfkit.function_modules(plan)
    reads, _ = _secret_reads(statements, modules["file_loader"] + ".data.aws_iam_policy_document.this")
    assert reads == {"?"}
    for proxy in tfkit.of_type(plan, "aws_db_proxy"):
        (auth,) = tfkit.after(proxy)["auth"]
        assert auth["description"].startswith("Master user of ")
        reads, decrypts = _secret_reads(statements, "module.database.data.aws_iam_policy_document.proxy")
        assert reads == {"?"} and decrypts == set()


def test_pipeline_secrets_reach_the_functions_their_roles_and_the_proxy(
    pipeline_secrets_plan: dict[str, Any],
) -> None:
    plan = pipeline_secrets_plan
    assert plan["errored"] is False
    file_loader, table_sync = _var(plan, "file_loader"), _var(plan, "table_sync")
    loader_secret, loader_key = file_loader["database_secret_arn"], file_loader["database_secret_kms_key_arn"]
    sync_secret, source_secret = table_sync["database_secret_arn"], table_sync["source_secret_arn"]
    assert table_sync.get("database_secret_kms_key_arn") is None  # aws/secretsmanager: no key grant
    assert len({loader_secret, sync_secret, source_secret}) == 3 and loader_key
    assert _var(plan, "create_db_proxy") is True

    # Each loading function connects as its own user; the migrations keep the master user.
    functions = plan["output_changes"]["functions"]
    environment = {name: functions["after"][name]["environment_variables"] for name in _deployed_functions(plan)}
    assert environment["file_loader"]["DB_SECRET_ARN"] == loader_secret
    assert environment["table_sync"]["DB_SECRET_ARN"] == sync_secret
    assert environment["table_sync"]["SOURCE_DB_SECRET_ARN"] == source_secret
    assert "DB_SECRET_ARN" not in environment["schema_migrations"]
    assert functions["after_unknown"]["schema_migrations"]["environment_variables"]["DB_SECRET_ARN"] is True
    # Through the proxy still (its endpoint is known after apply), not the instance.
    assert functions["after_unknown"]["file_loader"]["environment_variables"]["DB_HOST"] is True

    # Each role may read exactly the secrets its function uses: every ARN known, so the master
    # secret (known only after apply, "?") is not among them.
    statements, unchecked = tfkit.plan_statements(plan)
    assert not tfkit.iam_findings(statements), tfkit.iam_findings(statements)
    assert all(u.endswith((".policy", ".assume_role_policy")) for u in unchecked)
    document = ".data.aws_iam_policy_document.this"
    modules = tfkit.function_modules(plan)
    # Besides the secret's key, the loader decrypts with the key of its SSE-KMS landing bucket: the
    # module's own, created in the same plan ("?"), through S3 only.
    assert _secret_reads(statements, modules["file_loader"] + document) == ({loader_secret}, {loader_key, "?"})
    assert _secret_reads(statements, modules["table_sync"] + document) == ({source_secret, sync_secret}, set())
    assert _secret_reads(statements, modules["schema_migrations"] + document)[0] == {"?"}

    # The proxy logs in as the master user and as each pipeline's user.
    (proxy,) = tfkit.of_type(plan, "aws_db_proxy")
    auth, auth_unknown = tfkit.after(proxy)["auth"], tfkit.after_unknown(proxy)["auth"]
    assert len(auth) == 3
    assert all(
        (a["auth_scheme"], a["iam_auth"], a["client_password_auth_type"])
        == ("SECRETS", "DISABLED", "POSTGRES_SCRAM_SHA_256")
        for a in auth
    )
    registered = {a["secret_arn"]: a["description"] for a, u in zip(auth, auth_unknown, strict=True) if not u}
    assert set(registered) == {loader_secret, sync_secret}
    assert "file loader" in registered[loader_secret] and "table sync" in registered[sync_secret]
    (master,) = [a for a, u in zip(auth, auth_unknown, strict=True) if u.get("secret_arn") is True]
    assert master["description"].startswith("Master user of ")

    # ... and its role may read those secrets (and the master), decrypting only through Secrets Manager.
    proxy_document = "module.database.data.aws_iam_policy_document.proxy"
    assert _secret_reads(statements, proxy_document) == ({"?", loader_secret, sync_secret}, {loader_key})
    (document_change,) = [r for r in plan["resource_changes"] if r["address"] == proxy_document + "[0]"]
    (decrypt,) = [s for s in document_change["change"]["after"]["statement"] if "kms:Decrypt" in s["actions"]]
    assert decrypt["condition"] == [
        {"test": "StringLike", "variable": "kms:ViaService", "values": ["secretsmanager.*.amazonaws.com"]}
    ]
    assert tfkit.referencing_types(plan, "module.database", "data.aws_iam_policy_document.proxy") == {
        "aws_iam_role_policy"
    }


def test_prod_logs_every_pipeline_bucket_to_a_log_bucket_only_s3_log_delivery_writes(
    plans: dict[str, dict[str, Any]],
) -> None:
    """s3_access_logs = {} in prod (issue 13, point 8): the pipeline buckets log into the created
    log bucket, which is SSE-S3 (log delivery accepts nothing else), does not log itself, and admits
    only S3 log delivery for exactly those buckets, a policy known at plan time."""
    plan = plans["prod"]
    buckets = {tfkit.module_of(b["address"]): tfkit.after(b)["bucket"] for b in tfkit.of_type(plan, "aws_s3_bucket")}
    log_bucket = buckets.pop("module.access_logs")
    logging = tfkit.of_type(plan, "aws_s3_bucket_logging")
    assert sorted(tfkit.module_of(r["address"]) for r in logging) == sorted(buckets)
    for resource in logging:
        assert tfkit.after(resource)["target_prefix"] == f"{buckets[tfkit.module_of(resource['address'])]}/"
        # The log bucket's name once its policy admits log delivery: known, or set at apply.
        assert tfkit.after(resource).get("target_bucket") in (log_bucket, None)
        assert _set_at_apply(resource, "target_bucket")
    (encryption,) = _in_module(plan, "module.access_logs", "aws_s3_bucket_server_side_encryption_configuration")
    rule = tfkit.after(encryption)["rule"][0]["apply_server_side_encryption_by_default"][0]
    assert rule["sse_algorithm"] == "AES256"
    (policy_resource,) = _in_module(plan, "module.access_logs", "aws_s3_bucket_policy")
    (delivery,) = [s for s in json.loads(tfkit.after(policy_resource)["policy"])["Statement"] if s["Effect"] == "Allow"]
    assert delivery["Principal"] == {"Service": "logging.s3.amazonaws.com"} and delivery["Action"] == "s3:PutObject"
    assert delivery["Resource"] == f"arn:aws:s3:::{log_bucket}/*"
    assert sorted(delivery["Condition"]["ArnEquals"]["aws:SourceArn"]) == sorted(
        f"arn:aws:s3:::{name}" for name in buckets.values()
    )
    for environment in ("dev", "local"):
        assert not tfkit.of_type(plans[environment], "aws_s3_bucket_logging"), environment
