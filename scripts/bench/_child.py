"""Benchmark code in child processes, and the peak RSS of a process of its own: VmHWM, which exec
resets (Linux carries ru_maxrss across fork+exec, so a child's ru_maxrss would report its
parent's peak when that is higher). Every benchmark runs in such a process (`scripts.bench`)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from subprocess import run
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

HANDLER = """
import importlib, json, sys, time
from scripts.bench._child import own_peak_rss_mb
from scripts.lambda_context import LocalLambdaContext
handler = importlib.import_module(sys.argv[1] + ".handler")
event = json.loads(sys.argv[3])
start = time.perf_counter()
result = handler.handler(event, LocalLambdaContext(timeout_seconds=900, memory_limit_in_mb=int(sys.argv[2])))
elapsed = time.perf_counter() - start
print(json.dumps({"result": result, "seconds": elapsed, "peak_rss_mb": own_peak_rss_mb()}))
"""


def own_peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM) in MB, for a process started by exec."""
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with `extra` over it, and the functions' and the project's
    packages importable."""
    return {**os.environ, **(extra or {}), "PYTHONPATH": os.pathsep.join([str(ROOT / "lambda_src"), str(ROOT)])}


def run_python(args: list[str], what: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """`python <args>` from the project root, with `env` over this process's environment; the JSON
    object it printed last."""
    child = run(
        [sys.executable, *args], cwd=ROOT, env=child_environment(env), capture_output=True, text=True, check=False
    )
    if child.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{child.stderr[-4000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def run_handler_process(package: str, event: dict[str, Any], env: dict[str, str], memory_mb: int) -> dict[str, Any]:
    """`<package>.handler.handler(event)` in a fresh interpreter, with `env` over this process's
    environment; returns its result, seconds and peak_rss_mb."""
    return run_python(["-c", HANDLER, package, str(memory_mb), json.dumps(event)], f"{package} handler process", env)
