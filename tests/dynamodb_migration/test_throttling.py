"""Throttling and partial batches, which moto never produces: stubbed responses (botocore Stubber)
for the retry loops, and hooks on a moto-backed client for the copy as a whole."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from dynamodb_migration.dynamo import Counters, call, get_batch, write_batch
from pipeline_common.backoff import ATTEMPTS as MAX_ATTEMPTS
from pipeline_common.deadline import Deadline, DeadlineExceeded
from pipeline_common.errors import RetryableError, is_retryable
from tests.dynamodb_migration.conftest import Budget, Migration, on_call

THROTTLING = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TransactionConflictException",
]


@pytest.fixture
def slept() -> list[float]:
    """Every backoff wait of `deadline`, instead of sleeping."""
    return []


@pytest.fixture
def deadline(slept: list[float]) -> Deadline:
    return Deadline.in_seconds(600, sleep=slept.append)


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("dynamodb", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _put(i: int) -> dict[str, Any]:
    return {"PutRequest": {"Item": {"id": {"S": f"k{i}"}}}}


KEY = {"id": {"S": "k"}}


@pytest.mark.parametrize("code", THROTTLING)
def test_each_throttling_error_is_retried_after_a_jittered_wait(
    code: str, stubbed: Any, slept: list[float], deadline: Deadline
) -> None:
    client, stubber = stubbed
    stubber.add_client_error("get_item", service_error_code=code, http_status_code=400)
    stubber.add_response("get_item", {"Item": KEY}, {"TableName": "t", "Key": KEY})
    counters = Counters()

    assert call(client.get_item, deadline, counters, TableName="t", Key=KEY)["Item"] == KEY
    assert len(slept) == 1 and 0 <= slept[0] <= 0.05
    assert counters.throttled == 1
    assert is_retryable(ClientError({"Error": {"Code": code}}, "GetItem"))


def test_other_errors_are_not_retried(stubbed: Any, slept: list[float], deadline: Deadline) -> None:
    client, stubber = stubbed
    stubber.add_client_error("get_item", service_error_code="ValidationException", http_status_code=400)
    with pytest.raises(ClientError, match="ValidationException"):
        call(client.get_item, deadline, TableName="t", Key=KEY)
    assert slept == []


def test_throttling_that_never_ends_gives_up_with_growing_waits(
    stubbed: Any, slept: list[float], deadline: Deadline
) -> None:
    client, stubber = stubbed
    for _ in range(MAX_ATTEMPTS):
        stubber.add_client_error("get_item", service_error_code="ThrottlingException", http_status_code=400)
    with pytest.raises(RetryableError, match=f"still failing with ThrottlingException after {MAX_ATTEMPTS} attempts"):
        call(client.get_item, deadline, TableName="t", Key=KEY)
    assert len(slept) == MAX_ATTEMPTS - 1
    assert all(0 <= wait <= min(5.0, 0.05 * 2**i) for i, wait in enumerate(slept))
    assert len(set(slept)) > 1, "jittered, not fixed"
    assert sum(slept[-4:]) > sum(slept[:4]), "exponential: later waits are longer"


def test_no_backoff_runs_into_the_deadline(stubbed: Any, slept: list[float]) -> None:
    client, stubber = stubbed
    stubber.add_client_error("get_item", service_error_code="ThrottlingException", http_status_code=400)
    with pytest.raises(DeadlineExceeded, match="needed for backing off before retrying after ThrottlingException"):
        call(client.get_item, Deadline(lambda: 0.0, sleep=slept.append), TableName="t", Key=KEY)
    assert slept == []


def test_every_unprocessed_remainder_is_resent_after_a_wait(
    stubbed: Any, slept: list[float], deadline: Deadline
) -> None:
    client, stubber = stubbed
    batch = [_put(i) for i in range(25)]
    stubber.add_response("batch_write_item", {"UnprocessedItems": {"t": batch[20:]}}, {"RequestItems": {"t": batch}})
    stubber.add_response(
        "batch_write_item", {"UnprocessedItems": {"t": batch[24:]}}, {"RequestItems": {"t": batch[20:]}}
    )
    stubber.add_response("batch_write_item", {"UnprocessedItems": {}}, {"RequestItems": {"t": batch[24:]}})
    stubber.add_response("batch_write_item", {}, {"RequestItems": {"t": [_put(25)]}})
    counters = Counters()

    write_batch(client, "t", [*batch, _put(25)], deadline, counters=counters)

    assert len(slept) == 2 and counters.unprocessed == 6


def test_a_remainder_that_never_goes_through_is_an_error_not_a_loss(
    stubbed: Any, slept: list[float], deadline: Deadline
) -> None:
    client, stubber = stubbed
    for _ in range(MAX_ATTEMPTS):
        stubber.add_response(
            "batch_write_item", {"UnprocessedItems": {"t": [_put(1)]}}, {"RequestItems": {"t": [_put(1)]}}
        )
    with pytest.raises(RetryableError, match="BatchWriteItem on t: 1 requests still unprocessed"):
        write_batch(client, "t", [_put(1)], deadline)


def test_unprocessed_keys_are_read_again(stubbed: Any, slept: list[float], deadline: Deadline) -> None:
    client, stubber = stubbed
    keys = [{"id": {"S": f"k{i}"}} for i in range(3)]
    request = {"ConsistentRead": True}
    stubber.add_response(
        "batch_get_item",
        {"Responses": {"t": [keys[0]]}, "UnprocessedKeys": {"t": {"Keys": keys[1:], **request}}},
        {"RequestItems": {"t": {**request, "Keys": keys}}},
    )
    stubber.add_response(
        "batch_get_item", {"Responses": {"t": keys[1:]}}, {"RequestItems": {"t": {**request, "Keys": keys[1:]}}}
    )

    assert get_batch(client, "t", keys, deadline) == keys
    assert len(slept) == 1


# --- the copy against moto, with throttling and partial batches injected on its client -----------


def _fail(client: Any, operation: str, code: str, times: int) -> None:
    """The next `times` calls of `operation` get `code` back instead of reaching moto."""
    left = {"n": times}

    def hook(**kwargs: Any) -> Any:
        if left["n"]:
            left["n"] -= 1
            error = {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": 400}}
            return AWSResponse("https://dynamodb", 400, {}, None), error
        return None

    client.meta.events.register(f"before-call.dynamodb.{operation}", hook)


def _hold_back(migration: Migration, every: int) -> list[int]:
    """Each BatchWriteItem to the target sends only part of its items to moto and reports the rest
    (one in `every`, at least one) as UnprocessedItems, as DynamoDB does when it throttles."""
    held: dict[int, list[Any]] = {}
    counts: list[int] = []
    target = migration.settings.target_table

    def before(params: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        requests = params["RequestItems"].get(target)
        if requests and len(requests) > 1:
            back = requests[::every] or requests[:1]
            params["RequestItems"][target] = [r for r in requests if r not in back]
            held[id(context)] = back
            counts.append(len(back))

    def after(parsed: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        back = held.pop(id(context), None)
        if back:
            parsed.setdefault("UnprocessedItems", {})[target] = back

    on_call(migration.client, "BatchWriteItem", before)
    on_call(migration.client, "BatchWriteItem", after, after=True)
    return counts


def test_the_copy_rides_out_throttling_and_partial_batches(
    migration: Migration, slept: list[float], deadline: Deadline
) -> None:
    migration.deadline = deadline
    migration.fill_source(150)
    _fail(migration.client, "Scan", "ProvisionedThroughputExceededException", 3)
    _fail(migration.client, "BatchGetItem", "ThrottlingException", 2)
    held = _hold_back(migration, every=4)

    result = migration.copy()

    assert result.status == "done", result.errors
    assert migration.target() == migration.expected()
    assert result.this_run["throttled"] == 5
    assert result.this_run["unprocessed"] == sum(held) > 0
    assert len(slept) == 5 + len(held), "a backoff for every throttling error and every remainder"


def test_a_backoff_the_deadline_cuts_short_stops_the_copy_which_continues_later(migration: Migration) -> None:
    """Throttled when no time is left to wait: the copy stops (no error, `continues`) and the next
    invocation finishes from the checkpoints."""
    migration.fill_source(120)
    budget = Budget(600_000)
    throttled = {"n": 0}

    def hook(**kwargs: Any) -> Any:
        if throttled["n"] == 0:
            throttled["n"] += 1
            budget.ms = 0  # the invocation is out of time as the throttling arrives
            error = {"Error": {"Code": "ThrottlingException", "Message": "injected"}}
            return AWSResponse("https://dynamodb", 400, {}, None), {
                **error,
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
        return None

    migration.client.meta.events.register("before-call.dynamodb.Scan", hook)
    stopped = migration.copy(deadline=budget.deadline)

    assert stopped.status == "continues" and stopped.errors == [] and stopped.retryable
    assert throttled["n"] == 1
    finished = migration.copy()
    assert finished.status == "done"
    assert migration.target() == migration.expected()
