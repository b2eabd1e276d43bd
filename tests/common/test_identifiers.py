import pytest
from psycopg2 import sql

from pipeline_common.identifiers import (
    IdentifierError,
    QualifiedName,
    mysql_quote,
    quotable_identifier,
    quote,
    tsql_quote,
    validate_identifier,
)

HOSTILE = ['x"; DROP TABLE y; --', "a b", "1abc", "", "tab`le", "na]me", "../etc", "sch.ema", "ä"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused(name):
    with pytest.raises(IdentifierError, match="invalid"):
        validate_identifier(name)


def test_length_limit_is_per_engine():
    validate_identifier("a" * 64, engine="mysql")
    with pytest.raises(IdentifierError, match="longer than 63"):
        validate_identifier("a" * 64)


def test_qualified_name_parsing():
    assert QualifiedName.parse("sales.orders") == QualifiedName("sales", "orders")
    assert QualifiedName.parse("orders", default_schema="public") == QualifiedName("public", "orders")
    for bad in ("orders", "a.b.c", "a.", 'a."b"'):
        with pytest.raises(IdentifierError):
            QualifiedName.parse(bad)


def test_quoting_per_dialect(pg_conn):
    name = QualifiedName("Sales", "Order$s")
    assert name.pg().as_string(pg_conn) == '"Sales"."Order$s"'
    assert name.mysql() == "`Sales`.`Order$s`"
    assert name.tsql() == "[Sales].[Order$s]"
    assert mysql_quote("a") == "`a`" and tsql_quote("a") == "[a]" and quote("a", "postgresql") == '"a"'
    assert isinstance(name.pg(), sql.Identifier)


def test_quoted_mixed_case_names_round_trip_in_postgres(pg_conn):
    name = QualifiedName("Mixed_Case", "Table$1")
    with pg_conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name.schema)))
        cur.execute(sql.SQL("CREATE TABLE {} (x int)").format(name.pg()))
        cur.execute("SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema = 'Mixed_Case'")
        assert cur.fetchall() == [("Mixed_Case", "Table$1")]


def test_quoting_takes_any_name_the_engine_accepts_and_escapes_its_quote():
    assert tsql_quote("Order Details") == "[Order Details]" and tsql_quote("a]b") == "[a]]b]"
    assert mysql_quote("order `items`") == "`order ``items```"
    assert quote('say "hi"', "postgresql") == '"say ""hi"""'
    assert quotable_identifier("é" * 31) == "é" * 31  # 62 bytes
    for name, engine in [("", "postgresql"), ("a\x00b", "sqlserver"), ("é" * 32, "postgresql"), ("x ", "mysql")]:
        with pytest.raises(IdentifierError, match="invalid"):
            quotable_identifier(name, engine=engine)
