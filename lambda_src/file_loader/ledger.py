"""The load ledger and the rejects table, in `STATE_SCHEMA`.

One ledger row per object version (bucket, key, version id or ETag). A load writes its row in
the same transaction as the data, so "the ledger says loaded" and "the rows are there" are the
same fact. Attempts that fail or stop at the deadline are recorded in a transaction of their
own after the data transaction rolled back, so operators see them without any data committing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import IO, Any

from psycopg2 import sql

from pipeline_common.identifiers import validate_identifier
from pipeline_common.pgload import copy_in

TERMINAL = ("loaded", "rejected")
# Any constant works; it only has to differ from the other pipelines' DDL locks.
_DDL_LOCK = 0x46494C454C4F4144  # "FILELOAD"

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS {schema}.file_loads (
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
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    loaded_at timestamptz,
    PRIMARY KEY (bucket, key, version)
)
"""

REJECTS_DDL = """
CREATE TABLE IF NOT EXISTS {schema}.file_rejects (
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

REJECTS_INDEX = "CREATE INDEX IF NOT EXISTS file_rejects_object ON {schema}.file_rejects (bucket, key, version)"


@dataclass(frozen=True)
class ObjectId:
    bucket: str
    key: str
    version: str

    def lock_key(self) -> int:
        """A signed 64-bit advisory lock key; a collision only serialises two unrelated loads."""
        digest = hashlib.blake2b(f"{self.bucket}\0{self.key}\0{self.version}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)


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


class Ledger:
    def __init__(self, schema: str) -> None:
        self.schema = validate_identifier(schema, "schema")
        self._schema = sql.Identifier(self.schema)
        self._ensured: set[int] = set()

    def ensure(self, conn: Any) -> None:
        """Create the schema and tables if missing, once per connection.

        `IF NOT EXISTS` alone races (two sessions both see "missing" and one fails on the catalog's
        unique index), so creation runs under a transaction-scoped advisory lock.
        """
        if id(conn) in self._ensured:
            return
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(self._schema))
            for ddl in (LEDGER_DDL, REJECTS_DDL, REJECTS_INDEX):
                cur.execute(sql.SQL(ddl).format(schema=self._schema))
        self._ensured.add(id(conn))

    def try_lock(self, cur: Any, obj: ObjectId) -> bool:
        """Take the object's transaction-scoped lock without waiting; False when another
        invocation is loading the same object version right now."""
        cur.execute("SELECT pg_try_advisory_xact_lock(%s)", (obj.lock_key(),))
        return bool(cur.fetchone()[0])

    def status(self, cur: Any, obj: ObjectId) -> str | None:
        cur.execute(
            sql.SQL("SELECT status FROM {}.file_loads WHERE bucket = %s AND key = %s AND version = %s").format(
                self._schema
            ),
            (obj.bucket, obj.key, obj.version),
        )
        row = cur.fetchone()
        return row[0] if row else None

    def record(self, cur: Any, obj: ObjectId, outcome: Outcome) -> None:
        """Insert or update the object's row; `attempts` counts every recorded attempt."""
        cur.execute(
            sql.SQL(
                """
                INSERT INTO {schema}.file_loads AS l (bucket, key, version, route, target_table, status, lines,
                    rows_loaded, rows_rejected, bytes, error, error_line, duration_ms, loaded_at)
                VALUES (%(bucket)s, %(key)s, %(version)s, %(route)s, %(target_table)s, %(status)s, %(lines)s,
                    %(rows_loaded)s, %(rows_rejected)s, %(bytes)s, %(error)s, %(error_line)s, %(duration_ms)s,
                    CASE WHEN %(status)s IN ('loaded', 'rejected') THEN now() END)
                ON CONFLICT (bucket, key, version) DO UPDATE SET
                    route = EXCLUDED.route, target_table = EXCLUDED.target_table, status = EXCLUDED.status,
                    lines = EXCLUDED.lines, rows_loaded = EXCLUDED.rows_loaded,
                    rows_rejected = EXCLUDED.rows_rejected, bytes = EXCLUDED.bytes, error = EXCLUDED.error,
                    error_line = EXCLUDED.error_line, duration_ms = EXCLUDED.duration_ms,
                    loaded_at = EXCLUDED.loaded_at, attempts = l.attempts + 1, updated_at = now()
                WHERE l.status NOT IN ('loaded', 'rejected')
                """
            ).format(schema=self._schema),
            {"bucket": obj.bucket, "key": obj.key, "version": obj.version, **outcome.__dict__},
        )

    def record_attempt(self, conn: Any, obj: ObjectId, outcome: Outcome) -> None:
        """Record a failed or deferred attempt in its own transaction."""
        with conn, conn.cursor() as cur:
            self.record(cur, obj, outcome)

    def copy_rejects(self, cur: Any, spool: IO[bytes]) -> None:
        """Load rejects written by `RejectSpool` (CSV rows: bucket, key, version, table, line, raw, reason)."""
        spool.seek(0)
        copy_in(
            cur,
            sql.SQL("{}.file_rejects").format(self._schema),
            ["bucket", "key", "version", "target_table", "line", "raw", "reason"],
            spool,
        )
