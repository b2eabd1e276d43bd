"""Database connections that live as long as the Lambda sandbox.

One `ManagedConnection` per database per sandbox: the first `get()` opens the connection, later
calls reuse it after a cheap health check and reopen it when the server dropped it. Reuse is what
keeps a burst of invocations from exhausting the database's connections; SQS maximum concurrency
and reserved concurrency bound how many sandboxes (and so connections) exist.

Drivers are imported when first needed, so a function only needs the driver it uses.
"""

from __future__ import annotations

import contextlib
import logging
import select
import ssl
from collections.abc import Iterator
from typing import Any

from pipeline_common.config import ConfigError, DatabaseSettings
from pipeline_common.errors import PermanentError
from pipeline_common.secrets import SecretCache, default_cache

logger = logging.getLogger(__name__)


def connection_parameters(settings: DatabaseSettings, secret: dict[str, Any]) -> dict[str, Any]:
    """Merge the settings with the secret; settings win, the secret fills what they leave out."""
    host = settings.host or secret.get("host")
    port = settings.port or secret.get("port") or DEFAULT_PORTS[settings.engine]
    database = settings.database or secret.get("dbname") or secret.get("database")
    missing = [
        name
        for name, value in (
            ("host", host),
            ("database", database),
            ("username", secret.get("username")),
            ("password", secret.get("password")),
        )
        if not value
    ]
    if missing:
        raise ConfigError(
            f"database connection for secret {settings.secret_arn} lacks {', '.join(missing)} "
            "(set the environment variables or add the keys to the secret)"
        )
    return {
        "host": str(host),
        "port": int(port),
        "database": str(database),
        "user": str(secret["username"]),
        "password": str(secret["password"]),
    }


DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "sqlserver": 1433}


def connect(settings: DatabaseSettings, secret: dict[str, Any]) -> Any:
    """Open a new DB-API connection with the driver that fits the settings."""
    params = connection_parameters(settings, secret)
    if settings.odbc_driver or settings.engine == "sqlserver":
        return _connect_odbc(settings, params)
    if settings.engine == "postgresql":
        return _connect_postgresql(settings, params)
    if settings.engine == "mysql":
        return _connect_mysql(settings, params)
    raise ConfigError(f"unknown database engine {settings.engine!r}")


def _connect_postgresql(settings: DatabaseSettings, params: dict[str, Any]) -> Any:
    import psycopg2

    return psycopg2.connect(
        host=params["host"],
        port=params["port"],
        dbname=params["database"],
        user=params["user"],
        password=params["password"],
        sslmode=settings.sslmode,
        connect_timeout=settings.connect_timeout,
        application_name="aws-data-pipelines",
        # Dead peers (a failed-over RDS instance) are noticed in seconds, not after the TCP timeout.
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
    )


def mysql_ssl_context(sslmode: str) -> ssl.SSLContext | None:
    """libpq's sslmode mapped to TLS for MySQL: `require` encrypts, `verify-*` also verifies."""
    if sslmode in ("disable", "allow", "prefer"):
        return None
    context = ssl.create_default_context()
    if sslmode == "require":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif sslmode == "verify-ca":
        context.check_hostname = False
    return context


def _connect_mysql(settings: DatabaseSettings, params: dict[str, Any]) -> Any:
    import pymysql

    return pymysql.connect(
        host=params["host"],
        port=params["port"],
        database=params["database"],
        user=params["user"],
        password=params["password"],
        ssl=mysql_ssl_context(settings.sslmode),
        connect_timeout=settings.connect_timeout,
        charset="utf8mb4",
        autocommit=False,
    )


def odbc_escape(value: str) -> str:
    """Brace-quote an ODBC connection-string value when `;`, `{`, `}`, `=` or edge spaces would
    change its meaning. Plain values stay bare: some drivers (psqlODBC) keep the braces of a
    quoted SERVER value."""
    if not any(ch in value for ch in ";{}=") and value == value.strip():
        return value
    return "{" + value.replace("}", "}}") + "}"


def odbc_connection_string(settings: DatabaseSettings, params: dict[str, Any]) -> str:
    driver = settings.odbc_driver or "FreeTDS"
    parts = {
        "DRIVER": "{" + driver.replace("}", "}}") + "}",
        "SERVER": odbc_escape(params["host"]),
        "PORT": str(params["port"]),
        "DATABASE": odbc_escape(params["database"]),
        "UID": odbc_escape(params["user"]),
        "PWD": odbc_escape(params["password"]),
    }
    encrypt = settings.sslmode not in ("disable", "allow", "prefer")
    lowered = driver.lower()
    if "freetds" in lowered:
        parts["TDS_Version"] = "7.4"
        parts["ClientCharset"] = "UTF-8"
        parts["Encryption"] = "require" if encrypt else "off"
    elif "sql server" in lowered:
        parts["Encrypt"] = "yes" if encrypt else "no"
        parts["TrustServerCertificate"] = "no" if settings.sslmode == "verify-full" else "yes"
    elif "postgres" in lowered:
        parts["SSLmode"] = settings.sslmode
        # Stream result sets through a cursor instead of buffering them whole in the driver.
        parts["UseDeclareFetch"] = "1"
        parts["Fetch"] = "10000"
    elif ("mariadb" in lowered or "mysql" in lowered) and encrypt:
        parts["SSLVERIFY"] = "1" if settings.sslmode.startswith("verify") else "0"
        parts["FORCETLS"] = "1"
    return ";".join(f"{key}={value}" for key, value in parts.items())


