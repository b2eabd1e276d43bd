"""Trying again after a retryable failure: full-jitter exponential backoff inside the deadline.

Throttled AWS calls (`ProvisionedThroughputExceededException`, `SlowDown`, ...), the remainder of
a partial batch (DynamoDB's `UnprocessedItems`, SQS's failed entries), a busy lock: each is worth
another try after a wait that grows with every attempt. The wait is random between zero and the
exponential bound ("full jitter"), so callers throttled together do not come back together. Every
wait goes through `Deadline.wait`: none sleeps into the reserve; when a wait would, the deadline
raises `DeadlineExceeded` (retryable) and the work is handed back.

    item = retry(lambda: table.get_item(Key=key), deadline, on_retry=log_it)

    for attempt in range(MAX_ATTEMPTS):      # a loop of its own, e.g. resending a remainder
        pending = send(pending)
        if not pending:
            break
        backoff(attempt, deadline, what="resending unprocessed items")
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

from pipeline_common.deadline import Deadline
from pipeline_common.errors import RetryableError, aws_error_code, is_retryable

T = TypeVar("T")

BASE_SECONDS = 0.05
CAP_SECONDS = 5.0
ATTEMPTS = 12  # with the defaults, about half a minute of waiting before giving up


class RetriesExhausted(RetryableError):
    """Every attempt failed with a retryable error; a later invocation may still succeed."""


def delay(attempt: int, *, base: float = BASE_SECONDS, cap: float = CAP_SECONDS) -> float:
    """Seconds to wait after failed attempt number `attempt` (0 for the first): uniform in
    [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(cap, base * 2 ** min(attempt, 64)))


def backoff(
    attempt: int, deadline: Deadline, *, base: float = BASE_SECONDS, cap: float = CAP_SECONDS, what: str = "a retry"
) -> float:
    """Wait `delay(attempt)` within the deadline (`DeadlineExceeded` when it does not fit); returns
    the seconds waited."""
    seconds = delay(attempt, base=base, cap=cap)
    deadline.wait(seconds, f"backing off before {what} (attempt {attempt + 2})")
    return seconds


def retry(
    operation: Callable[[], T],
    deadline: Deadline,
    *,
    attempts: int = ATTEMPTS,
    retryable: Callable[[BaseException], bool] = is_retryable,
    on_retry: Callable[[Exception, int], None] | None = None,
    base: float = BASE_SECONDS,
    cap: float = CAP_SECONDS,
) -> T:
    """`operation()`, tried again after a backoff while it fails with an error `retryable` accepts
    (`errors.is_retryable` by default), at most `attempts` times in all. Any other error is raised
    at once; the last retryable one as `RetriesExhausted`. `on_retry(exc, attempt)` is called
    before each wait (to count or log it)."""
    for attempt in range(attempts):
        try:
            return operation()
        except Exception as exc:
            if not retryable(exc):
                raise
            if attempt + 1 == attempts:
                raise RetriesExhausted(
                    f"still failing with {error_name(exc)} after {attempts} attempts: {exc}"
                ) from exc
            if on_retry is not None:
                on_retry(exc, attempt)
            backoff(attempt, deadline, base=base, cap=cap, what=f"retrying after {error_name(exc)}")
    raise ValueError(f"retry needs at least one attempt, got attempts={attempts}")


def error_name(exc: BaseException) -> str:
    """An AWS error's code (`ThrottlingException`), else the exception's type."""
    return aws_error_code(exc) or type(exc).__name__
