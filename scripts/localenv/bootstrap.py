"""The Lambda runtime loop of one local sandbox, run by `sandbox.Sandbox` as

    python -I -S bootstrap.py <task dir> <handler> [<extra sys.path entry> ...]

so that only the unpacked function zip, its layers and the runtime-provided SDK are importable,
as on Lambda. This file imports nothing outside the standard library.

Protocol: one JSON line per request on stdin; one JSON line per reply on the original stdout,
which is kept as a private descriptor while fd 1 is pointed at stderr, so whatever the handler
prints lands in the function's log and cannot corrupt the protocol. The first reply reports the
init phase (module import), as Lambda runs it before the first invocation.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any


class LambdaContext:
    """What the real context offers, with the remaining-time clock on the invocation's deadline."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.function_name: str = request["function_name"]
        self.function_version: str = request.get("function_version", "$LATEST")
        self.invoked_function_arn: str = request["invoked_function_arn"]
        self.memory_limit_in_mb: int = int(request["memory_limit_in_mb"])
        self.aws_request_id: str = request["request_id"]
        self.log_group_name: str = request["log_group_name"]
        self.log_stream_name: str = request["log_stream_name"]
        self.identity = None
        self.client_context = None
        self._deadline_ms: int = int(request["deadline_ms"])

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def error_reply(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "error": {
            "errorMessage": str(exc),
            "errorType": error_type or type(exc).__name__,
            "stackTrace": traceback.format_exception(exc),
        }
    }


def load_handler(name: str) -> Any:
    module_name, _, function_name = name.rpartition(".")
    if not module_name:
        raise ValueError(f"bad handler {name!r}: expected <module>.<function>")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, function_name)
    except AttributeError:
        raise AttributeError(f"handler {function_name!r} missing on module {module_name!r}") from None


def invoke(handler: Any, request: dict[str, Any]) -> dict[str, Any]:
    os.environ["_X_AMZN_REQUEST_ID"] = request["request_id"]
    try:
        result = handler(request["event"], LambdaContext(request))
    except Exception as exc:  # noqa: BLE001 - every handler error becomes a function error reply
        traceback.print_exc()
        return error_reply(exc)
    try:
        json.dumps(result)
    except (TypeError, ValueError) as exc:
        return error_reply(exc, "Runtime.MarshalError")
    return {"result": result}


def main() -> None:
    task_dir, handler_name, *extra_paths = sys.argv[1:]
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.path[:0] = [task_dir, *extra_paths]
    os.chdir(task_dir)

    started = time.monotonic()
    try:
        handler = load_handler(handler_name)
    except Exception as exc:  # noqa: BLE001 - reported as Lambda reports an init failure
        traceback.print_exc()
        protocol.write(json.dumps(error_reply(exc, "Runtime.ImportModuleError")) + "\n")
        return
    protocol.write(json.dumps({"ready": True, "init_ms": (time.monotonic() - started) * 1000}) + "\n")

    for line in sys.stdin:
        reply = invoke(handler, json.loads(line))
        sys.stdout.flush()
        sys.stderr.flush()
        protocol.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()
