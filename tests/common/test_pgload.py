import io

import psycopg2
import pytest
from psycopg2 import errors

from pipeline_common.catalog import TableNotFound, describe_table, describe_tables, primary_key, table_columns
from pipeline_common.copytext import copy_text_batch, copy_text_bytes, copy_text_line
from pipeline_common.identifiers import IdentifierError, QualifiedName
from pipeline_common.pgload import (
    CopyFormat,
    IterStream,
    copy_encoded,
    copy_error_line,
    copy_in,
    copy_rows,
    create_staging,
    is_row_error,
    upsert,
)

ITEMS = QualifiedName("public", "items")


@pytest.fixture
def items(pg_conn):
    with pg_conn.cursor() as cur:
        cur.execute(
            """
            CREATE TABLE items (
                id integer NOT NULL,
                region text NOT NULL,
                name text NOT NULL,
                qty integer,
                version bigint,
                created timestamptz NOT NULL DEFAULT now(),
                serial bigint GENERATED ALWAYS AS IDENTITY,
                PRIMARY KEY (region, id)
            )
            """
        )
    pg_conn.commit()
    return pg_conn


def _rows(conn, query="SELECT region, id, name, qty, version FROM items ORDER BY region, id"):
    with conn.cursor() as cur:
        cur.execute(query)
        return cur.fetchall()


def test_table_columns_and_primary_key_describe_the_table(items):
    with items.cursor() as cur:
        columns = {c.name: c for c in table_columns(cur, ITEMS)}
        assert list(columns) == ["id", "region", "name", "qty", "version", "created", "serial"]
        assert columns["id"].required and columns["name"].required
        assert not columns["qty"].required and not columns["qty"].not_null
        assert columns["created"].not_null and columns["created"].has_default and not columns["created"].required
        assert columns["serial"].identity and not columns["serial"].required
        assert columns["qty"].data_type == "integer"
        assert primary_key(cur, ITEMS) == ["region", "id"]


def test_missing_table_is_named_in_the_error(pg_conn):
    with pg_conn.cursor() as cur, pytest.raises(TableNotFound, match=r"public\.nope does not exist"):
        table_columns(cur, QualifiedName("public", "nope"))


def test_copy_in_from_chunks_with_csv_options(items):
    chunks = [b"1|eu|'a|b'|\\N|", b"1\n2|eu|caf\xc3\xa9|7|2\n", "3|us|'line\nbreak'|8|\\N\n"]
    fmt = CopyFormat(delimiter="|", quote="'", null="\\N")
    with items.cursor() as cur:
        assert copy_in(cur, ITEMS, ["id", "region", "name", "qty", "version"], chunks, fmt) == 3
    assert _rows(items) == [
        ("eu", 1, "a|b", None, 1),
        ("eu", 2, "café", 7, 2),
        ("us", 3, "line\nbreak", 8, None),
    ]


def test_copy_in_from_a_file_object_with_encoding_conversion(items):
    data = io.BytesIO("id,region,name\n5,eu,Müller\n".encode("latin-1"))
    with items.cursor() as cur:
        copy_in(cur, ITEMS, ["id", "region", "name"], data, CopyFormat(header=True, encoding="LATIN1"))
    assert _rows(items) == [("eu", 5, "Müller", None, None)]


def test_copy_error_reports_the_input_line_and_is_a_row_error(items):
    with items.cursor() as cur, pytest.raises(psycopg2.DataError) as caught:
        copy_in(cur, ITEMS, ["id", "region", "name"], [b"1,eu,a\n2,eu,b\nthree,eu,c\n"])
    items.rollback()
    assert copy_error_line(caught.value) == 3
    assert is_row_error(caught.value)


def test_exception_from_the_source_aborts_the_copy_propagates_as_is_and_leaves_nothing(items):
    def failing():
        yield b"1,eu,a\n2,eu,b\n"
        raise ConnectionResetError("S3 stream broke")

    with items.cursor() as cur, pytest.raises(ConnectionResetError, match="S3 stream broke"):
        copy_in(cur, ITEMS, ["id", "region", "name"], failing())
    items.rollback()
    assert _rows(items) == []


