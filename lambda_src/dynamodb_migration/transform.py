"""The declarative transform: rename, add, set and drop attributes, key attributes protected.

One parser for every side: the functions parse `TRANSFORM` once per sandbox, and the Terraform tests
feed the planned `TRANSFORM` to `parse_transform`, so what plans is what runs. The copy, the stream
sync and the verify all call the same `Transform.apply`, so an item reaches the target in the same
shape whichever path carried it.

Grammar (a JSON object; every key optional; an empty object copies items unchanged):

    {
      "rename": {"old_name": "new_name"},    # move a value to a new name (replaces one already there)
      "add":    {"name": <constant>},        # set when the item lacks the attribute
      "set":    {"name": <constant>},        # set on every item, replacing any value
      "drop":   ["name"]                     # remove
    }

Constants are JSON values: string -> S, number -> N, true/false -> BOOL, null -> NULL, list -> L,
object -> M. Steps apply in the order drop, rename, add, set; a name may appear in one step only,
so the order never changes the result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from pipeline_common.errors import PermanentError

STEPS = ("rename", "add", "set", "drop")
MAX_NAME_BYTES = 255  # DynamoDB allows 64 KB names; longer ones here are certainly a mistake

AttributeValue = dict[str, Any]
Item = dict[str, AttributeValue]


class TransformError(PermanentError, ValueError):
    """The transform is malformed; the message names the step and attribute."""


@dataclass(frozen=True)
class Transform:
    rename: dict[str, str] = field(default_factory=dict)
    add: dict[str, AttributeValue] = field(default_factory=dict)
    set: dict[str, AttributeValue] = field(default_factory=dict)
    drop: tuple[str, ...] = ()
    source: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def apply(self, item: Mapping[str, AttributeValue]) -> Item:
        """The target image of a source item (low-level attribute values, as boto3's client uses)."""
        out = dict(item)
        for name in self.drop:
            out.pop(name, None)
        for old, new in self.rename.items():
            if old in out:
                out[new] = out.pop(old)
        for name, value in self.add.items():
            out.setdefault(name, value)
        out.update(self.set)
        return out

    @property
    def fingerprint(self) -> str:
        """Identifies the transform in the copy's state: a different transform must not resume it."""
        canonical = json.dumps(self.source, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def parse_transform(document: Any, key_attributes: Iterable[str]) -> Transform:
    """Check and compile a transform; `document` is the JSON text or its decoded value."""
    keys = tuple(key_attributes)
    if isinstance(document, str):
        try:
            document = json.loads(document) if document.strip() else {}
        except json.JSONDecodeError as exc:
            raise TransformError(f"transform is not valid JSON: {exc}") from None
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise TransformError(f"transform must be a JSON object with keys {', '.join(STEPS)}")
    unknown = sorted(set(document) - set(STEPS))
    if unknown:
        raise TransformError(f"transform has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(STEPS)}")

    rename = _mapping(document, "rename")
    for old, new in rename.items():
        if not isinstance(new, str):
            raise TransformError(f"transform.rename.{old}: the new name must be a string, got {_kind(new)}")
        _check_name(new, f"transform.rename.{old}")
        if old == new:
            raise TransformError(f"transform.rename.{old}: renames the attribute to itself")
    drop = document.get("drop", [])
    if not isinstance(drop, list) or not all(isinstance(name, str) for name in drop):
        raise TransformError("transform.drop must be a list of attribute names")
    if len(set(drop)) != len(drop):
        raise TransformError("transform.drop lists an attribute twice")
    add = {name: _constant(value, f"transform.add.{name}") for name, value in _mapping(document, "add").items()}
    set_ = {name: _constant(value, f"transform.set.{name}") for name, value in _mapping(document, "set").items()}

    # Every name an item may lose or gain, by step, to refuse keys and overlaps with the step named.
    touched: list[tuple[str, str]] = [
        *((f"transform.drop[{i}]", name) for i, name in enumerate(drop)),
        *((f"transform.rename.{old}", old) for old in rename),
        *((f"transform.rename.{old} (new name)", new) for old, new in rename.items()),
        *((f"transform.add.{name}", name) for name in add),
        *((f"transform.set.{name}", name) for name in set_),
    ]
    seen: dict[str, str] = {}
    for where, name in touched:
        _check_name(name, where)
        if name in keys:
            raise TransformError(f"{where}: {name!r} is a key attribute of the table; keys cannot be changed")
        if name in seen:
            raise TransformError(f"{where}: {name!r} is also used by {seen[name]}; use each name in one step only")
        seen[name] = where
    return Transform(rename=dict(rename), add=add, set=set_, drop=tuple(drop), source=document)


def _mapping(document: Mapping[str, Any], step: str) -> Mapping[str, Any]:
    value = document.get(step, {})
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TransformError(f"transform.{step} must be an object of attribute names, got {_kind(value)}")
    return value


def _check_name(name: str, where: str) -> None:
    if not name or len(name.encode()) > MAX_NAME_BYTES:
        raise TransformError(f"{where}: attribute names must be 1-{MAX_NAME_BYTES} bytes, got {name!r}")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _constant(value: Any, where: str) -> AttributeValue:
    """A JSON value as a low-level DynamoDB attribute value."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float | Decimal):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise TransformError(f"{where}: {value!r} is not a number DynamoDB can store") from None
        if not number.is_finite():
            raise TransformError(f"{where}: {value!r} is not a number DynamoDB can store")
        return {"N": str(number)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list):
        return {"L": [_constant(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, Mapping):
        return {"M": {str(k): _constant(v, f"{where}.{k}") for k, v in value.items()}}
    raise TransformError(f"{where}: unsupported constant of type {_kind(value)}")
