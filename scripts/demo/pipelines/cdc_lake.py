"""CDC data lake: a local PostgreSQL source replicated by the DMS stand-in (logical decoding into
DMS's S3 layout) into the staging bucket; the partitioner copies each file into its hour
partition of the lake and applies it to PostgreSQL. Full load, then inserts, updates and deletes."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from typing import Any

from scripts.demo.environment import Demo, put_secret
from scripts.demo.report import PipelineReport, count_query, dead_letters, wait_idle
from scripts.localenv.dms_standin import DmsStandIn

ORDER = 40

SOURCE_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS sales;
CREATE TABLE sales.customers (customer_id bigint PRIMARY KEY, name text NOT NULL, email text, updated_at timestamptz);
CREATE TABLE sales.orders (
    order_id bigint PRIMARY KEY, customer_id bigint NOT NULL, status text NOT NULL, amount numeric(12, 2),
    card_number text);
"""
# The replicas carry the commit time (and change sequence) of the change that wrote each row.
REPLICA_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS replica;
CREATE TABLE IF NOT EXISTS replica.customers (
    customer_id bigint PRIMARY KEY, name text NOT NULL, email text, updated_at timestamptz,
    dms_commit_ts timestamp, dms_change_seq numeric(38));
CREATE TABLE IF NOT EXISTS replica.orders (
    order_id bigint PRIMARY KEY, customer_id bigint NOT NULL, status text NOT NULL, amount numeric(12, 2),
    dms_commit_ts timestamp, dms_change_seq numeric(38));
