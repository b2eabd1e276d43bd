"""Stop long work cleanly before the Lambda timeout.

Lambda kills a function at its timeout, mid-statement, with no chance to commit a checkpoint or
hand a message back. These tools keep work inside the time it has:

- `Deadline`: the time left (from the Lambda context) minus a reserve kept back to finish the
  unit in flight, roll back or commit, and report; every wait of a pipeline (a backoff, a rate
  cap) goes through `Deadline.wait`, which never sleeps into the reserve;
- `Pacer`: asked before each unit of work (a chunk, a page, a file), it says whether the slowest
  unit seen so far would still fit, and sizes the next unit toward a target duration;
- `RateLimit`: at most N units per second across the threads of a sandbox (a write-rate cap that
  keeps a production table's capacity for its application);
- `bound_statements`: has the database cancel a statement that would run into the reserve, so a
  slow statement ends as a clean rollback instead of a killed sandbox.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from pipeline_common.db import SessionScopeOnly, engine_of
from pipeline_common.errors import RetryableError


class LambdaContextLike(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class TimeBudget(Protocol):
    """A `Deadline`, or a `Pacer` answering from its last question to the deadline."""

    def usable_ms(self) -> float: ...


class DeadlineExceeded(RetryableError):
    """Raised by `Deadline.check` when too little time is left to start more work; the work can
    continue on the next try at once."""

    retry_after_seconds = 0.0


class Deadline:
    """`sleep` is how `wait` sleeps (tests pass one that records the waits instead)."""

    def __init__(
        self,
        remaining_ms: Callable[[], float],
        reserve_ms: float = 10_000,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._remaining_ms = remaining_ms
        self.reserve_ms = reserve_ms
        self._sleep = sleep

    @classmethod
    def from_context(cls, context: LambdaContextLike | Any, reserve_ms: float = 10_000) -> Deadline:
        return cls(context.get_remaining_time_in_millis, reserve_ms)

    @classmethod
    def in_seconds(
        cls,
        seconds: float,
        reserve_ms: float = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Deadline:
        """A deadline `seconds` from now, for scripts and tests outside Lambda."""
        end = clock() + seconds

        def remaining() -> float:
            return (end - clock()) * 1000

        return cls(remaining, reserve_ms, sleep)

    def remaining_ms(self) -> float:
        """Time left before the hard timeout."""
        return self._remaining_ms()

    def usable_ms(self) -> float:
        """Time left for new work once the reserve is kept back."""
        return self._remaining_ms() - self.reserve_ms

    def expired(self, need_ms: float = 0) -> bool:
        """True when there is not `need_ms` of usable time left."""
        return self.usable_ms() <= need_ms

    def check(self, need_ms: float = 0, what: str = "work") -> None:
        if self.expired(need_ms):
            raise DeadlineExceeded(
                f"stopping before the Lambda timeout: {self.remaining_ms():.0f} ms left, "
                f"{self.reserve_ms:.0f} ms reserved, {need_ms:.0f} ms needed for {what}"
            )

    def wait(self, seconds: float, what: str = "waiting") -> None:
        """Sleep `seconds`, or raise `DeadlineExceeded` at once when that would reach the reserve."""
        if seconds <= 0:
            return
        self.check(seconds * 1000, what)
        self._sleep(seconds)


class Pacer:
    """Paces a loop of units of work against a deadline, from the units seen so far.

    `fits()` is asked before each unit: there must be room for the slowest unit so far times
    `margin` (a unit may take longer than any before it). `unit()` times one. `next_size(size)`
    scales the size of the next unit toward `target_ms` from the last unit's rate, by at most
    `step` (x2: doubling or halving) at a time, within `minimum` and `maximum`; with `smoothing`
    (0 to 1) the time per item it scales from is a moving average, that weight given to the past,
    so one slow or fast unit (a lock wait, a cached page) does not swing the size. `usable_ms()`
    answers from the last `fits()` without asking the deadline again, so the unit's statements
    can be bounded (`bound_statements(cur, pacer)`) at no extra cost.
    """

    def __init__(
        self,
        deadline: Deadline,
        *,
        margin: float = 1.5,
        target_ms: float | None = None,
        minimum: int = 1,
        maximum: int | None = None,
        step: float = 2.0,
        smoothing: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= smoothing < 1:
            raise ValueError("Pacer smoothing must be at least 0 and below 1")
        self.deadline = deadline
        self.margin = margin
        self.target_ms = target_ms
        self.minimum = minimum
        self.maximum = maximum
        self.step = step
        self.smoothing = smoothing
        self._clock = clock
        self._per_item: tuple[int, float] | None = None  # (units seen, smoothed ms per item)
        self.units = 0
        self.slowest_ms = 0.0
        self.last_ms = 0.0
        self._usable: tuple[float, float] | None = None  # (usable ms, clock) at the last fits()

    def fits(self) -> bool:
        """Whether another unit fits before the deadline's reserve."""
        usable = self.deadline.usable_ms()
        self._usable = (usable, self._clock())
        return usable > self.slowest_ms * self.margin

    def usable_ms(self) -> float:
        """Usable time left: the deadline's answer at the last `fits()` less the time since."""
        if self._usable is None:
            return self.deadline.usable_ms()
        usable, asked_at = self._usable
        return usable - (self._clock() - asked_at) * 1000

    @contextmanager
    def unit(self) -> Iterator[None]:
        """Time the unit of work in the block (also when the block returns or raises)."""
        started = self._clock()
        try:
            yield
        finally:
            self.observe((self._clock() - started) * 1000)

    def observe(self, elapsed_ms: float) -> None:
        self.units += 1
        self.last_ms = elapsed_ms
        self.slowest_ms = max(self.slowest_ms, elapsed_ms)

    def next_size(self, size: int) -> int:
        """The size for the next unit, `size` being the last one's (needs `target_ms`)."""
        if self.target_ms is None:
            raise ValueError("Pacer.next_size needs a target_ms")
        if self.units == 0:
            wanted = float(size)
        elif self.last_ms <= 0:
            wanted = size * self.step
        elif not self.smoothing:
            wanted = size * self.target_ms / self.last_ms
        else:
            wanted = self.target_ms / self._smoothed_ms_per_item(size)
        wanted = min(max(wanted, size / self.step), size * self.step)
        if self.maximum is not None:
            wanted = min(wanted, self.maximum)
        return max(self.minimum, int(wanted))

    def _smoothed_ms_per_item(self, size: int) -> float:
        """The last unit's time per item, averaged with the earlier units' (updated once per unit)."""
        last = self.last_ms / max(size, 1)
        if self._per_item is None:
            self._per_item = (self.units, last)
        elif self._per_item[0] != self.units:
            self._per_item = (self.units, self.smoothing * self._per_item[1] + (1 - self.smoothing) * last)
        return self._per_item[1]


