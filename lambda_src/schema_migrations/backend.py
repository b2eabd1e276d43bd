"""yoyo's PostgreSQL backend adapted to a Lambda run.

Differences from stock yoyo, each for a reason:

- one connection per database per run: yoyo opens a second connection for every migration
  (`copy()`); here the migration, its mark, its log entry and its checksum share one transaction,
  so a migration is never applied without being marked (exactly once even if Lambda is killed);
- non-transactional migrations (CREATE DATABASE) record each completed statement and resume after
  the last one, so re-running after a crash or a fixed upload is harmless;
- the lock row is taken by `locking.hold_yoyo_lock` for the whole run (stale rows are broken,
  fresh ones waited for), so `lock()` here only checks that it is held;
- the user and host written to yoyo's log come from the Lambda environment, and a missing
  USER/LOGNAME does not crash the run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import os
import socket
import uuid
from collections.abc import Iterator
from typing import Any

from yoyo.backends.core.postgresql import PostgresqlBackend
from yoyo.connections import DatabaseURI
from yoyo.migrations import Migration, default_migration_table, read_sql_migration

from pipeline_common.deadline import TimeBudget, bound_statements, bounded_session
from schema_migrations import state

FALLBACK_USER = "lambda"


def user_name() -> str:
    """What yoyo records as the user; `getpass.getuser()` raises when no passwd entry or
    USER/LOGNAME variable exists (a possible Lambda sandbox)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return FALLBACK_USER


def yoyo_database(params: dict[str, Any], sslmode: str, connect_timeout: int) -> DatabaseURI:
    """What yoyo connects with, built from the values themselves rather than parsed from a URI:
    yoyo's URI parsing decodes the user and password but not the database name, so a name with
    `$` (legal in PostgreSQL) would reach the server percent-encoded (`x%24y`) and never be found.
    The backend passes these fields to psycopg2 as keyword arguments, untouched."""
    return DatabaseURI(
        scheme="postgresql",
        username=params["user"],
        password=params["password"],
        hostname=params["host"],
        port=int(params["port"]),
        database=params["database"],
        args={
            "sslmode": sslmode,
            "connect_timeout": str(connect_timeout),
            "application_name": "schema-migrations",
            "keepalives": "1",
            "keepalives_idle": "30",
            "keepalives_interval": "10",
            "keepalives_count": "3",
        },
    )


class LambdaBackend(PostgresqlBackend):
    # IF NOT EXISTS: yoyo's plain CREATE fails (and logs an ERROR on the server) on every run.
    create_lock_table_sql = (
        "CREATE TABLE IF NOT EXISTS {0.lock_table_quoted} ("
        "{quoted.locked} INT DEFAULT 1, "
        "{quoted.ctime} TIMESTAMP,"
        "{quoted.pid} INT NOT NULL,"
        "PRIMARY KEY ({quoted.locked}))"
    )
    lock_held = False

    def init_database(self) -> None:
        # PostgreSQL DDL is transactional; yoyo's probe would create a table and fail a DROP each run.
        self.create_lock_table()
        self.has_transactional_ddl = True
        state.ensure_tables(self.connection)

    @contextlib.contextmanager
    def lock(self, timeout: int = 10) -> Iterator[None]:
        if not self.lock_held:
            raise RuntimeError("yoyo lock not held: take it with locking.hold_yoyo_lock for the whole run")
        yield

    def copy(self) -> LambdaBackend:
        raise RuntimeError("this backend runs every migration on its one connection")

    def get_log_data(self, migration: Migration | None = None, operation: str = "apply") -> dict[str, Any]:
        return {
            "id": str(uuid.uuid1()),
            "migration_id": migration.id if migration else None,
            "migration_hash": migration.hash if migration else None,
            "username": user_name(),
            # socket.getfqdn() (yoyo's choice) can block on reverse DNS inside a VPC.
            "hostname": os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or socket.gethostname(),
            "created_at_utc": dt.datetime.now(dt.UTC).replace(tzinfo=None),
            "operation": operation,
        }

    def apply_migration(self, migration: Migration, sha256: str, version_id: str | None, deadline: TimeBudget) -> int:
        """Apply and mark one migration; returns how many statements were skipped as already done.

        `deadline` bounds each statement (`bound_statements`): PostgreSQL cancels one that would
        outlive the Lambda (a clean rollback) instead of Lambda killing the run mid-statement.
        """
        self.ensure_internal_schema_updated()
        migration.load()
        skipped = 0
        if migration.use_transactions:
            with self.transaction():
                with self.connection.cursor() as cur:
                    bound_statements(cur, deadline)
                migration.process_steps(self, "apply")
                self._mark_applied(migration, sha256, version_id)
        else:
            # No transaction to scope the limit to: it is set for the session and reset after, so
            # the marking and later migrations on this connection are not bound by it.
            with self.connection.cursor() as cur, bounded_session(cur, deadline):
                skipped = self._apply_resumable(migration)
            with self.transaction():
                self._mark_applied(migration, sha256, version_id)
                state.clear_steps(self.connection, migration.id)
        return skipped

    def rollback_migration(self, migration: Migration) -> None:
        self.ensure_internal_schema_updated()
        migration.load()
        if migration.use_transactions:
            with self.transaction():
                migration.process_steps(self, "rollback")
                self._mark_rolled_back(migration)
        else:
            migration.process_steps(self, "rollback")
            with self.transaction():
                self._mark_rolled_back(migration)

    def _mark_applied(self, migration: Migration, sha256: str, version_id: str | None) -> None:
        self.mark_one(migration, log=False)
        self.log_migration(migration, "apply")
        state.record_checksum(self.connection, migration.id, sha256, version_id, "apply")

    def _mark_rolled_back(self, migration: Migration) -> None:
        self.unmark_one(migration, log=False)
        self.log_migration(migration, "rollback")
        state.delete_checksum(self.connection, migration.id)
        state.clear_steps(self.connection, migration.id)

    def _apply_resumable(self, migration: Migration) -> int:
        """Run a non-transactional migration statement by statement, skipping the leading
        statements a previous run completed (same text, same position)."""
        _, _, statements = read_sql_migration(migration.path)
        done = state.completed_steps(self.connection, migration.id)
        skipped = 0
        resuming = True
        assert migration.steps is not None
        with self.disable_transactions():
            for index, step in enumerate(migration.steps):
                digest = state.sha256_text(statements[index] if index < len(statements) else "")
                if resuming and done.get(index) == digest:
                    skipped += 1
                    continue
                resuming = False
                step.apply(self)
                state.record_step(self.connection, migration.id, index, digest)
        return skipped


def open_backend(params: dict[str, Any], sslmode: str, connect_timeout: int) -> LambdaBackend:
    backend = LambdaBackend(yoyo_database(params, sslmode, connect_timeout), default_migration_table)
    try:
        backend.init_database()
    except BaseException:
        backend.connection.close()
        raise
    return backend
