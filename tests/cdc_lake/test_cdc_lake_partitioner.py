"""The partitioner against moto's S3 -> SNS -> SQS wiring and a real PostgreSQL ledger: where each
DMS file lands in the lake, what the ledger says about it, and that replays change nothing."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from tests.cdc_lake.conftest import FOLDER, PREFIX, TS, Lake, dms_csv

COLUMNS = ["Op", TS, "order_id", "customer", "amount", "status", "dms_change_seq"]
HOUR = re.compile(r"year=\d{4}/month=\d{2}/day=\d{2}/hour=\d{2}")


def _orders(*rows: tuple) -> bytes:
    return dms_csv(COLUMNS, rows)


LOAD = _orders(
    ("I", "2026-03-01 10:00:00.000000", 1, "ann", "10.00", "new", 1),
    ("I", "2026-03-01 10:00:00.000000", 2, "bob", "20.00", "new", 2),
)
CHANGES = _orders(
    ("U", "2026-03-01 11:15:00.123456", 1, "ann", "11.00", "paid", 3),
    ("I", "2026-03-01 11:15:01.000000", 3, "cy", "5.00", "new", 4),
    ("D", "2026-03-01 11:20:00.000000", 2, None, None, None, 5),
)


def _lake_key(schema: str, table: str, name: str, moment: datetime) -> str:
    return f"{PREFIX}/{schema}/{table}/year={moment:%Y}/month={moment:%m}/day={moment:%d}/hour={moment:%H}/{name}"


def test_two_tables_load_files_in_the_same_hour_never_collide(lake: Lake) -> None:
    """The seed's loader kept only the file name: two tables' LOAD00000001.csv overwrote each other."""
    lines = dms_csv(["Op", TS, "order_id", "line", "sku"], [("I", "2026-03-01 10:00:00.000000", 1, 1, "x")])
    lake.put(f"{FOLDER}/sales/orders/LOAD00000001.csv", LOAD)
    lake.put(f"{FOLDER}/sales/order_lines/LOAD00000001.csv", lines)
    response = lake.run(lake.receive(), apply_tables=())
    assert response["batchItemFailures"] == [] and response["copies"] == {"copied": 2}

    keys = lake.lake_keys()
    assert len(keys) == 2
    by_table = {k.split("/")[2]: k for k in keys}
    assert by_table["orders"].startswith(f"{PREFIX}/sales/orders/") and by_table["orders"].endswith("/LOAD00000001.csv")
    assert HOUR.search(by_table["orders"]).group(0) == HOUR.search(by_table["order_lines"]).group(0)
    assert lake.lake_object(by_table["orders"]) == LOAD
    assert lake.lake_object(by_table["order_lines"]) == lines


def test_arrival_partition_is_the_event_time_and_the_ledger_describes_the_file(lake: Lake) -> None:
    before = datetime.now(UTC)
    lake.put_and_run(f"{FOLDER}/sales/orders/20260301-111500123.csv", CHANGES, apply_tables=())
    after = datetime.now(UTC)
    (key,) = lake.lake_keys()
    assert key in {_lake_key("sales", "orders", "20260301-111500123.csv", m) for m in (before, after)}

    row = lake.copies()[f"{FOLDER}/sales/orders/20260301-111500123.csv"]
    assert row["status"] == "loaded"
    assert (row["schema"], row["table"], row["kind"], row["load_number"]) == ("sales", "orders", "cdc", None)
    assert (row["target_bucket"], row["target_key"], row["size"]) == (lake.config.lake_bucket, key, len(CHANGES))
    assert (row["rows"], row["inserts"], row["updates"], row["deletes"]) == (3, 1, 1, 1)
    assert (row["min_commit_ts"], row["max_commit_ts"]) == ("2026-03-01 11:15:00.123456", "2026-03-01 11:20:00.000000")
    assert before <= datetime.fromisoformat(row["partition_time"]) <= after
    assert row["multipart"] is False


def test_commit_partition_is_the_first_rows_commit_time(lake: Lake) -> None:
    lake.put_and_run(f"{FOLDER}/sales/orders/20260301-111500123.csv", CHANGES, partition_by="commit", apply_tables=())
    assert lake.lake_keys() == [
        _lake_key("sales", "orders", "20260301-111500123.csv", datetime(2026, 3, 1, 11, tzinfo=UTC))
    ]


def test_commit_partition_reads_past_a_long_first_row_and_falls_back_to_arrival_when_it_cannot(lake: Lake) -> None:
    long_row = _orders(("I", "2025-12-31 23:59:59.999999", 1, "x" * 200_000, "1.00", "new", 1))
    lake.put_and_run(f"{FOLDER}/sales/orders/LOAD00000001.csv", long_row, partition_by="commit", apply_tables=())
    assert lake.lake_keys() == [
        _lake_key("sales", "orders", "LOAD00000001.csv", datetime(2025, 12, 31, 23, tzinfo=UTC))
    ]
    no_timestamp = dms_csv(["Op", "order_id"], [("I", 1)])
    lake.put_and_run(f"{FOLDER}/sales/other/LOAD00000001.csv", no_timestamp, partition_by="commit", apply_tables=())
    row = lake.copies()[f"{FOLDER}/sales/other/LOAD00000001.csv"]
    assert row["status"] == "loaded" and row["partition_time"] == row["event_time"]
    assert "no 'dms_commit_ts' column" in row["partition_note"] and "no 'dms_commit_ts' column" in row["count_error"]


def test_a_replay_changes_nothing(lake: Lake) -> None:
    lake.put(f"{FOLDER}/sales/orders/20260301-111500123.csv", CHANGES)
    event = lake.receive()
    first = lake.run(event, apply_tables=())
    assert len(lake.lake_keys()) == 1
    versions = lake.s3.list_object_versions(Bucket=lake.config.lake_bucket)["Versions"]
    second = lake.run(event, apply_tables=())
    assert first["copies"] == {"copied": 1} and second["copies"] == {"duplicate": 1}
    assert second["batchItemFailures"] == []
    assert lake.s3.list_object_versions(Bucket=lake.config.lake_bucket)["Versions"] == versions
    assert lake.query("SELECT count(*), max(attempts) FROM pipeline_state.cdc_lake_copies") == [(1, 1)]


def test_test_event_and_foreign_keys_are_skipped_not_failed(lake: Lake) -> None:
    """Saving the notification configuration sent an s3:TestEvent (still in the queue); objects
    outside the DMS layout are reported and left alone."""
    lake.put("elsewhere/file.csv", b"x\n")
    lake.put(f"{FOLDER}/too/deep/for/dms.csv", b"x\n")
    lake.put(f"{FOLDER}/orders.csv", b"x\n")
    event = lake.receive()
    assert any("s3:TestEvent" in r["body"] for r in event["Records"])
    response = lake.run(event)
    assert response["batchItemFailures"] == []
    assert response["copies"] == {"ignored": 3}
    assert lake.lake_keys() == []


def test_keys_are_url_decoded(lake: Lake) -> None:
    key = f"{FOLDER}/Sales Dept/Orders+Ünïcode/LOAD00000001.csv"
    lake.put_and_run(key, LOAD, apply_tables=())
    (lake_key,) = lake.lake_keys()
    assert lake_key.startswith(f"{PREFIX}/Sales Dept/Orders+Ünïcode/year=")
    assert lake.copies()[key]["status"] == "loaded"


def test_arrival_mode_costs_one_s3_call_per_file(lake: Lake) -> None:
    calls: list[str] = []
    lake.s3.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    for i in range(5):
        lake.put(f"{FOLDER}/sales/orders/20260301-11150{i}000.csv", CHANGES)
    event = lake.receive()
    calls.clear()
    lake.run(event, count_rows=False, apply_tables=())
    assert calls == ["CopyObject"] * 5
    calls.clear()
    lake.run(event, count_rows=False, apply_tables=())  # the replay asks the ledger only
    assert calls == []


def test_a_copy_above_the_multipart_threshold_goes_in_parts(lake: Lake) -> None:
    """CopyObject stops at 5 GB; above the threshold the managed copy uploads ranges of the source
    (threshold lowered to 5 MB here, the smallest part S3 accepts)."""
    body = _orders(*[("I", "2026-03-01 10:00:00.000000", i, "c" * 40, "1.00", "new", i) for i in range(200_000)])
    assert len(body) > 12 * 1024**2
    calls: list[str] = []
    lake.s3.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    lake.put(f"{FOLDER}/sales/orders/LOAD00000001.csv", body)
    event = lake.receive()
    calls.clear()
    threshold = 5 * 1024**2
    lake.run(event, multipart_threshold=threshold, multipart_chunk_size=threshold, count_rows=False, apply_tables=())
    assert "CopyObject" not in calls and "HeadObject" not in calls
    assert calls.count("UploadPartCopy") == -(-len(body) // threshold)
    (key,) = lake.lake_keys()
    assert lake.lake_object(key) == body
    assert lake.copies()[f"{FOLDER}/sales/orders/LOAD00000001.csv"]["multipart"] is True


def test_the_source_version_in_the_event_is_the_one_copied(lake: Lake) -> None:
    """moto's notifications carry no versionId; AWS's do: the event's version is pinned."""
    key = f"{FOLDER}/sales/orders/LOAD00000001.csv"
    first = lake.put(key, LOAD)
    lake.put(key, CHANGES)
    event = lake.receive()
    body = json.loads(event["Records"][-1]["body"])
    body["Records"][0]["s3"]["object"]["versionId"] = first["VersionId"]
    body["Records"][0]["s3"]["object"]["size"] = len(LOAD)
    event["Records"] = [{**event["Records"][-1], "body": json.dumps(body)}]
    lake.run(event, apply_tables=())
    (lake_key,) = lake.lake_keys()
    assert lake.lake_object(lake_key) == LOAD
    assert lake.copies()[key]["version_id"] == first["VersionId"]


