"""Watermarks in the target database: one checkpoint row per synced table in
`<STATE_SCHEMA>.table_sync_state` (a `pipeline_common.checkpoint.CheckpointTable`).

The row is updated in the same transaction as the chunk it describes, so what the table holds and
what the watermark says can never disagree: a crash rolls both back, a commit moves both.

Columns an operator may read (values are tagged JSON, see `pipeline_common.values`):

- `watermark`: the highest cursor value of the last finished pass; the next pass starts from it;
- `position`: `{"cursor": ..., "key": [...]}` of the last committed row of an unfinished pass;
- `delete_position`: the last target key checked by an unfinished delete reconciliation.

Deleting a table's row makes the next run copy the table again from the start.

A run holds the table's session advisory lock (`CheckpointTable.lock_key`). Releases before the
shared lock scheme locked `(0x7A5C, hashtext(name))`; that key is taken too, so an old and a new
release never sync one table at once during a rolling deploy.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pipeline_common.checkpoint import Checkpoint, CheckpointTable
from pipeline_common.db import outside_transaction
from pipeline_common.errors import PermanentError
from pipeline_common.locks import LockKey, Scope, try_lock, unlock

STATE_TABLE = "table_sync_state"
# First key of the two-int advisory lock of releases before the shared key scheme.
LEGACY_LOCK_NAMESPACE = 0x7A5C


class StateMismatch(PermanentError):
    """The stored watermark was made for another cursor than the configured one."""


@dataclass(frozen=True)
class Position:
    cursor: Any
    key: tuple[Any, ...]


@dataclass(frozen=True)
class TableState:
    name: str
    exists: bool = False
    watermark: Any = None
    position: Position | None = None
    delete_position: tuple[Any, ...] | None = None
    deletes_completed_at: datetime | None = None
    last_started_at: datetime | None = None


@functools.cache
def checkpoints(schema: str) -> CheckpointTable:
    """The state table; its columns are those every release has written."""
    return CheckpointTable(
        schema,
        STATE_TABLE,
        name_column="sync_name",
        identity=("cursor_column", "cursor_type"),
        labels=("source", "target"),
        positions=("watermark", "position", "delete_position"),
        counters=("rows_synced",),
        stamps=("deletes_completed_at", "last_started_at", "last_finished_at"),
    )


def ensure_state_table(conn: Any, schema: str) -> None:
    """Create the schema and table once; commits."""
    checkpoints(schema).ensure(conn)


def load_states(conn: Any, schema: str) -> dict[str, Checkpoint]:
    """Every stored row by sync name (`to_state` checks one against its spec)."""
    with conn.cursor() as cur:
        rows = checkpoints(schema).load_all(cur)
    conn.rollback()
    return rows


def to_state(name: str, row: Checkpoint | None, cursor_column: str, cursor_type: str) -> TableState:
    if row is None:
        return TableState(name)
    if (row["cursor_column"], row["cursor_type"]) != (cursor_column, cursor_type):
        raise StateMismatch(
            f"table {name}: the stored watermark belongs to {row['cursor_type']} cursor {row['cursor_column']!r}, "
            f"the configuration says {cursor_type} cursor {cursor_column!r}; delete its row from "
            f"{STATE_TABLE} to copy the table again, or give the sync another 'name'"
        )
    position = row["position"]
    return TableState(
        name=name,
        exists=True,
        watermark=row["watermark"],
        position=None if position is None else Position(position["cursor"], tuple(position["key"])),
        delete_position=None if row["delete_position"] is None else tuple(row["delete_position"]),
        deletes_completed_at=row["deletes_completed_at"],
        last_started_at=row["last_started_at"],
    )


def start_run(
    cur: Any, schema: str, name: str, source: str, target: str, cursor_column: str, cursor_type: str
) -> TableState:
    """Insert the table's row if missing, stamp the start of this run and read the row back, in
    the caller's transaction."""
    table = checkpoints(schema)
    table.start(
        cur,
        name,
        identity={"cursor_column": cursor_column, "cursor_type": cursor_type},
        labels={"source": source, "target": target},
        stamp="last_started_at",
    )
    return to_state(name, table.load(cur, name), cursor_column, cursor_type)


def save_progress(
    cur: Any, schema: str, name: str, *, position: Position | None, watermark: Any, rows: int, finished: bool
) -> None:
    """Record a committed chunk; call inside the chunk's transaction.

    `finished` ends the pass: the watermark moves and the position is cleared.
    """
    checkpoints(schema).save(
        cur,
        name,
        positions={
            "position": None if position is None else {"cursor": position.cursor, "key": position.key},
            "watermark": watermark,
        },
        add={"rows_synced": rows},
        stamp=("last_finished_at",) if finished else (),
    )


def save_delete_progress(cur: Any, schema: str, name: str, position: tuple[Any, ...] | None, completed: bool) -> None:
    checkpoints(schema).save(
        cur, name, positions={"delete_position": position}, stamp=("deletes_completed_at",) if completed else ()
    )


def lock_keys(conn: Any, schema: str, names: Sequence[str]) -> dict[str, LockKey]:
    """Each table's lock key with its legacy key, whose `hashtext()` the server computes for all
    tables in one round trip."""
    with conn.cursor() as cur:
        cur.execute("SELECT n, hashtext(n) FROM unnest(%s::text[]) AS n", (list(names),))
        legacy = dict(cur.fetchall())
    conn.rollback()
    keys = {name: checkpoints(schema).lock_key(name) for name in names}
    return {name: replace(key, legacy=((LEGACY_LOCK_NAMESPACE, legacy[name]),)) for name, key in keys.items()}


def try_lock_table(conn: Any, key: LockKey) -> bool:
    """A session advisory lock per table: a second run (manual invoke, retry) skips a busy table.

    Taken in the transaction the run's first statements share (`start_run`); the caller ends it,
    also when the lock is refused."""
    return try_lock(conn, key, Scope.SESSION)


def unlock_table(conn: Any, key: LockKey) -> None:
    """Release the table's lock; the caller has ended its transaction (session locks are not
    transactional, so a rollback keeps them)."""
    with outside_transaction(conn):
        unlock(conn, key)
