"""The set-based merge of a DMS file's changes into a PostgreSQL table (cdc_lake.apply runs it):
deletes (leaving tombstones) and upserts, each only when the change is not older than what the
row holds, as a few statements over the staged changes in the apply's transaction."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from psycopg2 import sql

from cdc_lake.config import ApplyTable
from cdc_lake.reading import OP_COLUMN
from pipeline_common.identifiers import QualifiedName
from pipeline_common.locks import Ddl, ddl_key

LAST_CHANGES = "cdc_lake_last_changes"
TOMBSTONE_PREFIX = "cdc_lake_deleted_"
# A tombstone's own columns, beside the target's key columns.
DELETED_COMMIT_TS, DELETED_CHANGE_SEQ, DELETED_AT = "deleted_commit_ts", "deleted_change_seq", "deleted_at"
TOMBSTONE_COLUMNS = (DELETED_COMMIT_TS, DELETED_CHANGE_SEQ, DELETED_AT)


class Tombstones:
    """The key and commit time of every applied delete, one table per target in the state schema
    (`cdc_lake_deleted_<table>_<hash of schema.table>`), keyed by the target's key columns with
    their types: a typed key is compared and indexed at a fraction of the cost of a generic one."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self._ddl: dict[tuple[QualifiedName, tuple[str, ...]], Ddl] = {}

    def ensure(self, conn: Any, target: QualifiedName, keys: list[str]) -> sql.Identifier:
        """The target's tombstone table, created once per session (it commits)."""
        name = tombstone_table_name(target)
        tombstones = sql.Identifier(self.schema, name)
        ddl = self._ddl.get((target, tuple(keys)))
        if ddl is None:
            key_list = _names(keys)
            statements = [
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {tombstones} AS SELECT {keys}, NULL::timestamptz AS {ts}, "
                    "NULL::numeric AS {seq}, NULL::timestamptz AS {at} FROM {target} WITH NO DATA"
                ).format(
                    tombstones=tombstones,
                    keys=key_list,
                    ts=sql.Identifier(DELETED_COMMIT_TS),
                    seq=sql.Identifier(DELETED_CHANGE_SEQ),
                    at=sql.Identifier(DELETED_AT),
                    target=target.pg(),
                ),
                sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({})").format(
                    sql.Identifier(f"{name}_key"), tombstones, key_list
                ),
                # The merge asks whether any tombstone is as new as a file's first change. BRIN:
                # tombstones arrive roughly in commit order, so block ranges answer that at almost
                # no cost per insert (a B-tree added a fifth to writing a file's tombstones).
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING brin ({})").format(
                    sql.Identifier(f"{name}_by_time"), tombstones, sql.Identifier(DELETED_COMMIT_TS)
                ),
                sql.SQL("COMMENT ON TABLE {} IS {}").format(
                    tombstones, sql.Literal(f"CDC lake: the deletes applied to {target}")
                ),
            ]
            ddl = self._ddl[(target, tuple(keys))] = Ddl(ddl_key(self.schema), statements)
        ddl.ensure(conn)
        return tombstones


def tombstone_table_name(target: QualifiedName) -> str:
    """Readable and within PostgreSQL's 63 bytes with an index suffix; the hash tells apart
    targets whose names only differ past the cut or by schema."""
    digest = hashlib.blake2b(str(target).encode(), digest_size=4).hexdigest()
    readable = target.name.encode()[:29].decode(errors="ignore")
    return f"{TOMBSTONE_PREFIX}{readable}_{digest}"


@dataclass(frozen=True)
class Columns:
    """The file's columns as they map onto the target."""

    copied: list[str]  # in file order, as COPY receives them (Op included when the file has it)
    written: list[str]  # what the target receives: everything but Op
    keys: list[str]
    timestamp: str
    sequence: str | None


@dataclass(frozen=True)
class MergeCounts:
    deleted: int
    # Rows inserted or updated. Which of the two would take a RETURNING pass over every row
    # (xmax = 0), 3% of a large apply; the file's own I/U/D counts are in the ledger already.
    upserted: int
    changes: int  # the changes considered: one per key with `last_per_key`, else every row


@dataclass(frozen=True)
class FileChanges:
    """What the staged file holds, from one pass over it."""

    rows: int
    deletes: int
    oldest: Any  # the earliest commit time, as the timestamp column's type


