"""The sync against real sources (PostgreSQL and MariaDB, via pyodbc and native drivers) into a
real PostgreSQL target."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Any

import psycopg2
import pytest

from pipeline_common.deadline import Deadline

T0 = dt.datetime(2024, 3, 1, 12, 0, 0)


def _setup_items(source: Any, target: Any, versioned: bool = False) -> None:
    columns = "id int PRIMARY KEY, name varchar(100), amount decimal(12, 2), updated_at timestamp(6) NULL"
    if source.engine == "mysql":
        columns = columns.replace("timestamp(6) NULL", "datetime(6) NULL")
    if versioned:
        source.create_versioned("items", columns)
    else:
        source.execute(f"CREATE TABLE items ({columns})")
    target.execute(
        "CREATE TABLE public.items (id int PRIMARY KEY, name text, amount numeric(12, 2), updated_at timestamp, "
        "version bigint)"
    )


def _insert(source: Any, rows: list[tuple[Any, ...]]) -> None:
    for row in rows:
        source.execute("INSERT INTO items (id, name, amount, updated_at) VALUES (%s, %s, %s, %s)", row)


def _source_name(source: Any) -> str:
    # MariaDB has no schemas: the database is the qualifier.
    return "public.items" if source.engine == "postgresql" else f"{source.provider.settings.database}.items"


def _ts_table(origin: Any, **extra: Any) -> dict[str, Any]:
    return {
        "source": _source_name(origin),
        "target": "public.items",
        "primary_key": ["id"],
        "cursor": {"column": "updated_at", "type": "timestamp"},
        "columns": ["id", "name", "amount", "updated_at"],
        **extra,
    }


def _rv_table(origin: Any, **extra: Any) -> dict[str, Any]:
    return {
        "source": _source_name(origin),
        "target": "public.items",
        "primary_key": ["id"],
        "cursor": {"column": "version", "type": "rowversion"},
        **extra,
    }


def _source_rows(source: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in source.execute("SELECT id, name, amount, updated_at FROM items ORDER BY id")]


def _target_rows(target: Any) -> list[tuple[Any, ...]]:
    return target.execute("SELECT id, name, amount, updated_at FROM public.items ORDER BY id")


def _state(target: Any, name: str = "public.items") -> dict[str, Any]:
    rows = target.execute(
        "SELECT watermark, position, rows_synced FROM pipeline_state.table_sync_state WHERE sync_name = %s", (name,)
    )
    return dict(zip(("watermark", "position", "rows_synced"), rows[0], strict=True)) if rows else {}


def _rows(n: int, start: int = 1, ts: dt.datetime = T0, step: dt.timedelta = dt.timedelta(seconds=1)) -> list:
    return [(i, f"item {i}", Decimal(i) / 4, ts + step * (i - start)) for i in range(start, start + n)]


def test_initial_full_copy_then_incremental_inserts_and_updates_only(source, target, sync):
    _setup_items(source, target)
    _insert(source, _rows(25))
    report = sync([_ts_table(source, chunk_size=10)])
    (result,) = report.tables
    assert result.status == "finished", result
    assert (result.rows_read, result.rows_upserted, result.chunks) == (25, 25, 3)
    assert result.watermark_before is None
    assert result.watermark_after == T0 + dt.timedelta(seconds=24)
    assert _target_rows(target) == _source_rows(source)
    assert _state(target)["position"] is None

    # Nothing changed: the pass re-reads only the rows at the watermark (inclusive) and writes none.
    result = sync([_ts_table(source, chunk_size=10)]).tables[0]
    assert (result.rows_read, result.rows_upserted) == (1, 0)

    later = T0 + dt.timedelta(hours=1)
    source.execute("UPDATE items SET name = 'changed', updated_at = %s WHERE id IN (3, 7)", (later,))
    _insert(source, [(26, "new", Decimal("1.50"), later)])
    result = sync([_ts_table(source, chunk_size=10)]).tables[0]
    assert (result.rows_read, result.rows_upserted) == (4, 3)  # + the row at the old watermark
    assert result.watermark_before == T0 + dt.timedelta(seconds=24)
    assert result.watermark_after == later
    assert _target_rows(target) == _source_rows(source)
    assert result.to_json()["watermark_after"] == later.isoformat()


def _run_hook(calls: dict[str, int], on_call: Any = None, expire_after: int | None = None) -> Deadline:
    """A deadline whose clock calls `on_call(n)` each time the sync asks it (before every chunk),
    and which runs out after `expire_after` questions."""

    def remaining() -> float:
        calls["n"] += 1
        if on_call is not None:
            on_call(calls["n"])
        return 0.0 if expire_after is not None and calls["n"] > expire_after else 1e9

    return Deadline(remaining, reserve_ms=0)


def test_ties_on_the_cursor_across_chunk_boundaries_with_a_composite_key(source, target, sync):
    source.execute(
        "CREATE TABLE events (region varchar(10) NOT NULL, id int NOT NULL, payload varchar(50), "
        f"updated_at {'timestamp' if source.engine == 'postgresql' else 'datetime'}(6) NOT NULL, "
        "PRIMARY KEY (region, id))"
    )
    target.execute(
        "CREATE TABLE public.events (region text, id int, payload text, updated_at timestamp, PRIMARY KEY (region, id))"
    )
    rows = [(region, i, f"{region}{i}", T0 + dt.timedelta(seconds=i // 7)) for region in ("a", "b") for i in range(14)]
    for row in rows:
        source.execute("INSERT INTO events VALUES (%s, %s, %s, %s)", row)
    table = {
        "source": _source_name(source).replace("items", "events"),
        "target": "public.events",
        "primary_key": ["region", "id"],
        "cursor": {"column": "updated_at", "type": "timestamp"},
        "chunk_size": 3,
    }
    # One chunk per run: every resume starts from a (cursor, key) position inside a group of ties.
    runs = []
    while not runs or runs[-1].status == "continues":
        runs.append(sync([table], deadline=_run_hook({"n": 0}, expire_after=2)).tables[0])
        assert len(runs) < 30
    assert sum(r.rows_read for r in runs) == len(rows)
    assert sum(r.rows_upserted for r in runs) == len(rows)
    got = target.execute("SELECT region, id, payload, updated_at FROM public.events ORDER BY region, id")
    assert got == sorted(rows)


def test_rowversion_upper_bound_keeps_in_flight_transactions_for_the_next_run(source, target, sync):
    _setup_items(source, target, versioned=True)
    _insert(source, _rows(5))
    assert sync([_rv_table(source)]).tables[0].rows_read == 5

    writer = source.connect()  # an open transaction, as a long-running writer on SQL Server
    with writer.cursor() as cur:
        cur.execute("UPDATE items SET name = 'in flight' WHERE id = 2")
    if source.engine == "postgresql":
        # Committed after the in-flight transaction began: a higher version than the in-flight one.
        _insert(source, [(6, "later", Decimal(1), T0)])
    result = sync([_rv_table(source)]).tables[0]
    assert result.status == "finished"
    assert result.rows_read == 0  # row 6 lies above the bound while row 2's writer is running
    assert target.execute("SELECT name FROM public.items WHERE id = 2") == [("item 2",)]
    writer.commit()
    writer.close()
    result = sync([_rv_table(source)]).tables[0]
    assert result.rows_read == (2 if source.engine == "postgresql" else 1)
    assert _target_rows(target) == _source_rows(source)


def test_timestamp_lookback_catches_a_late_commit_and_no_lookback_misses_it(source, target, sync):
    _setup_items(source, target)
    target.execute("CREATE TABLE public.items_nolookback (LIKE public.items INCLUDING ALL)")
    _insert(source, _rows(3))
    with_lookback = _ts_table(source, cursor={"column": "updated_at", "type": "timestamp", "lookback_seconds": 60})
    without = _ts_table(source, name="nolookback", target="public.items_nolookback")
    sync([with_lookback, without])

    writer = source.connect()
    with writer.cursor() as cur:  # stamped before a row that commits first
        cur.execute(
            "INSERT INTO items (id, name, amount, updated_at) VALUES (%s, %s, %s, %s)",
            (10, "late", Decimal(2), T0 + dt.timedelta(seconds=10)),
        )
    _insert(source, [(11, "early", Decimal(3), T0 + dt.timedelta(seconds=20))])
    sync([with_lookback, without])
    writer.commit()
    writer.close()
    sync([with_lookback, without])
    assert _target_rows(target) == _source_rows(source)
    ids = [r[0] for r in target.execute("SELECT id FROM public.items_nolookback ORDER BY id")]
    assert ids == [1, 2, 3, 11]  # the control: without a lookback the late row is lost


def test_rows_updated_while_the_sync_runs_are_caught_by_the_next_run(source, target, sync):
    _setup_items(source, target, versioned=True)
    _insert(source, _rows(9))
    later = T0 + dt.timedelta(hours=1)

    def update_during_second_chunk(n: int) -> None:
        if n == 3:  # after the first chunk committed: one row already copied, one not yet
            source.execute("UPDATE items SET name = 'moved', updated_at = %s WHERE id IN (1, 8)", (later,))

    for table in (_rv_table(source, chunk_size=3), _ts_table(source, name="ts", chunk_size=3)):
        target.execute("TRUNCATE public.items")
        sync([table], deadline=_run_hook({"n": 0}, update_during_second_chunk))
        sync([table])
        assert _target_rows(target) == _source_rows(source), table
        source.execute("UPDATE items SET name = CONCAT('item ', id)")


@pytest.mark.parametrize("failure", ["error", "connection_lost"])
def test_crash_between_chunks_resumes_from_the_last_committed_chunk(source, target, sync, failure):
    _setup_items(source, target)
    _insert(source, _rows(20))
    action = (
        "RAISE EXCEPTION 'injected failure'" if failure == "error" else "PERFORM pg_terminate_backend(pg_backend_pid())"
    )
    target.execute(
        f"CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {action}; RETURN NEW; END $$;"
        "CREATE TRIGGER fail AFTER INSERT ON public.items FOR EACH ROW WHEN (NEW.id = 13) EXECUTE FUNCTION fail()"
    )
    first = sync([_ts_table(source, chunk_size=5)]).tables[0]
    assert first.status == "failed"
    assert ("injected failure" in first.error) if failure == "error" else first.error
    assert [r[0] for r in target.execute("SELECT id FROM public.items ORDER BY id")] == list(range(1, 11))
    position = _state(target)["position"]
    assert position["key"] == [{"int": 10}]

    target.execute("DROP TRIGGER fail ON public.items")
    second = sync([_ts_table(source, chunk_size=5)]).tables[0]
    assert second.status == "finished"
    assert second.rows_read == 10  # exactly the rows after the committed position
    assert _target_rows(target) == _source_rows(source)
    assert _state(target)["rows_synced"] == 20


@pytest.mark.parametrize("source", ["postgresql-odbc"], indirect=True)
def test_a_chunk_statement_running_into_the_deadline_is_cancelled_and_the_next_run_continues(source, target, sync):
    """The chunk's statements are bounded by the time left: a slow write (here a trigger, in life
    a lock wait or a slow upsert) is cancelled before the reserve, nothing of the chunk commits,
    and the next run takes it again."""
    _setup_items(source, target)
    _insert(source, _rows(20))
    target.execute(
        "CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(30); RETURN NEW; END $$;"
        "CREATE TRIGGER stall AFTER INSERT ON public.items FOR EACH ROW WHEN (NEW.id = 13) EXECUTE FUNCTION stall()"
    )
    first = sync([_ts_table(source, chunk_size=5)], deadline=Deadline.in_seconds(12, reserve_ms=10_000)).tables[0]
    assert first.status == "continues" and first.rows_read == 10
    assert [r[0] for r in target.execute("SELECT id FROM public.items ORDER BY id")] == list(range(1, 11))
    assert _state(target)["position"]["key"] == [{"int": 10}]

    target.execute("DROP TRIGGER stall ON public.items")
    second = sync([_ts_table(source, chunk_size=5)]).tables[0]
    assert (second.status, second.rows_read) == ("finished", 10)
    assert _target_rows(target) == _source_rows(source)


@pytest.mark.parametrize("source", ["postgresql-odbc"], indirect=True)
def test_a_state_table_written_by_an_earlier_release_is_resumed(source, target, sync):
    """The state table as releases before the shared checkpoint module created and filled it."""
    _setup_items(source, target)
    _insert(source, _rows(20))
    target.execute(
        """
        CREATE SCHEMA pipeline_state;
        CREATE TABLE pipeline_state.table_sync_state (
            sync_name text PRIMARY KEY, source text NOT NULL, target text NOT NULL, cursor_column text NOT NULL,
            cursor_type text NOT NULL, watermark jsonb, position jsonb, delete_position jsonb,
            deletes_completed_at timestamptz, rows_synced bigint NOT NULL DEFAULT 0, last_started_at timestamptz,
            last_finished_at timestamptz, updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    target.execute(
        "INSERT INTO public.items (id, name, amount, updated_at) SELECT id, 'item ' || id, id / 4.0, "
        "timestamp '2024-03-01 12:00:00' + (id - 1) * interval '1 second' FROM generate_series(1, 8) id"
    )
    target.execute(
        "INSERT INTO pipeline_state.table_sync_state (sync_name, source, target, cursor_column, cursor_type, "
        "watermark, position, rows_synced) VALUES (%s, %s, 'public.items', 'updated_at', 'timestamp', NULL, %s, 8)",
        ("public.items", _source_name(source), '{"cursor": {"datetime": "2024-03-01T12:00:07"}, "key": [{"int": 8}]}'),
    )
    result = sync([_ts_table(source, chunk_size=5)]).tables[0]
    assert (result.status, result.rows_read) == ("finished", 12)  # exactly the rows after the stored position
    assert _target_rows(target) == _source_rows(source)
    state = _state(target)
    assert state["watermark"] == {"datetime": "2024-03-01T12:00:19"} and state["position"] is None
    assert state["rows_synced"] == 20


class CountdownContext:
    """A Lambda context whose remaining time runs out after `questions` questions (one before the
    run, one before each chunk)."""

    def __init__(self, questions: int) -> None:
        self.left = questions

    def get_remaining_time_in_millis(self) -> int:
        self.left -= 1
        return 900_000 if self.left >= 0 else 5_000


def test_deadline_stops_after_the_current_chunk_and_the_next_run_continues(source, target, sync):
    _setup_items(source, target)
    _insert(source, _rows(23))
    results = []
    for _ in range(10):
        deadline = Deadline.from_context(CountdownContext(3), reserve_ms=10_000)
        results.append(sync([_ts_table(source, chunk_size=5)], deadline=deadline).tables[0])
        if results[-1].status == "finished":
            break
    assert [r.status for r in results] == ["continues", "continues", "finished"]
    assert [r.rows_read for r in results] == [10, 10, 3]
    assert results[0].watermark_after is None  # moves only when the pass ends
    assert results[-1].watermark_after == T0 + dt.timedelta(seconds=22)
    assert _target_rows(target) == _source_rows(source)


def test_delete_reconciliation_removes_rows_gone_from_the_source(source, target, sync):
    _setup_items(source, target)
    _insert(source, _rows(12))
    plain = _ts_table(source, chunk_size=5)
    sync([plain])
    source.execute("DELETE FROM items WHERE id IN (3, 4, 9, 12)")
    assert sync([plain]).tables[0].rows_deleted == 0
    assert len(_target_rows(target)) == 12  # off by default

    reconciling = _ts_table(source, chunk_size=5, deletes={"chunk_size": 5})
    result = sync([reconciling]).tables[0]
    assert (result.status, result.deletes, result.rows_deleted) == ("finished", "finished", 4)
    assert _target_rows(target) == _source_rows(source)

    # Stopped by the deadline halfway through the walk, it continues where it stopped.
    source.execute("DELETE FROM items WHERE id IN (1, 11)")
    stopped = sync([reconciling], deadline=_run_hook({"n": 0}, expire_after=3)).tables[0]
    assert (stopped.status, stopped.deletes, stopped.rows_deleted) == ("continues", "continues", 1)
    resumed = sync([reconciling]).tables[0]
    assert (resumed.deletes, resumed.rows_deleted) == ("finished", 1)
    assert _target_rows(target) == _source_rows(source)

    spaced = _ts_table(source, chunk_size=5, deletes={"chunk_size": 5, "interval_minutes": 60})
    assert sync([spaced]).tables[0].deletes == "not_due"


def test_type_round_trips(source, target, sync):
    # The target's sessions start in another zone: the sync still reads naive source values as UTC.
    (database,) = target.execute("SELECT current_database()")[0]
    target.execute(f"ALTER DATABASE \"{database}\" SET timezone = 'America/New_York'")
    if source.engine == "postgresql":
        source.execute(
            "CREATE TABLE typed (id int PRIMARY KEY, n numeric(30, 10), ts timestamp(6), tz timestamptz, s text, "
            "b bytea, updated_at timestamp NOT NULL)"
        )
        aware = "2024-01-02 03:04:05.123456+02"
    else:
        source.execute(
            "CREATE TABLE typed (id int PRIMARY KEY, n decimal(30, 10), ts datetime(6), tz timestamp(6) NULL, "
            "s text, b blob, updated_at datetime NOT NULL)"
        )
        source.execute("SET time_zone = '+02:00'")
        aware = "2024-01-02 03:04:05.123456"
    unicode_text = "Grüße ☃ 𝄞 日本語 \t tab \\ backslash \n newline"
    source.execute(
        "INSERT INTO typed VALUES (1, %s, %s, %s, %s, %s, %s), (2, NULL, NULL, NULL, NULL, NULL, %s)",
        (
            Decimal("12345678901234567890.0123456789"),
            dt.datetime(1999, 12, 31, 23, 59, 59, 999999),
            aware,
            unicode_text,
            b"\x00\xff\x10\\\n",
            T0,
            T0,
        ),
    )
    target.execute(
        "CREATE TABLE public.typed (id int PRIMARY KEY, n numeric(30, 10), ts timestamp, tz timestamptz, s text, "
        "b bytea, updated_at timestamp)"
    )
    table = {
        "source": _source_name(source).replace("items", "typed"),
        "target": "public.typed",
        "primary_key": "id",
        "cursor": {"column": "updated_at", "type": "timestamp"},
    }
    assert sync([table]).tables[0].rows_upserted == 2
    target.execute("SET TIME ZONE 'UTC'")
    got = target.execute("SELECT id, n, ts, tz, s, b, updated_at FROM public.typed ORDER BY id")
    first = list(got[0])
    first[5] = bytes(first[5])
    assert first == [
        1,
        Decimal("12345678901234567890.0123456789"),
        dt.datetime(1999, 12, 31, 23, 59, 59, 999999),
        dt.datetime(2024, 1, 2, 1, 4, 5, 123456, tzinfo=dt.UTC),
        unicode_text,
        b"\x00\xff\x10\\\n",
        T0,
    ]
    assert got[1] == (2, None, None, None, None, None, T0)


def test_unknown_tables_and_columns_fail_only_their_table_before_any_of_its_rows_move(source, target, sync):
    _setup_items(source, target)
    _insert(source, _rows(3))
    for suffix in "abc":
        target.execute(f"CREATE TABLE public.items_{suffix} (LIKE public.items INCLUDING ALL)")
    good = _ts_table(source)
    broken = [
        _ts_table(source, target="public.items_a", source=_source_name(source).replace("items", "nosuch")),
        _ts_table(source, target="public.items_b", columns=["id", "name", "colour"]),
        _ts_table(source, target="public.items_c", cursor={"column": "changed", "type": "timestamp"}),
        _ts_table(source, target="public.missing"),
    ]
    report = sync([good, *broken])
    results = {t.table: t for t in report.tables}
    assert results["public.items"].status == "finished" and results["public.items"].rows_upserted == 3
    assert [t.table for t in report.failed] == ["public.items_a", "public.items_b", "public.items_c", "public.missing"]
    errors = {t.table: t.error or "" for t in report.failed}
    assert "nosuch" in errors["public.items_a"] and "cannot be read" in errors["public.items_a"]
    assert "'colour' is not a column of source" in errors["public.items_b"]
    assert "cursor column 'changed'" in errors["public.items_c"]
    assert "public.missing does not exist" in errors["public.missing"]
    for suffix in "abc":
        assert target.execute(f"SELECT count(*) FROM public.items_{suffix}") == [(0,)]
    assert [r[0] for r in target.execute("SELECT sync_name FROM pipeline_state.table_sync_state")] == ["public.items"]

    target.execute("CREATE TABLE public.nokey (id int, name text, amount numeric, updated_at timestamp)")
    (result,) = sync([_ts_table(source, target="public.nokey")]).tables
    assert result.status == "failed"
    assert "PlanError" in (result.error or "") and "no primary key or unique index on (id)" in (result.error or "")


def test_a_stored_watermark_for_another_cursor_fails_only_that_table(source, target, sync):
    _setup_items(source, target, versioned=True)
    _insert(source, _rows(3))
    target.execute("CREATE TABLE public.items_b (LIKE public.items INCLUDING ALL)")
    assert sync([_ts_table(source)]).tables[0].status == "finished"
    other = _ts_table(source, target="public.items_b")
    report = sync([_rv_table(source), other])
    results = {t.table: t for t in report.tables}
    assert results["public.items"].status == "failed"
    assert (results["public.items"].error or "").startswith("StateMismatch: table public.items: the stored watermark")
    assert (results["public.items_b"].status, results["public.items_b"].rows_upserted) == ("finished", 3)


def test_a_table_locked_by_another_run_is_skipped(source, target, sync):
    _setup_items(source, target)
    _insert(source, _rows(3))
    other = psycopg2.connect(target.dsn)
    with other.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (0x7A5C, "public.items"))
    try:
        result = sync([_ts_table(source)]).tables[0]
        assert result.status == "skipped"
        assert target.execute("SELECT count(*) FROM public.items") == [(0,)]
    finally:
        pid = other.get_backend_pid()
        other.close()
    # The server ends a closed session (and releases its locks) a moment after the client leaves.
    deadline = time.monotonic() + 10
    while target.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)) != [(0,)]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert sync([_ts_table(source)]).tables[0].rows_read == 3


