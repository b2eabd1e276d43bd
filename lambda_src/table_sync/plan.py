"""Resolve a table spec against the live source and target, before any row moves.

Column names are matched exactly, else case-insensitively when that is unambiguous (SQL Server's
`OrderId` meets PostgreSQL's folded `orderid`). Every problem of a table is reported at once.

A table is read encoded (rows rendered as COPY lines on the source) when its spec allows it and
the driver described every synced column with a kind the dialect can render; otherwise typed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline_common.catalog import TableShape
from pipeline_common.errors import PermanentError
from table_sync.config import TableSpec
from table_sync.dialect import ENCODABLE_KINDS, Dialect, SourceColumn, SourceShape


class PlanError(PermanentError, ValueError):
    """The configuration does not fit the databases; the message names every problem."""


@dataclass(frozen=True)
class TablePlan:
    spec: TableSpec
    shape: SourceShape
    target_columns: tuple[str, ...]  # aligned with shape.columns
    target_key: tuple[str, ...]
    not_null: tuple[str, ...]  # target columns refusing NULL, checked while copying
    version_column: str | None  # target column holding the cursor: guards against older rows
    cursor_index: int
    key_indexes: tuple[int, ...]
    position_kinds: tuple[str, ...] | None  # set when a chunk's position is parsed from its last line
    compare_as_text: tuple[str, ...] = ()  # synced target columns whose type has no `=` operator

    @property
    def width(self) -> int:
        return len(self.target_columns)


def _match(name: str, available: Sequence[str]) -> str | None:
    if name in available:
        return name
    folded = [a for a in available if a.lower() == name.lower()]
    return folded[0] if len(folded) == 1 else None


def resolve(
    spec: TableSpec,
    dialect: Dialect,
    described: Sequence[SourceColumn],
    target: TableShape,
) -> TablePlan:
    problems: list[str] = []
    source_label = f"source {spec.source_label}"
    source_columns = [c.name for c in described]

    def source_name(name: str, role: str) -> str:
        found = _match(name, source_columns)
        if found is None:
            problems.append(f"{role} {name!r} is not a column of {source_label} (columns: {', '.join(source_columns)})")
            return name
        return found

    target_names = [c.name for c in target.columns]

    def target_name(name: str) -> str:
        found = _match(name, target_names)
        if found is None:
            problems.append(f"column {name!r} is not a column of target {spec.target}")
            return name
        return found

    pairs = spec.columns if spec.columns is not None else tuple((c, c) for c in source_columns)
    sources = tuple(source_name(s, "column") for s, _ in pairs)
    targets = tuple(target_name(t) for _, t in pairs)
    key = tuple(source_name(k, "primary key column") for k in spec.primary_key)
    cursor = source_name(spec.cursor.column, "cursor column")
    missing_keys = [k for k in key if k not in sources]
    if missing_keys and not problems:
        problems.append(f"primary key column(s) {', '.join(missing_keys)} are not among the synced columns")
    target_key = tuple(targets[sources.index(k)] for k in key if k in sources)
    if not problems and not any(set(u) == set(target_key) for u in target.unique_keys):
        problems.append(
            f"target {spec.target} has no primary key or unique index on ({', '.join(target_key)}); "
            "the upsert needs one"
        )
    supplied = set(targets)
    required = [c.name for c in target.columns if c.required and c.name not in supplied]
    if required:
        problems.append(
            f"target {spec.target} column(s) {', '.join(required)} are NOT NULL without a default and not synced"
        )
    if problems:
        raise PlanError(f"table {spec.name}: " + "; ".join(problems))
    by_name = {c.name: c for c in described}
    encoded = tuple(by_name[s] for s in sources)
    encodable = spec.encode_on_source and all(c.kind in ENCODABLE_KINDS for c in encoded)
    shape = SourceShape(
        relation=spec.source,
        query=spec.query,
        columns=sources,
        primary_key=key,
        cursor_column=cursor,
        cursor_type=spec.cursor.type,
        encoded=encoded if encodable else None,
    )
    not_null = {c.name for c in target.columns if c.not_null}
    return TablePlan(
        spec=spec,
        shape=shape,
        target_columns=targets,
        target_key=target_key,
        not_null=tuple(t for t in targets if t in not_null),
        version_column=targets[sources.index(cursor)] if cursor in sources else None,
        cursor_index=shape.cursor_index(dialect),
        key_indexes=shape.key_indexes(dialect),
        position_kinds=shape.position_kinds(dialect),
        compare_as_text=tuple(t for t in targets if t in target.without_equality),
    )
