"""What a PostgreSQL table looks like, read from the catalog: columns, keys, comparable types.

Loaders ask before building any statement, so a missing table or a column that does not fit is
named before a row moves. The table is found by `to_regclass` (the relation cache, one index
lookup) rather than by joining pg_namespace on names: a file loader asks once per object.
"""

from __future__ import annotations

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
        raise TableNotFound(f"table {table} does not exist")
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


def unique_keys(cur: Any, table: QualifiedName) -> list[list[str]]:
    """Column lists of the primary key and each unique index without predicate or expressions."""
    cur.execute(
        """
        SELECT array_agg(a.attname ORDER BY k.position)
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indrelid
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position)
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
        WHERE c.oid = to_regclass(quote_ident(%s) || '.' || quote_ident(%s)) AND i.indisunique AND i.indpred IS NULL
          AND i.indexprs IS NULL
        GROUP BY i.indexrelid, i.indisprimary
        ORDER BY i.indisprimary DESC, i.indexrelid
        """,
        (table.schema, table.name),
    )
    return [list(row[0]) for row in cur.fetchall()]


def columns_without_equality(cur: Any, table: QualifiedName) -> list[str]:
    """Columns whose type (a domain's base type) has no `=` operator taking exactly that type.

    Conservative: types served by a polymorphic or binary-coercible `=` (arrays, enums, varchar)
    are listed too; comparing those as text is merely slower, while a type wrongly left out
    would make every `IS DISTINCT FROM` on the row fail.
    """
    cur.execute(
        """
        SELECT a.attname
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_type ty ON ty.oid = a.atttypid
        WHERE c.oid = to_regclass(quote_ident(%s) || '.' || quote_ident(%s)) AND a.attnum > 0 AND NOT a.attisdropped
          AND NOT EXISTS (
              SELECT 1 FROM pg_operator o
              WHERE o.oprname = '='
                AND o.oprleft = CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE ty.oid END
                AND o.oprright = o.oprleft
          )
        ORDER BY a.attnum
        """,
        (table.schema, table.name),
    )
    return [row[0] for row in cur.fetchall()]
