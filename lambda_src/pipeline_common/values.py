"""Typed positions as JSON: what checkpoints store, and how values are shown and bound again.

A position (a watermark, the key of a chunk's last row, a scan's LastEvaluatedKey) must come back
as exactly the Python type the driver produced: a datetime stays a datetime, not a string that
would compare as text on the database. So each scalar is stored with its type,
`{"datetime": "2024-05-01T10:00:00+00:00"}`, `{"int": 42}`, and a position document nests them in
plain JSON lists and objects: `{"cursor": {"int": 7}, "key": [{"str": "a"}, {"int": 3}]}`.

Decoding is unambiguous because every leaf is tagged: an object with one known tag whose value is
a JSON scalar is a value; any other object is a document.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from pipeline_common.errors import PermanentError


class UnsupportedValue(PermanentError, ValueError):
    """A value cannot be kept in a position."""


def encode(value: Any) -> dict[str, Any]:
    """A tagged JSON object for one scalar value."""
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
    """The scalar `encode` tagged."""
    if not isinstance(document, dict) or len(document) != 1:
        raise UnsupportedValue(f"not an encoded value: {document!r}")
    ((kind, raw),) = document.items()
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise UnsupportedValue(f"unknown value type {kind!r}")
    return decoder(raw)


def encode_document(value: Any) -> Any:
    """A position of any shape: None stays null, sequences become lists, mappings objects (string
    keys), every other value a tagged scalar."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return [encode_document(item) for item in value]
    if isinstance(value, Mapping):
        return {_key(key): encode_document(item) for key, item in value.items()}
    return encode(value)


def decode_document(document: Any) -> Any:
    """The position `encode_document` stored; sequences come back as lists."""
    if document is None:
        return None
    if isinstance(document, list):
        return [decode_document(item) for item in document]
    if not isinstance(document, dict):
        raise UnsupportedValue(f"not an encoded position: {document!r}")
    if _is_tagged(document):
        return decode(document)
    return {key: decode_document(item) for key, item in document.items()}


def _is_tagged(document: dict[str, Any]) -> bool:
    if len(document) != 1:
        return False
    ((kind, raw),) = document.items()
    return kind in _DECODERS and not isinstance(raw, dict | list)


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise UnsupportedValue(f"position keys are strings, got {type(key).__name__} {key!r}")
    return key


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
    """A position value ready to bind on a session that runs in UTC.

    An aware datetime is bound as naive UTC (pyodbc drops tzinfo silently, which would shift the
    value by its offset); buffers become bytes, which every driver binds.
    """
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return value
