"""The guard that keeps the copy (and verify's repairs) from undoing the stream sync.

The sync records every key it applies in the state table (`touched#<key>`, with the sequence
number) *before* it writes the target. Against that, every write of the copy and of the repairs
goes through `converge`: read the keys' touched entries, write (the scanned image of an untouched
key, else the source's item read now), read the touched entries again, strongly consistent, and
go round again for the keys a stream record reached in between. When a key's entry is the same
before and after the write, any record applied later writes after it.

Why this is enough, and why not transactions, is in docs/dynamodb_migration.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dynamodb_migration.dynamo import Counters, get_batch, write_batch
from dynamodb_migration.items import Item, item_key, key_token, plain
from dynamodb_migration.state import StateTable
from dynamodb_migration.transform import Transform
from pipeline_common.deadline import Deadline, RateLimit
from pipeline_common.errors import RetryableError

MAX_ROUNDS = 5


@dataclass
class Tables:
    """What every path of the migration works on."""

    client: Any  # boto3 DynamoDB client
    source: str
    target: str
    key_attributes: tuple[str, ...]
    transform: Transform
    state: StateTable
    counters: Counters = field(default_factory=Counters)
    rate_limit: RateLimit | None = None  # the copy's write-rate cap

    def key(self, item: Mapping[str, Any]) -> Item:
        return item_key(item, self.key_attributes)

    def token(self, key: Mapping[str, Any]) -> str:
        return key_token(key, self.key_attributes)


@dataclass
class PageCounts:
    written: int = 0  # written as scanned
    skipped: int = 0  # the stream had touched the key: the scanned image was skipped, the source re-read
    repaired: int = 0  # a stream record reached the key while it was written: written again from the source

    def __iadd__(self, other: PageCounts) -> PageCounts:
        self.written += other.written
        self.skipped += other.skipped
        self.repaired += other.repaired
        return self


def copy_page(tables: Tables, items: Sequence[Item], deadline: Deadline) -> PageCounts:
    """Write one Scan page to the target without ever leaving an image older than the stream's."""
    scanned = {tables.token(tables.key(item)): item for item in items}
    return converge(tables, [tables.key(item) for item in items], deadline, scanned=scanned)


def reconcile(tables: Tables, keys: Sequence[Item], deadline: Deadline) -> PageCounts:
    """Make the target's items for `keys` the transformed source items (or absent)."""
    return converge(tables, keys, deadline)


def converge(
    tables: Tables, keys: Sequence[Item], deadline: Deadline, *, scanned: Mapping[str, Item] | None = None
) -> PageCounts:
    """Write the keys' images, then check that no stream record reached them meanwhile; repeat for
    the ones that were reached, from fresh reads of the source.

    A key's image is its `scanned` item while the stream never touched the key, else the source's
    item read now (strongly consistent; absent = delete). The round holds when a key's touched
    entry is the same after the write as before it: a record applied later writes after us. Only
    the look after the write must be strongly consistent: a stale look before only sends a key
    round again.
    """
    counts = PageCounts()
    pending = {tables.token(key): key for key in keys}
    for round_ in range(MAX_ROUNDS):
        before = tables.state.touched(pending, deadline, consistent=False)
        stale = {t: key for t, key in pending.items() if scanned is None or round_ > 0 or t in before}
        fresh = {
            tables.token(tables.key(item)): item
            for item in get_batch(
                tables.client, tables.source, list(stale.values()), deadline, counters=tables.counters
            )
        }
        requests = []
        for token, key in pending.items():
            image = fresh.get(token) if token in stale else scanned[token]  # type: ignore[index]
            if image is None:
                requests.append({"DeleteRequest": {"Key": key}})
            else:
                requests.append({"PutRequest": {"Item": tables.transform.apply(image)}})
        write_batch(
            tables.client, tables.target, requests, deadline, rate_limit=tables.rate_limit, counters=tables.counters
        )
        if round_ == 0:
            counts.skipped = len(stale) if scanned is not None else 0
            counts.written = len(pending) - counts.skipped
        after = tables.state.touched(pending, deadline)
        pending = {t: key for t, key in pending.items() if after.get(t) != before.get(t)}
        if not pending:
            return counts
        counts.repaired += len(pending)
    raise RetryableError(
        f"{len(pending)} key(s) kept changing while they were written ({MAX_ROUNDS} rounds), "
        f"e.g. {plain(next(iter(pending.values())))}"
    )