def test_initial_value_starts_later_and_a_query_source_filters(source, target, sync):
    _setup_items(source, target)
    _insert(source, _rows(10))
    start = (T0 + dt.timedelta(seconds=6)).isoformat()
    result = sync([_ts_table(source, initial_value=start)]).tables[0]
    assert result.rows_read == 4
    assert [r[0] for r in target.execute("SELECT id FROM public.items ORDER BY id")] == [7, 8, 9, 10]

    target.execute("CREATE TABLE public.cheap (LIKE public.items INCLUDING ALL)")
    query = {
        "name": "cheap",
        "query": "SELECT id, name, amount, updated_at FROM items WHERE amount < 1 AND name LIKE 'item%'",
        "target": "public.cheap",
        "primary_key": ["id"],
        "cursor": {"column": "updated_at", "type": "timestamp"},
    }
    assert sync([query]).tables[0].rows_read == 3
    assert [r[0] for r in target.execute("SELECT id FROM public.cheap ORDER BY id")] == [1, 2, 3]


def _copy_spy(monkeypatch: Any) -> list[str]:
    """Record where each chunk's COPY went: straight into the target, or into the staging table."""
    import table_sync.sync as sync_module
    from pipeline_common.identifiers import QualifiedName

    calls: list[str] = []
    real = sync_module.copy_encoded

    def spy(cur: Any, table: Any, columns: Any, data: bytes) -> int:
        calls.append("target" if isinstance(table, QualifiedName) else "staging")
        return real(cur, table, columns, data)

    monkeypatch.setattr(sync_module, "copy_encoded", spy)
    return calls


