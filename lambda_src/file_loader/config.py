"""The file loader's settings, read once per sandbox from the environment (see docs/contracts.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from file_loader.routes import Route, parse_routes
from pipeline_common.config import ConfigError, DatabaseSettings, env_int, env_json, env_str
from pipeline_common.identifiers import IdentifierError, validate_identifier


@dataclass(frozen=True)
class LoaderConfig:
    database: DatabaseSettings
    routes: list[Route]
    source_bucket: str
    state_schema: str = "pipeline_state"
    secret_ttl_seconds: int = 300

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LoaderConfig:
        schema = env_str("STATE_SCHEMA", "pipeline_state", environ=environ)
        try:
            validate_identifier(schema, "schema")
        except IdentifierError as exc:
            raise ConfigError(f"environment variable STATE_SCHEMA: {exc}") from None
        return cls(
            database=DatabaseSettings.from_env("DB", environ=environ),
            routes=parse_routes(env_json("ROUTES", environ=environ)),
            source_bucket=env_str("SOURCE_BUCKET", environ=environ),
            state_schema=schema,
            secret_ttl_seconds=env_int("SECRET_TTL_SECONDS", 300, minimum=0, environ=environ),
        )
