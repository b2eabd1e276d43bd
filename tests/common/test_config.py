import pytest

from pipeline_common.config import (
    ConfigError,
    DatabaseSettings,
    env_bool,
    env_choice,
    env_int,
    env_json,
    env_list,
    env_str,
)


def test_missing_required_variable_is_named():
    with pytest.raises(ConfigError, match="DB_HOST is required"):
        env_str("DB_HOST", environ={})


def test_empty_value_counts_as_missing_and_defaults_apply():
    assert env_str("X", "fallback", environ={"X": ""}) == "fallback"
    assert env_int("N", 5, environ={}) == 5
    assert env_list("L", ["a"], environ={}) == ["a"]


@pytest.mark.parametrize(
    ("reader", "value", "message"),
    [
        (lambda env: env_int("DB_PORT", environ=env), "54x", "DB_PORT must be an integer, got '54x'"),
        (lambda env: env_int("DB_PORT", minimum=1, environ=env), "0", "DB_PORT must be >= 1"),
        (lambda env: env_bool("DB_PORT", environ=env), "maybe", "DB_PORT must be true or false"),
        (lambda env: env_choice("DB_PORT", ("a", "b"), environ=env), "c", "DB_PORT must be one of a, b"),
        (lambda env: env_json("DB_PORT", environ=env), "{bad", "DB_PORT is not valid JSON"),
    ],
)
def test_malformed_values_name_the_variable(reader, value, message):
    with pytest.raises(ConfigError, match=message):
        reader({"DB_PORT": value})


def test_typed_values():
    env = {"B": "Yes", "I": "42", "J": '{"a": [1]}', "L": " x, ,y "}
    assert env_bool("B", environ=env) is True
    assert env_int("I", environ=env) == 42
    assert env_json("J", environ=env) == {"a": [1]}
    assert env_list("L", environ=env) == ["x", "y"]


def test_database_settings_from_env_with_prefix_and_defaults():
    settings = DatabaseSettings.from_env(
        "SOURCE_DB",
        environ={
            "SOURCE_DB_ENGINE": "sqlserver",
            "SOURCE_DB_HOST": "mssql.internal",
            "SOURCE_DB_PORT": "1433",
            "SOURCE_DB_NAME": "sales",
            "SOURCE_DB_SECRET_ARN": "arn:secret",
            "SOURCE_DB_ODBC_DRIVER": "FreeTDS",
        },
    )
    assert settings == DatabaseSettings(
        engine="sqlserver",
        host="mssql.internal",
        port=1433,
        database="sales",
        secret_arn="arn:secret",
        sslmode="require",
        connect_timeout=5,
        odbc_driver="FreeTDS",
    )


def test_database_settings_require_secret_and_valid_sslmode():
    with pytest.raises(ConfigError, match="DB_SECRET_ARN is required"):
        DatabaseSettings.from_env(environ={"DB_HOST": "h"})
    with pytest.raises(ConfigError, match="DB_SSLMODE must be one of"):
        DatabaseSettings.from_env(environ={"DB_SECRET_ARN": "s", "DB_SSLMODE": "on"})
    with pytest.raises(ConfigError, match="DB_ENGINE must be one of"):
        DatabaseSettings.from_env(environ={"DB_SECRET_ARN": "s", "DB_ENGINE": "oracle"})
