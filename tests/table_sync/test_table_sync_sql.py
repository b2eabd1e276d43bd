"""Generated source SQL: T-SQL for every option parses with sqlglot's T-SQL dialect (no SQL Server
runs here), and the statements say what the sync relies on."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import struct
from decimal import Decimal

import pytest
import sqlglot
from sqlglot import exp

from pipeline_common import values
from pipeline_common.identifiers import QualifiedName
from table_sync.dialect import (
    Dialect,
    Lower,
    SourceColumn,
    SourceShape,
    key_lookup_sql,
    parse_copy_field,
    probe_sql,
    read_sql,
)
from table_sync.source import datetimeoffset_to_datetime

TSQL = Dialect("sqlserver", "qmark")
LOWERS = [
    Lower("all"),
    Lower("from", dt.datetime(2024, 1, 1)),
    Lower("after", 42),
    Lower("after_key", 42, (7,)),
]


def _shape(cursor_type: str, key: tuple[str, ...], query: bool, cursor_copied: bool) -> SourceShape:
    columns = (*key, "Name", *(["RowVer" if cursor_type == "rowversion" else "ModifiedAt"] if cursor_copied else []))
    return SourceShape(
        relation=None if query else QualifiedName("dbo", "Orders"),
        query="SELECT o.*, c.Name AS CustomerName FROM dbo.Orders o JOIN dbo.Customers c ON c.Id = o.CustomerId"
        if query
        else None,
        columns=columns,
        primary_key=key,
        cursor_column="RowVer" if cursor_type == "rowversion" else "ModifiedAt",
        cursor_type=cursor_type,
    )


def _parse(statement: str) -> exp.Expression:
    parsed = sqlglot.parse(statement, read="tsql", error_level=sqlglot.ErrorLevel.RAISE)
    assert len(parsed) == 1
    return parsed[0]


@pytest.mark.parametrize(
    ("cursor_type", "key", "query", "cursor_copied", "lower", "bounded"),
    [
        (c, k, q, cc, lo, b)
        for c, k, q, cc, lo, b in itertools.product(
            ["rowversion", "timestamp"],
            [("OrderId",), ("Region", "OrderId")],
            [False, True],
            [False, True],
            LOWERS,
            [False, True],
        )
        if not (b and c == "timestamp")
    ],
)
def test_tsql_read_for_every_option_parses(cursor_type, key, query, cursor_copied, lower, bounded):
    shape = _shape(cursor_type, key, query, cursor_copied)
    if lower.kind == "after_key":
        lower = Lower("after_key", 42, tuple(range(len(key))))
    statement, params = read_sql(TSQL, shape, lower, 99 if bounded else None)
    tree = _parse(statement)
    assert isinstance(tree, exp.Select)
    assert statement.count("?") == len(params)
    assert "TOP" not in statement.upper() and "OFFSET" not in statement.upper()
    order = [o.this.sql(dialect="tsql") for o in tree.args["order"].expressions]
    assert order == [f"[{shape.cursor_column}]", *(f"[{k}]" for k in key)]
    if cursor_type == "rowversion":
        assert "CAST([RowVer] AS BIGINT)" in statement  # the watermark is read as a number
        if lower.kind != "all":
            assert "CAST(CAST(? AS BIGINT) AS BINARY(8))" in statement  # compared as rowversion: index seek


def test_tsql_keyset_predicate_is_the_expanded_row_comparison():
    shape = _shape("timestamp", ("Region", "OrderId"), False, True)
    statement, params = read_sql(TSQL, shape, Lower("after_key", "c", ("r", 5)))
    assert (
        "[ModifiedAt] >= ? AND ([ModifiedAt] > ? OR ([ModifiedAt] = ? AND ([Region] > ? OR ([Region] = ? AND "
        "[OrderId] > ?))))" in statement
    )
    assert params == ["c", "c", "c", "r", "r", 5]


def test_tsql_upper_bound_probe_and_key_lookups_parse():
    assert "MIN_ACTIVE_ROWVERSION()" in TSQL.upper_bound_sql("rowversion")
    _parse(TSQL.upper_bound_sql("rowversion"))
    assert TSQL.upper_bound_sql("timestamp") is None
    for query in (False, True):
        shape = _shape("rowversion", ("Region", "OrderId"), query, False)
        _parse(probe_sql(TSQL, shape))
        statement, params = key_lookup_sql(TSQL, shape, [("a", 1), ("b", 2)])
        _parse(statement)
        assert len(params) == 4 == statement.count("?")
        single = _shape("rowversion", ("OrderId",), query, False)
        statement, params = key_lookup_sql(TSQL, single, [(1,), (2,), (3,)])
        assert "[OrderId] IN (?, ?, ?)" in statement
        _parse(statement)
    _parse(TSQL.session_sql())


def test_postgres_uses_a_row_comparison_and_format_parameters_escape_percent():
    dialect = Dialect("postgresql", "format")
    shape = SourceShape(None, "SELECT * FROM t WHERE name LIKE 'a%'", ("id", "v"), ("id",), "v", "rowversion")
    statement, params = read_sql(dialect, shape, Lower("after_key", 10, (3,)), 20)
    assert '("v", "id") > (%s, %s)' in statement and '"v" < %s' in statement
    assert "LIKE 'a%%'" in statement
    assert params == [10, 3, 20]
    assert "pg_snapshot_xmin" in dialect.upper_bound_sql("rowversion")
    assert Dialect("mysql", "format").upper_bound_sql("rowversion") is None


def test_identifiers_are_quoted_per_dialect():
    shape = SourceShape(QualifiedName("s", "t"), None, ("a",), ("a",), "c", "timestamp")
    assert read_sql(Dialect("mysql", "format"), shape, Lower("all"))[0].startswith("SELECT `a`, `c` FROM `s`.`t`")
    assert read_sql(Dialect("postgresql", "qmark"), shape, Lower("all"))[0].startswith('SELECT "a", "c" FROM "s"."t"')


def test_aware_datetimes_are_bound_as_naive_utc():
    aware = dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert values.as_parameter(aware) == dt.datetime(2024, 1, 1, 10)


@pytest.mark.parametrize(
    "value",
    [
        5,
        True,
        "x",
        dt.datetime(2024, 1, 1, 1, 2, 3, 4),
        dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        dt.date(2024, 2, 29),
        dt.time(1, 2),
        b"\x00\x01",
        1.5,
        __import__("decimal").Decimal("1.10"),
        __import__("uuid").UUID(int=7),
    ],
)
def test_watermark_values_round_trip_with_their_type(value):
    decoded = values.decode(values.encode(value))
    assert decoded == value and type(decoded) is type(value)


def test_datetimeoffset_struct_becomes_an_aware_datetime():
    raw = struct.pack("<6hI2h", 2024, 5, 6, 7, 8, 9, 123456000, -5, -30)
    got = datetimeoffset_to_datetime(raw)
    assert got == dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone(-dt.timedelta(hours=5, minutes=30)))


ENCODED = (
    SourceColumn("OrderId", "integer"),
    SourceColumn("Total", "decimal", 19, 4),
    SourceColumn("Ratio", "float"),
    SourceColumn("Paid", "bool"),
    SourceColumn("ModifiedAt", "datetime"),
    SourceColumn("Day", "date"),
    SourceColumn("At", "time"),
    SourceColumn("Blob", "binary"),
    SourceColumn("Guid", "uuid"),
    SourceColumn("Note", "text"),
)


@pytest.mark.parametrize("query", [False, True])
@pytest.mark.parametrize("cursor_type", ["rowversion", "timestamp"])
def test_tsql_encoded_read_of_every_column_kind_parses(query, cursor_type):
    shape = _shape(cursor_type, ("OrderId",), query, cursor_copied=False)
    encoded = dataclasses.replace(shape, columns=tuple(c.name for c in ENCODED), encoded=ENCODED)
    statement, params = read_sql(TSQL, encoded, Lower("after_key", 42, (7,)))
    beside_the_line = [e.sql(dialect="tsql") for e in _parse(statement).expressions[1:]]
    # A rowversion cursor is selected typed (as its bigint cast) beside the line, with the key;
    # a synced timestamp cursor and the key are parsed from the line itself.
    typed = [TSQL.cursor_select("RowVer", "rowversion"), "[OrderId]"] if cursor_type == "rowversion" else []
    assert beside_the_line == typed
    assert statement.count("?") == len(params)
    # One field per column, NULL as \N, money-safe decimals, lossless floats, ISO dates, hex binary.
    assert statement.count("NCHAR(9)") == len(ENCODED)  # 9 separators and the tab escape of Note
    assert statement.count("ISNULL(") == len(ENCODED)
    for fragment in (
        "CAST([Total] AS decimal(19, 4))",
        "CONVERT(nvarchar(32), [Ratio], 3)",
        "CONVERT(nvarchar(33), [ModifiedAt], 126)",
        "CONVERT(nvarchar(10), [Day], 23)",
        "N'\\\\x' + CONVERT(nvarchar(max), [Blob], 2)",
        "REPLACE(CONVERT(nvarchar(max), [Note]), NCHAR(92), N'\\\\')",
    ):
        assert fragment in statement
    assert (encoded.cursor_index(TSQL), encoded.key_indexes(TSQL)) == ((1, (2,)) if typed else (4, (0,)))


@pytest.mark.parametrize("engine", ["sqlserver", "postgresql", "mysql"])
def test_an_encoded_read_takes_a_synced_cursor_and_key_from_the_line(engine):
    dialect = Dialect(engine, "qmark")
    shape = SourceShape(
        QualifiedName("dbo", "Orders"),
        None,
        tuple(c.name for c in ENCODED),
        ("OrderId",),
        "ModifiedAt",
        "timestamp",
        ENCODED,
    )
    statement, _ = read_sql(dialect, shape, Lower("after_key", dt.datetime(2024, 1, 1), (7,)))
    if engine == "sqlserver":
        assert len(_parse(statement).expressions) == 1  # the line alone: no typed columns beside it
    assert shape.position_kinds(dialect) == ("datetime", "integer")
    assert (shape.cursor_index(dialect), shape.key_indexes(dialect)) == (4, (0,))
    # A rowversion cursor is read as a cast, never from the line.
    rowversion = dataclasses.replace(shape, cursor_column="OrderId", cursor_type="rowversion")
    assert (rowversion.position_kinds(dialect) is None) is (engine == "sqlserver")


@pytest.mark.parametrize(
    ("field", "kind", "value"),
    [
        ("42", "integer", 42),
        ("-12.3400", "decimal", Decimal("-12.3400")),
        ("tab\\there\\\\x\\nnew", "text", "tab\there\\x\nnew"),
        ("2000-02-29", "date", dt.date(2000, 2, 29)),
        ("2024-01-02 03:04:05.5", "datetime", dt.datetime(2024, 1, 2, 3, 4, 5, 500000)),
        ("2024-01-02T03:04:05.1234567", "datetime", dt.datetime(2024, 1, 2, 3, 4, 5, 123456)),
        # PostgreSQL renders timestamptz with its offset; the ODBC typed read is naive UTC.
        ("2024-01-02 03:04:05+02", "datetime", dt.datetime(2024, 1, 2, 1, 4, 5)),
    ],
)
def test_copy_fields_read_back_as_the_typed_driver_value(field, kind, value):
    assert parse_copy_field(field, kind) == value
    assert type(parse_copy_field(field, kind)) is type(value)


def test_a_column_kind_the_dialect_cannot_render_is_refused():
    with pytest.raises(ValueError, match="'Shape' of kind None cannot be encoded"):
        TSQL.copy_field(SourceColumn("Shape"))


@pytest.mark.parametrize(
    ("described", "encode", "encoded"),
    [
        ((SourceColumn("Id", "integer"), SourceColumn("At", "datetime")), True, True),
        ((SourceColumn("Id", "integer"), SourceColumn("At", "datetime")), False, False),
        # A type the driver maps to no known kind (datetimeoffset, sql_variant, a native driver): typed read.
        ((SourceColumn("Id", "integer"), SourceColumn("At")), True, False),
    ],
)
def test_a_table_is_read_encoded_only_when_allowed_and_every_column_has_a_known_kind(described, encode, encoded):
    from pipeline_common.catalog import Column, TableShape
    from table_sync.config import parse_tables
    from table_sync.plan import resolve

    (spec,) = parse_tables(
        [
            {
                "source": "dbo.T",
                "target": "public.t",
                "primary_key": "Id",
                "cursor": {"column": "At", "type": "timestamp"},
                "encode_on_source": encode,
            }
        ],
        "sqlserver",
    )
    columns = [
        Column("id", "integer", True, False, False, False),
        Column("at", "timestamp", False, False, False, False),
    ]
    plan = resolve(spec, TSQL, described, TableShape(columns, [["id"]], []))
    assert (plan.shape.encoded is not None) is encoded
    # The cursor (At) and key (Id) are synced columns: an encoded read parses them from the line.
    assert (plan.cursor_index, plan.key_indexes) == (1, (0,))
    assert plan.position_kinds == (("datetime", "integer") if encoded else None)


def test_a_bracketed_source_name_is_quoted_by_the_dialect_and_parses():
    shape = dataclasses.replace(
        _shape("rowversion", ("OrderId",), False, False),
        relation=QualifiedName.parse_quoted("dbo.[Order Details]", "sqlserver"),
    )
    statement, _ = read_sql(TSQL, shape, Lower("after", 42))
    assert "FROM [dbo].[Order Details]" in statement
    table = _parse(statement).find(exp.Table)
    assert (table.db, table.name) == ("dbo", "Order Details")
    _parse(probe_sql(TSQL, shape))
