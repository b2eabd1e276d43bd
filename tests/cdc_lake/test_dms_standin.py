"""The DMS stand-in of the local environment: a real PostgreSQL source (logical decoding) written
into the staging bucket in DMS's S3 layout, then through the pipeline into PostgreSQL again, where
the replica must equal the source."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import psycopg2
import pytest

from scripts.localdb import PostgresServer, postgres_server
from scripts.localenv.dms_standin import DmsStandIn, Selection, StandInError, Target, mappings, parse_change
from tests.cdc_lake.conftest import FOLDER, TS, Lake

SOURCE_SCHEMA = """
CREATE SCHEMA sales;
CREATE TABLE sales.orders (
    order_id bigint PRIMARY KEY, customer text NOT NULL, amount numeric(12, 2), status text,
    card_number text);
CREATE TABLE sales.order_lines (order_id bigint, line integer, sku text, PRIMARY KEY (order_id, line));
CREATE TABLE sales.audit (id bigint PRIMARY KEY, what text);
"""


@pytest.fixture(scope="session")
def source_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server that can decode its WAL (what DMS needs of a PostgreSQL source)."""
    with postgres_server(settings={"wal_level": "logical"}) as server:
        yield server


@pytest.fixture
def source(source_server: PostgresServer) -> Iterator[str]:
    admin = psycopg2.connect(source_server.dsn())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS cdc_source WITH (FORCE)")
        cur.execute("CREATE DATABASE cdc_source")
    dsn = source_server.dsn("cdc_source")
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(SOURCE_SCHEMA)
        cur.execute(
            "INSERT INTO sales.orders VALUES (1, 'ann', 10.00, 'new', '4111'), (2, 'bob, jr.', NULL, '', '4222'), "
            "(3, 'cy \"the\" best', 30.50, 'new', NULL)"
        )
        cur.execute("INSERT INTO sales.order_lines VALUES (1, 1, 'a'), (1, 2, 'b'), (3, 1, 'c')")
        cur.execute("INSERT INTO sales.audit VALUES (1, 'not replicated')")
    conn.close()
    yield dsn
    with admin.cursor() as cur:
        cur.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = 'cdc_source'"
        )
        cur.execute("DROP DATABASE IF EXISTS cdc_source WITH (FORCE)")
    admin.close()


def _execute(dsn: str, *statements: str) -> None:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    conn.close()


def _rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode(), newline="")))


SELECTIONS = [
    Selection("sales", "order%", removed_columns=()),
    Selection("sales", "orders", removed_columns=("card_number",)),
]


def _standin(lake: Lake, dsn: str) -> DmsStandIn:
    target = Target(lake.staging, FOLDER, TS, "dms_change_seq")
    return DmsStandIn(dsn, target, SELECTIONS, lake.s3)


def test_full_load_and_changes_in_dms_layout(lake: Lake, source: str) -> None:
    with _standin(lake, source) as dms:
        started = dms.start()
        keys = sorted(dms.full_load())
        assert keys == [f"{FOLDER}/sales/order_lines/LOAD00000001.csv", f"{FOLDER}/sales/orders/LOAD00000001.csv"]
        body = lake.s3.get_object(Bucket=lake.staging, Key=keys[1])["Body"].read()
        stamp = started.strftime("%Y-%m-%d %H:%M:%S.%f")
        assert body.splitlines()[0] == b"Op,dms_commit_ts,order_id,customer,amount,status,dms_change_seq"
        assert _rows(body)[1:] == [
            ["I", stamp, "1", "ann", "10.00", "new", ""],
            ["I", stamp, "2", "bob, jr.", "", "", ""],
            ["I", stamp, "3", 'cy "the" best', "30.50", "new", ""],
        ]
        assert b',"",' in body  # an empty string is quoted; NULL is an empty field

        _execute(
            source,
            "INSERT INTO sales.orders VALUES (4, 'dee', 1.00, 'new', '4444')",
            "UPDATE sales.orders SET status = 'paid' WHERE order_id = 1",
            "DELETE FROM sales.orders WHERE order_id = 2",
            "INSERT INTO sales.audit VALUES (2, 'still not replicated')",
        )
        _execute(source, "UPDATE sales.orders SET amount = 2.00 WHERE order_id = 4")
        (changed,) = dms.replicate()
        assert changed.startswith(f"{FOLDER}/sales/orders/") and changed.endswith(".csv")
        assert dms.replicate() == []  # nothing new
    rows = _rows(lake.s3.get_object(Bucket=lake.staging, Key=changed)["Body"].read())[1:]
    assert [(r[0], r[2], r[5]) for r in rows] == [
        ("I", "4", "new"),
        ("U", "1", "paid"),
        ("D", "2", ""),
        ("U", "4", "new"),
    ]
    commits = [r[1] for r in rows]
    assert commits[:3] == [commits[0]] * 3 and commits[3] > commits[0] > stamp  # one transaction, then another
    sequences = [r[6] for r in rows]
    assert sequences == sorted(sequences) and len(set(sequences)) == 4 and all(len(s) == 35 for s in sequences)


