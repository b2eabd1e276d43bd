import pytest

from pipeline_common.deadline import Deadline, DeadlineExceeded
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
