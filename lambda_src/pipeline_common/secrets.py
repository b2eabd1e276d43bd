"""JSON secrets from Secrets Manager, cached per sandbox with a TTL.

Caching keeps a burst of invocations from hammering the Secrets Manager API; the TTL bounds how
long a sandbox keeps using a rotated password (and `invalidate` drops it at once when the
database rejects it).

Not Powertools Parameters' `get_secret(max_age=...)`, which caches as well (and whose `force_fetch`
would do for `invalidate`): it turns every Secrets Manager error into a `GetParameterError` holding
only the message, so `errors.is_retryable` could no longer tell throttling (retry) from a missing
secret or denied access (fail at once, naming it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from pipeline_common.config import ConfigError


class SecretCache:
    def __init__(
        self,
        client_factory: Callable[[], Any],
        ttl_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client_factory = client_factory
        self._client: Any = None
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[str, tuple[float, dict[str, Any]]] = {}

    def get_json(self, secret_id: str) -> dict[str, Any]:
        cached = self._entries.get(secret_id)
        now = self._clock()
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        value = self._fetch(secret_id)
        self._entries[secret_id] = (now, value)
        return value

    def invalidate(self, secret_id: str) -> None:
        self._entries.pop(secret_id, None)

    def _fetch(self, secret_id: str) -> dict[str, Any]:
        if self._client is None:
            self._client = self._client_factory()
        response = self._client.get_secret_value(SecretId=secret_id)
        raw = response.get("SecretString")
        if raw is None:
            raise ConfigError(f"secret {secret_id} has no SecretString; expected a JSON object")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise ConfigError(f"secret {secret_id} is not a JSON object") from None
        if not isinstance(value, dict):
            raise ConfigError(f"secret {secret_id} is not a JSON object")
        return value


def _secretsmanager_client() -> Any:
    import boto3

    return boto3.client("secretsmanager")


_default_cache: SecretCache | None = None


def default_cache(ttl_seconds: float = 300.0) -> SecretCache:
    """The sandbox-wide cache, created on first use."""
    global _default_cache
    if _default_cache is None:
        _default_cache = SecretCache(_secretsmanager_client, ttl_seconds)
    return _default_cache
