"""The set-based merge of a DMS file's changes into a PostgreSQL table (cdc_lake.apply runs it):
one statement that applies deletes (leaving tombstones) and upserts, each only when the change
is not older than what the row holds."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg2 import sql

from cdc_lake.config import ApplyTable
from cdc_lake.reading import OP_COLUMN


@dataclass(frozen=True)
class Columns:
    """The file's columns as they map onto the target."""

    copied: list[str]  # in file order, as COPY receives them (Op included when the file has it)
    written: list[str]  # what the target receives: everything but Op
    keys: list[str]
    timestamp: str
    sequence: str | None


def merge_sql(
    staging: sql.Composable, table: ApplyTable, columns: Columns, tombstones: sql.Composable, *, last_per_key: bool
) -> sql.Composable:
    """The merge as one statement (parameter `target`: the target's name in the tombstones):
    returns rows deleted, inserted, updated and the changes considered (one per key with
    `last_per_key`, else every row)."""
    ident = sql.Identifier
    keys = sql.SQL(", ").join(ident(k) for k in columns.keys)
    written = sql.SQL(", ").join(ident(c) for c in columns.written)
    ts, op = ident(columns.timestamp), ident(OP_COLUMN)
    seq = ident(columns.sequence) if columns.sequence else None
    if last_per_key:
        order = [sql.SQL("{} DESC").format(ts)]
        if seq is not None:
            order.append(sql.SQL("{} DESC NULLS LAST").format(seq))
        order.append(sql.SQL("ctid DESC"))  # a fresh temp table is append-only: ctid order is file order
        changes = sql.SQL("SELECT DISTINCT ON ({keys}) {written}, {op} FROM {staging} ORDER BY {keys}, {order}").format(
            keys=keys, written=written, op=op, staging=staging, order=sql.SQL(", ").join(order)
        )
    else:
        changes = sql.SQL("SELECT {written}, {op} FROM {staging}").format(written=written, op=op, staging=staging)
    key_array = sql.SQL("jsonb_build_array({})").format(
        sql.SQL(", ").join(sql.SQL("l.{}").format(ident(k)) for k in columns.keys)
    )
    if seq is None:
        tie = sql.SQL("true")
        tombstone_seq = sql.SQL("NULL::numeric")
    else:
        tie = sql.SQL("(d.change_seq IS NULL OR l.{seq} IS NULL OR d.change_seq >= l.{seq}::numeric)").format(seq=seq)
        tombstone_seq = sql.SQL("l.{}::numeric").format(seq)
    key_match = sql.SQL(" AND ").join(sql.SQL("t.{k} = l.{k}").format(k=ident(k)) for k in columns.keys)
    assignments = sql.SQL(", ").join(
        sql.SQL("{c} = EXCLUDED.{c}").format(c=ident(c)) for c in columns.written if c not in columns.keys
    )
    statement = sql.SQL(
        """
        WITH changes AS ({changes}),
        live AS (
            SELECT l.* FROM changes l
            WHERE NOT EXISTS (
                SELECT 1 FROM {tombstones} d
                WHERE d.target_table = %(target)s AND d.key = {key_array}
                  AND (d.commit_ts > l.{ts} OR (d.commit_ts = l.{ts} AND {tie})))
        ),
        deleted AS (
            DELETE FROM {target} t USING live l
            WHERE l.{op} = 'D' AND {key_match} AND {delete_guard}
            RETURNING 1
        ),
        tombstoned AS (
            INSERT INTO {tombstones} AS d (target_table, key, commit_ts, change_seq)
            SELECT %(target)s, {key_array}, l.{ts}, {tombstone_seq} FROM live l WHERE l.{op} = 'D'
            ON CONFLICT (target_table, key) DO UPDATE
                SET commit_ts = EXCLUDED.commit_ts, change_seq = EXCLUDED.change_seq, deleted_at = now()
                WHERE d.commit_ts < EXCLUDED.commit_ts
                   OR (d.commit_ts = EXCLUDED.commit_ts AND d.change_seq < EXCLUDED.change_seq)
            RETURNING 1
        ),
        upserted AS (
            INSERT INTO {target} AS t ({written})
            SELECT {written} FROM live WHERE {op} <> 'D'
            ON CONFLICT ({keys}) DO UPDATE SET {assignments}
            WHERE {upsert_guard}
            RETURNING (xmax = 0) AS inserted
        )
        SELECT (SELECT count(*) FROM deleted), (SELECT count(*) FILTER (WHERE inserted) FROM upserted),
               (SELECT count(*) FILTER (WHERE NOT inserted) FROM upserted), (SELECT count(*) FROM changes)
        """
    )
    return statement.format(
        changes=changes,
        tombstones=tombstones,
        key_array=key_array,
        ts=ts,
        tie=tie,
        target=table.target.pg(),
        op=op,
        key_match=key_match,
        delete_guard=_not_newer(sql.SQL("t"), sql.SQL("l"), ts, seq),
        tombstone_seq=tombstone_seq,
        written=written,
        keys=keys,
        assignments=assignments
        if columns.written != columns.keys
        else sql.SQL("{k} = EXCLUDED.{k}").format(k=ident(columns.keys[0])),
        upsert_guard=_not_newer(sql.SQL("t"), sql.SQL("EXCLUDED"), ts, seq),
    )


def _not_newer(
    stored: sql.Composable, incoming: sql.Composable, ts: sql.Composable, seq: sql.Composable | None
) -> sql.Composable:
    """The stored row is not newer than the incoming change: no commit time yet (written before
    the apply), an older one, or the same one with a change sequence not above it (a tie without
    sequences goes to the change applied last)."""
    values = {"s": stored, "i": incoming, "ts": ts, "seq": seq}
    if seq is None:
        return sql.SQL("({s}.{ts} IS NULL OR {s}.{ts} <= {i}.{ts})").format(**values)
    return sql.SQL(
        "({s}.{ts} IS NULL OR {s}.{ts} < {i}.{ts} OR ({s}.{ts} = {i}.{ts} "
        "AND ({s}.{seq} IS NULL OR {i}.{seq} IS NULL OR {s}.{seq} <= {i}.{seq})))"
    ).format(**values)