def test_staging_keeps_types_and_not_null_and_drops_at_commit(items):
    with items.cursor() as cur:
        staging = create_staging(cur, ITEMS, ["id", "region", "qty"], not_null=["id", "region"])
        with pytest.raises(errors.NotNullViolation) as caught:
            copy_in(cur, staging, ["id", "region", "qty"], [b"1,eu,3\n2,,4\n"])
        assert copy_error_line(caught.value) == 2
    items.rollback()
    with items.cursor() as cur:
        staging = create_staging(cur, ITEMS, ["id", "region", "qty"])
        with pytest.raises(psycopg2.DataError):
            copy_in(cur, staging, ["id", "region", "qty"], [b"1,eu,notanumber\n"])
    items.rollback()
    with items.cursor() as cur:
        create_staging(cur, ITEMS, ["id"])
    items.commit()
    with items.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_class WHERE relname = 'pgload_staging' AND relpersistence = 't'")
        assert cur.fetchone() == (0,)


def _stage(conn, text, columns=("id", "region", "name", "qty", "version")):
    cur = conn.cursor()
    staging = create_staging(cur, ITEMS, list(columns))
    copy_in(cur, staging, list(columns), [text.encode()])
    return cur, staging


def test_upsert_inserts_and_updates_and_keeps_target_defaults(items):
    copy_in(items.cursor(), ITEMS, ["id", "region", "name", "qty"], [b"1,eu,old,1\n2,eu,keep,2\n"])
    items.commit()
    cur, staging = _stage(items, "1,eu,new,10,\n3,us,added,30,\n", ("id", "region", "name", "qty", "version"))
    assert upsert(cur, staging, ITEMS, ["id", "region", "name", "qty", "version"], ["region", "id"]) == 2
    items.commit()
    assert _rows(items) == [("eu", 1, "new", 10, None), ("eu", 2, "keep", 2, None), ("us", 3, "added", 30, None)]
    assert _rows(items, "SELECT count(*) FROM items WHERE created IS NULL OR serial IS NULL") == [(0,)]


def test_upsert_updates_only_loaded_columns(items):
    copy_in(items.cursor(), ITEMS, ["id", "region", "name", "qty"], [b"1,eu,name,5\n"])
    cur, staging = _stage(items, "1,eu,renamed\n", ("id", "region", "name"))
    upsert(cur, staging, ITEMS, ["id", "region", "name"], ["region", "id"])
    items.commit()
    assert _rows(items) == [("eu", 1, "renamed", 5, None)]


def test_upsert_version_guard_never_lets_an_older_row_win(items):
    copy_in(items.cursor(), ITEMS, ["id", "region", "name", "version"], [b"1,eu,v5,5\n2,eu,v5,5\n3,eu,null,\n"])
    cur, staging = _stage(items, "1,eu,v4,,4\n2,eu,v6,,6\n3,eu,v1,,1\n")
    cols = ["id", "region", "name", "qty", "version"]
    assert upsert(cur, staging, ITEMS, cols, ["region", "id"], version_column="version") == 2
    items.commit()
    assert _rows(items) == [("eu", 1, "v5", None, 5), ("eu", 2, "v6", None, 6), ("eu", 3, "v1", None, 1)]


def test_upsert_with_repeated_keys_keeps_the_last_row_or_the_newest_version(items):
    cols = ["id", "region", "name", "qty", "version"]
    cur, staging = _stage(items, "1,eu,first,,\n1,eu,second,,\n2,eu,a,,\n")
    assert upsert(cur, staging, ITEMS, cols, ["region", "id"]) == 2
    items.commit()
    assert _rows(items) == [("eu", 1, "second", None, None), ("eu", 2, "a", None, None)]
    cur, staging = _stage(items, "1,eu,newest,,9\n1,eu,older,,3\n")
    upsert(cur, staging, ITEMS, cols, ["region", "id"], version_column="version")
    items.commit()
    assert _rows(items)[0] == ("eu", 1, "newest", None, 9)


def test_upsert_skip_unchanged_leaves_equal_rows_alone(items):
    copy_in(items.cursor(), ITEMS, ["id", "region", "name", "qty"], [b"1,eu,same,1\n2,eu,old,2\n"])
    items.commit()
    cur, staging = _stage(items, "1,eu,same,1\n2,eu,new,2\n", ("id", "region", "name", "qty"))
    cur.execute("SELECT xmin::text FROM items WHERE id = 1")
    (before,) = cur.fetchone()
    assert upsert(cur, staging, ITEMS, ["id", "region", "name", "qty"], ["region", "id"], skip_unchanged=True) == 1
    cur.execute("SELECT xmin::text FROM items WHERE id = 1")
    assert cur.fetchone() == (before,)


