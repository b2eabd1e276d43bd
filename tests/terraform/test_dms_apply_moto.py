"""modules/dms applied to the project's moto server (scripts/localenv/moto_server.py) with the real
provider, read back through boto3, then destroyed; and a missing account-wide role reported at plan
by the module's IAM lookup.

The replication instance flavour is applied (DMS Serverless is plan-only: moto has no
replication configs). Each deployment runs in its own moto account (credentials of a role assumed
there), so the account-wide roles it creates or lacks never meet those of another test. Tests run
in file order; the last one destroys everything and checks it is gone.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.terraform import tfkit

pytestmark = pytest.mark.slow

REGION = "us-east-1"
ACCOUNT = "210987654321"  # where the module is applied
EMPTY_ACCOUNT = "310987654321"  # where the account-wide roles are missing
NAME = "tfcheck-dms"
SOURCE_HOST = "10.31.1.15"


def _account_credentials(endpoint: str, account: str) -> dict[str, str]:
    """Environment credentials of a role assumed in `account` (moto keeps each account apart)."""
    sts = boto3.client("sts", endpoint_url=endpoint, region_name=REGION)
    credentials = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/tfcheck", RoleSessionName="tfcheck")
    return {
        "AWS_ACCESS_KEY_ID": credentials["Credentials"]["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["Credentials"]["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["Credentials"]["SessionToken"],
    }


@dataclass
class Account:
    endpoint: str
    credentials: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.credentials["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.credentials["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=self.credentials["AWS_SESSION_TOKEN"],
        )


def _prerequisites(account: Account) -> dict[str, Any]:
    """What the module is given: a VPC with two subnets, the interface endpoints' group, the S3
    prefix list, a KMS key, the staging bucket, the source secret and the alarm topic."""
    ec2 = account.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.31.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.31.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")["Subnet"][
            "SubnetId"
        ]
        for i, zone in ((10, "a"), (11, "b"))
    ]
    endpoints_group = ec2.create_security_group(GroupName="endpoints", Description="endpoints", VpcId=vpc)["GroupId"]
    (s3_prefix_list,) = [
        p["PrefixListId"]
        for p in ec2.describe_managed_prefix_lists()["PrefixLists"]
        if p["PrefixListName"] == f"com.amazonaws.{REGION}.s3"
    ]
    key = account.client("kms").create_key(Description="dms")["KeyMetadata"]["Arn"]
    account.client("s3").create_bucket(Bucket=f"{NAME}-staging")
    secret = account.client("secretsmanager").create_secret(
        Name=f"{NAME}/source",
        SecretString=json.dumps({"username": "dms", "password": "x", "host": SOURCE_HOST, "port": 1433}),
    )["ARN"]
    topic = account.client("sns").create_topic(Name=f"{NAME}-alarms")["TopicArn"]
    return {
        "name": NAME,
        "vpc_id": vpc,
        "subnet_ids": subnets,
        "https_egress_prefix_list_ids": [s3_prefix_list],
        "https_egress_security_group_ids": [endpoints_group],
        "kms_key_arn": key,
        "source_database": {
            "engine": "sqlserver",
            "database_name": "sales",
            "secret_arn": secret,
            "cidr_blocks": [f"{SOURCE_HOST}/32"],
        },
        "target": {"bucket_name": f"{NAME}-staging", "bucket_folder": "cdc/sales", "kms_key_arn": key},
        "table_mappings": [
            {"schema": "dbo", "table": "orders", "exclude_columns": ["card_number"]},
            {"schema": "dbo", "table": "customers"},
        ],
        "change_sequence_column_name": "dms_change_seq",
        "create_dms_iam_roles": True,
        "alarm_topic_arn": topic,
        "tags": {"Team": "data"},
    }


def _plans_reusing_the_roles(
    endpoint: str, directory: Path, tf_env: dict[str, str], inputs: dict[str, Any]
) -> tuple[tfkit.Result, tfkit.Result]:
    """Plans of the deployment's inputs with create_dms_iam_roles = false in EMPTY_ACCOUNT: first
    with dms-cloudwatch-logs-role at /service-role/ only, then with it at / (where DMS looks)."""
    account = Account(endpoint, _account_credentials(endpoint, EMPTY_ACCOUNT))
    iam = account.client("iam")
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    iam.create_role(RoleName="dms-vpc-role", AssumeRolePolicyDocument=trust)
    iam.create_role(RoleName="dms-cloudwatch-logs-role", Path="/service-role/", AssumeRolePolicyDocument=trust)
    tfkit.module_root(directory, "dms", {"dms": {**inputs, "create_dms_iam_roles": False}})
    tfkit.write_moto_provider(directory, endpoint, REGION)
    env = {**tf_env, **account.credentials}
    tfkit.init(directory, env)
    args = ["plan", "-refresh=false", "-lock=false", "-input=false", "-no-color"]
    missing = tfkit.terraform(directory, *args, env=env)
    # Role names are unique across paths: the misplaced one goes before the right one is made.
    iam.delete_role(RoleName="dms-cloudwatch-logs-role")
    iam.create_role(RoleName="dms-cloudwatch-logs-role", AssumeRolePolicyDocument=trust)
    return missing, tfkit.terraform(directory, *args, env=env)


@dataclass
class Deployment:
    account: Account
    directory: Path
    env: dict[str, str]
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    state: dict[str, Any]
    # Planned while the apply runs; a failure there fails its own test only.
    plans_reusing_the_roles: Future[tuple[tfkit.Result, tfkit.Result]]
    destroyed: bool = False

    def destroy(self) -> tfkit.Result:
        # The state is the apply's own: no refresh (it would read every resource back first).
        args = [
            "destroy",
            "-auto-approve",
            "-refresh=false",
            "-input=false",
            "-no-color",
            "-lock=false",
            "-parallelism=20",
        ]
        return tfkit.terraform(self.directory, *args, env=self.env, timeout=900)


@pytest.fixture(scope="module")
def deployment(
    moto_server: str, tmp_path_factory: pytest.TempPathFactory, tf_env: dict[str, str]
) -> Iterator[Deployment]:
    account = Account(moto_server, _account_credentials(moto_server, ACCOUNT))
    inputs = _prerequisites(account)
    directory = tfkit.module_root(tmp_path_factory.mktemp("dms-apply"), "dms", {"dms": inputs})
    tfkit.write_moto_provider(directory, moto_server, REGION)
    env = {**tf_env, **account.credentials}
    tfkit.init(directory, env)
    # The apply mostly waits on the provider's polling: the reuse plans (another account) run meanwhile.
    with ThreadPoolExecutor(max_workers=1) as pool:
        reuse = pool.submit(_plans_reusing_the_roles, moto_server, tmp_path_factory.mktemp("dms-reuse"), tf_env, inputs)
        started = time.monotonic()
        args = ["apply", "-auto-approve", "-input=false", "-no-color", "-lock=false", "-parallelism=20"]
        tfkit.terraform(directory, *args, env=env, timeout=900).check()
        account.timings["apply"] = time.monotonic() - started
    outputs = json.loads(tfkit.terraform(directory, "output", "-json", env=env).check().stdout)["dms"]["value"]
    state = json.loads(tfkit.terraform(directory, "show", "-json", env=env).check().stdout)
    deployed = Deployment(account, directory, env, inputs, outputs, state, reuse)
    yield deployed
    if not deployed.destroyed:  # a test failed before test_destroy: still clean up the shared server
        deployed.destroy()


def _managed(deployment: Deployment) -> list[dict[str, Any]]:
    def walk(module: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield from module.get("resources", [])
        for child in module.get("child_modules", []):
            yield from walk(child)

    return [r for r in walk(deployment.state["values"]["root_module"]) if r["mode"] == "managed"]


def test_every_resource_is_applied(deployment: Deployment) -> None:
    applied = Counter(r["type"] for r in _managed(deployment))
    assert applied == {
        "terraform_data": 1,
        "aws_iam_role": 5,  # the three account-wide roles, the source secret's and the target's
        "aws_iam_role_policy_attachment": 3,
        "aws_iam_role_policy": 2,
        "aws_security_group": 1,
        "aws_vpc_security_group_egress_rule": 3,
        "aws_dms_replication_subnet_group": 1,
        "aws_dms_endpoint": 1,
        "aws_dms_s3_endpoint": 1,
        "aws_dms_replication_instance": 1,
        "aws_dms_replication_task": 1,
        "aws_dms_event_subscription": 2,
    }
    print(f"\nmodules/dms: {applied.total()} resources applied to moto in {deployment.account.timings['apply']:.0f} s")


def test_source_endpoint_reads_the_secret_through_its_role(deployment: Deployment) -> None:
    dms = deployment.account.client("dms")
    (endpoint,) = dms.describe_endpoints(
        Filters=[{"Name": "endpoint-arn", "Values": [deployment.outputs["source_endpoint_arn"]]}]
    )["Endpoints"]
    assert (endpoint["EndpointType"].lower(), endpoint["EngineName"], endpoint["SslMode"]) == (
        "source",
        "sqlserver",
        "require",
    )
    assert endpoint["KmsKeyId"] == deployment.inputs["kms_key_arn"]
    assert endpoint["MicrosoftSQLServerSettings"] == {
        "DatabaseName": "sales",
        "SecretsManagerAccessRoleArn": deployment.outputs["source_secret_role_arn"],
        "SecretsManagerSecretId": deployment.inputs["source_database"]["secret_arn"],
    }
    assert not {"Username", "ServerName", "Port"} & set(endpoint)


def test_target_endpoint_writes_op_and_timestamps_with_sse_kms(deployment: Deployment) -> None:
    dms = deployment.account.client("dms")
    (endpoint,) = dms.describe_endpoints(
        Filters=[{"Name": "endpoint-arn", "Values": [deployment.outputs["target_endpoint_arn"]]}]
    )["Endpoints"]
    settings = endpoint["S3Settings"]
    key = deployment.inputs["kms_key_arn"]
    expected = {
        "BucketName": f"{NAME}-staging",
        "BucketFolder": "cdc/sales",
        "ServiceAccessRoleArn": deployment.outputs["target_role_arn"],
        "DataFormat": "csv",
        "AddColumnName": True,
        "IncludeOpForFullLoad": True,
        "TimestampColumnName": "dms_commit_ts",
        "CdcMaxBatchInterval": 60,
        "CdcMinFileSize": 32000,
        "DatePartitionEnabled": False,
        "EncryptionMode": "SSE_KMS",
        "ServerSideEncryptionKmsKeyId": key,  # set by the provider's follow-up ModifyEndpoint
        "ExpectedBucketOwner": ACCOUNT,
    }
    assert {k: settings.get(k) for k in expected} == expected


def test_replication_instance_is_private_encrypted_and_in_its_own_group(deployment: Deployment) -> None:
    dms = deployment.account.client("dms")
    (instance,) = dms.describe_replication_instances(
        Filters=[{"Name": "replication-instance-arn", "Values": [deployment.outputs["replication_instance_arn"]]}]
    )["ReplicationInstances"]
    assert instance["PubliclyAccessible"] is False and not instance.get("ReplicationInstancePublicIpAddresses")
    assert instance["KmsKeyId"] == deployment.inputs["kms_key_arn"]
    assert [g["VpcSecurityGroupId"] for g in instance["VpcSecurityGroups"]] == [deployment.outputs["security_group_id"]]
    assert instance["ReplicationSubnetGroup"]["ReplicationSubnetGroupIdentifier"] == NAME
    assert (instance["ReplicationInstanceClass"], instance["AllocatedStorage"], instance["MultiAZ"]) == (
        "dms.t3.medium",
        50,
        False,
    )
    assert instance["AutoMinorVersionUpgrade"] is True
    (group,) = dms.describe_replication_subnet_groups(
        Filters=[{"Name": "replication-subnet-group-id", "Values": [NAME]}]
    )["ReplicationSubnetGroups"]
    assert group["ReplicationSubnetGroupIdentifier"] == deployment.outputs["replication_subnet_group_id"] == NAME


def test_task_replicates_the_mapped_tables_with_logging(deployment: Deployment) -> None:
    dms = deployment.account.client("dms")
    (task,) = dms.describe_replication_tasks(
        Filters=[{"Name": "replication-task-arn", "Values": [deployment.outputs["replication_task_arn"]]}]
    )["ReplicationTasks"]
    assert task["MigrationType"] == "full-load-and-cdc"
    assert task["Status"] == "ready"  # created, not started (start_replication_task = false)
    assert task["ReplicationInstanceArn"] == deployment.outputs["replication_instance_arn"]
    assert (task["SourceEndpointArn"], task["TargetEndpointArn"]) == (
        deployment.outputs["source_endpoint_arn"],
        deployment.outputs["target_endpoint_arn"],
    )
    rules = json.loads(task["TableMappings"])["rules"]
    assert task["TableMappings"] == deployment.outputs["table_mappings"]
    assert [
        (r["rule-action"], r["object-locator"].get("table-name"), r["object-locator"].get("column-name")) for r in rules
    ] == [
        ("include", "orders", None),
        ("include", "customers", None),
        ("remove-column", "orders", "card_number"),
        ("add-column", "%", None),
    ]
    settings = json.loads(task["ReplicationTaskSettings"])
    assert settings["Logging"]["EnableLogging"] is True
    assert settings["FullLoadSettings"]["TargetTablePrepMode"] == "DO_NOTHING"


def test_security_group_reaches_only_the_source_and_https_endpoints(deployment: Deployment) -> None:
    group = deployment.outputs["security_group_id"]
    rules = deployment.account.client("ec2").describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [group]}]
    )["SecurityGroupRules"]
    assert [r for r in rules if not r["IsEgress"]] == []
    egress = {
        (
            r["IpProtocol"],
            r["FromPort"],
            r["ToPort"],
            r.get("CidrIpv4") or r.get("PrefixListId") or r["ReferencedGroupInfo"]["GroupId"],
        )
        for r in rules
        if r["IsEgress"]
    }
    assert egress == {
        ("tcp", 1433, 1433, f"{SOURCE_HOST}/32"),
        ("tcp", 443, 443, deployment.inputs["https_egress_prefix_list_ids"][0]),
        ("tcp", 443, 443, deployment.inputs["https_egress_security_group_ids"][0]),
    }


def test_roles_are_least_privilege(deployment: Deployment) -> None:
    iam = deployment.account.client("iam")
    for name, policy in (
        ("dms-vpc-role", "AmazonDMSVPCManagementRole"),
        ("dms-cloudwatch-logs-role", "AmazonDMSCloudWatchLogsRole"),
        ("dms-access-for-endpoint", "AmazonDMSRedshiftS3Role"),
    ):
        attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
        assert [p["PolicyArn"] for p in attached] == [f"arn:aws:iam::aws:policy/service-role/{policy}"]
    for output in ("source_secret_role_arn", "target_role_arn"):
        role = iam.get_role(RoleName=deployment.outputs[output].split("/")[-1])["Role"]
        trust = role["AssumeRolePolicyDocument"]
        (statement,) = (json.loads(trust) if isinstance(trust, str) else trust)["Statement"]
        assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}, output
        assert iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"] == []
    findings = tfkit.iam_findings(tfkit.state_statements(deployment.state))
    assert not findings, "over-broad IAM statements:\n" + "\n".join(findings)


def test_events_go_to_the_alarm_topic(deployment: Deployment) -> None:
    subscriptions = deployment.account.client("dms").describe_event_subscriptions()["EventSubscriptionsList"]
    by_type = {s["SourceType"]: s for s in subscriptions}
    assert set(by_type) == {"replication-instance", "replication-task"}
    assert sorted(by_type["replication-instance"]["EventCategoriesList"]) == ["failover", "failure", "low storage"]
    assert sorted(by_type["replication-task"]["EventCategoriesList"]) == ["failure", "state change"]
    for subscription in subscriptions:
        assert subscription["SourceIdsList"] == [NAME] and subscription["Enabled"] is True
        assert subscription["SnsTopicArn"] == deployment.inputs["alarm_topic_arn"]
    assert set(deployment.outputs["event_subscription_arns"]) == {"instance", "task"}


def test_a_missing_account_wide_role_is_reported_at_plan(deployment: Deployment) -> None:
    """A second deployment reuses the roles (create_dms_iam_roles = false): in an account lacking one
    (or holding it at another path, where DMS does not look) the plan fails naming it; once it
    exists, the same plan passes."""
    missing, present = deployment.plans_reusing_the_roles.result()
    message = " ".join((missing.stderr + missing.stdout).replace("│", "").split())
    assert missing.returncode == 1
    assert (
        "DMS needs the account-wide IAM role(s) dms-cloudwatch-logs-role (at path /), which this account does not "
        "have. Set create_dms_iam_roles = true in one deployment per account"
    ) in message, message[-3000:]
    present.check()


def test_destroy_removes_everything(deployment: Deployment) -> None:
    started = time.monotonic()
    deployment.destroy().check()
    deployment.destroyed = True
    deployment.account.timings["destroy"] = time.monotonic() - started
    print(f"\nmodules/dms destroyed on moto in {deployment.account.timings['destroy']:.0f} s")
    state = json.loads(tfkit.terraform(deployment.directory, "show", "-json", env=deployment.env).check().stdout)
    assert not state.get("values", {}).get("root_module", {}).get("resources")
    dms = deployment.account.client("dms")
    assert dms.describe_replication_tasks()["ReplicationTasks"] == []
    assert dms.describe_replication_instances()["ReplicationInstances"] == []
    assert dms.describe_endpoints()["Endpoints"] == []
    assert dms.describe_replication_subnet_groups()["ReplicationSubnetGroups"] == []
    assert dms.describe_event_subscriptions()["EventSubscriptionsList"] == []
    roles = {r["RoleName"] for r in deployment.account.client("iam").list_roles()["Roles"]}
    assert not {"dms-vpc-role", "dms-cloudwatch-logs-role", "dms-access-for-endpoint"} & roles
    assert not [r for r in roles if r.startswith(NAME)]
