"""Happy paths through the real S3 -> SNS -> SQS wiring in moto into real PostgreSQL."""

import gzip
import json
from decimal import Decimal

import pytest


def orders(pipeline):
    return pipeline.query("SELECT id, customer, amount, note FROM orders ORDER BY id")


def test_csv_append_with_quoting_embedded_newlines_and_utf8(pipeline):
    body = (
        "id,customer,amount,note\n"
        '1,"Smith, Ann",10.50,"said ""hi"""\n'
        '2,Zoë 🚀,,"two\nlines"\n'
        '3,"東京",0,""\n'
        "4,plain,1,\n"
    )
    result = pipeline.put_and_load("orders/2024/batch.csv", body)
    assert result["batchItemFailures"] == [] and result["objects"]["loaded"] == 1
    assert orders(pipeline) == [
        (1, "Smith, Ann", Decimal("10.50"), 'said "hi"'),
        (2, "Zoë 🚀", None, "two\nlines"),
        (3, "東京", Decimal("0.00"), ""),
        (4, "plain", Decimal("1.00"), None),
    ]
    row = pipeline.ledger_row("orders/2024/batch.csv")
    assert (row["status"], row["lines"], row["rows_loaded"], row["rows_rejected"]) == ("loaded", 4, 4, 0)
    assert row["bytes"] == len(body.encode()) and row["version"]


def test_header_names_match_case_insensitively_and_in_any_order(pipeline):
    pipeline.put_and_load("orders/h.csv", "Customer,ID\nann,7\n")
    assert orders(pipeline) == [(7, "ann", None, None)]


def test_an_empty_object_loads_zero_rows(pipeline):
    result = pipeline.put_and_load("orders/empty.csv", "")
    assert result["objects"] == {"loaded": 1, "failed_messages": 0}
    row = pipeline.ledger_row("orders/empty.csv")
    assert (row["status"], row["lines"], row["rows_loaded"], row["rows_rejected"]) == ("loaded", 0, 0, 0)


@pytest.mark.parametrize("body", ["id,customer\n", "id,customer", "id,customer\r\n\r\n", "id,customer\r"])
def test_a_header_without_records_is_rejected_not_recorded_as_loaded(pipeline, body):
    """Bytes that hold no record are never `loaded` (issue 13): the ledger says what was there."""
    result = pipeline.put_and_load("orders/empty.csv", body)
    assert result["objects"] == {"rejected": 1, "failed_messages": 0}
    row = pipeline.ledger_row("orders/empty.csv")
    assert (row["status"], row["lines"], row["rows_loaded"], row["rows_rejected"]) == ("rejected", 0, 0, 0)
    assert row["error"] == f"no records: the object's {len(body)} bytes hold a header row and no record"


def test_gzip_by_suffix_and_by_content_encoding(pipeline):
    pipeline.put("orders/a.csv.gz", gzip.compress(b"id,customer\n1,a\n2,b\n"))
    pipeline.put("orders/b.csv", gzip.compress(b"id,customer\n3,c\n"), ContentEncoding="gzip")
    result = pipeline.run(pipeline.receive(expect=2))
    assert result["objects"]["loaded"] == 2
    assert [r[0] for r in orders(pipeline)] == [1, 2, 3]


def test_csv_options_delimiter_quote_null_and_latin1(pipeline):
    pipeline.put("semi/x.txt", "id;customer;note\n1;'a;b';NULL\n2;c;''\n")
    pipeline.put("latin/x.csv", "id,customer\n3,Müller\n".encode("latin-1"))
    assert pipeline.run(pipeline.receive(expect=2))["objects"]["loaded"] == 2
    assert orders(pipeline) == [(1, "a;b", None, None), (2, "c", None, ""), (3, "Müller", None, None)]


@pytest.mark.parametrize("key", ["orders/with space.csv", "orders/plus+sign.csv", "orders/ünï cödé/€.csv"])
def test_url_encoded_keys_are_decoded(pipeline, key):
    result = pipeline.put_and_load(key, "id,customer\n1,a\n")
    assert result["objects"]["loaded"] == 1
    assert pipeline.ledger_row(key)["status"] == "loaded"


def test_csv_upsert_updates_existing_rows_and_last_repeated_key_wins(pipeline):
    pipeline.put_and_load("orders/base.csv", "id,customer,amount,note\n1,ann,1,keep\n2,bob,2,keep\n")
    pipeline.put_and_load("upsert/change.csv", "id,customer,amount\n2,bobby,20\n3,cat,3\n3,cathy,30\n")
    assert orders(pipeline) == [
        (1, "ann", Decimal("1.00"), "keep"),
        (2, "bobby", Decimal("20.00"), "keep"),
        (3, "cathy", Decimal("30.00"), None),
    ]
    row = pipeline.ledger_row("upsert/change.csv")
    assert (row["lines"], row["rows_loaded"], row["rows_rejected"]) == (3, 3, 0)


def test_jsonl_append_and_upsert(pipeline):
    lines = [
        {"id": 1, "kind": "click", "payload": {"x": [1, 2]}, "happened": "2024-05-01T10:00:00Z", "flag": True},
        {"id": 2, "kind": "view"},
    ]
    body = "\n".join(json.dumps(line) for line in lines) + "\n\n"
    pipeline.put_and_load("events/a.jsonl", body)
    pipeline.put_and_load("events-upsert/b.jsonl.gz", gzip.compress(b'{"id": 2, "kind": "VIEW", "flag": false}\n'))
    rows = pipeline.query("SELECT id, kind, payload, flag, happened IS NOT NULL FROM events ORDER BY id")
    assert rows == [(1, "click", {"x": [1, 2]}, True, True), (2, "VIEW", None, False, False)]
    row = pipeline.ledger_row("events/a.jsonl")
    assert (row["lines"], row["rows_loaded"], row["rows_rejected"]) == (2, 2, 0)


def test_unrouted_objects_are_reported_and_left_alone(pipeline):
    pipeline.put("elsewhere/x.csv", "id,customer\n1,a\n")
    pipeline.put("orders/y.csv", "id,customer\n2,b\n")
    result = pipeline.run(pipeline.receive(expect=2))
    assert result["batchItemFailures"] == []
    assert result["objects"] == {"unrouted": 1, "loaded": 1, "failed_messages": 0}
    assert result["unrouted_keys"] == [f"s3://{pipeline.bucket}/elsewhere/x.csv"]
    assert pipeline.query("SELECT key FROM pipeline_state.file_loads") == [("orders/y.csv",)]


def test_file_columns_that_do_not_fit_the_table_reject_the_object_clearly(pipeline):
    pipeline.put_and_load("orders/cols.csv", "id,colour,shape\n1,red,round\n")
    row = pipeline.ledger_row("orders/cols.csv")
    assert row["status"] == "rejected" and row["error_line"] == 1
    assert "columns not in table public.orders: 'colour', 'shape'" in row["error"]
    assert "required columns of public.orders missing from the file: customer" in row["error"]
    assert orders(pipeline) == []


def test_state_tables_are_created_in_the_configured_schema_concurrently(pipeline):
    import threading

    from file_loader.ledger import file_ledger

    errors = []

    def ensure():
        try:
            import psycopg2

            conn = psycopg2.connect(pipeline.dsn)
            file_ledger("custom_state").ensure(conn)
            conn.close()
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=ensure) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    tables = pipeline.query("SELECT tablename FROM pg_tables WHERE schemaname = 'custom_state' ORDER BY 1")
    assert tables == [("file_loads",), ("file_rejects",)]
