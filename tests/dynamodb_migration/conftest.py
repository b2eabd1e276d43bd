"""A migration in moto (in-process): a source table with a NEW_AND_OLD_IMAGES stream, a target, the
state table, and the source's real stream records turned into the Lambda events the sync receives.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from dynamodb_migration.config import Settings
from dynamodb_migration.copy import CopyResult, run_copy
from dynamodb_migration.guard import Tables
from dynamodb_migration.handler import tables_for
from dynamodb_migration.sync import sync_batch
from dynamodb_migration.transform import parse_transform
from pipeline_common.deadline import Deadline

REGION = "us-east-1"
# The seed's migration: rename one attribute, add one, set a value in the new one for every item.
SEED_TRANSFORM = {"rename": {"pref": "preference"}, "add": {"channel": "email"}, "set": {"schema_version": 2}}

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def typed(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in item.items()}


def untyped(item: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if item is None else {k: _deserializer.deserialize(v) for k, v in item.items()}


def lambda_json(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record as Lambda delivers it: JSON, binary as base64, epoch-second timestamps."""

    def encode(value: Any) -> Any:
        if isinstance(value, bytes | bytearray):
            return base64.b64encode(bytes(value)).decode("ascii")
        if isinstance(value, datetime):
            return value.timestamp()
        raise TypeError(type(value))

    return json.loads(json.dumps({**record, "eventSourceARN": stream_arn}, default=encode))


class StreamReader:
    """Reads the source table's stream from TRIM_HORIZON, returning only records not read yet."""

    def __init__(self, stream_arn: str) -> None:
        self.arn = stream_arn
        self.client = boto3.client("dynamodbstreams", region_name=REGION)
        self.iterators: dict[str, str] = {}

    def read(self) -> list[dict[str, Any]]:
        records = []
        for shard in self.client.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]:
            shard_id = shard["ShardId"]
            if shard_id not in self.iterators:
                self.iterators[shard_id] = self.client.get_shard_iterator(
                    StreamArn=self.arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            response = self.client.get_records(ShardIterator=self.iterators[shard_id])
            self.iterators[shard_id] = response["NextShardIterator"]
            records += [lambda_json(r, self.arn) for r in response["Records"]]
        return records


@dataclass
class Migration:
    """Tables and helpers of one migration; `settings` as the functions would parse them."""

    client: Any
    settings: Settings
    stream: StreamReader
    deadline: Deadline = field(default_factory=lambda: Deadline.in_seconds(600))

    @property
    def tables(self) -> Tables:
        return tables_for(self.settings, self.client)

    def actor(self) -> Migration:
        """The same migration on a client of its own: a writer or sync running beside the copy,
        unaffected by the hooks placed on this one's client."""
        return Migration(boto3.client("dynamodb", region_name=REGION), self.settings, self.stream, self.deadline)

    def put_source(self, **item: Any) -> None:
        self.client.put_item(TableName=self.settings.source_table, Item=typed(item))

    def delete_source(self, **key: Any) -> None:
        self.client.delete_item(TableName=self.settings.source_table, Key=typed(key))

    def fill_source(self, count: int, **extra: Any) -> None:
        for start in range(0, count, 25):
            requests = [
                {"PutRequest": {"Item": typed({"id": f"item-{i:05d}", "pref": f"p{i % 7}", "n": i, **extra})}}
                for i in range(start, min(count, start + 25))
            ]
            self.client.batch_write_item(RequestItems={self.settings.source_table: requests})

    def target_item(self, **key: Any) -> dict[str, Any] | None:
        response = self.client.get_item(TableName=self.settings.target_table, Key=typed(key), ConsistentRead=True)
        return untyped(response.get("Item"))

    def scan(self, table: str) -> dict[str, dict[str, Any]]:
        """Every item of a table by its `id` (a test table's partition key)."""
        items, start = [], {}
        while True:
            page = self.client.scan(TableName=table, **start)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                break
            start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
        return {item["id"]: item for item in (untyped(i) for i in items)}

    def target(self) -> dict[str, dict[str, Any]]:
        return self.scan(self.settings.target_table)

    def expected(self) -> dict[str, dict[str, Any]]:
        """The transformed source: what the target must hold."""
        transform = self.settings.transform
        return {k: untyped(transform.apply(typed(v))) for k, v in self.scan(self.settings.source_table).items()}

    def copy(self, deadline: Deadline | None = None, owner: str | None = None, **overrides: Any) -> CopyResult:
        options = {
            "total_segments": self.settings.total_segments,
            "concurrency": self.settings.copy_concurrency,
            "page_size": self.settings.page_size,
            **overrides,
        }
        return run_copy(
            self.tables,
            deadline=deadline or self.deadline,
            owner=owner or str(uuid.uuid4()),
            source_stream_arn=self.settings.source_stream_arn,
            **options,
        )

    def sync(self, records: list[dict[str, Any]] | None = None, tables: Tables | None = None) -> dict[str, Any]:
        """Deliver stream records to the sync (by default every record not delivered yet)."""
        records = self.stream.read() if records is None else records
        return sync_batch(
            tables or self.tables,
            records,
            ttl_days=self.settings.touched_ttl_days,
            deadline=self.deadline,
            stream_arn=self.settings.source_stream_arn,
        )


def create_table(client: Any, name: str, key: tuple[str, ...], **extra: Any) -> dict[str, Any]:
    schema = [{"AttributeName": key[0], "KeyType": "HASH"}]
    if len(key) > 1:
        schema.append({"AttributeName": key[1], "KeyType": "RANGE"})
    return client.create_table(
        TableName=name,
        KeySchema=schema,
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in key],
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )["TableDescription"]


