"""The file loader's settings, read once per sandbox from the environment (see docs/contracts.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from file_loader.routes import Route, parse_routes
from pipeline_common.config import DatabaseSettings, env_identifier, env_int, env_json, env_str


@dataclass(frozen=True)
class LoaderConfig:
    database: DatabaseSettings
    routes: list[Route]
    source_bucket: str
    state_schema: str = "pipeline_state"
    secret_ttl_seconds: int = 300

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LoaderConfig:
        return cls(
            database=DatabaseSettings.from_env("DB", environ=environ),
            routes=parse_routes(env_json("ROUTES", environ=environ)),
            source_bucket=env_str("SOURCE_BUCKET", environ=environ),
            state_schema=env_identifier("STATE_SCHEMA", "pipeline_state", environ=environ),
            secret_ttl_seconds=env_int("SECRET_TTL_SECONDS", 300, minimum=0, environ=environ),
        )
