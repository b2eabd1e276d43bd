"""SYNC_TABLES parsing: every malformed entry is refused with a message naming the table and field."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pipeline_common.config import ConfigError
from table_sync.config import Settings, parse_tables

BASE = {
    "source": "dbo.Orders",
    "target": "sales.orders",
    "primary_key": ["OrderId"],
    "cursor": {"column": "RowVer", "type": "rowversion"},
}


def test_a_minimal_table_gets_the_documented_defaults():
    (spec,) = parse_tables([BASE], "sqlserver")
    assert spec.name == "sales.orders"
    assert (spec.source.schema, spec.source.name, spec.query) == ("dbo", "Orders", None)
    assert spec.primary_key == ("OrderId",)
    assert (spec.cursor.column, spec.cursor.type, spec.cursor.lookback) == ("RowVer", "rowversion", dt.timedelta(0))
    assert spec.columns is None and spec.chunk_size == 10_000 and spec.initial_value is None
    assert not spec.deletes.enabled


def test_every_option_is_parsed():
    (spec,) = parse_tables(
        [
            {
                "name": "orders-eu",
                "query": "SELECT * FROM dbo.Orders WHERE Region = 'EU';",
                "target": "sales.orders",
                "primary_key": "OrderId",
                "cursor": {"column": "ModifiedAt", "type": "timestamp", "lookback_seconds": 90},
                "columns": {"OrderId": "order_id", "ModifiedAt": "modified_at"},
                "chunk_size": 500,
                "initial_value": "2024-01-01T00:00:00+00:00",
                "deletes": {"chunk_size": 200, "interval_minutes": 1440},
            }
        ],
        "sqlserver",
    )
    assert spec.query == "SELECT * FROM dbo.Orders WHERE Region = 'EU'"
    assert spec.columns == (("OrderId", "order_id"), ("ModifiedAt", "modified_at"))
    assert spec.cursor.lookback == dt.timedelta(seconds=90)
    assert spec.initial_value == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert (spec.deletes.enabled, spec.deletes.chunk_size, spec.deletes.interval) == (True, 200, dt.timedelta(days=1))


def test_rowversion_initial_value_accepts_sql_server_hex():
    (spec,) = parse_tables([{**BASE, "initial_value": "0x00000000000007D1"}], "sqlserver")
    assert spec.initial_value == 2001


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"primary_keys": ["id"]}, "unknown key(s) primary_keys"),
        ({"query": "SELECT 1"}, "exactly one of 'source'"),
        ({"source": "Orders"}, "expected schema.table"),
        ({"source": "dbo.Or-ders"}, "invalid table name 'Or-ders'"),
        ({"target": "sales.orders; DROP TABLE x"}, "invalid table name"),
        ({"primary_key": []}, "'primary_key' must be"),
        ({"primary_key": ["a", "a"]}, "lists a column twice"),
        ({"cursor": {"column": "x", "type": "identity"}}, "cursor 'type' must be one of rowversion, timestamp"),
        ({"cursor": {"column": "x", "type": "rowversion", "lookback_seconds": 5}}, "timestamp cursors only"),
        ({"cursor": {"column": "x", "type": "timestamp", "lookback_seconds": -1}}, "'lookback_seconds' must be"),
        ({"cursor": {"column": "x", "type": "timestamp", "window": 1}}, "'cursor' has unknown key(s) window"),
        ({"columns": ["Name"]}, "primary key column(s) OrderId must be listed in 'columns'"),
        ({"columns": {"OrderId": 5}}, "'columns' must be"),
        ({"chunk_size": 0}, "'chunk_size' must be an integer between 1 and"),
        ({"chunk_size": "100"}, "'chunk_size' must be an integer"),
        ({"initial_value": "yesterday"}, "is not an integer or 0x hex"),
        ({"deletes": "yes"}, "'deletes' must be true, false or an object"),
        ({"deletes": {"chunk_size": 5000}}, "'deletes.chunk_size' must be an integer between 1 and 2000"),
        ({"query": "DELETE FROM t", "source": None}, "must start with SELECT or WITH"),
    ],
)
def test_malformed_tables_are_refused_naming_the_table_and_field(change, message):
    table = {**BASE, **change}
    table = {k: v for k, v in table.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        parse_tables([table], "sqlserver")
    assert message in str(caught.value)
    assert str(caught.value).startswith("SYNC_TABLES[0] (sales.orders")


def test_timestamp_initial_value_must_be_iso_8601():
    table = {**BASE, "cursor": {"column": "t", "type": "timestamp"}, "initial_value": "01/02/2024"}
    with pytest.raises(ConfigError, match="not an ISO 8601"):
        parse_tables([table], "sqlserver")


def test_list_shape_and_duplicates_are_refused():
    with pytest.raises(ConfigError, match="non-empty JSON list"):
        parse_tables({"tables": []}, "sqlserver")
    with pytest.raises(ConfigError, match=r"two tables share the name 'sales\.orders'"):
        parse_tables([BASE, BASE], "sqlserver")
    with pytest.raises(ConfigError, match="two tables share the target table"):
        parse_tables([BASE, {**BASE, "name": "other"}], "sqlserver")


def _environ(**overrides):
    environ = {
        "SYNC_TABLES": json.dumps([BASE]),
        "SOURCE_DB_ENGINE": "sqlserver",
        "SOURCE_DB_HOST": "mssql.internal",
        "SOURCE_DB_PORT": "1433",
        "SOURCE_DB_NAME": "erp",
        "SOURCE_DB_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:src",
        "DB_HOST": "pg.internal",
        "DB_NAME": "unified",
        "DB_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:tgt",
    }
    environ.update(overrides)
    return {k: v for k, v in environ.items() if v is not None}


def test_settings_from_the_environment_contract():
    settings = Settings.from_env(_environ())
    assert settings.source.engine == "sqlserver" and settings.source.host == "mssql.internal"
    assert settings.target.engine == "postgresql" and settings.target.database == "unified"
    assert settings.state_schema == "pipeline_state"
    assert settings.secret_ttl_seconds == 300
    assert Settings.from_env(_environ(SECRET_TTL_SECONDS="30")).secret_ttl_seconds == 30
    assert settings.tables[0].source.name == "Orders"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"SYNC_TABLES": None}, "SYNC_TABLES is required"),
        ({"SYNC_TABLES": "[{"}, "SYNC_TABLES is not valid JSON"),
        ({"SOURCE_DB_ENGINE": "oracle"}, "SOURCE_DB_ENGINE must be one of"),
        ({"SOURCE_DB_SECRET_ARN": None}, "SOURCE_DB_SECRET_ARN is required"),
        ({"STATE_SCHEMA": "bad-schema"}, "STATE_SCHEMA"),
    ],
)
def test_settings_errors_name_the_variable(overrides, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(_environ(**overrides))


@pytest.mark.parametrize(
    ("engine", "value", "expected"),
    [("sqlserver", None, False), ("postgresql", None, True), ("mysql", None, True), ("sqlserver", True, True)],
)
def test_encode_on_source_is_opt_in_for_sql_server_only(engine, value, expected):
    table = {**BASE, "source": "s.t"} if value is None else {**BASE, "source": "s.t", "encode_on_source": value}
    (spec,) = parse_tables([table], engine)
    assert spec.encode_on_source is expected


def test_encode_on_source_must_be_a_boolean():
    with pytest.raises(ConfigError, match=r"SYNC_TABLES\[0\] \(sales.orders\): 'encode_on_source' must be true"):
        parse_tables([{**BASE, "encode_on_source": "yes"}], "sqlserver")


@pytest.mark.parametrize(
    ("engine", "query", "kept"),
    [
        ("sqlserver", "SELECT * FROM dbo.Orders WHERE Note <> 'a;b'", "SELECT * FROM dbo.Orders WHERE Note <> 'a;b'"),
        ("sqlserver", "SELECT * FROM dbo.Orders -- recent only", "SELECT * FROM dbo.Orders"),
        ("sqlserver", "SELECT [a;b] FROM dbo.[Order Details];\n-- done\n", "SELECT [a;b] FROM dbo.[Order Details]"),
        ("sqlserver", "/* sync /* nested */ */ WITH x AS (SELECT 1 AS a) SELECT a FROM x;;", None),
        ("postgresql", "SELECT 1 /* a /* b */ ; SELECT 2 */", "SELECT 1"),
        ("postgresql", "SELECT $$;$$ AS s, E'\\';' AS e FROM t -- x", "SELECT $$;$$ AS s, E'\\';' AS e FROM t"),
        ("mysql", "SELECT 'it\\'s;' AS s FROM t # mysql comment", "SELECT 'it\\'s;' AS s FROM t"),
        ("mysql", "SELECT a--b FROM t", "SELECT a--b FROM t"),
    ],
)
def test_a_query_may_hold_semicolons_in_literals_and_comments_after_it(engine, query, kept):
    """A `;` in a literal used to be refused; a trailing `--` comment passed and broke the
    wrapping SELECT at run time (issue 13)."""
    (spec,) = parse_tables([{**BASE, "source": None, "query": query}], engine)
    assert spec.query == (kept or "WITH x AS (SELECT 1 AS a) SELECT a FROM x")


@pytest.mark.parametrize(
    ("engine", "query", "message"),
    [
        ("sqlserver", "SELECT 1; DROP TABLE dbo.Orders", "must be a single SELECT statement"),
        ("sqlserver", "SELECT 1; -- a\nSELECT 2", "must be a single SELECT statement"),
        ("sqlserver", "SELECT 'never closed", "unterminated string literal"),
        ("sqlserver", "SELECT [never closed", "unterminated quoted name"),
        ("postgresql", "SELECT 1 /* never closed", "unterminated /* comment"),
        ("postgresql", "SELECT $x$ never closed", "unterminated dollar-quoted string"),
        # MySQL ends a comment at the first */ (no nesting): `; SELECT 2 */` is a second statement.
        ("mysql", "SELECT 1 /* a /* b */ ; SELECT 2 */", "must be a single SELECT"),
        ("sqlserver", "-- only a comment", "holds no statement"),
        ("sqlserver", "/* x */ UPDATE t SET a = 1", "must start with SELECT or WITH"),
    ],
)
def test_a_query_that_is_not_one_select_is_refused_naming_why(engine, query, message):
    with pytest.raises(ConfigError) as caught:
        parse_tables([{**BASE, "source": None, "query": query}], engine)
    assert message in str(caught.value) and str(caught.value).startswith("SYNC_TABLES[0] (sales.orders)")


@pytest.mark.parametrize(
    ("engine", "source", "expected"),
    [
        ("sqlserver", "dbo.[Order Details]", ("dbo", "Order Details")),
        ("sqlserver", '"Sales"."Order ]Items"', ("Sales", "Order ]Items")),
        ("sqlserver", "dbo.[a]]b]", ("dbo", "a]b")),
        ("postgresql", 'public."order items"', ("public", "order items")),
        ("mysql", "shop.`order items`", ("shop", "order items")),
    ],
)
def test_a_source_name_may_be_quoted_as_its_engine_quotes_names(engine, source, expected):
    (spec,) = parse_tables([{**BASE, "source": source}], engine)
    assert (spec.source.schema, spec.source.name) == expected


@pytest.mark.parametrize(
    ("engine", "source"),
    [("sqlserver", "dbo.Order Details"), ("postgresql", "public.[order items]"), ("sqlserver", "dbo.[x")],
)
def test_an_unquoted_or_badly_quoted_source_name_is_refused(engine, source):
    with pytest.raises(ConfigError, match="invalid table name"):
        parse_tables([{**BASE, "source": source}], engine)