def test_staging_object_is_deleted_only_after_a_verified_copy(lake: Lake) -> None:
    key = f"{FOLDER}/sales/orders/20260301-111500123.csv"
    put = lake.put(key, CHANGES)
    event = lake.receive()
    lake.run(event, delete_staged=True, apply_tables=())
    (lake_key,) = lake.lake_keys()
    assert lake.lake_object(lake_key) == CHANGES
    versions = lake.s3.list_object_versions(Bucket=lake.staging, Prefix=key).get("Versions", [])
    assert put["VersionId"] not in [v["VersionId"] for v in versions]
    # A replay (the first run stopped between the commit and the delete, say) finds nothing to do.
    again = lake.run(event, delete_staged=True, apply_tables=())
    assert again["batchItemFailures"] == [] and again["copies"] == {"duplicate": 1}


def test_a_lake_copy_of_the_wrong_size_keeps_the_staging_object(lake: Lake) -> None:
    key = f"{FOLDER}/sales/orders/20260301-111500123.csv"
    lake.put(key, CHANGES)
    event = lake.receive()
    lake.run(event, apply_tables=())
    (lake_key,) = lake.lake_keys()
    lake.s3.put_object(Bucket=lake.config.lake_bucket, Key=lake_key, Body=b"truncated")
    response = lake.run(event, delete_staged=True, apply_tables=())
    assert len(response["batchItemFailures"]) == 1
    assert lake.s3.get_object(Bucket=lake.staging, Key=key)["Body"].read() == CHANGES


