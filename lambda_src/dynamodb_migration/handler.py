"""Lambda entry point of the three migration functions; `MIGRATION_FUNCTION` says which one this is.

- copy: invoked by hand or by a schedule, event `{}`; continues a stopped copy, returns at once
  when it is done;
- sync: the DynamoDB stream event source mapping (partial batch responses);
- verify: invoked by hand, event `{"mode": "count" | "compare" | "repair", "segments": [0, 1]}`
  (both optional; compare by default, every segment); the result is also published to SNS.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.config import Config

from dynamodb_migration.config import Settings
from dynamodb_migration.copy import run_copy
from dynamodb_migration.dynamo import Counters
from dynamodb_migration.guard import Tables
from dynamodb_migration.state import StateTable
from dynamodb_migration.sync import sync_batch
from dynamodb_migration.verify import run_verify, verify_request
from pipeline_common.deadline import Deadline, RateLimit
from pipeline_common.errors import PipelineError
from pipeline_common.events import EventError
from pipeline_common.log import get_logger
from pipeline_common.sandbox import Sandbox

logger = get_logger()

# Kept back from the Lambda timeout: the page in flight, its checkpoint and the lease release.
RESERVE_MS = 10_000

# Throttling is retried by the migration itself (with jitter, within the deadline); botocore's
# standard mode keeps its few quick retries for network errors. The pool covers the copy threads.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=64, connect_timeout=5)

sandbox = Sandbox(Settings.from_env)


class CopyFailed(PipelineError):
    """A segment stopped on an error; the others went on and the result was logged. Retryable when
    every error was (a later run continues from the checkpoints)."""


def tables_for(settings: Settings, client: Any) -> Tables:
    counters = Counters()
    return Tables(
        client=client,
        source=settings.source_table,
        target=settings.target_table,
        key_attributes=settings.key_attributes,
        transform=settings.transform,
        state=StateTable(client, settings.state_table, settings.key_attributes, counters=counters),
        counters=counters,
        rate_limit=RateLimit(settings.write_rate_limit) if settings.write_rate_limit else None,
    )


def _is_stream_event(event: Mapping[str, Any]) -> bool:
    records = event.get("Records")
    return isinstance(records, list) and all(
        isinstance(r, Mapping) and r.get("eventSource") == "aws:dynamodb" for r in records
    )


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = sandbox.settings
    deadline = Deadline.from_context(context, RESERVE_MS)
    tables = tables_for(settings, sandbox.client("dynamodb", config=CLIENT_CONFIG))
    if settings.function == "sync":
        if not _is_stream_event(event):
            raise EventError("the sync function takes DynamoDB stream events only")
        return sync_batch(
            tables,
            event["Records"],
            ttl_days=settings.touched_ttl_days,
            deadline=deadline,
            stream_arn=settings.source_stream_arn,
        )
    if "Records" in event:
        raise EventError(f"the {settings.function} function is invoked by hand or by its schedule, not by records")
    if settings.function == "copy":
        result = run_copy(
            tables,
            total_segments=settings.total_segments,
            concurrency=settings.copy_concurrency,
            page_size=settings.page_size,
            deadline=deadline,
            owner=context.aws_request_id,
            source_stream_arn=settings.source_stream_arn,
        ).to_json()
        logger.info("copy result", extra={"result": result})
        if result["status"] == "failed":
            raise CopyFailed(f"copy failed: {json.dumps(result, default=str)}", retryable=result["retryable"])
        return result
    mode, segments = verify_request(event)
    verified = run_verify(
        tables,
        mode=mode,
        total_segments=settings.total_segments,
        concurrency=settings.copy_concurrency,
        page_size=settings.page_size,
        examples=settings.verify_examples,
        deadline=deadline,
        segments=segments,
    ).to_json()
    logger.info("verify result", extra={"result": verified})
    sandbox.client("sns", config=CLIENT_CONFIG).publish(
        TopicArn=settings.results_topic_arn,
        Subject=f"DynamoDB migration {settings.source_table}: {'match' if verified['match'] else 'MISMATCH'}"[:100],
        Message=json.dumps(verified, default=str),
    )
    return verified
