"""Stop long work cleanly before the Lambda timeout.

Lambda kills a function at its timeout, mid-statement, with no chance to commit a checkpoint or
hand a message back. Work loops ask the deadline before each unit of work and stop while there
is still `reserve` time left to finish the unit in flight and commit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol


class LambdaContextLike(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class DeadlineExceeded(RuntimeError):
    """Raised by `Deadline.check` when too little time is left to start more work."""


class Deadline:
    def __init__(self, remaining_ms: Callable[[], float], reserve_ms: float = 10_000) -> None:
        self._remaining_ms = remaining_ms
        self.reserve_ms = reserve_ms

    @classmethod
    def from_context(cls, context: LambdaContextLike | Any, reserve_ms: float = 10_000) -> Deadline:
        return cls(context.get_remaining_time_in_millis, reserve_ms)

    @classmethod
    def in_seconds(cls, seconds: float, reserve_ms: float = 0, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """A deadline `seconds` from now, for scripts and tests outside Lambda."""
        end = clock() + seconds

        def remaining() -> float:
            return (end - clock()) * 1000

        return cls(remaining, reserve_ms)

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
