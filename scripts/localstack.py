"""LocalStack: prepare a bring-your-own database for `make tflocal-apply`, then read the deployment
back and say what is missing.

    python -m scripts.localstack prepare --output build/tflocal/database.tfvars.json --db-host pipelines-postgres ...
    python -m scripts.localstack check --terraform-dir build/tflocal

LocalStack's community edition has no RDS, so the root runs with `create_database = false` against a
PostgreSQL the Lambda containers can reach (docs/local.md). `prepare` creates, in LocalStack, what
that option needs to exist before the apply: the master user's secret and the database's security
group, and writes their ids with the host, port and name as a -var-file.

`check` reads the root's outputs (`terraform output -json`), as tests/terraform/test_apply_moto.py
does, and asks LocalStack through `localstack-client` for every piece they name: functions (handler,
role, environment), queues with their dead-letter queues and policies, event source mappings,
topics and their subscriptions, schedules, buckets with their notifications, policies and public
access blocks. It prints one line per missing or different piece and exits 1 if there is any.
The LocalStack endpoint is `--localstack-host` (host:port), else $LOCALSTACK_HOST, else
localhost:4566; $AWS_ENDPOINT_URL wins over all (localstack-client's rules).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from localstack_client.session import Session

ClientFactory = Callable[[str], Any]
TLS_ONLY = {"Bool": {"aws:SecureTransport": "false"}}
# Errors meaning "there is no such thing", per API (LocalStack and moto answer as AWS does).
NOT_FOUND = {
    "404",
    "NoSuchBucket",
    "NoSuchBucketPolicy",
    "NoSuchPublicAccessBlockConfiguration",
    "NotFound",
    "NotFoundException",
    "ResourceNotFoundException",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
}


def localstack_clients(localstack_host: str | None = None, region: str = "us-east-1") -> ClientFactory:
    session = Session(localstack_host=localstack_host, region_name=region)
    return session.client


# --- check ------------------------------------------------------------------------------------


@dataclass
class Report:
    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class _Wrong(Exception):
    """The piece is there but not as deployed (the message says how); without one, it is missing."""


class Checker:
    """Checks one deployment, described by the root module's outputs, against the live API."""

    def __init__(self, outputs: Mapping[str, Any], client: ClientFactory) -> None:
        self.outputs = outputs
        self._clients: dict[str, Any] = {}
        self._client_factory = client
        self.report = Report()

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._client_factory(service)
        return self._clients[service]

    @contextmanager
    def piece(self, what: str) -> Iterator[None]:
        """One piece of the deployment: a not-found answer makes it missing, any other error a problem."""
        try:
            yield
        except _Wrong as wrong:
            self.report.problems.append(f"{what}: {wrong}" if str(wrong) else f"missing: {what}")
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") in NOT_FOUND or str(error.get("Code", "")).endswith("NotFound"):
                self.report.problems.append(f"missing: {what}")
            else:
                self.report.problems.append(f"{what}: {error.get('Code')}: {error.get('Message')}")
        else:
            self.report.checked.append(what)

    def run(self) -> Report:
        for key, function in sorted((self.outputs.get("functions") or {}).items()):
            self._function(key, function)
        for purpose, bucket in sorted((self.outputs.get("buckets") or {}).items()):
            self._bucket(f"{purpose} bucket {bucket}", bucket)
        for output in ("alarm_topic_arn", "schema_migrations_results_topic_arn"):
            if self.outputs.get(output):
                with self.piece(f"topic {self.outputs[output]} ({output})"):
                    self.client("sns").get_topic_attributes(TopicArn=self.outputs[output])
        return self.report

    def _function(self, key: str, function: Mapping[str, Any]) -> None:
        name = function["function_name"]
        with self.piece(f"function {name} ({key})"):
            config = self.client("lambda").get_function(FunctionName=name)["Configuration"]
            problems = [
                f"{api_name} is {config.get(api_name)!r}, expected {function[output_name]!r}"
                for api_name, output_name in (("Handler", "handler"), ("Role", "role_arn"))
                if config.get(api_name) != function[output_name]
            ]
            variables = (config.get("Environment") or {}).get("Variables") or {}
            expected = function.get("environment_variables") or {}
            differing = sorted(k for k in expected.keys() | variables.keys() if variables.get(k) != expected.get(k))
            if differing:
                problems.append(f"environment differs in {', '.join(differing)}")
            if problems:
                raise _Wrong("; ".join(problems))
        source = function.get("event_source") or {}
        trigger = function.get("trigger")
        if source.get("queue_url"):
            self._queue(f"queue of {key}", source["queue_url"], dlq_arn=source.get("dlq_arn"))
        if source.get("dlq_url"):
            self._queue(f"dead-letter queue of {key}", source["dlq_url"])
        if trigger == "sqs":
            self._mapping(key, function, source["queue_arn"], partial_batch=True)
            if source.get("topic_arn"):
                self._subscription(key, source["topic_arn"], "sqs", source["queue_arn"])
                self._notification(key, source["bucket"], source["topic_arn"])
        elif trigger == "sns":
            self._subscription(key, source["sns_topic_arn"], "lambda", function["arn"])
            if source.get("bucket"):
                self._notification(key, source["bucket"], source["sns_topic_arn"])
        elif trigger == "dynamodb":
            self._mapping(key, function, source["stream_arn"], partial_batch=False)
        elif trigger == "schedule":
            with self.piece(f"schedule {name} ({key})"):
                schedule = self.client("scheduler").get_schedule(Name=name)
                if schedule["Target"]["Arn"] != function["arn"]:
                    raise _Wrong(f"it targets {schedule['Target']['Arn']}, not the function")

    def _queue(self, what: str, url: str, dlq_arn: str | None = None) -> None:
        """A queue with its TLS-only policy, redriving to `dlq_arn` (none when None)."""
        with self.piece(f"{what} {url}"):
            attributes = self.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            if not _denies_plain_http(attributes.get("Policy")):
                raise _Wrong("its policy has no TLS-only Deny")
            target = json.loads(attributes.get("RedrivePolicy") or "{}").get("deadLetterTargetArn")
            if target != dlq_arn:
                raise _Wrong(f"its redrive policy names {target!r}, not {dlq_arn!r}")

    def _mapping(self, key: str, function: Mapping[str, Any], source_arn: str, partial_batch: bool) -> None:
        with self.piece(f"event source mapping {source_arn} -> {function['function_name']} ({key})"):
            # Every mapping of the source, matched on the function's ARN: emulators do not all
            # resolve a FunctionName filter given a name when the mapping was made with the ARN.
            pages = (
                self.client("lambda").get_paginator("list_event_source_mappings").paginate(EventSourceArn=source_arn)
            )
            found = [
                m
                for page in pages
                for m in page["EventSourceMappings"]
                if m.get("EventSourceArn") == source_arn and m.get("FunctionArn") == function["arn"]
            ]
            if not found:
                raise _Wrong()
            if partial_batch and "ReportBatchItemFailures" not in (found[0].get("FunctionResponseTypes") or []):
                raise _Wrong("it does not report batch item failures")

    def _subscription(self, key: str, topic_arn: str, protocol: str, endpoint: str) -> None:
        with self.piece(f"topic {topic_arn} ({key})"):
            self.client("sns").get_topic_attributes(TopicArn=topic_arn)
        with self.piece(f"subscription {topic_arn} -> {protocol} {endpoint} ({key})"):
            subscriptions = self.client("sns").list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
            if not [s for s in subscriptions if (s["Protocol"], s["Endpoint"]) == (protocol, endpoint)]:
                raise _Wrong()

    def _notification(self, key: str, bucket: str, topic_arn: str) -> None:
        with self.piece(f"notification s3://{bucket} -> {topic_arn} ({key})"):
            notification = self.client("s3").get_bucket_notification_configuration(Bucket=bucket)
            if topic_arn not in {t["TopicArn"] for t in notification.get("TopicConfigurations", [])}:
                raise _Wrong()

    def _bucket(self, what: str, bucket: str) -> None:
        s3 = self.client("s3")
        with self.piece(what):
            s3.head_bucket(Bucket=bucket)
        with self.piece(f"policy of {what}"):
            if not _denies_plain_http(s3.get_bucket_policy(Bucket=bucket)["Policy"]):
                raise _Wrong("it has no TLS-only Deny")
        with self.piece(f"public access block of {what}"):
            block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
            if not (len(block) == 4 and all(block.values())):
                raise _Wrong(f"it is {block}")


