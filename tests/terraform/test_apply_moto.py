"""`terraform apply` of environments/local.tfvars and of examples/minimal to a moto server, the
deployed wiring read back through boto3, then `terraform destroy` of both.

The two cover both ways S3 events travel (`notifications`): the local environment is applied with
the file loader and the schema migrations on EventBridge (S3 -> rule -> queue, S3 -> rule ->
function; `make demo` applies it as written, on SNS), the minimal example's file loader on SNS.

The real provider talks to moto over HTTP exactly as it would to AWS (endpoints injected by a
provider block, as tflocal does for LocalStack). The local environment's resource names get their
own prefix (`-var name=tfcheck`) so nothing collides with other users of the session's moto server;
one extra account is allowed through the VPC endpoint policies, to check the list reaches them. The
example is applied as a user applies it, from its own directory with the module beside it, to a
moto server of its own: moto gives every RDS instance the same resource id, so the provider cannot
tell two instances on one server apart. Both applies run at once (the provider mostly waits on
moto). The DynamoDB migration's source table is the application's, not the module's: it is created
in moto before the apply, as `make demo` does (scripts/localenv/dynamodb_source.py). Tests run in
file order; the last one destroys everything and checks it is gone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
import hcl2
import pytest

from pipeline_common.events import s3_objects
from scripts.localdb import free_port
from scripts.localenv.dynamodb_source import create_source_table, local_settings, terraform_value
from scripts.localenv.wiring import wiring_from_state
from scripts.localstack import check_deployment, localstack_clients
from tests.terraform import tfkit
from tests.terraform.tfkit import Deployment

pytestmark = pytest.mark.slow

REGION = "us-east-1"
NAME = "tfcheck"
PREFIX = f"{NAME}-local"
EXAMPLE_PREFIX = "minimal-dev"  # name and environment set in examples/minimal/main.tf
# A second account the endpoint policies must admit beside this one (a partner's bucket, say).
OTHER_ACCOUNT = "111122223333"


@pytest.fixture(scope="module")
def example_moto_server() -> Iterator[str]:
    """A moto server in a process of its own: its own state, and its own interpreter lock."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"moto server exited with status {process.returncode}"
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "moto server did not answer within 30 s"
                time.sleep(0.2)
        yield endpoint
    finally:
        process.terminate()
        process.wait(10)


def eventbridge_tfvars(directory: Path) -> Path:
    """A var-file putting the local environment's file loader and schema migrations on EventBridge
    (their settings from local.tfvars with `notifications = "eventbridge"` added). S3 access logs
    stay off: moto 5's PutBucketLogging fails with a 500 on a log bucket whose policy has a
    statement with `Principal: "*"` (the TLS-only deny), so they are checked in the plan only."""
    settings = hcl2.loads((tfkit.REPO / "environments" / "local.tfvars").read_text())

    def plain(value: Any) -> Any:  # python-hcl2 keeps the quotes of string literals
        if isinstance(value, str) and value.startswith('"') and value.endswith('"'):
            return json.loads(value)
        if isinstance(value, list):
            return [plain(v) for v in value]
        return {k: plain(v) for k, v in value.items()} if isinstance(value, dict) else value

    overrides: dict[str, Any] = {
        name: {**plain(settings[name]), "notifications": "eventbridge"} for name in PIPELINES_ON_EVENTBRIDGE
    }
    path = directory / "eventbridge.tfvars.json"
    path.write_text(json.dumps(overrides))
    return path


PIPELINES_ON_EVENTBRIDGE = ("file_loader", "schema_migrations")


