"""What Terraform deployed, read from `terraform show -json`: the wiring the router follows.

Only the attributes Lambda itself acts on are kept: a function's handler, package, timeout,
memory, environment and concurrency; SQS and DynamoDB event source mappings with their batching
and failure settings; SNS topic -> function subscriptions; EventBridge rule -> function targets;
EventBridge Scheduler schedules.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class WiringError(ValueError):
    """The Terraform state does not describe a wiring the router can follow."""


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    handler: str
    zip_path: Path
    timeout: int = 3
    memory_mb: int = 128
    runtime: str = "python3.11"
    environment: Mapping[str, str] = field(default_factory=dict)
    layer_zips: tuple[Path, ...] = ()
    reserved_concurrency: int | None = None
    dead_letter_arn: str | None = None
    async_max_retries: int = 2
    arn: str = ""

    @property
    def concurrency_limit(self) -> int | None:
        """Reserved concurrency caps sandboxes; -1 (unreserved) and None mean no cap of its own."""
        if self.reserved_concurrency is None or self.reserved_concurrency < 0:
            return None
        return self.reserved_concurrency


@dataclass(frozen=True)
class QueueMapping:
    """An SQS event source mapping."""

    function: str
    queue_arn: str
    batch_size: int = 10
    batching_window_seconds: int = 0
    maximum_concurrency: int | None = None
    report_batch_item_failures: bool = False
    enabled: bool = True
    uuid: str | None = None

    @property
    def queue_name(self) -> str:
        return self.queue_arn.rsplit(":", 1)[-1]


@dataclass(frozen=True)
class StreamMapping:
    """A DynamoDB stream event source mapping."""

    function: str
    stream_arn: str
    batch_size: int = 100
    starting_position: str = "LATEST"
    bisect_on_error: bool = False
    maximum_retry_attempts: int = -1
    report_batch_item_failures: bool = False
    on_failure_arn: str | None = None
    enabled: bool = True
    uuid: str | None = None


@dataclass(frozen=True)
class TopicSubscription:
    """An SNS topic -> Lambda subscription (asynchronous invocation)."""

    function: str
    topic_arn: str
    filter_policy: str | None = None
    subscription_arn: str = ""


@dataclass(frozen=True)
class RuleTarget:
    """An EventBridge rule -> Lambda target (asynchronous invocation with the event as it is)."""

    function: str
    rule_name: str
    event_bus_name: str = "default"
    target_id: str = ""


@dataclass(frozen=True)
class Schedule:
    """An EventBridge Scheduler schedule targeting a function."""

    name: str
    function: str
    expression: str
    input: str | None = None
    enabled: bool = True
    maximum_retry_attempts: int = 185

    def event(self) -> Any:
        """The payload Scheduler sends: the target's input as is, `{}` when it has none."""
        return json.loads(self.input) if self.input else {}


