"""What counts as a record (issue 13): line endings (LF, CRLF, CR), blank lines, JSON lines that
name no column, column names only quoted SQL can spell, and the loader's own check that every
record it found is loaded or rejected and that bytes without records are never `loaded`."""

import json

import boto3
import pytest

from file_loader import loader, reader
from file_loader.rejects import Stats
from pipeline_common.identifiers import IdentifierError

NOTES = "CREATE TABLE notes (id integer PRIMARY KEY, name text NOT NULL, note text)"


def notes(pipeline):
    return pipeline.query("SELECT id, name, note FROM notes ORDER BY id")


def counts(pipeline, key):
    row = pipeline.ledger_row(key)
    return row["status"], row["lines"], row["rows_loaded"], row["rows_rejected"]


# --- line endings -------------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1024 * 1024])
def test_every_line_ending_loads_every_row_wherever_the_chunks_split(pipeline, monkeypatch, ending, chunk):
    """CR-only files were recorded `loaded` with 0 rows: the header swallowed the data."""
    monkeypatch.setattr(reader, "S3_CHUNK", chunk)
    pipeline.execute(NOTES)
    body = ending.join(["id,name,note", "1,a,x", "2,b,y", ""])
    pipeline.put_and_load("strict/notes/a.csv", body)
    assert notes(pipeline) == [(1, "a", "x"), (2, "b", "y")]
    assert counts(pipeline, "strict/notes/a.csv") == ("loaded", 2, 2, 0)


def test_a_large_cr_only_file_loads_instead_of_failing_at_the_header(pipeline):
    pipeline.execute(NOTES)
    body = "id,name,note\r" + "".join(f"{i},name {i},note {i}\r" for i in range(1, 100_001))
    pipeline.put_and_load("strict/notes/big.csv", body)
    assert pipeline.query("SELECT count(*), max(id) FROM notes") == [(100_000, 100_000)]
    assert counts(pipeline, "strict/notes/big.csv") == ("loaded", 100_000, 100_000, 0)


def test_line_endings_inside_quotes_are_data_and_mixed_endings_load(pipeline):
    pipeline.execute(NOTES)
    body = 'id,name,note\r\n1,"a\rb","x\ny"\r\n2,b,y\n3,c,z\r4,d,w'
    pipeline.put_and_load("strict/notes/mixed.csv", body)
    assert notes(pipeline) == [(1, "a\rb", "x\ny"), (2, "b", "y"), (3, "c", "z"), (4, "d", "w")]
    assert counts(pipeline, "strict/notes/mixed.csv") == ("loaded", 4, 4, 0)


def test_bad_rows_of_a_cr_only_file_keep_their_physical_lines(pipeline):
    pipeline.execute(NOTES)
    body = "id,name,note\r1,a,x\rtwo,b,y\r3,c,z\r4,,w\r"
    pipeline.put_and_load("raw/notes/bad.csv", body)
    assert [r[0] for r in notes(pipeline)] == [1, 3]
    assert [(line, raw) for line, raw, _ in pipeline.rejects("raw/notes/bad.csv")] == [
        (3, "two,b,y\r"),
        (5, "4,,w\r"),
    ]
    assert counts(pipeline, "raw/notes/bad.csv") == ("loaded", 4, 2, 2)


# --- blank lines ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "id,name,note\n1,a,x\n2,b,y\n\n",
        "id,name,note\n\n1,a,x\n\n\n2,b,y\n",
        "id,name,note\r\n1,a,x\r\n\r\n2,b,y\r\n\r\n",
        "id,name,note\r1,a,x\r\r2,b,y\r\r",
    ],
    ids=["trailing", "between", "CRLF", "CR"],
)
def test_blank_csv_lines_are_skipped_not_rejected(pipeline, body):
    """`reject_object` used to reject the file: `missing data for column "name"`."""
    pipeline.execute(NOTES)
    pipeline.put_and_load("strict/notes/blank.csv", body)
    assert notes(pipeline) == [(1, "a", "x"), (2, "b", "y")]
    assert counts(pipeline, "strict/notes/blank.csv") == ("loaded", 2, 2, 0)


