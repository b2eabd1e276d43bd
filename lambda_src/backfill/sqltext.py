"""The SQL text of a backfill job: range bounds bound safely to the driver's placeholders.

A job's statements name the bounds of the key range they work on as `:lo` and `:hi` (the range is
`(lo, hi]`). `bind()` turns them into the driver's placeholders (pyformat, `%(lo_0)s`, which
psycopg2 and PyMySQL both take), doubling every other `%`, so values are always sent by the driver
and never formatted into the text. Names are only found outside string literals, quoted
identifiers and comments, by a small lexer that knows each engine's quoting rules.

A composite key's bound is a row value: the statement compares a parenthesised list of key
expressions with it, `(o.region, o.id) > :lo`. PostgreSQL compares row values through a btree
index as they are; MySQL/MariaDB do not (MariaDB 10.11 scans the whole index for
`(a, b) > (1, 2)`), so there the comparison is expanded into the equivalent
`a >= 1 AND (a > 1 OR (a = 1 AND b > 2))`, whose leading term is a range on the index.

The idempotence check of the statements is in `backfill.idempotence`, on the same tokens.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline_common.errors import PermanentError

BOUNDS = ("lo", "hi")


class SqlTextError(PermanentError, ValueError):
    """A statement the job cannot run safely; the message says what to change."""


@dataclass(frozen=True)
class Token:
    kind: str  # space, comment, string, quoted, param, cast, word, number, punct
    text: str

    @property
    def upper(self) -> str:
        return self.text.upper()


_COMMON = {
    "space": r"\s+",
    "block_comment": r"/\*.*?\*/",
    "line_comment": r"--[^\n]*",
}
_PATTERNS = {
    "mysql": {
        **_COMMON,
        "hash_comment": r"\#[^\n]*",
        "string": r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"",
        "quoted": r"`(?:[^`]|``)*`",
    },
    "postgresql": {
        **_COMMON,
        "string": r"[eE]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*'|\$(?P<tag>[A-Za-z_][A-Za-z0-9_]*)?\$.*?\$(?P=tag)\$",
        "quoted": r"\"(?:[^\"]|\"\")*\"",
    },
}
_TAIL = {
    "cast": r"::",
    "param": r":[A-Za-z_][A-Za-z0-9_]*",
    "word": r"[A-Za-z_][A-Za-z0-9_$]*",
    "number": r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+",
    "punct": r"<=|>=|<>|!=|:=|.",
}
_LEXERS = {
    engine: re.compile("|".join(f"(?P<{k}>{v})" for k, v in {**patterns, **_TAIL}.items()), re.S)
    for engine, patterns in _PATTERNS.items()
}
_COMMENTS = ("block_comment", "line_comment", "hash_comment")


def tokenize(sql: str, engine: str) -> list[Token]:
    """Every token of `sql` (whitespace and comments included, so the text can be rebuilt)."""
    tokens = []
    position = 0
    lexer = _LEXERS[engine]
    while position < len(sql):
        match = lexer.match(sql, position)
        if match is None or match.end() == position:
            raise SqlTextError(f"cannot read the SQL at character {position}: {sql[position : position + 20]!r}")
        kind = match.lastgroup or "punct"
        if kind == "tag":  # the dollar-quote tag group names its enclosing string
            kind = "string"
        tokens.append(Token("comment" if kind in _COMMENTS else kind, match.group()))
        position = match.end()
    return tokens


def significant(tokens: Sequence[Token]) -> list[Token]:
    return [t for t in tokens if t.kind not in ("space", "comment")]


# Words after which a parenthesis opens an expression (a row value), not a function's arguments.
_EXPRESSION_WORDS = {"AND", "OR", "NOT", "WHERE", "ON", "WHEN", "THEN", "ELSE", "HAVING", "SELECT", "IF"}


@dataclass(frozen=True)
class BoundSql:
    """A statement with its bounds turned into pyformat placeholders; `params()` fills them."""

    text: str
    names: frozenset[str]
    width: int

    def params(self, bounds: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
        """`{"lo": (1,), "hi": (9,)}` -> `{"lo_0": 1, "hi_0": 9}` for the names the text uses."""
        out = {}
        for name in self.names:
            values = bounds[name]
            if len(values) != self.width:
                raise ValueError(f"bound :{name} needs {self.width} value(s), got {len(values)}")
            out.update({f"{name}_{i}": value for i, value in enumerate(values)})
        return out


def bind(sql: str, engine: str, width: int, names: Sequence[str] = BOUNDS, *, required: bool = True) -> BoundSql:
    """Replace `:name` bounds by placeholders (see the module docstring). Every name must appear
    when `required`; any other `:word` outside literals is refused (a typo such as `:low`)."""
    tokens = tokenize(sql, engine)
    out: list[str] = []  # one entry per token: its text in the bound statement
    used: set[str] = set()
    for index, token in enumerate(tokens):
        if token.kind != "param":
            out.append(token.text.replace("%", "%%"))
            continue
        name = token.text[1:]
        if name not in names:
            known = ", ".join(f":{n}" for n in names)
            raise SqlTextError(f"unknown parameter {token.text} (the statement may use {known})")
        used.add(name)
        if width == 1:
            out.append(f"%({name}_0)s")
        else:
            out.append(_row_comparison(tokens, index, out, name, width, engine))
    missing = [f":{n}" for n in names if n not in used]
    if required and missing:
        raise SqlTextError(
            f"the statement does not use {' and '.join(missing)}: every statement must be limited to "
            "the chunk's key range, e.g. `WHERE o.id > :lo AND o.id <= :hi`"
        )
    return BoundSql("".join(out), frozenset(used), width)


def _skip_back(tokens: list[Token], index: int) -> int:
    while index >= 0 and tokens[index].kind in ("space", "comment"):
        index -= 1
    return index


def _row_comparison(tokens: list[Token], index: int, out: list[str], name: str, width: int, engine: str) -> str:
    """The text replacing `:name` in `(e1, e2) OP :name` (composite keys). The row value and the
    operator, already in `out`, are blanked when MySQL needs them rewritten."""
    usage = f"a composite key's bound is compared as a row value, e.g. `(o.a, o.b) > :{name}`"
    op_index = _skip_back(tokens, index - 1)
    if op_index < 0 or tokens[op_index].text not in (">", ">=", "<", "<="):
        raise SqlTextError(f":{name} must follow a comparison operator: {usage}")
    operator = tokens[op_index].text
    close = _skip_back(tokens, op_index - 1)
    if close < 0 or tokens[close].text != ")":
        raise SqlTextError(f":{name} must be compared with a parenthesised list: {usage}")
    open_, depth = close, 0
    while open_ >= 0:
        if tokens[open_].kind == "punct":
            depth += {")": 1, "(": -1}.get(tokens[open_].text, 0)
        if depth == 0:
            break
        open_ -= 1
    before = _skip_back(tokens, open_ - 1)
    if before >= 0 and tokens[before].kind in ("word", "quoted") and tokens[before].upper not in _EXPRESSION_WORDS:
        raise SqlTextError(f":{name} is compared with the result of {tokens[before].text}(...): {usage}")
    elements = split_top_level(tokens[open_ + 1 : close])
    if len(elements) != width:
        raise SqlTextError(f"the key has {width} columns but the row value before :{name} has {len(elements)}")
    placeholders = [f"%({name}_{n})s" for n in range(width)]
    if engine == "postgresql":
        return f"({', '.join(placeholders)})"
    texts = [_element_text(element) for element in elements]
    for position in range(open_, index):
        out[position] = ""
    return expand_row_comparison(texts, operator, placeholders)


def _element_text(tokens: Sequence[Token]) -> str:
    return "".join(t.text.replace("%", "%%") for t in tokens).strip()


def expand_row_comparison(columns: Sequence[str], operator: str, values: Sequence[str]) -> str:
    """`(c1, c2, c3) OP (v1, v2, v3)` written so a btree range on c1 serves it (MySQL/MariaDB)."""
    strict = operator[0]  # > or <
    lead = f"{columns[0]} {strict}= {values[0]}"
    inner = f"{columns[-1]} {operator} {values[-1]}"
    for column, value in zip(reversed(columns[:-1]), reversed(values[:-1]), strict=True):
        inner = f"{column} {strict} {value} OR ({column} = {value} AND {inner})"
    return f"({lead} AND ({inner}))"


def split_top_level(tokens: Sequence[Token], separator: str = ",") -> list[list[Token]]:
    parts: list[list[Token]] = [[]]
    depth = 0
    for token in tokens:
        if token.kind == "punct" and token.text in "([":
            depth += 1
        elif token.kind == "punct" and token.text in ")]":
            depth -= 1
        if depth == 0 and token.kind == "punct" and token.text == separator:
            parts.append([])
            continue
        parts[-1].append(token)
    return parts if any(significant(part) for part in parts) else []
