"""What is applied to a database, and the two tables this function keeps next to yoyo's.

- `_yoyo_migration_checksum`: sha256 of each applied migration's file, written in the same
  transaction that marks the migration applied (Flyway-style validation; yoyo only tracks ids);
- `_yoyo_migration_step`: how far a non-transactional migration got, a checkpoint per migration
  (`pipeline_common.checkpoint`) whose position lists the sha256 of each completed statement, so a
  run that was cut off (or failed) half way resumes after the last completed statement instead of
  repeating statements like CREATE DATABASE that cannot be repeated.

Both live in the schema yoyo uses (the connection's current schema), like yoyo's own tables.
Readers work on any psycopg2 connection and change nothing, so dry runs and status can use a
read-only session. Releases before the shared checkpoint kept one step row per statement
(`migration_id, step, statement_sha256, done_at`); `ensure_tables` converts such a table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from pipeline_common.checkpoint import CheckpointTable

MIGRATION_TABLE = "_yoyo_migration"
CHECKSUM_TABLE = "_yoyo_migration_checksum"
STEP_TABLE = "_yoyo_migration_step"

_CREATE_CHECKSUMS = f"""
CREATE TABLE IF NOT EXISTS {CHECKSUM_TABLE} (
    migration_id varchar(191) PRIMARY KEY,
    sha256 char(64) NOT NULL,
    s3_version_id text,
    source text NOT NULL CHECK (source IN ('apply', 'baseline', 'repair')),
    recorded_at timestamptz NOT NULL DEFAULT now()
)
"""

# The one-row-per-statement table of earlier releases, turned into a checkpoint row per migration
# (only a run of steps from 0 without a gap can be resumed, and only such runs were ever written).
_UPGRADE_STEPS = (
    f"CREATE TEMPORARY TABLE step_rows ON COMMIT DROP AS SELECT * FROM {STEP_TABLE}",
    f"DROP TABLE {STEP_TABLE}",
    "{create}",
    f"INSERT INTO {STEP_TABLE} (migration_id, statements_done, updated_at) "
    "SELECT migration_id, jsonb_agg(jsonb_build_object('str', statement_sha256) ORDER BY step), max(done_at) "
    "FROM step_rows GROUP BY migration_id HAVING min(step) = 0 AND max(step) = count(*) - 1",
)


@dataclass(frozen=True)
class AppliedMigration:
    migration_id: str
    migration_hash: str
    applied_at: dt.datetime | None
    sha256: str | None  # None: applied before this function recorded checksums


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def steps_table(schema: str) -> CheckpointTable:
    return CheckpointTable(
        schema, STEP_TABLE, name_column="migration_id", positions=("statements_done",), counters=(), stamps=()
    )


def ensure_tables(connection: Any) -> None:
    """Create both tables in the current schema (converting a step table of an earlier release);
    the caller holds the database's migration lock."""
    with connection.cursor() as cur:
        cur.execute(_CREATE_CHECKSUMS)
        cur.execute("SELECT current_schema()")
        (schema,) = cur.fetchone()
        table = steps_table(schema)
        cur.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
            "AND column_name = 'step'",
            (schema, STEP_TABLE),
        )
        if cur.fetchone():
            create = table.create_statements(connection)[-1]
            cur.execute("BEGIN")  # yoyo's connection is in autocommit mode
            for statement in _UPGRADE_STEPS:
                cur.execute(create if statement == "{create}" else statement)
            cur.execute("COMMIT")
    table.ensure(connection)


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


def _steps(cur: Any) -> CheckpointTable:
    cur.execute("SELECT current_schema()")
    return steps_table(cur.fetchone()[0])


def completed_steps(connection: Any, migration_id: str) -> dict[int, str]:
    """The sha256 of each completed statement of `migration_id`, by statement index."""
    with connection.cursor() as cur:
        checkpoint = _steps(cur).load(cur, migration_id)
    return dict(enumerate(checkpoint["statements_done"] or [])) if checkpoint else {}


def record_step(connection: Any, migration_id: str, step: int, statement_sha256: str) -> None:
    """Statement `step` completed (steps complete in order, from where a run resumed)."""
    done = completed_steps(connection, migration_id)
    done[step] = statement_sha256
    with connection.cursor() as cur:
        table = _steps(cur)
        table.start(cur, migration_id)
        table.save(cur, migration_id, positions={"statements_done": [done[i] for i in sorted(done)]})


def clear_steps(connection: Any, migration_id: str) -> None:
    with connection.cursor() as cur:
        _steps(cur).delete(cur, migration_id)
