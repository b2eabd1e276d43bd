"""Throwaway PostgreSQL and MariaDB servers for tests, benchmarks and the local demo.

Each server lives in its own temporary directory on a free loopback port and is started from the
installed binaries (never the system services). PostgreSQL runs with TLS (a self-signed
certificate made at start), so the default `sslmode=require` is exercised for real.
When run as root, the servers run as the `postgres` / `mysql` users, as their binaries require.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ServerStartError(RuntimeError):
    """A database server could not be started; the message carries its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_user(user: str, argv: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if os.geteuid() == 0 else argv


def _chown(path: Path, user: str) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServerStartError(f"{what} failed ({result.returncode}): {result.stderr or result.stdout}")


def _wait_for_port(port: int, timeout: float, log: Path, what: str, process: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process is not None and process.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    text = log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"
    raise ServerStartError(f"{what} did not accept connections on port {port} within {timeout}s:\n{text}")


def pg_bin_dir() -> Path:
    """The newest installed PostgreSQL server binaries (Debian keeps them off PATH)."""
    override = os.environ.get("PG_BIN_DIR")
    if override:
        return Path(override)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise ServerStartError("PostgreSQL server binaries not found: install the postgresql package (make setup)")


@dataclass
class PostgresServer:
    """A running PostgreSQL server; `superuser`/`password` authenticate over TCP with scram."""

    port: int
    directory: Path
    superuser: str = "postgres"
    password: str = "postgres-local-pw"
    host: str = "127.0.0.1"
    ssl: bool = True
    _bin: Path = field(default_factory=pg_bin_dir)

    def dsn(self, database: str = "postgres", sslmode: str = "require") -> str:
        return (
            f"host={self.host} port={self.port} dbname={database} user={self.superuser} "
            f"password={self.password} sslmode={sslmode}"
        )

    def secret(self, database: str = "postgres") -> dict[str, object]:
        """The JSON an RDS-style secret would hold for this server."""
        return {
            "username": self.superuser,
            "password": self.password,
            "host": self.host,
            "port": self.port,
            "dbname": database,
            "engine": "postgres",
        }

    def psql(self, database: str, *args: str, input_text: str | None = None) -> str:
        env = {**os.environ, "PGPASSWORD": self.password, "PGSSLMODE": "require" if self.ssl else "disable"}
        argv = [str(self._bin / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-h", self.host, "-p", str(self.port)]
        argv += ["-U", self.superuser, "-d", database, *args]
        result = subprocess.run(argv, input=input_text, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr}")
        return result.stdout


@contextlib.contextmanager
def postgres_server(base_dir: str | None = None, settings: dict[str, str] | None = None) -> Iterator[PostgresServer]:
    """Start PostgreSQL in a new directory; stop it and remove the directory on exit."""
    bin_dir = pg_bin_dir()
    directory = Path(tempfile.mkdtemp(prefix="pg-", dir=base_dir))
    os.chmod(directory, 0o755)
    _chown(directory, "postgres")
    data = directory / "data"
    server = PostgresServer(port=free_port(), directory=directory, _bin=bin_dir)
    pwfile = directory / "pwfile"
    pwfile.write_text(server.password + "\n")
    _chown(pwfile, "postgres")
    log = directory / "server.log"
    try:
        _run(
            _as_user(
                "postgres",
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    server.superuser,
                    "--pwfile",
                    str(pwfile),
                    "--auth-host=scram-sha-256",
                    "--auth-local=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
            ),
            "initdb",
        )
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(server.port),
            "unix_socket_directories": str(directory),
            "max_connections": "100",
            # Throwaway data: durability off makes tests and benchmarks fast; baselines share the server.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            **(settings or {}),
        }
        if shutil.which("openssl"):
            _make_certificate(data, "postgres")
            options |= {"ssl": "on", "ssl_cert_file": "server.crt", "ssl_key_file": "server.key"}
        else:
            server.ssl = False
        with open(data / "postgresql.auto.conf", "a") as conf:
            conf.writelines(f"{key} = '{value}'\n" for key, value in options.items())
        _chown(directory, "postgres")
        _run(
            _as_user("postgres", [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "start"]),
            "pg_ctl start",
        )
        yield server
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                _as_user("postgres", [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                capture_output=True,
                check=False,
            )
        shutil.rmtree(directory, ignore_errors=True)


def _make_certificate(data: Path, owner: str) -> None:
    _run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(data / "server.key"),
            "-out",
            str(data / "server.crt"),
        ],
        "openssl",
    )
    for name in ("server.key", "server.crt"):
        os.chmod(data / name, 0o600)
        _chown(data / name, owner)


@dataclass
class MariaDBServer:
    port: int
    directory: Path
    user: str = "pipeline"
    password: str = "mariadb-local-pw"
    host: str = "127.0.0.1"

    @property
    def socket(self) -> Path:
        return self.directory / "mysqld.sock"

    def secret(self, database: str) -> dict[str, object]:
        return {
            "username": self.user,
            "password": self.password,
            "host": self.host,
            "port": self.port,
            "dbname": database,
            "engine": "mysql",
        }

    def connect(self, database: str | None = None, autocommit: bool = False) -> Any:
        """A PyMySQL connection over TCP as the test user (utf8mb4)."""
        import pymysql

        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=database,
            charset="utf8mb4",
            autocommit=autocommit,
        )

    def sql(self, statement: str, database: str | None = None) -> str:
        argv = ["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "--batch", "--skip-column-names"]
        if database:
            argv.append(database)
        result = subprocess.run(argv, input=statement, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"mariadb client failed: {result.stderr}")
        return result.stdout


def _mariadbd() -> str:
    for candidate in ("mariadbd", "/usr/sbin/mariadbd", "mysqld", "/usr/sbin/mysqld"):
        found = shutil.which(candidate)
        if found:
            return found
    raise ServerStartError("mariadbd not found: install the mariadb-server package (make setup)")


@contextlib.contextmanager
def mariadb_server(base_dir: str | None = None) -> Iterator[MariaDBServer]:
    """Start MariaDB (utf8mb4) in a new directory with a password user on TCP; clean up on exit."""
    daemon = _mariadbd()
    directory = Path(tempfile.mkdtemp(prefix="mariadb-", dir=base_dir))
    os.chmod(directory, 0o755)
    data = directory / "data"
    server = MariaDBServer(port=free_port(), directory=directory)
    log = directory / "server.log"
    run_user = ["--user=mysql"] if os.geteuid() == 0 else []
    if os.geteuid() == 0:
        _chown(directory, "mysql")
    process: subprocess.Popen | None = None
    try:
        _run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={data}",
                *run_user,
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            "mariadb-install-db",
        )
        process = subprocess.Popen(
            [
                daemon,
                "--no-defaults",
                f"--datadir={data}",
                f"--port={server.port}",
                "--bind-address=127.0.0.1",
                f"--socket={server.socket}",
                f"--pid-file={directory / 'mysqld.pid'}",
                f"--log-error={log}",
                *run_user,
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci",
                "--skip-log-bin",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-buffer-pool-size=256M",
                "--max-connections=200",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(server.port, 60, log, "MariaDB", process)
        server.sql(
            f"CREATE USER '{server.user}'@'%' IDENTIFIED BY '{server.password}';"
            f"GRANT ALL PRIVILEGES ON *.* TO '{server.user}'@'%' WITH GRANT OPTION; FLUSH PRIVILEGES;"
        )
        yield server
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(directory, ignore_errors=True)
