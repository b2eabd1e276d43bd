"""Event parsing for the triggers the pipelines use, and partial batch responses.

S3 notifications reach a function in several envelopes: plain (S3 -> Lambda), inside an SNS
message (S3 -> SNS -> Lambda), inside an SQS body (S3 -> SQS) or both (S3 -> SNS -> SQS), and as
EventBridge events (S3 -> EventBridge -> Lambda, or -> SQS with the event as the body). All are
unwrapped to `S3Object`s by `s3_objects`; `is_s3_notification` says whether a payload is one of
these envelopes, so a handler taking other payloads too (an operator's request) decides the same
way the parser does.

Keys: S3 notification records URL-encode them ("a b" arrives as "a+b"), so they are decoded;
EventBridge events carry the key as it is (AWS documents no encoding for them, and a `+` in a key
arrives as `+`), so they are not. The `s3:TestEvent` S3 sends when a notification configuration
is saved carries no object and is skipped. An EventBridge event's `detail-type` becomes the
notification-style `event_name` (`Object Created` with reason `PutObject` -> `ObjectCreated:Put`),
so consumers filter both kinds alike.

Powertools (in every package) does part of this: its `BatchProcessor` builds the SQS partial batch
response. The rest stays ours, each for a reason (README, Libraries and why): its S3 record class
neither URL-decodes keys nor tolerates records without `sequencer` or `size` (moto's, deletions),
and it unwraps one given nesting only; its stream data classes leave binary values as the base64
text Lambda's JSON carries (`client_image` turns them into the bytes boto3 writes); its stream
processor keeps applying records after a failed one, which would let them overtake it, where a
stream must stop at the first failure.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from pipeline_common.errors import PermanentError

logger = logging.getLogger(__name__)


class EventError(PermanentError, ValueError):
    """An event (or one record of it) is not in a shape this function understands."""


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    event_name: str = ""
    sequencer: str | None = None
    # When S3 recorded the event (ISO 8601, as the notification carries it): the object's arrival.
    event_time: str | None = None

    @property
    def version(self) -> str:
        """What identifies this content of the key: the version id, else the ETag."""
        return self.version_id or self.etag or ""


def s3_objects(payload: Mapping[str, Any] | str) -> list[S3Object]:
    """The S3 objects in one event, SNS message, SQS body or EventBridge event, whatever the nesting."""
    document = _as_document(payload)
    envelope = _envelope(document)
    if envelope == "test":
        return []
    if envelope == "records":
        objects: list[S3Object] = []
        for record in document["Records"]:
            objects.extend(_objects_in_record(record))
        return objects
    if envelope == "sns":  # SNS envelope in an SQS body
        return s3_objects(document["Message"])
    if envelope == "eventbridge":
        return [_eventbridge_object(document)]
    raise EventError(f"not an S3 notification: keys {sorted(document)}")


def is_s3_notification(payload: Mapping[str, Any] | str) -> bool:
    """Whether `payload` is one of the envelopes `s3_objects` reads (it may still hold a malformed
    record, which `s3_objects` then refuses)."""
    try:
        return _envelope(_as_document(payload)) is not None
    except EventError:
        return False


def _envelope(document: Mapping[str, Any]) -> str | None:
    if document.get("Event") == "s3:TestEvent":
        return "test"
    if "Records" in document:
        return "records"
    if document.get("Type") == "Notification" and "Message" in document:
        return "sns"
    if document.get("source") == "aws.s3" and "detail-type" in document and isinstance(document.get("detail"), Mapping):
        return "eventbridge"
    return None


# EventBridge `detail-type` and `reason` -> the event name an S3 notification record would carry.
_EVENTBRIDGE_TYPES = {"Object Created": "ObjectCreated", "Object Deleted": "ObjectRemoved"}
_EVENTBRIDGE_REASONS = {
    "PutObject": "Put",
    "POST Object": "Post",
    "CopyObject": "Copy",
    "CompleteMultipartUpload": "CompleteMultipartUpload",
    "DeleteObject": "Delete",
}


def _eventbridge_object(event: Mapping[str, Any]) -> S3Object:
    detail = event["detail"]
    try:
        bucket, obj = detail["bucket"]["name"], detail["object"]
        key = obj["key"]
    except (KeyError, TypeError):
        raise EventError(f"EventBridge {event.get('detail-type')!r} event without bucket and object key") from None
    kind = event["detail-type"]
    reason = detail.get("reason") or ""
    prefix = _EVENTBRIDGE_TYPES.get(kind)
    return S3Object(
        bucket=bucket,
        key=key,  # as it is: EventBridge does not URL-encode keys
        version_id=obj.get("version-id") or None,
        etag=(obj.get("etag") or obj.get("eTag") or "").strip('"') or None,
        size=obj.get("size"),
        event_name=f"{prefix}:{_EVENTBRIDGE_REASONS.get(reason, reason)}" if prefix else kind,
        sequencer=obj.get("sequencer"),
    )


def _objects_in_record(record: Mapping[str, Any]) -> list[S3Object]:
    source = record.get("eventSource") or record.get("EventSource")
    if source == "aws:sqs":
        return s3_objects(record["body"])
    if source == "aws:sns":
        return s3_objects(record["Sns"]["Message"])
    if source == "aws:s3" or "s3" in record:
        s3 = record["s3"]
        obj = s3["object"]
        return [
            S3Object(
                bucket=s3["bucket"]["name"],
                # S3 URL-encodes keys in notifications ("a b" arrives as "a+b").
                key=unquote_plus(obj["key"]),
                version_id=obj.get("versionId") or None,
                etag=(obj.get("eTag") or obj.get("etag") or "").strip('"') or None,
                size=obj.get("size"),
                event_name=record.get("eventName", ""),
                sequencer=obj.get("sequencer"),
                event_time=record.get("eventTime") or None,
            )
        ]
    raise EventError(f"unsupported record source {source!r}")


def _as_document(payload: Mapping[str, Any] | str) -> Mapping[str, Any]:
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except json.JSONDecodeError:
            raise EventError("message body is not JSON") from None
    if not isinstance(payload, Mapping):
        raise EventError(f"expected a JSON object, got {type(payload).__name__}")
    return payload


@dataclass(frozen=True)
class StreamRecord:
    """One DynamoDB stream record with its images deserialised to plain Python values."""

    event_name: str  # INSERT | MODIFY | REMOVE
    keys: dict[str, Any]
    new_image: dict[str, Any] | None
    old_image: dict[str, Any] | None
    sequence_number: str
    event_source_arn: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


def stream_record(record: Mapping[str, Any]) -> StreamRecord:
    from boto3.dynamodb.types import TypeDeserializer

    if record.get("eventSource") != "aws:dynamodb":
        raise EventError(f"not a DynamoDB stream record: eventSource {record.get('eventSource')!r}")
    deserializer = TypeDeserializer()
    body = record["dynamodb"]

    def image(name: str) -> dict[str, Any] | None:
        raw = body.get(name)
        return None if raw is None else {k: deserializer.deserialize(v) for k, v in client_image(raw).items()}

    return StreamRecord(
        event_name=record["eventName"],
        keys=image("Keys") or {},
        new_image=image("NewImage"),
        old_image=image("OldImage"),
        sequence_number=body["SequenceNumber"],
        event_source_arn=record.get("eventSourceARN", ""),
        raw=record,
    )


def client_image(image: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB image or key from a Lambda stream event (`{"id": {"S": "a"}, "blob": {"B": "AAE="}}`)
    in boto3's client form: Lambda's JSON carries binary values (`B`, `BS`, also inside `M` and `L`)
    as base64 text, while boto3 sends and `TypeDeserializer` reads bytes. Values already bytes (an
    image from GetRecords) are kept."""
    return {name: _client_value(name, value) for name, value in image.items()}


