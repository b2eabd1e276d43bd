"""Lambda entry point: SQS batch of staging-bucket notifications (S3 -> SNS -> SQS) -> the lake
(and PostgreSQL for the tables configured to be applied).

The sandbox keeps the settings, the database connection, the S3 client, the transfer manager and
the ledgers between invocations; all are created on first use, not at import.
"""

from __future__ import annotations

from typing import Any

from cdc_lake.apply import applied_ledger
from cdc_lake.batch import Ledgers, process_batch
from cdc_lake.config import LakeConfig
from cdc_lake.copier import Copier
from cdc_lake.merge import Tombstones
from cdc_lake.partitioner import copies_ledger
from pipeline_common.deadline import Deadline
from pipeline_common.log import get_logger
from pipeline_common.sandbox import Sandbox

logger = get_logger()

# Time kept back when the deadline stops a copy or an apply: enough to roll back and record it.
RESERVE_MS = 5_000

sandbox = Sandbox(LakeConfig.from_env, secret_ttl=lambda config: config.secret_ttl_seconds)


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    config = sandbox.settings
    s3 = sandbox.client("s3")
    return process_batch(
        event,
        config=config,
        s3=s3,
        copier=sandbox.keep("copier", lambda: Copier(s3, config.multipart_threshold, config.multipart_chunk_size)),
        db=sandbox.connection("db", config.database),
        ledgers=sandbox.keep(
            "ledgers",
            lambda: Ledgers(
                copies_ledger(config.state_schema),
                applied_ledger(config.state_schema),
                Tombstones(config.state_schema),
            ),
        ),
        deadline=Deadline.from_context(context, reserve_ms=RESERVE_MS),
    )