"""


def drive(demo: Demo) -> PipelineReport:
    started = time.monotonic()
    lake: dict[str, Any] = demo.wiring.outputs["cdc_lake"]
    environment = demo.function_env("cdc_lake")
    target_db = environment["DB_NAME"]
    source_db = _source_database(demo, lake)
    customers, orders = (40, 200) if demo.small else (2_000, 20_000)

    demo.databases.create_database("postgresql", source_db)
    _execute(demo, source_db, SOURCE_SCHEMA)
    _execute(
        demo,
        source_db,
        "INSERT INTO sales.customers SELECT g, 'Customer ' || g, 'c' || g || '@example.com', now() "
        f"FROM generate_series(1, {customers}) g",
        f"INSERT INTO sales.orders SELECT g, 1 + mod(g, {customers}), 'new', round(mod(g, 997) * 1.37, 2), "
        f"'4111-' || g FROM generate_series(1, {orders}) g",
    )
    _execute(demo, target_db, REPLICA_SCHEMA)
    # What DMS logs in with: the local server's credentials, host and port in the source secret.
    put_secret(demo.client("secretsmanager"), lake["source_secret_arn"], demo.databases.postgres.secret(source_db))

    with DmsStandIn.from_task(
        lake["dms"]["replication_task_arn"],
        dms=demo.client("dms"),
        secrets=demo.client("secretsmanager"),
        s3=demo.client("s3"),
    ) as dms:
        dms.start()
        loaded = dms.full_load()
        wait_idle(demo, "cdc lake (full load)")
        full_load = {
            t: count_query(demo, target_db, f"SELECT count(*) FROM replica.{t}") for t in ("customers", "orders")
        }

        changed = orders // 10
        _execute(
            demo,
            source_db,
            "INSERT INTO sales.orders SELECT g, 1, 'new', 5.00, NULL "
            f"FROM generate_series({orders + 1}, {orders + changed}) g",
            f"UPDATE sales.orders SET status = 'shipped' WHERE order_id <= {changed}",
            f"DELETE FROM sales.orders WHERE order_id > {orders - changed} AND order_id <= {orders}",
            "UPDATE sales.customers SET email = NULL, updated_at = now() WHERE customer_id = 1",
        )
        _execute(demo, source_db, "UPDATE sales.orders SET status = 'delivered' WHERE order_id <= 10")
        cdc_files = dms.replicate()
        wait_idle(demo, "cdc lake (changes)")

    replicas_match = all(
        _rows(demo, source_db, f"SELECT {columns} FROM sales.{table} ORDER BY 1")
        == _rows(demo, target_db, f"SELECT {columns} FROM replica.{table} ORDER BY 1")
        for table, columns in (
            ("customers", "customer_id, name, email, updated_at"),
            ("orders", "order_id, customer_id, status, amount"),
        )
    )
    partitions = _lake_partitions(demo, lake)
    catalog = _catalog(demo, lake)
    applied = {t: count_query(demo, target_db, f"SELECT count(*) FROM replica.{t}") for t in ("customers", "orders")}
    shipped = count_query(
        demo, target_db, "SELECT count(*) FROM replica.orders WHERE status IN ('shipped', 'delivered')"
    )
    copies = count_query(demo, target_db, "SELECT count(*) FROM pipeline_state.cdc_lake_copies WHERE status = 'loaded'")
    rejected = count_query(
        demo, target_db, "SELECT count(*) FROM pipeline_state.cdc_lake_applied WHERE status <> 'loaded'"
    )
    staged_left = demo.client("s3").list_objects_v2(Bucket=lake["staging_bucket"]).get("KeyCount", 0)
    dlq = dead_letters(demo, "cdc_lake")
    expected_orders = orders  # + changed inserted - changed deleted
    return PipelineReport(
        pipeline="cdc data lake",
        went_in=[
            f"stand-in DMS task over PostgreSQL {source_db}: full load {customers} customers, {orders} orders "
            f"({len(loaded)} LOAD files) -> s3://{lake['staging_bucket']}/{lake['staging_folder']}/",
            f"then {changed} orders inserted, {changed} updated, {changed} deleted, 1 customer updated "
            f"({len(cdc_files)} CDC files)",
        ],
        came_out=[
            f"lake s3://{lake['lake_bucket']}/{lake['lake_prefix']}/: "
            + "; ".join(f"{partition}: {count} files" for partition, count in sorted(partitions.items())),
            f"Glue database {catalog['database']}: tables {', '.join(catalog['tables'])} "
            f"(partition projection {catalog['projection']})",
            f"PostgreSQL replica.customers {applied['customers']} rows, replica.orders {applied['orders']} rows "
            f"({shipped} shipped or delivered) after full load {full_load['customers']} / {full_load['orders']}; "
            f"replicas equal the source: {replicas_match}",
            f"ledger: {copies} files copied, {rejected} applies not loaded; staging objects left: {staged_left}; "
            f"dead-letter queue: {dlq} messages",
        ],
        where=f"s3://{lake['lake_bucket']} and PostgreSQL database {target_db}",
        seconds=time.monotonic() - started,
        numbers={
            "load_files": len(loaded),
            "cdc_files": len(cdc_files),
            "lake_files": sum(partitions.values()),
            "copies": copies,
            "customers": applied["customers"],
            "orders": applied["orders"],
            "dead_letters": dlq,
        },
        ok=replicas_match
        and applied == {"customers": customers, "orders": expected_orders}
        and full_load == {"customers": customers, "orders": orders}
        and copies == len(loaded) + len(cdc_files) == sum(partitions.values())
        and rejected == 0
        and staged_left == 0
        and dlq == 0
        and catalog["projection"] == "on",
    )


def _source_database(demo: Demo, lake: dict[str, Any]) -> str:
    """The database the deployed source endpoint replicates."""
    dms = demo.client("dms")
    (task,) = dms.describe_replication_tasks(
        Filters=[{"Name": "replication-task-arn", "Values": [lake["dms"]["replication_task_arn"]]}]
    )["ReplicationTasks"]
    (endpoint,) = dms.describe_endpoints(Filters=[{"Name": "endpoint-arn", "Values": [task["SourceEndpointArn"]]}])[
        "Endpoints"
    ]
    return str((endpoint.get("PostgreSQLSettings") or {}).get("DatabaseName") or endpoint["DatabaseName"])


def _execute(demo: Demo, database: str, *statements: str) -> None:
    with contextlib.closing(demo.databases.connect(database)) as conn, conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def _rows(demo: Demo, database: str, query: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(demo.databases.connect(database)) as conn, conn.cursor() as cur:
        cur.execute(query)
        return cur.fetchall()


def _lake_partitions(demo: Demo, lake: dict[str, Any]) -> Counter[str]:
    """Files in the lake by table and hour partition (`sales/orders/year=.../hour=HH`)."""
    pages = demo.client("s3").get_paginator("list_objects_v2").paginate(Bucket=lake["lake_bucket"])
    counts: Counter[str] = Counter()
    prefix = f"{lake['lake_prefix']}/" if lake["lake_prefix"] else ""
    for page in pages:
        for item in page.get("Contents", []):
            counts[item["Key"][len(prefix) :].rsplit("/", 1)[0]] += 1
    return counts


def _catalog(demo: Demo, lake: dict[str, Any]) -> dict[str, Any]:
    database = lake["catalog"]["database"]
    tables = demo.client("glue").get_tables(DatabaseName=database)["TableList"]
    projected = all(t.get("Parameters", {}).get("projection.enabled") == "true" for t in tables)
    return {
        "database": database,
        "tables": sorted(t["Name"] for t in tables),
        "projection": "on" if projected else "off",
    }