def merge(
    cur: Any,
    staging: sql.Composable,
    table: ApplyTable,
    columns: Columns,
    tombstones: sql.Composable,
    changes: FileChanges,
    *,
    last_per_key: bool,
) -> MergeCounts:
    """Apply the staged changes. With `last_per_key` only the last change per key counts (a key
    changed twice otherwise makes the upsert fail with CardinalityViolation).

    A change is dropped when a tombstone of its key is at least as new. That check costs a join
    per change, so it runs only when some tombstone of the target is not older than the file's
    first change: files applied in commit order skip it.
    """
    source = staging
    considered = changes.rows
    if last_per_key:
        source = sql.Identifier(LAST_CHANGES)
        cur.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(source))
        cur.execute(_last_changes_sql(source, staging, columns))
        considered = cur.rowcount
    live = _not_shadowed(tombstones, columns) if _tombstones_reach(cur, tombstones, changes) else None
    parts = _Statement(source, table, columns, tombstones, live)
    deleted = upserted = 0
    if changes.deletes:
        cur.execute(parts.delete())
        deleted = cur.rowcount
    if changes.rows > changes.deletes:
        cur.execute(parts.upsert())
        upserted = cur.rowcount
    if changes.deletes:
        # After the upsert: its tombstone check then sees only earlier files' deletes.
        cur.execute(parts.tombstone())
    return MergeCounts(deleted, upserted, considered)


def _last_changes_sql(target: sql.Composable, staging: sql.Composable, columns: Columns) -> sql.Composable:
    ident = sql.Identifier
    keys = _names(columns.keys)
    order = [sql.SQL("{} DESC").format(ident(columns.timestamp))]
    if columns.sequence:
        order.append(sql.SQL("{} DESC NULLS LAST").format(ident(columns.sequence)))
    order.append(sql.SQL("ctid DESC"))  # a fresh temp table is append-only: ctid order is file order
    return sql.SQL(
        "CREATE TEMPORARY TABLE {target} ON COMMIT DROP AS "
        "SELECT DISTINCT ON ({keys}) {written}, {op} FROM {staging} ORDER BY {keys}, {order}"
    ).format(
        target=target,
        keys=keys,
        written=_names(columns.written),
        op=ident(OP_COLUMN),
        staging=staging,
        order=sql.SQL(", ").join(order),
    )


def _tombstones_reach(cur: Any, tombstones: sql.Composable, changes: FileChanges) -> bool:
    if changes.oldest is None:
        return False
    cur.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {} >= %s)").format(
            tombstones, sql.Identifier(DELETED_COMMIT_TS)
        ),
        (changes.oldest,),
    )
    return bool(cur.fetchone()[0])


def _names(names: list[str], alias: str | None = None) -> sql.Composable:
    """`a, b` or, with an alias, `l.a, l.b`."""
    prefix = f"{alias}." if alias else ""
    return sql.SQL(", ").join(sql.SQL(prefix + "{}").format(sql.Identifier(n)) for n in names)


def _key_match(left: str, right: str, keys: list[str]) -> sql.Composable:
    """`left.k = right.k AND ...` for every key column."""
    return sql.SQL(" AND ").join(sql.SQL(f"{left}.{{k}} = {right}.{{k}}").format(k=sql.Identifier(k)) for k in keys)


def _not_shadowed(tombstones: sql.Composable, columns: Columns) -> sql.Composable:
    """The change `l` is newer than its key's tombstone, if any (a tie goes to the delete unless
    change sequences say otherwise)."""
    ident = sql.Identifier
    d_ts, d_seq = ident(DELETED_COMMIT_TS), ident(DELETED_CHANGE_SEQ)
    if columns.sequence is None:
        tie = sql.SQL("true")
    else:
        tie = sql.SQL("(d.{d_seq} IS NULL OR l.{seq} IS NULL OR d.{d_seq} >= l.{seq}::numeric)").format(
            d_seq=d_seq, seq=ident(columns.sequence)
        )
    key_match = _key_match("d", "l", columns.keys)
    return sql.SQL(
        "NOT EXISTS (SELECT 1 FROM {tombstones} d WHERE {key_match} "
        "AND (d.{d_ts} > l.{ts} OR (d.{d_ts} = l.{ts} AND {tie})))"
    ).format(tombstones=tombstones, key_match=key_match, d_ts=d_ts, ts=ident(columns.timestamp), tie=tie)


