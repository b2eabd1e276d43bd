"""Structured JSON logging with the Lambda request id (Powertools Logger).

`get_logger` is cheap and idempotent; handlers decorate with `logger.inject_lambda_context` so
every line carries `function_request_id`.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

_loggers: dict[str, Logger] = {}


def get_logger(service: str | None = None) -> Logger:
    service = service or os.environ.get("POWERTOOLS_SERVICE_NAME") or "pipeline"
    if service not in _loggers:
        logger = Logger(service=service, level=os.environ.get("LOG_LEVEL", "INFO"))
        # The library's own modules log through the standard library; give them the same JSON format.
        copy_config_to_registered_loggers(source_logger=logger, include={"pipeline_common"})
        _loggers[service] = logger
    return _loggers[service]