def test_blank_lines_are_not_null_rows_of_a_one_column_table(pipeline):
    pipeline.execute("CREATE TABLE words (w text)")
    pipeline.put_and_load("strict/words/a.csv", "w\na\n\nb\n")
    assert pipeline.query("SELECT w FROM words ORDER BY w") == [("a",), ("b",)]
    assert counts(pipeline, "strict/words/a.csv") == ("loaded", 2, 2, 0)


def test_csv_and_json_lines_count_blank_lines_alike_and_keep_physical_line_numbers(pipeline):
    pipeline.execute(NOTES)
    pipeline.put_and_load("raw/notes/a.csv", "id,name,note\n\n1,a,x\n\nx,b,y\n")
    pipeline.put_and_load("jraw/notes/a.jsonl", '\n{"id": 11, "name": "a"}\n\n{"id": "x", "name": "b"}\n\n')
    assert counts(pipeline, "raw/notes/a.csv") == counts(pipeline, "jraw/notes/a.jsonl") == ("loaded", 2, 1, 1)
    assert [line for line, _, _ in pipeline.rejects("raw/notes/a.csv")] == [5]
    assert [line for line, _, _ in pipeline.rejects("jraw/notes/a.jsonl")] == [4]


def test_a_line_of_spaces_is_a_record_not_a_blank_line(pipeline):
    pipeline.execute(NOTES)
    pipeline.put_and_load("raw/notes/spaces.csv", "id,name,note\n1,a,x\n   \n")
    assert [(line, raw) for line, raw, _ in pipeline.rejects("raw/notes/spaces.csv")] == [(3, "   \n")]
    assert counts(pipeline, "raw/notes/spaces.csv") == ("loaded", 2, 1, 1)


# --- JSON lines that carry nothing to load --------------------------------------------------------


def test_json_lines_of_empty_objects_are_rejected_with_their_lines(pipeline):
    """Three `{}` lines were `loaded` with 3 lines, 0 loaded, 0 rejected."""
    pipeline.execute("CREATE TABLE loose (a integer, b text)")
    pipeline.put_and_load("jstrict/loose/empty.jsonl", "{}\n{}\n{}\n")
    assert pipeline.query("SELECT count(*) FROM loose") == [(0,)]
    row = pipeline.ledger_row("jstrict/loose/empty.jsonl")
    assert counts(pipeline, "jstrict/loose/empty.jsonl") == ("rejected", 3, 0, 3)
    assert row["error"] == "line 1: no column of public.loose in the record (3 bad rows in all)"


def test_empty_objects_beside_a_keyed_line_are_rejected_not_loaded_as_null_rows(pipeline):
    pipeline.execute("CREATE TABLE loose (a integer, b text)")
    pipeline.put_and_load("jraw/loose/mixed.jsonl", '{}\n{"a": 1, "b": "x"}\n{}\n')
    assert pipeline.query("SELECT a, b FROM loose") == [(1, "x")]
    assert [(line, reason) for line, _, reason in pipeline.rejects("jraw/loose/mixed.jsonl")] == [
        (1, "no column of public.loose in the record"),
        (3, "no column of public.loose in the record"),
    ]
    assert counts(pipeline, "jraw/loose/mixed.jsonl") == ("loaded", 3, 1, 2)


def test_an_upsert_record_without_its_key_is_rejected(pipeline):
    pipeline.execute('CREATE TABLE people ("order id" integer UNIQUE, "prénom" text)')
    body = '{"order id": 1, "prénom": "Zoé"}\n{"prénom": "sans clé"}\n{"order id": null, "prénom": "nulle"}\n'
    pipeline.put_and_load("jpeople-upsert/a.jsonl", body)
    assert pipeline.query('SELECT "order id", "prénom" FROM people') == [(1, "Zoé")]
    assert [(line, reason) for line, _, reason in pipeline.rejects("jpeople-upsert/a.jsonl")] == [
        (2, "upsert key column(s) missing or null: order id"),
        (3, "upsert key column(s) missing or null: order id"),
    ]
    assert counts(pipeline, "jpeople-upsert/a.jsonl") == ("loaded", 3, 1, 2)


# --- column names only quoted SQL can spell ------------------------------------------------------


