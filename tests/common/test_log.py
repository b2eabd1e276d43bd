import json
import logging

from pipeline_common.log import get_logger
from scripts.lambda_context import LocalLambdaContext


def test_logs_are_json_with_the_request_id(capsys):
    logger = get_logger("log-test")
    context = LocalLambdaContext(function_name="fn", aws_request_id="req-123")

    @logger.inject_lambda_context
    def handler(event, ctx):
        logger.info("loaded", extra={"rows": 3})
        logging.getLogger("pipeline_common.db").warning("library line")
        return "ok"

    assert handler({}, context) == "ok"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    loaded = next(line for line in lines if line["message"] == "loaded")
    assert loaded["function_request_id"] == "req-123"
    assert loaded["rows"] == 3
    assert loaded["service"] == "log-test"
    assert loaded["level"] == "INFO"
    assert any(line["message"] == "library line" for line in lines)
