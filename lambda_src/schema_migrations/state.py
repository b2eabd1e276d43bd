"""What is applied to a database, and the two tables this function keeps next to yoyo's.

- `_yoyo_migration_checksum`: sha256 of each applied migration's file, written in the same
  transaction that marks the migration applied (Flyway-style validation; yoyo only tracks ids);
- `_yoyo_migration_step`: the completed statements of a non-transactional migration, so a run that
  was cut off (or failed) half way resumes after the last completed statement instead of repeating
  statements like CREATE DATABASE that cannot be repeated.

Both live in the schema yoyo uses (the connection's current schema), created unqualified like
yoyo's own tables. Readers work on any psycopg2 connection and change nothing, so dry runs and
status can use a read-only session.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

MIGRATION_TABLE = "_yoyo_migration"
CHECKSUM_TABLE = "_yoyo_migration_checksum"
STEP_TABLE = "_yoyo_migration_step"

_CREATE_TABLES = f"""
CREATE TABLE IF NOT EXISTS {CHECKSUM_TABLE} (
    migration_id varchar(191) PRIMARY KEY,
    sha256 char(64) NOT NULL,
    s3_version_id text,
    source text NOT NULL CHECK (source IN ('apply', 'baseline', 'repair')),
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {STEP_TABLE} (
    migration_id varchar(191) NOT NULL,
    step integer NOT NULL,
    statement_sha256 char(64) NOT NULL,
    done_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (migration_id, step)
);
"""


@dataclass(frozen=True)
class AppliedMigration:
    migration_id: str
    migration_hash: str
    applied_at: dt.datetime | None
    sha256: str | None  # None: applied before this function recorded checksums


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def ensure_tables(connection: Any) -> None:
    with connection.cursor() as cur:
        cur.execute(_CREATE_TABLES)


def _exists(cur: Any, table: str) -> bool:
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
    return bool(cur.fetchone()[0])


def read_applied(connection: Any) -> list[AppliedMigration]:
    """Applied migrations in the order they were applied; empty when yoyo never ran here."""
    with connection.cursor() as cur:
        if not _exists(cur, MIGRATION_TABLE):
            return []
        if _exists(cur, CHECKSUM_TABLE):
            cur.execute(
                f"SELECT m.migration_id, m.migration_hash, m.applied_at_utc, c.sha256 "
                f"FROM {MIGRATION_TABLE} m LEFT JOIN {CHECKSUM_TABLE} c USING (migration_id) "
                "ORDER BY m.applied_at_utc, m.migration_id"
            )
        else:
            cur.execute(
                f"SELECT migration_id, migration_hash, applied_at_utc, NULL FROM {MIGRATION_TABLE} "
                "ORDER BY applied_at_utc, migration_id"
            )
        return [AppliedMigration(*row) for row in cur.fetchall()]


def record_checksum(connection: Any, migration_id: str, sha256: str, version_id: str | None, source: str) -> None:
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {CHECKSUM_TABLE} (migration_id, sha256, s3_version_id, source) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (migration_id) DO UPDATE SET sha256 = EXCLUDED.sha256, "
            "s3_version_id = EXCLUDED.s3_version_id, source = EXCLUDED.source, recorded_at = now()",
            (migration_id, sha256, version_id, source),
        )


def delete_checksum(connection: Any, migration_id: str) -> None:
    with connection.cursor() as cur:
        cur.execute(f"DELETE FROM {CHECKSUM_TABLE} WHERE migration_id = %s", (migration_id,))


def completed_steps(connection: Any, migration_id: str) -> dict[int, str]:
    with connection.cursor() as cur:
        cur.execute(f"SELECT step, statement_sha256 FROM {STEP_TABLE} WHERE migration_id = %s", (migration_id,))
        return {step: digest for step, digest in cur.fetchall()}


def record_step(connection: Any, migration_id: str, step: int, statement_sha256: str) -> None:
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {STEP_TABLE} (migration_id, step, statement_sha256) VALUES (%s, %s, %s) "
            "ON CONFLICT (migration_id, step) DO UPDATE SET statement_sha256 = EXCLUDED.statement_sha256, "
            "done_at = now()",
            (migration_id, step, statement_sha256),
        )


def clear_steps(connection: Any, migration_id: str) -> None:
    with connection.cursor() as cur:
        cur.execute(f"DELETE FROM {STEP_TABLE} WHERE migration_id = %s", (migration_id,))
