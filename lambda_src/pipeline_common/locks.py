"""Advisory locks with one key scheme for every pipeline, on PostgreSQL and MySQL/MariaDB.

A lock is named by a `LockKey`: a namespace (whose resource: usually the state table the row
lives in, `pipeline_state.file_loads`) and a name (which resource: an object version, a table, a
job). Both are hashed with blake2b, so any text fits and namespaces never meet:

- PostgreSQL: the first 8 bytes as one signed bigint, `pg_advisory_*(bigint)`. Locks belong to
  the database the connection is in. A collision of two keys only serialises two unrelated units.
- MySQL/MariaDB: `GET_LOCK` names are server-wide and at most 64 characters, so the name is
  `pipelines:` and 40 hex digits of a SHA-2 over the current database and the key, computed by
  the server in the statement: locks belong to a database there too.

The scope is explicit:

- `Scope.TRANSACTION` (PostgreSQL only): released by COMMIT or ROLLBACK, nothing to forget.
- `Scope.SESSION`: held until `unlock` or until the connection closes; when a Lambda is killed
  the server drops its session and the lock with it. Session locks are not transactional: one
  taken in a transaction that rolls back is still held. MySQL/MariaDB only have this scope, and
  a transaction lock is refused there rather than quietly outliving the transaction.

Rolling deploys: while a new release rolls out, old sandboxes finish their invocations next to
new ones. Had the key of a resource changed, both could hold "its" lock at once and, say, load
the same object twice. A key therefore carries the `legacy` keys earlier releases used for the
same resource (a bigint, or PostgreSQL's two-int4 form); they are taken too, so old and new code
exclude each other. Drop them once no earlier release can run.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pipeline_common.db import SessionScopeOnly, engine_of, session_identity
from pipeline_common.errors import RetryableError

LegacyKey = int | tuple[int, int]


class Scope(enum.Enum):
    TRANSACTION = "transaction"
    SESSION = "session"


class LockTimeout(RetryableError):
    """A lock could not be taken within the time allowed."""


@dataclass(frozen=True)
class LockKey:
    namespace: str
    name: str
    legacy: tuple[LegacyKey, ...] = field(default=(), compare=False)

    @property
    def digest(self) -> bytes:
        # JSON keeps the two parts apart whatever characters they hold.
        return hashlib.blake2b(json.dumps([self.namespace, self.name]).encode(), digest_size=16).digest()

    @property
    def pg(self) -> int:
        """The PostgreSQL key: a signed bigint."""
        return int.from_bytes(self.digest[:8], "big", signed=True)

    def pg_keys(self) -> list[LegacyKey]:
        """Every PostgreSQL key to take, in the order they are taken: this scheme's, then legacy."""
        return [self.pg, *self.legacy]

    def __str__(self) -> str:
        return f"{self.namespace}:{self.name}"


# MariaDB answers NULL at once to a negative ("infinite") GET_LOCK timeout: a year it is.
_MYSQL_FOREVER = 365 * 86400
# The GET_LOCK name for a key digest (hex), computed by the server so it includes the database.
_MYSQL_NAME = "CONCAT('pipelines:', LEFT(SHA2(CONCAT_WS(0x1f, DATABASE(), %s), 256), 40))"


def _pg_call(function: str, key: LegacyKey) -> tuple[str, tuple[int, ...]]:
    if isinstance(key, tuple):
        return f"{function}(%s, %s)", key
    return f"{function}(%s)", (key,)


def _pg_function(scope: Scope, *, wait: bool) -> str:
    return ("pg_advisory" if wait else "pg_try_advisory") + ("_xact_lock" if scope is Scope.TRANSACTION else "_lock")


def try_lock(conn: Any, key: LockKey, scope: Scope) -> bool:
    """Take `key` without waiting; False when another session holds it (or one of its legacy
    keys). A refused session lock leaves nothing held; a refused transaction lock may hold part
    of the keys until the transaction ends, which the caller does next (it cannot proceed)."""
    if engine_of(conn) == "mysql":
        _mysql_scope(scope)
        return _mysql_get(conn, key, 0)
    calls = [_pg_call(_pg_function(scope, wait=False), k) for k in key.pg_keys()]
    with conn.cursor() as cur:
        # One round trip for the usual single key and for a key with legacy keys alike.
        cur.execute(
            "SELECT ARRAY[" + ", ".join(text for text, _ in calls) + "]",
            tuple(p for _, params in calls for p in params),
        )
        taken = list(cur.fetchone()[0])
        if not all(taken) and scope is Scope.SESSION:
            _pg_unlock(cur, [k for held, k in zip(taken, key.pg_keys(), strict=True) if held])
    return all(taken)


