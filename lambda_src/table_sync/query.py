"""A configured source `query`, checked as text before any connection opens.

The sync wraps the query as a derived table (`SELECT ... FROM (<query>) AS src WHERE ...`), so it
must be exactly one SELECT (or WITH) statement that a closing parenthesis can follow. A scanner
that knows each engine's literals, quoted names and comments decides what a `;` or a `--` means:

- a `;` inside a string literal, a quoted name or a comment is text, not a statement separator;
- trailing semicolons and trailing comments are dropped (a `--` comment at the end would
  otherwise swallow the closing parenthesis: "syntax error at end of input");
- a second statement, or an unterminated literal, quoted name or comment, is refused.

Literals per engine: `'...'` everywhere (a doubled quote inside); PostgreSQL `E'...'` with
backslash escapes and `$tag$...$tag$`; MySQL `'...'` and `"..."` with backslash escapes and `#`
comments (`-- ` needs a space after it). Quoted names: `"..."` (PostgreSQL, SQL Server), `[...]`
(SQL Server), `` `...` `` (MySQL). Block comments nest in PostgreSQL and SQL Server, not in MySQL.
"""

from __future__ import annotations

import re

from pipeline_common.errors import PermanentError

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


class QueryError(PermanentError, ValueError):
    """The query is not one SELECT statement the sync can wrap; the message says why. Permanent:
    the same text fails the same way until the configuration changes."""


def single_select(text: str, engine: str) -> str:
    """`text` without its leading and trailing comments and trailing semicolons; raises
    `QueryError` unless it is one SELECT or WITH statement."""
    mask = _Scanner(text, engine).mask()
    statements = [(start, start + len(part)) for start, part in _parts(mask) if part.strip()]
    if not statements:
        raise QueryError("'query' holds no statement")
    if len(statements) > 1:
        raise QueryError("'query' must be a single SELECT statement (found a second statement after ';')")
    start, end = statements[0]
    piece = mask[start:end]
    query = text[start + len(piece) - len(piece.lstrip()) : start + len(piece.rstrip())]
    if not re.match(r"(?i)(select|with)\b", query):
        raise QueryError("'query' must start with SELECT or WITH")
    return query


def _parts(mask: str) -> list[tuple[int, str]]:
    """The text between top-level semicolons, with where each part starts."""
    parts, start = [], 0
    for part in mask.split(";"):
        parts.append((start, part))
        start += len(part) + 1
    return parts


class _Scanner:
    """Walks the text once and returns its mask: the same length, comments blanked out and every
    character of a literal or quoted name replaced by `x`, so what is left of `;`, `--` and
    whitespace is the statement's own."""

    def __init__(self, text: str, engine: str) -> None:
        self.text = text
        self.engine = engine
        self.quotes = {"postgresql": '"', "mysql": "`", "sqlserver": '"['}[engine]
        self.strings = "'\"" if engine == "mysql" else "'"

    def mask(self) -> str:
        text, position = self.text, 0
        mask = list(text)
        while position < len(text):
            char = text[position]
            if self._comment_starts(position):
                end, fill = self._comment_end(position), " "
            elif char in self.strings:
                backslash = self.engine == "mysql" or self._escape_string(position)
                end, fill = self._closing(position, char, char, backslash, "string literal"), "x"
            elif char in self.quotes:
                closer = "]" if char == "[" else char
                end, fill = self._closing(position, char, closer, False, "quoted name"), "x"
            elif self.engine == "postgresql" and char == "$" and (tag := self._dollar_tag(position)):
                close = text.find(tag, position + len(tag))
                if close < 0:
                    raise QueryError("'query' has an unterminated dollar-quoted string")
                end, fill = close + len(tag), "x"
            else:
                position += 1
                continue
            mask[position:end] = fill * (end - position)
            position = end
        return "".join(mask)

    def _dollar_tag(self, position: int) -> str | None:
        """`$tag$` opening a dollar-quoted string (not `$1`, nor a `$` inside a name)."""
        before = self.text[position - 1 : position]
        match = _DOLLAR_TAG.match(self.text, position)
        return match.group(0) if match and not (before.isalnum() or before == "_") else None

    def _escape_string(self, position: int) -> bool:
        """PostgreSQL's E'...': the quote follows an E that starts a word."""
        before = self.text[position - 1 : position]
        earlier = self.text[position - 2 : position - 1]
        return before in ("E", "e") and not (earlier.isalnum() or earlier == "_")

    def _closing(self, position: int, opener: str, closer: str, backslash: bool, what: str) -> int:
        """Index just past the literal or quoted name opened at `position`."""
        text, index = self.text, position + 1
        while index < len(text):
            char = text[index]
            if backslash and char == "\\":
                index += 2
            elif char == closer:
                if text[index + 1 : index + 2] == closer:  # a doubled quote is the quote itself
                    index += 2
                else:
                    return index + 1
            else:
                index += 1
        raise QueryError(f"'query' has an unterminated {what} ({opener}...)")

    def _comment_starts(self, position: int) -> bool:
        text = self.text
        pair = text[position : position + 2]
        if pair == "/*":
            return True
        if pair == "--":
            # MySQL reads `--` as a comment only before a space or control character.
            return self.engine != "mysql" or position + 2 == len(text) or text[position + 2] <= " "
        return self.engine == "mysql" and text[position] == "#"

    def _comment_end(self, position: int) -> int:
        text = self.text
        if text[position] != "/":
            end = text.find("\n", position)
            return len(text) if end < 0 else end + 1
        depth, index = 0, position
        nests = self.engine != "mysql"
        while index < len(text):
            pair = text[index : index + 2]
            if pair == "/*" and (nests or depth == 0):
                depth, index = depth + 1, index + 2
            elif pair == "*/":
                depth, index = depth - 1, index + 2
                if depth == 0:
                    return index
            else:
                index += 1
        raise QueryError("'query' has an unterminated /* comment")