def test_upsert_with_only_key_columns_does_nothing_on_conflict(items):
    copy_in(items.cursor(), ITEMS, ["id", "region", "name"], [b"1,eu,x\n"])
    with items.cursor() as cur:
        cur.execute("CREATE TABLE tags (tag text PRIMARY KEY)")
        cur.execute("INSERT INTO tags VALUES ('a')")
        staging = create_staging(cur, QualifiedName("public", "tags"), ["tag"])
        copy_in(cur, staging, ["tag"], [b"a\nb\n"])
        assert upsert(cur, staging, QualifiedName("public", "tags"), ["tag"], ["tag"]) == 1


def test_upsert_refuses_keys_outside_the_loaded_columns(items):
    with items.cursor() as cur, pytest.raises(ValueError, match="key columns"):
        upsert(cur, create_staging(cur, ITEMS, ["id"]), ITEMS, ["id"], ["region", "id"])


def test_identifiers_are_validated_before_any_sql(items):
    # Names PostgreSQL cannot take are refused before any SQL is built.
    for name in ["", "nul\x00byte", "x" * 64]:
        with items.cursor() as cur, pytest.raises(IdentifierError):
            copy_in(cur, ITEMS, [name], [b"1\n"])
    # Any other name is quoted by the driver as one identifier: SQL in it stays a (missing) name.
    with items.cursor() as cur, pytest.raises(errors.UndefinedColumn, match='DROP TABLE items; --" of'):
        copy_in(cur, ITEMS, ['id"; DROP TABLE items; --'], [b"1\n"])
    items.rollback()
    assert _rows(items, "SELECT count(*) FROM items") == [(0,)]


def test_columns_postgresql_accepts_are_quoted_by_the_driver(items):
    with items.cursor() as cur:
        cur.execute('ALTER TABLE items ADD COLUMN "prénom ✓" text')
        copy_in(cur, ITEMS, ["id", "region", "name", "prénom ✓"], ["1,eu,a,Zoé\n"], CopyFormat(format="csv"))
    assert _rows(items, 'SELECT id, "prénom ✓" FROM items') == [(1, "Zoé")]


def test_iter_stream_reads_in_requested_sizes():
    stream = IterStream([b"abc", "dé", b""])
    assert stream.read(2) == b"ab"
    assert stream.read(10) == b"c"
    assert stream.read(10) == "dé".encode()
    assert stream.read(10) == b""
    assert IterStream([b"x", b"yz"]).read() == b"xyz"


def test_copy_format_rejects_quote_in_text_format():
    with pytest.raises(ValueError, match="csv"):
        CopyFormat(format="text", quote="'")


def test_copy_error_line_is_only_a_hint_when_records_span_lines(items):
    # PostgreSQL counts newlines inside quoted fields, except in the first record (its line-ending
    # style is not known yet): the bad record below starts on physical line 6, PostgreSQL says 5.
    # This is why the file loader numbers lines itself and uses this value only as a hint.
    data = [b'1,eu,"two\nlines"\n2,eu,"three\nphysical\nlines"\nbad,eu,x\n']
    with items.cursor() as cur, pytest.raises(psycopg2.DataError) as caught:
        copy_in(cur, ITEMS, ["id", "region", "name"], data)
    items.rollback()
    assert copy_error_line(caught.value) == 5


# --- copy_rows / unique_keys (added for table sync) ------------------------------------------


def test_unique_keys_lists_primary_key_then_plain_unique_indexes(pg_conn):
    with pg_conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE u (a int, b int, c text, d int, PRIMARY KEY (b, a));"
            "CREATE UNIQUE INDEX u_c ON u (c);"
            "CREATE UNIQUE INDEX u_partial ON u (d) WHERE d > 0;"
            "CREATE UNIQUE INDEX u_expr ON u (lower(c));"
            "CREATE INDEX u_plain ON u (d);"
        )
        assert describe_table(cur, QualifiedName("public", "u")).unique_keys == [["b", "a"], ["c"]]