@pytest.fixture(scope="module")
def deployments(
    moto_server: str,
    example_moto_server: str,
    tmp_path_factory: pytest.TempPathFactory,
    tf_env: dict[str, str],
    build_dir: Path,
) -> Iterator[dict[str, Deployment]]:
    local = tfkit.copy_tree(tmp_path_factory.mktemp("apply"))
    tfkit.write_moto_provider(local, moto_server, REGION)
    migration = local_settings()
    dynamodb = boto3.client(
        "dynamodb", endpoint_url=moto_server, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    stream_arn = create_source_table(dynamodb, migration)
    example_tree = tfkit.copy_tree(tmp_path_factory.mktemp("apply-example"))
    tfkit.link_build_dir(example_tree, build_dir)
    minimal = example_tree / "examples" / "minimal"
    tfkit.write_moto_provider(minimal, example_moto_server, REGION, filename="provider_override.tf")
    runs = {
        "local": (
            local,
            moto_server,
            [
                "-var-file=environments/local.tfvars",
                f"-var-file={eventbridge_tfvars(local)}",
                f"-var=build_dir={build_dir}",
                f"-var=name={NAME}",
                f'-var=endpoint_allowed_account_ids=["{OTHER_ACCOUNT}"]',
                f"-var=dynamodb_migration={terraform_value(migration, stream_arn)}",
            ],
        ),
        "minimal": (minimal, example_moto_server, []),
    }
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        futures = {
            name: pool.submit(tfkit.apply_to_moto, directory, endpoint, REGION, tf_env, args)
            for name, (directory, endpoint, args) in runs.items()
        }
        deployed: dict[str, Deployment] = {}
        for name, future in futures.items():
            if future.exception() is None:
                deployed[name] = future.result()
    try:
        for future in futures.values():
            future.result()  # an apply that failed fails every test here
        yield deployed
    finally:
        # A test failed before test_destroy_removes_everything: still clean up the shared server.
        for deployment in deployed.values():
            if not deployment.destroyed:
                deployment.destroy()


@pytest.fixture(scope="module")
def deployment(deployments: dict[str, Deployment]) -> Deployment:
    """The local environment (every pipeline)."""
    return deployments["local"]


def _function(deployment: Deployment, name: str) -> dict[str, Any]:
    return deployment.client("lambda").get_function(FunctionName=deployment.functions[name]["function_name"])


def _deployed_functions(deployment: Deployment, unified_database: bool | None = None) -> set[str]:
    """What the `pipelines` output says the enabled pipelines deploy (those that use the unified
    database, or do not, when `unified_database` says so)."""
    return {
        f
        for p in deployment.outputs["pipelines"].values()
        if p["enabled"] and unified_database in (None, p["unified_database"])
        for f in p["functions"]
    }


def _uses_database(deployment: Deployment, function: str) -> bool:
    return bool(deployment.outputs["pipelines"][deployment.functions[function]["pipeline"]]["unified_database"])


def test_outputs_describe_every_function(deployment: Deployment) -> None:
    functions = deployment.functions
    assert set(functions) == _deployed_functions(deployment)
    assert {f["pipeline"] for f in functions.values()} == set(tfkit.pipeline_table())
    names = {function["function_name"] for function in functions.values()}
    assert len(names) == len(functions) and all(n.startswith(f"{PREFIX}-") for n in names)
    for name, function in functions.items():
        for key in ("arn", "role_arn", "handler", "timeout", "memory_size", "environment_variables", "event_source"):
            assert function[key] not in (None, ""), (name, key)
        pipeline = deployment.outputs["pipelines"][function["pipeline"]]
        assert function["handler"] in {f"{package}.handler.handler" for package in pipeline["packages"]}
        assert name in pipeline["functions"]
    assert functions["file_loader"]["trigger"] == functions["cdc_lake"]["trigger"] == "sqs"
    assert functions["schema_migrations"]["trigger"] == "eventbridge"
    assert functions["table_sync"]["trigger"] == "schedule"
    assert functions["dynamodb_migration_sync"]["trigger"] == "dynamodb"
    assert (
        functions["dynamodb_migration_copy"]["trigger"] == functions["dynamodb_migration_verify"]["trigger"] == "invoke"
    )
    database = deployment.outputs["database"]
    assert database["port"] == 5432 and database["name"] == "pipelines"
    assert database["endpoint"] and database["master_user_secret_arn"].startswith("arn:aws:secretsmanager:")
    assert deployment.outputs["buckets"] == {
        "landing": f"{PREFIX}-landing",
        "migrations": f"{PREFIX}-migrations",
        "cdc_staging": f"{PREFIX}-cdc-staging",
        "cdc_lake": f"{PREFIX}-cdc-lake",
    }
    assert deployment.outputs["bucket_arns"] == {
        k: f"arn:aws:s3:::{v}" for k, v in deployment.outputs["buckets"].items()
    }
    assert deployment.outputs["landing_bucket_arn"] == f"arn:aws:s3:::{PREFIX}-landing"
    assert deployment.outputs["db_instance_arn"].startswith("arn:aws:rds:")
    assert deployment.outputs["db_instance_resource_id"]
    assert deployment.outputs["kms_key_alias"] == f"alias/{PREFIX}-pipelines"
    assert deployment.outputs["table_sync_odbc_layer_arn"].split(":")[6] == f"{PREFIX}-table-sync-odbc"


def test_functions_run_with_their_own_role_environment_and_private_subnets(deployment: Deployment) -> None:
    network = deployment.outputs["network"]
    database = deployment.outputs["database"]
    iam = deployment.client("iam")
    roles = set()
    for name, expected in deployment.functions.items():
        config = _function(deployment, name)["Configuration"]
        assert config["Role"] == expected["role_arn"]
        roles.add(config["Role"])
        trust = iam.get_role(RoleName=expected["role_name"])["Role"]["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "lambda.amazonaws.com"}]
        assert config["Runtime"] == "python3.12" and config["Handler"] == expected["handler"]
        assert config["Timeout"] == expected["timeout"] and config["MemorySize"] == expected["memory_size"]
        assert config["Environment"]["Variables"] == expected["environment_variables"]
        assert config["VpcConfig"]["SubnetIds"] and sorted(config["VpcConfig"]["SubnetIds"]) == sorted(
            network["private_subnet_ids"]
        )
        assert network["lambda_security_group_id"] in config["VpcConfig"]["SecurityGroupIds"]
        variables = config["Environment"]["Variables"]
        if not _uses_database(deployment, name):
            # The backfill names its own database (BACKFILL_DB_*, below), the DynamoDB migration none.
            assert not [v for v in variables if v.startswith("DB_")], name
            continue
        assert variables["DB_SECRET_ARN"] == database["master_user_secret_arn"]
        expected_host = database["endpoint"] if name == "schema_migrations" else database["connect_endpoint"]
        assert variables["DB_HOST"] == expected_host
        assert variables["DB_PORT"] == "5432" and variables["DB_SSLMODE"] == "require"
    assert len(roles) == len(deployment.functions), "functions share a role"

    # The subnets are private: no public IPs, and the VPC has no internet or NAT gateway.
    ec2 = deployment.client("ec2")
    for subnet in ec2.describe_subnets(SubnetIds=network["private_subnet_ids"])["Subnets"]:
        assert subnet["MapPublicIpOnLaunch"] is False
        assert subnet["VpcId"] == network["vpc_id"]
    vpc_filter = [{"Name": "attachment.vpc-id", "Values": [network["vpc_id"]]}]
    assert ec2.describe_internet_gateways(Filters=vpc_filter)["InternetGateways"] == []
    nat = ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [network["vpc_id"]]}])["NatGateways"]
    assert [n for n in nat if n["State"] != "deleted"] == []

    # S3 is reached through the gateway endpoint on the private route tables; APIs through
    # interface endpoints with private DNS.
    endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [network["vpc_id"]]}])["VpcEndpoints"]
    by_service = {e["ServiceName"].rsplit(".", 1)[-1]: e for e in endpoints}
    for gateway in ("s3", "dynamodb"):
        assert by_service[gateway]["VpcEndpointType"] == "Gateway"
        assert sorted(by_service[gateway]["RouteTableIds"]) == sorted(network["private_route_table_ids"])
    assert by_service["dynamodb"]["VpcEndpointId"] == network["dynamodb_gateway_endpoint_id"]
    for service in ("secretsmanager", "sqs", "sns", "logs", "sts"):
        assert by_service[service]["VpcEndpointType"] == "Interface"
        assert by_service[service]["PrivateDnsEnabled"] is True


def test_every_vpc_endpoint_has_the_data_perimeter_policy(deployment: Deployment) -> None:
    """Each endpoint admits a request only when both the caller's and the resource's account are
    this one or the extra allowed account: one Allow of * on *, under both conditions."""
    account = deployment.client("sts").get_caller_identity()["Account"]
    allowed = {account, OTHER_ACCOUNT}
    vpc_id = deployment.outputs["network"]["vpc_id"]
    ec2 = deployment.client("ec2")
    endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["VpcEndpoints"]
    assert sorted(e["ServiceName"].rsplit(".", 1)[-1] for e in endpoints) == sorted(
        ["s3", "dynamodb", "secretsmanager", "sqs", "sns", "logs", "sts"]
    )
    for endpoint in endpoints:
        where = endpoint["ServiceName"]
        policy = json.loads(endpoint["PolicyDocument"])
        statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
        assert len(statements) == 1, where
        (statement,) = statements
        assert statement["Effect"] == "Allow" and statement["Principal"] == "*", where
        assert statement["Action"] == "*" and statement["Resource"] == "*", where
        condition = statement["Condition"]
        assert set(condition) == {"StringEquals"}, where
        assert set(condition["StringEquals"]) == {"aws:PrincipalAccount", "aws:ResourceAccount"}, where
        for key, values in condition["StringEquals"].items():
            values = values if isinstance(values, list) else [values]
            assert sorted(values) == sorted(allowed), f"{where} {key}: {values}"


