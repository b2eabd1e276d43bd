"""Full-jitter backoff within the deadline, and the retry loop every pipeline shares."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from pipeline_common.backoff import ATTEMPTS, RetriesExhausted, backoff, delay, error_name, retry
from pipeline_common.deadline import Deadline, DeadlineExceeded
from pipeline_common.errors import PermanentError, is_retryable


def _throttled(code: str = "ProvisionedThroughputExceededException") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "slow down"}}, "PutItem")


class Flaky:
    """Fails with the given errors, one per call, then returns "done"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def test_delays_are_jittered_below_an_exponential_bound_with_a_cap():
    for attempt in range(20):
        bound = min(5.0, 0.05 * 2**attempt)
        samples = [delay(attempt) for _ in range(200)]
        assert all(0 <= s <= bound for s in samples), attempt
        assert len(set(samples)) > 150, "random, not fixed"
    assert max(delay(3, base=1, cap=2) for _ in range(200)) <= 2
    assert delay(10_000) <= 5.0  # no overflow however many attempts


def test_backoff_waits_through_the_deadline_and_never_into_its_reserve():
    slept: list[float] = []
    assert backoff(0, Deadline.in_seconds(60, sleep=slept.append)) == slept[0] <= 0.05
    with pytest.raises(DeadlineExceeded, match=r"backing off before resending 3 items \(attempt 6\)"):
        backoff(4, Deadline(lambda: 0.0, sleep=slept.append), base=1, what="resending 3 items")
    assert len(slept) == 1


def test_retry_retries_what_is_retryable_and_counts_each_retry():
    slept: list[float] = []
    retried: list[tuple[str, int]] = []
    flaky = Flaky(_throttled(), _throttled("TransactionConflictException"), TimeoutError("read timed out"))

    result = retry(
        flaky, Deadline.in_seconds(60, sleep=slept.append), on_retry=lambda e, n: retried.append((error_name(e), n))
    )

    assert result == "done" and flaky.calls == 4 and len(slept) == 3
    assert retried == [
        ("ProvisionedThroughputExceededException", 0),
        ("TransactionConflictException", 1),
        ("TimeoutError", 2),
    ]


def test_retry_raises_what_is_not_retryable_at_once():
    slept: list[float] = []
    flaky = Flaky(_throttled("ValidationException"))
    with pytest.raises(ClientError, match="ValidationException"):
        retry(flaky, Deadline.in_seconds(60, sleep=slept.append))
    flaky = Flaky(PermanentError("bad input"))
    with pytest.raises(PermanentError):
        retry(flaky, Deadline.in_seconds(60, sleep=slept.append))
    # A narrower test than is_retryable: only what it accepts is retried.
    flaky = Flaky(TimeoutError("x"))
    with pytest.raises(TimeoutError):
        retry(flaky, Deadline.in_seconds(60, sleep=slept.append), retryable=lambda e: isinstance(e, ClientError))
    assert slept == []


def test_retry_gives_up_after_its_attempts_with_a_retryable_error():
    slept: list[float] = []
    flaky = Flaky(*[_throttled("ThrottlingException")] * ATTEMPTS)
    with pytest.raises(RetriesExhausted, match=f"still failing with ThrottlingException after {ATTEMPTS} attempts"):
        retry(flaky, Deadline.in_seconds(600, sleep=slept.append))
    assert flaky.calls == ATTEMPTS and len(slept) == ATTEMPTS - 1
    assert sum(slept[-3:]) > sum(slept[:3]), "later waits are longer"
    assert is_retryable(RetriesExhausted("x"))
    with pytest.raises(ValueError, match="at least one attempt"):
        retry(Flaky(), Deadline.in_seconds(1), attempts=0)


def test_retry_hands_the_work_back_when_the_next_wait_would_pass_the_deadline():
    flaky = Flaky(_throttled(), _throttled())
    with pytest.raises(DeadlineExceeded, match="retrying after ProvisionedThroughputExceededException"):
        retry(flaky, Deadline(lambda: 10.0, reserve_ms=0, sleep=lambda s: None), base=1)
    assert flaky.calls == 1
