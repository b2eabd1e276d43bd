"""Typed configuration read from environment variables.

Every reader names the variable in its error, so a misconfigured function fails on its first
invocation with a message that says exactly which variable to fix.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline_common.errors import PermanentError
from pipeline_common.identifiers import IdentifierError, validate_identifier

_MISSING: Any = object()


class ConfigError(PermanentError, ValueError):
    """A configuration variable is missing or malformed."""


def env_str(name: str, default: str = _MISSING, *, environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    value = environ.get(name)
    if value is None or value == "":
        if default is _MISSING:
            raise ConfigError(f"environment variable {name} is required but not set")
        return default
    return value


def env_optional(name: str, *, environ: Mapping[str, str] | None = None) -> str | None:
    environ = os.environ if environ is None else environ
    return environ.get(name) or None


def env_int(
    name: str,
    default: int = _MISSING,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    raw = env_str(name, _MISSING if default is _MISSING else str(default), environ=environ)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"environment variable {name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"environment variable {name} must be <= {maximum}, got {value}")
    return value


def env_bool(name: str, default: bool = _MISSING, *, environ: Mapping[str, str] | None = None) -> bool:
    raw = env_str(name, _MISSING if default is _MISSING else str(default).lower(), environ=environ)
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"environment variable {name} must be true or false, got {raw!r}")


def env_choice(
    name: str, choices: tuple[str, ...], default: str = _MISSING, *, environ: Mapping[str, str] | None = None
) -> str:
    value = env_str(name, default, environ=environ)
    if value not in choices:
        raise ConfigError(f"environment variable {name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def env_json(name: str, default: Any = _MISSING, *, environ: Mapping[str, str] | None = None) -> Any:
    environ = os.environ if environ is None else environ
    raw = environ.get(name)
    if raw is None or raw == "":
        if default is _MISSING:
            raise ConfigError(f"environment variable {name} is required but not set")
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"environment variable {name} is not valid JSON: {exc}") from None


def env_list(name: str, default: list[str] = _MISSING, *, environ: Mapping[str, str] | None = None) -> list[str]:
    """A comma-separated list; blanks are dropped."""
    raw = env_str(name, _MISSING if default is _MISSING else ",".join(default), environ=environ)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_identifier(
    name: str, default: str = _MISSING, *, kind: str = "schema", environ: Mapping[str, str] | None = None
) -> str:
    """A SQL identifier (e.g. the state schema), refused with the variable's name when invalid."""
    value = env_str(name, default, environ=environ)
    try:
        return validate_identifier(value, kind)
    except IdentifierError as exc:
        raise ConfigError(f"environment variable {name}: {exc}") from None


SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


@dataclass(frozen=True)
class DatabaseSettings:
    """Where a database is and how to authenticate; credentials themselves live in the secret.

    `host`, `port` and `database` may be None when the secret carries them (`host`, `port`,
    `dbname` keys), as secrets written for RDS with a full connection description do.
    """

    engine: str
    host: str | None
    port: int | None
    database: str | None
    secret_arn: str
    sslmode: str = "require"
    connect_timeout: int = 5
    odbc_driver: str | None = None

    @classmethod
    def from_env(
        cls,
        prefix: str = "DB",
        *,
        engine: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> DatabaseSettings:
        """Read `<prefix>_HOST`, `_PORT`, `_NAME`, `_SECRET_ARN`, `_SSLMODE`, `_CONNECT_TIMEOUT`,
        `_ENGINE` and `_ODBC_DRIVER`."""
        engine = engine or env_choice(f"{prefix}_ENGINE", ENGINES, "postgresql", environ=environ)
        if engine not in ENGINES:
            raise ConfigError(f"unknown database engine {engine!r}; expected one of {', '.join(ENGINES)}")
        port = env_optional(f"{prefix}_PORT", environ=environ)
        return cls(
            engine=engine,
            host=env_optional(f"{prefix}_HOST", environ=environ),
            port=env_int(f"{prefix}_PORT", minimum=1, maximum=65535, environ=environ) if port else None,
            database=env_optional(f"{prefix}_NAME", environ=environ),
            secret_arn=env_str(f"{prefix}_SECRET_ARN", environ=environ),
            sslmode=env_choice(f"{prefix}_SSLMODE", SSL_MODES, "require", environ=environ),
            connect_timeout=env_int(f"{prefix}_CONNECT_TIMEOUT", 5, minimum=1, maximum=300, environ=environ),
            odbc_driver=env_optional(f"{prefix}_ODBC_DRIVER", environ=environ),
        )


ENGINES = ("postgresql", "mysql", "sqlserver")
