"""Replays, concurrent deliveries, crashes mid-COPY, dropped connections and the deadline."""

import threading
import time

import psycopg2
import pytest

from file_loader.ledger import legacy_lock_key
from pipeline_common.deadline import Deadline
from pipeline_common.ledger import ObjectId

ROWS = "".join(f"{i},customer {i}\n" for i in range(1, 2001))
BODY = "id,customer\n" + ROWS


class SlicedBody:
    """An S3 body that yields small pieces and can fail or pause part way, like a broken or slow stream."""

    def __init__(self, body, piece=1024, on_piece=None):
        self.data = body.read()
        self.piece = piece
        self.on_piece = on_piece

    def iter_chunks(self, chunk_size):
        for number, start in enumerate(range(0, len(self.data), self.piece)):
            if self.on_piece is not None:
                self.on_piece(number)
            yield self.data[start : start + self.piece]

    def close(self):
        pass


class S3Wrapper:
    """The real moto client, with `get_object` bodies replaced by `SlicedBody`."""

    def __init__(self, s3, on_piece):
        self._s3 = s3
        self.on_piece = on_piece

    def __getattr__(self, name):
        return getattr(self._s3, name)

    def get_object(self, **kwargs):
        response = self._s3.get_object(**kwargs)
        return response | {"Body": SlicedBody(response["Body"], on_piece=self.on_piece)}


def count(pipeline):
    return pipeline.query("SELECT count(*) FROM orders")[0][0]


def test_replayed_event_commits_nothing_new(pipeline):
    pipeline.put("orders/a.csv", BODY)
    event = pipeline.receive(expect=1)
    first = pipeline.run(event)
    second = pipeline.run(event)
    assert first["objects"]["loaded"] == 1 and second["objects"] == {"duplicate": 1, "failed_messages": 0}
    assert count(pipeline) == 2000
    assert pipeline.ledger_row("orders/a.csv")["attempts"] == 1


def test_overwritten_key_is_a_new_version_and_loads_again(pipeline):
    pipeline.put_and_load("orders/a.csv", "id,customer\n1,a\n")
    pipeline.put_and_load("orders/a.csv", "id,customer\n2,b\n")
    assert count(pipeline) == 2
    assert len(pipeline.query("SELECT version FROM pipeline_state.file_loads")) == 2


def test_same_object_delivered_to_two_concurrent_invocations_loads_once(pipeline):
    pipeline.put("orders/a.csv", BODY)
    event = pipeline.receive(expect=1)
    started, release = threading.Event(), threading.Event()

    def pause(number):
        if number == 1:
            started.set()
            assert release.wait(30)

    slow = pipeline.__class__(**{**pipeline.__dict__, "s3": S3Wrapper(pipeline.s3, pause)})
    slow.db = type(pipeline.db)(pipeline.db.settings, pipeline.db._secrets)
    results = {}
    thread = threading.Thread(target=lambda: results.setdefault("first", slow.run(event)))
    thread.start()
    assert started.wait(30)
    # The first invocation is mid-COPY holding the object's lock: the second backs off at once.
    results["second"] = pipeline.run(event)
    release.set()
    thread.join(30)
    slow.db.close()
    assert results["first"]["objects"]["loaded"] == 1
    assert results["second"]["batchItemFailures"] == [{"itemIdentifier": event["Records"][0]["messageId"]}]
    # The redelivered message finds the load done.
    assert pipeline.run(event)["objects"] == {"duplicate": 1, "failed_messages": 0}
    assert count(pipeline) == 2000


def test_rolling_deploy_an_old_release_loading_an_object_keeps_the_new_one_out(pipeline):
    """Releases before the shared lock scheme locked a version with a key of their own: while an
    old sandbox holds it mid-load, the new code backs off; while the new code loads, the old
    key is taken, so an old sandbox would back off too."""
    etag = pipeline.put("orders/a.csv", BODY)["ETag"].strip('"')
    event = pipeline.receive(expect=1)
    obj = ObjectId(pipeline.bucket, "orders/a.csv", etag)
    old_key = legacy_lock_key(obj)
    assert old_key != pipeline.ledger.lock_key(obj).pg
    old = psycopg2.connect(pipeline.dsn)
    try:
        with old.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (old_key,))  # an old sandbox, mid-load
        assert len(pipeline.run(event)["batchItemFailures"]) == 1
        assert count(pipeline) == 0
        old.rollback()
    finally:
        old.close()

    started, release, seen = threading.Event(), threading.Event(), {}

    def pause(number):
        if number == 1:
            started.set()
            assert release.wait(30)

    slow = pipeline.__class__(**{**pipeline.__dict__, "s3": S3Wrapper(pipeline.s3, pause)})
    thread = threading.Thread(target=lambda: seen.setdefault("result", slow.run(event)))
    thread.start()
    assert started.wait(30)
    old = psycopg2.connect(pipeline.dsn)
    try:
        with old.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_xact_lock(%s)", (old_key,))
            assert cur.fetchone() == (False,)  # what an old sandbox would find
    finally:
        old.close()
        release.set()
        thread.join(30)
    assert seen["result"]["objects"]["loaded"] == 1 and count(pipeline) == 2000


