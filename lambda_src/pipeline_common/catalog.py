"""What a PostgreSQL table looks like, read from the catalog: columns, keys, comparable types.

Loaders ask before building any statement, so a missing table or a column that does not fit is
named before a row moves. `table_columns` is the file loader's question, asked once per object;
the merges (table sync, CDC apply) ask `describe_tables` for columns, unique keys and comparable
types of all their tables at once. A table is found by `to_regclass` (the relation cache, one
index lookup) rather than by joining pg_namespace on names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline_common.errors import RetryableError
from pipeline_common.identifiers import QualifiedName


class TableNotFound(RetryableError, LookupError):
    """The target table does not exist (or is not visible to the connecting role). Retryable: a
    migration may create it, so a file waits in its queue (and reaches the dead-letter queue
    only if the table never comes)."""


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str
    not_null: bool
    has_default: bool
    identity: bool
    generated: bool

    @property
    def required(self) -> bool:
        """A value must come from the input: NOT NULL and nothing else fills it."""
        return self.not_null and not (self.has_default or self.identity or self.generated)


def table_columns(cur: Any, table: QualifiedName) -> list[Column]:
    cur.execute(
        """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef,
               a.attidentity <> '', a.attgenerated <> ''
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        WHERE c.oid = to_regclass(quote_ident(%s) || '.' || quote_ident(%s)) AND c.relkind IN ('r', 'p')
          AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
        """,
        (table.schema, table.name),
    )
    rows = cur.fetchall()
    if not rows:
        raise not_found(table)
    return [Column(*row) for row in rows]


def primary_key(cur: Any, table: QualifiedName) -> list[str]:
    cur.execute(
        """
        SELECT a.attname
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indrelid
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position)
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
        WHERE c.oid = to_regclass(quote_ident(%s) || '.' || quote_ident(%s)) AND i.indisprimary
        ORDER BY k.position
        """,
        (table.schema, table.name),
    )
    return [row[0] for row in cur.fetchall()]


@dataclass(frozen=True)
class TableShape:
    """Everything a merge into the table needs to know, read in one statement (`describe_tables`)."""

    columns: list[Column]
    # The primary key first, then each unique index without predicate or expressions.
    unique_keys: list[list[str]]
    # Columns whose type (a domain's base type) has no `=` operator taking exactly that type.
    # Conservative: types served by a polymorphic or binary-coercible `=` (arrays, enums, varchar)
    # are listed too; comparing those as text is merely slower, while a type wrongly left out
    # would make every `IS DISTINCT FROM` on the row fail.
    without_equality: list[str]


_DESCRIBE = """
SELECT t.position,
       (SELECT json_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                                         a.atthasdef, a.attidentity <> '', a.attgenerated <> '') ORDER BY a.attnum)
        FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
       (SELECT json_agg(u.columns ORDER BY u.indisprimary DESC, u.indexrelid)
        FROM (SELECT i.indexrelid, i.indisprimary, array_agg(a.attname ORDER BY k.position) AS columns
              FROM pg_index i
              CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position)
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
              WHERE i.indrelid = c.oid AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
              GROUP BY i.indexrelid, i.indisprimary) u),
       (SELECT json_agg(a.attname ORDER BY a.attnum)
        FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          AND NOT EXISTS (
              SELECT 1 FROM pg_operator o
              WHERE o.oprname = '='
                AND o.oprleft = CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE ty.oid END
                AND o.oprright = o.oprleft))
FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS t(schema_name, table_name, position)
JOIN pg_class c ON c.oid = to_regclass(quote_ident(t.schema_name) || '.' || quote_ident(t.table_name))
               AND c.relkind IN ('r', 'p')
"""


def describe_tables(cur: Any, tables: Sequence[QualifiedName]) -> dict[QualifiedName, TableShape]:
    """The shape of every table in `tables` that exists, in one round trip (a sync of 50 tables
    asks once, not 150 times); a missing table is absent from the answer."""
    if not tables:
        return {}
    cur.execute(_DESCRIBE, ([t.schema for t in tables], [t.name for t in tables]))
    return {
        tables[position - 1]: TableShape([Column(*c) for c in columns], unique or [], without_equality or [])
        for position, columns, unique, without_equality in cur.fetchall()
    }


def describe_table(cur: Any, table: QualifiedName) -> TableShape:
    """The shape of one table; `TableNotFound` when it does not exist."""
    shape = describe_tables(cur, [table]).get(table)
    if shape is None:
        raise not_found(table)
    return shape


def not_found(table: QualifiedName) -> TableNotFound:
    return TableNotFound(f"table {table} does not exist")