def test_replicated_through_the_pipeline_the_replica_equals_the_source(lake: Lake, source: str) -> None:
    lake.query("ALTER TABLE replica.order_lines ADD COLUMN dms_change_seq numeric(38)")
    with _standin(lake, source) as dms:
        dms.start()
        dms.full_load()
        assert lake.run(lake.receive())["applies"] == {"applied": 2}
        _execute(
            source,
            "INSERT INTO sales.orders VALUES (5, 'eve', 5.00, 'new', '4555'), (6, 'fay', 6.00, 'new', NULL)",
            "UPDATE sales.orders SET status = 'shipped', amount = amount + 1 WHERE order_id IN (1, 3)",
            "DELETE FROM sales.order_lines WHERE order_id = 1 AND line = 2",
            "UPDATE sales.order_lines SET sku = 'z' WHERE order_id = 3",
        )
        _execute(
            source,
            "DELETE FROM sales.orders WHERE order_id = 5",
            "UPDATE sales.orders SET customer = 'it''s me' WHERE order_id = 6",
        )
        assert len(dms.replicate()) == 2
    result = lake.run(lake.receive())
    assert result["batchItemFailures"] == [] and result["applies"] == {"applied": 2}
    with psycopg2.connect(source) as conn, conn.cursor() as cur:
        cur.execute("SELECT order_id, customer, amount, status FROM sales.orders ORDER BY 1")
        orders = cur.fetchall()
        cur.execute("SELECT order_id, line, sku FROM sales.order_lines ORDER BY 1, 2")
        lines = cur.fetchall()
    conn.close()
    assert lake.query("SELECT order_id, customer, amount, status FROM replica.orders ORDER BY 1") == orders
    assert lake.query("SELECT order_id, line, sku FROM replica.order_lines ORDER BY 1, 2") == lines


def test_it_follows_the_task_terraform_deployed(lake: Lake, source: str, source_server: PostgresServer) -> None:
    """From moto's DMS: the task's mappings, the S3 target's settings, the source's secret."""
    dms, secrets = boto3.client("dms", region_name="us-east-1"), boto3.client("secretsmanager", region_name="us-east-1")
    secret = secrets.create_secret(Name="dms/source", SecretString=json.dumps(source_server.secret("cdc_source")))[
        "ARN"
    ]
    source_endpoint = dms.create_endpoint(
        EndpointIdentifier="src",
        EndpointType="source",
        EngineName="postgres",
        PostgreSQLSettings={
            "DatabaseName": "cdc_source",
            "SecretsManagerSecretId": secret,
            "SecretsManagerAccessRoleArn": "arn:aws:iam::123456789012:role/r",
        },
    )["Endpoint"]["EndpointArn"]
    target_endpoint = dms.create_endpoint(
        EndpointIdentifier="dst",
        EndpointType="target",
        EngineName="s3",
        S3Settings={
            "BucketName": lake.staging,
            "BucketFolder": FOLDER,
            "AddColumnName": True,
            "IncludeOpForFullLoad": True,
            "TimestampColumnName": TS,
            "ServiceAccessRoleArn": "arn:aws:iam::123456789012:role/t",
        },
    )["Endpoint"]["EndpointArn"]
    rules = {
        "rules": [
            {
                "rule-type": "selection",
                "rule-id": "1",
                "rule-name": "include-1",
                "rule-action": "include",
                "object-locator": {"schema-name": "sales", "table-name": "orders"},
            },
            {
                "rule-type": "transformation",
                "rule-id": "2",
                "rule-name": "remove-column-1",
                "rule-target": "column",
                "rule-action": "remove-column",
                "object-locator": {"schema-name": "sales", "table-name": "orders", "column-name": "card_number"},
            },
        ]
    }
    instance = dms.create_replication_instance(
        ReplicationInstanceIdentifier="ri", ReplicationInstanceClass="dms.t3.micro"
    )
    task = dms.create_replication_task(
        ReplicationTaskIdentifier="task",
        SourceEndpointArn=source_endpoint,
        TargetEndpointArn=target_endpoint,
        ReplicationInstanceArn=instance["ReplicationInstance"]["ReplicationInstanceArn"],
        MigrationType="full-load-and-cdc",
        TableMappings=json.dumps(rules),
    )["ReplicationTask"]["ReplicationTaskArn"]
    with DmsStandIn.from_task(task, dms=dms, secrets=secrets, s3=lake.s3) as standin:
        standin.start()
        (key,) = standin.full_load()
    assert key == f"{FOLDER}/sales/orders/LOAD00000001.csv"
    header = lake.s3.get_object(Bucket=lake.staging, Key=key)["Body"].read().splitlines()[0]
    assert header == b"Op,dms_commit_ts,order_id,customer,amount,status"


def test_mappings_it_cannot_follow_are_refused() -> None:
    selection = {
        "rule-type": "selection",
        "rule-name": "s",
        "rule-action": "include",
        "object-locator": {"schema-name": "a", "table-name": "b"},
    }
    with pytest.raises(StandInError, match="source filters"):
        mappings({"rules": [{**selection, "filters": [{"filter-type": "source"}]}]})
    with pytest.raises(StandInError, match="transformation 'rename'"):
        mappings(
            {"rules": [selection, {"rule-type": "transformation", "rule-name": "rename", "rule-action": "rename"}]}
        )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "table sales.orders: INSERT: order_id[bigint]:1 customer[text]:'it''s, \"x\"' amount[numeric]:null",
            ("I", {"order_id": "1", "customer": 'it\'s, "x"', "amount": None}),
        ),
        (
            'table "Sales"."Order Lines": UPDATE: old-key: id[integer]:1 new-tuple: id[integer]:2 '
            "\"Sku Code\"[character varying]:'a b' tags[text[]]:'{x,y}'",
            ("U", {"id": "2", "Sku Code": "a b", "tags": "{x,y}"}),
        ),
        ("table sales.orders: DELETE: order_id[bigint]:7", ("D", {"order_id": "7"})),
        ("table sales.orders: UPDATE: id[integer]:1 doc[text]:unchanged-toast-datum", ("U", {"id": "1"})),
    ],
)
def test_test_decoding_lines_are_read(line: str, expected: tuple[str, dict[str, Any]]) -> None:
    change = parse_change(line, "0" * 35)
    assert (change.op, change.values) == expected
