"""One action (migrate, status, rollback, repair) on one database.

Order inside a run: advisory lock -> list and validate the prefix -> download -> yoyo backend ->
yoyo lock -> read what is applied -> validate checksums -> act. Dry runs and status take no lock
and use a read-only session, so they cannot change anything.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
from yoyo.exceptions import BadMigration, MigrationConflict
from yoyo.migrations import MigrationList, read_migrations, topological_sort

from pipeline_common.deadline import Deadline
from pipeline_common.errors import PipelineError, error_message, is_retryable
from schema_migrations import state
from schema_migrations.connections import Connector, DatabaseMissing
from schema_migrations.errors import ChecksumMismatch, MigrationFailed, failed_statement
from schema_migrations.keys import RequestRefused
from schema_migrations.locking import advisory_lock, hold_yoyo_lock
from schema_migrations.results import DatabaseResult, RunRequest
from schema_migrations.source import Download, download, list_migration_keys

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunContext:
    """What every action needs besides the request."""

    s3: Any
    bucket: str
    allowed: frozenset[str]
    connector: Connector
    root: Any  # autocommit connection to `postgres`, carrying the advisory locks
    stale_seconds: float
    deadline: Deadline
    workdir: Path


@dataclass(frozen=True)
class Comparison:
    """The bucket's files against what the database has applied."""

    applied: list[state.AppliedMigration]
    changed: list[str]  # keys of applied migrations whose content changed
    unrecorded: list[state.AppliedMigration]  # applied without a checksum (before this function)
    missing: list[str]  # applied ids with no file in the bucket


def load_migrations(directory: Path) -> MigrationList:
    migrations = read_migrations(str(directory))
    # Load now: yoyo resolves `-- depends:` ids through a process-wide registry that the next
    # database's files (which may reuse ids) would overwrite.
    for migration in migrations:
        migration.load()
    return migrations


def compare(download: Download, applied: list[state.AppliedMigration]) -> Comparison:
    current = download.sha256_by_id()
    changed = []
    unrecorded = []
    missing = []
    for item in applied:
        sha = current.get(item.migration_id)
        if sha is None:
            missing.append(item.migration_id)
        elif item.sha256 is None:
            unrecorded.append(item)
        elif item.sha256 != sha:
            file = download.file_for(item.migration_id)
            changed.append(file.key.key if file else item.migration_id)
    return Comparison(applied, changed, unrecorded, missing)


def pending(migrations: MigrationList, applied: list[state.AppliedMigration]) -> list[Any]:
    done = {item.migration_hash for item in applied}
    return list(topological_sort(m for m in migrations if m.hash not in done))


