"""The idempotence rule of a backfill job's statements, checked on their tokens (`backfill.sqltext`).

`check_statement()` refuses statements that would not survive a replay: a chunk whose transaction
was lost half way (a killed connection) runs again, so running a statement twice on the same range
must change nothing the first run did not. What that takes depends on the job's declared rule:

- `insert_ignore`: `INSERT IGNORE INTO t (cols) SELECT ...` (MySQL) or `INSERT INTO t (cols) SELECT
  ... ON CONFLICT ... DO NOTHING` (PostgreSQL); the target needs a unique key among the inserted
  columns (checked against the database by `backfill.catalog`, since an auto-increment key alone
  would let a replay insert every row again);
- `upsert`: `INSERT ... ON DUPLICATE KEY UPDATE` / `ON CONFLICT (...) DO UPDATE SET`, whose
  assignments must not read the column they write (`n = n + 1` counts twice on a replay;
  `n = VALUES(n)` or `n = EXCLUDED.n` is fine);
- `update`: `UPDATE ... SET` with the same rule for its assignments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from backfill.sqltext import SqlTextError, Token, significant, split_top_level, tokenize

RULES = ("insert_ignore", "upsert", "update")


@dataclass(frozen=True)
class StatementShape:
    """What the idempotence check learnt: the kind, the table written and the columns inserted."""

    kind: str  # insert_ignore | upsert | update
    table: str  # as written: `t`, `s.t`, quotes kept
    columns: tuple[str, ...]  # inserted columns (unquoted, as written); empty for UPDATE


def check_statement(sql: str, engine: str, rule: str) -> StatementShape:
    """Refuse a statement that does not follow the job's idempotence `rule` (see the module)."""
    tokens = significant(tokenize(sql, engine))
    if any(t.text == ";" for t in tokens[:-1]) or (tokens and tokens[-1].text == ";" and len(tokens) == 1):
        raise SqlTextError("one statement per entry: found ';' inside it")
    if tokens and tokens[-1].text == ";":
        tokens = tokens[:-1]
    if not tokens:
        raise SqlTextError("the statement is empty")
    first = tokens[0].upper
    if rule == "update":
        if first != "UPDATE":
            raise SqlTextError(f"rule 'update' runs UPDATE statements only, this one starts with {tokens[0].text}")
        table, rest = _table_name(tokens, 1)
        assignments = _clause(rest, ("SET",), ("FROM", "WHERE", "ORDER", "LIMIT", "RETURNING"))
        _refuse_self_reference(assignments, table, engine, "UPDATE ... SET")
        return StatementShape("update", table, ())
    if first != "INSERT":
        raise SqlTextError(
            f"rule '{rule}' runs INSERT ... SELECT statements only, this one starts with {tokens[0].text}"
        )
    ignore, into = _insert_modifiers(tokens)
    table, rest = _table_name(tokens, into + 1)
    columns = _column_list(rest)
    words = [t.upper for t in _top_level(rest)]
    odku = _contains(words, ("ON", "DUPLICATE", "KEY", "UPDATE"))
    conflict_nothing = _contains(words, ("DO", "NOTHING")) and "CONFLICT" in words
    conflict_update = _contains(words, ("DO", "UPDATE")) and "CONFLICT" in words
    if rule == "insert_ignore":
        if engine == "mysql" and (not ignore or odku):
            raise SqlTextError(
                "rule 'insert_ignore' needs INSERT IGNORE INTO ... without ON DUPLICATE KEY UPDATE: "
                "a plain INSERT fails on a replayed chunk's rows"
            )
        if engine == "postgresql" and not conflict_nothing:
            raise SqlTextError(
                "rule 'insert_ignore' needs INSERT INTO ... ON CONFLICT DO NOTHING: a plain INSERT fails "
                "on a replayed chunk's rows"
            )
        return StatementShape("insert_ignore", table, columns)
    if rule != "upsert":
        raise SqlTextError(f"unknown idempotence rule {rule!r}; expected one of {', '.join(RULES)}")
    if engine == "mysql" and (ignore or not odku):
        raise SqlTextError("rule 'upsert' needs INSERT INTO ... ON DUPLICATE KEY UPDATE (without IGNORE)")
    if engine == "postgresql" and not conflict_update:
        raise SqlTextError("rule 'upsert' needs INSERT INTO ... ON CONFLICT (...) DO UPDATE SET")
    start = ("UPDATE",) if engine == "mysql" else ("DO", "UPDATE", "SET")
    assignments = _clause(rest, start, ("WHERE", "RETURNING"), last=True)
    _refuse_self_reference(assignments, table, engine, "the upsert's update")
    return StatementShape("upsert", table, columns)


def check_select(sql: str, engine: str) -> None:
    """A verify query: one SELECT (or WITH ... SELECT), read only."""
    tokens = significant(tokenize(sql, engine))
    if tokens and tokens[-1].text == ";":
        tokens = tokens[:-1]
    if not tokens or tokens[0].upper not in ("SELECT", "WITH"):
        raise SqlTextError("a verify query must be a single SELECT")
    if any(t.text == ";" for t in tokens):
        raise SqlTextError("a verify query must be a single SELECT: found ';' inside it")
    writes = {"INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE", "FOR", "INTO"}
    found = [t.text for t in _top_level(tokens) if t.upper in writes]
    if found:
        raise SqlTextError(f"a verify query must only read: found {found[0]}")