def test_first_pass_direct_copy_falls_back_to_the_upsert_when_a_resumed_pass_meets_a_key_again(
    source, target, sync, monkeypatch
):
    _setup_items(source, target)
    _insert(source, _rows(10))
    calls = _copy_spy(monkeypatch)
    first = sync([_ts_table(source, chunk_size=4)], deadline=_run_hook({"n": 0}, expire_after=2)).tables[0]
    assert (first.status, first.rows_upserted) == ("continues", 4)
    assert calls == ["target"]  # an empty target: the first chunk went straight in
    # Row 2, already copied, changes: its new cursor value puts it after the pass's position.
    source.execute("UPDATE items SET name = 'moved', updated_at = %s WHERE id = 2", (T0 + dt.timedelta(hours=1),))

    calls.clear()
    second = sync([_ts_table(source, chunk_size=4)]).tables[0]

    # Chunk [5-8] still goes straight in; chunk [9, 10, 2] repeats key 2, so its COPY fails on the
    # primary key, is rolled back to the savepoint and redone through staging and the upsert.
    assert calls == ["target", "target", "staging"]
    assert (second.status, second.rows_read, second.rows_upserted) == ("finished", 7, 7)
    assert _target_rows(target) == _source_rows(source)
    assert target.execute("SELECT name FROM public.items WHERE id = 2") == [("moved",)]
    assert _state(target)["rows_synced"] == 11


