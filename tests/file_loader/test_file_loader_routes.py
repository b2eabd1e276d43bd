import gzip

import pytest

from file_loader.config import LoaderConfig
from file_loader.formats import FormatError, csv_records, decompressed, gunzip, split_csv_header, text_lines
from file_loader.routes import RouteError, match_route, parse_routes
from pipeline_common.config import ConfigError


def test_routes_parse_with_defaults_and_first_match_wins():
    routes = parse_routes(
        [
            {"prefix": "in/special/", "suffix": ".csv.gz", "table": "raw.special", "mode": "upsert"},
            {"prefix": "in/", "table": "raw.{name}", "format": "jsonl", "encoding": "latin-1"},
        ]
    )
    assert routes[0].on_error == "reject_object" and routes[0].format == "csv" and routes[0].delimiter == ","
    assert routes[1].encoding == "LATIN1" and routes[1].python_codec == "latin-1"
    assert match_route(routes, "in/special/a.csv.gz") is routes[0]
    assert match_route(routes, "in/special/a.csv") is routes[1]
    assert match_route(routes, "elsewhere/a.csv") is None
    assert str(routes[1].target("in/orders/2024/a.json")) == "raw.orders"


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ({"prefix": "a/"}, r"ROUTES must be a JSON list of routes, got dict"),
        ([{"table": "s.t"}], r"ROUTES\[0\]\.prefix: is required"),
        ([{"prefix": "a/", "table": "s.t"}, {"prefix": "b/"}], r"ROUTES\[1\]\.table: is required"),
        ([{"prefix": "a/", "table": "nodot"}], r"ROUTES\[0\]\.table: invalid table name"),
        ([{"prefix": "a/", "table": 's.t"; drop'}], r"ROUTES\[0\]\.table: invalid table name"),
        ([{"prefix": "a/", "table": "s.t", "mode": "merge"}], r"ROUTES\[0\]\.mode: must be one of append, upsert"),
        ([{"prefix": "a/", "table": "s.t", "format": "xml"}], r"ROUTES\[0\]\.format: must be one of csv, jsonl"),
        ([{"prefix": "a/", "table": "s.t", "on_error": "skip"}], r"ROUTES\[0\]\.on_error"),
        ([{"prefix": "a/", "table": "s.t", "delimiter": ";;"}], r"ROUTES\[0\]\.delimiter: must be a single"),
        ([{"prefix": "a/", "table": "s.t", "delimiter": '"'}], r"ROUTES\[0\]\.quote: must differ"),
        ([{"prefix": "a/", "table": "s.t", "encoding": "utf16"}], r"ROUTES\[0\]\.encoding: unsupported"),
        ([{"prefix": "a/", "table": "s.t", "key_columns": ["id"]}], r"ROUTES\[0\]\.key_columns: applies to"),
        ([{"prefix": "a/", "table": "s.t", "mode": "upsert", "key_columns": "id"}], r"key_columns: must be a list"),
        ([{"prefix": "a/", "table": "s.t", "colour": "red"}], r"ROUTES\[0\]: unknown field\(s\) colour"),
        ([{"prefix": 3, "table": "s.t"}], r"ROUTES\[0\]\.prefix: must be a string"),
        ([{"prefix": "a/", "table": "s.{name}{name}"}], r"ROUTES\[0\]\.table: only one"),
    ],
)
def test_route_errors_name_the_index_and_field(routes, message):
    with pytest.raises(ConfigError, match=message):
        parse_routes(routes)


def test_csv_options_nested_as_the_terraform_module_passes_them():
    (csv_route, json_route) = parse_routes(
        [
            {
                "prefix": "a/",
                "suffix": "",
                "table": "s.t",
                "format": "csv",
                "mode": "append",
                "key_columns": [],
                "on_error": "reject_object",
                "csv": {"delimiter": ";", "quote": "'", "null": "NULL", "encoding": "cp1252"},
            },
            {
                "prefix": "b/",
                "suffix": "",
                "table": "s.t",
                "format": "jsonl",
                "mode": "upsert",
                "key_columns": ["id"],
                "on_error": "quarantine",
                "csv": {"delimiter": ",", "quote": '"', "null": "", "encoding": "utf-8"},
            },
        ]
    )
    assert (csv_route.delimiter, csv_route.quote, csv_route.null, csv_route.encoding) == (";", "'", "NULL", "WIN1252")
    assert csv_route.matches("a/x.csv") and json_route.encoding == "UTF8" and json_route.key_columns == ("id",)
    with pytest.raises(ConfigError, match=r"ROUTES\[0\]\.csv\.delimiter: must be a single"):
        parse_routes([{"prefix": "a/", "table": "s.t", "csv": {"delimiter": "||"}}])
    with pytest.raises(ConfigError, match=r"ROUTES\[0\]\.csv: unknown field 'sep'"):
        parse_routes([{"prefix": "a/", "table": "s.t", "csv": {"sep": ";"}}])
    with pytest.raises(ConfigError, match=r"ROUTES\[0\]\.csv\.quote: conflicts"):
        parse_routes([{"prefix": "a/", "table": "s.t", "quote": "'", "csv": {"quote": "`"}}])


