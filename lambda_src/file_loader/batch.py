"""One SQS batch of S3 notifications: route each object and load it, report partial failures."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from file_loader.loader import RETRY_SOON_SECONDS, load_object
from file_loader.routes import Route, match_route
from file_loader.throughput import Throughput
from pipeline_common.deadline import Deadline
from pipeline_common.errors import RetryableError
from pipeline_common.events import S3Object, iter_sqs_records, s3_objects, sqs_batch_response
from pipeline_common.ledger import Ledger, ObjectId

logger = logging.getLogger(__name__)

MAX_LISTED_KEYS = 20
MAX_VISIBILITY_SECONDS = 43_200  # SQS's limit


@dataclass
class BatchSummary:
    counts: Counter[str] = field(default_factory=Counter)
    unrouted: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"objects": dict(self.counts), "unrouted_keys": self.unrouted[:MAX_LISTED_KEYS]}


def process_batch(
    event: Mapping[str, Any],
    *,
    routes: list[Route],
    source_bucket: str,
    db: Any,
    s3: Any,
    ledger: Ledger,
    deadline: Deadline,
    throughput: Throughput,
    sqs: Any = None,
) -> dict[str, Any]:
    """Load every object of an SQS batch; failed messages are listed in `batchItemFailures` so
    only they return to the queue. Also returns counts per outcome and the unrouted keys.

    With an `sqs` client, a message that failed with a `RetryableError` naming a
    `retry_after_seconds` (a busy object, a deferral at the deadline) is made visible again that
    soon, not only after the queue's visibility timeout."""
    summary = BatchSummary()
    retry_soon: list[tuple[Mapping[str, Any], float]] = []

    def process(record: Mapping[str, Any]) -> None:
        try:
            process_objects(record)
        except RetryableError as exc:
            if exc.retry_after_seconds is not None:
                retry_soon.append((record, max(RETRY_SOON_SECONDS, exc.retry_after_seconds)))
            raise

    def process_objects(record: Mapping[str, Any]) -> None:
        for obj in s3_objects(record["body"]):
            summary.counts[
                _process_object(
                    obj,
                    routes=routes,
                    source_bucket=source_bucket,
                    db=db,
                    s3=s3,
                    ledger=ledger,
                    deadline=deadline,
                    throughput=throughput,
                    summary=summary,
                )
            ] += 1

    response: dict[str, Any] = sqs_batch_response(list(iter_sqs_records(event)), process)
    summary.counts["failed_messages"] = len(response["batchItemFailures"])
    if sqs is not None:
        for record, seconds in retry_soon:
            _make_visible_after(sqs, record, seconds)
    return response | summary.as_dict()


def _make_visible_after(sqs: Any, record: Mapping[str, Any], seconds: float) -> None:
    """Shorten the failed message's invisibility; on any error it simply returns later, after
    the queue's visibility timeout, as it would without this."""
    try:
        sqs.change_message_visibility(
            QueueUrl=queue_url(sqs, record["eventSourceARN"]),
            ReceiptHandle=record["receiptHandle"],
            VisibilityTimeout=min(MAX_VISIBILITY_SECONDS, int(seconds)),
        )
    except (BotoCoreError, ClientError, KeyError, ValueError) as exc:
        logger.warning(
            "could not shorten the message's visibility",
            extra={"message_id": record.get("messageId"), "error": str(exc)},
        )


def queue_url(sqs: Any, queue_arn: str) -> str:
    """The queue's URL from its ARN (arn:aws:sqs:region:account:name) and the client's endpoint,
    which is in the queue's region: an event source mapping only reads queues of its own region.
    Spares a GetQueueUrl call, which the function's role does not allow."""
    _, _, _, _, account, name = queue_arn.split(":", 5)
    return f"{sqs.meta.endpoint_url.rstrip('/')}/{account}/{name}"


def _process_object(
    obj: S3Object,
    *,
    routes: list[Route],
    source_bucket: str,
    db: Any,
    s3: Any,
    ledger: Ledger,
    deadline: Deadline,
    throughput: Throughput,
    summary: BatchSummary,
) -> str:
    if obj.event_name and not obj.event_name.startswith("ObjectCreated"):
        logger.info("not an ObjectCreated event; ignored", extra={"event": obj.event_name, "key": obj.key})
        return "ignored"
    route = match_route(routes, obj.key) if obj.bucket == source_bucket else None
    if route is None:
        # Left alone on purpose: reported, never failed, so it cannot clog the queue or the DLQ.
        logger.warning("object matches no route; left alone", extra={"bucket": obj.bucket, "key": obj.key})
        summary.unrouted.append(f"s3://{obj.bucket}/{obj.key}")
        return "unrouted"
    size, etag, version_id = obj.size, obj.etag, obj.version_id
    if not obj.version:
        head = s3.head_object(Bucket=obj.bucket, Key=obj.key)
        size, etag, version_id = head["ContentLength"], head["ETag"].strip('"'), head.get("VersionId")
    object_id = ObjectId(obj.bucket, obj.key, version_id or etag or "")
    result = load_object(
        db=db,
        s3=s3,
        obj=object_id,
        route=route,
        ledger=ledger,
        deadline=deadline,
        throughput=throughput,
        size=size,
        etag=etag,
        version_id=version_id,
    )
    logger.info(
        "object processed",
        extra={
            "status": result.status,
            "bucket": result.bucket,
            "key": result.key,
            "version": result.version,
            "table": result.table,
            "lines": result.lines,
            "rows_loaded": result.rows_loaded,
            "rows_rejected": result.rows_rejected,
            "error": result.error,
        },
    )
    return result.status