def test_first_pass_direct_copy_falls_back_when_a_chunk_repeats_a_key_and_the_newest_version_wins(
    source, target, sync, monkeypatch
):
    _setup_items(source, target)
    _insert(source, _rows(6))
    # A query source may yield a key twice in one chunk (here: row 2 and a newer version of it).
    query = {
        "name": "dups",
        "query": "SELECT id, name, amount, updated_at FROM items UNION ALL "
        "SELECT id, 'newer', amount, updated_at + INTERVAL '1' HOUR FROM items WHERE id = 2",
        "target": "public.items",
        "primary_key": ["id"],
        "cursor": {"column": "updated_at", "type": "timestamp"},
        "chunk_size": 3,
    }
    calls = _copy_spy(monkeypatch)

    result = sync([query]).tables[0]

    # Chunks [1-3] and [4-6] go straight in; chunk [2'] conflicts with the stored row 2 and falls
    # back, and so does everything after it (nothing here): the target is no longer known empty.
    assert calls == ["target", "target", "target", "staging"]
    assert (result.status, result.rows_read, result.rows_upserted) == ("finished", 7, 7)
    assert target.execute("SELECT id, name FROM public.items ORDER BY id") == [
        (1, "item 1"),
        (2, "newer"),
        (3, "item 3"),
        (4, "item 4"),
        (5, "item 5"),
        (6, "item 6"),
    ]

    # Within a single chunk: the direct COPY fails on the chunk's own repeated key, and the upsert
    # keeps one row per key, the one with the highest cursor value.
    target.execute("TRUNCATE public.items")
    target.execute("DELETE FROM pipeline_state.table_sync_state")
    calls.clear()
    result = sync([{**query, "chunk_size": 100}]).tables[0]
    assert calls == ["target", "staging"]
    assert (result.status, result.rows_read, result.rows_upserted) == ("finished", 7, 6)
    assert target.execute("SELECT name FROM public.items WHERE id = 2") == [("newer",)]
    assert target.execute("SELECT count(*) FROM public.items") == [(6,)]


