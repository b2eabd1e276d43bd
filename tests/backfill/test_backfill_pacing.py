"""Self-pacing against real servers: pauses under real database pressure (a long transaction,
busy sessions), the rate cap, and chunk sizes moving toward the target duration.

Sleeps go through a fake clock (`Paced`): a pause or a rate-cap wait advances it instead of the
test's wall time, and the deadline and the pacer read it too, so the arithmetic is exact while
the database work stays real.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline_common.deadline import Deadline
from scripts import backfill_example as example
from tests.backfill.conftest import ORDERS, Db, slow_job


@dataclass
class Paced:
    offset: float = 0.0
    sleeps: list[float] = field(default_factory=list)
    on_sleep: Callable[[int], None] | None = None

    def clock(self) -> float:
        return time.monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += seconds
        if self.on_sleep is not None:
            self.on_sleep(len(self.sleeps))

    def runtime(self, seconds: float = 600) -> dict[str, Any]:
        return {"deadline": Deadline.in_seconds(seconds, clock=self.clock), "sleep": self.sleep, "clock": self.clock}


PRESSURE = {"pause_seconds": 5, "max_pause_seconds": 20, "max_replica_lag_seconds": 0}


def test_a_long_transaction_pauses_the_job_until_it_ends(orders: Db) -> None:
    orders.execute("CREATE TABLE blocker (id int PRIMARY KEY)")
    holder = orders.connect()
    with holder.cursor() as cur:
        cur.execute("INSERT INTO blocker VALUES (1)")  # a transaction that stays open
    time.sleep(1.3)
    paced = Paced()

    def end_it(calls: int) -> None:
        if calls == 3:
            holder.commit()
            time.sleep(0.2)  # InnoDB refreshes information_schema.INNODB_TRX at most every 0.1 s

    paced.on_sleep = end_it
    jobs = orders.jobs(example.job(orders.engine, pressure={**PRESSURE, "max_transaction_seconds": 1}))
    try:
        (result,) = orders.run(jobs, **paced.runtime()).jobs
    finally:
        holder.close()
    assert result.status == "finished", result
    assert paced.sleeps == [5, 10, 20] and result.paused_seconds == 35
    assert len(result.pressure) >= 1 and all(r.startswith("a transaction open for") for r in result.pressure)
    assert orders.archive() == orders.expected()


def test_busy_sessions_pause_the_job_and_halve_its_chunks(orders: Db) -> None:
    nap = "SELECT SLEEP(4)" if orders.engine == "mysql" else "SELECT pg_sleep(4)"
    busy = [orders.connect() for _ in range(3)]
    threads = [threading.Thread(target=lambda c=c: c.cursor().execute(nap)) for c in busy]
    for thread in threads:
        thread.start()
    fragment = nap.removeprefix("SELECT ")
    while len(orders.running(fragment)) < 3:
        time.sleep(0.01)
    paced = Paced()
    paced.on_sleep = lambda calls: [thread.join() for thread in threads] if calls == 1 else None
    chunk = {"initial_rows": 800, "min_rows": 100, "max_rows": 800, "target_seconds": 30}
    jobs = orders.jobs(example.job(orders.engine, chunk=chunk, pressure={**PRESSURE, "max_running_threads": 2}))
    try:
        (result,) = orders.run(jobs, **paced.runtime()).jobs
    finally:
        for conn in busy:
            conn.close()
    assert result.status == "finished" and paced.sleeps[0] == 5, result
    assert any("running sessions > 2" in reason for reason in result.pressure)
    assert orders.checkpoint()["chunks"] > ORDERS // 800  # the chunks after the pause were halved
    assert orders.archive() == orders.expected()


def test_pressure_that_outlasts_the_deadline_ends_the_run_paused(orders: Db) -> None:
    orders.execute("CREATE TABLE blocker (id int PRIMARY KEY)")
    holder = orders.connect()
    with holder.cursor() as cur:
        cur.execute("INSERT INTO blocker VALUES (1)")
    time.sleep(1.3)
    paced = Paced()
    jobs = orders.jobs(example.job(orders.engine, pressure={**PRESSURE, "max_transaction_seconds": 1}))
    try:
        (result,) = orders.run(jobs, **paced.runtime(seconds=40)).jobs
    finally:
        holder.close()
    assert (result.status, result.chunks) == ("paused", 0), result
    assert paced.sleeps == [5, 10, 20]  # the next back-off (20 s) no longer fits in the 40 s
    assert result.remaining_rows and result.percent == 0.0


def test_the_rate_cap_holds_over_the_run(orders: Db) -> None:
    paced = Paced()
    chunk = {"initial_rows": 200, "min_rows": 100, "max_rows": 50000, "target_seconds": 1}
    jobs = orders.jobs(example.job(orders.engine, chunk=chunk, max_rows_per_second=500))
    started = paced.clock()
    (result,) = orders.run(jobs, **paced.runtime()).jobs
    elapsed = paced.clock() - started
    assert result.status == "finished" and result.rows == ORDERS
    # The last chunk needs no wait after it: the cap holds up to it.
    assert (ORDERS - 500) / elapsed <= 500 * 1.01 and sum(paced.sleeps) > 0
    # A chunk never holds more than the cap allows in one target duration.
    assert orders.checkpoint()["chunk_rows"] <= 500

    # A wait that would not fit before the deadline stops the run instead.
    orders.execute("DELETE FROM " + orders.state.qualified)
    slow = Paced()
    (stopped,) = orders.run(jobs, **slow.runtime(seconds=2)).jobs
    assert stopped.status == "continues" and stopped.rows < ORDERS, stopped


def test_chunks_grow_when_fast_and_shrink_when_slow(orders: Db) -> None:
    chunk = {"initial_rows": 100, "min_rows": 50, "max_rows": 2000, "target_seconds": 1}
    (fast,) = orders.run(orders.jobs(example.job(orders.engine, chunk=chunk))).jobs
    assert fast.status == "finished" and fast.chunk_rows > 100 and fast.chunks < ORDERS // 100

    orders.execute("DELETE FROM " + orders.state.qualified)
    slow_chunks = {"initial_rows": 400, "min_rows": 50, "max_rows": 2000, "target_seconds": 0.1}
    (slow,) = orders.run(
        orders.jobs(slow_job(orders.engine, 0.3, chunk=slow_chunks)), deadline=Deadline.in_seconds(2.5)
    ).jobs
    assert slow.status == "continues" and slow.chunk_rows == 50, slow  # 400 -> 200 -> 100 -> 50
    assert orders.checkpoint()["chunk_rows"] == 50  # the next run starts from what this one learnt
