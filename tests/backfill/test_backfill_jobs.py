"""Job definitions: parsed into typed jobs, bad ones refused naming the job and the field; range
bounds bound safely; statements that would not survive a replay refused by their declared rule."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from backfill.config import Settings
from backfill.idempotence import check_statement
from backfill.jobs import parse_jobs
from backfill.sqltext import SqlTextError, bind, expand_row_comparison
from pipeline_common.config import ConfigError
from scripts import backfill_example as example

ENGINES = ("mysql", "postgresql")


@pytest.mark.parametrize("engine", ENGINES)
def test_the_worked_example_parses(engine: str) -> None:
    (job,) = parse_jobs([example.job(engine)], engine)
    assert job.name == "order_archive" and job.key == ("id",) and str(job.table) == "orders"
    assert [s.shape.table for s in job.statements] == list(example.TARGET_TABLES)
    assert job.statements[0].shape.columns[0] == "order_id"
    assert job.chunk.initial_rows == 2000 and job.chunk.target_seconds == 2.0
    assert job.pressure.max_replica_lag_seconds == 30 and job.pressure.max_running_threads == 0
    assert len(job.verify) == 3 and job.max_rows_per_second is None and job.start_after is None
    assert all(s.bound.names == {"lo", "hi"} for s in job.statements)


def _mutated(engine: str, path: str, value: Any) -> dict[str, Any]:
    job = copy.deepcopy(example.job(engine))
    *parents, last = path.split(".")
    target: Any = job
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
    if value is KeyError:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return job


# (path, bad value, engine or None for both, text the message must contain)
BAD = [
    ("name", "Order Archive", None, "BACKFILL_JOBS[0].name"),
    ("table", "a.b.c", None, "(order_archive).table"),
    ("table", "orders; DROP TABLE x", None, "invalid table name"),
    ("key", [], None, "(order_archive).key"),
    ("key", ["id", "id"], None, "(order_archive).key"),
    ("statements", [], None, "(order_archive).statements must be a list"),
    (
        "statements.0",
        "INSERT IGNORE INTO order_archive (order_id) SELECT o.id FROM orders o WHERE o.id > :lo",
        "mysql",
        "statements[0]: the statement does not use :hi",
    ),
    (
        "statements.0",
        "INSERT IGNORE INTO order_archive (order_id) SELECT id FROM orders WHERE id > :low AND id <= :hi",
        "mysql",
        "statements[0]: unknown parameter :low",
    ),
    (
        "statements.0",
        "INSERT INTO order_archive (order_id) SELECT id FROM orders WHERE id > :lo AND id <= :hi",
        "mysql",
        "statements[0]: rule 'insert_ignore' needs INSERT IGNORE",
    ),
    (
        "statements.0",
        "INSERT INTO order_archive (order_id) SELECT id FROM orders WHERE id > :lo AND id <= :hi",
        "postgresql",
        "statements[0]: rule 'insert_ignore' needs INSERT INTO ... ON CONFLICT DO NOTHING",
    ),
    ("statements.1", "DELETE FROM orders WHERE id > :lo AND id <= :hi", None, "statements[1]: rule 'insert_ignore'"),
    (
        "statements.0",
        "INSERT IGNORE INTO order_archive SELECT * FROM orders WHERE id > :lo AND id <= :hi",
        "mysql",
        "statements[0]: list the inserted columns",
    ),
    (
        "statements.0",
        "INSERT IGNORE INTO order_archive (order_id) SELECT id FROM orders WHERE id > :lo AND id <= :hi; "
        "DROP TABLE orders",
        "mysql",
        "statements[0]: one statement per entry",
    ),
    (
        "statements.0",
        "INSERT IGNORE INTO order_archive (order_id) VALUES (:lo), (:hi)",
        "mysql",
        "statements[0]: the statement must insert the result of a SELECT",
    ),
    ("idempotence", "replace", None, "(order_archive).idempotence must be one of"),
    ("chunk.min_rows", 0, None, "(order_archive).chunk.min_rows"),
    ("chunk.max_rows", 1000, None, "(order_archive).chunk: min_rows <= initial_rows <= max_rows"),
    ("chunk.target_seconds", 0, None, "(order_archive).chunk.target_seconds"),
    ("chunk.size", 5, None, "(order_archive).chunk has unknown key(s) size"),
    ("max_rows_per_second", -5, None, "(order_archive).max_rows_per_second"),
    ("pressure.max_replica_lag_seconds", "30", None, "(order_archive).pressure.max_replica_lag_seconds"),
    ("pressure.pause_seconds", 0, None, "(order_archive).pressure: 0 < pause_seconds"),
    ("pressure.max_running_threads", 2.5, None, "(order_archive).pressure.max_running_threads"),
    (
        "verify.0.target",
        "DELETE FROM order_archive WHERE order_id > :lo AND order_id <= :hi",
        None,
        "verify[0].target: a verify query must be a single SELECT",
    ),
    (
        "verify.0.source",
        "SELECT COUNT(*) FROM orders",
        None,
        "verify[0].source: the statement does not use :lo and :hi",
    ),
    ("start_after", [1, 2], None, "(order_archive).start_after must be 1 number(s)"),
    ("schedule", "daily", None, "(order_archive) has unknown key(s) schedule"),
]


@pytest.mark.parametrize(("path", "value", "only", "message"), BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_definitions_are_refused_naming_the_job_and_the_field(
    path: str, value: Any, only: str | None, message: str
) -> None:
    for engine in [only] if only else ENGINES:
        with pytest.raises(ConfigError) as raised:
            parse_jobs([_mutated(engine, path, value)], engine)
        assert message in str(raised.value), (engine, str(raised.value))


def test_the_job_list_itself_is_checked() -> None:
    for raw in (None, [], {"name": "x"}, ["x"]):
        with pytest.raises(ConfigError, match="BACKFILL_JOBS"):
            parse_jobs(raw, "mysql")
    with pytest.raises(ConfigError, match="two jobs are named 'order_archive'"):
        parse_jobs([example.job("mysql"), example.job("mysql")], "mysql")
    with pytest.raises(ConfigError, match="mysql or postgresql"):
        parse_jobs([example.job("mysql")], "sqlserver")


def test_settings_come_from_the_environment() -> None:
    import json

    env = {
        "BACKFILL_JOBS": json.dumps([example.job("mysql")]),
        "BACKFILL_DB_ENGINE": "mysql",
        "BACKFILL_DB_HOST": "db.internal",
        "BACKFILL_DB_NAME": "shop",
        "BACKFILL_DB_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:shop-AbCdEf",
        "BACKFILL_DB_REPLICA_HOSTS": "replica-1.internal, replica-2.internal:3307",
        "SCHEDULE_NAME": "pipelines-dev-backfill",
    }
    settings = Settings.from_env(env)
    assert settings.state_schema is None  # the connection's database on MySQL
    assert [(r.host, r.port) for r in settings.replicas] == [("replica-1.internal", None), ("replica-2.internal", 3307)]
    assert settings.schedule_name == "pipelines-dev-backfill" and settings.disable_schedule_when_done
    postgresql = {
        **env,
        "BACKFILL_DB_ENGINE": "postgresql",
        "BACKFILL_DB_REPLICA_HOSTS": "",
        "BACKFILL_JOBS": json.dumps([example.job("postgresql")]),
    }
    assert Settings.from_env(postgresql).state_schema == "pipeline_state"
    for change, message in (
        ({"BACKFILL_DB_ENGINE": "sqlserver"}, "BACKFILL_DB_ENGINE must be mysql or postgresql"),
        ({"BACKFILL_DB_REPLICA_HOSTS": "host:port"}, "BACKFILL_DB_REPLICA_HOSTS"),
        ({"STATE_SCHEMA": "bad name"}, "STATE_SCHEMA"),
        ({"BACKFILL_JOBS": "[{"}, "BACKFILL_JOBS is not valid JSON"),
        ({"DISABLE_SCHEDULE_WHEN_DONE": "maybe"}, "DISABLE_SCHEDULE_WHEN_DONE"),
    ):
        with pytest.raises(ConfigError, match=message):
            Settings.from_env({**env, **change})


# --- binding ---------------------------------------------------------------------------------


def test_bounds_become_driver_placeholders_outside_literals_and_comments() -> None:
    sql = (
        "INSERT INTO t (a) SELECT x FROM s WHERE s.id > :lo AND s.id <= :hi AND s.note <> ':lo' "
        "AND s.tag LIKE '50%' /* :hi */ AND s.v::text = 'x'"
    )
    bound = bind(sql, "postgresql", 1)
    assert bound.text == (
        "INSERT INTO t (a) SELECT x FROM s WHERE s.id > %(lo_0)s AND s.id <= %(hi_0)s AND s.note <> ':lo' "
        "AND s.tag LIKE '50%%' /* :hi */ AND s.v::text = 'x'"
    )
    assert bound.params({"lo": (1,), "hi": (9,)}) == {"lo_0": 1, "hi_0": 9}
    mysql = bind("SELECT 1 FROM s WHERE a > :lo AND a <= :hi AND b = 'it\\'s :hi' # :lo\n AND `:lo` = 1", "mysql", 1)
    assert mysql.text.count("%(") == 2 and "'it\\'s :hi'" in mysql.text
    # PostgreSQL dollar quoting and E'' strings; MySQL '--' comments.
    assert bind("SELECT $q$ :x $q$, E'\\' :y' WHERE a > :lo AND a <= :hi", "postgresql", 1).names == {"lo", "hi"}


def test_a_composite_bound_is_a_row_value() -> None:
    sql = "SELECT 1 FROM t o WHERE (o.a, o.b) > :lo AND (o.a, o.b) <= :hi"
    pg = bind(sql, "postgresql", 2)
    assert pg.text == "SELECT 1 FROM t o WHERE (o.a, o.b) > (%(lo_0)s, %(lo_1)s) AND (o.a, o.b) <= (%(hi_0)s, %(hi_1)s)"
    mysql = bind(sql, "mysql", 2)
    assert mysql.text == (
        "SELECT 1 FROM t o WHERE (o.a >= %(lo_0)s AND (o.a > %(lo_0)s OR (o.a = %(lo_0)s AND o.b > %(lo_1)s))) "
        "AND (o.a <= %(hi_0)s AND (o.a < %(hi_0)s OR (o.a = %(hi_0)s AND o.b <= %(hi_1)s)))"
    )
    for bad, message in (
        ("SELECT 1 FROM t WHERE a > :lo AND b <= :hi", "must be compared with a parenthesised list"),
        ("SELECT 1 FROM t WHERE (a, b, c) > :lo AND (a, b) <= :hi", "has 3"),
        ("SELECT 1 FROM t WHERE f(a, b) > :lo AND (a, b) <= :hi", "result of f"),
        ("SELECT 1 FROM t WHERE (a, b) = :lo AND (a, b) <= :hi", "comparison operator"),
    ):
        with pytest.raises(SqlTextError, match=message):
            bind(bad, "mysql", 2)


def test_the_mysql_expansion_means_the_row_comparison(mariadb_conn: Any) -> None:
    """Every (a, b, c) against every bound, on the server: the expansion selects what a row
    comparison selects, for each operator."""
    grid = list(itertools.product(range(3), repeat=3))
    with mariadb_conn.cursor() as cur:
        cur.execute("CREATE TABLE g (a int, b int, c int, PRIMARY KEY (a, b, c))")
        cur.executemany("INSERT INTO g VALUES (%s, %s, %s)", grid)
        for operator, bound in itertools.product((">", ">=", "<", "<="), [(1, 1, 1), (0, 2, 0), (2, 0, 2)]):
            expanded = expand_row_comparison(["a", "b", "c"], operator, ["%(v0)s", "%(v1)s", "%(v2)s"])
            named = dict(zip(("v0", "v1", "v2"), bound, strict=True))
            cur.execute(f"SELECT a, b, c FROM g WHERE {expanded} ORDER BY a, b, c", named)
            got = [tuple(r) for r in cur.fetchall()]
            cur.execute(f"SELECT a, b, c FROM g WHERE (a, b, c) {operator} (%s, %s, %s) ORDER BY a, b, c", bound)
            assert got == [tuple(r) for r in cur.fetchall()], (operator, bound)
        # ... and the server reads it as a range of the primary key, where the row value scans it all.
        expanded = expand_row_comparison(["a", "b", "c"], ">", ["1", "1", "1"])
        cur.execute(f"EXPLAIN SELECT a FROM g WHERE {expanded}")
        assert cur.fetchone()[3] == "range"


# --- idempotence -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("engine", "rule", "sql"),
    [
        ("mysql", "upsert", "INSERT INTO t (id, n) SELECT id, n FROM s ON DUPLICATE KEY UPDATE n = VALUES(n)"),
        ("mysql", "upsert", "INSERT INTO t (id, n) SELECT id, n FROM s AS new ON DUPLICATE KEY UPDATE n = new.n"),
        (
            "postgresql",
            "upsert",
            "INSERT INTO t (id, n) SELECT id, n FROM s ON CONFLICT (id) DO UPDATE SET n = EXCLUDED.n",
        ),
        ("mysql", "update", "UPDATE orders o JOIN customers c ON c.id = o.customer_id SET o.region = c.region"),
        ("postgresql", "update", "UPDATE orders SET total_cents = round(total * 100) WHERE id > 1"),
        ("postgresql", "insert_ignore", "WITH x AS (SELECT 1) INSERT INTO t (id) SELECT 1 ON CONFLICT DO NOTHING"),
    ],
)
def test_idempotent_statements_pass(engine: str, rule: str, sql: str) -> None:
    if sql.startswith("WITH"):
        with pytest.raises(SqlTextError, match="starts with WITH"):
            check_statement(sql, engine, rule)
        return
    assert check_statement(sql, engine, rule).kind == rule


@pytest.mark.parametrize(
    ("engine", "rule", "sql", "message"),
    [
        (
            "mysql",
            "upsert",
            "INSERT INTO t (id, n) SELECT id, n FROM s ON DUPLICATE KEY UPDATE n = n + VALUES(n)",
            "reads the column it writes",
        ),
        (
            "mysql",
            "upsert",
            "INSERT INTO t (id, n) SELECT id, n FROM s ON DUPLICATE KEY UPDATE n = t.n + 1",
            "reads the column it writes",
        ),
        (
            "postgresql",
            "upsert",
            "INSERT INTO t (id, n) SELECT id, n FROM s ON CONFLICT (id) DO UPDATE SET n = t.n + 1",
            "reads the column it writes",
        ),
        ("postgresql", "upsert", "INSERT INTO t (id, n) SELECT id, n FROM s ON CONFLICT DO NOTHING", "DO UPDATE SET"),
        ("mysql", "update", "UPDATE orders SET retries = retries + 1 WHERE id > 1", "reads the column it writes"),
        ("mysql", "update", "UPDATE orders o SET o.total = o.total * 1.2", "reads the column it writes"),
        ("mysql", "update", "INSERT IGNORE INTO t (id) SELECT 1", "UPDATE statements only"),
        (
            "mysql",
            "insert_ignore",
            "INSERT IGNORE INTO t (id) SELECT 1 ON DUPLICATE KEY UPDATE id = 1",
            "without ON DUPLICATE KEY UPDATE",
        ),
        ("mysql", "insert_ignore", "REPLACE INTO t (id) SELECT 1", "INSERT ... SELECT statements only"),
    ],
)
def test_statements_that_a_replay_would_repeat_are_refused(engine: str, rule: str, sql: str, message: str) -> None:
    with pytest.raises(SqlTextError, match=message):
        check_statement(sql, engine, rule)