def test_target_types_without_an_equality_operator_are_upserted_and_unchanged_rows_skipped(source, target, sync):
    # json, point and xml have no `=`: the unchanged-row check must not compare them as values.
    stamp = "timestamp(6)" if source.engine == "postgresql" else "datetime(6)"
    source.execute(
        f"CREATE TABLE docs (id int PRIMARY KEY, doc varchar(200), loc varchar(50), note varchar(50), "
        f"updated_at {stamp} NULL)"
    )
    for i in (1, 2, 3):
        source.execute(
            "INSERT INTO docs VALUES (%s, %s, %s, %s, %s)",
            (i, f'{{"n": {i}}}', f"({i},{i})", f"<n>{i}</n>", T0 + dt.timedelta(seconds=i)),
        )
    target.execute("CREATE TABLE public.docs (id int PRIMARY KEY, doc json, loc point, note xml, updated_at timestamp)")
    table = {
        "source": _source_name(source).replace("items", "docs"),
        "target": "public.docs",
        "primary_key": ["id"],
        "cursor": {"column": "updated_at", "type": "timestamp", "lookback_seconds": 3600},
    }
    first = sync([table]).tables[0]
    assert (first.status, first.rows_upserted) == ("finished", 3), first.error
    versions = dict(target.execute("SELECT id, xmin::text FROM public.docs"))

    source.execute(
        "UPDATE docs SET doc = %s, loc = %s, note = %s, updated_at = %s WHERE id = 2",
        ('{"n": 20}', "(20,20)", "<n>20</n>", T0 + dt.timedelta(hours=1)),
    )
    # The lookback re-reads all three rows; only the changed one is written.
    second = sync([table]).tables[0]
    assert second.status == "finished", second.error
    assert (second.rows_read, second.rows_upserted) == (3, 1)
    assert target.execute("SELECT id, doc::text, loc::text, note::text FROM public.docs ORDER BY id") == [
        (1, '{"n": 1}', "(1,1)", "<n>1</n>"),
        (2, '{"n": 20}', "(20,20)", "<n>20</n>"),
        (3, '{"n": 3}', "(3,3)", "<n>3</n>"),
    ]
    after = dict(target.execute("SELECT id, xmin::text FROM public.docs"))
    assert (after[1], after[3]) == (versions[1], versions[3]) and after[2] != versions[2]