class RateLimit:
    """At most `rate` units per second across every thread sharing it (0: no limit).

    A token bucket holding one second of units: `take(n, deadline)` takes n units, waiting (through
    `deadline.wait`) for those the bucket lacks. A caller may take more than the bucket holds; it
    then waits for the whole debt, and the callers after it wait behind it.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate < 0:
            raise ValueError(f"RateLimit rate must be 0 (no limit) or positive, got {rate}")
        self.rate = rate
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = float(rate)
        self._stamp = clock()

    def take(self, units: int, deadline: Deadline) -> float:
        """Take `units`; returns the seconds waited for them."""
        if self.rate == 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.rate, self._tokens + (now - self._stamp) * self.rate) - units
            self._stamp = now
            wait = max(0.0, -self._tokens / self.rate)
        try:
            deadline.wait(wait, f"the rate limit of {self.rate:g} units/s")
        except DeadlineExceeded:
            with self._lock:
                self._tokens += units  # not taken after all: the callers behind this one need not wait for it
            raise
        return wait


def statement_limit_ms(deadline: TimeBudget) -> int:
    """The per-statement limit that keeps a statement out of the deadline's reserve."""
    return max(1, int(deadline.usable_ms()))


def bound_statements(cur: Any, deadline: TimeBudget, *, session: bool = False) -> int:
    """Have the server cancel statements that would run into the deadline's reserve; returns the
    limit set, in ms. The limit is per statement, so set it again before each long one.

    PostgreSQL: `statement_timeout`, for the current transaction (SET LOCAL; ends with it) or,
    with `session=True`, for the session. MySQL/MariaDB only have the session scope (MariaDB's
    `max_statement_time`, MySQL's `max_execution_time`, which bounds SELECTs only): pass
    `session=True` and call `unbound_statements` when done, or use `bounded_session`. A cancelled
    statement raises the driver's error, which `pipeline_common.errors.is_retryable` counts as
    retryable.
    """
    limit_ms = statement_limit_ms(deadline)
    if engine_of(cur) == "mysql":
        if not session:
            raise SessionScopeOnly(
                "MySQL/MariaDB statement limits are session-wide: call bound_statements(..., session=True)"
            )
        if _is_mariadb(cur):
            cur.execute("SET SESSION max_statement_time = %s", (limit_ms / 1000,))
        else:
            cur.execute("SET SESSION max_execution_time = %s", (limit_ms,))
        return limit_ms
    cur.execute("SELECT set_config('statement_timeout', %s, %s)", (str(limit_ms), not session))
    return limit_ms


def unbound_statements(cur: Any) -> None:
    """Back to the server's default limit after a session-wide `bound_statements`."""
    if engine_of(cur) == "mysql":
        variable = "max_statement_time" if _is_mariadb(cur) else "max_execution_time"
        cur.execute(f"SET SESSION {variable} = DEFAULT")
    else:
        cur.execute("RESET statement_timeout")


@contextmanager
def bounded_session(cur: Any, deadline: TimeBudget) -> Iterator[int]:
    """Session-wide `bound_statements` for the block, reset afterwards (statements outside any
    transaction, such as non-transactional migrations)."""
    limit_ms = bound_statements(cur, deadline, session=True)
    try:
        yield limit_ms
    finally:
        unbound_statements(cur)


def _is_mariadb(cur: Any) -> bool:
    return "mariadb" in cur.connection.get_server_info().lower()
