"""A ledger of S3 object versions loaded into PostgreSQL, and its table of rejected rows.

One ledger row per object version (bucket, key, version id or ETag). A load writes its row in
the same transaction as the data, so "the ledger says loaded" and "the rows are there" are the
same fact; a replay finds the row and commits nothing new. Attempts that fail or stop at the
deadline are recorded in a transaction of their own after the data transaction rolled back, so
operators see them without any data committing.

The table names are parameters, so each pipeline keeps its own ledger with this code (the file
loader's `file_loads` / `file_rejects`; another pipeline passes its own names). Loads of one
object version are serialised by a transaction-scoped advisory lock whose key's namespace is the
ledger table: two ledgers never share locks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from psycopg2 import sql
from psycopg2.extras import Json

from pipeline_common.deadline import TimeBudget, statement_limit_ms
from pipeline_common.identifiers import validate_identifier
from pipeline_common.locks import Ddl, LegacyKey, LockKey, Scope, ddl_key, try_lock
from pipeline_common.pgload import copy_in

logger = logging.getLogger(__name__)

TERMINAL = ("loaded", "rejected")

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    bucket text NOT NULL,
    key text NOT NULL,
    version text NOT NULL,
    route integer,
    target_table text,
    status text NOT NULL CHECK (status IN ('loaded', 'rejected', 'failed', 'deferred')),
    lines bigint,
    rows_loaded bigint,
    rows_rejected bigint,
    bytes bigint,
    attempts integer NOT NULL DEFAULT 1,
    error text,
    error_line bigint,
    duration_ms bigint,
    details jsonb,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    loaded_at timestamptz,
    PRIMARY KEY (bucket, key, version)
)
"""

