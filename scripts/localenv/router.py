"""Deliver events to local sandboxes the way the Lambda service does, following the deployed wiring.

- SQS event source mappings: long-poll the queue, batch up to the batch size within the batching
  window, cap concurrent batches at `maximum_concurrency` (and the function's reserved
  concurrency), delete what succeeded; with `ReportBatchItemFailures` only the reported messages
  stay, an unknown or empty identifier fails the whole batch; a function error, timeout or crash
  deletes nothing. Messages left behind become visible again after the queue's visibility timeout
  and reach the dead-letter queue after `maxReceiveCount` receives (moto's SQS applies redrive on
  receive, as SQS does).
- SNS -> Lambda subscriptions: moto delivers nothing to Lambda, so the router subscribes a queue
  of its own to the topic (with the subscription's filter policy) and invokes asynchronously:
  one message per invocation, retried `async_max_retries` times, then sent to the function's
  dead-letter target if it has one.
- EventBridge rule -> Lambda targets: the same, with a queue of the router's own added as a
  target of the rule (moto matches the rule's pattern and delivers to SQS targets); the function
  gets the event itself, as a Lambda target does. Rules with SQS targets need nothing: moto
  delivers to the queue, and the queue's mapping does the rest.
- DynamoDB stream mappings: read every shard in order, retry from the first failed record,
  bisect on error when configured, send batch metadata to the on-failure destination once the
  retries are spent.
- Schedules: fired on demand (`fire_schedule`) or every `schedule_interval` seconds.

moto would also try to run the functions of the mappings it knows (through Docker, which fails) and
in doing so receive the queue's messages, inflating their receive counts. The router takes those
mappings over while it runs (disables them in moto) and hands them back when it stops.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import boto3

from scripts.localenv.environment import AwsTarget, LocalRewrites
from scripts.localenv.sandbox import FunctionPool, Invocation, Package
from scripts.localenv.wiring import (
    FunctionSpec,
    QueueMapping,
    RuleTarget,
    Schedule,
    StreamMapping,
    TopicSubscription,
    Wiring,
)

logger = logging.getLogger("local_router")

RECEIVE_WAIT_SECONDS = 1
# Lambda retries a failed asynchronous invocation after about 1 and then 2 minutes; locally the
# same number of retries happens sooner so a demo or a test does not sit idle.
DEFAULT_ASYNC_RETRY_DELAYS = (2.0, 4.0)
# Lambda retries a failing stream batch until the records expire (a day by default); locally an
# unlimited retry setting is capped so a poison record cannot hang the router.
LOCAL_STREAM_RETRY_CAP = 5


@dataclass
class FunctionStats:
    invocations: int = 0
    errors: int = 0
    timeouts: int = 0
    records: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0
    max_memory_mb: float = 0.0

    def add(self, invocation: Invocation, records: int) -> None:
        self.invocations += 1
        self.records += records
        self.total_ms += invocation.duration_ms
        self.max_ms = max(self.max_ms, invocation.duration_ms)
        self.max_memory_mb = max(self.max_memory_mb, invocation.max_memory_mb or 0.0)
        if not invocation.ok:
            self.errors += 1
            if invocation.error_type == "Sandbox.Timedout":
                self.timeouts += 1


@dataclass
class Delivery:
    """One invocation made by the router and what it meant for the records it carried."""

    trigger: str
    invocation: Invocation
    records: int
    succeeded: int = 0
    failed: int = 0


@dataclass
class QueueOutcome:
    deleted: int = 0
    returned: int = 0


@dataclass
class _StreamState:
    caught_up: dict[str, bool] = field(default_factory=dict)


class Router:
    def __init__(
        self,
        wiring: Wiring,
        aws: AwsTarget,
        *,
        cache_dir: Path,
        log_dir: Path,
        rewrites: LocalRewrites | None = None,
        max_sandboxes: int = 4,
        async_retry_delays: tuple[float, ...] = DEFAULT_ASYNC_RETRY_DELAYS,
        schedule_interval: float | None = None,
    ) -> None:
        self.wiring = wiring
        self.aws = aws
        self.rewrites = rewrites or LocalRewrites()
        self.cache_dir = cache_dir
        self.log_dir = log_dir
        self.max_sandboxes = max_sandboxes
        self.async_retry_delays = async_retry_delays
        self.schedule_interval = schedule_interval
        session = boto3.session.Session(
            aws_access_key_id=aws.access_key_id,
            aws_secret_access_key=aws.secret_access_key,
            region_name=aws.region,
        )
        self.sqs = session.client("sqs", endpoint_url=aws.endpoint_url)
        self.sns = session.client("sns", endpoint_url=aws.endpoint_url)
        self.events = session.client("events", endpoint_url=aws.endpoint_url)
        self.lambda_ = session.client("lambda", endpoint_url=aws.endpoint_url)
        self.streams = session.client("dynamodbstreams", endpoint_url=aws.endpoint_url)
        self.stats: dict[str, FunctionStats] = {name: FunctionStats() for name in wiring.functions}
        self.queue_outcomes: dict[str, QueueOutcome] = {}
        self.deliveries: list[Delivery] = []
        self._pools: dict[str, FunctionPool] = {}
        self._logs: dict[str, IO[str]] = {}
        self._lock = threading.Lock()
        self._in_flight = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._taken_over: list[str] = []
        self._bridges: list[tuple[str, str]] = []  # (bridge queue url, subscription arn)
        self._rule_bridges: list[tuple[str, RuleTarget, str]] = []  # (bridge queue url, rule, target id)
        self._watched_queues: list[str] = []
        self._stream_state = _StreamState()

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> Router:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for mapping in self.wiring.queues:
            if mapping.enabled and mapping.function in self.wiring.functions:
                self._take_over(mapping.uuid)
                url = self.sqs.get_queue_url(QueueName=mapping.queue_name)["QueueUrl"]
                self._watched_queues.append(url)
                self.queue_outcomes[mapping.queue_name] = QueueOutcome()
                self._spawn(f"sqs:{mapping.queue_name}", self._poll_queue, mapping, url)
        for subscription in self.wiring.topics:
            if subscription.function in self.wiring.functions:
                url = self._bridge(subscription)
                self._watched_queues.append(url)
                self._spawn(f"sns:{subscription.topic_arn}", self._poll_bridge, subscription, url)
        for target in self.wiring.rules:
            if target.function in self.wiring.functions:
                url = self._rule_bridge(target)
                self._watched_queues.append(url)
                self._spawn(f"rule:{target.rule_name}", self._poll_rule_bridge, target, url)
        for stream in self.wiring.streams:
            if stream.enabled and stream.function in self.wiring.functions:
                self._take_over(stream.uuid)
                self._spawn(f"stream:{stream.stream_arn}", self._poll_stream, stream)
        if self.schedule_interval:
            self._spawn("schedules", self._run_schedules, self.schedule_interval)
        return self

    def stop(self, keep_bridges: bool = False) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        for pool in self._pools.values():
            pool.close()
        for uuid in self._taken_over:
            with contextlib.suppress(Exception):
                self.lambda_.update_event_source_mapping(UUID=uuid, Enabled=True)
        if not keep_bridges:
            for url, subscription_arn in self._bridges:
                with contextlib.suppress(Exception):
                    self.sns.unsubscribe(SubscriptionArn=subscription_arn)
                with contextlib.suppress(Exception):
                    self.sqs.delete_queue(QueueUrl=url)
            for url, rule, target_id in self._rule_bridges:
                with contextlib.suppress(Exception):
                    self.events.remove_targets(Rule=rule.rule_name, EventBusName=rule.event_bus_name, Ids=[target_id])
                with contextlib.suppress(Exception):
                    self.sqs.delete_queue(QueueUrl=url)
        for log in self._logs.values():
            log.close()

    def __enter__(self) -> Router:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- invoking ---------------------------------------------------------------------------

    def invoke(self, function: str, event: Any, trigger: str = "invoke", records: int = 0) -> Invocation:
        """A synchronous (RequestResponse) invocation in one of the function's sandboxes."""
        pool = self._pool(function)
        with self._busy():
            invocation = pool.invoke(event)
        with self._lock:
            self.stats[function].add(invocation, records)
        if not invocation.ok:
            logger.warning(
                "%s failed (%s): %s",
                function,
                invocation.error_type,
                (invocation.error or {}).get("errorMessage", ""),
            )
        return invocation

    def invoke_async(self, function: str, event: Any, trigger: str = "async") -> Invocation:
        """An asynchronous invocation with Lambda's retries; the failure goes to the function's DLQ."""
        spec = self.wiring.function(function)
        invocation = self.invoke(function, event, trigger, records=1)
        for attempt in range(spec.async_max_retries):
            if invocation.ok or self._stop.is_set():
                break
            time.sleep(self.async_retry_delays[min(attempt, len(self.async_retry_delays) - 1)])
            invocation = self.invoke(function, event, trigger, records=1)
        self._record(trigger, invocation, 1, 1 if invocation.ok else 0)
        if not invocation.ok and spec.dead_letter_arn:
            self._send_to_destination(spec.dead_letter_arn, json.dumps(event))
        return invocation

    def fire_schedule(self, name: str) -> Invocation:
        """Fire a schedule now, as Scheduler does: an asynchronous invoke with the target's input."""
        schedule = self.wiring.schedule(name)
        return self.invoke_async(schedule.function, schedule.event(), trigger=f"schedule:{schedule.name}")

    # --- waiting ----------------------------------------------------------------------------

    def idle(self) -> bool:
        """No invocation running and nothing left to deliver: queues empty (visible, in flight and
        delayed) and every stream shard read to its end."""
        with self._lock:
            if self._in_flight:
                return False
        if not all(self._stream_state.caught_up.values()):
            return False
        for url in self._watched_queues:
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            if any(int(value) for value in attributes.values()):
                return False
        return True

    def wait_idle(self, timeout: float, quiet: float = 1.5) -> bool:
        """Wait until the router has been idle for `quiet` seconds in a row; False on timeout."""
        end = time.monotonic() + timeout
        idle_since: float | None = None
        while time.monotonic() < end:
            if self.idle():
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= quiet:
                    return True
            else:
                idle_since = None
            time.sleep(0.25)
        return False

    # --- SQS --------------------------------------------------------------------------------

    def _poll_queue(self, mapping: QueueMapping, url: str) -> None:
        pool = self._pool(mapping.function)
        slots = threading.BoundedSemaphore(min(mapping.maximum_concurrency or pool.limit, pool.limit))
        while not self._stop.is_set():
            if not slots.acquire(timeout=0.5):
                continue
            try:
                messages = self._receive_batch(url, mapping)
            except Exception:
                slots.release()
                if not self._stop.is_set():
                    logger.exception("receiving from %s failed", mapping.queue_name)
                    time.sleep(1)
                continue
            if not messages:
                slots.release()
                continue
            with self._lock:
                self._in_flight += 1  # counted before the thread starts, so idle() cannot miss it
            self._spawn(f"batch:{mapping.queue_name}", self._deliver_batch, mapping, url, messages, slots)

    def _receive_batch(self, url: str, mapping: QueueMapping) -> list[dict[str, Any]]:
        """Up to `batch_size` messages, gathering for at most the batching window."""
        messages = self._receive(url, min(10, mapping.batch_size), RECEIVE_WAIT_SECONDS)
        window_end = time.monotonic() + mapping.batching_window_seconds
        while messages and len(messages) < mapping.batch_size and time.monotonic() < window_end:
            more = self._receive(url, min(10, mapping.batch_size - len(messages)), 0)
            if not more:
                time.sleep(min(0.2, max(0.0, window_end - time.monotonic())))
            messages += more
        return messages

    def _receive(self, url: str, count: int, wait: int) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return response.get("Messages", [])

    def _deliver_batch(
        self, mapping: QueueMapping, url: str, messages: list[dict[str, Any]], slots: threading.BoundedSemaphore
    ) -> None:
        try:
            event = {"Records": [sqs_record(message, mapping.queue_arn, self.aws.region) for message in messages]}
            pool = self._pool(mapping.function)
            invocation = pool.invoke(event)
            with self._lock:
                self.stats[mapping.function].add(invocation, len(messages))
            failed = failed_message_ids(invocation, messages, mapping.report_batch_item_failures)
            done = [message for message in messages if message["MessageId"] not in failed]
            self._delete(url, done)
            outcome = self.queue_outcomes[mapping.queue_name]
            with self._lock:
                outcome.deleted += len(done)
                outcome.returned += len(failed)
            self._record(f"sqs:{mapping.queue_name}", invocation, len(messages), len(done))
        except Exception:
            logger.exception("delivering a batch from %s failed", mapping.queue_name)
        finally:
            slots.release()
            with self._lock:
                self._in_flight -= 1

    def _delete(self, url: str, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )

    # --- SNS and EventBridge rules: bridge queues -------------------------------------------

    def _bridge_queue(self, function: str, source: str) -> tuple[str, str]:
        """A queue of the router's own standing in for `function` as the target of `source`: URL, ARN."""
        digest = hashlib.sha256(source.encode()).hexdigest()[:10]
        name = f"local-router-{function}"[:68] + f"-{digest}"
        spec = self.wiring.function(function)
        url = self.sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(max(30, spec.timeout + 5))})[
            "QueueUrl"
        ]
        return url, self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def _bridge(self, subscription: TopicSubscription) -> str:
        """A queue of the router's own subscribed to the topic in place of the function."""
        url, arn = self._bridge_queue(subscription.function, subscription.topic_arn)
        attributes = {"FilterPolicy": subscription.filter_policy} if subscription.filter_policy else {}
        response = self.sns.subscribe(
            TopicArn=subscription.topic_arn,
            Protocol="sqs",
            Endpoint=arn,
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )
        self._bridges.append((url, response["SubscriptionArn"]))
        return url

    def _rule_bridge(self, target: RuleTarget) -> str:
        """A queue of the router's own added as a target of the rule beside the function."""
        url, arn = self._bridge_queue(target.function, f"{target.event_bus_name}/{target.rule_name}")
        target_id = f"local-router-{target.function}"[:64]
        self.events.put_targets(
            Rule=target.rule_name, EventBusName=target.event_bus_name, Targets=[{"Id": target_id, "Arn": arn}]
        )
        self._rule_bridges.append((url, target, target_id))
        return url

    def _poll_bridge(self, subscription: TopicSubscription, url: str) -> None:
        def event(message: dict[str, Any]) -> Any:
            return {"Records": [sns_record(json.loads(message["Body"]), subscription)]}

        trigger = f"sns:{subscription.topic_arn.rsplit(':', 1)[-1]}"
        self._poll_async(subscription.function, url, trigger, event)

    def _poll_rule_bridge(self, target: RuleTarget, url: str) -> None:
        self._poll_async(target.function, url, f"rule:{target.rule_name}", lambda message: json.loads(message["Body"]))

    def _poll_async(self, function: str, url: str, trigger: str, event: Callable[[dict[str, Any]], Any]) -> None:
        """Invoke `function` asynchronously with `event(message)` for each message of a bridge queue."""
        pool = self._pool(function)
        slots = threading.BoundedSemaphore(pool.limit)
        while not self._stop.is_set():
            if not slots.acquire(timeout=0.5):
                continue
            try:
                messages = self._receive(url, 1, RECEIVE_WAIT_SECONDS)
            except Exception:
                slots.release()
                if not self._stop.is_set():
                    logger.exception("receiving from the bridge queue of %s failed", trigger)
                    time.sleep(1)
                continue
            if not messages:
                slots.release()
                continue
            with self._lock:
                self._in_flight += 1
            self._spawn(f"{trigger}-delivery", self._deliver_async, function, url, messages[0], trigger, event, slots)

    def _deliver_async(
        self,
        function: str,
        url: str,
        message: dict[str, Any],
        trigger: str,
        event: Callable[[dict[str, Any]], Any],
        slots: threading.BoundedSemaphore,
    ) -> None:
        try:
            self.invoke_async(function, event(message), trigger=trigger)
            # The async invoke has run its retries (and dead-lettered a failure): the event is done.
            self._delete(url, [message])
        except Exception:
            logger.exception("delivering an event from %s failed", trigger)
        finally:
            slots.release()
            with self._lock:
                self._in_flight -= 1

    # --- DynamoDB streams -------------------------------------------------------------------

    def _poll_stream(self, mapping: StreamMapping) -> None:
        iterators: dict[str, str | None] = {}
        iterator_type = "TRIM_HORIZON" if mapping.starting_position == "TRIM_HORIZON" else "LATEST"
        caught_up = self._stream_state.caught_up
        while not self._stop.is_set():
            try:
                description = self.streams.describe_stream(StreamArn=mapping.stream_arn)["StreamDescription"]
                for shard in description.get("Shards", []):
                    shard_id = shard["ShardId"]
                    if shard_id not in iterators:
                        caught_up[f"{mapping.stream_arn}/{shard_id}"] = False
                        iterators[shard_id] = self.streams.get_shard_iterator(
                            StreamArn=mapping.stream_arn, ShardId=shard_id, ShardIteratorType=iterator_type
                        )["ShardIterator"]
                progressed = False
                for shard_id, iterator in list(iterators.items()):
                    if iterator is None:
                        continue
                    response = self.streams.get_records(ShardIterator=iterator, Limit=mapping.batch_size)
                    iterators[shard_id] = response.get("NextShardIterator")
                    records = [stream_record(r, mapping.stream_arn) for r in response.get("Records", [])]
                    key = f"{mapping.stream_arn}/{shard_id}"
                    if records:
                        caught_up[key] = False
                        progressed = True
                        self._deliver_stream_batch(mapping, shard_id, records)
                    else:
                        caught_up[key] = True
                if not progressed:
                    self._stop.wait(0.5)
            except Exception:
                if not self._stop.is_set():
                    logger.exception("reading stream %s failed", mapping.stream_arn)
                    self._stop.wait(1)

    def _deliver_stream_batch(self, mapping: StreamMapping, shard_id: str, records: list[dict[str, Any]]) -> None:
        """Deliver in order until every record succeeded or was given up on."""
        retry_limit = mapping.maximum_retry_attempts if mapping.maximum_retry_attempts >= 0 else LOCAL_STREAM_RETRY_CAP
        attempts = 0
        pending = records
        while pending and not self._stop.is_set():
            with self._busy():
                invocation = self._pool(mapping.function).invoke({"Records": pending})
            with self._lock:
                self.stats[mapping.function].add(invocation, len(pending))
            failed_from = first_failed_index(invocation, pending, mapping.report_batch_item_failures)
            self._record(f"stream:{mapping.function}", invocation, len(pending), failed_from)
            if failed_from == len(pending):
                return
            if not invocation.ok and mapping.bisect_on_error and len(pending) > 1:
                middle = len(pending) // 2
                self._deliver_stream_batch(mapping, shard_id, pending[:middle])
                self._deliver_stream_batch(mapping, shard_id, pending[middle:])
                return
            pending = pending[failed_from:]
            attempts += 1
            if attempts > retry_limit:
                self._stream_failure(mapping, shard_id, pending)
                return
            self._stop.wait(min(2.0, 0.2 * 2**attempts))

    def _stream_failure(self, mapping: StreamMapping, shard_id: str, records: list[dict[str, Any]]) -> None:
        logger.error("%s: giving up on %d stream records after retries", mapping.function, len(records))
        if not mapping.on_failure_arn:
            return
        message = {
            "requestContext": {
                "functionArn": self.wiring.function(mapping.function).arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": mapping.maximum_retry_attempts + 1,
            },
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
                "batchSize": len(records),
                "streamArn": mapping.stream_arn,
            },
        }
        self._send_to_destination(mapping.on_failure_arn, json.dumps(message))

    # --- schedules --------------------------------------------------------------------------

    def _run_schedules(self, interval: float) -> None:
        while not self._stop.wait(interval):
            for schedule in self.wiring.schedules:
                if schedule.enabled and schedule.function in self.wiring.functions:
                    self._fire_quietly(schedule)

    def _fire_quietly(self, schedule: Schedule) -> None:
        try:
            self.fire_schedule(schedule.name)
        except Exception:
            logger.exception("schedule %s failed", schedule.name)

    # --- helpers ----------------------------------------------------------------------------

    def _pool(self, function: str) -> FunctionPool:
        with self._lock:
            pool = self._pools.get(function)
            if pool is None:
                spec = self.wiring.function(function)
                package = Package.prepare(spec, self.cache_dir, self.aws, self.rewrites)
                log = self._logs[function] = open(self.log_dir / f"{function}.log", "a")  # noqa: SIM115
                pool = self._pools[function] = FunctionPool(package, log, sandbox_limit(spec, self.max_sandboxes))
            return pool

    @contextlib.contextmanager
    def _busy(self) -> Iterator[None]:
        with self._lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def _record(self, trigger: str, invocation: Invocation, records: int, succeeded: int) -> None:
        with self._lock:
            self.deliveries.append(Delivery(trigger, invocation, records, succeeded, records - succeeded))

    def _take_over(self, uuid: str | None) -> None:
        if uuid is None:
            return
        try:
            self.lambda_.update_event_source_mapping(UUID=uuid, Enabled=False)
            self._taken_over.append(uuid)
        except Exception:  # noqa: BLE001 - a mapping moto does not know cannot interfere either
            logger.debug("event source mapping %s not found in the emulator", uuid)

    def _send_to_destination(self, arn: str, body: str) -> None:
        if ":sqs:" in arn:
            account, name = arn.split(":")[4], arn.split(":")[5]
            url = self.sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
            self.sqs.send_message(QueueUrl=url, MessageBody=body)
        elif ":sns:" in arn:
            self.sns.publish(TopicArn=arn, Message=body)
        else:
            logger.error("unsupported failure destination %s", arn)

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()