def test_columns_postgresql_accepts_load_through_csv_append_and_upsert(pipeline):
    """`IdentifierError: invalid column name 'prénom'` used to be retried until the DLQ."""
    pipeline.execute('CREATE TABLE people ("order id" integer UNIQUE, "prénom" text, "Ünïcode ✓" text)')
    result = pipeline.put_and_load("strict/people/a.csv", "order id,prénom,Ünïcode ✓\n1,Zoé,a\n2,Chloë,b\n")
    assert result["objects"] == {"loaded": 1, "failed_messages": 0}
    pipeline.put_and_load("people-upsert/b.csv", '"order id","prénom"\n2,Noël\n3,Anaïs\n')
    assert pipeline.query('SELECT "order id", "prénom", "Ünïcode ✓" FROM people ORDER BY 1') == [
        (1, "Zoé", "a"),
        (2, "Noël", "b"),
        (3, "Anaïs", None),
    ]
    pipeline.put_and_load("jstrict/people/c.jsonl", '{"order id": 4, "prénom": "Maël"}\n')
    assert pipeline.query("SELECT count(*) FROM people") == [(4,)]


def test_a_permanent_error_while_loading_rejects_the_object_instead_of_retrying(pipeline, monkeypatch):
    def refuse(*args, **kwargs):
        raise IdentifierError("invalid column name 'x': refused for the test")

    monkeypatch.setattr(loader, "load_csv", refuse)
    result = pipeline.put_and_load("orders/a.csv", "id,customer\n1,a\n")
    assert result["batchItemFailures"] == [] and result["objects"]["rejected"] == 1
    row = pipeline.ledger_row("orders/a.csv")
    assert (row["status"], row["attempts"], row["error"]) == (
        "rejected",
        1,
        "invalid column name 'x': refused for the test",
    )


# --- the loader's own check -----------------------------------------------------------------------


def test_counts_that_do_not_add_up_fail_the_object_and_load_nothing(pipeline, monkeypatch):
    real = loader.load_csv

    def miscounting(*args, **kwargs) -> Stats:
        stats = real(*args, **kwargs)  # the rows really went in, inside the load's savepoint
        stats.loaded -= 1
        return stats

    monkeypatch.setattr(loader, "load_csv", miscounting)
    result = pipeline.put_and_load("orders/a.csv", "id,customer\n1,a\n2,b\n")
    assert result["batchItemFailures"] == [] and result["objects"]["rejected"] == 1
    assert pipeline.query("SELECT count(*) FROM orders") == [(0,)]
    row = pipeline.ledger_row("orders/a.csv")
    assert counts(pipeline, "orders/a.csv") == ("rejected", 2, 0, 2)
    assert row["error"] == (
        "loader check failed: 2 records found but 1 loaded and 0 rejected; nothing was loaded "
        "(a loader defect: please report it)"
    )


@pytest.mark.parametrize(
    ("key", "body", "held"),
    [
        ("events/blank.jsonl", "\n\n \n", "only blank lines"),
        ("strict/notes/blank.csv", "id,name,note\n\n\n", "a header row and no record"),
    ],
)
def test_bytes_without_records_are_never_loaded(pipeline, key, body, held):
    pipeline.execute(NOTES)
    pipeline.put_and_load(key, body)
    row = pipeline.ledger_row(key)
    assert counts(pipeline, key) == ("rejected", 0, 0, 0)
    assert row["error"] == f"no records: the object's {len(body)} bytes hold {held}"


# --- S3 notifications through EventBridge ---------------------------------------------------------


def test_objects_announced_through_eventbridge_load_once(pipeline):
    """S3 -> EventBridge rule -> the loader's queue, with keys EventBridge does not URL-encode."""
    events = boto3.client("events", region_name="us-east-1")
    arn = pipeline.sqs.get_queue_attributes(QueueUrl=pipeline.queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    pattern = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [pipeline.bucket]}, "object": {"key": [{"prefix": "orders/"}]}},
    }
    events.put_rule(Name="landing", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="landing", Targets=[{"Id": "loader", "Arn": arn}])
    pipeline.s3.put_bucket_notification_configuration(
        Bucket=pipeline.bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    result = pipeline.put_and_load("orders/day 1+2.csv", "id,customer\n1,a\n2,b\n")
    assert result["objects"] == {"loaded": 1, "failed_messages": 0}
    assert pipeline.query("SELECT id FROM orders ORDER BY id") == [(1,), (2,)]
    assert counts(pipeline, "orders/day 1+2.csv") == ("loaded", 2, 2, 0)