def test_a_vanished_source_is_rejected_and_recorded(lake: Lake) -> None:
    key = f"{FOLDER}/sales/orders/20260301-111500123.csv"
    lake.put(key, CHANGES)
    event = lake.receive()
    for version in lake.s3.list_object_versions(Bucket=lake.staging, Prefix=key)["Versions"]:
        lake.s3.delete_object(Bucket=lake.staging, Key=key, VersionId=version["VersionId"])
    response = lake.run(event, count_rows=False, apply_tables=())
    assert response["batchItemFailures"] == [] and response["copies"] == {"rejected": 1}
    row = lake.copies()[key]
    assert row["status"] == "rejected" and "gone" in row["error"]
    assert lake.lake_keys() == []


def test_a_full_load_restart_is_detected_and_kept_apart(lake: Lake) -> None:
    """DMS loads the table again: LOAD00000001.csv arrives a second time. The ledger records the
    restart and the load's generation; within the same hour the second load's files carry it in
    their names, so the first load's files are still there."""
    first_load = [(f"{FOLDER}/sales/orders/LOAD0000000{n}.csv", LOAD + f"I,2026,{n}\n".encode()) for n in (1, 2)]
    for key, body in first_load:
        lake.put_and_run(key, body, count_rows=False, apply_tables=())
    reload = [(f"{FOLDER}/sales/orders/LOAD0000000{n}.csv", CHANGES + f"I,2026,{n}\n".encode()) for n in (1, 2)]
    for key, body in reload:
        response = lake.put_and_run(key, body, count_rows=False, apply_tables=())
        assert response["batchItemFailures"] == []
    assert response["full_load_restarts"] == [] and "copied" in response["copies"]

    rows = lake.query(
        "SELECT key, details->>'generation', details->>'restart', details->>'target_key' "
        "FROM pipeline_state.cdc_lake_copies ORDER BY updated_at"
    )
    assert [(k.rsplit("/", 1)[1], g, r) for k, g, r, _ in rows] == [
        ("LOAD00000001.csv", "1", "false"),
        ("LOAD00000002.csv", "1", "false"),
        ("LOAD00000001.csv", "2", "true"),
        ("LOAD00000002.csv", "2", "false"),
    ]
    names = sorted(k.rsplit("/", 1)[1] for k in lake.lake_keys())
    assert names == ["LOAD00000001.csv", "LOAD00000001.g2.csv", "LOAD00000002.csv", "LOAD00000002.g2.csv"]
    by_name = {k.rsplit("/", 1)[1]: k for k in lake.lake_keys()}
    assert lake.lake_object(by_name["LOAD00000001.csv"]) == first_load[0][1]
    assert lake.lake_object(by_name["LOAD00000001.g2.csv"]) == reload[0][1]