def test_stream_crash_mid_copy_commits_nothing_and_the_retry_loads_once(pipeline):
    pipeline.put("orders/a.csv", BODY)
    event = pipeline.receive(expect=1)

    def crash(number):
        if number == 5:
            raise ConnectionResetError("connection reset by peer while reading from S3")

    broken = pipeline.__class__(**{**pipeline.__dict__, "s3": S3Wrapper(pipeline.s3, crash)})
    result = broken.run(event)
    assert len(result["batchItemFailures"]) == 1
    assert count(pipeline) == 0
    row = pipeline.ledger_row("orders/a.csv")
    assert row["status"] == "failed" and "connection reset" in row["error"] and row["bytes"] == 5 * 1024
    assert pipeline.run(event)["objects"]["loaded"] == 1
    assert count(pipeline) == 2000
    row = pipeline.ledger_row("orders/a.csv")
    assert (row["status"], row["attempts"], row["rows_loaded"]) == ("loaded", 2, 2000)


def test_backend_killed_mid_copy_commits_nothing_and_the_next_invocation_reconnects(pipeline):
    pipeline.put("orders/a.csv", BODY)
    event = pipeline.receive(expect=1)
    pid = {}

    def kill(number):
        if number == 3:
            admin = psycopg2.connect(pipeline.dsn)
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(%s)", (pid["loader"],))
            admin.close()

    with pipeline.db.get().cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid["loader"] = cur.fetchone()[0]
    pipeline.db.get().rollback()
    broken = pipeline.__class__(**{**pipeline.__dict__, "s3": S3Wrapper(pipeline.s3, kill)})
    result = broken.run(event)
    assert len(result["batchItemFailures"]) == 1
    assert count(pipeline) == 0
    # The server's reason, not only what the client saw last ("invalid socket", "SSL connection
    # has been closed unexpectedly").
    error = pipeline.ledger_row("orders/a.csv")["error"]
    assert error.startswith("OperationalError: terminating connection due to administrator command ("), error
    assert pipeline.run(event)["objects"]["loaded"] == 1
    assert pipeline.db.opened == 2
    assert count(pipeline) == 2000
    assert pipeline.ledger_row("orders/a.csv")["status"] == "loaded"


def test_connection_dropped_between_invocations_is_reopened(pipeline):
    pipeline.put_and_load("orders/a.csv", "id,customer\n1,a\n")
    with pipeline.db.get().cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        (pid,) = cur.fetchone()
    pipeline.db.get().rollback()
    pipeline.execute(f"SELECT pg_terminate_backend({pid})")
    assert pipeline.put_and_load("orders/b.csv", "id,customer\n2,b\n")["objects"]["loaded"] == 1
    assert pipeline.db.opened == 2 and count(pipeline) == 2


def test_object_too_large_for_the_remaining_time_is_deferred_up_front(pipeline):
    pipeline.put("orders/a.csv", BODY)
    event = pipeline.receive(expect=1)
    pipeline.throughput.plain_bps = 1000  # as if this sandbox had measured a slow database
    result = pipeline.run(event, deadline=Deadline.in_seconds(30))
    assert len(result["batchItemFailures"]) == 1
    row = pipeline.ledger_row("orders/a.csv")
    assert row["status"] == "deferred" and "loading" in row["error"] and "ms needed" in row["error"]
    assert count(pipeline) == 0


