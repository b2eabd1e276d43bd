"""The stream sync: apply the source table's stream records to the target, in order, once.

For each record, in the batch's order: claim the key in the state table with the record's sequence
number (refused when a later record of the key was applied already: a replay), then put the
transformed new image or delete the key. The claim comes first so that the copy, which checks
claims after writing, can never leave its older image over one the stream wrote (see `guard`).

A record that fails stops the batch: its sequence number is reported as the batch item failure, so
Lambda retries from it and the records behind it never overtake it (`ReportBatchItemFailures`).
Bisected, retried or re-delivered batches apply nothing twice: claims of records already applied
are refused, and a record whose target write was cut short is written again with the same image.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dynamodb_migration.dynamo import call
from dynamodb_migration.guard import Tables
from pipeline_common.deadline import Deadline
from pipeline_common.errors import PermanentError
from pipeline_common.events import EventError, client_image, stream_batch_response, stream_record

# Time one record needs at most (a claim and a write, with a few throttling retries).
RECORD_MS = 2_000


def sync_batch(
    tables: Tables,
    records: list[Mapping[str, Any]],
    *,
    ttl_days: int,
    deadline: Deadline,
    stream_arn: str | None = None,
) -> dict[str, list[dict[str, str]]]:
    """Apply a batch of stream records; returns the partial batch response."""

    def apply(raw: Mapping[str, Any]) -> None:
        deadline.check(RECORD_MS, "a stream record")
        record = stream_record(raw)
        if stream_arn and record.event_source_arn and record.event_source_arn != stream_arn:
            raise PermanentError(f"record from {record.event_source_arn}, but this sync follows {stream_arn}")
        body = raw["dynamodb"]
        key = tables.key(client_image(body["Keys"]))
        if record.event_name == "REMOVE":
            if tables.state.claim(key, record.sequence_number, deleted=True, ttl_days=ttl_days, deadline=deadline):
                call(tables.client.delete_item, deadline, tables.counters, TableName=tables.target, Key=key)
            return
        if record.event_name not in ("INSERT", "MODIFY"):
            raise EventError(f"unknown stream eventName {record.event_name!r}")
        if record.new_image is None:
            raise PermanentError(
                f"{record.event_name} record {record.sequence_number} has no NewImage: the source table's stream "
                "must be NEW_AND_OLD_IMAGES (or NEW_IMAGE)"
            )
        if tables.state.claim(key, record.sequence_number, deleted=False, ttl_days=ttl_days, deadline=deadline):
            call(
                tables.client.put_item,
                deadline,
                tables.counters,
                TableName=tables.target,
                Item=tables.transform.apply(client_image(body["NewImage"])),
            )

    return stream_batch_response(records, apply)
