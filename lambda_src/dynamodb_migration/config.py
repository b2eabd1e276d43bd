"""Settings of the three migration functions, read once per sandbox from the environment.

The three functions share one package and one set of variables; `MIGRATION_FUNCTION` says which
entry point a function is (copy, sync or verify), so the deployed handler string stays the one in
build/manifest.json. Every variable is checked here, with a `ConfigError` naming it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from dynamodb_migration.transform import Transform, TransformError, parse_transform
from pipeline_common.config import ConfigError, env_choice, env_int, env_list, env_optional, env_str

FUNCTIONS = ("copy", "sync", "verify")
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")


@dataclass(frozen=True)
class Settings:
    function: str  # copy | sync | verify
    source_table: str
    target_table: str
    state_table: str
    key_attributes: tuple[str, ...]  # partition key, then sort key if any
    transform: Transform
    source_stream_arn: str | None = None  # the stream the sync reads; the copy refuses any other
    total_segments: int = 8
    copy_concurrency: int = 4
    page_size: int = 1000
    write_rate_limit: int = 0  # items per second written by the copy (0 = unlimited)
    touched_ttl_days: int = 30
    results_topic_arn: str | None = None
    verify_examples: int = 10

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        keys = tuple(env_list("KEY_ATTRIBUTES", environ=environ))
        if not 1 <= len(keys) <= 2 or len(set(keys)) != len(keys):
            raise ConfigError(
                "environment variable KEY_ATTRIBUTES must name the partition key and, if the table has one, "
                f"the sort key (comma-separated), got {environ.get('KEY_ATTRIBUTES')!r}"
            )
        try:
            transform = parse_transform(environ.get("TRANSFORM") or "{}", keys)
        except TransformError as exc:
            raise ConfigError(f"environment variable TRANSFORM: {exc}") from None
        settings = cls(
            function=env_choice("MIGRATION_FUNCTION", FUNCTIONS, environ=environ),
            source_table=_table("SOURCE_TABLE", environ),
            target_table=_table("TARGET_TABLE", environ),
            state_table=_table("STATE_TABLE", environ),
            key_attributes=keys,
            transform=transform,
            source_stream_arn=env_optional("SOURCE_STREAM_ARN", environ=environ),
            total_segments=env_int("TOTAL_SEGMENTS", 8, minimum=1, maximum=1000, environ=environ),
            copy_concurrency=env_int("COPY_CONCURRENCY", 4, minimum=1, maximum=64, environ=environ),
            page_size=env_int("PAGE_SIZE", 1000, minimum=25, maximum=10000, environ=environ),
            write_rate_limit=env_int("WRITE_RATE_LIMIT", 0, minimum=0, environ=environ),
            touched_ttl_days=env_int("TOUCHED_TTL_DAYS", 30, minimum=2, maximum=365, environ=environ),
            results_topic_arn=env_optional("RESULTS_TOPIC_ARN", environ=environ),
            verify_examples=env_int("VERIFY_EXAMPLES", 10, minimum=0, maximum=100, environ=environ),
        )
        if settings.function == "verify" and settings.results_topic_arn is None:
            raise ConfigError("environment variable RESULTS_TOPIC_ARN is required by the verify function")
        if len({settings.source_table, settings.target_table, settings.state_table}) != 3:
            raise ConfigError("SOURCE_TABLE, TARGET_TABLE and STATE_TABLE must be three different tables")
        return settings


def _table(name: str, environ: Mapping[str, str]) -> str:
    value = env_str(name, environ=environ)
    if not _TABLE_NAME.match(value):
        raise ConfigError(f"environment variable {name} must be a DynamoDB table name, got {value!r}")
    return value
