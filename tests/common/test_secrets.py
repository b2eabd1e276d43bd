import json

import boto3
import pytest
from botocore.exceptions import ClientError

from pipeline_common.config import ConfigError
from pipeline_common.errors import is_retryable
from pipeline_common.secrets import SecretCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingClient:
    """Wraps a real (moto) client and counts the calls that reach it."""

    def __init__(self) -> None:
        self.client = boto3.client("secretsmanager")
        self.calls = 0

    def get_secret_value(self, **kwargs):
        self.calls += 1
        return self.client.get_secret_value(**kwargs)


def test_secret_is_cached_until_ttl_then_refetched(aws):
    sm = boto3.client("secretsmanager")
    arn = sm.create_secret(Name="db", SecretString=json.dumps({"username": "u", "password": "one"}))["ARN"]
    counting = CountingClient()
    clock = Clock()
    cache = SecretCache(lambda: counting, ttl_seconds=300, clock=clock)

    assert cache.get_json(arn)["password"] == "one"
    sm.put_secret_value(SecretId=arn, SecretString=json.dumps({"username": "u", "password": "two"}))
    clock.now += 299
    assert cache.get_json(arn)["password"] == "one"
    assert counting.calls == 1
    clock.now += 2
    assert cache.get_json(arn)["password"] == "two"
    assert counting.calls == 2


def test_invalidate_forces_refetch(aws):
    sm = boto3.client("secretsmanager")
    arn = sm.create_secret(Name="db", SecretString='{"password": "a"}')["ARN"]
    counting = CountingClient()
    cache = SecretCache(lambda: counting)
    cache.get_json(arn)
    cache.invalidate(arn)
    cache.get_json(arn)
    assert counting.calls == 2


@pytest.mark.parametrize("value", ["not json", "[1, 2]"])
def test_non_object_secret_is_a_clear_error(aws, value):
    arn = boto3.client("secretsmanager").create_secret(Name="bad", SecretString=value)["ARN"]
    with pytest.raises(ConfigError, match="is not a JSON object"):
        SecretCache(lambda: boto3.client("secretsmanager")).get_json(arn)


def test_binary_secret_is_refused(aws):
    arn = boto3.client("secretsmanager").create_secret(Name="bin", SecretBinary=b"\x00")["ARN"]
    with pytest.raises(ConfigError, match="has no SecretString"):
        SecretCache(lambda: boto3.client("secretsmanager")).get_json(arn)


def test_an_aws_error_reaches_the_caller_as_itself_so_retry_decisions_see_its_code(aws):
    """Why the cache is not Powertools Parameters (which wraps every error into one message): a
    missing secret must fail at once, not be retried as if AWS were busy."""
    cache = SecretCache(lambda: boto3.client("secretsmanager"))
    with pytest.raises(ClientError) as missing:
        cache.get_json("arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert not is_retryable(missing.value)
