"""Typed position documents: every value comes back with its type, and leaves are never confused
with documents."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from pipeline_common import values
from pipeline_common.errors import is_retryable


def test_documents_of_any_shape_round_trip_with_their_types():
    position = {
        "cursor": dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        "key": ("a", 7, Decimal("1.10"), b"\x01", uuid.UUID(int=1), dt.date(2024, 1, 1), dt.time(1, 2), True, 1.5),
        "int": {"int": 5},  # a field named like a tag, holding a document: still a document
        "empty": None,
    }
    document = values.encode_document(position)
    assert document["cursor"] == {"datetime": "2024-01-02T03:04:05.000006-05:00"}
    assert document["int"] == {"int": {"int": 5}}
    decoded = values.decode_document(document)
    assert decoded == {**position, "key": list(position["key"])}
    assert [type(v) for v in decoded["key"]] == [type(v) for v in position["key"]]
    assert values.decode_document(values.encode_document(42)) == 42
    assert values.decode_document(None) is None


def test_table_sync_state_format_is_what_documents_store():
    """Rows written by earlier releases (tagged scalars, plain lists and objects) read back as before."""
    stored = {"cursor": {"datetime": "2024-03-01T12:00:25"}, "key": [{"int": 25}]}
    assert values.decode_document(stored) == {"cursor": dt.datetime(2024, 3, 1, 12, 0, 25), "key": [25]}
    assert values.encode_document({"cursor": dt.datetime(2024, 3, 1, 12, 0, 25), "key": (25,)}) == stored


@pytest.mark.parametrize("bad", [object(), {1: "a"}, {3.5}])
def test_values_that_cannot_be_kept_are_refused_as_permanent(bad):
    with pytest.raises(values.UnsupportedValue) as refused:
        values.encode_document(bad)
    assert not is_retryable(refused.value)


@pytest.mark.parametrize("bad", [{"int": 1, "str": "a"}, {"colour": "red"}, "text", {"nope": 1}])
def test_malformed_stored_values_are_refused(bad):
    with pytest.raises(values.UnsupportedValue):
        values.decode(bad)
