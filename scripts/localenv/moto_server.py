"""The project's moto server: moto's own server application, corrected where the AWS provider needs it.

Every local use of moto over HTTP goes through here: the tests' `moto_server` fixture runs it in a
thread (`MotoServer`), tools run it as a process in place of `python -m moto.server`:

    python -m scripts.localenv.moto_server -H 127.0.0.1 -p 5000

It serves what moto 5.2 serves, with these differences, 1-4 found by applying modules/dms with
the real hashicorp/aws provider 5.100.0 (before them, `aws_dms_s3_endpoint`,
`aws_dms_replication_instance`, `aws_dms_replication_task` and `aws_dms_event_subscription` all
failed or hung):

1. DMS timestamps as epoch numbers. moto writes the timestamps of its DMS answers as ISO strings
   (`"InstanceCreateTime": "2026-01-01T12:00:00.123456"`) where the AWS JSON protocol sends epoch
   seconds. boto3 reads both; the provider's Go SDK fails the replication instance and task right
   after their create call: `expected TStamp to be a JSON Number, got string instead`. Every
   member botocore's DMS model declares a timestamp is rewritten to epoch seconds, in every DMS
   answer (moto's naive times are UTC).
2. A created replication task is `ready`. moto leaves a new task `creating` until it is started;
   AWS moves it to `ready` once it has checked its endpoints, and the provider waits for exactly
   that after CreateReplicationTask (pending `creating`, target `ready`), so against plain moto the
   apply hangs until the create timeout. Task answers say `ready` where moto says `creating`.
3. ModifyEndpoint, which moto lacks. The provider creates an S3 endpoint with SSE-KMS and then
   sets `server_side_encryption_kms_key_id` again with ModifyEndpoint (AWS ignores it on create);
   moto answers 500 NotImplemented, which the SDK retries for as long as the create timeout lasts.
   The given settings are stored on moto's endpoint (settings blocks merged into the existing).
4. DMS event subscriptions (Create, Describe, Delete), which moto lacks (500 NotImplemented, the
   same endless retry). Kept per account and region on moto's DMS backend, created `active`
   (the provider waits for that), refused as AWS refuses them: an unknown source type or event
   category, or a source id naming no replication instance or task.

5. DynamoDB stream records stay in the stream when a Lambda event source mapping reads it. On
   every write to a table with a stream mapping, moto 5.2 invokes the function itself
   (`LambdaBackend.send_dynamodb_items`, which needs Docker) and, whatever that returns, empties
   the shard: the records are lost to GetRecords and the next sequence numbers start over from the
   shard's first, so they go backwards. Here moto delivers nothing and keeps every record, as a
   stream does for 24 hours; the local event router reads the shard and invokes the function, as
   Lambda's poller does. Found by `make demo`: the DynamoDB migration's sync saw 1 record of ~4,900.
   (A replaced method of moto's Lambda backend: in-process `mock_aws` has it too once a server
   was made in the process.)

And one setting: AWS managed IAM policies are loaded (moto's `iam.load_aws_managed_policies`), so
attaching `service-role/AmazonDMSVPCManagementRole` and the like to the account-wide DMS roles
works instead of failing with NoSuchEntity. It costs about 2 s the first time an account's IAM is
used. Additions 3 and 4 are methods added to moto's DMS response class: they also exist for
in-process `mock_aws` once this module is imported.

Everything else is moto's as it is: DMS Serverless (`create_replication_config`) and the other
modify_* calls stay unimplemented, so a replication config is plan-only here.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import cache
from types import FrameType, TracebackType
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, Shape, StructureShape
from moto.awslambda.models import LambdaBackend
from moto.backends import get_backend
from moto.core.config import default_user_config
from moto.core.utils import camelcase_to_underscores
from moto.dms.exceptions import ResourceAlreadyExistsFault, ResourceNotFoundFault, ValidationError
from moto.dms.responses import DatabaseMigrationServiceResponse
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.utilities.utils import get_partition
from werkzeug.serving import BaseWSGIServer, make_server

# X-Amz-Target of DMS requests: AmazonDMSv20160101.<Operation>.
DMS_TARGET_PREFIX = "AmazonDMSv20160101."

StartResponse = Callable[..., Callable[[bytes], object]]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@cache
def _dms_output_shapes() -> dict[str, Shape | None]:
    model = botocore.session.get_session().get_service_model("dms")
    return {name: model.operation_model(name).output_shape for name in model.operation_names}


def _epoch_timestamps(value: Any, shape: Shape) -> Any:
    """`value` (a parsed JSON answer of `shape`) with every timestamp string as epoch seconds."""
    if shape.type_name == "timestamp" and isinstance(value, str):
        moment = datetime.fromisoformat(value)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        return {k: _epoch_timestamps(v, shape.members[k]) if k in shape.members else v for k, v in value.items()}
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [_epoch_timestamps(item, shape.member) for item in value]
    if isinstance(shape, MapShape) and isinstance(value, dict):
        return {k: _epoch_timestamps(v, shape.value) for k, v in value.items()}
    return value


def _created_tasks_ready(answer: dict[str, Any]) -> None:
    tasks = answer.get("ReplicationTasks") or []
    if isinstance(answer.get("ReplicationTask"), dict):
        tasks = [*tasks, answer["ReplicationTask"]]
    for task in tasks:
        if task.get("Status") == "creating":
            task["Status"] = "ready"


def corrected_dms_answer(operation: str, body: bytes) -> bytes:
    """The DMS answer `body` to `operation` with the corrections of the module docstring."""
    shape = _dms_output_shapes().get(operation)
    if shape is None or not body:
        return body
    answer = _epoch_timestamps(json.loads(body), shape)
    _created_tasks_ready(answer)
    return json.dumps(answer).encode()


# Event categories per source type, as DMS documents them (DescribeEventCategories).
DMS_EVENT_CATEGORIES: dict[str, frozenset[str]] = {
    "replication-instance": frozenset(
        {"configuration change", "creation", "deletion", "maintenance", "low storage", "failover", "failure"}
    ),
    "replication-task": frozenset({"configuration change", "state change", "creation", "deletion", "failure"}),
}


def _modify_endpoint(self: DatabaseMigrationServiceResponse) -> str:
    params = json.loads(self.body)
    endpoint = next((e for e in self.dms_backend.endpoints.values() if e.endpoint_arn == params["EndpointArn"]), None)
    if endpoint is None:
        raise ResourceNotFoundFault("Endpoint not found.")
    for key, value in params.items():
        attribute = camelcase_to_underscores(key)
        if key == "EndpointArn" or not hasattr(endpoint, attribute):
            continue
        current = getattr(endpoint, attribute)
        merged = {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value
        setattr(endpoint, attribute, merged)
    return json.dumps({"Endpoint": {k: v for k, v in endpoint.to_dict().items() if v is not None}})


def _event_subscriptions(self: DatabaseMigrationServiceResponse) -> dict[str, dict[str, Any]]:
    return self.dms_backend.__dict__.setdefault("event_subscriptions", {})


def _event_subscription_arn(self: DatabaseMigrationServiceResponse, name: str) -> str:
    return f"arn:{get_partition(self.region)}:dms:{self.region}:{self.current_account}:es:{name}"


def _create_event_subscription(self: DatabaseMigrationServiceResponse) -> str:
    params = json.loads(self.body)
    name, source_type = params["SubscriptionName"], params.get("SourceType")
    categories, source_ids = params.get("EventCategories", []), params.get("SourceIds", [])
    if name in _event_subscriptions(self):
        raise ResourceAlreadyExistsFault(f"Event subscription {name} already exists.")
    if source_type not in DMS_EVENT_CATEGORIES:
        raise ValidationError(f"Invalid source type {source_type!r}.")
    unknown = sorted(set(categories) - DMS_EVENT_CATEGORIES[source_type])
    if unknown:
        raise ValidationError(f"Invalid event categories for {source_type}: {unknown}.")
    backend = self.dms_backend
    sources = backend.replication_instances if source_type == "replication-instance" else backend.replication_tasks
    missing = sorted(set(source_ids) - {source.id for source in sources.values()})
    if missing:
        raise ResourceNotFoundFault(f"No {source_type} with the ids {missing}.")
    subscription = {
        "CustomerAwsId": self.current_account,
        "CustSubscriptionId": name,
        "SnsTopicArn": params["SnsTopicArn"],
        "Status": "active",
        "SubscriptionCreationTime": datetime.now(UTC).isoformat(),
        "SourceType": source_type,
        "SourceIdsList": source_ids,
        "EventCategoriesList": categories,
        "Enabled": params.get("Enabled", True),
    }
    _event_subscriptions(self)[name] = subscription
    if params.get("Tags"):
        backend.tagger.tag_resource(_event_subscription_arn(self, name), params["Tags"])
    return json.dumps({"EventSubscription": subscription})


def _describe_event_subscriptions(self: DatabaseMigrationServiceResponse) -> str:
    name = json.loads(self.body).get("SubscriptionName")
    subscriptions = _event_subscriptions(self)
    if name is not None and name not in subscriptions:
        raise ResourceNotFoundFault(f"Event subscription {name} not found.")
    found = [subscriptions[name]] if name is not None else list(subscriptions.values())
    return json.dumps({"EventSubscriptionsList": found})


def _delete_event_subscription(self: DatabaseMigrationServiceResponse) -> str:
    name = json.loads(self.body)["SubscriptionName"]
    subscription = _event_subscriptions(self).pop(name, None)
    if subscription is None:
        raise ResourceNotFoundFault(f"Event subscription {name} not found.")
    self.dms_backend.tagger.delete_all_tags_for_resource(_event_subscription_arn(self, name))
    return json.dumps({"EventSubscription": subscription})


def _add_missing_dms_operations() -> None:
    DatabaseMigrationServiceResponse.modify_endpoint = _modify_endpoint  # type: ignore[attr-defined]
    DatabaseMigrationServiceResponse.create_event_subscription = _create_event_subscription  # type: ignore[attr-defined]
    DatabaseMigrationServiceResponse.describe_event_subscriptions = _describe_event_subscriptions  # type: ignore[attr-defined]
    DatabaseMigrationServiceResponse.delete_event_subscription = _delete_event_subscription  # type: ignore[attr-defined]


def _keep_stream_records(self: LambdaBackend, function_arn: str, items: list[Any], source: str) -> str:
    """moto's stream delivery replaced: nothing is invoked, and the empty answer keeps the shard."""
    return ""