def _denies_plain_http(policy: str | None) -> bool:
    statements = json.loads(policy or "{}").get("Statement", [])
    statements = statements if isinstance(statements, list) else [statements]
    return any(s.get("Effect") == "Deny" and s.get("Condition") == TLS_ONLY for s in statements)


def check_deployment(outputs: Mapping[str, Any], client: ClientFactory) -> Report:
    """Everything the outputs name, read back through `client(service)`."""
    return Checker(outputs, client).run()


def terraform_outputs(directory: Path) -> dict[str, Any]:
    shown = subprocess.run(
        [os.environ.get("TERRAFORM", "terraform"), "output", "-json"],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
    )
    if shown.returncode != 0:
        raise SystemExit(f"terraform output -json in {directory} failed:\n{shown.stderr}")
    return {name: entry["value"] for name, entry in json.loads(shown.stdout).items()}


# --- prepare ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExistingDatabase:
    host: str
    port: int
    name: str
    username: str
    password: str


def prepare_database(client: ClientFactory, prefix: str, database: ExistingDatabase) -> dict[str, Any]:
    """Create (or update) the master secret and the security group `create_database = false` needs;
    return the root's variables naming them. Safe to run again: it reuses both by name."""
    secrets = client("secretsmanager")
    secret_name = f"{prefix}-existing-database-master"
    value = json.dumps({"username": database.username, "password": database.password})
    try:
        arn = secrets.describe_secret(SecretId=secret_name)["ARN"]
        secrets.put_secret_value(SecretId=arn, SecretString=value)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        arn = secrets.create_secret(Name=secret_name, SecretString=value)["ARN"]

    ec2 = client("ec2")
    group_name = f"{prefix}-existing-database"
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise SystemExit("no default VPC to create the database's security group in")
    vpc = vpcs[0]
    groups = ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [group_name]}, {"Name": "vpc-id", "Values": [vpc["VpcId"]]}]
    )["SecurityGroups"]
    group_id = (
        groups[0]["GroupId"]
        if groups
        else ec2.create_security_group(
            GroupName=group_name, Description="The existing PostgreSQL the pipelines use", VpcId=vpc["VpcId"]
        )["GroupId"]
    )
    return {
        "create_database": False,
        "db_host": database.host,
        "db_port": database.port,
        "db_name": database.name,
        "db_master_user_secret_arn": arn,
        "db_security_group_id": group_id,
    }


