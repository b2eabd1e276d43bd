"""The project's moto server (scripts/localenv/moto_server.py): what it corrects and adds to moto's
DMS, read on the wire as the AWS provider's Go SDK reads it, and the process the tools start."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from scripts.localdb import free_port
from tests.terraform.tfkit import REPO

REGION = "us-east-1"


def _dms(endpoint: str) -> Any:
    return boto3.client("dms", endpoint_url=endpoint, region_name=REGION)


def _wire(client: Any, operation: str) -> Callable[[], dict[str, Any]]:
    """Records the raw JSON of the next `operation` answer (before botocore parses it); call the
    returned function to read it."""
    seen: list[bytes] = []
    client.meta.events.register(
        f"after-call.dms.{operation}", lambda http_response, **_: seen.append(http_response.content)
    )
    return lambda: json.loads(seen[-1])


@pytest.fixture
def replication(moto_server: str) -> Iterator[dict[str, str]]:
    """A subnet group, an S3 target endpoint, a source endpoint, an instance and a task."""
    dms, ec2 = _dms(moto_server), boto3.client("ec2", endpoint_url=moto_server, region_name=REGION)
    name = "t-" + uuid.uuid4().hex[:10]
    vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.7.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)]
    dms.create_replication_subnet_group(
        ReplicationSubnetGroupIdentifier=name, ReplicationSubnetGroupDescription="test", SubnetIds=subnets
    )
    instance = dms.create_replication_instance(
        ReplicationInstanceIdentifier=name,
        ReplicationInstanceClass="dms.t3.micro",
        ReplicationSubnetGroupIdentifier=name,
        PubliclyAccessible=False,
    )["ReplicationInstance"]["ReplicationInstanceArn"]
    source = dms.create_endpoint(
        EndpointIdentifier=f"{name}-source", EndpointType="source", EngineName="postgres", DatabaseName="app"
    )["Endpoint"]["EndpointArn"]
    target = dms.create_endpoint(
        EndpointIdentifier=f"{name}-target",
        EndpointType="target",
        EngineName="s3",
        S3Settings={
            "BucketName": "staging",
            "BucketFolder": "dms",
            "ServiceAccessRoleArn": "arn:aws:iam::123456789012:role/r",
        },
    )["Endpoint"]["EndpointArn"]
    task = dms.create_replication_task(
        ReplicationTaskIdentifier=name,
        SourceEndpointArn=source,
        TargetEndpointArn=target,
        ReplicationInstanceArn=instance,
        MigrationType="full-load-and-cdc",
        TableMappings=json.dumps({"rules": []}),
    )["ReplicationTask"]["ReplicationTaskArn"]
    yield {"name": name, "instance": instance, "source": source, "target": target, "task": task}
    dms.delete_replication_task(ReplicationTaskArn=task)
    dms.delete_replication_instance(ReplicationInstanceArn=instance)
    for endpoint in (source, target):
        dms.delete_endpoint(EndpointArn=endpoint)
    dms.delete_replication_subnet_group(ReplicationSubnetGroupIdentifier=name)


def test_dms_timestamps_are_epoch_numbers_on_the_wire(moto_server: str, replication: dict[str, str]) -> None:
    dms = _dms(moto_server)
    instances = _wire(dms, "DescribeReplicationInstances")
    tasks = _wire(dms, "DescribeReplicationTasks")
    dms.start_replication_task(ReplicationTaskArn=replication["task"], StartReplicationTaskType="start-replication")
    dms.describe_replication_instances(
        Filters=[{"Name": "replication-instance-arn", "Values": [replication["instance"]]}]
    )
    dms.describe_replication_tasks(Filters=[{"Name": "replication-task-arn", "Values": [replication["task"]]}])

    (instance,) = instances()["ReplicationInstances"]
    (task,) = tasks()["ReplicationTasks"]
    # The Go SDK accepts a JSON number only; moto alone sends "2026-...T...".
    for value in (
        instance["InstanceCreateTime"],
        task["ReplicationTaskCreationDate"],
        task["ReplicationTaskStartDate"],
    ):
        assert isinstance(value, float) and abs(value - time.time()) < 600, value
    for key in ("FreshStartDate", "StartDate", "FullLoadStartDate"):
        assert isinstance(task["ReplicationTaskStats"][key], float)
    assert task["ReplicationTaskStats"]["StopDate"] is None  # a null stays null
    # Strings that are not timestamps in the DMS model are left alone.
    assert instance["ReplicationInstanceIdentifier"] == replication["name"]
    assert task["Status"] == "running"


def test_a_created_task_is_ready_and_then_starts_stops_and_deletes(
    moto_server: str, replication: dict[str, str]
) -> None:
    dms = _dms(moto_server)

    def status() -> str:
        (task,) = dms.describe_replication_tasks(
            Filters=[{"Name": "replication-task-arn", "Values": [replication["task"]]}]
        )["ReplicationTasks"]
        return task["Status"]

    assert status() == "ready"  # moto alone: "creating" until started, which the provider waits out
    dms.start_replication_task(ReplicationTaskArn=replication["task"], StartReplicationTaskType="start-replication")
    assert status() == "running"
    dms.stop_replication_task(ReplicationTaskArn=replication["task"])
    assert status() == "stopped"


def test_modify_endpoint_merges_the_settings(moto_server: str, replication: dict[str, str]) -> None:
    dms = _dms(moto_server)
    key = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
    answer = dms.modify_endpoint(
        EndpointArn=replication["target"],
        EngineName="s3",
        SslMode="none",
        S3Settings={"EncryptionMode": "SSE_KMS", "ServerSideEncryptionKmsKeyId": key},
    )["Endpoint"]
    (described,) = dms.describe_endpoints(Filters=[{"Name": "endpoint-arn", "Values": [replication["target"]]}])[
        "Endpoints"
    ]
    for endpoint in (answer, described):
        settings = endpoint["S3Settings"]
        assert settings["ServerSideEncryptionKmsKeyId"] == key and settings["EncryptionMode"] == "SSE_KMS"
        assert settings["BucketName"] == "staging" and settings["BucketFolder"] == "dms"  # kept
        assert endpoint["SslMode"] == "none"

    with pytest.raises(ClientError) as missing:
        dms.modify_endpoint(EndpointArn=replication["target"] + "x", SslMode="none")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundFault"


def test_event_subscriptions_are_created_described_refused_and_deleted(
    moto_server: str, replication: dict[str, str]
) -> None:
    dms = _dms(moto_server)
    topic = boto3.client("sns", endpoint_url=moto_server, region_name=REGION).create_topic(Name="dms-events")[
        "TopicArn"
    ]
    name = replication["name"] + "-task"
    created = dms.create_event_subscription(
        SubscriptionName=name,
        SnsTopicArn=topic,
        SourceType="replication-task",
        EventCategories=["failure", "state change"],
        SourceIds=[replication["name"]],
        Enabled=True,
        Tags=[{"Key": "team", "Value": "data"}],
    )["EventSubscription"]
    assert created["Status"] == "active"
    (described,) = dms.describe_event_subscriptions(SubscriptionName=name)["EventSubscriptionsList"]
    assert described["SnsTopicArn"] == topic and described["SourceIdsList"] == [replication["name"]]
    assert sorted(described["EventCategoriesList"]) == ["failure", "state change"]
    arn = f"arn:aws:dms:{REGION}:123456789012:es:{name}"
    assert dms.list_tags_for_resource(ResourceArn=arn)["TagList"][0]["Value"] == "data"

    refused = {
        "an event category the source type does not have": dict(
            SourceType="replication-task", EventCategories=["low storage"], SourceIds=[replication["name"]]
        ),
        "an unknown source type": dict(SourceType="replication-config", EventCategories=["failure"]),
        "a task that does not exist": dict(
            SourceType="replication-task", EventCategories=["failure"], SourceIds=["no-such-task"]
        ),
        "an instance id given as a task": dict(
            SourceType="replication-instance", EventCategories=["failure"], SourceIds=["no-such-instance"]
        ),
    }
    for why, arguments in refused.items():
        with pytest.raises(ClientError, match=r"Invalid|No replication"):
            dms.create_event_subscription(SubscriptionName=f"{name}-bad", SnsTopicArn=topic, **arguments)
            pytest.fail(f"accepted {why}")
    with pytest.raises(ClientError) as duplicate:
        dms.create_event_subscription(SubscriptionName=name, SnsTopicArn=topic, SourceType="replication-task")
    assert duplicate.value.response["Error"]["Code"] == "ResourceAlreadyExistsFault"

    dms.delete_event_subscription(SubscriptionName=name)
    with pytest.raises(ClientError) as gone:
        dms.describe_event_subscriptions(SubscriptionName=name)
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundFault"


def test_aws_managed_policies_can_be_attached(moto_server: str) -> None:
    iam = boto3.client("iam", endpoint_url=moto_server, region_name=REGION)
    role = "r-" + uuid.uuid4().hex[:10]
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    arn = "arn:aws:iam::aws:policy/service-role/AmazonDMSVPCManagementRole"
    iam.attach_role_policy(RoleName=role, PolicyArn=arn)
    assert [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]] == [arn]
    iam.detach_role_policy(RoleName=role, PolicyArn=arn)
    iam.delete_role(RoleName=role)


def test_stream_records_stay_in_the_stream_a_lambda_mapping_reads(moto_server: str) -> None:
    """moto alone invokes the mapped function itself on every write and empties the shard (the
    records are lost, sequence numbers start over); here every record stays for GetRecords."""
    client = lambda service: boto3.client(service, endpoint_url=moto_server, region_name=REGION)  # noqa: E731
    dynamodb, streams, lam, iam = client("dynamodb"), client("dynamodbstreams"), client("lambda"), client("iam")
    name = "t-" + uuid.uuid4().hex[:10]
    stream_arn = dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    trust = {
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    }
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    function = lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": archive.getvalue()},
    )["FunctionArn"]
    lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=function, StartingPosition="TRIM_HORIZON")

    for index in range(3):
        dynamodb.put_item(TableName=name, Item={"id": {"S": f"k{index}"}})
    dynamodb.delete_item(TableName=name, Key={"id": {"S": "k0"}})

    (shard,) = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(
        StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    assert [(r["eventName"], r["dynamodb"]["Keys"]["id"]["S"]) for r in records] == [
        ("INSERT", "k0"),
        ("INSERT", "k1"),
        ("INSERT", "k2"),
        ("REMOVE", "k0"),
    ]
    sequence = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert sequence == sorted(set(sequence))


def test_the_module_runs_as_the_moto_server_process() -> None:
    """`python -m scripts.localenv.moto_server -H ... -p ...` replaces `python -m moto.server`:
    it serves the corrected DMS and stops cleanly on SIGTERM."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.localenv.moto_server", "-H", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert f"http://127.0.0.1:{port}" in process.stdout.readline()
        dms = _dms(f"http://127.0.0.1:{port}")
        dms.create_replication_instance(ReplicationInstanceIdentifier="p", ReplicationInstanceClass="dms.t3.micro")
        answer = _wire(dms, "DescribeReplicationInstances")
        dms.describe_replication_instances()
        assert isinstance(answer()["ReplicationInstances"][0]["InstanceCreateTime"], float)
    finally:
        process.terminate()
        returncode = process.wait(timeout=30)
    assert returncode == 0
