"""DynamoDB calls with the retries a migration needs: throttling and partial batches.

Throttling (ProvisionedThroughputExceeded, ThrottlingException, RequestLimitExceeded,
TransactionConflict) and server errors, which `pipeline_common.errors.is_retryable` calls
retryable, are retried with the shared full-jitter backoff (`pipeline_common.backoff`); so is every
`UnprocessedItems` / `UnprocessedKeys` remainder, which DynamoDB returns instead of an error when
it throttles part of a batch. Nothing is dropped: a remainder that never goes through raises
`RetryableError`, and the caller keeps its checkpoint where it was.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from botocore.exceptions import ClientError

from pipeline_common.backoff import ATTEMPTS, backoff, retry
from pipeline_common.deadline import Deadline, RateLimit
from pipeline_common.errors import PermanentError, RetryableError, aws_error_code, is_retryable

logger = logging.getLogger(__name__)

BATCH_WRITE_SIZE = 25
BATCH_GET_SIZE = 100


class Counters:
    """Thread-safe tallies of what had to be retried, for results and logs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.throttled = 0
        self.unprocessed = 0

    def add(self, *, throttled: int = 0, unprocessed: int = 0) -> None:
        with self._lock:
            self.throttled += throttled
            self.unprocessed += unprocessed


def call(
    operation: Callable[..., dict[str, Any]],
    deadline: Deadline,
    counters: Counters | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """`operation(**kwargs)`, retried with backoff on throttling and server errors."""
    name = getattr(operation, "__name__", "call")

    def throttled(exc: Exception, attempt: int) -> None:
        if counters:
            counters.add(throttled=1)
        logger.warning("%s: %s, backing off (attempt %d)", name, aws_error_code(exc), attempt + 1)

    # Only AWS's answers: botocore has already retried connection errors itself.
    return retry(
        lambda: operation(**kwargs),
        deadline,
        retryable=lambda exc: isinstance(exc, ClientError) and is_retryable(exc),
        on_retry=throttled,
    )


def chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def write_batch(
    client: Any,
    table: str,
    requests: Sequence[dict[str, Any]],
    deadline: Deadline,
    *,
    rate_limit: RateLimit | None = None,
    counters: Counters | None = None,
) -> None:
    """BatchWriteItem `requests` (PutRequest / DeleteRequest, distinct keys) 25 at a time, resending
    every UnprocessedItems remainder after a backoff until all are written."""

    def send(pending: list[dict[str, Any]]) -> list[dict[str, Any]]:
        response = call(client.batch_write_item, deadline, counters, RequestItems={table: pending})
        return response.get("UnprocessedItems", {}).get(table, [])

    for chunk in chunks(requests, BATCH_WRITE_SIZE):
        if rate_limit:
            rate_limit.take(len(chunk), deadline)
        _until_processed(f"BatchWriteItem on {table}", list(chunk), send, deadline, counters)


def get_batch(
    client: Any,
    table: str,
    keys: Sequence[dict[str, Any]],
    deadline: Deadline,
    *,
    projection: Sequence[str] = (),
    consistent: bool = True,
    counters: Counters | None = None,
) -> list[dict[str, Any]]:
    """BatchGetItem of `keys` (distinct; strongly consistent unless told), 100 at a time,
    UnprocessedKeys resent after a backoff. Returns the items found, in no particular order."""
    found: list[dict[str, Any]] = []
    request: dict[str, Any] = {"ConsistentRead": consistent, **(projected(projection) if projection else {})}

    def send(pending: list[dict[str, Any]]) -> list[dict[str, Any]]:
        response = call(client.batch_get_item, deadline, counters, RequestItems={table: {**request, "Keys": pending}})
        found.extend(response.get("Responses", {}).get(table, []))
        return response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])

    for chunk in chunks(keys, BATCH_GET_SIZE):
        _until_processed(f"BatchGetItem on {table}", list(chunk), send, deadline, counters)
    return found


def _until_processed(
    what: str,
    pending: list[dict[str, Any]],
    send: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    deadline: Deadline,
    counters: Counters | None,
) -> None:
    """`send` the requests, then every remainder it returns after a backoff, until none is left."""
    for attempt in range(ATTEMPTS):
        pending = send(pending)
        if not pending:
            return
        if counters:
            counters.add(unprocessed=len(pending))
        if attempt + 1 == ATTEMPTS:
            raise RetryableError(f"{what}: {len(pending)} requests still unprocessed after {ATTEMPTS} attempts")
        backoff(attempt, deadline, what=f"resending {len(pending)} unprocessed requests")


def describe_key(client: Any, table: str) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The table's key attribute names (partition, then sort) and its description."""
    try:
        description = client.describe_table(TableName=table)["Table"]
    except ClientError as exc:
        if aws_error_code(exc) == "ResourceNotFoundException":
            raise PermanentError(f"table {table} does not exist") from None
        raise
    schema = sorted(description["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
    return tuple(k["AttributeName"] for k in schema), description


def scan_segment(
    client: Any,
    table: str,
    segment: int,
    total_segments: int,
    deadline: Deadline,
    *,
    need_ms: float = 0,
    counters: Counters | None = None,
    **request: Any,
) -> Iterator[dict[str, Any]]:
    """Strongly consistent Scan pages of one segment; stops early (the caller sees fewer pages)
    when the deadline leaves less than `need_ms` for another page. `request` adds Scan parameters."""
    start: dict[str, Any] = {}
    while not deadline.expired(need_ms):
        page = call(
            client.scan,
            deadline,
            counters,
            TableName=table,
            Segment=segment,
            TotalSegments=total_segments,
            ConsistentRead=True,
            **request,
            **start,
        )
        yield page
        if "LastEvaluatedKey" not in page:
            return
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


def projected(attributes: Sequence[str]) -> dict[str, Any]:
    """Scan / GetItem / BatchGetItem parameters reading only these attributes."""
    names = {f"#p{i}": name for i, name in enumerate(attributes)}
    return {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}