def test_deadline_reached_mid_stream_aborts_cleanly_and_the_retry_loads(pipeline):
    pipeline.put("orders/a.csv", BODY)
    event = pipeline.receive(expect=1)
    clock = {"remaining": 60_000.0}

    def tick(number):
        clock["remaining"] -= 5_000  # each piece "takes" five seconds

    slow = pipeline.__class__(**{**pipeline.__dict__, "s3": S3Wrapper(pipeline.s3, tick)})
    result = slow.run(event, deadline=Deadline(lambda: clock["remaining"], reserve_ms=10_000))
    assert len(result["batchItemFailures"]) == 1
    row = pipeline.ledger_row("orders/a.csv")
    assert row["status"] == "deferred" and "DeadlineExceeded" in row["error"]
    assert count(pipeline) == 0
    assert pipeline.run(event)["objects"]["loaded"] == 1 and count(pipeline) == 2000


def _stall_inserts_into_orders(pipeline):
    """A statement trigger standing in for a slow COPY, upsert or lock wait."""
    pipeline.execute(
        "CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_sleep(20); RETURN NULL; END $$;"
        "CREATE TRIGGER stall AFTER INSERT ON orders FOR EACH STATEMENT EXECUTE FUNCTION stall()"
    )


def _assert_deferred_then_loaded(pipeline, key, event):
    row = pipeline.ledger_row(key)
    assert row["status"] == "deferred" and "DeadlineExceeded" in row["error"] and "statement timeout" in row["error"]
    assert count(pipeline) == 0
    pipeline.execute("DROP TRIGGER stall ON orders")
    assert pipeline.run(event)["objects"]["loaded"] == 1 and count(pipeline) == 2000


def test_a_copy_running_into_the_deadline_is_cancelled_by_the_server_and_deferred(pipeline):
    _stall_inserts_into_orders(pipeline)  # fires inside the COPY into orders
    pipeline.put("orders/a.csv", BODY)
    event = pipeline.receive(expect=1)
    started = time.monotonic()
    result = pipeline.run(event, deadline=Deadline.in_seconds(5, reserve_ms=2_000))
    assert time.monotonic() - started < 5  # cancelled at the reserve, not after the 20 s stall
    assert len(result["batchItemFailures"]) == 1
    _assert_deferred_then_loaded(pipeline, "orders/a.csv", event)


def test_an_upsert_after_a_long_copy_gets_only_the_time_still_left(pipeline):
    _stall_inserts_into_orders(pipeline)  # fires in the upsert from staging into orders
    pipeline.put("upsert/a.csv", BODY)
    event = pipeline.receive(expect=1)
    # 30 s left at the start, more than the stall; the download "takes" 22 s of it, so 6 s of usable
    # time remain: the statement limit is set again before the upsert, not kept from the start.
    clock = {"remaining": 30_000.0}

    def tick(number):
        clock["remaining"] = 30_000.0 if number == 0 else 8_000.0

    slow = pipeline.__class__(**{**pipeline.__dict__, "s3": S3Wrapper(pipeline.s3, tick)})
    started = time.monotonic()
    result = slow.run(event, deadline=Deadline(lambda: clock["remaining"], reserve_ms=2_000))
    assert time.monotonic() - started < 12
    assert len(result["batchItemFailures"]) == 1
    _assert_deferred_then_loaded(pipeline, "upsert/a.csv", event)


@pytest.mark.parametrize("on_error_key", ["orders/", "quarantine/"])
def test_a_failed_attempt_never_leaves_rejects_behind(pipeline, on_error_key):
    # A bad row sends the load to the record-by-record path, which reads the object again and
    # rejects that row; then the second read breaks.
    body = "id,customer\nx,b\n" + ROWS
    pipeline.put(on_error_key + "a.csv", body)
    event = pipeline.receive(expect=1)
    pieces_per_read = -(-len(body) // 1024)
    seen = []

    def crash(number):
        seen.append(number)
        if len(seen) > pieces_per_read + 1:
            raise TimeoutError("read timed out")

    broken = pipeline.__class__(**{**pipeline.__dict__, "s3": S3Wrapper(pipeline.s3, crash)})
    assert len(broken.run(event)["batchItemFailures"]) == 1
    assert pipeline.query("SELECT count(*) FROM pipeline_state.file_rejects")[0][0] == 0
    assert count(pipeline) == 0
    assert pipeline.ledger_row(on_error_key + "a.csv")["status"] == "failed"
    assert pipeline.run(event)["batchItemFailures"] == []
    rejected = 0 if on_error_key == "orders/" else 1
    assert pipeline.query("SELECT count(*) FROM pipeline_state.file_rejects")[0][0] == rejected