@dataclass(frozen=True)
class _Statement:
    """The merge's statements over `source` (the staged changes, or the last change per key)."""

    source: sql.Composable
    table: ApplyTable
    columns: Columns
    tombstones: sql.Composable
    live: sql.Composable | None  # the tombstone check, when one may shadow a change

    def _where(self, op_test: str) -> sql.Composable:
        test = sql.SQL("l.{} " + op_test).format(sql.Identifier(OP_COLUMN))
        return test if self.live is None else sql.SQL("{} AND {}").format(test, self.live)

    def delete(self) -> sql.Composable:
        columns = self.columns
        return sql.SQL("DELETE FROM {target} t USING {source} l WHERE {where} AND {key_match} AND {guard}").format(
            target=self.table.target.pg(),
            source=self.source,
            where=self._where("= 'D'"),
            key_match=_key_match("t", "l", columns.keys),
            guard=_not_newer(sql.SQL("t"), sql.SQL("l"), columns),
        )

    def upsert(self) -> sql.Composable:
        ident, columns = sql.Identifier, self.columns
        updated = [c for c in columns.written if c not in columns.keys] or columns.keys[:1]
        return sql.SQL(
            "INSERT INTO {target} AS t ({written}) SELECT {l_written} FROM {source} l WHERE {where} "
            "ON CONFLICT ({keys}) DO UPDATE SET {assignments} WHERE {guard}"
        ).format(
            target=self.table.target.pg(),
            written=_names(columns.written),
            l_written=_names(columns.written, "l"),
            source=self.source,
            where=self._where("<> 'D'"),
            keys=_names(columns.keys),
            assignments=sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=ident(c)) for c in updated),
            guard=_not_newer(sql.SQL("t"), sql.SQL("EXCLUDED"), columns),
        )

    def tombstone(self) -> sql.Composable:
        ident, columns = sql.Identifier, self.columns
        seq = sql.SQL("l.{}::numeric").format(ident(columns.sequence)) if columns.sequence else sql.SQL("NULL")
        return sql.SQL(
            "INSERT INTO {tombstones} AS d ({keys}, {d_ts}, {d_seq}, {d_at}) "
            "SELECT {l_keys}, l.{ts}, {seq}, now() FROM {source} l WHERE {where} "
            "ON CONFLICT ({keys}) DO UPDATE "
            "SET {d_ts} = EXCLUDED.{d_ts}, {d_seq} = EXCLUDED.{d_seq}, {d_at} = EXCLUDED.{d_at} "
            "WHERE d.{d_ts} < EXCLUDED.{d_ts} OR (d.{d_ts} = EXCLUDED.{d_ts} AND d.{d_seq} < EXCLUDED.{d_seq})"
        ).format(
            tombstones=self.tombstones,
            keys=_names(columns.keys),
            d_ts=ident(DELETED_COMMIT_TS),
            d_seq=ident(DELETED_CHANGE_SEQ),
            d_at=ident(DELETED_AT),
            l_keys=_names(columns.keys, "l"),
            ts=ident(columns.timestamp),
            seq=seq,
            source=self.source,
            where=self._where("= 'D'"),
        )


def _not_newer(stored: sql.Composable, incoming: sql.Composable, columns: Columns) -> sql.Composable:
    """The stored row is not newer than the incoming change: no commit time yet (written before
    the apply), an older one, or the same one with a change sequence not above it (a tie without
    sequences goes to the change applied last)."""
    ts = sql.Identifier(columns.timestamp)
    values = {"s": stored, "i": incoming, "ts": ts}
    if columns.sequence is None:
        return sql.SQL("({s}.{ts} IS NULL OR {s}.{ts} <= {i}.{ts})").format(**values)
    return sql.SQL(
        "({s}.{ts} IS NULL OR {s}.{ts} < {i}.{ts} OR ({s}.{ts} = {i}.{ts} "
        "AND ({s}.{seq} IS NULL OR {i}.{seq} IS NULL OR {s}.{seq} <= {i}.{seq})))"
    ).format(**values, seq=sql.Identifier(columns.sequence))
