"""Benchmark: 50 migrations across 3 databases applied from S3 (moto) in one invocation.

A throwaway PostgreSQL server; `postgres/` creates the three databases, then each gets its share
of table, index and seed-data migrations. Prints the total and the split between downloading from
S3 and applying with yoyo (locks, checksum validation and marking included in "apply").

Baseline, measured in the same run on the same server: the same SQL files applied by hand, one
`psql -1 -f` per database (no S3, no lock, no bookkeeping), into databases of their own.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path

import boto3
from moto import mock_aws

from scripts.bench._child import own_peak_rss_mb
from scripts.bench._results import record
from scripts.localdb import PostgresServer, postgres_server

REGION = "us-east-1"
DATABASES = ("bench_app", "bench_reports", "bench_audit")
TOTAL = 50
TARGET = 0.2  # of psql's speed: yoyo's lock, checksums and marking, plus the S3 download, cost something


def _migration(n: int) -> str:
    return (
        f"CREATE TABLE t{n} (id bigint PRIMARY KEY, name text NOT NULL, created timestamptz DEFAULT now());\n"
        f"CREATE INDEX t{n}_name ON t{n} (name);\n"
        f"INSERT INTO t{n} (id, name) SELECT g, 'row ' || g FROM generate_series(1, 1000) g;\n"
    )


def _upload(s3, bucket: str) -> None:
    create = "-- transactional: false\n" + "".join(f"CREATE DATABASE {name};\n" for name in DATABASES)
    s3.put_object(Bucket=bucket, Key="postgres/0001_create_databases.sql", Body=create.encode())
    for database, n in _migrations():
        s3.put_object(Bucket=bucket, Key=f"{database}/{n:04d}_t{n}.sql", Body=_migration(n).encode())


def _migrations() -> list[tuple[str, int]]:
    """(database, number) of each migration after the `postgres/` one: 49 + 1 = 50."""
    return [(DATABASES[n % len(DATABASES)], n) for n in range(TOTAL - 1)]


def _psql_baseline(server: PostgresServer) -> float:
    """Create the databases and apply each one's files in one `psql -1` session, as by hand."""
    started = time.perf_counter()
    server.psql("postgres", *(arg for name in DATABASES for arg in ("-c", f"CREATE DATABASE {name}_psql")))
    for database in DATABASES:
        migrations = "".join(_migration(n) for owner, n in _migrations() if owner == database)
        server.psql(f"{database}_psql", "-1", "-f", "-", input_text=migrations)
    return time.perf_counter() - started


def main() -> None:
    # `python -m scripts.bench` runs from the repository root without lambda_src on the path.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lambda_src"))
    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}.items():
        os.environ.setdefault(name, value)  # moto only; never a real account
    from pipeline_common.config import DatabaseSettings
    from pipeline_common.deadline import Deadline
    from pipeline_common.log import get_logger
    from pipeline_common.secrets import SecretCache
    from schema_migrations.config import Settings
    from schema_migrations.service import process_event

    with postgres_server() as server, mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        sns = boto3.client("sns", region_name=REGION)
        bucket = "bench-migrations-" + uuid.uuid4().hex[:8]
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        topic = sns.create_topic(Name="bench-results")["TopicArn"]
        arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="bench", SecretString=json.dumps({"username": server.superuser, "password": server.password})
        )["ARN"]
        _upload(s3, bucket)
        settings = Settings(
            bucket=bucket,
            results_topic_arn=topic,
            allowed_databases=frozenset(),
            lock_stale_seconds=60,
            database=DatabaseSettings("postgresql", server.host, server.port, None, arn),
        )
        started = time.perf_counter()
        outcome = process_event(
            {"action": "migrate"},
            settings=settings,
            s3=s3,
            sns=sns,
            secrets=SecretCache(lambda: boto3.client("secretsmanager", region_name=REGION)),
            deadline=Deadline.in_seconds(60, reserve_ms=5_000),
            logger=get_logger("bench-schema-migrations"),
        )
        total = time.perf_counter() - started
        results = outcome["results"]
        if outcome["status"] != "succeeded":
            raise SystemExit(f"benchmark run failed: {json.dumps(results, default=str)[:2000]}")
        applied = sum(len(r["applied"]) for r in results)
        download = sum(r["timings"]["download_seconds"] for r in results)
        apply = sum(r["timings"]["apply_seconds"] for r in results)
        print(f"schema_migrations: {applied} migrations across {len(results)} databases (incl. postgres)")
        for r in results:
            t = r["timings"]
            print(
                f"  {r['database']:<14} {len(r['applied']):>3} applied  download {t['download_seconds']:.3f} s"
                f"  apply {t['apply_seconds']:.3f} s  total {t['total_seconds']:.3f} s"
            )
        print(
            f"  total {total:.2f} s (download {download:.2f} s, apply {apply:.2f} s, rest: connect/lock/list/publish)"
        )
        print(f"  Lambda timeout budget used: {total / 60:.1%} of 60 s")
        baseline = _psql_baseline(server)
        print(f"  baseline: the same files through psql -1 -f, one session per database: {baseline:.2f} s")
        record(
            "schema_migrations",
            "50_migrations",
            unit="s",
            ours=total,
            baseline=baseline,
            baseline_what="the same SQL files through psql -1 -f, one session per database",
            target=TARGET,
            lower_is_better=True,
            peak_rss_mb=own_peak_rss_mb(),
            details={"migrations": applied, "download_seconds": round(download, 3), "apply_seconds": round(apply, 3)},
        )