class DmsCorrection:
    """WSGI middleware applying corrected_dms_answer() to successful DMS answers; the rest passes."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(DMS_TARGET_PREFIX):
            return self.app(environ, start_response)
        captured: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], object]:
            captured[:] = [status, headers, exc_info]
            return lambda _data: None  # moto's Flask app returns its body, it never calls write()

        chunks = self.app(environ, capture)
        try:
            body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        status, headers, exc_info = captured
        if status.startswith("200"):
            body = corrected_dms_answer(target[len(DMS_TARGET_PREFIX) :], body)
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            headers.append(("Content-Length", str(len(body))))
        start_response(status, headers, exc_info)
        return [body]


def _load_aws_managed_policies() -> Callable[[], None]:
    """Turn on moto's AWS managed IAM policies; returns the function that restores the setting."""
    iam_config = default_user_config.setdefault("iam", {})
    before = iam_config.get("load_aws_managed_policies", False)
    if not before:
        iam_config["load_aws_managed_policies"] = True
        # An account's IAM created earlier in this process has none: start it over with them.
        get_backend("iam").reset()

    def restore() -> None:
        iam_config["load_aws_managed_policies"] = before

    return restore


def _make_server(host: str, port: int) -> BaseWSGIServer:
    """moto's server application, with the DMS corrections and additions and the stream records
    kept, bound to host:port."""
    _add_missing_dms_operations()
    LambdaBackend.send_dynamodb_items = _keep_stream_records  # type: ignore[method-assign]
    app = DmsCorrection(DomainDispatcherApplication(create_backend_app))
    return make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)


class MotoServer:
    """The corrected moto server in a background thread: `with MotoServer() as endpoint_url: ...`.

    Port 0 picks a free port. `stop()` shuts it down and restores moto's IAM setting.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._restore: Callable[[], None] | None = None

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the moto server is not running: call start() first")
        return f"http://{self.host}:{self._server.server_port}"

    def start(self) -> str:
        if self._server is not None:
            raise RuntimeError("the moto server is already running")
        self._restore = _load_aws_managed_policies()
        self._server = _make_server(self.host, self.port)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-server", daemon=True)
        self._thread.start()
        return self.endpoint_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        if self._restore is not None:
            self._restore()
        self._server = self._thread = self._restore = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-H", "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("-p", "--port", type=int, default=5000, help="port (default 5000)")
    args = parser.parse_args(argv)
    _load_aws_managed_policies()
    server = _make_server(args.host, args.port)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever() to return: run it off the serving thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"moto server (with the DMS corrections) on http://{args.host}:{server.server_port}", flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