REJECTS_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bucket text NOT NULL,
    key text NOT NULL,
    version text NOT NULL,
    target_table text NOT NULL,
    line bigint,
    raw text NOT NULL,
    reason text NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now()
)
"""

REJECTS_INDEX = "CREATE INDEX IF NOT EXISTS {index} ON {table} (bucket, key, version)"

REJECT_COLUMNS = ["bucket", "key", "version", "target_table", "line", "raw", "reason"]


@dataclass(frozen=True)
class ObjectId:
    bucket: str
    key: str
    version: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key} ({self.version})"


@dataclass(frozen=True)
class Outcome:
    status: str
    route: int | None = None
    target_table: str | None = None
    lines: int | None = None
    rows_loaded: int | None = None
    rows_rejected: int | None = None
    bytes: int | None = None
    error: str | None = None
    error_line: int | None = None
    duration_ms: int | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class Claim:
    locked: bool
    status: str | None = None  # the object's ledger status when locked

    @property
    def done(self) -> bool:
        """Loaded or rejected before: a replay, which changes nothing."""
        return self.status in TERMINAL


class Ledger:
    def __init__(
        self,
        schema: str,
        table: str,
        rejects_table: str,
        *,
        legacy_lock: Callable[[ObjectId], LegacyKey] | None = None,
    ) -> None:
        """`legacy_lock` gives the key an earlier release locked an object version with, taken
        too so both releases exclude each other during a rolling deploy (see `pipeline_common.locks`)."""
        self.schema = validate_identifier(schema, "schema")
        self.table = validate_identifier(table, "table")
        self.rejects_table = validate_identifier(rejects_table, "table")
        self._loads = sql.Identifier(self.schema, self.table)
        self._rejects = sql.Identifier(self.schema, self.rejects_table)
        self._legacy_lock = legacy_lock
        index = sql.Identifier(f"{self.rejects_table}_object")
        self._ddl = Ddl(
            ddl_key(self.schema),
            [
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)),
                sql.SQL(LEDGER_DDL).format(table=self._loads),
                sql.SQL(REJECTS_DDL).format(table=self._rejects),
                sql.SQL(REJECTS_INDEX).format(index=index, table=self._rejects),
            ],
        )

    def ensure(self, conn: Any) -> None:
        """Create the schema and tables if missing, once per connection (under the schema's DDL lock)."""
        self._ddl.ensure(conn)

    def lock_key(self, obj: ObjectId) -> LockKey:
        legacy = () if self._legacy_lock is None else (self._legacy_lock(obj),)
        return LockKey(f"{self.schema}.{self.table}", f"{obj.bucket}\0{obj.key}\0{obj.version}", legacy)

    def try_lock(self, cur: Any, obj: ObjectId) -> bool:
        """Take the object version's transaction-scoped lock without waiting; False when another
        invocation is loading it right now (the caller rolls back)."""
        return try_lock(cur.connection, self.lock_key(obj), Scope.TRANSACTION)

    def claim(self, cur: Any, obj: ObjectId, deadline: TimeBudget) -> Claim:
        """Start the unit of work on `obj`: its lock, then in one more round trip its ledger status
        and the transaction's statements bounded by `deadline` (as `bound_statements`).

        The status is read in a statement of its own, after the lock is granted: READ COMMITTED
        takes a statement's snapshot when it starts, so a load committed while the lock was being
        taken would be missed by a status read in the locking statement, and loaded twice. Not
        locked: the caller rolls back (another invocation is at it).
        """
        if not self.try_lock(cur, obj):
            return Claim(locked=False)
        cur.execute(
            sql.SQL(
                "SELECT (SELECT status FROM {} WHERE bucket = %s AND key = %s AND version = %s), "
                "set_config('statement_timeout', %s, true)"
            ).format(self._loads),
            (obj.bucket, obj.key, obj.version, str(statement_limit_ms(deadline))),
        )
        return Claim(locked=True, status=cur.fetchone()[0])

    def record(self, cur: Any, obj: ObjectId, outcome: Outcome) -> None:
        """Insert or update the object's row; `attempts` counts every recorded attempt. A row
        already loaded or rejected is never changed."""
        # `details` is named only when given: ledgers created before the column was added lack it.
        details = outcome.details is not None
        extra_column = sql.SQL(", details") if details else sql.SQL("")
        extra_value = sql.SQL(", %(details)s") if details else sql.SQL("")
        extra_update = sql.SQL(", details = EXCLUDED.details") if details else sql.SQL("")
        cur.execute(
            sql.SQL(
                """
                INSERT INTO {table} AS l (bucket, key, version, route, target_table, status, lines,
                    rows_loaded, rows_rejected, bytes, error, error_line, duration_ms, loaded_at{extra_column})
                VALUES (%(bucket)s, %(key)s, %(version)s, %(route)s, %(target_table)s, %(status)s, %(lines)s,
                    %(rows_loaded)s, %(rows_rejected)s, %(bytes)s, %(error)s, %(error_line)s, %(duration_ms)s,
                    CASE WHEN %(status)s IN ('loaded', 'rejected') THEN now() END{extra_value})
                ON CONFLICT (bucket, key, version) DO UPDATE SET
                    route = EXCLUDED.route, target_table = EXCLUDED.target_table, status = EXCLUDED.status,
                    lines = EXCLUDED.lines, rows_loaded = EXCLUDED.rows_loaded,
                    rows_rejected = EXCLUDED.rows_rejected, bytes = EXCLUDED.bytes, error = EXCLUDED.error,
                    error_line = EXCLUDED.error_line, duration_ms = EXCLUDED.duration_ms,
                    loaded_at = EXCLUDED.loaded_at, attempts = l.attempts + 1, updated_at = now(){extra_update}
                WHERE l.status NOT IN ('loaded', 'rejected')
                """
            ).format(table=self._loads, extra_column=extra_column, extra_value=extra_value, extra_update=extra_update),
            {
                "bucket": obj.bucket,
                "key": obj.key,
                "version": obj.version,
                **outcome.__dict__,
                "details": Json(outcome.details) if details else None,
            },
        )

    def record_attempt(self, conn: Any, obj: ObjectId, outcome: Outcome) -> None:
        """Record a failed or deferred attempt in its own transaction."""
        with conn, conn.cursor() as cur:
            self.record(cur, obj, outcome)

    def record_attempt_quietly(self, db: Any, obj: ObjectId, outcome: Outcome) -> None:
        """Record a failed or deferred attempt while its error is being handled, on `db`'s connection
        (reopened when the failure broke it): a ledger that cannot be written is logged, never raised
        over the error that matters."""
        try:
            conn = db.get()
            self.ensure(conn)
            self.record_attempt(conn, obj, outcome)
        except Exception:
            logger.exception("could not record the attempt in the ledger", extra={"key": obj.key})

    def copy_rejects(self, cur: Any, spool: IO[bytes]) -> None:
        """Load rejected rows spooled as CSV (bucket, key, version, table, line, raw, reason)."""
        spool.seek(0)
        copy_in(cur, self._rejects, REJECT_COLUMNS, spool)
