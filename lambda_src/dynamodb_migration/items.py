"""Item and key helpers over low-level attribute values (`{"S": "x"}`, binary as bytes), the form
boto3's client and Scan pages use; stream images are brought to it at the edge
(`pipeline_common.events.client_image`)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

AttributeValue = dict[str, Any]
Item = dict[str, AttributeValue]

_deserializer = TypeDeserializer()


def item_key(item: Mapping[str, AttributeValue], key_attributes: Sequence[str]) -> Item:
    try:
        return {name: item[name] for name in key_attributes}
    except KeyError as exc:
        raise ValueError(f"item lacks key attribute {exc.args[0]!r}: {sorted(item)}") from None


def key_token(key: Mapping[str, AttributeValue], key_attributes: Sequence[str]) -> str:
    """A canonical text for a key: equal keys give equal text whatever spelling a number has
    ("1.0" and "1" are the same number to DynamoDB)."""
    parts = []
    for name in key_attributes:
        ((kind, value),) = key[name].items()
        if kind == "N":
            value = _canonical_number(value)
        elif kind == "B":
            value = base64.b64encode(value).decode("ascii")
        parts.append([kind, value])
    return json.dumps(parts, separators=(",", ":"), ensure_ascii=False)


def _canonical_number(text: str) -> str:
    number = Decimal(text)
    return "0" if number.is_zero() else str(number.normalize())


def plain(item: Mapping[str, AttributeValue]) -> dict[str, Any]:
    """JSON-friendly Python values of an item (numbers as int or str, binary as base64)."""
    return {name: _plain_value(_deserializer.deserialize(value)) for name, value in item.items()}


def _plain_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "value") and isinstance(value.value, bytes):  # boto3 Binary
        return base64.b64encode(value.value).decode("ascii")
    if isinstance(value, set | frozenset):
        return sorted((_plain_value(v) for v in value), key=str)
    if isinstance(value, list):
        return [_plain_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain_value(v) for k, v in value.items()}
    return value


def differing_attributes(expected: Mapping[str, AttributeValue], actual: Mapping[str, AttributeValue]) -> list[str]:
    """Names whose values differ (by DynamoDB's equality: sets unordered, 1.0 == 1)."""
    names = set(expected) | set(actual)
    return sorted(
        name
        for name in names
        if name not in expected
        or name not in actual
        or _deserializer.deserialize(expected[name]) != _deserializer.deserialize(actual[name])
    )
