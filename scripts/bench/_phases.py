"""Where the time of a load goes: timers around every database round trip and S3 call.

`PhaseTimer.install()` makes every psycopg2 connection opened afterwards in this process (the
handler's through `pipeline_common.db`, the baseline's directly) time each `execute`,
`copy_expert`, `commit` and `rollback`, filed under a phase named from the statement
(`lock`, `ledger check`, `ledger write`, ...); `timed_s3(client)` does the same for `get_object`
and every read of the body it returns. A body streamed during a COPY is S3's time, not the
COPY's: the COPY phase is the copy less the S3 reads inside it. A timer costs about a microsecond,
against the milliseconds of a round trip. psycopg2 sends the implicit `BEGIN` with the first
statement of a transaction, so its round trip counts there.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import psycopg2
import psycopg2.extensions

S3 = "S3 GET (incl. body)"
# First match wins: (phase, substring of the statement).
PHASES = (
    ("lock", "pg_try_advisory"),
    ("ledger check", "SELECT status FROM"),
    ("ledger write", "file_loads"),
    ("health check", "SELECT 1"),
    ("catalog", "pg_attribute"),
    ("savepoints", "SAVEPOINT"),
    ("COPY", "COPY "),
)


def phase_of(statement: str) -> str:
    for phase, marker in PHASES:
        if marker in statement:
            return phase
    return "other SQL: " + " ".join(statement.split())[:40]


class PhaseTimer:
    """Seconds per phase, kept apart per `side` (set `timer.side` before running one)."""

    def __init__(self) -> None:
        self.side = "ours"
        self.seconds: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._connect: Callable[..., Any] | None = None

    def add(self, phase: str, started: float) -> None:
        self.seconds[self.side][phase] += time.perf_counter() - started

    def reset(self) -> None:
        self.seconds.clear()

    def install(self) -> None:
        timer = self
        original = psycopg2.connect

        # `pipeline_common.db.driver_of` knows a connection by its class's module: these are psycopg2's.
        class TimedCursor(psycopg2.extensions.cursor):
            __module__ = "psycopg2.extensions"

            def execute(self, query: Any, vars: Any = None) -> Any:
                text = query.as_string(self.connection) if hasattr(query, "as_string") else str(query)
                started = time.perf_counter()
                try:
                    return super().execute(query, vars)
                finally:
                    timer.add(phase_of(text), started)

            def copy_expert(self, sql: Any, file: Any, size: int = 8192) -> Any:
                started, s3_before = time.perf_counter(), timer.seconds[timer.side][S3]
                try:
                    return super().copy_expert(sql, file, size)
                finally:
                    timer.add("COPY", started)
                    timer.seconds[timer.side]["COPY"] -= timer.seconds[timer.side][S3] - s3_before

        class TimedConnection(psycopg2.extensions.connection):
            __module__ = "psycopg2.extensions"

            def cursor(self, *args: Any, **kwargs: Any) -> Any:
                kwargs.setdefault("cursor_factory", TimedCursor)
                return super().cursor(*args, **kwargs)

            def commit(self) -> None:
                started = time.perf_counter()
                super().commit()
                timer.add("commit", started)

            def rollback(self) -> None:
                started = time.perf_counter()
                super().rollback()
                timer.add("rollback", started)

        def connect(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("connection_factory", TimedConnection)
            return original(*args, **kwargs)

        self._connect = original
        psycopg2.connect = connect

    def uninstall(self) -> None:
        if self._connect is not None:
            psycopg2.connect = self._connect
            self._connect = None

    def timed_s3(self, client: Any) -> Any:
        """Time the client's `get_object` and every read of the body it returns (`iter_chunks`
        reads through `read` too)."""
        get_object = client.get_object

        def timed(**kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                response = get_object(**kwargs)
            finally:
                self.add(S3, started)
            body = response["Body"]
            read = body.read

            def timed_read(*args: Any) -> Any:
                started = time.perf_counter()
                try:
                    return read(*args)
                finally:
                    self.add(S3, started)

            body.read = timed_read
            return response

        client.get_object = timed
        return client

    def per_object_ms(self, side: str, objects: int) -> dict[str, float]:
        return {phase: round(seconds * 1000 / objects, 3) for phase, seconds in sorted(self.seconds[side].items())}
