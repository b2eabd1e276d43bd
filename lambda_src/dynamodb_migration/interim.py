"""TEMPORARY stand-ins for shared pieces that are being added to `pipeline_common` elsewhere.

Everything the migration needs from those pieces lives here, and only here, so that the switch is
one import per name once they land:

- `MigrationError` / `RetryableError` / `PermanentError` -> the shared error base with
  retryable / permanent kinds;
- `Pacer` -> the pacer on `Deadline` (a rate cap shared by threads);
- `backoff_sleep` -> the shared backoff with full jitter, bounded by the deadline;
- `Clients` -> the sandbox helper's lazily opened clients.

Keep this module tiny; do not grow features here.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from pipeline_common.deadline import Deadline


class MigrationError(RuntimeError):
    """An error with a kind: `retryable` errors may succeed on a later invocation."""

    retryable = False


class RetryableError(MigrationError):
    """Throttling, conflicts or timeouts that outlasted the retries; the next run continues."""

    retryable = True


class PermanentError(MigrationError):
    """Bad configuration or data; retrying cannot help until someone fixes it."""


def sleep(seconds: float) -> None:
    """Every wait of the migration goes through here (tests replace it)."""
    time.sleep(seconds)


def backoff_sleep(attempt: int, deadline: Deadline, *, base: float = 0.05, cap: float = 5.0) -> None:
    """Sleep a random time in [0, min(cap, base * 2**attempt)] ("full jitter"), never into the
    deadline's reserve: raises RetryableError when not even the wait fits."""
    delay = random.uniform(0, min(cap, base * 2**attempt))
    if deadline.expired(delay * 1000):
        raise RetryableError(f"no time left to back off {delay:.2f} s before retrying (attempt {attempt + 1})")
    sleep(delay)


class Pacer:
    """At most `rate` units per second across every thread of the sandbox (0 = unlimited).

    A token bucket with one second of burst: `take(n)` waits until n tokens are available.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = rate
        self._stamp = clock()

    def take(self, units: int, deadline: Deadline) -> float:
        """Wait for `units` tokens; returns the seconds waited."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.rate, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= units  # may go negative: this caller waits for the debt to refill
            wait = max(0.0, -self._tokens / self.rate)
        if wait:
            if deadline.expired(wait * 1000):
                raise RetryableError(f"write-rate cap: waiting {wait:.2f} s would pass the deadline")
            sleep(wait)
        return wait


class Clients:
    """boto3 clients opened on first use and reused by every invocation of the sandbox."""

    def __init__(self, factory: Callable[[str], Any] | None = None) -> None:
        self._factory = factory or _default_client
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._factory(service)
            return self._clients[service]


def _default_client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    # Throttling is retried by the migration itself (with jitter, within the deadline); botocore's
    # standard mode keeps its few quick retries for network errors. The pool covers the copy threads.
    config = Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=64, connect_timeout=5)
    return boto3.client(service, config=config)
