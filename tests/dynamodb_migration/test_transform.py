"""The one transform parser (functions and Terraform plans alike) and the settings around it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dynamodb_migration.config import Settings
from dynamodb_migration.transform import TransformError, parse_transform
from pipeline_common.config import ConfigError

KEYS = ("id", "sort")


def test_the_seed_migration_renames_adds_and_sets() -> None:
    transform = parse_transform(
        {"rename": {"pref": "preference"}, "add": {"channel": "email"}, "set": {"schema_version": 2}, "drop": ["tmp"]},
        KEYS,
    )
    item = {"id": {"S": "a"}, "sort": {"S": "b"}, "pref": {"S": "x"}, "tmp": {"N": "1"}, "channel": {"S": "sms"}}
    assert transform.apply(item) == {
        "id": {"S": "a"},
        "sort": {"S": "b"},
        "preference": {"S": "x"},
        "channel": {"S": "sms"},  # add keeps a value already there
        "schema_version": {"N": "2"},
    }
    # An item without the renamed or added attributes gets the constants only.
    assert transform.apply({"id": {"S": "a"}, "sort": {"S": "c"}}) == {
        "id": {"S": "a"},
        "sort": {"S": "c"},
        "channel": {"S": "email"},
        "schema_version": {"N": "2"},
    }
    assert item["pref"] == {"S": "x"}, "apply must not change its input"


def test_constants_of_every_json_type() -> None:
    transform = parse_transform(
        {"set": {"s": "x", "n": 1.25, "i": -3, "b": True, "z": None, "l": [1, "a"], "m": {"k": {"deep": False}}}}, KEYS
    )
    assert transform.set == {
        "s": {"S": "x"},
        "n": {"N": "1.25"},
        "i": {"N": "-3"},
        "b": {"BOOL": True},
        "z": {"NULL": True},
        "l": {"L": [{"N": "1"}, {"S": "a"}]},
        "m": {"M": {"k": {"M": {"deep": {"BOOL": False}}}}},
    }


def test_rename_replaces_an_attribute_already_under_the_new_name() -> None:
    transform = parse_transform({"rename": {"old": "new"}}, KEYS)
    assert transform.apply({"id": {"S": "a"}, "old": {"S": "1"}, "new": {"S": "2"}}) == {
        "id": {"S": "a"},
        "new": {"S": "1"},
    }


def test_empty_transforms_copy_items_unchanged() -> None:
    for document in ("", "{}", {}, None):
        transform = parse_transform(document, KEYS)
        assert transform.apply({"id": {"S": "a"}, "x": {"SS": ["1"]}}) == {"id": {"S": "a"}, "x": {"SS": ["1"]}}


def test_the_fingerprint_follows_the_content_not_the_spelling() -> None:
    one = parse_transform('{"set": {"a": 1}, "drop": ["b"]}', KEYS)
    two = parse_transform({"drop": ["b"], "set": {"a": 1}}, KEYS)
    assert one.fingerprint == two.fingerprint
    assert one.fingerprint != parse_transform({"set": {"a": 2}, "drop": ["b"]}, KEYS).fingerprint


BAD: dict[str, tuple[Any, str]] = {
    "not_json": ("{rename: x}", "transform is not valid JSON"),
    "not_an_object": ([], "transform must be a JSON object"),
    "unknown_step": ({"copy": {}}, "transform has unknown key(s) copy"),
    "rename_not_an_object": ({"rename": ["a"]}, "transform.rename must be an object"),
    "rename_to_a_number": ({"rename": {"a": 1}}, "transform.rename.a: the new name must be a string"),
    "rename_to_itself": ({"rename": {"a": "a"}}, "transform.rename.a: renames the attribute to itself"),
    "drop_not_a_list": ({"drop": "a"}, "transform.drop must be a list"),
    "drop_twice": ({"drop": ["a", "a"]}, "transform.drop lists an attribute twice"),
    "drop_the_key": ({"drop": ["id"]}, "transform.drop[0]: 'id' is a key attribute"),
    "rename_the_sort_key": ({"rename": {"sort": "s2"}}, "transform.rename.sort: 'sort' is a key attribute"),
    "rename_onto_the_key": ({"rename": {"a": "id"}}, "transform.rename.a (new name): 'id' is a key attribute"),
    "set_the_key": ({"set": {"id": "x"}}, "transform.set.id: 'id' is a key attribute"),
    "add_the_key": ({"add": {"sort": "x"}}, "transform.add.sort: 'sort' is a key attribute"),
    "add_and_set": ({"add": {"a": 1}, "set": {"a": 2}}, "transform.set.a: 'a' is also used by transform.add.a"),
    "rename_chain": ({"rename": {"a": "b", "b": "c"}}, "'b' is also used by"),
    "rename_onto_a_set": ({"rename": {"a": "b"}, "set": {"b": 1}}, "transform.set.b: 'b' is also used by"),
    "drop_renamed": (
        {"rename": {"a": "b"}, "drop": ["a"]},
        "transform.rename.a: 'a' is also used by transform.drop[0]",
    ),
    "empty_name": ({"set": {"": 1}}, "transform.set.: attribute names must be 1-255 bytes"),
    "infinite_number": ({"set": {"a": float("inf")}}, "transform.set.a: inf is not a number DynamoDB can store"),
    "nested_bad_constant": ({"add": {"a": [1, {"b": float("nan")}]}}, "transform.add.a[1].b: nan is not a number"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_transforms_are_refused_naming_the_field(case: str) -> None:
    document, message = BAD[case]
    with pytest.raises(TransformError) as raised:
        parse_transform(document, KEYS)
    assert message in str(raised.value)


ENV = {
    "MIGRATION_FUNCTION": "copy",
    "SOURCE_TABLE": "prefs",
    "TARGET_TABLE": "prefs-v2",
    "STATE_TABLE": "prefs-migration",
    "KEY_ATTRIBUTES": "id,preferenceType",
    "TRANSFORM": json.dumps({"rename": {"pref": "preference"}}),
}


def test_settings_from_the_environment() -> None:
    settings = Settings.from_env({**ENV, "TOTAL_SEGMENTS": "16", "WRITE_RATE_LIMIT": "500"})
    assert settings.key_attributes == ("id", "preferenceType")
    assert settings.transform.rename == {"pref": "preference"}
    assert (settings.total_segments, settings.write_rate_limit, settings.copy_concurrency) == (16, 500, 4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"MIGRATION_FUNCTION": "count"}, "MIGRATION_FUNCTION must be one of copy, sync, verify"),
        ({"KEY_ATTRIBUTES": "a,b,c"}, "KEY_ATTRIBUTES must name the partition key"),
        ({"KEY_ATTRIBUTES": "id,id"}, "KEY_ATTRIBUTES must name the partition key"),
        ({"TRANSFORM": '{"drop": ["preferenceType"]}'}, "TRANSFORM: transform.drop[0]: 'preferenceType' is a key"),
        ({"TARGET_TABLE": "prefs"}, "must be three different tables"),
        ({"STATE_TABLE": "no spaces"}, "STATE_TABLE must be a DynamoDB table name"),
        ({"TOTAL_SEGMENTS": "0"}, "TOTAL_SEGMENTS must be >= 1"),
        ({"MIGRATION_FUNCTION": "verify"}, "RESULTS_TOPIC_ARN is required by the verify function"),
    ],
)
def test_bad_settings_name_the_variable(change: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**ENV, **change})
    assert message in str(raised.value)


def test_a_missing_variable_is_named() -> None:
    environ = {k: v for k, v in ENV.items() if k != "SOURCE_TABLE"}
    with pytest.raises(ConfigError, match="SOURCE_TABLE is required"):
        Settings.from_env(environ)
