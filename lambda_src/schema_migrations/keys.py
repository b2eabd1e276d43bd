"""Validation of database names and migration keys.

Everything that comes from a key or a payload is checked here, before anything is downloaded
or any SQL runs: a key is `<database>/<migration id>.sql` or `<database>/<migration id>.rollback.sql`
and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from pipeline_common.errors import PermanentError
from pipeline_common.identifiers import IdentifierError, validate_identifier

ROOT_DATABASE = "postgres"
ROLLBACK_SUFFIX = ".rollback.sql"
SQL_SUFFIX = ".sql"
# yoyo stores ids in a VARCHAR(191); no dots, slashes or spaces so an id is also a safe file name.
_MIGRATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,190}")


class RequestRefused(PermanentError, ValueError):
    """A key, database name or operator request is not acceptable; nothing was run."""


def database_name(name: object, allowed: Collection[str]) -> str:
    """`name` if it is a valid PostgreSQL identifier and on the allow-list (when there is one)."""
    if not isinstance(name, str):
        raise RequestRefused(f"database name must be a string, got {type(name).__name__}")
    try:
        validate_identifier(name, "database")
    except IdentifierError as exc:
        raise RequestRefused(str(exc)) from None
    if allowed and name not in allowed:
        raise RequestRefused(f"database {name!r} is not in ALLOWED_DATABASES ({', '.join(sorted(allowed))})")
    return name


@dataclass(frozen=True)
class MigrationKey:
    key: str
    database: str
    migration_id: str
    rollback: bool

    @property
    def filename(self) -> str:
        return self.migration_id + (ROLLBACK_SUFFIX if self.rollback else SQL_SUFFIX)


def is_folder_marker(key: str) -> bool:
    """`projectdb/`: what the S3 console writes for "Create folder"; not a migration."""
    return key.endswith("/") and key.count("/") == 1


def parse_key(key: str, allowed: Collection[str]) -> MigrationKey:
    """Split and validate `<database>/<migration id>.sql` (or `.rollback.sql`)."""
    parts = key.split("/")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise RequestRefused(f"invalid key {key!r}: expected <database>/<migration id>.sql with no nested folders")
    database = database_name(parts[0], allowed)
    filename = parts[1]
    rollback = filename.endswith(ROLLBACK_SUFFIX)
    if rollback:
        migration_id = filename[: -len(ROLLBACK_SUFFIX)]
    elif filename.endswith(SQL_SUFFIX):
        migration_id = filename[: -len(SQL_SUFFIX)]
    else:
        raise RequestRefused(f"invalid key {key!r}: migrations are .sql files (and optional .rollback.sql)")
    if not _MIGRATION_ID.fullmatch(migration_id):
        raise RequestRefused(
            f"invalid key {key!r}: a migration id uses letters, digits, '_' and '-', starts with a letter "
            "or digit and is at most 191 characters"
        )
    if migration_id.startswith("post-apply"):
        # yoyo would run these on every invocation; a bucket-driven runner has no use for that.
        raise RequestRefused(f"invalid key {key!r}: yoyo post-apply hooks are not supported")
    return MigrationKey(key=key, database=database, migration_id=migration_id, rollback=rollback)
