"""The migration's state table: the copy's run and segment checkpoints, and the keys the stream touched.

One table, partition key `pk` (string), TTL on `expires_at`. Items:

- `copy`: the run: transform fingerprint, TotalSegments, start and finish times. A run with another
  transform or segment count is refused rather than resumed half one way, half the other.
- `segment#00007`: one per Scan segment: the LastEvaluatedKey to resume from (a position document
  of `pipeline_common.values`, as JSON text: `{"id": {"S": {"str": "a"}}}`, binary values kept as
  bytes), progress counters, `done`, and a lease (owner, expiry) so two invocations never work one
  segment at once.
- `touched#<key>`: written by the sync for every key it applies, before it writes the target:
  the last applied stream sequence number (zero-padded to 40 digits, so text order is number
  order), whether the item is deleted, and `expires_at`. The copy never keeps its own image of a
  touched key (see docs/dynamodb_migration.md for why this is enough).

Nothing of this reaches the target table.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from dynamodb_migration.dynamo import Counters, call, get_batch
from dynamodb_migration.items import Item, key_token
from pipeline_common.deadline import Deadline
from pipeline_common.errors import PermanentError, RetryableError, aws_error_code
from pipeline_common.values import decode_document, encode_document

SEQUENCE_DIGITS = 40  # stream sequence numbers have 21 to 40 digits
RUN = "copy"
TOUCHED = "touched#"
# A record passes unless a later one of its key was applied; an equal one passes again, so a record
# whose target write was cut short (a crash, a timeout) is written when Lambda retries it.
CLAIM_CONDITION = "attribute_not_exists(#seq) OR #seq <= :seq"


def sequence_text(sequence_number: str) -> str:
    if not sequence_number.isdigit() or len(sequence_number) > SEQUENCE_DIGITS:
        raise ValueError(f"not a stream sequence number: {sequence_number!r}")
    return sequence_number.zfill(SEQUENCE_DIGITS)


def _segment_pk(segment: int) -> str:
    return f"segment#{segment:05d}"


@dataclass
class Segment:
    index: int
    last_key: Item | None = None
    scanned: int = 0
    written: int = 0
    skipped: int = 0
    repaired: int = 0
    done: bool = False

    def progress(self) -> dict[str, Any]:
        return {
            "segment": self.index,
            "scanned": self.scanned,
            "written": self.written,
            "skipped": self.skipped,
            "repaired": self.repaired,
            "done": self.done,
        }


class StateTable:
    def __init__(
        self,
        client: Any,
        table: str,
        key_attributes: Sequence[str],
        *,
        counters: Counters | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.table = table
        self.key_attributes = tuple(key_attributes)
        self.counters = counters
        self.clock = clock

    # --- touched keys (written by the sync, read by the copy and the repairs) -----------------

    def touched_pk(self, key: Mapping[str, Any]) -> dict[str, Any]:
        return {"pk": {"S": TOUCHED + key_token(key, self.key_attributes)}}

    def claim(
        self, key: Mapping[str, Any], sequence_number: str, *, deleted: bool, ttl_days: int, deadline: Deadline
    ) -> bool:
        """Record that the stream applies `sequence_number` to `key`; False when a later record of
        the key was applied already (a replay)."""
        sequence = sequence_text(sequence_number)
        now = int(self.clock())
        applied = self._if_condition_holds(
            self.client.update_item,
            deadline,
            TableName=self.table,
            Key=self.touched_pk(key),
            UpdateExpression="SET #seq = :seq, deleted = :deleted, expires_at = :expires, updated_at = :now",
            ConditionExpression=CLAIM_CONDITION,
            ExpressionAttributeNames={"#seq": "seq"},
            ExpressionAttributeValues={
                ":seq": {"S": sequence},
                ":deleted": {"BOOL": deleted},
                ":expires": {"N": str(now + ttl_days * 86400)},
                ":now": {"N": str(now)},
            },
        )
        return applied is not None

    def touched(self, tokens: Iterable[str], deadline: Deadline, *, consistent: bool = True) -> dict[str, str]:
        """Sequence numbers of the keys (by `key_token`) the stream touched."""
        keys = [{"pk": {"S": TOUCHED + token}} for token in sorted(set(tokens))]
        if not keys:
            return {}
        found = get_batch(
            self.client,
            self.table,
            keys,
            deadline,
            projection=("pk", "seq"),
            consistent=consistent,
            counters=self.counters,
        )
        return {item["pk"]["S"].removeprefix(TOUCHED): item["seq"]["S"] for item in found}

    # --- the copy's run and segments ----------------------------------------------------------

    def begin_copy(
        self, *, fingerprint: str, total_segments: int, source: str, target: str, deadline: Deadline
    ) -> dict[str, Any]:
        """Start the run, or check that the stored one was made with the same settings."""
        item = {
            "pk": {"S": RUN},
            "fingerprint": {"S": fingerprint},
            "total_segments": {"N": str(total_segments)},
            "source_table": {"S": source},
            "target_table": {"S": target},
            "started_at": {"N": str(int(self.clock()))},
        }
        created = self._if_condition_holds(
            self.client.put_item,
            deadline,
            TableName=self.table,
            Item=item,
            ConditionExpression="attribute_not_exists(pk)",
        )
        if created is not None:
            return item
        stored = call(
            self.client.get_item,
            deadline,
            self.counters,
            TableName=self.table,
            Key={"pk": {"S": RUN}},
            ConsistentRead=True,
        )["Item"]
        for name in ("fingerprint", "total_segments", "source_table", "target_table"):
            if stored[name] != item[name]:
                raise PermanentError(
                    f"the copy recorded in {self.table} was started with {name} "
                    f"{next(iter(stored[name].values()))!r}, now {next(iter(item[name].values()))!r}: "
                    "resuming would mix both; finish with the old settings, or empty the target and the "
                    "state table to start over"
                )
        return stored

    def finish_copy(self, deadline: Deadline) -> None:
        call(
            self.client.update_item,
            deadline,
            self.counters,
            TableName=self.table,
            Key={"pk": {"S": RUN}},
            UpdateExpression="SET finished_at = if_not_exists(finished_at, :now)",
            ExpressionAttributeValues={":now": {"N": str(int(self.clock()))}},
        )

    def segments(self, total: int, deadline: Deadline) -> list[Segment]:
        keys = [{"pk": {"S": _segment_pk(i)}} for i in range(total)]
        stored = {
            item["pk"]["S"]: item for item in get_batch(self.client, self.table, keys, deadline, counters=self.counters)
        }
        return [_segment(i, stored.get(_segment_pk(i))) for i in range(total)]

    def lease(self, segment: int, owner: str, seconds: float, deadline: Deadline) -> Segment | None:
        """Take the segment for `seconds` unless another owner holds it or it is done."""
        now = self.clock()
        response = self._if_condition_holds(
            self.client.update_item,
            deadline,
            TableName=self.table,
            Key={"pk": {"S": _segment_pk(segment)}},
            UpdateExpression="SET lease_owner = :owner, lease_until = :until",
            ConditionExpression=(
                "(attribute_not_exists(#done) OR #done = :false) AND "
                "(attribute_not_exists(lease_until) OR lease_until < :now OR lease_owner = :owner)"
            ),
            ExpressionAttributeNames={"#done": "done"},
            ExpressionAttributeValues={
                ":owner": {"S": owner},
                ":until": {"N": f"{now + seconds:.3f}"},
                ":now": {"N": f"{now:.3f}"},
                ":false": {"BOOL": False},
            },
            ReturnValues="ALL_NEW",
        )
        if response is None:
            return None
        return _segment(segment, response["Attributes"])

    def checkpoint(
        self,
        segment: Segment,
        owner: str,
        *,
        scanned: int,
        written: int,
        skipped: int,
        repaired: int,
        deadline: Deadline,
    ) -> None:
        """Persist the segment's position and add the page's counts, while still holding the lease."""
        values = {
            ":owner": {"S": owner},
            ":done": {"BOOL": segment.done},
            ":now": {"N": str(int(self.clock()))},
            ":scanned": {"N": str(scanned)},
            ":written": {"N": str(written)},
            ":skipped": {"N": str(skipped)},
            ":repaired": {"N": str(repaired)},
        }
        assignments = "#done = :done, updated_at = :now"
        if segment.last_key is not None:
            assignments += ", last_key = :last_key"
            values[":last_key"] = {"S": json.dumps(encode_document(segment.last_key), separators=(",", ":"))}
        update = f"SET {assignments} ADD scanned :scanned, written :written, skipped :skipped, repaired :repaired"
        if segment.last_key is None:
            update += " REMOVE last_key"
        held = self._if_condition_holds(
            self.client.update_item,
            deadline,
            TableName=self.table,
            Key={"pk": {"S": _segment_pk(segment.index)}},
            UpdateExpression=update,
            ConditionExpression="lease_owner = :owner",
            ExpressionAttributeNames={"#done": "done"},
            ExpressionAttributeValues=values,
        )
        if held is None:
            raise RetryableError(f"segment {segment.index}: the lease passed to another invocation")

    def release(self, segment: int, owner: str, deadline: Deadline) -> None:
        """Give the segment back (nothing to do when the lease already passed on)."""
        self._if_condition_holds(
            self.client.update_item,
            deadline,
            TableName=self.table,
            Key={"pk": {"S": _segment_pk(segment)}},
            UpdateExpression="REMOVE lease_owner, lease_until",
            ConditionExpression="lease_owner = :owner",
            ExpressionAttributeValues={":owner": {"S": owner}},
        )

    def _if_condition_holds(self, operation: Any, deadline: Deadline, **request: Any) -> dict[str, Any] | None:
        """The response of a conditional write, or None when its condition failed."""
        try:
            return call(operation, deadline, self.counters, **request)
        except ClientError as exc:
            if aws_error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise


def _segment(index: int, item: Mapping[str, Any] | None) -> Segment:
    item = item or {}

    def number(name: str) -> int:
        return int(item[name]["N"]) if name in item else 0

    last_key = item.get("last_key", {}).get("S")
    return Segment(
        index=index,
        last_key=decode_document(json.loads(last_key)) if last_key else None,
        scanned=number("scanned"),
        written=number("written"),
        skipped=number("skipped"),
        repaired=number("repaired"),
        done=item.get("done", {}).get("BOOL", False),
    )