def test_describe_tables_answers_for_many_tables_at_once_and_leaves_out_missing_ones(items):
    with items.cursor() as cur:
        cur.execute('CREATE TABLE "Odd ""name""" (k text PRIMARY KEY, p point)')
        odd, missing = QualifiedName("public", 'Odd "name"'), QualifiedName("nope", "items")
        shapes = describe_tables(cur, [ITEMS, missing, odd, ITEMS])
        assert set(shapes) == {ITEMS, odd}
        assert shapes[ITEMS].columns == table_columns(cur, ITEMS)
        assert shapes[ITEMS].unique_keys == [["region", "id"]] and shapes[ITEMS].without_equality == []
        assert [c.name for c in shapes[odd].columns] == ["k", "p"]
        assert (shapes[odd].unique_keys, shapes[odd].without_equality) == ([["k"]], ["p"])
        assert describe_tables(cur, []) == {}
        with pytest.raises(TableNotFound, match=r"nope\.items does not exist"):
            describe_table(cur, missing)


def test_copy_rows_round_trips_python_values_exactly(pg_conn):
    import datetime as dt
    import uuid
    from decimal import Decimal

    rows = [
        (
            1,
            Decimal("12345678901234567890.123456"),
            1.5,
            True,
            "tab\there, newline\nthere, back\\slash, cr\r, ünï☃",
            b"\x00\\\xff\n",
            dt.datetime(2024, 1, 2, 3, 4, 5, 123456),
            dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            dt.date(2024, 2, 29),
            dt.time(23, 59, 59, 999999),
            uuid.UUID("12345678-1234-5678-1234-567812345678"),
            dt.timedelta(days=1, seconds=7, microseconds=5),
            {"k": ["v", 1]},
        ),
        (2, *([None] * 12)),
        (3, Decimal("-0.000001"), float("inf"), False, "", bytearray(b""), None, None, None, None, None, None, [1]),
    ]
    with pg_conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE v (id int, n numeric(38,6), f float8, b bool, s text, by bytea, ts timestamp, "
            "tz timestamptz, d date, t time, u uuid, i interval, j jsonb)"
        )
        columns = ["id", "n", "f", "b", "s", "by", "ts", "tz", "d", "t", "u", "i", "j"]
        assert copy_rows(cur, QualifiedName("public", "v"), columns, iter(rows), chunk_size=64) == 3
        cur.execute("SET TIME ZONE 'UTC'")
        cur.execute("SELECT * FROM v ORDER BY id")
        got = cur.fetchall()
    first = list(got[0])
    first[5] = bytes(first[5])
    assert first[:7] == list(rows[0][:7])
    assert first[7] == rows[0][7] and first[7].utcoffset() == dt.timedelta(0)
    first[10] = uuid.UUID(first[10])  # psycopg2 returns uuid as text unless told otherwise
    assert first[8:] == list(rows[0][8:])
    assert got[1] == (2, *([None] * 12))
    assert got[2][:5] == (3, Decimal("-0.000001"), float("inf"), False, "")
    assert bytes(got[2][5]) == b"" and got[2][12] == [1]


def test_copy_rows_error_in_a_value_names_the_line(pg_conn):
    with pg_conn.cursor() as cur:
        cur.execute("CREATE TABLE w (id int, n int)")
        with pytest.raises(psycopg2.DataError) as caught:
            copy_rows(cur, QualifiedName("public", "w"), ["id", "n"], [(1, 2), (2, "x")])
    assert copy_error_line(caught.value) == 2


def test_copy_text_batch_encodes_columns_of_one_mixed_or_null_type_alike():
    import datetime as dt

    rows = [
        (1, "plain", "a\tb", None, 1, "x"),
        (2, "text", None, dt.date(2024, 1, 2), "two", "dropped"),
    ]
    expected = "".join(copy_text_line(r[:5]) for r in rows)
    assert copy_text_batch(rows, width=5) == expected
    assert expected == "1\tplain\ta\\tb\t\\N\t1\n2\ttext\t\\N\t2024-01-02\ttwo\n"
    assert copy_text_batch([]) == ""