def _rule(deployment: Deployment, rule_arn: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The EventBridge rule (its pattern decoded) and its targets."""
    events = deployment.client("events")
    name = rule_arn.rsplit("/", 1)[-1]
    rule = events.describe_rule(Name=name)
    return {**rule, "EventPattern": json.loads(rule["EventPattern"])}, events.list_targets_by_rule(Rule=name)["Targets"]


def _allow(policy: str) -> dict[str, Any]:
    (statement,) = [s for s in json.loads(policy)["Statement"] if s["Effect"] == "Allow"]
    return statement


def test_file_loader_wiring_bucket_rule_queue_mapping_function(deployment: Deployment) -> None:
    function = deployment.functions["file_loader"]
    source = function["event_source"]
    s3, sqs = deployment.client("s3"), deployment.client("sqs")

    # bucket -> EventBridge (every event; rules pick) -> one rule on the bucket and the route prefixes
    # moto sends the bucket's events to EventBridge (test_an_object_under_a_route_prefix_reaches_the_queue
    # follows one to the queue) but leaves EventBridgeConfiguration out of the GET; the plan tests
    # check eventbridge = true. No topic is notified.
    notification = s3.get_bucket_notification_configuration(Bucket=source["bucket"])
    assert "TopicConfigurations" not in notification
    assert source["topic_arn"] is None and source["rule_arn"]
    rule, targets = _rule(deployment, source["rule_arn"])
    assert rule["EventPattern"] == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [source["bucket"]]},
            "object": {"key": [{"prefix": "sales/"}, {"prefix": "customers/"}]},
        },
    }
    # rule -> queue, undeliverable events to the DLQ
    (target,) = targets
    assert target["Arn"] == source["queue_arn"]
    assert target["DeadLetterConfig"]["Arn"] == source["dlq_arn"]

    # queue -> DLQ redrive, encryption, policy letting only the rule send
    queue = sqs.get_queue_attributes(QueueUrl=source["queue_url"], AttributeNames=["All"])["Attributes"]
    redrive = json.loads(queue["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == source["dlq_arn"]
    assert int(redrive["maxReceiveCount"]) == 5
    assert int(queue["VisibilityTimeout"]) == 6 * function["timeout"]
    assert queue["SqsManagedSseEnabled"] == "true"
    allow = _allow(queue["Policy"])
    assert allow["Principal"] == {"Service": "events.amazonaws.com"}
    assert allow["Condition"]["ArnEquals"]["aws:SourceArn"] == source["rule_arn"]
    dlq = sqs.get_queue_attributes(QueueUrl=source["dlq_url"], AttributeNames=["Policy"])["Attributes"]
    assert _allow(dlq["Policy"])["Condition"]["ArnEquals"]["aws:SourceArn"] == source["rule_arn"]

    # queue -> event source mapping -> function, with partial batch failures and bounded concurrency
    mappings = deployment.client("lambda").list_event_source_mappings()["EventSourceMappings"]
    (mapping,) = [m for m in mappings if m["FunctionArn"] == function["arn"]]
    assert mapping["EventSourceArn"] == source["queue_arn"]
    assert mapping["FunctionArn"] == function["arn"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"]["MaximumConcurrency"] == source["maximum_concurrency"] == 2
    assert mapping["BatchSize"] == source["batch_size"]

    routes = json.loads(function["environment_variables"]["ROUTES"])
    assert [(r["prefix"], r["table"], r["mode"]) for r in routes] == [
        ("sales/", "staging.sales", "append"),
        ("customers/", "staging.customers", "upsert"),
    ]
    assert function["environment_variables"]["SOURCE_BUCKET"] == source["bucket"]


def _state_resources(state: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    """The values of every managed resource of a type in a `terraform show -json` state."""
    found, modules = [], [state["values"]["root_module"]]
    while modules:
        module = modules.pop()
        found += [r["values"] for r in module.get("resources", []) if r["type"] == resource_type]
        modules += module.get("child_modules", [])
    return found


def test_the_minimal_examples_file_loader_is_wired_through_sns(deployments: dict[str, Deployment]) -> None:
    example = deployments["minimal"]
    source = example.functions["file_loader"]["event_source"]
    s3, sns, sqs = example.client("s3"), example.client("sns"), example.client("sqs")

    # bucket notification -> topic, one filter per route prefix
    topics = s3.get_bucket_notification_configuration(Bucket=source["bucket"])["TopicConfigurations"]
    assert {t["TopicArn"] for t in topics} == {source["topic_arn"]} and source["rule_arn"] is None
    prefixes = [
        rule["Value"] for t in topics for rule in t["Filter"]["Key"]["FilterRules"] if rule["Name"].lower() == "prefix"
    ]
    assert prefixes == source["prefixes"] == ["incoming/"]
    assert all(t["Events"] == ["s3:ObjectCreated:*"] for t in topics)

    # topic -> queue (raw delivery), topic policy scoped to the bucket and the account
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=source["topic_arn"])["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("sqs", source["queue_arn"])]
    attributes = sns.get_subscription_attributes(SubscriptionArn=subscriptions[0]["SubscriptionArn"])["Attributes"]
    assert attributes["RawMessageDelivery"] == "true"
    topic = sns.get_topic_attributes(TopicArn=source["topic_arn"])["Attributes"]
    (key_arn,) = [k["arn"] for k in _state_resources(example.state, "aws_kms_key")]
    assert topic["KmsMasterKeyId"] == key_arn
    publish = _allow(topic["Policy"])
    assert publish["Principal"] == {"Service": "s3.amazonaws.com"}
    assert publish["Condition"]["ArnLike"]["aws:SourceArn"] == f"arn:aws:s3:::{source['bucket']}"
    assert publish["Condition"]["StringEquals"]["aws:SourceAccount"] == source["topic_arn"].split(":")[4]

    # only the topic may send to the queue
    queue = sqs.get_queue_attributes(QueueUrl=source["queue_url"], AttributeNames=["Policy"])["Attributes"]
    allow = _allow(queue["Policy"])
    assert allow["Principal"] == {"Service": "sns.amazonaws.com"}
    assert allow["Condition"]["ArnEquals"]["aws:SourceArn"] == source["topic_arn"]


def _keys_reaching_the_queue(
    deployment: Deployment, keys: list[str], expected: str, function: str = "file_loader"
) -> list[str]:
    """Put objects under these keys into the function's source bucket and read the S3 events that
    reach its queue (moto cannot run the function, so the messages stay there) until `expected` does."""
    source = deployment.functions[function]["event_source"]
    s3, sqs = deployment.client("s3"), deployment.client("sqs")
    # moto 5.2 evaluates the TLS-only Deny without its condition (it refuses every object request,
    # HTTPS or not; AWS evaluates aws:SecureTransport). Lift moto's copy for the uploads only.
    policy = s3.get_bucket_policy(Bucket=source["bucket"])["Policy"]
    s3.delete_bucket_policy(Bucket=source["bucket"])
    try:
        for key in keys:
            s3.put_object(Bucket=source["bucket"], Key=key, Body=b"id\n1\n")
    finally:
        s3.put_bucket_policy(Bucket=source["bucket"], Policy=policy)
    arrived: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and expected not in arrived:
        response = sqs.receive_message(QueueUrl=source["queue_url"], MaxNumberOfMessages=10, WaitTimeSeconds=2)
        for message in response.get("Messages", []):
            # The S3 event itself (SNS raw delivery) or the EventBridge event: the loader's parser reads both.
            arrived += [o.key for o in s3_objects(message["Body"]) if o.event_name.startswith("ObjectCreated")]
            sqs.delete_message(QueueUrl=source["queue_url"], ReceiptHandle=message["ReceiptHandle"])
    return arrived


def test_an_object_under_a_route_prefix_reaches_the_queue(deployment: Deployment) -> None:
    """The deployed wiring carries a real event: S3 -> EventBridge -> SQS."""
    arrived = _keys_reaching_the_queue(
        deployment, ["elsewhere/ignored.csv", "sales/2026 day 1.csv"], "sales/2026 day 1.csv"
    )
    assert "sales/2026 day 1.csv" in arrived
    assert "elsewhere/ignored.csv" not in arrived


def test_schema_migrations_wiring_bucket_rule_function(deployment: Deployment) -> None:
    function = deployment.functions["schema_migrations"]
    source = function["event_source"]
    s3 = deployment.client("s3")

    # bucket -> EventBridge -> a rule on the bucket's .sql keys -> the function, undeliverable events to the DLQ
    notification = s3.get_bucket_notification_configuration(Bucket=source["bucket"])
    assert "TopicConfigurations" not in notification  # EventBridge: see the file loader's wiring test
    rule, targets = _rule(deployment, source["rule_arn"])
    assert rule["EventPattern"]["detail"] == {
        "bucket": {"name": [source["bucket"]]},
        "object": {"key": [{"suffix": ".sql"}]},
    }
    (target,) = targets
    assert target["Arn"] == function["arn"] and target["DeadLetterConfig"]["Arn"] == source["dlq_arn"]
    policy = json.loads(deployment.client("lambda").get_policy(FunctionName=function["function_name"])["Policy"])
    (statement,) = policy["Statement"]
    assert statement["Principal"] in ({"Service": "events.amazonaws.com"}, "events.amazonaws.com")
    assert statement["Action"] == "lambda:InvokeFunction"
    conditions = {k.lower(): v for c in statement["Condition"].values() for k, v in c.items()}
    assert conditions["aws:sourcearn"] == source["rule_arn"]
    dlq = deployment.client("sqs").get_queue_attributes(QueueUrl=source["dlq_url"], AttributeNames=["Policy"])
    assert _allow(dlq["Attributes"]["Policy"])["Condition"]["ArnEquals"]["aws:SourceArn"] == source["rule_arn"]

    # The local router follows the rule to the function, as it follows topics.
    wiring = wiring_from_state(deployment.state, deployment.directory)
    assert [(r.function, r.rule_name) for r in wiring.rules] == [
        (function["function_name"], source["rule_arn"].rsplit("/", 1)[-1])
    ]

    config = _function(deployment, "schema_migrations")["Configuration"]
    # moto keeps no DeadLetterConfig (test_plan.py checks the planned one); the role may send to
    # exactly that DLQ.
    iam = deployment.client("iam")
    name = f"{function['function_name']}-least-privilege"
    document = iam.get_role_policy(RoleName=function["role_name"], PolicyName=name)["PolicyDocument"]
    document = document if isinstance(document, str) else json.dumps(document)
    sends = [s for s in tfkit.statements_from_json(document, name, "identity") if "sqs:SendMessage" in s.actions]
    assert [s.resources for s in sends] == [[source["dlq_arn"]]]
    lam = deployment.client("lambda")
    concurrency = lam.get_function_concurrency(FunctionName=function["function_name"])
    assert concurrency["ReservedConcurrentExecutions"] == source["maximum_concurrency"] == 2
    variables = config["Environment"]["Variables"]
    assert variables["MIGRATIONS_BUCKET"] == source["bucket"]
    assert variables["RESULTS_TOPIC_ARN"] == deployment.outputs["schema_migrations_results_topic_arn"]
    assert variables["LOCK_STALE_SECONDS"] == str(config["Timeout"]) == "60"
    assert variables["USER"] == variables["LOGNAME"] == "lambda"
    assert variables["ALLOWED_DATABASES"] == ""
    assert s3.get_bucket_versioning(Bucket=source["bucket"])["Status"] == "Enabled"


def test_table_sync_schedule_concurrency_layer_and_source_access(deployment: Deployment) -> None:
    function = deployment.functions["table_sync"]
    schedule = deployment.client("scheduler").get_schedule(Name=function["function_name"])
    assert schedule["ScheduleExpression"] == function["event_source"]["schedule_expression"] == "rate(5 minutes)"
    assert schedule["State"] == "ENABLED"
    assert schedule["Target"]["Arn"] == function["arn"]
    iam = deployment.client("iam")
    scheduler_role = iam.get_role(RoleName=schedule["Target"]["RoleArn"].split("/")[-1])["Role"]
    trust = scheduler_role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"Service": "scheduler.amazonaws.com"}
    (policy_name,) = iam.list_role_policies(RoleName=scheduler_role["RoleName"])["PolicyNames"]
    document = iam.get_role_policy(RoleName=scheduler_role["RoleName"], PolicyName=policy_name)["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    assert document["Statement"][0]["Action"] == "lambda:InvokeFunction"
    assert set(document["Statement"][0]["Resource"]) == {function["arn"], f"{function['arn']}:*"}

    lam = deployment.client("lambda")
    assert lam.get_function_concurrency(FunctionName=function["function_name"])["ReservedConcurrentExecutions"] == 1
    config = lam.get_function(FunctionName=function["function_name"])["Configuration"]
    assert [layer["Arn"].split(":")[6] for layer in config["Layers"]] == [f"{function['function_name']}-odbc"]

    variables = config["Environment"]["Variables"]
    tables = json.loads(variables["SYNC_TABLES"])
    assert tables == [
        {
            "source": "public.orders",
            "target": "staging.orders",
            "primary_key": ["order_id"],
            "cursor": {"type": "timestamp", "column": "updated_at", "lookback_seconds": 60},
            "chunk_size": 10000,
        }
    ]
    assert variables["SOURCE_DB_SECRET_ARN"] == deployment.outputs["table_sync_source_secret_arn"]
    assert (variables["SOURCE_DB_ENGINE"], variables["SOURCE_DB_HOST"], variables["SOURCE_DB_PORT"]) == (
        "postgresql",
        "127.0.0.1",
        "5432",
    )
    secret = deployment.client("secretsmanager").describe_secret(SecretId=variables["SOURCE_DB_SECRET_ARN"])
    assert secret["KmsKeyId"] in (deployment.outputs["kms_key_arn"], deployment.outputs["kms_key_arn"].split("/")[-1])

    # Its own security group reaches the source host and port, nothing else.
    group = deployment.outputs["network"]["table_sync_security_group_id"]
    assert group in config["VpcConfig"]["SecurityGroupIds"]
    rules = deployment.client("ec2").describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group]}])[
        "SecurityGroupRules"
    ]
    egress = [(r["IpProtocol"], r["FromPort"], r["ToPort"], r.get("CidrIpv4")) for r in rules if r["IsEgress"]]
    assert egress == [("tcp", 5432, 5432, "127.0.0.1/32")]


def test_backfill_schedule_concurrency_own_schedule_and_alarm(deployment: Deployment) -> None:
    function = deployment.functions["backfill"]
    name = function["function_name"]
    scheduler, iam, lam = (deployment.client(s) for s in ("scheduler", "iam", "lambda"))
    schedule = scheduler.get_schedule(Name=name)
    assert schedule["ScheduleExpression"] == function["event_source"]["schedule_expression"] == "rate(5 minutes)"
    assert schedule["State"] == "ENABLED" and schedule["Target"]["Arn"] == function["arn"]
    assert json.loads(schedule["Target"]["Input"]) == {"source": "schedule"}
    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 1
    config = lam.get_function(FunctionName=name)["Configuration"]
    assert config["Timeout"] == 120 < 5 * 60

    # It may read and disable exactly its own schedule, and pass exactly that schedule's role.
    document = iam.get_role_policy(RoleName=function["role_name"], PolicyName=f"{name}-own-schedule")["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    by_sid = {statement["Sid"]: statement for statement in document["Statement"]}
    assert set(by_sid) == {"ReadAndDisableOwnSchedule", "PassOwnScheduleRole"}
    assert sorted(by_sid["ReadAndDisableOwnSchedule"]["Action"]) == [
        "scheduler:GetSchedule",
        "scheduler:UpdateSchedule",
    ]
    assert by_sid["ReadAndDisableOwnSchedule"]["Resource"] == schedule["Arn"]
    assert by_sid["PassOwnScheduleRole"]["Action"] == "iam:PassRole"
    assert by_sid["PassOwnScheduleRole"]["Resource"] == schedule["Target"]["RoleArn"]
    assert by_sid["PassOwnScheduleRole"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}
    }

    # Its own database, its own secret (created empty, encrypted with the key), its own egress.
    variables = config["Environment"]["Variables"]
    assert (variables["BACKFILL_DB_ENGINE"], variables["BACKFILL_DB_HOST"], variables["BACKFILL_DB_PORT"]) == (
        "mysql",
        "127.0.0.1",
        "3306",
    )
    assert variables["BACKFILL_DB_SECRET_ARN"] == deployment.outputs["backfill_source_secret_arn"]
    assert [job["name"] for job in json.loads(variables["BACKFILL_JOBS"])] == ["order_archive"]
    secret = deployment.client("secretsmanager").describe_secret(SecretId=variables["BACKFILL_DB_SECRET_ARN"])
    assert secret["KmsKeyId"] in (deployment.outputs["kms_key_arn"], deployment.outputs["kms_key_arn"].split("/")[-1])
    groups = [
        g
        for g in config["VpcConfig"]["SecurityGroupIds"]
        if g != deployment.outputs["network"]["lambda_security_group_id"]
    ]
    rules = deployment.client("ec2").describe_security_group_rules(Filters=[{"Name": "group-id", "Values": groups}])
    egress = [
        (r["IpProtocol"], r["FromPort"], r["ToPort"], r.get("CidrIpv4"))
        for r in rules["SecurityGroupRules"]
        if r["IsEgress"]
    ]
    assert egress == [("tcp", 3306, 3306, "127.0.0.1/32")]

    # The job's stall alarm watches the metric the function emits (namespace and dimensions).
    alarm = deployment.client("cloudwatch").describe_alarms(AlarmNames=[f"{name}-stalled-order_archive"])[
        "MetricAlarms"
    ]
    (alarm,) = alarm
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
        "Pipelines/Backfill",
        "RowsAdvanced",
        "Sum",
    )
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {"job": "order_archive", "service": name}
    assert alarm["Period"] == 15 * 60 and alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] == [deployment.outputs["alarm_topic_arn"]]


def test_dynamodb_migration_stream_tables_and_roles(deployment: Deployment) -> None:
    """The sync's stream mapping as Lambda holds it, the tables the module created, and each role's
    grants on exactly its tables and the stream, every ARN now known."""
    functions = {role: deployment.functions[f"dynamodb_migration_{role}"] for role in ("copy", "sync", "verify")}
    dynamodb, lam = deployment.client("dynamodb"), deployment.client("lambda")
    settings = local_settings()
    source = dynamodb.describe_table(TableName=settings["source_table_name"])["Table"]
    stream_arn = source["LatestStreamArn"]

    mappings = lam.list_event_source_mappings()["EventSourceMappings"]
    (mapping,) = [m for m in mappings if m["FunctionArn"] == functions["sync"]["arn"]]
    assert mapping["EventSourceArn"] == stream_arn == functions["sync"]["event_source"]["stream_arn"]
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] == settings["sync"]["maximum_retry_attempts"]
    queue_url = deployment.outputs["dynamodb_migration_sync_failures_queue_url"]
    queue_arn = deployment.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == queue_arn["Attributes"]["QueueArn"]
    assert functions["sync"]["event_source"]["dlq_url"] == queue_url
    assert (
        lam.get_function_concurrency(FunctionName=functions["copy"]["function_name"])["ReservedConcurrentExecutions"]
        == 1
    )

    target = dynamodb.describe_table(TableName=settings["target"]["name"])["Table"]
    assert [k["AttributeName"] for k in target["KeySchema"]] == ["id", "preferenceType"]
    assert target["SSEDescription"]["Status"] == "ENABLED"
    assert target["SSEDescription"]["KMSMasterKeyArn"] == deployment.outputs["kms_key_arn"]
    assert target["TableArn"] == deployment.outputs["dynamodb_migration_target_table_arn"]
    state = deployment.outputs["dynamodb_migration_state_table_name"]
    ttl = dynamodb.describe_time_to_live(TableName=state)["TimeToLiveDescription"]
    assert ttl == {"AttributeName": "expires_at", "TimeToLiveStatus": "ENABLED"}
    backups = dynamodb.describe_continuous_backups(TableName=state)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    for role, function in functions.items():
        variables = function["environment_variables"]
        assert variables["MIGRATION_FUNCTION"] == role and variables["SOURCE_STREAM_ARN"] == stream_arn
        assert variables["STATE_TABLE"] == state and variables["TARGET_TABLE"] == target["TableName"]

    iam = deployment.client("iam")
    table = source["TableArn"].rsplit("/", 1)[0]
    state_arn = f"{table}/{state}"

    def grants(role: str) -> dict[str, set[str]]:
        function = functions[role]
        name = f"{function['function_name']}-least-privilege"
        document = iam.get_role_policy(RoleName=function["role_name"], PolicyName=name)["PolicyDocument"]
        document = document if isinstance(document, str) else json.dumps(document)
        found: dict[str, set[str]] = {}
        for statement in tfkit.statements_from_json(document, name, "identity"):
            for action in statement.actions:
                if action.startswith(("dynamodb:", "sqs:", "sns:")):
                    found.setdefault(action, set()).update(statement.resources)
        return found

    assert grants("sync") == {
        "dynamodb:PutItem": {target["TableArn"]},
        "dynamodb:DeleteItem": {target["TableArn"]},
        "dynamodb:UpdateItem": {state_arn},
        "dynamodb:DescribeStream": {stream_arn},
        "dynamodb:GetRecords": {stream_arn},
        "dynamodb:GetShardIterator": {stream_arn},
        "dynamodb:ListStreams": {"*"},
        "sqs:SendMessage": {queue_arn["Attributes"]["QueueArn"]},
    }
    assert grants("copy")["dynamodb:Scan"] == {source["TableArn"]}
    assert grants("copy")["dynamodb:BatchWriteItem"] == {target["TableArn"]}
    assert grants("verify")["sns:Publish"] == {deployment.outputs["dynamodb_migration_results_topic_arn"]}


def test_cdc_lake_wiring_staging_bucket_to_the_partitioner(deployment: Deployment) -> None:
    """DMS's staging folder notifies the partitioner's queue; the function knows both buckets and
    the tables it applies."""
    function, lake = deployment.functions["cdc_lake"], deployment.outputs["cdc_lake"]
    source = function["event_source"]
    assert source["bucket"] == lake["staging_bucket"] == f"{PREFIX}-cdc-staging"
    (topic,) = deployment.client("s3").get_bucket_notification_configuration(Bucket=source["bucket"])[
        "TopicConfigurations"
    ]
    assert topic["TopicArn"] == source["topic_arn"] and topic["Events"] == ["s3:ObjectCreated:*"]
    assert [r["Value"] for r in topic["Filter"]["Key"]["FilterRules"]] == ["dms/"]
    variables = function["environment_variables"]
    assert (variables["STAGING_BUCKET"], variables["STAGING_FOLDER"]) == (lake["staging_bucket"], "dms")
    assert (variables["LAKE_BUCKET"], variables["LAKE_PREFIX"]) == (lake["lake_bucket"], "cdc")
    assert json.loads(variables["APPLY_TABLES"]) == [
        {"source": "sales.customers", "target": "replica.customers"},
        {"source": "sales.orders", "target": "replica.orders"},
    ]
    assert variables["DELETE_STAGED"] == "true" and variables["CHANGE_SEQUENCE_COLUMN"] == "dms_change_seq"
    arrived = _keys_reaching_the_queue(
        deployment,
        ["elsewhere/x.csv", "dms/sales/orders/LOAD00000001.csv"],
        "dms/sales/orders/LOAD00000001.csv",
        "cdc_lake",
    )
    assert "elsewhere/x.csv" not in arrived


def _dms(deployment: Deployment) -> dict[str, Any]:
    return deployment.outputs["cdc_lake"]["dms"]


def test_dms_source_endpoint_reads_the_secret_through_its_role(deployment: Deployment) -> None:
    dms, lake = deployment.client("dms"), deployment.outputs["cdc_lake"]
    (endpoint,) = dms.describe_endpoints(
        Filters=[{"Name": "endpoint-arn", "Values": [_dms(deployment)["source_endpoint_arn"]]}]
    )["Endpoints"]
    assert (endpoint["EndpointType"].lower(), endpoint["EngineName"], endpoint["SslMode"]) == (
        "source",
        "postgres",
        "require",
    )
    assert endpoint["KmsKeyId"] == deployment.outputs["kms_key_arn"]
    settings = endpoint["PostgreSQLSettings"]
    assert (settings["DatabaseName"], settings["SecretsManagerSecretId"]) == ("cdc_source", lake["source_secret_arn"])
    role = settings["SecretsManagerAccessRoleArn"].split("/")[-1]
    assert role == f"{PREFIX}-cdc-lake-dms-source"
    assert not {"Username", "ServerName", "Port"} & set(endpoint)
    secret = deployment.client("secretsmanager").describe_secret(SecretId=lake["source_secret_arn"])
    assert secret["KmsKeyId"] in (deployment.outputs["kms_key_arn"], deployment.outputs["kms_key_arn"].split("/")[-1])


def test_dms_target_writes_the_staging_folder_as_the_partitioner_reads_it(deployment: Deployment) -> None:
    dms, lake = deployment.client("dms"), deployment.outputs["cdc_lake"]
    (endpoint,) = dms.describe_endpoints(
        Filters=[{"Name": "endpoint-arn", "Values": [_dms(deployment)["target_endpoint_arn"]]}]
    )["Endpoints"]
    account = deployment.client("sts").get_caller_identity()["Account"]
    expected = {
        "BucketName": lake["staging_bucket"],
        "BucketFolder": "dms",
        "DataFormat": "csv",
        "AddColumnName": True,
        "IncludeOpForFullLoad": True,
        "TimestampColumnName": "dms_commit_ts",
        "UseTaskStartTimeForFullLoadTimestamp": True,
        "CdcMaxBatchInterval": 5,
        "CdcMinFileSize": 32000,
        "DatePartitionEnabled": False,
        "EncryptionMode": "SSE_KMS",
        "ServerSideEncryptionKmsKeyId": deployment.outputs["kms_key_arn"],  # set by the provider's ModifyEndpoint
        "ExpectedBucketOwner": account,
    }
    settings = endpoint["S3Settings"]
    assert {k: settings.get(k) for k in expected} == expected
    assert settings["ServiceAccessRoleArn"].endswith(f"/{PREFIX}-cdc-lake-dms-target")
    assert _dms(deployment)["staging"]["change_sequence_column_name"] == "dms_change_seq"


def test_dms_replication_is_private_encrypted_and_replicates_the_mapped_tables(deployment: Deployment) -> None:
    dms, outputs = deployment.client("dms"), _dms(deployment)
    (instance,) = dms.describe_replication_instances(
        Filters=[{"Name": "replication-instance-arn", "Values": [outputs["replication_instance_arn"]]}]
    )["ReplicationInstances"]
    assert instance["PubliclyAccessible"] is False and not instance.get("ReplicationInstancePublicIpAddresses")
    assert instance["KmsKeyId"] == deployment.outputs["kms_key_arn"]
    assert [g["VpcSecurityGroupId"] for g in instance["VpcSecurityGroups"]] == [outputs["security_group_id"]]
    assert (instance["ReplicationInstanceClass"], instance["AllocatedStorage"], instance["MultiAZ"]) == (
        "dms.t3.medium",
        50,
        False,
    )
    assert instance["ReplicationSubnetGroup"]["ReplicationSubnetGroupIdentifier"] == f"{PREFIX}-cdc-lake"
    # moto answers a placeholder subnet list (subnet-12345) for the group: its subnets are read from
    # the state, what the provider applied.
    (group,) = [r for r in deployment.resources if r["type"] == "aws_dms_replication_subnet_group"]
    assert set(group["values"]["subnet_ids"]) == set(deployment.outputs["network"]["private_subnet_ids"])

    (task,) = dms.describe_replication_tasks(
        Filters=[{"Name": "replication-task-arn", "Values": [outputs["replication_task_arn"]]}]
    )["ReplicationTasks"]
    assert (task["MigrationType"], task["Status"]) == ("full-load-and-cdc", "ready")  # not started
    assert (task["SourceEndpointArn"], task["TargetEndpointArn"]) == (
        outputs["source_endpoint_arn"],
        outputs["target_endpoint_arn"],
    )
    assert task["TableMappings"] == outputs["table_mappings"]
    rules = json.loads(task["TableMappings"])["rules"]
    assert [
        (r["rule-action"], r["object-locator"]["table-name"], r["object-locator"].get("column-name")) for r in rules
    ] == [
        ("include", "customers", None),
        ("include", "orders", None),
        ("remove-column", "orders", "card_number"),
        ("add-column", "%", None),
    ]
    settings = json.loads(task["ReplicationTaskSettings"])
    assert settings["Logging"]["EnableLogging"] is True
    assert settings["FullLoadSettings"]["TargetTablePrepMode"] == "DO_NOTHING"


def test_dms_security_group_reaches_only_the_source_and_the_endpoints(deployment: Deployment) -> None:
    group = _dms(deployment)["security_group_id"]
    rules = deployment.client("ec2").describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group]}])[
        "SecurityGroupRules"
    ]
    assert [r for r in rules if not r["IsEgress"]] == []
    egress = {
        (r["FromPort"], r.get("CidrIpv4") or r.get("PrefixListId") or r["ReferencedGroupInfo"]["GroupId"])
        for r in rules
        if r["IsEgress"]
    }
    endpoints = deployment.client("ec2").describe_vpc_endpoints(
        Filters=[{"Name": "vpc-id", "Values": [deployment.outputs["network"]["vpc_id"]]}]
    )["VpcEndpoints"]
    (s3_prefix_list,) = {
        p["PrefixListId"]
        for p in deployment.client("ec2").describe_managed_prefix_lists()["PrefixLists"]
        if p["PrefixListName"] == f"com.amazonaws.{REGION}.s3"
    }
    (endpoint_group,) = {g["GroupId"] for e in endpoints if e["VpcEndpointType"] == "Interface" for g in e["Groups"]}
    assert egress == {(5432, "127.0.0.1/32"), (443, s3_prefix_list), (443, endpoint_group)}


def test_dms_account_wide_roles_and_events(deployment: Deployment) -> None:
    """local.tfvars creates the account-wide roles (one deployment per account); DMS's failure and
    state events reach the alarm topic, whose policy and key let DMS publish."""
    iam = deployment.client("iam")
    for name, policy in (
        ("dms-vpc-role", "AmazonDMSVPCManagementRole"),
        ("dms-cloudwatch-logs-role", "AmazonDMSCloudWatchLogsRole"),
        ("dms-access-for-endpoint", "AmazonDMSRedshiftS3Role"),
    ):
        attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
        assert [p["PolicyArn"] for p in attached] == [f"arn:aws:iam::aws:policy/service-role/{policy}"]
        assert iam.get_role(RoleName=name)["Role"]["Path"] == "/"
    account = deployment.client("sts").get_caller_identity()["Account"]
    for role in (f"{PREFIX}-cdc-lake-dms-source", f"{PREFIX}-cdc-lake-dms-target"):
        trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
        (statement,) = (json.loads(trust) if isinstance(trust, str) else trust)["Statement"]
        assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": account}}, role

    subscriptions = deployment.client("dms").describe_event_subscriptions()["EventSubscriptionsList"]
    by_type = {s["SourceType"]: s for s in subscriptions if s["CustSubscriptionId"].startswith(PREFIX)}
    assert sorted(by_type["replication-instance"]["EventCategoriesList"]) == ["failover", "failure", "low storage"]
    assert sorted(by_type["replication-task"]["EventCategoriesList"]) == ["failure", "state change"]
    assert {s["SnsTopicArn"] for s in by_type.values()} == {deployment.outputs["alarm_topic_arn"]}
    for subscription in by_type.values():
        assert subscription["SourceIdsList"] == [f"{PREFIX}-cdc-lake"] and subscription["Enabled"] is True
    topic = deployment.client("sns").get_topic_attributes(TopicArn=deployment.outputs["alarm_topic_arn"])["Attributes"]
    publishers = [s["Principal"] for s in json.loads(topic["Policy"])["Statement"] if s["Effect"] == "Allow"]
    assert {"Service": "dms.amazonaws.com"} in publishers


def test_glue_catalog_projects_the_lake_partitions(deployment: Deployment) -> None:
    """One table per catalogued replicated table over the lake's hour partitions, projected, so
    Athena reads a new partition without a crawler."""
    lake = deployment.outputs["cdc_lake"]
    glue = deployment.client("glue")
    database = lake["catalog"]["database"]
    assert database == f"{PREFIX}_cdc_lake".replace("-", "_")
    tables = {t["Name"]: t for t in glue.get_tables(DatabaseName=database)["TableList"]}
    assert set(tables) == set(lake["catalog"]["tables"]) == {"sales_customers", "sales_orders"}
    orders = tables["sales_orders"]
    parameters = orders["Parameters"]
    assert parameters["projection.enabled"] == "true"
    assert parameters["storage.location.template"] == (
        f"s3://{lake['lake_bucket']}/cdc/sales/orders/year=${{year}}/month=${{month}}/day=${{day}}/hour=${{hour}}"
    )
    assert [
        (parameters[f"projection.{k}.type"], parameters[f"projection.{k}.digits"])
        for k in ("year", "month", "day", "hour")
    ] == [
        ("integer", "4"),
        ("integer", "2"),
        ("integer", "2"),
        ("integer", "2"),
    ]
    assert parameters["skip.header.line.count"] == "1"
    assert [k["Name"] for k in orders["PartitionKeys"]] == ["year", "month", "day", "hour"]
    descriptor = orders["StorageDescriptor"]
    assert descriptor["SerdeInfo"]["SerializationLibrary"] == "org.apache.hadoop.hive.serde2.OpenCSVSerde"
    # The file's columns in order; the excluded card_number is not among them.
    assert [(c["Name"], c["Type"]) for c in descriptor["Columns"]] == [
        ("op", "string"),
        ("dms_commit_ts", "string"),
        ("order_id", "bigint"),
        ("customer_id", "bigint"),
        ("status", "string"),
        ("amount", "decimal(12,2)"),
        ("dms_change_seq", "string"),
    ]


def test_buckets_are_hardened(deployment: Deployment) -> None:
    s3 = deployment.client("s3")
    for bucket in deployment.outputs["buckets"].values():
        encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert encryption["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values()) and len(block) == 4
        ownership = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
        assert ownership == [{"ObjectOwnership": "BucketOwnerEnforced"}]
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        deny = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
        assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_every_queue_is_encrypted_and_tls_only(deployment: Deployment) -> None:
    sqs = deployment.client("sqs")
    urls = sqs.list_queues(QueueNamePrefix=PREFIX)["QueueUrls"]
    # file loader and CDC lake queues and their DLQs, migrations DLQ (event_queue's, without a
    # queue), DynamoDB sync failures
    assert len(urls) == 6
    for url in urls:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attributes["SqsManagedSseEnabled"] == "true", url
        deny = [s for s in json.loads(attributes["Policy"])["Statement"] if s["Effect"] == "Deny"]
        assert [(s["Principal"], s["Action"], s["Resource"], s["Condition"]) for s in deny] == [
            ("*", "sqs:*", attributes["QueueArn"], {"Bool": {"aws:SecureTransport": "false"}})
        ], url


def test_database_is_private_and_encrypted(deployment: Deployment) -> None:
    rds = deployment.client("rds")
    (instance,) = rds.describe_db_instances(DBInstanceIdentifier=deployment.outputs["database"]["identifier"])[
        "DBInstances"
    ]
    assert instance["PubliclyAccessible"] is False
    assert instance["StorageEncrypted"] is True
    assert instance["MasterUserSecret"]["SecretArn"] == deployment.outputs["database"]["master_user_secret_arn"]
    assert [g["VpcSecurityGroupId"] for g in instance["VpcSecurityGroups"]] == [
        deployment.outputs["network"]["database_security_group_id"]
    ]
    # The database group admits PostgreSQL from the Lambda group only.
    ec2 = deployment.client("ec2")
    rules = ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [deployment.outputs["network"]["database_security_group_id"]]}]
    )["SecurityGroupRules"]
    ingress = [r for r in rules if not r["IsEgress"]]
    sources = {r.get("ReferencedGroupInfo", {}).get("GroupId") for r in ingress}
    assert sources == {deployment.outputs["network"]["lambda_security_group_id"]}
    assert all((r["FromPort"], r["ToPort"]) == (5432, 5432) and not r.get("CidrIpv4") for r in ingress)


def test_deployed_iam_is_least_privilege(deployment: Deployment) -> None:
    """Every policy of the applied state, now with every ARN known, passes the same check as the
    plans; and the inline policies IAM holds are the ones Terraform wrote."""
    statements = tfkit.state_statements(deployment.state)
    findings = tfkit.iam_findings(statements)
    assert not findings, "over-broad IAM statements:\n" + "\n".join(findings)
    assert {s.kind for s in statements} == {"identity", "trust", "key", "resource"}

    iam = deployment.client("iam")
    for name, function in deployment.functions.items():
        names = iam.list_role_policies(RoleName=function["role_name"])["PolicyNames"]
        # The backfill may also disable its own schedule (test_backfill_schedule_... reads it).
        own_schedule = [f"{function['function_name']}-own-schedule"] if name == "backfill" else []
        assert sorted(names) == sorted([f"{function['function_name']}-least-privilege", *own_schedule]), name
        document = iam.get_role_policy(
            RoleName=function["role_name"], PolicyName=f"{function['function_name']}-least-privilege"
        )["PolicyDocument"]
        document = document if isinstance(document, str) else json.dumps(document)
        live = tfkit.statements_from_json(document, function["role_name"], "identity")
        assert not tfkit.iam_findings(live)
        assert iam.list_attached_role_policies(RoleName=function["role_name"])["AttachedPolicies"] == []
        resources = {r for s in live for r in s.resources}
        log_group = f"arn:aws:logs:{REGION}:{function['arn'].split(':')[4]}:log-group:{function['log_group_name']}:*"
        assert log_group in resources, name
        if name == "file_loader":
            bucket = function["event_source"]["bucket"]
            assert {f"arn:aws:s3:::{bucket}/sales/*", f"arn:aws:s3:::{bucket}/customers/*"} <= resources
            assert function["event_source"]["queue_arn"] in resources
        if name == "schema_migrations":
            assert deployment.outputs["schema_migrations_results_topic_arn"] in resources
        master = deployment.outputs["database"]["master_user_secret_arn"]
        if _uses_database(deployment, name):
            assert master in resources
        elif name == "backfill":
            assert deployment.outputs["backfill_source_secret_arn"] in resources and master not in resources
        else:
            assert not [s for s in live if any(a.startswith("secretsmanager:") for a in s.actions)], name


def test_the_minimal_example_deploys_the_file_loader_alone(deployments: dict[str, Deployment]) -> None:
    """examples/minimal as a user applies it: only the file loader's function, with the network,
    database and key it needs, and a file under its route prefix reaches the function's queue."""
    example = deployments["minimal"]
    enabled = {p for p, entry in example.outputs["pipelines"].items() if entry["enabled"]}
    assert enabled == {"file_loader"}
    assert set(example.functions) == _deployed_functions(example) == {"file_loader"}
    names = [f["FunctionName"] for f in example.client("lambda").list_functions()["Functions"]]
    assert [n for n in names if n.startswith(EXAMPLE_PREFIX)] == [example.functions["file_loader"]["function_name"]]
    assert example.outputs["landing_bucket"] == f"{EXAMPLE_PREFIX}-landing"
    (instance,) = example.client("rds").describe_db_instances(DBInstanceIdentifier=EXAMPLE_PREFIX)["DBInstances"]
    variables = example.functions["file_loader"]["environment_variables"]
    assert variables["DB_HOST"] == instance["Endpoint"]["Address"] == example.outputs["database"]["endpoint"]
    assert not [
        s for s in example.client("scheduler").list_schedules()["Schedules"] if s["Name"].startswith(EXAMPLE_PREFIX)
    ]
    arrived = _keys_reaching_the_queue(example, ["incoming/day 1.csv"], "incoming/day 1.csv")
    assert arrived == ["incoming/day 1.csv"]


def test_the_localstack_check_finds_every_piece_the_outputs_name(deployment: Deployment) -> None:
    """scripts/localstack.py's check, which `make tflocal-apply` runs after applying to LocalStack,
    reads this deployment back through localstack-client (moto in LocalStack's place) from the real
    root's outputs and finds nothing missing."""
    report = check_deployment(deployment.outputs, localstack_clients(urlparse(deployment.endpoint).netloc, REGION))
    assert report.problems == []
    checked = "\n".join(report.checked)
    for key, function in deployment.functions.items():
        assert f"function {function['function_name']} ({key})" in checked
    assert f"event source mapping {deployment.functions['file_loader']['event_source']['queue_arn']}" in checked
    assert f"schedule {deployment.functions['backfill']['function_name']}" in checked
    for purpose in deployment.outputs["buckets"]:
        assert f"policy of {purpose} bucket" in checked


def test_destroy_removes_everything(deployments: dict[str, Deployment]) -> None:
    with ThreadPoolExecutor(max_workers=len(deployments)) as pool:
        for result in pool.map(Deployment.destroy, deployments.values()):
            result.check()
    for name, deployment in deployments.items():
        state = json.loads(tfkit.terraform(deployment.directory, "show", "-json", env=deployment.env).check().stdout)
        assert not state.get("values", {}).get("root_module", {}).get("resources"), name
    for prefix, deployment in ((PREFIX, deployments["local"]), (EXAMPLE_PREFIX, deployments["minimal"])):
        client = deployment.client
        names = [f["FunctionName"] for f in client("lambda").list_functions()["Functions"]]
        assert not [n for n in names if n.startswith(prefix)]
        buckets = [b["Name"] for b in client("s3").list_buckets()["Buckets"]]
        assert not [b for b in buckets if b.startswith(prefix)]
        assert client("sqs").list_queues(QueueNamePrefix=prefix).get("QueueUrls", []) == []
        instances = client("rds").describe_db_instances()["DBInstances"]
        assert not [i for i in instances if i["DBInstanceIdentifier"].startswith(prefix)]
    # Only the source table is left, which is the application's (created before the apply).
    settings = local_settings()
    dynamodb = deployments["local"].client("dynamodb")
    tables = dynamodb.list_tables()["TableNames"]
    assert settings["source_table_name"] in tables
    assert settings["target"]["name"] not in tables and f"{PREFIX}-dynamodb-migration-state" not in tables
    dynamodb.delete_table(TableName=settings["source_table_name"])
    dms = deployments["local"].client("dms")
    assert dms.describe_replication_tasks()["ReplicationTasks"] == []
    assert dms.describe_replication_instances()["ReplicationInstances"] == []
    assert dms.describe_endpoints()["Endpoints"] == []
    assert dms.describe_event_subscriptions()["EventSubscriptionsList"] == []
    roles = {r["RoleName"] for r in deployments["local"].client("iam").list_roles()["Roles"]}
    assert not {"dms-vpc-role", "dms-cloudwatch-logs-role", "dms-access-for-endpoint"} & roles
    assert deployments["local"].client("glue").get_databases()["DatabaseList"] == []
