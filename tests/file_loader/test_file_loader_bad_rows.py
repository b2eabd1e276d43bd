"""Malformed rows in both error modes, missing tables, hostile keys, and the Lambda handler."""

import json

import pytest

from file_loader import handler as handler_module

# Physical lines: 1 header, 2-3 a record with a quoted newline, 4 bad number, 5 good,
# 6-8 a three-line record, 9 missing NOT NULL value, 10 too many fields, 11 good.
CSV = (
    "id,customer,amount\n"
    '1,"multi\nline",1\n'
    "2,bad,notanumber\n"
    "3,good,3\n"
    '4,"three\nphysical\nlines",4\n'
    "5,,5\n"
    "6,extra,6,field\n"
    "7,good,7\n"
)


def test_reject_object_loads_nothing_and_names_the_first_bad_physical_line(pipeline):
    pipeline.put_and_load("orders/bad.csv", CSV)
    assert pipeline.query("SELECT count(*) FROM orders") == [(0,)]
    row = pipeline.ledger_row("orders/bad.csv")
    assert row["status"] == "rejected" and row["error_line"] == 4
    assert (
        row["error"]
        == 'line 4: invalid input syntax for type numeric: "notanumber" (column amount) (3 bad rows in all)'
    )
    assert (row["lines"], row["rows_loaded"], row["rows_rejected"]) == (7, 0, 7)
    assert pipeline.rejects("orders/bad.csv") == []


def test_quarantine_loads_good_rows_and_keeps_bad_ones_with_line_raw_and_reason(pipeline):
    pipeline.put_and_load("quarantine/bad.csv", CSV)
    assert [r[0] for r in pipeline.query("SELECT id FROM orders ORDER BY id")] == [1, 3, 4, 7]
    rejects = pipeline.rejects("quarantine/bad.csv")
    assert [(line, raw) for line, raw, _ in rejects] == [
        (4, "2,bad,notanumber\n"),
        (9, "5,,5\n"),
        (10, "6,extra,6,field\n"),
    ]
    reasons = [reason for _, _, reason in rejects]
    assert reasons[0] == 'invalid input syntax for type numeric: "notanumber" (column amount)'
    assert 'null value in column "customer"' in reasons[1]
    assert reasons[2] == "extra data after last expected column"
    row = pipeline.ledger_row("quarantine/bad.csv")
    assert (row["status"], row["lines"], row["rows_loaded"], row["rows_rejected"]) == ("loaded", 7, 4, 3)
    assert row["rows_loaded"] + row["rows_rejected"] == row["lines"]


def test_quarantine_rejects_undecodable_bytes_and_unterminated_quotes(pipeline):
    body = b'id,customer\n1,ok\n2,caf\xe9\n3,"never closed\n4,lost\n'
    pipeline.put_and_load("quarantine/enc.csv", body)
    assert pipeline.query("SELECT id FROM orders") == [(1,)]
    rejects = pipeline.rejects("quarantine/enc.csv")
    assert rejects[0] == (3, "2,caf\\xe9\n", "invalid byte sequence for encoding UTF8")
    assert rejects[1][0] == 4 and "unterminated CSV quoted field" in rejects[1][2]
    row = pipeline.ledger_row("quarantine/enc.csv")
    assert row["rows_loaded"] + row["rows_rejected"] == row["lines"] == 3


def test_quarantine_in_upsert_mode(pipeline):
    from file_loader.routes import parse_routes

    pipeline.routes = parse_routes(
        [{"prefix": "uq/", "table": "public.orders", "mode": "upsert", "on_error": "quarantine"}]
    )
    pipeline.put_and_load("uq/a.csv", "id,customer,amount\n1,a,1\n2,b,x\n1,a2,2\n")
    assert pipeline.query("SELECT id, customer FROM orders") == [(1, "a2")]
    assert [r[0] for r in pipeline.rejects("uq/a.csv")] == [3]


JSONL = (
    '{"id": 1, "kind": "ok"}\n'
    "not json\n"
    "\n"
    '{"id": 2, "kind": "ok", "colour": "red"}\n'
    "[1, 2]\n"
    '{"id": 3, "kind": "bad time", "happened": "not a time"}\n'
    '{"id": 4}\n'
    '{"id": 5, "kind": "ok"}\n'
)


