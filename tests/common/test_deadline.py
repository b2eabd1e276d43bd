import time
from concurrent.futures import ThreadPoolExecutor

import psycopg2.errors
import pymysql
import pytest

from pipeline_common.db import SessionScopeOnly
from pipeline_common.deadline import (
    Deadline,
    DeadlineExceeded,
    Pacer,
    RateLimit,
    bound_statements,
    bounded_session,
)
from pipeline_common.errors import is_retryable
from scripts.lambda_context import LocalLambdaContext


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_deadline_follows_the_lambda_context():
    context = LocalLambdaContext(timeout_seconds=60)
    deadline = Deadline.from_context(context, reserve_ms=5_000)
    assert 54_000 < deadline.usable_ms() <= 55_000
    assert not deadline.expired()


def test_deadline_expires_when_only_the_reserve_is_left():
    clock = Clock()
    deadline = Deadline.in_seconds(30, reserve_ms=10_000, clock=clock)
    clock.now = 15
    assert not deadline.expired()
    assert deadline.expired(need_ms=6_000)
    clock.now = 20
    assert deadline.expired()
    with pytest.raises(DeadlineExceeded, match="10000 ms reserved, 0 ms needed for next chunk"):
        deadline.check(what="next chunk")


def test_pacer_stops_before_the_deadline_with_room_for_the_slowest_unit():
    clock = Clock()
    deadline = Deadline.in_seconds(60, reserve_ms=10_000, clock=clock)
    pacer = Pacer(deadline, clock=clock)
    durations = [4.0, 9.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0]
    done = []
    for seconds in durations:
        if not pacer.fits():
            break
        with pacer.unit():
            clock.now += seconds
        done.append(seconds)
    # 50 s usable; after 33 s, 17 s are usable and the slowest unit (9 s) x 1.5 = 13.5 s fits;
    # after 38 s only 12 s are: stop, although a 5 s unit would have fitted.
    assert done == [4.0, 9.0, 5.0, 5.0, 5.0, 5.0, 5.0]
    assert pacer.slowest_ms == 9_000 and pacer.units == 7
    assert deadline.remaining_ms() > deadline.reserve_ms  # stopped before the reserve, not in it


def test_pacer_counts_a_unit_that_raised():
    clock = Clock()
    pacer = Pacer(Deadline.in_seconds(10, clock=clock), clock=clock)
    with pytest.raises(RuntimeError), pacer.unit():
        clock.now += 3
        raise RuntimeError("chunk failed")
    assert pacer.slowest_ms == 3_000 and pacer.units == 1


def test_pacer_sizes_units_toward_the_target_duration():
    clock = Clock()
    pacer = Pacer(Deadline.in_seconds(900, clock=clock), target_ms=1_000, minimum=100, maximum=50_000, clock=clock)
    assert pacer.next_size(1_000) == 1_000  # nothing measured yet
    pacer.observe(250)  # 1,000 rows in 0.25 s: 4,000 would take a second, but grow at most x2
    assert pacer.next_size(1_000) == 2_000
    pacer.observe(1_600)  # 2,000 rows in 1.6 s
    assert pacer.next_size(2_000) == 1_250
    pacer.observe(60_000)  # a lock wait: shrink, at most by half, never below the minimum
    assert pacer.next_size(150) == 100
    pacer.observe(1)
    assert pacer.next_size(40_000) == 50_000
    with pytest.raises(ValueError, match="target_ms"):
        Pacer(Deadline.in_seconds(1)).next_size(10)


def test_pacer_smooths_the_time_per_item_across_units():
    clock = Clock()
    deadline = Deadline.in_seconds(900, clock=clock)
    pacer = Pacer(deadline, target_ms=1_000, minimum=10, maximum=100_000, smoothing=0.5, clock=clock)
    pacer.observe(1_000)  # 1,000 items in 1 s: 1 ms each, right on target
    assert pacer.next_size(1_000) == 1_000
    pacer.observe(250)  # one fast unit (cached pages): 0.25 ms each, averaged with 1 ms to 0.625 ms
    assert pacer.next_size(1_000) == 1_600  # without smoothing: 2,000
    assert pacer.next_size(1_000) == 1_600  # asked again for the same unit, the average moves once
    pacer.observe(4_000)  # 1,600 items in 4 s: 2.5 ms each, averaged to 1.5625 ms
    assert pacer.next_size(1_600) == 800  # 640 wanted, halving at most
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="smoothing"):
            Pacer(deadline, target_ms=1_000, smoothing=bad)