def run_database(request: RunRequest, ctx: RunContext) -> DatabaseResult:
    result = DatabaseResult.for_request(request)
    started = time.perf_counter()
    try:
        # Validate every key before any lock, download or SQL; listed again under the lock below.
        list_migration_keys(ctx.s3, ctx.bucket, request.database, ctx.allowed)
        needs_lock = request.action != "status" and not request.dry_run
        with _maybe_locked(ctx, request.database, needs_lock) as waited:
            result.lock["advisory_wait_seconds"] = round(waited, 3)
            keys = list_migration_keys(ctx.s3, ctx.bucket, request.database, ctx.allowed)
            fetched = download(ctx.s3, ctx.bucket, keys, ctx.workdir / request.database)
            result.files = len(fetched.files)
            result.timings["download_seconds"] = round(fetched.seconds, 3)
            migrations = load_migrations(fetched.directory)
            applying = time.perf_counter()
            try:
                ACTIONS[request.action](request, ctx, fetched, migrations, result)
            finally:
                result.timings["apply_seconds"] = round(time.perf_counter() - applying, 3)
    except RequestRefused as exc:
        result.fail("refused", {"type": "RequestRefused", "message": str(exc)})
    except (BadMigration, MigrationConflict) as exc:
        result.fail("refused", {"type": type(exc).__name__, "message": f"invalid migration: {exc}"})
    except ChecksumMismatch as exc:
        result.changed = exc.keys
        result.fail("failed", {"type": "ChecksumMismatch", "message": str(exc), "files": exc.keys})
    except MigrationFailed as exc:
        result.fail("failed", exc.details(), retryable=exc.retryable)
    except DatabaseMissing as exc:
        result.fail(
            "failed",
            {
                "type": "DatabaseMissing",
                "message": f"database {exc} does not exist; create it with a migration under postgres/",
            },
        )
    except (PipelineError, psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
        # A lock still held, the deadline, a lost connection (retryable); a bad secret (not).
        result.fail("failed", {"type": type(exc).__name__, "message": error_message(exc)}, retryable=is_retryable(exc))
    except Exception as exc:
        # Anything unforeseen (an S3 error, a SQL error outside a migration) fails this database
        # only, so the results of the others are still published; retryable because it may pass.
        logger.exception("unexpected error", extra={"database": request.database, "action": request.action})
        result.fail("failed", {"type": type(exc).__name__, "message": error_message(exc)}, retryable=True)
    result.timings["total_seconds"] = round(time.perf_counter() - started, 3)
    return result


@contextlib.contextmanager
def _maybe_locked(ctx: RunContext, database: str, needed: bool) -> Iterator[float]:
    if not needed:
        yield 0.0
        return
    with advisory_lock(ctx.root, database, ctx.deadline) as waited:
        yield waited


@contextlib.contextmanager
def _locked_backend(ctx: RunContext, database: str, result: DatabaseResult) -> Iterator[Any]:
    backend = ctx.connector.backend(database)
    try:
        with hold_yoyo_lock(backend, ctx.stale_seconds, ctx.deadline) as lock:
            result.lock["yoyo_wait_seconds"] = round(lock.waited_seconds, 3)
            result.lock["broke_stale_yoyo_lock"] = lock.broken
            # Creates or upgrades yoyo's tables (under the lock) so they can be read below.
            backend.ensure_internal_schema_updated()
            yield backend
    finally:
        backend.connection.close()


@contextlib.contextmanager
def _read_only(ctx: RunContext, database: str) -> Iterator[Any | None]:
    """A read-only session, or None when the database does not exist yet."""
    try:
        connection = ctx.connector.read_only(database)
    except DatabaseMissing:
        yield None
        return
    try:
        yield connection
    finally:
        connection.close()


def _validated(connection: Any, fetched: Download, result: DatabaseResult) -> Comparison:
    comparison = compare(fetched, state.read_applied(connection))
    result.missing_from_bucket = comparison.missing
    if comparison.changed:
        raise ChecksumMismatch(result.database, comparison.changed)
    return comparison


def migrate(
    request: RunRequest, ctx: RunContext, fetched: Download, migrations: MigrationList, result: DatabaseResult
) -> None:
    if request.dry_run:
        with _read_only(ctx, request.database) as connection:
            applied = _validated(connection, fetched, result).applied if connection else []
        result.pending = [m.id for m in pending(migrations, applied)]
        return
    with _locked_backend(ctx, request.database, result) as backend:
        comparison = _validated(backend.connection, fetched, result)
        _baseline(backend, fetched, comparison, result)
        todo = pending(migrations, comparison.applied)
        result.pending = [m.id for m in todo]
        for migration in todo:
            ctx.deadline.check(what=f"migration {migration.id}")
            file = fetched.file_for(migration.id)
            assert file is not None
            try:
                skipped = backend.apply_migration(migration, file.sha256, file.version_id, ctx.deadline)
            except psycopg2.errors.QueryCanceled as exc:
                reason = "its statement_timeout was the time left before the Lambda timeout"
                raise MigrationFailed(file.key.key, failed_statement(exc), exc, reason) from exc
            except psycopg2.Error as exc:
                raise MigrationFailed(file.key.key, failed_statement(exc), exc) from exc
            if skipped:
                logger.info("resumed non-transactional migration", extra={"file": file.key.key, "skipped": skipped})
            result.applied.append(migration.id)
            result.pending.remove(migration.id)


def _baseline(backend: Any, fetched: Download, comparison: Comparison, result: DatabaseResult) -> None:
    """Record checksums of migrations applied before this function kept them (e.g. by yoyo's CLI)."""
    if not comparison.unrecorded:
        return
    with backend.transaction():
        for item in comparison.unrecorded:
            file = fetched.file_for(item.migration_id)
            assert file is not None
            state.record_checksum(backend.connection, item.migration_id, file.sha256, file.version_id, "baseline")
            result.baselined.append(item.migration_id)


def rollback(
    request: RunRequest, ctx: RunContext, fetched: Download, migrations: MigrationList, result: DatabaseResult
) -> None:
    by_id = {m.id: m for m in migrations}

    def targets(applied: list[state.AppliedMigration]) -> list[Any]:
        chosen = [item.migration_id for item in reversed(applied)][: request.count]
        for migration_id in chosen:
            if migration_id not in by_id:
                raise RequestRefused(f"cannot roll back {migration_id}: {request.database}/{migration_id}.sql is gone")
            if not (fetched.directory / f"{migration_id}.rollback.sql").exists():
                raise RequestRefused(
                    f"cannot roll back {migration_id}: no {request.database}/{migration_id}.rollback.sql in the bucket"
                )
        return [by_id[migration_id] for migration_id in chosen]

    if request.dry_run:
        with _read_only(ctx, request.database) as connection:
            applied = _validated(connection, fetched, result).applied if connection else []
        result.pending = [m.id for m in targets(applied)]
        return
    with _locked_backend(ctx, request.database, result) as backend:
        todo = targets(_validated(backend.connection, fetched, result).applied)
        result.pending = [m.id for m in todo]
        for migration in todo:
            ctx.deadline.check(what=f"rollback of {migration.id}")
            key = f"{request.database}/{migration.id}.rollback.sql"
            try:
                backend.rollback_migration(migration)
            except psycopg2.Error as exc:
                raise MigrationFailed(key, failed_statement(exc), exc) from exc
            result.rolled_back.append(migration.id)
            result.pending.remove(migration.id)


def repair(
    request: RunRequest, ctx: RunContext, fetched: Download, migrations: MigrationList, result: DatabaseResult
) -> None:
    def to_repair(applied: list[state.AppliedMigration]) -> list[tuple[str, Any]]:
        found = []
        for item in applied:
            file = fetched.file_for(item.migration_id)
            if file is not None and item.sha256 != file.sha256:
                found.append((item.migration_id, file))
        return found

    if request.dry_run:
        with _read_only(ctx, request.database) as connection:
            applied = state.read_applied(connection) if connection else []
        result.pending = [migration_id for migration_id, _ in to_repair(applied)]
        return
    with _locked_backend(ctx, request.database, result) as backend:
        applied = state.read_applied(backend.connection)
        result.missing_from_bucket = [a.migration_id for a in applied if fetched.file_for(a.migration_id) is None]
        with backend.transaction():
            for migration_id, file in to_repair(applied):
                state.record_checksum(backend.connection, migration_id, file.sha256, file.version_id, "repair")
                result.repaired.append(migration_id)


def status(
    request: RunRequest, ctx: RunContext, fetched: Download, migrations: MigrationList, result: DatabaseResult
) -> None:
    with _read_only(ctx, request.database) as connection:
        applied = state.read_applied(connection) if connection else []
    comparison = compare(fetched, applied)
    result.missing_from_bucket = comparison.missing
    result.changed = comparison.changed
    recorded = {item.migration_id: item for item in applied}
    for migration in migrations:
        file = fetched.file_for(migration.id)
        assert file is not None
        item = recorded.get(migration.id)
        if item is None:
            checksum = None
        elif item.sha256 is None:
            checksum = "unrecorded"
        else:
            checksum = "ok" if item.sha256 == file.sha256 else "changed"
        result.migrations.append(
            {
                "id": migration.id,
                "state": "applied" if item else "pending",
                "applied_at": item.applied_at.isoformat() if item and item.applied_at else None,
                "checksum": checksum,
                "transactional": bool(migration.use_transactions),
                "rollback_file": (fetched.directory / f"{migration.id}.rollback.sql").exists(),
            }
        )
    result.pending = [m.id for m in pending(migrations, applied)]


ACTIONS = {"migrate": migrate, "rollback": rollback, "repair": repair, "status": status}