# Values that stress COPY text: every escaped character, NULLs, unicode, extremes, a backslash in binary.
_AWKWARD_TEXT = ["tab\there", "line\nbreak\r\nwindows", "back\\slash \\N not null", "", "Grüße ☃ 𝄞", None]


def _wide_tables(source: Any, target: Any) -> None:
    if source.engine == "postgresql":
        source.execute(
            "CREATE TABLE wide (id int PRIMARY KEY, big bigint, n numeric(30, 10), r real, d double precision, "
            "ok boolean, t text, v varchar(20), b bytea, ts timestamp(6), tz timestamptz, dd date, tm time(6), "
            "u uuid, j jsonb, iv interval, updated_at timestamp NOT NULL)"
        )
        extra = ", u uuid, j jsonb, iv interval"
        values = "gen_random_uuid(), %s::jsonb, g * interval '90 minutes'"
    else:
        source.execute(
            "CREATE TABLE wide (id int PRIMARY KEY, big bigint, n decimal(30, 10), r float, d double, ok tinyint, "
            "t text, v varchar(20), b blob, ts datetime(6), tz timestamp(6) NULL, dd date, tm time(6), j json, "
            "e enum('small', 'large'), updated_at datetime NOT NULL)"
        )
        # PyMySQL reads TIME as a duration (timedelta): an interval target takes every driver's form.
        extra = ", j jsonb, e text"
        values = "%s, IF(g %% 2 = 0, 'small', 'large')"
    for g, text in enumerate(_AWKWARD_TEXT, start=1):
        source.execute(
            "INSERT INTO wide SELECT g, g * -1234567890123, g / 7.0, g / 10.0, 1.0 / 3 * g, g %% 2 = 1, %s, %s, %s, "
            "'1999-12-31 23:59:59.999999', '2024-01-02 03:04:05.5', '2000-02-29', '23:59:59.000001', "
            f"{values}, '2024-03-01 12:00:00' FROM (SELECT %s AS g) AS one",
            (text, text and text[:20], text and text.encode() + b"\\\x00\xff", '{"k": "tab\\t \\u00fc"}', g),
        )
    source.execute("UPDATE wide SET n = NULL, r = NULL, d = NULL, b = NULL, ts = NULL, tz = NULL WHERE id = 6")
    for name in ("typed", "encoded"):
        target.execute(
            f"CREATE TABLE public.wide_{name} (id int PRIMARY KEY, big bigint, n numeric(30, 10), r double precision, "
            "d double precision, ok boolean, t text, v text, b bytea, ts timestamp(6), tz timestamptz, dd date, "
            f"tm {'time(6)' if source.engine == 'postgresql' else 'interval'}{extra}, updated_at timestamp NOT NULL)"
        )


