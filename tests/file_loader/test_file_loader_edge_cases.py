"""Inputs a reviewer found mishandled: PostgreSQL's `\\.` end-of-data line in CSV, thousands of bad
rows in one batch, corrupt gzip and CSV headers, constraint errors of the final upsert, and when a
busy or deferred message comes back."""

import gzip
import time

import psycopg2
import pytest

from file_loader import batch, loader, reader
from file_loader.load_csv import EndOfDataLine, fast_path_chunks
from file_loader.loader import ObjectBusy
from file_loader.routes import parse_routes
from pipeline_common.deadline import Deadline
from pipeline_common.ledger import ObjectId


def chunked(data, size):
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize(
    "data", [b"\\.\n1\n", b"1\n\\.\n2\n", b"1\r\n\\.\r\n2\r\n", b"1\r\\.\r2\r", b"1\n\\.", b"a\nb\n\\.\n"]
)
def test_end_of_data_line_is_seen_wherever_the_chunks_split_it(data):
    for size in range(1, len(data) + 1):
        with pytest.raises(EndOfDataLine):
            list(fast_path_chunks(chunked(data, size)))


@pytest.mark.parametrize("data", [b"1\n\\.x\n2\n", b"1\na\\.\n", b"1\n\\,\n", b"1\n.\\\n"])
def test_lines_merely_containing_backslash_dot_pass_untouched(data):
    # Cut right after `\.` a chunk may be taken for a marker (a detour by the careful path, no harm).
    assert b"".join(fast_path_chunks([data])) == data


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 1024 * 1024])
def test_csv_line_of_backslash_dot_is_data_and_the_rows_after_it_load(pipeline, monkeypatch, chunk):
    monkeypatch.setattr(reader, "S3_CHUNK", chunk)
    pipeline.execute("CREATE TABLE notes (v text)")
    pipeline.put_and_load("raw/notes/a.csv", "v\na\n\\.\nb\nc\n")
    assert pipeline.query("SELECT v FROM notes ORDER BY v") == [("\\.",), ("a",), ("b",), ("c",)]
    row = pipeline.ledger_row("raw/notes/a.csv")
    assert (row["status"], row["lines"], row["rows_loaded"], row["rows_rejected"]) == ("loaded", 4, 4, 0)


def test_backslash_dot_line_is_a_bad_row_where_more_columns_are_needed(pipeline):
    pipeline.put_and_load("quarantine/dot.csv", "id,customer\n1,a\n\\.\n2,b\n3,c\n")
    assert pipeline.query("SELECT id FROM orders ORDER BY id") == [(1,), (2,), (3,)]
    assert [(line, raw) for line, raw, _ in pipeline.rejects("quarantine/dot.csv")] == [(3, "\\.\n")]
    row = pipeline.ledger_row("quarantine/dot.csv")
    assert (row["status"], row["lines"], row["rows_loaded"], row["rows_rejected"]) == ("loaded", 4, 3, 1)

    pipeline.put_and_load("orders/dot.csv", "id,customer\n11,a\n\\.\n12,b\n")
    row = pipeline.ledger_row("orders/dot.csv")
    assert (row["status"], row["error_line"], row["lines"], row["rows_rejected"]) == ("rejected", 3, 3, 3)


BAD_ROWS = 2000  # one batch of 4,000 records; the recursive split died near 1,000


def many_bad_rows():
    # Good and bad rows alternate, so the careful path splits once per bad row in one batch.
    rows = [f"{2 * i + 1},good,1\n{2 * i + 2},bad,x\n" for i in range(BAD_ROWS)]
    return "id,customer,amount\n" + "".join(rows)