def sandbox_limit(spec: FunctionSpec, cap: int) -> int:
    reserved = spec.concurrency_limit
    return max(1, min(cap, reserved) if reserved is not None else cap)


# --- event shapes -------------------------------------------------------------------------------


def sqs_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """An SQS message as Lambda puts it in the event (lower-camel keys, attribute lists renamed)."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": value.get("StringListValues", []),
                "binaryListValues": value.get("BinaryListValues", []),
                "dataType": value.get("DataType"),
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def sns_record(notification: Mapping[str, Any], subscription: TopicSubscription) -> dict[str, Any]:
    """An SNS notification (as delivered to SQS without raw delivery) as Lambda puts it in the event."""
    return {
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": subscription.subscription_arn,
        "Sns": {
            "Type": notification.get("Type", "Notification"),
            "MessageId": notification.get("MessageId"),
            "TopicArn": notification.get("TopicArn", subscription.topic_arn),
            "Subject": notification.get("Subject"),
            "Message": notification.get("Message", ""),
            "Timestamp": notification.get("Timestamp"),
            "SignatureVersion": notification.get("SignatureVersion", "1"),
            "Signature": notification.get("Signature", ""),
            "SigningCertUrl": notification.get("SigningCertURL", ""),
            "UnsubscribeUrl": notification.get("UnsubscribeURL", ""),
            "MessageAttributes": notification.get("MessageAttributes", {}),
        },
    }


def stream_record(record: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """A DynamoDB stream record from GetRecords as Lambda sends it: epoch-second timestamps, and
    binary values (bytes from boto3, in keys and images, sets, maps and lists) as base64 text."""
    body = {name: _base64_binaries(value) for name, value in record["dynamodb"].items()}
    created = body.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        body["ApproximateCreationDateTime"] = created.timestamp()
    return {**record, "dynamodb": body, "eventSourceARN": stream_arn}


def _base64_binaries(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {key: _base64_binaries(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_base64_binaries(item) for item in value]
    return value


def failed_message_ids(invocation: Invocation, messages: list[dict[str, Any]], partial: bool) -> set[str]:
    """Which messages of a batch go back to the queue after this invocation."""
    every = {message["MessageId"] for message in messages}
    if not invocation.ok:
        return every
    if not partial or not isinstance(invocation.result, Mapping):
        return set()
    failures = invocation.result.get("batchItemFailures")
    if not failures:
        return set()
    if not isinstance(failures, list):
        return every
    reported = {item.get("itemIdentifier") if isinstance(item, Mapping) else None for item in failures}
    # Lambda fails the whole batch when any identifier is empty or not in the batch.
    if not reported <= every:
        return every
    return {identifier for identifier in reported if identifier}


def first_failed_index(invocation: Invocation, records: list[dict[str, Any]], partial: bool) -> int:
    """Index of the first stream record to retry; len(records) when the batch fully succeeded."""
    if not invocation.ok:
        return 0
    if not partial or not isinstance(invocation.result, Mapping):
        return len(records)
    failures = invocation.result.get("batchItemFailures") or []
    sequences = [r["dynamodb"]["SequenceNumber"] for r in records]
    positions = []
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, Mapping) else None
        if identifier not in sequences:
            return 0
        positions.append(sequences.index(identifier))
    return min(positions, default=len(records))
