"""Fixtures for the local environment: handler zips built in tmp, moto resources, a router."""

from __future__ import annotations

import json
import textwrap
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from scripts.localenv.environment import AwsTarget, LocalRewrites
from scripts.localenv.router import Router
from scripts.localenv.wiring import FunctionSpec, Wiring

REGION = "us-east-1"


@pytest.fixture
def aws_target(moto_server: str) -> AwsTarget:
    return AwsTarget(endpoint_url=moto_server, region=REGION)


@pytest.fixture
def client(moto_server: str) -> Callable[[str], Any]:
    def make(service: str) -> Any:
        return boto3.client(service, endpoint_url=moto_server, region_name=REGION)

    return make


@pytest.fixture
def make_function(tmp_path: Path) -> Callable[..., FunctionSpec]:
    """Zip `source` as `<package>/handler.py` and describe it as a deployed function.

    The handler gets `JOURNAL` (a JSON-lines file it may append to) in its environment.
    """

    def make(source: str, *, timeout: int = 10, memory_mb: int = 256, **settings: Any) -> FunctionSpec:
        name = "fn_" + uuid.uuid4().hex[:8]
        zip_path = tmp_path / f"{name}.zip"
        with zipfile.ZipFile(zip_path, "w") as archive:
            archive.writestr(f"{name}/__init__.py", "")
            archive.writestr(f"{name}/handler.py", textwrap.dedent(source))
        environment = {"JOURNAL": str(tmp_path / f"{name}.jsonl"), **settings.pop("environment", {})}
        return FunctionSpec(
            name=name,
            handler=f"{name}.handler.handler",
            zip_path=zip_path,
            timeout=timeout,
            memory_mb=memory_mb,
            environment=environment,
            **settings,
        )

    return make


def journal(spec: FunctionSpec) -> list[dict[str, Any]]:
    """What a test handler appended to its journal, one JSON object per invocation."""
    path = Path(spec.environment["JOURNAL"])
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@pytest.fixture
def make_router(tmp_path: Path, aws_target: AwsTarget) -> Iterator[Callable[..., Router]]:
    routers: list[Router] = []

    def make(wiring: Wiring, *, start: bool = True, **options: Any) -> Router:
        router = Router(
            wiring,
            aws_target,
            cache_dir=tmp_path / "cache",
            log_dir=tmp_path / "logs",
            rewrites=options.pop("rewrites", LocalRewrites()),
            **options,
        )
        routers.append(router)
        return router.start() if start else router

    yield make
    for router in routers:
        router.stop()


@pytest.fixture
def make_queue(client: Callable[[str], Any]) -> Callable[..., tuple[str, str, str | None]]:
    """A queue (optionally with a DLQ after `max_receive_count` receives): (url, arn, dlq url)."""
    sqs = client("sqs")

    def make(visibility_timeout: int = 30, max_receive_count: int | None = None) -> tuple[str, str, str | None]:
        name = "q-" + uuid.uuid4().hex[:10]
        attributes = {"VisibilityTimeout": str(visibility_timeout)}
        dlq_url = None
        if max_receive_count is not None:
            dlq_url = sqs.create_queue(QueueName=name + "-dlq")["QueueUrl"]
            dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}
            )
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn, dlq_url

    return make
