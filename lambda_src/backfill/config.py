"""The backfill function's settings, from the environment Terraform sets (docs/contracts.md).

- `BACKFILL_JOBS`: JSON list of jobs (`backfill.jobs`);
- `BACKFILL_DB_ENGINE` (`mysql` | `postgresql`), `BACKFILL_DB_HOST`, `_PORT`, `_NAME`,
  `_SECRET_ARN`, `_SSLMODE`: the database the jobs run in (its own prefix: it is rarely the unified
  database the other pipelines call `DB`);
- `BACKFILL_DB_REPLICA_HOSTS`: MySQL/MariaDB replicas whose lag pauses the jobs, `host[:port]`,
  comma-separated (same credentials);
- `STATE_SCHEMA`: where the checkpoint table lives (default: the connection's database on MySQL,
  `pipeline_state` on PostgreSQL);
- `SCHEDULE_NAME`, `SCHEDULE_GROUP`, `DISABLE_SCHEDULE_WHEN_DONE`: the function's own schedule,
  disabled once every job is finished;
- `POWERTOOLS_METRICS_NAMESPACE`: where the progress metrics go.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from backfill.jobs import Job, parse_jobs
from pipeline_common.config import (
    ConfigError,
    DatabaseSettings,
    env_bool,
    env_int,
    env_json,
    env_list,
    env_optional,
    env_str,
)
from pipeline_common.identifiers import IdentifierError, validate_identifier

DEFAULT_NAMESPACE = "Pipelines/Backfill"


@dataclass(frozen=True)
class Settings:
    jobs: list[Job]
    database: DatabaseSettings
    state_schema: str | None
    replicas: tuple[DatabaseSettings, ...] = ()
    schedule_name: str | None = None
    schedule_group: str = "default"
    disable_schedule_when_done: bool = True
    metrics_namespace: str = DEFAULT_NAMESPACE
    secret_ttl_seconds: int = 300

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        database = DatabaseSettings.from_env("BACKFILL_DB", environ=environ)
        if database.engine not in ("mysql", "postgresql"):
            raise ConfigError(
                f"environment variable BACKFILL_DB_ENGINE must be mysql or postgresql, got {database.engine!r}"
            )
        state_schema = env_optional("STATE_SCHEMA", environ=environ)
        if state_schema is None and database.engine == "postgresql":
            state_schema = "pipeline_state"
        if state_schema is not None:
            try:
                validate_identifier(state_schema, "schema", database.engine)
            except IdentifierError as exc:
                raise ConfigError(f"environment variable STATE_SCHEMA: {exc}") from None
        return cls(
            jobs=parse_jobs(env_json("BACKFILL_JOBS", environ=environ), database.engine),
            database=database,
            state_schema=state_schema,
            replicas=tuple(
                replica_settings(database, host) for host in env_list("BACKFILL_DB_REPLICA_HOSTS", [], environ=environ)
            ),
            schedule_name=env_optional("SCHEDULE_NAME", environ=environ),
            schedule_group=env_str("SCHEDULE_GROUP", "default", environ=environ),
            disable_schedule_when_done=env_bool("DISABLE_SCHEDULE_WHEN_DONE", True, environ=environ),
            metrics_namespace=env_str("POWERTOOLS_METRICS_NAMESPACE", DEFAULT_NAMESPACE, environ=environ),
            secret_ttl_seconds=env_int("SECRET_TTL_SECONDS", 300, minimum=0, environ=environ),
        )


def replica_settings(database: DatabaseSettings, text: str) -> DatabaseSettings:
    """`host` or `host:port` of a MySQL replica, reached like the primary."""
    if database.engine != "mysql":
        raise ConfigError("environment variable BACKFILL_DB_REPLICA_HOSTS applies to MySQL/MariaDB only")
    host, _, port = text.partition(":")
    if not host or (port and not port.isdigit()) or (port and not 1 <= int(port) <= 65535):
        raise ConfigError(f"environment variable BACKFILL_DB_REPLICA_HOSTS: {text!r} is not host or host:port")
    return replace(database, host=host, port=int(port) if port else database.port)