# --- command line -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.localstack", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--localstack-host", help="host:port of LocalStack (default $LOCALSTACK_HOST or localhost:4566)"
    )
    parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    commands = parser.add_subparsers(dest="command", required=True)

    prepare = commands.add_parser("prepare", help="create the existing database's secret and security group")
    prepare.add_argument("--output", type=Path, required=True, help="the -var-file to write (JSON)")
    prepare.add_argument("--prefix", default="pipelines-local", help="<name>-<environment> of the deployment")
    prepare.add_argument("--db-host", required=True, help="the PostgreSQL host as the Lambda containers reach it")
    prepare.add_argument("--db-port", type=int, default=5432)
    prepare.add_argument("--db-name", default="pipelines")
    prepare.add_argument("--db-username", default="postgres")
    prepare.add_argument("--db-password", default=os.environ.get("LOCALSTACK_DB_PASSWORD"))

    check = commands.add_parser("check", help="read the deployment back and list what is missing")
    source = check.add_mutually_exclusive_group(required=True)
    source.add_argument("--terraform-dir", type=Path, help="working directory to run `terraform output -json` in")
    source.add_argument("--outputs-json", type=Path, help="`terraform output -json` saved to a file")

    args = parser.parse_args(argv)
    client = localstack_clients(args.localstack_host, args.region)
    if args.command == "prepare":
        if not args.db_password:
            parser.error("prepare needs --db-password (or LOCALSTACK_DB_PASSWORD)")
        database = ExistingDatabase(args.db_host, args.db_port, args.db_name, args.db_username, args.db_password)
        variables = prepare_database(client, args.prefix, database)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(variables, indent=2) + "\n")
        print(f"existing database {database.host}:{database.port}/{database.name}: variables in {args.output}")
        return 0

    if args.terraform_dir is not None:
        outputs = terraform_outputs(args.terraform_dir)
    else:
        outputs = {name: entry["value"] for name, entry in json.loads(args.outputs_json.read_text()).items()}
    if not outputs.get("functions"):
        print("the outputs name no function: nothing was deployed here", file=sys.stderr)
        return 1
    report = check_deployment(outputs, client)
    for problem in report.problems:
        print(problem, file=sys.stderr)
    print(f"{len(report.checked)} pieces checked, {len(report.problems)} missing or different")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
