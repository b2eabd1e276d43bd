"""The sandbox helper: nothing at import, everything once per sandbox, a reset that closes."""

from __future__ import annotations

import json

import boto3
import pytest

from pipeline_common.config import ConfigError, DatabaseSettings, env_str
from pipeline_common.sandbox import Sandbox


def test_settings_clients_and_objects_are_made_once_on_first_use(aws, monkeypatch):
    loads = []

    def load() -> dict:
        loads.append(1)
        return {"bucket": env_str("BUCKET")}

    sandbox = Sandbox(load)
    assert loads == []  # nothing happens until an invocation asks
    monkeypatch.delenv("BUCKET", raising=False)
    with pytest.raises(ConfigError, match="BUCKET"):
        sandbox.settings  # noqa: B018 - the first invocation fails naming the variable
    monkeypatch.setenv("BUCKET", "landing")
    assert sandbox.settings == {"bucket": "landing"} and sandbox.settings is sandbox.settings
    assert sandbox.client("s3") is sandbox.client("s3") is not sandbox.client("sqs")
    made = []
    assert sandbox.keep("ledger", lambda: made.append(1) or "ledger") == sandbox.keep("ledger", list) == "ledger"
    assert made == [1]
    sandbox.reset()
    assert sandbox.keep("ledger", lambda: "new ledger") == "new ledger"
    assert sandbox.settings == {"bucket": "landing"}
    assert len(loads) == 3  # one failure, one success, one after the reset


def test_connections_are_reused_and_closed_by_reset(pg_server, pg_database, aws):
    arn = boto3.client("secretsmanager").create_secret(
        Name="db", SecretString=json.dumps(pg_server.secret(pg_database))
    )["ARN"]
    settings = DatabaseSettings("postgresql", None, None, None, arn, sslmode="require")
    sandbox = Sandbox(dict, secret_ttl=lambda _: 60)
    db = sandbox.connection("db", settings)
    assert sandbox.connection("db", settings) is db
    first = db.get()
    assert db.get() is first and db.opened == 1
    assert db._secrets is sandbox.secrets() and sandbox.secrets()._ttl == 60
    sandbox.reset()
    assert first.closed
    again = sandbox.connection("db", settings)
    assert again is not db and again.get() is not first and again.opened == 1
    sandbox.reset()