def test_name_placeholder_refuses_hostile_key_components():
    (route,) = parse_routes([{"prefix": "raw/", "table": "staging.{name}"}])
    for key in ('raw/x";drop table y;--/a.csv', "raw/a.csv", "raw/1abc/a.csv", "raw/Robert'); DROP/a.csv"):
        with pytest.raises(RouteError, match="gives no valid table"):
            route.target(key)


def test_config_from_env_names_the_variable():
    env = {"DB_HOST": "h", "DB_NAME": "d", "DB_SECRET_ARN": "arn", "SOURCE_BUCKET": "b", "ROUTES": "[]"}
    config = LoaderConfig.from_env(env)
    assert config.state_schema == "pipeline_state" and config.routes == []
    with pytest.raises(ConfigError, match="ROUTES is not valid JSON"):
        LoaderConfig.from_env(env | {"ROUTES": "[{"})
    with pytest.raises(ConfigError, match="SOURCE_BUCKET"):
        LoaderConfig.from_env({k: v for k, v in env.items() if k != "SOURCE_BUCKET"})
    with pytest.raises(ConfigError, match="STATE_SCHEMA"):
        LoaderConfig.from_env(env | {"STATE_SCHEMA": "bad-name"})


def test_gunzip_streams_concatenated_members_and_detects_truncation():
    data = gzip.compress(b"a,b\n" * 1000) + gzip.compress(b"1,2\n")
    pieces = [data[i : i + 100] for i in range(0, len(data), 100)]
    assert b"".join(decompressed(pieces, "auto")) == b"a,b\n" * 1000 + b"1,2\n"
    with pytest.raises(FormatError, match="truncated"):
        b"".join(gunzip([data[: len(data) // 3]]))
    with pytest.raises(FormatError, match="not gzip"):
        b"".join(decompressed([b"plain,text\n"], "gzip"))
    assert b"".join(decompressed([b"plain"], "none")) == b"plain"


def test_gunzip_output_is_bounded_for_highly_compressed_data():
    bomb = gzip.compress(b"\0" * 64_000_000)
    assert max(len(chunk) for chunk in gunzip([bomb])) <= 4 * 1024 * 1024


def test_csv_header_split_keeps_the_data_bytes_untouched():
    header, rest = split_csv_header(
        [b'\xef\xbb\xbfid,"cu', b'stomer"\r\n1,x\n', b"2,y"], delimiter=",", quote='"', codec="utf-8"
    )
    assert header is not None and header.columns == ["id", "customer"]
    assert b"".join(rest) == b"1,x\n2,y"
    assert split_csv_header([], delimiter=",", quote='"', codec="utf-8")[0] is None
    with pytest.raises(FormatError, match="header row"):
        split_csv_header([b"a" * 200], delimiter=",", quote='"', codec="utf-8", max_bytes=100)


def test_csv_records_carry_the_physical_line_they_start_on():
    text = 'h1,h2\n1,"a\nb\nc"\r\n2,x\n\n3,"q""uote"\n4,\xff\n'
    lines = text_lines([text.encode("latin-1")[:-3] + b"\xff\n"], "utf-8")
    records = list(csv_records(lines, delimiter=",", quote='"'))
    # Line 6 is blank: no record (issue 13), yet it still counts for the lines after it.
    assert [(r.line, r.undecodable) for r in records] == [
        (1, False),
        (2, False),
        (5, False),
        (7, False),
        (8, True),
    ]
    assert records[1].raw == '1,"a\nb\nc"\r\n'
