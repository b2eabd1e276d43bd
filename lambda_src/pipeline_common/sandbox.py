"""What a handler keeps between invocations of a warm Lambda sandbox, created on first use.

Each handler module holds one `Sandbox` built from its settings loader; nothing is created at
import. The first invocation parses the settings (a bad variable fails that invocation, naming
it), and each client, connection or other object is made the first time it is asked for and
reused after that. `reset()` closes the connections and forgets everything: tests call it between
cases, and so would a long-lived local process whose configuration changed.

    sandbox = Sandbox(LoaderConfig.from_env, secret_ttl=lambda config: config.secret_ttl_seconds)

    def handler(event, context):
        config = sandbox.settings
        db = sandbox.connection("db", config.database)
        s3 = sandbox.client("s3")
        ledger = sandbox.keep("ledger", lambda: Ledger(config.state_schema, "cdc_files", "cdc_rejects"))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pipeline_common.config import DatabaseSettings
from pipeline_common.db import ManagedConnection
from pipeline_common.secrets import SecretCache

SettingsT = TypeVar("SettingsT")
T = TypeVar("T")


class Sandbox(Generic[SettingsT]):
    def __init__(
        self, load_settings: Callable[[], SettingsT], *, secret_ttl: Callable[[SettingsT], float] = lambda _: 300
    ) -> None:
        """`secret_ttl`: how long a fetched secret is used, from the settings (a rotated password
        is picked up at most that late)."""
        self._load_settings = load_settings
        self._secret_ttl = secret_ttl
        self._settings: SettingsT | None = None
        self._clients: dict[str, Any] = {}
        self._connections: dict[str, ManagedConnection] = {}
        self._secrets: SecretCache | None = None
        self._kept: dict[str, Any] = {}

    @property
    def settings(self) -> SettingsT:
        """The function's settings, parsed on first use."""
        if self._settings is None:
            self._settings = self._load_settings()
        return self._settings

    def client(self, service: str, config: Any = None) -> Any:
        """One boto3 client per service (`config`: a botocore Config, used when first created)."""
        if service not in self._clients:
            import boto3

            self._clients[service] = boto3.client(service, config=config)
        return self._clients[service]

    def secrets(self) -> SecretCache:
        """The sandbox's Secrets Manager cache, shared by its connections."""
        if self._secrets is None:
            self._secrets = SecretCache(lambda: self.client("secretsmanager"), self._secret_ttl(self.settings))
        return self._secrets

    def connection(self, name: str, settings: DatabaseSettings) -> ManagedConnection:
        """The sandbox's connection called `name`: opened on first `get()`, health-checked and
        reused after that."""
        if name not in self._connections:
            self._connections[name] = ManagedConnection(settings, self.secrets())
        return self._connections[name]

    def keep(self, name: str, factory: Callable[[], T]) -> T:
        """Any other object that lives as long as the sandbox (a ledger, a throughput estimate)."""
        if name not in self._kept:
            self._kept[name] = factory()
        return self._kept[name]  # type: ignore[no-any-return]

    def reset(self) -> None:
        """Close the connections and forget everything; the next use starts from scratch."""
        for connection in self._connections.values():
            connection.close()
        self._settings = None
        self._clients.clear()
        self._connections.clear()
        self._secrets = None
        self._kept.clear()