def _client_value(name: str, value: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(value, Mapping) or len(value) != 1:
        raise EventError(f"attribute {name!r} is not a DynamoDB attribute value: {value!r}")
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": _binary(name, inner)}
    if kind == "BS":
        return {"BS": [_binary(name, item) for item in inner]}
    if kind == "M":
        return {"M": client_image(inner)}
    if kind == "L":
        return {"L": [_client_value(name, item) for item in inner]}
    return dict(value)


def _binary(name: str, value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise EventError(f"binary attribute {name!r} is not base64: {value!r}") from None


def sqs_batch_response(
    records: list[Mapping[str, Any]], process: Callable[[Mapping[str, Any]], Any]
) -> dict[str, list[dict[str, str]]]:
    """Run `process` on each SQS record; report the failed ones so only they return to the queue.

    Needs `ReportBatchItemFailures` on the event source mapping. A batch whose every record failed
    is reported like any other (Powertools would raise instead), so the caller still returns its
    summary and the messages return to the queue all the same.
    """
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    def handle(record: SQSRecord) -> None:
        try:
            process(record.raw_event)
        except Exception:
            logger.exception("record failed", extra={"message_id": record.message_id})
            raise

    processor = BatchProcessor(EventType.SQS, raise_on_entire_batch_failure=False)
    with processor([dict(r) for r in records], handle):
        processor.process()
    return {"batchItemFailures": [dict(f) for f in processor.response()["batchItemFailures"]]}


def stream_batch_response(
    records: list[Mapping[str, Any]], process: Callable[[Mapping[str, Any]], Any]
) -> dict[str, list[dict[str, str]]]:
    """Process DynamoDB stream records in order; stop at the first failure.

    Stream batches are ordered: the failed record's sequence number is reported and Lambda
    retries from it, so the records after it must not be applied now or they would overtake it.
    """
    for record in records:
        try:
            process(record)
        except Exception:
            sequence = record["dynamodb"]["SequenceNumber"]
            logger.exception("stream record failed", extra={"sequence_number": sequence})
            return {"batchItemFailures": [{"itemIdentifier": sequence}]}
    return {"batchItemFailures": []}


def iter_sqs_records(event: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for record in event.get("Records", []):
        if record.get("eventSource") != "aws:sqs":
            raise EventError(f"not an SQS record: eventSource {record.get('eventSource')!r}")
        yield record
