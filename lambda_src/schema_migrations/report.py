"""Publish each database's result to the results topic and log it as JSON."""

from __future__ import annotations

import json
from typing import Any

from schema_migrations.results import DatabaseResult


def publish(sns: Any, topic_arn: str, result: DatabaseResult) -> None:
    """One message per database run; attributes let subscribers filter (e.g. only failures)."""
    subject = f"schema migrations {result.status}: {result.action} {result.database or '(none)'}"
    sns.publish(
        TopicArn=topic_arn,
        Subject=subject[:100],
        Message=json.dumps(result.to_dict(), default=str),
        MessageAttributes={
            "status": {"DataType": "String", "StringValue": result.status},
            "action": {"DataType": "String", "StringValue": result.action},
            "database": {"DataType": "String", "StringValue": result.database or "-"},
        },
    )


def log(logger: Any, result: DatabaseResult) -> None:
    fields = {"result": result.to_dict()}
    if result.status == "succeeded":
        logger.info("schema migration run finished", extra=fields)
    else:
        logger.error("schema migration run did not succeed", extra=fields)