def test_copy_text_batch_fast_column_paths_match_the_value_encoder_with_and_without_nulls():
    import datetime as dt
    import uuid
    from decimal import Decimal

    # One column per C-level path (str clean / needing escapes, str()-kinds, isoformat kinds,
    # bool), each once without and once with NULLs; the batch must equal line-by-line encoding.
    full = [
        ("plain", "tab\there", 7, Decimal("1.50"), 2.5, uuid.UUID(int=5), dt.datetime(2024, 1, 2, 3, 4, 5, 6)),
        ("text", "back\\slash\r\n", -1, Decimal("-1E+3"), float("nan"), uuid.UUID(int=6), dt.datetime(2024, 1, 2)),
    ]
    extra = [
        (dt.date(2024, 2, 29), dt.time(1, 2, 3), True, dt.datetime(2024, 1, 2, tzinfo=dt.UTC)),
        (dt.date(2024, 3, 1), dt.time(0, 0), False, dt.datetime(2024, 1, 3, tzinfo=dt.UTC)),
    ]
    rows = [a + b for a, b in zip(full, extra, strict=True)]
    nulls = [tuple(None if i % 2 else v for i, v in enumerate(row)) for row in rows[:1]] + [
        tuple(v if i % 2 else None for i, v in enumerate(row)) for row in rows[1:]
    ]
    for batch in (rows, nulls, rows + nulls):
        assert copy_text_batch(batch) == "".join(copy_text_line(r) for r in batch)
    assert copy_text_batch(rows).splitlines()[1].split("\t")[:3] == ["text", "back\\\\slash\\r\\n", "-1"]
    # A str column holding the text "None" stays text; only a real None becomes \N.
    assert copy_text_batch([("None",), (None,)]) == "None\n\\N\n"
    assert copy_text_batch([(None,), (None,)]) == "\\N\n\\N\n"


def test_copy_encoded_copies_bytes_encoded_once_into_two_tables(pg_conn):

    data = copy_text_bytes([(1, "ünï\t☃", None), (2, "b", 2.5)], width=2)
    with pg_conn.cursor() as cur:
        cur.execute("CREATE TABLE e1 (id int, s text); CREATE TABLE e2 (id int, s text)")
        assert copy_encoded(cur, QualifiedName("public", "e1"), ["id", "s"], data) == 2
        assert copy_encoded(cur, QualifiedName("public", "e2"), ["id", "s"], data) == 2
        cur.execute("SELECT * FROM e1 UNION ALL SELECT * FROM e2 ORDER BY 1")
        assert cur.fetchall() == [(1, "ünï\t☃"), (1, "ünï\t☃"), (2, "b"), (2, "b")]


def test_upsert_skip_unchanged_compares_types_without_equality_as_text(pg_conn):
    shapes = QualifiedName("public", "shapes")
    with pg_conn.cursor() as cur:
        cur.execute(
            "CREATE DOMAIN doc AS json; CREATE TYPE mood AS ENUM ('ok', 'bad');"
            "CREATE TABLE shapes (id int PRIMARY KEY, name text, body doc, spot point, note xml, "
            "tags json[], m mood, n numeric)"
        )
        assert describe_table(cur, shapes).without_equality == ["body", "spot", "note", "tags", "m"]
        cols = ["id", "name", "body", "spot", "note", "tags", "m", "n"]
        copy_in(cur, shapes, cols, [b'1,a,"{""k"": 1}","(1,2)",<a/>,"{""{}""}",ok,1\n'])
        copy_in(cur, shapes, cols, [b'2,b,"{""k"": 2}","(3,4)",<b/>,"{""{}""}",ok,2\n'])
        cur.execute("SELECT id, xmin::text FROM shapes")
        before = dict(cur.fetchall())
        pg_conn.commit()
        staging = create_staging(cur, shapes, cols)
        copy_in(
            cur,
            staging,
            cols,
            [b'1,a,"{""k"": 1}","(1,2)",<a/>,"{""{}""}",ok,1\n2,b,"{""k"": 3}","(3,4)",<b/>,"{""{}""}",ok,2\n'],
        )
        text = describe_table(cur, shapes).without_equality
        assert upsert(cur, staging, shapes, cols, ["id"], skip_unchanged=True, compare_as_text=text) == 1
        cur.execute("SELECT id, xmin::text, body::text FROM shapes ORDER BY id")
        rows = cur.fetchall()
    pg_conn.commit()
    assert rows[0] == (1, before[1], '{"k": 1}')
    assert rows[1][1] != before[2] and rows[1][2] == '{"k": 3}'