@dataclass(frozen=True)
class Wiring:
    functions: Mapping[str, FunctionSpec]
    queues: tuple[QueueMapping, ...] = ()
    streams: tuple[StreamMapping, ...] = ()
    topics: tuple[TopicSubscription, ...] = ()
    rules: tuple[RuleTarget, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    outputs: Mapping[str, Any] = field(default_factory=dict)

    def function(self, name: str) -> FunctionSpec:
        try:
            return self.functions[name]
        except KeyError:
            known = ", ".join(sorted(self.functions)) or "none"
            raise WiringError(f"no function named {name!r} in the wiring (deployed: {known})") from None

    def schedule(self, name: str) -> Schedule:
        for schedule in self.schedules:
            if name in (schedule.name, schedule.function):
                return schedule
        known = ", ".join(s.name for s in self.schedules) or "none"
        raise WiringError(f"no schedule named {name!r} (deployed: {known})")


# --- reading Terraform state -------------------------------------------------------------------


def terraform_show(terraform_dir: Path, terraform: str = "terraform", env: Mapping[str, str] | None = None) -> Any:
    """`terraform show -json` of the working directory's current state."""
    result = subprocess.run(
        [terraform, f"-chdir={terraform_dir}", "show", "-json"],
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else None,
        check=False,
    )
    if result.returncode != 0:
        raise WiringError(f"terraform show -json failed in {terraform_dir}: {result.stderr.strip()}")
    return json.loads(result.stdout)


def state_resources(state: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every managed resource in the state, from the root module and all child modules."""

    def walk(module: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        for resource in module.get("resources", []):
            if resource.get("mode") == "managed":
                yield resource
        for child in module.get("child_modules", []):
            yield from walk(child)

    root = state.get("values", {}).get("root_module")
    if root is None:
        raise WiringError("the Terraform state is empty: run terraform apply first")
    yield from walk(root)


def _first(block: Any) -> dict[str, Any]:
    """Nested blocks appear in state as lists of one object (or empty lists)."""
    if isinstance(block, list):
        return block[0] if block else {}
    return block or {}


def _resolve(path: str, base_dir: Path) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() else (base_dir / candidate).resolve()


def wiring_from_state(state: Mapping[str, Any], base_dir: Path) -> Wiring:
    """Build the wiring from `terraform show -json` output; relative zip paths resolve against
    `base_dir`, the directory Terraform ran in."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in state_resources(state):
        by_type.setdefault(resource["type"], []).append(resource["values"])

    layers = {
        values["arn"]: _resolve(values["filename"], base_dir)
        for values in by_type.get("aws_lambda_layer_version", [])
        if values.get("filename")
    }
    retries = {
        _function_name(values["function_name"]): int(values.get("maximum_retry_attempts", 2))
        for values in by_type.get("aws_lambda_function_event_invoke_config", [])
    }
    functions = {
        spec.name: spec
        for spec in (_function(values, base_dir, layers, retries) for values in by_type.get("aws_lambda_function", []))
    }
    queues: list[QueueMapping] = []
    streams: list[StreamMapping] = []
    for values in by_type.get("aws_lambda_event_source_mapping", []):
        source = values.get("event_source_arn") or ""
        if ":sqs:" in source:
            queues.append(_queue_mapping(values))
        elif ":dynamodb:" in source and "/stream/" in source:
            streams.append(_stream_mapping(values))
    topics = [
        TopicSubscription(
            function=_function_name(values["endpoint"]),
            topic_arn=values["topic_arn"],
            filter_policy=values.get("filter_policy") or None,
            subscription_arn=values.get("arn", ""),
        )
        for values in by_type.get("aws_sns_topic_subscription", [])
        if values.get("protocol") == "lambda"
    ]
    rules = [
        RuleTarget(
            function=_function_name(values["arn"]),
            rule_name=values["rule"],
            event_bus_name=values.get("event_bus_name") or "default",
            target_id=values.get("target_id") or "",
        )
        for values in by_type.get("aws_cloudwatch_event_target", [])
        if ":lambda:" in (values.get("arn") or "")
    ]
    schedules = [
        schedule for values in by_type.get("aws_scheduler_schedule", []) if (schedule := _schedule(values)) is not None
    ]
    outputs = {name: value.get("value") for name, value in state.get("values", {}).get("outputs", {}).items()}
    return Wiring(
        functions=functions,
        queues=tuple(queues),
        streams=tuple(streams),
        topics=tuple(topics),
        rules=tuple(rules),
        schedules=tuple(schedules),
        outputs=outputs,
    )


def _function_name(name_or_arn: str) -> str:
    """`arn:aws:lambda:region:account:function:name[:qualifier]` or a bare name -> the name."""
    if name_or_arn.startswith("arn:"):
        return name_or_arn.split(":")[6]
    return name_or_arn


def _function(
    values: Mapping[str, Any], base_dir: Path, layers: Mapping[str, Path], retries: Mapping[str, int]
) -> FunctionSpec:
    name = values["function_name"]
    if not values.get("filename"):
        raise WiringError(f"function {name} is not deployed from a local zip (filename); the router cannot run it")
    missing_layers = [arn for arn in values.get("layers") or [] if arn not in layers]
    if missing_layers:
        raise WiringError(f"function {name} uses layers not built from a local zip: {', '.join(missing_layers)}")
    reserved = values.get("reserved_concurrent_executions")
    return FunctionSpec(
        name=name,
        arn=values.get("arn", ""),
        handler=values["handler"],
        zip_path=_resolve(values["filename"], base_dir),
        timeout=int(values.get("timeout") or 3),
        memory_mb=int(values.get("memory_size") or 128),
        runtime=values.get("runtime") or "",
        environment=dict(_first(values.get("environment")).get("variables") or {}),
        layer_zips=tuple(layers[arn] for arn in values.get("layers") or []),
        reserved_concurrency=None if reserved is None else int(reserved),
        dead_letter_arn=_first(values.get("dead_letter_config")).get("target_arn") or None,
        async_max_retries=retries.get(name, 2),
    )


def _queue_mapping(values: Mapping[str, Any]) -> QueueMapping:
    scaling = _first(values.get("scaling_config"))
    return QueueMapping(
        function=_function_name(values["function_name"]),
        queue_arn=values["event_source_arn"],
        batch_size=int(values.get("batch_size") or 10),
        batching_window_seconds=int(values.get("maximum_batching_window_in_seconds") or 0),
        maximum_concurrency=int(scaling["maximum_concurrency"]) if scaling.get("maximum_concurrency") else None,
        report_batch_item_failures="ReportBatchItemFailures" in (values.get("function_response_types") or []),
        enabled=bool(values.get("enabled", True)),
        uuid=values.get("uuid") or values.get("id"),
    )


def _stream_mapping(values: Mapping[str, Any]) -> StreamMapping:
    on_failure = _first(_first(values.get("destination_config")).get("on_failure"))
    retries = values.get("maximum_retry_attempts")
    return StreamMapping(
        function=_function_name(values["function_name"]),
        stream_arn=values["event_source_arn"],
        batch_size=int(values.get("batch_size") or 100),
        starting_position=values.get("starting_position") or "LATEST",
        bisect_on_error=bool(values.get("bisect_batch_on_function_error")),
        maximum_retry_attempts=-1 if retries is None else int(retries),
        report_batch_item_failures="ReportBatchItemFailures" in (values.get("function_response_types") or []),
        on_failure_arn=on_failure.get("destination_arn") or None,
        enabled=bool(values.get("enabled", True)),
        uuid=values.get("uuid") or values.get("id"),
    )


def _schedule(values: Mapping[str, Any]) -> Schedule | None:
    target = _first(values.get("target"))
    arn = target.get("arn") or ""
    if ":lambda:" not in arn:
        return None
    retry = _first(target.get("retry_policy"))
    return Schedule(
        name=values["name"],
        function=_function_name(arn),
        expression=values.get("schedule_expression") or "",
        input=target.get("input") or None,
        enabled=values.get("state", "ENABLED") == "ENABLED",
        maximum_retry_attempts=int(retry.get("maximum_retry_attempts", 185)),
    )
