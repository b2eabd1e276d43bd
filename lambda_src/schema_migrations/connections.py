"""Connections for one run: the root `postgres` database (locks), yoyo backends and read-only sessions."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from pipeline_common.config import DatabaseSettings
from pipeline_common.db import ManagedConnection, connect, connection_parameters
from pipeline_common.errors import PermanentError
from pipeline_common.secrets import SecretCache
from schema_migrations.backend import LambdaBackend, open_backend
from schema_migrations.keys import ROOT_DATABASE


class DatabaseMissing(PermanentError):
    """The target database does not exist (yet): a migration under postgres/ has to create it."""


# The server's answer when the database of a new connection does not exist (SQLSTATE 3D000, which
# psycopg2 does not expose for connection errors). Whatever name it quotes, each connection here
# names exactly one database, so this is that database: never a transient failure.
_DATABASE_MISSING = re.compile(r'database ".*" does not exist')


def _missing(exc: BaseException) -> bool:
    return bool(_DATABASE_MISSING.search(str(exc)))


class Connector:
    def __init__(self, settings: DatabaseSettings, secrets: SecretCache) -> None:
        self._settings = settings
        self._secrets = secrets

    def _for(self, database: str) -> DatabaseSettings:
        return dataclasses.replace(self._settings, database=database)

    def root(self) -> ManagedConnection:
        """The connection to `postgres` that carries the advisory locks; fetching it first also
        refreshes a rotated secret once, so the per-database connections below use a fresh one."""
        managed = ManagedConnection(self._for(ROOT_DATABASE), self._secrets)
        managed.get().autocommit = True
        return managed

    def params(self, database: str) -> dict[str, Any]:
        return connection_parameters(self._for(database), self._secrets.get_json(self._settings.secret_arn))

    def backend(self, database: str) -> LambdaBackend:
        try:
            return open_backend(self.params(database), self._settings.sslmode, self._settings.connect_timeout)
        except Exception as exc:
            if _missing(exc):
                raise DatabaseMissing(database) from exc
            raise

    def read_only(self, database: str) -> Any:
        """A session that cannot write: what dry runs and status use."""
        settings = self._for(database)
        try:
            connection = connect(settings, self._secrets.get_json(settings.secret_arn))
        except Exception as exc:
            if _missing(exc):
                raise DatabaseMissing(database) from exc
            raise
        connection.set_session(readonly=True, autocommit=True)
        return connection