def test_a_reloads_later_file_before_its_first_file_waits_instead_of_overwriting(lake: Lake) -> None:
    lake.put_and_run(f"{FOLDER}/sales/orders/LOAD00000001.csv", LOAD, apply_tables=())
    lake.put_and_run(f"{FOLDER}/sales/orders/LOAD00000002.csv", LOAD + b"I,x,2\n", apply_tables=())
    # The reload's second file is processed before its first one.
    lake.put(f"{FOLDER}/sales/orders/LOAD00000001.csv", CHANGES)
    first_of_reload = lake.receive()
    lake.put(f"{FOLDER}/sales/orders/LOAD00000002.csv", CHANGES + b"I,y,2\n")
    early = lake.run(lake.receive(), apply_tables=())
    assert len(early["batchItemFailures"]) == 1
    assert lake.lake_object(next(k for k in lake.lake_keys() if k.endswith("/LOAD00000002.csv"))) == LOAD + b"I,x,2\n"
    assert lake.run(first_of_reload, apply_tables=())["full_load_restarts"] == [
        f"{FOLDER}/sales/orders/LOAD00000001.csv"
    ]


@pytest.mark.parametrize("name", ["LOAD00000001.csv", "20260301-111500123.csv"])
def test_gzip_files_are_counted_and_copied_as_they_are(lake: Lake, name: str) -> None:
    import gzip

    body = gzip.compress(CHANGES)
    key = f"{FOLDER}/sales/orders/{name}.gz"
    lake.put_and_run(key, body, partition_by="commit", apply_tables=())
    (lake_key,) = lake.lake_keys()
    assert lake_key.endswith(f"hour=11/{name}.gz") and lake.lake_object(lake_key) == body
    assert lake.copies()[key]["rows"] == 3
