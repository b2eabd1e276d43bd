"""Cursor and key values as JSON for the state table, and as readable values for results.

Watermarks must come back as exactly the Python type the source driver produced (a datetime stays
a datetime, not a string that would compare as text on the source), so each value is stored with
its type: `{"datetime": "2024-05-01T10:00:00+00:00"}`, `{"int": 42}`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any


class UnsupportedValue(ValueError):
    """A value cannot be stored as a watermark."""


def encode(value: Any) -> dict[str, Any]:
    """A tagged JSON object for one cursor or key value."""
    # bool before int: bool is an int subclass; datetime before date: likewise.
    if isinstance(value, bool):
        return {"bool": value}
    if isinstance(value, int):
        return {"int": value}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, float):
        return {"float": value}
    if isinstance(value, str):
        return {"str": value}
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, time):
        return {"time": value.isoformat()}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": bytes(value).hex()}
    if isinstance(value, uuid.UUID):
        return {"uuid": str(value)}
    raise UnsupportedValue(f"cannot keep a {type(value).__name__} value as a watermark or key")


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "bool": bool,
    "int": int,
    "decimal": Decimal,
    "float": float,
    "str": str,
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "time": time.fromisoformat,
    "bytes": bytes.fromhex,
    "uuid": uuid.UUID,
}


def decode(document: dict[str, Any]) -> Any:
    if not isinstance(document, dict) or len(document) != 1:
        raise UnsupportedValue(f"not an encoded value: {document!r}")
    ((kind, raw),) = document.items()
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise UnsupportedValue(f"unknown value type {kind!r}")
    return decoder(raw)


def display(value: Any) -> Any:
    """The value as plain JSON for results and logs: numbers stay numbers, the rest becomes text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value).hex()
    return str(value)


def as_parameter(value: Any) -> Any:
    """A cursor or key value ready to bind on the source.

    Every source session runs in UTC (see `table_sync.source`), so an aware datetime is bound as
    naive UTC: pyodbc drops tzinfo silently, which would shift the value by its offset.
    """
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return value
