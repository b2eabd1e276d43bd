"""Schema migrations: files uploaded to the migrations bucket, applied to their databases. Runs first:
its migrations create the tables the other pipelines load into."""

from __future__ import annotations

import time

import psycopg2

from scripts.demo.environment import Demo
from scripts.demo.report import PipelineReport, count_query, wait_idle

ORDER = 10

MIGRATIONS = {
    "postgres/0001_create_analytics.sql": "-- transactional: false\nCREATE DATABASE analytics;\n",
    "{db}/0001_staging_tables.sql": """
CREATE SCHEMA IF NOT EXISTS staging;
CREATE TABLE staging.sales (
    sale_id   bigint PRIMARY KEY,
    sold_at   timestamptz NOT NULL,
    store     text NOT NULL,
    sku       text NOT NULL,
    quantity  integer NOT NULL,
    amount    numeric(12, 2) NOT NULL
);
CREATE TABLE staging.customers (
    customer_id bigint PRIMARY KEY,
    name        text NOT NULL,
    email       text,
    country     text,
    updated_at  timestamptz NOT NULL
);
""",
    "{db}/0002_orders.sql": """
CREATE TABLE staging.orders (
    order_id    bigint PRIMARY KEY,
    customer_id bigint NOT NULL,
    status      text NOT NULL,
    amount      numeric(12, 2) NOT NULL,
    updated_at  timestamptz NOT NULL
);
""",
    "analytics/0001_daily_sales.sql": """
CREATE TABLE daily_sales (day date PRIMARY KEY, store_count integer NOT NULL, revenue numeric(14, 2) NOT NULL);
""",
}


def drive(demo: Demo) -> PipelineReport:
    started = time.monotonic()
    environment = demo.function_env("schema_migrations")
    bucket = environment["MIGRATIONS_BUCKET"]
    database = environment["DB_NAME"]
    s3 = demo.client("s3")
    files = {key.format(db=database): body for key, body in MIGRATIONS.items()}
    # The root database's migrations first: they create the databases the others migrate.
    for key in sorted(files, key=lambda k: (not k.startswith("postgres/"), k)):
        s3.put_object(Bucket=bucket, Key=key, Body=files[key].encode())
        if key.startswith("postgres/"):
            wait_idle(demo, "schema migrations (postgres/)")
    wait_idle(demo, "schema migrations")
    applied = {name: count_migrations(demo, name) for name in ("postgres", database, "analytics")}
    tables = count_query(
        demo, database, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'staging'"
    )
    return PipelineReport(
        pipeline="schema migrations",
        went_in=[f"{len(files)} migration files uploaded to s3://{bucket}/ (postgres/, {database}/, analytics/)"],
        came_out=[
            "applied: " + ", ".join(f"{name} {count}" for name, count in applied.items()),
            f"database 'analytics' created; {tables} tables in {database}.staging",
        ],
        where=f"PostgreSQL {demo.databases.postgres.host}:{demo.databases.postgres.port}",
        seconds=time.monotonic() - started,
        numbers={"files": len(files), "applied": applied, "staging_tables": tables},
        ok=sum(applied.values()) == len(files),
    )


def count_migrations(demo: Demo, database: str) -> int:
    try:
        return count_query(demo, database, "SELECT count(*) FROM _yoyo_migration")
    except psycopg2.Error:
        return 0