def test_statement_timeouts_follow_the_deadline_on_postgresql(pg_conn):
    deadline = Deadline.in_seconds(0.3)
    with pg_conn.cursor() as cur:
        limit = bound_statements(cur, deadline)
        assert 100 < limit <= 300
        with pytest.raises(psycopg2.errors.QueryCanceled) as cancelled:
            cur.execute("SELECT pg_sleep(2)")
    assert is_retryable(cancelled.value)
    pg_conn.rollback()
    with pg_conn.cursor() as cur:
        cur.execute("SHOW statement_timeout")  # SET LOCAL ended with the transaction
        assert cur.fetchone() == ("0",)
    pg_conn.rollback()
    pg_conn.autocommit = True
    with pg_conn.cursor() as cur:
        with bounded_session(cur, Deadline.in_seconds(60)) as limit:
            cur.execute("SHOW statement_timeout")
            assert cur.fetchone()[0] in (f"{limit}ms", f"{limit // 1000}s", f"{limit / 1000:g}s")
        cur.execute("SHOW statement_timeout")
        assert cur.fetchone() == ("0",)


def test_statement_timeouts_follow_the_deadline_on_mariadb(mariadb_conn):
    with mariadb_conn.cursor() as cur:
        with pytest.raises(SessionScopeOnly, match="session"):
            bound_statements(cur, Deadline.in_seconds(1))
        with bounded_session(cur, Deadline.in_seconds(0.5)):
            with pytest.raises(pymysql.err.OperationalError) as cancelled:
                cur.execute("SELECT SLEEP(3) FROM (SELECT 1 UNION SELECT 2) t")
            assert is_retryable(cancelled.value)
        cur.execute("SELECT @@session.max_statement_time = @@global.max_statement_time")
        assert cur.fetchone() == (1,)


def test_pacer_answers_the_time_left_from_its_last_question():
    clock, questions = Clock(), []

    def remaining() -> float:
        questions.append(clock.now)
        return (60 - clock.now) * 1000

    pacer = Pacer(Deadline(remaining, reserve_ms=10_000), clock=clock)
    assert pacer.usable_ms() == 50_000 and len(questions) == 1  # before any fits(): asks
    assert pacer.fits() and len(questions) == 2
    clock.now = 4
    assert pacer.usable_ms() == 46_000 and len(questions) == 2  # after fits(): no new question


class SleepingClock(Clock):
    """A clock that `sleep` moves forward, and the sleeps it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_wait_never_sleeps_into_the_reserve():
    clock = SleepingClock()
    deadline = Deadline.in_seconds(30, reserve_ms=10_000, clock=clock, sleep=clock.sleep)
    deadline.wait(5, "a backoff")
    deadline.wait(0)
    assert clock.slept == [5]
    with pytest.raises(DeadlineExceeded, match="15000 ms needed for a backoff"):
        deadline.wait(15, "a backoff")
    assert clock.slept == [5] and is_retryable(DeadlineExceeded("x"))


def test_the_rate_limit_holds_the_rate_with_a_one_second_burst():
    clock = SleepingClock()
    deadline = Deadline.in_seconds(600, clock=clock, sleep=clock.sleep)
    limit = RateLimit(100, clock=clock)
    waits = [limit.take(25, deadline) for _ in range(12)]
    # 300 units at 100/s: the first 100 from the bucket, the other 200 take two seconds.
    assert waits[:4] == [0, 0, 0, 0] and sum(clock.slept) == pytest.approx(2.0)
    assert clock.now == pytest.approx(2.0)
    clock.now += 10  # idle: the bucket refills to one second's worth, no more
    assert [limit.take(50, deadline), limit.take(50, deadline), limit.take(50, deadline)] == [0, 0, 0.5]
    assert RateLimit(0).take(10_000, deadline) == 0.0
    with pytest.raises(ValueError, match=r"0 \(no limit\) or positive"):
        RateLimit(-1)


def test_a_wait_the_deadline_refuses_takes_nothing_from_the_rate_limit():
    clock = SleepingClock()
    limit = RateLimit(10, clock=clock)
    limit.take(10, Deadline.in_seconds(600, clock=clock, sleep=clock.sleep))
    short = Deadline.in_seconds(1, clock=clock, sleep=clock.sleep)
    with pytest.raises(DeadlineExceeded, match="rate limit of 10 units/s"):
        limit.take(20, short)  # would wait 2 s
    assert limit.take(5, short) == pytest.approx(0.5)  # not behind the refused 20


def test_the_rate_limit_is_shared_by_threads():
    """Eight threads taking 25 units 8 times each at 400 units/s: 1,600 units, the first 400 from
    the bucket, the rest at the rate: 3 s of real time at least, not 3/8 s."""
    limit = RateLimit(400)
    deadline = Deadline.in_seconds(60)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: [limit.take(25, deadline) for _ in range(8)], range(8)))
    assert time.monotonic() - started >= 2.9
