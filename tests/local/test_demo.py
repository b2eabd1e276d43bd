"""`make demo` in its reduced form: the real packaging, moto server, PostgreSQL, `terraform apply` of
environments/local.tfvars and event router, with small sample data. The report's numbers are
checked against what the databases and buckets hold, counted here independently."""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts import backfill_example as example
from scripts.demo import environment, processes
from scripts.demo.pipelines import PIPELINES, drive_all, prepare_all
from scripts.demo.pipelines.schema_migrations import MIGRATIONS
from scripts.demo.report import format_report

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run() -> Iterator[tuple[environment.Demo, dict[str, Any]]]:
    # Under build/ like the demo's own run directory: the database servers run as their own users
    # and cannot enter pytest's private temporary directories.
    run_dir = processes.REPO_ROOT / "build" / "demo-test"
    with environment.demo_environment(run_dir, small=True, pipelines=PIPELINES, before_apply=prepare_all) as demo:
        reports = {report.pipeline: report for report in drive_all(demo)}
        print(format_report(list(reports.values()), demo, 0.0))
        yield demo, reports
    assert not any(run_dir.glob("pg-*")), "the demo left a database server behind"


def query(demo: environment.Demo, database: str, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(demo.databases.connect(database)) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def scalar(demo: environment.Demo, database: str, sql: str) -> Any:
    return query(demo, database, sql)[0][0]


def test_every_landed_pipeline_is_deployed_and_reported(demo_run) -> None:
    demo, reports = demo_run
    landed = [name for name in PIPELINES if (processes.REPO_ROOT / "lambda_src" / name / "handler.py").exists()]
    assert sorted(demo.function_spec(name).handler.split(".")[0] for name in landed) == sorted(landed)
    assert len(reports) == len(landed)
    assert all(report.ok for report in reports.values()), [r for r in reports.values() if not r.ok]
    for name, stats in demo.router.stats.items():
        assert stats.errors == 0, f"{name} had {stats.errors} failed invocations (see the demo logs)"


def test_schema_migrations_report_matches_the_databases(demo_run) -> None:
    demo, reports = demo_run
    if "schema migrations" not in reports:
        pytest.fail("schema_migrations has landed but the demo did not drive it")
    numbers = reports["schema migrations"].numbers
    environment = demo.function_env("schema_migrations")
    database = environment["DB_NAME"]
    objects = demo.client("s3").list_objects_v2(Bucket=environment["MIGRATIONS_BUCKET"])["Contents"]
    assert len(objects) == numbers["files"] == len(MIGRATIONS)
    for name, count in numbers["applied"].items():
        assert scalar(demo, name, "SELECT count(*) FROM _yoyo_migration") == count
    assert sum(numbers["applied"].values()) == numbers["files"]
    assert scalar(demo, "analytics", "SELECT count(*) FROM daily_sales") == 0
    staging = query(demo, database, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'staging'")
    assert sorted(row[0] for row in staging) == ["customers", "orders", "sales"]
    assert numbers["staging_tables"] == 3


def test_file_loader_report_matches_the_bucket_and_the_tables(demo_run) -> None:
    demo, reports = demo_run
    numbers = reports["file loader"].numbers
    environment = demo.function_env("file_loader")
    database = environment["DB_NAME"]
    s3 = demo.client("s3")
    bucket = environment["SOURCE_BUCKET"]
    sales_rows = 0
    for item in s3.list_objects_v2(Bucket=bucket, Prefix="sales/")["Contents"]:
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
        sales_rows += len(list(csv.reader(io.StringIO(body)))) - 1
    assert sales_rows == numbers["sales_sent"] == numbers["sales_loaded"]
    assert scalar(demo, database, "SELECT count(*) FROM staging.sales") == sales_rows
    assert scalar(demo, database, "SELECT count(DISTINCT sale_id) FROM staging.sales") == sales_rows
    assert scalar(demo, database, "SELECT count(*) FROM staging.customers") == numbers["customers_loaded"]
    assert numbers["customers_loaded"] == numbers["customers_expected"]
    assert (
        scalar(demo, database, "SELECT count(*) FROM staging.customers WHERE name LIKE '%v2'")
        == numbers["customers_updated"]
    )
    # Every uploaded object has exactly one ledger entry, and the malformed line was quarantined.
    objects = len(s3.list_objects_v2(Bucket=bucket)["Contents"])
    ledger = query(demo, database, "SELECT status, count(*) FROM pipeline_state.file_loads GROUP BY status")
    assert dict(ledger) == {"loaded": objects}
    assert scalar(demo, database, "SELECT count(*) FROM pipeline_state.file_rejects") == 1
    assert numbers["dead_letters"] == 0


def test_table_sync_report_matches_source_and_target(demo_run) -> None:
    demo, reports = demo_run
    numbers = reports["table sync"].numbers
    environment = demo.function_env("table_sync")
    source_db, target_db = environment["SOURCE_DB_NAME"], environment["DB_NAME"]
    source_rows = scalar(demo, source_db, "SELECT count(*) FROM public.orders")
    assert source_rows == numbers["source_rows"] + numbers["added"] == numbers["total_rows"]
    assert scalar(demo, target_db, "SELECT count(*) FROM staging.orders") == source_rows
    assert numbers["first_run_rows"] == numbers["source_rows"]
    checksum = "SELECT sum(amount), count(*) FILTER (WHERE status = 'shipped') FROM {}"
    assert query(demo, target_db, checksum.format("staging.orders")) == query(
        demo, source_db, checksum.format("public.orders")
    )
    assert numbers["shipped"] == numbers["changed"]


def test_backfill_report_matches_the_database(demo_run) -> None:
    demo, reports = demo_run
    numbers = reports["backfill"].numbers
    database = demo.function_env("backfill")["BACKFILL_DB_NAME"]
    final = "o.status IN ('uncollected', 'cancelled', 'dispensed')"
    with contextlib.closing(demo.databases.mariadb.connect(database)) as conn, conn.cursor() as cur:

        def count(sql: str) -> int:
            cur.execute(sql)
            return int(cur.fetchone()[0])

        assert count("SELECT COUNT(*) FROM orders") == numbers["orders"]
        assert count(f"SELECT COUNT(*) FROM orders o WHERE {final}") == numbers["order_archive"] > 0
        items = count(f"SELECT COUNT(*) FROM orders o JOIN order_items i ON i.order_id = o.id WHERE {final}")
        assert items == numbers["order_item_archive"]
        cur.execute("SELECT rows_done, rows_written, finished_at FROM backfill_jobs WHERE job = 'order_archive'")
        rows_done, rows_written, finished_at = cur.fetchone()
    assert rows_done == numbers["orders"] and finished_at is not None
    assert rows_written == numbers["rows_written"] == sum(numbers[t] for t in example.TARGET_TABLES)
    assert numbers["mismatched_ranges"] == 0


def test_dynamodb_migration_target_is_the_reshaped_source(demo_run) -> None:
    """Read both tables independently of verify: the target holds exactly the source's items (those
    inserted, updated and not deleted while the copy ran), each reshaped as local.tfvars says."""
    demo, reports = demo_run
    numbers = reports["dynamodb migration"].numbers
    environment = demo.function_env("dynamodb_migration")
    client = demo.client("dynamodb")

    def items(table: str) -> dict[tuple[str, str], dict[str, Any]]:
        pages = client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
        return {(i["id"]["S"], i["preferenceType"]["S"]): i for page in pages for i in page["Items"]}

    source, target = items(environment["SOURCE_TABLE"]), items(environment["TARGET_TABLE"])
    assert len(source) == numbers["expected_count"] and sorted(target) == sorted(source)
    for key, item in source.items():  # rename pref -> preference, add channel, set schema_version
        expected = {name: value for name, value in item.items() if name != "pref"}
        expected |= {"preference": item["pref"], "channel": {"S": "email"}, "schema_version": {"N": "2"}}
        assert target[key] == expected, key
    assert numbers["copy_status"] == "done" and numbers["verify"]["match"] is True
    assert numbers["updated"] and numbers["deleted"] and numbers["inserted"]


def test_stale_run_directory_is_cleaned_up(tmp_path: Path) -> None:
    """What a killed run leaves behind (a recorded process that is gone, files) does not stop the next."""
    run_dir = tmp_path / "stale"
    (run_dir / "terraform").mkdir(parents=True)
    (run_dir / "pids.json").write_text('{"moto": 999999999}')
    (run_dir / "terraform" / "terraform.tfstate").write_text("{}")

    processes.stop_stale_run(run_dir)

    assert not run_dir.exists()


def test_cdc_lake_report_matches_the_lake_and_the_replicas(demo_run) -> None:
    """Every DMS file the stand-in wrote is in the lake under its table and hour partition, and the
    replicas the files were applied to hold what the source holds."""
    demo, reports = demo_run
    numbers = reports["cdc data lake"].numbers
    lake = demo.wiring.outputs["cdc_lake"]
    pages = demo.client("s3").get_paginator("list_objects_v2").paginate(Bucket=lake["lake_bucket"])
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    assert len(keys) == numbers["lake_files"] == numbers["load_files"] + numbers["cdc_files"]
    layout = re.compile(
        r"cdc/sales/(customers|orders)/year=\d{4}/month=\d\d/day=\d\d/hour=\d\d/(LOAD[0-9A-F]{8}|\d{8}-\d{9})\.csv"
    )
    assert all(layout.fullmatch(key) for key in keys), keys
    assert {key.split("/")[2] for key in keys} == {"customers", "orders"}
    database = demo.function_env("cdc_lake")["DB_NAME"]
    for table, columns in (("customers", "customer_id, name, email"), ("orders", "order_id, status, amount")):
        replica = query(demo, database, f"SELECT {columns} FROM replica.{table} ORDER BY 1")
        assert replica == query(demo, "cdc_source", f"SELECT {columns} FROM sales.{table} ORDER BY 1")
        assert len(replica) == numbers[table]