def lock(conn: Any, key: LockKey, scope: Scope, *, timeout_ms: float | None) -> float:
    """Wait for `key` up to `timeout_ms` (None: as long as it takes); returns the seconds waited.

    Raises `LockTimeout` when the time runs out. On PostgreSQL the wait is bounded by
    `lock_timeout`, set for the wait only: inside a transaction a timeout aborts it and the caller
    rolls back; on an autocommit connection nothing is left held or set.
    """
    started = time.monotonic()

    def left_ms() -> float | None:
        return None if timeout_ms is None else timeout_ms - (time.monotonic() - started) * 1000

    def timed_out() -> LockTimeout:
        return LockTimeout(f"lock {key} still held by another session after {time.monotonic() - started:.1f} s")

    if timeout_ms is not None and timeout_ms <= 0:
        raise LockTimeout(f"no time left to wait for lock {key}")
    if engine_of(conn) == "mysql":
        _mysql_scope(scope)
        if not _mysql_get(conn, key, _MYSQL_FOREVER if timeout_ms is None else timeout_ms / 1000):
            raise timed_out()
        return time.monotonic() - started
    from psycopg2 import errors

    taken: list[LegacyKey] = []
    with conn.cursor() as cur:
        # In a fixed order (this scheme's key first), so two waiters cannot deadlock.
        for pg_key in key.pg_keys():
            left = left_ms()
            try:
                # Out of time between keys: one last 1 ms try still takes a free key.
                with _lock_timeout(conn, cur, None if left is None else max(1.0, left)):
                    text, params = _pg_call(_pg_function(scope, wait=True), pg_key)
                    cur.execute(f"SELECT {text}", params)
            except errors.LockNotAvailable:
                if scope is Scope.SESSION and taken:
                    # Session locks outlive the transaction the failed wait aborted: end it, release them.
                    if not conn.autocommit:
                        conn.rollback()
                    _pg_unlock(cur, taken)
                raise timed_out() from None
            taken.append(pg_key)
    return time.monotonic() - started


def unlock(conn: Any, key: LockKey) -> None:
    """Release a session lock taken by `try_lock` or `lock`."""
    if engine_of(conn) == "mysql":
        with conn.cursor() as cur:
            cur.execute(f"SELECT RELEASE_LOCK({_MYSQL_NAME})", (key.digest.hex(),))
        return
    with conn.cursor() as cur:
        _pg_unlock(cur, list(reversed(key.pg_keys())))


@contextmanager
def session_lock(conn: Any, key: LockKey, *, timeout_ms: float | None = 0) -> Iterator[bool]:
    """Hold a session lock for the block; yields False (and holds nothing) when `timeout_ms` is 0
    and the lock is busy. With a timeout, waits and raises `LockTimeout` instead."""
    if timeout_ms == 0:
        held = try_lock(conn, key, Scope.SESSION)
    else:
        lock(conn, key, Scope.SESSION, timeout_ms=timeout_ms)
        held = True
    try:
        yield held
    finally:
        if held:
            unlock(conn, key)


def _pg_unlock(cur: Any, keys: Sequence[LegacyKey]) -> None:
    """Release session locks, in the order given, in one round trip."""
    if not keys:
        return
    calls = [_pg_call("pg_advisory_unlock", k) for k in keys]
    cur.execute("SELECT " + ", ".join(text for text, _ in calls), tuple(p for _, params in calls for p in params))


@contextmanager
def _lock_timeout(conn: Any, cur: Any, timeout_ms: float | None) -> Iterator[None]:
    if timeout_ms is None:
        yield
        return
    local = not conn.autocommit
    cur.execute(
        "SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, %s)",
        (f"{max(1, math.ceil(timeout_ms))}ms", local),
    )
    previous = cur.fetchone()[0]
    try:
        yield
    except Exception:
        if not local:  # in a transaction the abort (and its rollback) undoes the setting
            cur.execute("SELECT set_config('lock_timeout', %s, false)", (previous,))
        raise
    cur.execute("SELECT set_config('lock_timeout', %s, %s)", (previous, local))


def _mysql_scope(scope: Scope) -> None:
    if scope is not Scope.SESSION:
        raise SessionScopeOnly(
            "MySQL/MariaDB locks (GET_LOCK) are session-scoped: COMMIT does not release them; "
            "take a Scope.SESSION lock and unlock it"
        )


def mysql_lock_name(conn: Any, key: LockKey) -> str:
    """The `GET_LOCK` name of `key` in the connection's database (for `IS_USED_LOCK` and operators)."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT {_MYSQL_NAME}", (key.digest.hex(),))
        return str(cur.fetchone()[0])


def _mysql_get(conn: Any, key: LockKey, seconds: float) -> bool:
    with conn.cursor() as cur:
        cur.execute(f"SELECT GET_LOCK({_MYSQL_NAME}, %s)", (key.digest.hex(), seconds))
        (taken,) = cur.fetchone()
    return taken == 1


@dataclass
class Ddl:
    """Statements creating a pipeline's state tables, run once per connection under a lock.

    `CREATE ... IF NOT EXISTS` alone races: two sessions both see "missing" and one fails on the
    catalog's unique index. On PostgreSQL the statements run in one transaction under a
    transaction lock and commit; MySQL commits each DDL statement itself (and an autocommit
    connection has no transaction), so there they run under a session lock released after them.
    Pipelines creating tables in the same schema pass the same key (`ddl_key(schema)`), so their
    first runs do not race on the schema either.
    """

    key: LockKey
    statements: Sequence[Any]
    _done: set[tuple[Any, ...]] = field(default_factory=set, init=False, repr=False)

    def ensure(self, conn: Any) -> None:
        session = session_identity(conn)
        if session in self._done:
            return
        run_locked(conn, self.key, self.statements)
        self._done.add(session)


def ddl_key(schema: str) -> LockKey:
    return LockKey("ddl", schema)


def run_locked(conn: Any, key: LockKey, statements: Iterable[Any]) -> None:
    """Run `statements` under `key` and commit (see `Ddl`). Without a transaction to hold a lock
    (MySQL DDL commits itself; an autocommit PostgreSQL connection) a session lock is held."""
    if engine_of(conn) == "mysql" or conn.autocommit:
        with session_lock(conn, key, timeout_ms=None), conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
        conn.commit()
        return
    with conn, conn.cursor() as cur:
        lock(conn, key, Scope.TRANSACTION, timeout_ms=None)
        for statement in statements:
            cur.execute(statement)