def _insert_modifiers(tokens: list[Token]) -> tuple[bool, int]:
    """(IGNORE given, index of INTO) of an INSERT."""
    ignore = False
    for index, token in enumerate(tokens[1:6], start=1):
        if token.upper == "INTO":
            return ignore, index
        if token.upper == "IGNORE":
            ignore = True
        elif token.upper not in ("LOW_PRIORITY", "HIGH_PRIORITY", "DELAYED"):
            break
    raise SqlTextError("expected INSERT [IGNORE] INTO <table> (<columns>) SELECT ...")


def _table_name(tokens: list[Token], start: int) -> tuple[str, list[Token]]:
    parts = []
    index = start
    while index < len(tokens) and tokens[index].kind in ("word", "quoted"):
        parts.append(tokens[index].text)
        if index + 1 < len(tokens) and tokens[index + 1].text == ".":
            index += 2
            continue
        index += 1
        break
    if not parts:
        raise SqlTextError("cannot find the name of the table the statement writes")
    return ".".join(parts), tokens[index:]


def _column_list(rest: list[Token]) -> tuple[str, ...]:
    if not rest or rest[0].text != "(":
        raise SqlTextError(
            "list the inserted columns, INSERT ... INTO t (c1, c2) SELECT ...: the unique key that makes "
            "a replay harmless must be among them"
        )
    depth, end = 0, 0
    for index, token in enumerate(rest):
        depth += {"(": 1, ")": -1}.get(token.text, 0) if token.kind == "punct" else 0
        if depth == 0:
            end = index
            break
    elements = split_top_level(rest[1:end])
    columns = []
    for element in elements:
        names = significant(element)
        if len(names) != 1 or names[0].kind not in ("word", "quoted"):
            raise SqlTextError("the inserted column list must name plain columns")
        columns.append(unquote(names[0].text))
    following = rest[end + 1 : end + 2]
    if not following or following[0].upper not in ("SELECT", "WITH", "("):
        raise SqlTextError("the statement must insert the result of a SELECT (INSERT ... SELECT), not VALUES")
    return tuple(columns)


def unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in '`"':
        return text[1:-1].replace(text[0] * 2, text[0])
    return text


def _top_level(tokens: Sequence[Token]) -> list[Token]:
    out, depth = [], 0
    for token in tokens:
        if token.kind == "punct" and token.text == "(":
            depth += 1
        elif token.kind == "punct" and token.text == ")":
            depth -= 1
        elif depth == 0:
            out.append(token)
    return out


def _contains(words: list[str], sequence: tuple[str, ...]) -> bool:
    return any(tuple(words[i : i + len(sequence)]) == sequence for i in range(len(words)))


def _clause(
    tokens: list[Token], start: tuple[str, ...], stop: tuple[str, ...], *, last: bool = False
) -> list[list[Token]]:
    """The comma-separated items of a top-level clause starting after the words `start` (the last
    occurrence when `last`) and ending before a top-level word in `stop`."""
    depth, begin = 0, None
    for index, token in enumerate(tokens):
        if token.kind == "punct" and token.text in "()":
            depth += 1 if token.text == "(" else -1
            continue
        at_start = depth == 0 and tuple(t.upper for t in tokens[index : index + len(start)]) == start
        if at_start and (begin is None or last):
            begin = index + len(start)
    if begin is None:
        raise SqlTextError(f"cannot find {' '.join(start)} in the statement")
    body, depth = [], 0
    for token in tokens[begin:]:
        if token.kind == "punct" and token.text in "()":
            depth += 1 if token.text == "(" else -1
        if depth == 0 and token.upper in stop and token.kind == "word":
            break
        body.append(token)
    return split_top_level(body)


def _refuse_self_reference(assignments: list[list[Token]], table: str, engine: str, where: str) -> None:
    """`col = expr` items must not read `col` from the row being written."""
    own = {unquote(part).lower() for part in table.split(".")}
    for item in assignments:
        equals = next((i for i, t in enumerate(item) if t.text == "="), None)
        if equals is None or equals == 0:
            raise SqlTextError(f"cannot read the assignment {_text(item)!r} in {where}")
        target = unquote(item[equals - 1].text).lower()
        qualifier = unquote(item[equals - 3].text).lower() if equals >= 3 and item[equals - 2].text == "." else None
        expression = item[equals + 1 :]
        for i, token in enumerate(expression):
            if token.kind not in ("word", "quoted") or unquote(token.text).lower() != target:
                continue
            if i >= 1 and expression[i - 1].text == ".":
                ref_qualifier = unquote(expression[i - 2].text).lower() if i >= 2 else ""
                if ref_qualifier not in own and ref_qualifier != qualifier:
                    continue  # another table's column, EXCLUDED.col, or the MySQL 8 row alias
            elif _inside_values(expression, i):
                continue  # VALUES(col): the value the INSERT proposed
            raise SqlTextError(
                f"{where} assigns {_text(item)!r}, which reads the column it writes: a replayed chunk "
                "would apply it twice (compute the value from the source row instead)"
            )


def _inside_values(expression: list[Token], index: int) -> bool:
    return index >= 2 and expression[index - 1].text == "(" and expression[index - 2].upper == "VALUES"


def _text(tokens: Sequence[Token]) -> str:
    return " ".join(t.text for t in tokens)