def test_jsonl_quarantine_with_exact_lines(pipeline):
    pipeline.put_and_load("events-q/a.jsonl", JSONL)
    assert pipeline.query("SELECT id FROM events ORDER BY id") == [(1,), (5,)]
    rejects = pipeline.rejects("events-q/a.jsonl")
    assert [line for line, _, _ in rejects] == [2, 4, 5, 6, 7]
    reasons = dict((line, reason) for line, _, reason in rejects)
    assert reasons[2].startswith("invalid JSON: ")
    assert reasons[4] == "keys not in table public.events: colour"
    assert reasons[5] == "expected a JSON object, got list"
    assert "invalid input syntax for type timestamp with time zone" in reasons[6]
    assert 'null value in column "kind"' in reasons[7]
    row = pipeline.ledger_row("events-q/a.jsonl")
    assert (row["lines"], row["rows_loaded"], row["rows_rejected"]) == (7, 2, 5)


def test_jsonl_reject_object(pipeline):
    pipeline.put_and_load("events/a.jsonl", JSONL)
    row = pipeline.ledger_row("events/a.jsonl")
    assert row["status"] == "rejected" and row["error_line"] == 2 and row["error"].startswith("line 2: invalid JSON")
    assert (row["lines"], row["rows_loaded"], row["rows_rejected"]) == (7, 0, 7)
    assert pipeline.query("SELECT count(*) FROM events") == [(0,)]


def test_route_to_a_missing_table_fails_the_message_with_a_clear_error(pipeline):
    result = pipeline.put_and_load("missing/a.csv", "id\n1\n")
    assert len(result["batchItemFailures"]) == 1
    row = pipeline.ledger_row("missing/a.csv")
    assert row["status"] == "failed" and row["error"] == "TableNotFound: table public.no_such_table does not exist"


@pytest.mark.parametrize(
    "component", ['orders";DROP TABLE orders;--', "orders where 1=1", "pg_catalog.pg_authid", "1orders"]
)
def test_key_trying_sql_injection_in_the_table_name_is_refused_before_any_sql(pipeline, component):
    pipeline.execute("SELECT pg_stat_reset()")
    key = f"raw/{component}/x.csv"
    result = pipeline.put_and_load(key, "id,customer\n1,a\n")
    assert result["batchItemFailures"] == [] and result["objects"]["rejected"] == 1
    row = pipeline.ledger_row(key)
    assert row["status"] == "rejected" and "gives no valid table" in row["error"] and row["target_table"] is None
    assert pipeline.query("SELECT count(*) FROM orders") == [(0,)]
    assert pipeline.query("SELECT to_regclass('public.orders') IS NOT NULL") == [(True,)]


def test_handler_end_to_end_with_environment_configuration(pipeline, pg_server, monkeypatch, lambda_context):
    settings = pipeline.db.settings
    monkeypatch.setenv("DB_HOST", settings.host)
    monkeypatch.setenv("DB_PORT", str(settings.port))
    monkeypatch.setenv("DB_NAME", settings.database)
    monkeypatch.setenv("DB_SECRET_ARN", settings.secret_arn)
    monkeypatch.setenv("SOURCE_BUCKET", pipeline.bucket)
    monkeypatch.setenv("ROUTES", json.dumps([{"prefix": "orders/", "table": "public.orders"}]))
    handler_module.sandbox.reset()
    try:
        pipeline.put("orders/a b.csv", "id,customer\n1,a\n")
        pipeline.put("nowhere/b.csv", "id,customer\n2,b\n")
        result = handler_module.handler(pipeline.receive(expect=2), lambda_context(timeout_seconds=60))
        assert result["batchItemFailures"] == []
        assert result["objects"] == {"loaded": 1, "unrouted": 1, "failed_messages": 0}
        box = handler_module.sandbox
        assert box.connection("db", box.settings.database).opened == 1
    finally:
        handler_module.sandbox.reset()
    assert pipeline.query("SELECT id FROM orders") == [(1,)]
