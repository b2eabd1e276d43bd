"""Settings of the schema migrations function, read once per sandbox from the environment."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from pipeline_common.config import ConfigError, DatabaseSettings, env_int, env_list, env_str
from pipeline_common.identifiers import IdentifierError, validate_identifier

# RDS Proxy endpoints look like `name.proxy-abc123.eu-west-1.rds.amazonaws.com`.
_PROXY_HOST = re.compile(r"\.proxy-[a-z0-9]+\.[a-z0-9-]+\.rds\.amazonaws\.com\.?$", re.IGNORECASE)


@dataclass(frozen=True)
class Settings:
    bucket: str
    results_topic_arn: str
    allowed_databases: frozenset[str]  # empty: any valid name
    lock_stale_seconds: int
    database: DatabaseSettings
    secret_ttl_seconds: int = 300

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        database = DatabaseSettings.from_env("DB", engine="postgresql", environ=environ)
        if database.host and _PROXY_HOST.search(database.host):
            # Session-level advisory locks and CREATE DATABASE need a session of their own;
            # through RDS Proxy they pin or misbehave, so migrations talk to the instance.
            raise ConfigError(
                f"environment variable DB_HOST must be the RDS instance endpoint, not an RDS Proxy endpoint "
                f"({database.host})"
            )
        allowed = env_list("ALLOWED_DATABASES", [], environ=environ)
        for name in allowed:
            try:
                validate_identifier(name, "database")
            except IdentifierError as exc:
                raise ConfigError(f"environment variable ALLOWED_DATABASES: {exc}") from None
        return cls(
            bucket=env_str("MIGRATIONS_BUCKET", environ=environ),
            results_topic_arn=env_str("RESULTS_TOPIC_ARN", environ=environ),
            allowed_databases=frozenset(allowed),
            lock_stale_seconds=env_int("LOCK_STALE_SECONDS", 900, minimum=1, environ=environ),
            database=database,
            secret_ttl_seconds=env_int("SECRET_TTL_SECONDS", 300, minimum=0, environ=environ),
        )
