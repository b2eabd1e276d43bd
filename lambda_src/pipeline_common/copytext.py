"""Python values as PostgreSQL COPY text: what table sync sends for rows read from another database.

Encoding runs column by column so C-level `map` and `str.join` do the per-value work: a Python call
per value would cost as much as fetching the value did. `pipeline_common.pgload.copy_encoded` and
`copy_rows` send the result.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any


def _escape_text(value: str) -> str:
    # COPY text format: backslash, tab, newline and carriage return are special; NULL is \\N.
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def _bytes_text(value: bytes | bytearray | memoryview) -> str:
    # bytea hex input is `\x...`; the backslash itself is escaped in COPY text.
    return "\\\\x" + bytes(value).hex()


def _interval_text(value: timedelta) -> str:
    return f"{value.days} days {value.seconds} seconds {value.microseconds} microseconds"


def _json_text(value: Any) -> str:
    return _escape_text(json.dumps(value, separators=(",", ":"), default=str))


# Exact-type dispatch: one dict lookup per value keeps a million-row copy cheap in Python.
_TEXT_ENCODERS: dict[type, Callable[[Any], str]] = {
    str: _escape_text,
    int: str,
    Decimal: str,
    float: repr,
    bool: lambda v: "t" if v else "f",
    datetime: datetime.isoformat,
    date: date.isoformat,
    time: time.isoformat,
    bytes: _bytes_text,
    bytearray: _bytes_text,
    memoryview: _bytes_text,
    uuid.UUID: str,
    timedelta: _interval_text,
    dict: _json_text,
    list: _json_text,
}

# Types whose str() is valid COPY text with nothing to escape and never "None": a column of them
# is encoded by a C-level map(str), its NULLs then swapped for \\N by a dict lookup.
_STR_KINDS = frozenset({int, Decimal, float, uuid.UUID})
# Dates and times likewise need no escaping; isoformat is the fastest C formatter they have.
_ISO_KINDS: dict[type, Callable[[Any], str]] = {
    datetime: datetime.isoformat,
    date: date.isoformat,
    time: time.isoformat,
}
_NULL_TEXT = "\\N"
_NULL_OF_NONE = {None: _NULL_TEXT}
_NULL_OF_STR_NONE = {"None": _NULL_TEXT}
_BOOL_TEXT = {True: "t", False: "f", None: _NULL_TEXT}
_COPY_SPECIALS = ("\\", "\t", "\n", "\r")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text_value(value: Any) -> str:
    """One value as a field of COPY's text format."""
    if value is None:
        return _NULL_TEXT
    encoder = _TEXT_ENCODERS.get(type(value))
    if encoder is None:
        # Subclasses (pyodbc and driver-specific types) fall back to their base type's encoding.
        encoder = next((e for t, e in _TEXT_ENCODERS.items() if isinstance(value, t)), None)
        if encoder is None:
            return _escape_text(str(value))
    return encoder(value)


def copy_text_line(row: Sequence[Any]) -> str:
    return "\t".join([copy_text_value(v) for v in row]) + "\n"


def _text_column(values: Sequence[Any]) -> Sequence[str]:
    """One column of a batch, encoded; a column of one type is mapped without per-value dispatch.

    Every common case stays in C (map, str.join, dict.get): a Python-level call per value would
    cost as much as fetching the value did.
    """
    kinds = set(map(type, values))
    has_null = type(None) in kinds
    kinds.discard(type(None))
    if len(kinds) != 1:
        return [copy_text_value(v) for v in values]
    kind = next(iter(kinds))
    if kind is str:
        # str.join refuses None, so NULLs are dropped before looking for characters to escape
        # (filter(None) drops "" too, which has none).
        joined = "".join(filter(None, values)) if has_null else "".join(values)
        if any(special in joined for special in _COPY_SPECIALS):
            return [_NULL_TEXT if v is None else v.translate(_COPY_ESCAPES) for v in values]
        # dict.get(v, v): None becomes \N, a string stays itself.
        return list(map(_NULL_OF_NONE.get, values, values)) if has_null else values
    if kind in _STR_KINDS:
        encoded = list(map(str, values))
        return list(map(_NULL_OF_STR_NONE.get, encoded, encoded)) if has_null else encoded
    if kind is bool:
        return list(map(_BOOL_TEXT.__getitem__, values))
    encoder = _ISO_KINDS.get(kind) or _TEXT_ENCODERS.get(kind)
    if encoder is None:
        return [copy_text_value(v) for v in values]
    if has_null:
        return [_NULL_TEXT if v is None else encoder(v) for v in values]
    return list(map(encoder, values))


def copy_text_batch(rows: Sequence[Sequence[Any]], width: int | None = None) -> str:
    """Rows as COPY text lines; `width` keeps only the first columns of each row.

    Encoding column by column lets C-level `map`/`join` do the per-value work, which is what
    makes a million Python rows cheap enough to keep pace with COPY itself.
    """
    if not rows:
        return ""
    columns = list(zip(*rows, strict=True))
    if width is not None:
        columns = columns[:width]
    return "\n".join(map("\t".join, zip(*map(_text_column, columns), strict=True))) + "\n"


def copy_text_bytes(rows: Sequence[Sequence[Any]], width: int | None = None) -> bytes:
    """`copy_text_batch` as UTF-8, for `copy_encoded`: encode once, copy more than once if need be."""
    return copy_text_batch(rows, width).encode("utf-8")