@pytest.fixture
def make_migration(aws: None) -> Callable[..., Migration]:
    """`make_migration(transform=..., total_segments=...)`: fresh tables in moto for one migration."""
    client = boto3.client("dynamodb", region_name=REGION)

    def make(
        transform: dict[str, Any] | None = None,
        key: tuple[str, ...] = ("id",),
        stream_view: str = "NEW_AND_OLD_IMAGES",
        **options: Any,
    ) -> Migration:
        suffix = uuid.uuid4().hex[:8]
        source = create_table(
            client, f"source-{suffix}", key, StreamSpecification={"StreamEnabled": True, "StreamViewType": stream_view}
        )
        create_table(client, f"target-{suffix}", key)
        create_table(client, f"state-{suffix}", ("pk",))
        client.update_time_to_live(
            TableName=f"state-{suffix}", TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
        )
        transform = SEED_TRANSFORM if transform is None else transform
        settings = Settings(
            function="copy",
            source_table=f"source-{suffix}",
            target_table=f"target-{suffix}",
            state_table=f"state-{suffix}",
            key_attributes=key,
            transform=parse_transform(transform, key),
            source_stream_arn=source["LatestStreamArn"],
            **{"total_segments": 4, "copy_concurrency": 2, "page_size": 50, **options},
        )
        return Migration(client, settings, StreamReader(source["LatestStreamArn"]))

    return make


@pytest.fixture
def migration(make_migration: Callable[..., Migration]) -> Iterator[Migration]:
    yield make_migration()


def on_call(client: Any, operation: str, hook: Callable[..., Any], *, after: bool = False) -> Callable[[], None]:
    """Run `hook(params=<API parameters>, model=..., **kwargs)` before every `operation` call of
    `client` (raising from it fails the call), or `hook(parsed=<response>, **kwargs)` after it
    (changing `parsed` changes what the caller sees). Returns the function removing the hook."""
    event = f"{'after-call' if after else 'before-parameter-build'}.dynamodb.{operation}"
    client.meta.events.register(event, hook)
    return lambda: client.meta.events.unregister(event, hook)


class Budget:
    """A deadline whose remaining time drops by `cost_ms` every time `spend()` is called."""

    def __init__(self, ms: float, reserve_ms: float = 0) -> None:
        self.ms = ms
        self.deadline = Deadline(lambda: self.ms, reserve_ms)

    def spend(self, cost_ms: float) -> None:
        self.ms -= cost_ms