def test_encoded_and_typed_reads_write_the_same_rows(source, target, sync):
    _wide_tables(source, target)
    table = {
        "source": _source_name(source).replace("items", "wide"),
        "primary_key": ["id"],
        "cursor": {"column": "updated_at", "type": "timestamp"},
        "chunk_size": 4,
    }
    typed, encoded = sync(
        [
            {**table, "target": "public.wide_typed", "encode_on_source": False},
            {**table, "target": "public.wide_encoded"},
        ]
    ).tables
    assert (typed.status, typed.rows_upserted, typed.read_mode) == ("finished", 6, "typed")
    # Only pyodbc reads are encoded; the native drivers' type codes are not mapped.
    assert (encoded.status, encoded.rows_upserted) == ("finished", 6)
    assert encoded.read_mode == ("encoded" if source.kind.endswith("odbc") else "typed")
    rows = [target.execute(f"SELECT * FROM public.wide_{name} ORDER BY id") for name in ("typed", "encoded")]
    if source.kind == "mysql-odbc":
        # MariaDB ODBC hands pyodbc TIME without its fraction; the encoded line keeps it.
        assert {r[12] for r in rows[0]} == {dt.timedelta(seconds=86399)}
        assert {r[12] for r in rows[1]} == {dt.timedelta(seconds=86399, microseconds=1)}
        rows = [[r[:12] + r[13:] for r in side] for side in rows]
    assert rows[0] == rows[1]
    assert [r[6] for r in rows[1]] == _AWKWARD_TEXT
    assert bytes(rows[1][2][8]) == b"back\\slash \\N not null\\\x00\xff"