def test_thousands_of_bad_rows_in_one_batch_are_quarantined_with_their_lines(pipeline):
    pipeline.put_and_load("quarantine/many.csv", many_bad_rows())
    assert pipeline.query("SELECT count(*), min(id), max(id) FROM orders") == [(BAD_ROWS, 1, 2 * BAD_ROWS - 1)]
    rejects = pipeline.rejects("quarantine/many.csv")
    assert [line for line, _, _ in rejects] == [2 * i + 3 for i in range(BAD_ROWS)]
    row = pipeline.ledger_row("quarantine/many.csv")
    assert (row["status"], row["lines"], row["rows_loaded"], row["rows_rejected"]) == (
        "loaded",
        2 * BAD_ROWS,
        BAD_ROWS,
        BAD_ROWS,
    )


def test_thousands_of_bad_rows_reject_the_object_rather_than_fail_it(pipeline):
    result = pipeline.put_and_load("orders/many.csv", many_bad_rows())
    assert result["batchItemFailures"] == [] and result["objects"]["rejected"] == 1
    row = pipeline.ledger_row("orders/many.csv")
    assert (row["status"], row["error_line"], row["lines"], row["rows_rejected"]) == (
        "rejected",
        3,
        2 * BAD_ROWS,
        2 * BAD_ROWS,
    )
    assert row["error"].endswith(f"({BAD_ROWS} bad rows in all)")
    assert pipeline.query("SELECT count(*) FROM orders") == [(0,)]


def test_corrupt_gzip_rejects_the_object(pipeline):
    data = bytearray(gzip.compress(("id,customer\n" + "".join(f"{i},c{i}\n" for i in range(500))).encode()))
    for offset in range(12, 40):  # past the 10-byte header, into the deflate blocks
        data[offset] ^= 0xFF
    result = pipeline.put_and_load("orders/broken.csv.gz", bytes(data))
    assert result["batchItemFailures"] == [] and result["objects"]["rejected"] == 1
    row = pipeline.ledger_row("orders/broken.csv.gz")
    assert row["status"] == "rejected" and row["error"].startswith("gzip data is corrupt: "), row["error"]
    assert pipeline.query("SELECT count(*) FROM orders") == [(0,)]


def test_header_that_is_not_valid_csv_rejects_the_object_at_line_1(pipeline):
    result = pipeline.put_and_load("orders/header.csv", 'id,"customer"x\n1,a\n')
    assert result["batchItemFailures"] == [] and result["objects"]["rejected"] == 1
    row = pipeline.ledger_row("orders/header.csv")
    assert row["status"] == "rejected" and row["error_line"] == 1
    assert row["error"].startswith("header row is not valid CSV: "), row["error"]


@pytest.mark.parametrize(
    ("prefix", "fmt", "body"),
    [
        ("fk/", "csv", "id,customer_id\n1,1\n2,99\n"),
        ("fk-jsonl/", "jsonl", '{"id": 1, "customer_id": 1}\n{"id": 2, "customer_id": 99}\n'),
    ],
)
def test_upsert_refused_by_a_foreign_key_rejects_the_object(pipeline, prefix, fmt, body):
    pipeline.execute(
        "CREATE TABLE customers (id integer PRIMARY KEY); INSERT INTO customers VALUES (1);"
        "CREATE TABLE invoices (id integer PRIMARY KEY, customer_id integer REFERENCES customers)"
    )
    pipeline.routes = parse_routes(
        [{"prefix": prefix, "table": "public.invoices", "mode": "upsert", "format": fmt, "on_error": "quarantine"}]
    )
    key = f"{prefix}a.{fmt}"
    result = pipeline.put_and_load(key, body)
    assert result["batchItemFailures"] == [] and result["objects"]["rejected"] == 1
    row = pipeline.ledger_row(key)
    assert (row["status"], row["attempts"], row["lines"], row["rows_loaded"], row["rows_rejected"]) == (
        "rejected",
        1,
        2,
        0,
        2,
    )
    assert row["error"].startswith("upsert into public.invoices refused: ") and "foreign key" in row["error"]
    assert pipeline.query("SELECT count(*) FROM invoices") == [(0,)]