def _connect_odbc(settings: DatabaseSettings, params: dict[str, Any]) -> Any:
    import pyodbc

    return pyodbc.connect(odbc_connection_string(settings, params), autocommit=False, timeout=settings.connect_timeout)


class SessionScopeOnly(PermanentError, ValueError):
    """MySQL/MariaDB hold advisory locks and statement limits for the session only: asking for
    them per transaction is refused rather than letting them quietly outlive the transaction."""


def driver_of(connection: Any) -> str:
    """`psycopg2`, `pymysql` or `pyodbc`: the module a DB-API connection (or cursor) comes from."""
    module = type(connection).__module__.split(".")[0]
    if module not in ("psycopg2", "pymysql", "pyodbc"):
        raise ConfigError(f"unsupported database connection {type(connection).__module__}.{type(connection).__name__}")
    return module


def engine_of(connection: Any) -> str:
    """`postgresql` or `mysql` for a psycopg2 or PyMySQL connection or cursor: the engines whose
    locks, checkpoints and statement timeouts the shared library writes SQL for."""
    driver = driver_of(connection)
    if driver == "pyodbc":
        raise ConfigError("locks, checkpoints and statement timeouts need a psycopg2 or PyMySQL connection, not pyodbc")
    return "postgresql" if driver == "psycopg2" else "mysql"


def session_identity(connection: Any) -> tuple[Any, ...]:
    """What tells this server session apart from any other, without a round trip: the object, the
    server's session id and the database (an object's id alone is reused once it is freed)."""
    if driver_of(connection) == "psycopg2":
        return (id(connection), connection.get_backend_pid(), connection.dsn)
    if driver_of(connection) == "pymysql":
        return (id(connection), connection.thread_id(), connection.host, connection.port, connection.db)
    return (id(connection),)


def is_alive(connection: Any) -> bool:
    """False when the connection is unusable. PostgreSQL connections are asked with a round trip
    only when their socket has something to read (see `_nothing_to_read`)."""
    if getattr(connection, "closed", 0):  # psycopg2 marks connections it knows are dead
        return False
    try:
        rollback_quietly(connection)
        if type(connection).__module__.startswith("psycopg2"):
            return _nothing_to_read(connection) or _ping_outside_transaction(connection)
        cursor = connection.cursor()
        try:
            cursor.execute("SELECT 1")
            cursor.fetchall()
        finally:
            cursor.close()
        connection.rollback()
        return True
    except Exception:  # noqa: BLE001 - any driver error means "reconnect"
        return False


def _nothing_to_read(connection: Any) -> bool:
    """An idle session's socket stays silent: a server ending the session (terminated, restarted,
    failed over) writes its reason and closes, so a silent socket needs no round trip. Anything
    to read (that reason, an EOF, a notification) sends the caller to the real ping."""
    poller = select.poll()
    poller.register(connection.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    return not poller.poll(0)


def _ping_outside_transaction(connection: Any) -> bool:
    with outside_transaction(connection), connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchall()
    return True


@contextlib.contextmanager
def outside_transaction(connection: Any) -> Iterator[None]:
    """Run the block's statements in autocommit on an idle psycopg2 connection (after a commit or
    rollback): one round trip each, where psycopg2 would send BEGIN before them and need a
    COMMIT or ROLLBACK after."""
    previous = connection.autocommit
    connection.autocommit = True  # sends nothing: the connection is idle
    try:
        yield
    finally:
        connection.autocommit = previous


def rollback_quietly(connection: Any) -> None:
    """Roll back, ignoring a connection that is already broken (the next get() reopens it)."""
    with contextlib.suppress(Exception):
        connection.rollback()


def is_authentication_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(
        marker in text
        for marker in ("password authentication failed", "access denied", "login failed", "28p01", "28000")
    )


class ManagedConnection:
    """The sandbox's connection to one database."""

    def __init__(self, settings: DatabaseSettings, secrets: SecretCache | None = None) -> None:
        self.settings = settings
        self._secrets = secrets
        self._connection: Any = None
        self.opened = 0  # how many times a connection was opened; visible to tests and logs

    def get(self) -> Any:
        """A healthy connection with no transaction open."""
        if self._connection is not None and is_alive(self._connection):
            return self._connection
        if self._connection is not None:
            logger.warning("database connection lost; reconnecting", extra={"engine": self.settings.engine})
            self.close()
        self._connection = self._open()
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            # Closing a dead connection may fail; it is gone either way.
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None

    def _open(self) -> Any:
        secrets = self._secrets or default_cache()
        try:
            connection = connect(self.settings, secrets.get_json(self.settings.secret_arn))
        except Exception as exc:
            if not is_authentication_error(exc):
                raise
            # The password may have been rotated since the secret was cached: fetch it again once.
            secrets.invalidate(self.settings.secret_arn)
            connection = connect(self.settings, secrets.get_json(self.settings.secret_arn))
        self.opened += 1
        return connection
