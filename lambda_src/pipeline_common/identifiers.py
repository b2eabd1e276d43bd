"""Validation and quoting of SQL identifiers that come from configuration or S3 keys.

Two checks, for two kinds of name:

- `validate_identifier`: a conservative pattern (letters, digits, `_`, `$`) for names that come
  from S3 keys or from unquoted configuration text, so a hostile key is refused before any SQL is
  built;
- `quotable_identifier`: any name the engine accepts as a quoted identifier (`"prénom"`,
  `"order id"`, `[Order Details]`), for names read from a catalog or written quoted in
  configuration. Quoting (psycopg2's `sql.Identifier`, brackets, backticks, each doubling its
  closing character) makes every such name safe.

Either way a name is quoted by the driver's own composition, never formatted into SQL text.
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


def quotable_identifier(name: str, kind: str = "identifier", engine: str = "postgresql") -> str:
    """Return `name` if the engine accepts it as a quoted identifier: non-empty text without NUL, no
    longer than the engine allows (PostgreSQL counts bytes and would silently truncate a longer
    name into another one), and for MySQL not ending in a space."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise IdentifierError(f"invalid {kind} name {name!r}: must be non-empty text without NUL characters")
    size = len(name.encode("utf-8")) if engine == "postgresql" else len(name)
    if size > MAX_LENGTH[engine]:
        unit = "bytes" if engine == "postgresql" else "characters"
        raise IdentifierError(f"invalid {kind} name {name!r}: longer than {MAX_LENGTH[engine]} {unit}")
    if engine == "mysql" and name.endswith(" "):
        raise IdentifierError(f"invalid {kind} name {name!r}: MySQL names cannot end with a space")
    return name


# One part of a dotted name: quoted ("...", [...] or `...`, the closing quote doubled inside) or
# bare, followed by a dot or the end of the text.
_NAME_PART = re.compile(r'(?:"((?:[^"]|"")*)"|\[((?:[^\]]|\]\])*)\]|`((?:[^`]|``)*)`|([^."\[\]`]*))(\.|$)')
# The quotes each engine reads identifiers in (SQL Server and MySQL also read ANSI double quotes).
_QUOTES = {"postgresql": '"', "mysql": '`"', "sqlserver": '["'}


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

    @classmethod
    def parse_quoted(cls, text: str, engine: str = "postgresql") -> QualifiedName:
        """Parse `schema.table` where either part may be quoted as the engine quotes names
        (`dbo.[Order Details]`, `"Sales"."order items"`, `` shop.`order items` ``): a quoted part
        may hold any characters the engine accepts, a bare part must be a plain identifier."""
        parts: list[str] = []
        position = 0
        while isinstance(text, str) and position <= len(text) and len(parts) < 3:
            match = _NAME_PART.match(text, position)
            if match is None:
                raise IdentifierError(f"invalid table name {text!r}: unbalanced quotes or stray characters")
            double, bracket, backtick, bare, dot = match.groups()
            quoted = next((q for q in (double, bracket, backtick) if q is not None), None)
            if quoted is None:
                parts.append(validate_identifier(bare, "table", engine))
            else:
                opener = text[position]
                if opener not in _QUOTES[engine]:
                    raise IdentifierError(f"invalid table name {text!r}: {engine} does not quote names with {opener}")
                closer = {"[": "]"}.get(opener, opener)
                parts.append(quotable_identifier(quoted.replace(closer * 2, closer), "table", engine))
            position = match.end()
            if not dot:
                break
        if len(parts) != 2 or position != len(text):
            raise IdentifierError(f"invalid table name {text!r}: expected schema.table")
        return cls(parts[0], parts[1])

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
    """Backtick-quote a MySQL identifier (any name MySQL accepts; a backtick inside is doubled)."""
    return "`" + quotable_identifier(name, engine="mysql").replace("`", "``") + "`"


def tsql_quote(name: str) -> str:
    """Bracket-quote a T-SQL identifier (any name SQL Server accepts; a `]` inside is doubled)."""
    return "[" + quotable_identifier(name, engine="sqlserver").replace("]", "]]") + "]"


def quote(name: str, engine: str) -> str:
    """Quote an identifier as text for `engine` (PostgreSQL text form for generated source SQL)."""
    if engine == "mysql":
        return mysql_quote(name)
    if engine == "sqlserver":
        return tsql_quote(name)
    return '"' + quotable_identifier(name).replace('"', '""') + '"'