def held_messages(pipeline):
    """The queue's messages as the event source mapping holds them during an invocation: received,
    invisible for an hour, not deleted."""
    arn = pipeline.sqs.get_queue_attributes(QueueUrl=pipeline.queue_url, AttributeNames=["QueueArn"])
    messages = pipeline.sqs.receive_message(
        QueueUrl=pipeline.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=3600, WaitTimeSeconds=0
    )["Messages"]
    records = [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "eventSource": "aws:sqs",
            "eventSourceARN": arn["Attributes"]["QueueArn"],
        }
        for m in messages
    ]
    return {"Records": records}


def visible(pipeline):
    response = pipeline.sqs.receive_message(QueueUrl=pipeline.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [m["MessageId"] for m in response.get("Messages", [])]


@pytest.fixture
def retry_after_one_second(monkeypatch):
    # The real 30 s would make the test wait; what matters is that it is not the queue's timeout.
    monkeypatch.setattr(loader, "RETRY_SOON_SECONDS", 1)
    monkeypatch.setattr(batch, "RETRY_SOON_SECONDS", 1)


def test_queue_url_is_built_from_the_event_source_arn(pipeline):
    assert batch.queue_url(pipeline.sqs, "arn:aws:sqs:us-east-1:123456789012:loader") == pipeline.queue_url


def test_busy_object_message_is_visible_again_soon_not_after_the_visibility_timeout(pipeline, retry_after_one_second):
    etag = pipeline.put("orders/busy.csv", "id,customer\n1,a\n")["ETag"].strip('"')
    event = held_messages(pipeline)
    other = psycopg2.connect(pipeline.dsn)  # another invocation loading the same version
    try:
        with other.cursor() as cur:
            cur.execute(
                "SELECT pg_advisory_xact_lock(%s)",
                (pipeline.ledger.lock_key(ObjectId(pipeline.bucket, "orders/busy.csv", etag)).pg,),
            )
        result = pipeline.run(event, sqs=pipeline.sqs)
    finally:
        other.close()
    assert result["batchItemFailures"] == [{"itemIdentifier": event["Records"][0]["messageId"]}]
    assert visible(pipeline) == []
    time.sleep(1.5)
    assert visible(pipeline) == [event["Records"][0]["messageId"]]


def test_deferred_object_message_is_visible_again_soon(pipeline, retry_after_one_second):
    pipeline.put("orders/slow.csv", "id,customer\n" + "".join(f"{i},c\n" for i in range(2000)))
    event = held_messages(pipeline)
    pipeline.throughput.plain_bps = 1000  # as if this sandbox had measured a slow database
    result = pipeline.run(event, Deadline.in_seconds(10), sqs=pipeline.sqs)
    assert len(result["batchItemFailures"]) == 1 and pipeline.ledger_row("orders/slow.csv")["status"] == "deferred"
    assert visible(pipeline) == []
    time.sleep(1.5)
    assert visible(pipeline) == [event["Records"][0]["messageId"]]


def test_busy_message_waits_about_as_long_as_the_other_load_needs(pipeline):
    pipeline.throughput.plain_bps = 1000
    etag = pipeline.put("orders/big.csv", "id,customer\n1,a\n")["ETag"].strip('"')
    obj = ObjectId(pipeline.bucket, "orders/big.csv", etag)
    other = psycopg2.connect(pipeline.dsn)
    try:
        with other.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (pipeline.ledger.lock_key(obj).pg,))
        with pytest.raises(ObjectBusy) as busy:
            loader.load_object(
                db=pipeline.db,
                s3=pipeline.s3,
                obj=obj,
                route=pipeline.routes[0],
                ledger=pipeline.ledger,
                deadline=Deadline.in_seconds(3600),
                throughput=pipeline.throughput,
                size=100_000,  # 100 s at 1,000 bytes/s, x1.25
                etag=etag,
            )
    finally:
        other.close()
    assert busy.value.retry_after_seconds == pytest.approx(125)