def test_new_keys_go_straight_into_the_target_on_later_passes_and_updates_through_the_upsert(
    source, target, sync, monkeypatch
):
    _setup_items(source, target, versioned=True)
    _insert(source, _rows(4))
    assert sync([_rv_table(source, chunk_size=2)]).tables[0].rows_upserted == 4
    calls = _copy_spy(monkeypatch)
    # An append: rows 5-8 are new keys, so both chunks are COPYed straight into the target.
    _insert(source, _rows(4, start=5))
    assert sync([_rv_table(source, chunk_size=2)]).tables[0].rows_upserted == 4
    assert calls == ["target", "target"]

    calls.clear()
    source.execute("UPDATE items SET name = 'renamed' WHERE id = 1")
    _insert(source, _rows(8, start=9))
    result = sync([_rv_table(source, chunk_size=2)]).tables[0]
    # Chunk [1, 9] meets the stored row 1: its COPY fails and it takes the upsert; direct copies
    # pause for the next two chunks ([10, 11], [12, 13]); [14, 15] and [16] go straight in again.
    assert calls == ["target", "staging", "staging", "staging", "target", "target"]
    assert (result.status, result.rows_read, result.rows_upserted) == ("finished", 9, 9)
    assert _target_rows(target) == _source_rows(source)


def test_long_values_arrive_whole(source, target, sync):
    # A line far longer than psqlODBC's MaxLongVarcharSize or pyodbc's first read buffer.
    _setup_items(source, target)
    long_text = ("x" * 99 + "\t") * 3_000 + "ü" * 10_000
    source.execute(
        "ALTER TABLE items MODIFY name longtext"
        if source.engine == "mysql"
        else "ALTER TABLE items ALTER COLUMN name TYPE text"
    )
    source.execute("INSERT INTO items VALUES (1, %s, 1.5, %s)", (long_text, T0))
    result = sync([_ts_table(source)]).tables[0]
    assert (result.status, result.rows_upserted) == ("finished", 1)
    assert target.execute("SELECT name FROM public.items") == [(long_text,)]


def test_a_quoted_source_name_and_a_query_with_a_semicolon_literal_and_a_trailing_comment(source, target, sync):
    """Issue 13: `source` names a table only quoted SQL can spell; a `;` inside a literal is text;
    a trailing `--` comment no longer swallows the parenthesis the sync wraps the query in."""
    _setup_items(source, target)
    _insert(source, _rows(5))
    source.execute("UPDATE items SET name = %s WHERE id = 2", ("a;b",))
    quote = '"' if source.engine == "postgresql" else "`"
    source.execute(f"CREATE TABLE {quote}Order Details{quote} AS SELECT * FROM items")
    schema = _source_name(source).split(".")[0]
    target.execute("CREATE TABLE public.named (LIKE public.items INCLUDING ALL)")
    details = _ts_table(source, source=f"{schema}.{quote}Order Details{quote}")
    query = {
        "name": "named",
        "query": "SELECT id, name, amount, updated_at FROM items WHERE name <> 'a;b'; -- all but the odd one\n",
        "target": "public.named",
        "primary_key": ["id"],
        "cursor": {"column": "updated_at", "type": "timestamp"},
    }
    report = sync([details, query])
    assert [(t.status, t.rows_read) for t in report.tables] == [("finished", 5), ("finished", 4)]
    assert [r[0] for r in target.execute("SELECT id FROM public.named ORDER BY id")] == [1, 3, 4, 5]
    assert [r[0] for r in target.execute("SELECT id FROM public.items ORDER BY id")] == [1, 2, 3, 4, 5]
