"""Validation and quoting of SQL identifiers that come from configuration or S3 keys.

Names are checked against a conservative pattern first (so a hostile key is refused before any
SQL is built), then quoted by the driver's own composition, never formatted into SQL text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pipeline_common.errors import PermanentError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
MAX_LENGTH = {"postgresql": 63, "mysql": 64, "sqlserver": 128}


class IdentifierError(PermanentError, ValueError):
    """A schema, table, column or database name is not acceptable."""


def validate_identifier(name: str, kind: str = "identifier", engine: str = "postgresql") -> str:
    """Return `name` if it is a plain identifier (letters, digits, `_`, `$`; not starting with a digit)."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise IdentifierError(
            f"invalid {kind} name {name!r}: use letters, digits, '_' or '$', starting with a letter or '_'"
        )
    if len(name) > MAX_LENGTH[engine]:
        raise IdentifierError(f"invalid {kind} name {name!r}: longer than {MAX_LENGTH[engine]} characters")
    return name


@dataclass(frozen=True)
class QualifiedName:
    schema: str
    name: str

    @classmethod
    def parse(cls, text: str, default_schema: str | None = None, engine: str = "postgresql") -> QualifiedName:
        """Parse `schema.table` (or `table` when a default schema is given)."""
        parts = text.split(".") if isinstance(text, str) else []
        if len(parts) == 1 and default_schema is not None:
            parts = [default_schema, parts[0]]
        if len(parts) != 2:
            raise IdentifierError(f"invalid table name {text!r}: expected schema.table")
        return cls(validate_identifier(parts[0], "schema", engine), validate_identifier(parts[1], "table", engine))

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"

    def pg(self) -> Any:
        """The name as a psycopg2 `sql.Identifier` (schema-qualified)."""
        from psycopg2 import sql

        return sql.Identifier(self.schema, self.name)

    def mysql(self) -> str:
        return f"{mysql_quote(self.schema)}.{mysql_quote(self.name)}"

    def tsql(self) -> str:
        return f"{tsql_quote(self.schema)}.{tsql_quote(self.name)}"


def pg_identifier(*names: str) -> Any:
    from psycopg2 import sql

    return sql.Identifier(*(validate_identifier(n) for n in names))


def mysql_quote(name: str) -> str:
    """Backtick-quote a validated MySQL identifier."""
    return "`" + validate_identifier(name, engine="mysql").replace("`", "``") + "`"


def tsql_quote(name: str) -> str:
    """Bracket-quote a validated T-SQL identifier."""
    return "[" + validate_identifier(name, engine="sqlserver").replace("]", "]]") + "]"


def quote(name: str, engine: str) -> str:
    """Quote an identifier as text for `engine` (PostgreSQL text form for generated source SQL)."""
    if engine == "mysql":
        return mysql_quote(name)
    if engine == "sqlserver":
        return tsql_quote(name)
    return '"' + validate_identifier(name).replace('"', '""') + '"'
