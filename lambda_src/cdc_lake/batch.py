"""One SQS batch of staging-bucket notifications: copy each file into the lake, then apply it to
PostgreSQL when its table is configured for that; report partial failures.

The apply reads the lake copy, so deleting the staging object after the copy never races it, and
a message that failed at the apply copies nothing again when it returns (the copy is a replay).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cdc_lake.apply import ApplyResult, apply_file
from cdc_lake.config import LakeConfig
from cdc_lake.copier import Copier
from cdc_lake.merge import Tombstones
from cdc_lake.partitioner import CopyResult, partition_object
from cdc_lake.reading import ObjectVersion
from pipeline_common.deadline import Deadline
from pipeline_common.events import iter_sqs_records, s3_objects, sqs_batch_response
from pipeline_common.ledger import Ledger, ObjectId

logger = logging.getLogger(__name__)

MAX_LISTED = 20


@dataclass(frozen=True)
class Ledgers:
    copies: Ledger
    applied: Ledger
    tombstones: Tombstones


@dataclass
class BatchSummary:
    copies: Counter[str] = field(default_factory=Counter)
    applies: Counter[str] = field(default_factory=Counter)
    restarts: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "copies": dict(self.copies),
            "applies": dict(self.applies),
            "full_load_restarts": self.restarts[:MAX_LISTED],
            "rejected": self.rejected[:MAX_LISTED],
        }


def process_batch(
    event: Mapping[str, Any],
    *,
    config: LakeConfig,
    s3: Any,
    copier: Copier,
    db: Any,
    ledgers: Ledgers,
    deadline: Deadline,
) -> dict[str, Any]:
    """Copy (and apply) every file of an SQS batch; failed messages are listed in
    `batchItemFailures` so only they return to the queue."""
    summary = BatchSummary()

    def process(record: Mapping[str, Any]) -> None:
        for obj in s3_objects(record["body"]):
            copied = partition_object(
                obj, config=config, s3=s3, copier=copier, db=db, ledger=ledgers.copies, deadline=deadline
            )
            summary.copies[copied.status] += 1
            if copied.restart:
                summary.restarts.append(obj.key)
            if copied.status == "rejected":
                summary.rejected.append(f"{obj.key}: {copied.error}")
            applied = _apply(copied, obj.bucket, config=config, s3=s3, db=db, ledgers=ledgers, deadline=deadline)
            if applied is not None:
                summary.applies[applied.status] += 1
                if applied.status == "rejected":
                    summary.rejected.append(f"{obj.key} -> {applied.target}: {applied.error}")

    response: dict[str, Any] = sqs_batch_response(list(iter_sqs_records(event)), process)
    return response | summary.as_dict()


def _apply(
    copied: CopyResult,
    bucket: str,
    *,
    config: LakeConfig,
    s3: Any,
    db: Any,
    ledgers: Ledgers,
    deadline: Deadline,
) -> ApplyResult | None:
    staged = copied.staged
    if staged is None or copied.target_key is None or copied.status not in ("copied", "duplicate"):
        return None
    table = config.apply_table(staged.schema, staged.table)
    if table is None:
        return None
    result = apply_file(
        table=table,
        object_id=ObjectId(bucket, copied.key, copied.version),
        source=ObjectVersion(config.lake_bucket, copied.target_key),
        compressed=staged.compressed,
        timestamp_column=config.timestamp_column,
        sequence_column=config.change_sequence_column,
        s3=s3,
        db=db,
        ledger=ledgers.applied,
        tombstones=ledgers.tombstones,
        deadline=deadline,
    )
    logger.info(
        "CDC file applied",
        extra={
            "key": copied.key,
            "status": result.status,
            "table": result.target,
            "upserted": result.upserted,
            "deleted": result.deleted,
            "unchanged": result.unchanged,
            "error": result.error,
        },
    )
    return result
