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
moto). Tests run in file order; the last one destroys everything and checks it is gone.
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

import hcl2
import pytest

from pipeline_common.events import s3_objects
from scripts.localdb import free_port
from scripts.localenv.wiring import wiring_from_state
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


def _deployed_functions(deployment: Deployment) -> set[str]:
    """What the `pipelines` output says the enabled pipelines deploy."""
    return {f for p in deployment.outputs["pipelines"].values() if p["enabled"] for f in p["functions"]}


def test_outputs_describe_every_function(deployment: Deployment) -> None:
    functions = deployment.functions
    assert set(functions) == _deployed_functions(deployment) == set(tfkit.pipeline_table())
    names = {function["function_name"] for function in functions.values()}
    assert len(names) == len(functions) and all(n.startswith(f"{PREFIX}-") for n in names)
    for name, function in functions.items():
        for key in ("arn", "role_arn", "handler", "timeout", "memory_size", "environment_variables", "event_source"):
            assert function[key] not in (None, ""), (name, key)
        assert function["handler"] == f"{name}.handler.handler"
        assert name in deployment.outputs["pipelines"][function["pipeline"]]["functions"]
    assert functions["file_loader"]["trigger"] == "sqs"
    assert functions["schema_migrations"]["trigger"] == "eventbridge"
    assert functions["table_sync"]["trigger"] == "schedule"
    database = deployment.outputs["database"]
    assert database["port"] == 5432 and database["name"] == "pipelines"
    assert database["endpoint"] and database["master_user_secret_arn"].startswith("arn:aws:secretsmanager:")
    assert deployment.outputs["buckets"] == {"landing": f"{PREFIX}-landing", "migrations": f"{PREFIX}-migrations"}
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
        assert config["Runtime"] == "python3.12" and config["Handler"] == f"{name}.handler.handler"
        assert config["Timeout"] == expected["timeout"] and config["MemorySize"] == expected["memory_size"]
        assert config["Environment"]["Variables"] == expected["environment_variables"]
        assert config["VpcConfig"]["SubnetIds"] and sorted(config["VpcConfig"]["SubnetIds"]) == sorted(
            network["private_subnet_ids"]
        )
        assert network["lambda_security_group_id"] in config["VpcConfig"]["SecurityGroupIds"]
        variables = config["Environment"]["Variables"]
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
    assert by_service["s3"]["VpcEndpointType"] == "Gateway"
    assert sorted(by_service["s3"]["RouteTableIds"]) == sorted(network["private_route_table_ids"])
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
        ["s3", "secretsmanager", "sqs", "sns", "logs", "sts"]
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


def _keys_reaching_the_queue(deployment: Deployment, keys: list[str], expected: str) -> list[str]:
    """Put objects under these keys into the file loader's bucket and read the S3 events that reach
    its queue (moto cannot run the function, so the messages stay there) until `expected` does."""
    source = deployment.functions["file_loader"]["event_source"]
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
    assert len(urls) == 3  # file loader queue and DLQ, migrations DLQ (event_queue's, without a queue)
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
        assert names == [f"{function['function_name']}-least-privilege"], name
        document = iam.get_role_policy(RoleName=function["role_name"], PolicyName=names[0])["PolicyDocument"]
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
        assert deployment.outputs["database"]["master_user_secret_arn"] in resources


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
