"""Local Lambda sandboxes: a function's packaged zip run in a warm worker process.

Each sandbox is one `python -I -S bootstrap.py` process whose import path holds only the unpacked
zip, its layers and the SDK the Lambda runtime provides, so a dependency missing from the package
fails here as it would on Lambda. The process lives across invocations, as Lambda reuses a warm
sandbox, so module state (database connections, secret caches) is reused and exercised. The
parent enforces the configured timeout and memory size: a sandbox that overruns either is killed
and the next invocation starts a fresh one, as on Lambda.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from scripts.localenv.environment import AwsTarget, LocalRewrites, lambda_environment
from scripts.localenv.wiring import FunctionSpec

BOOTSTRAP = Path(__file__).resolve().parent / "bootstrap.py"

# What the Lambda Python runtime ships besides the standard library (the AWS SDK and its
# dependencies); package.py leaves these out of the zips for that reason.
RUNTIME_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six")

# Lambda gives the init phase (importing the handler module) 10 seconds.
INIT_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.05


@dataclass
class Invocation:
    """The outcome of one invocation, as the Lambda service sees it."""

    function: str
    request_id: str
    result: Any = None
    error: dict[str, Any] | None = None
    duration_ms: float = 0.0
    init_ms: float | None = None
    max_memory_mb: float | None = None
    started_at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def error_type(self) -> str | None:
        return None if self.error is None else self.error.get("errorType")


class SandboxError(RuntimeError):
    """A sandbox could not be prepared (missing zip, unreadable package)."""


# --- unpacking ----------------------------------------------------------------------------------


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unpack(zips: Iterable[Path], cache_dir: Path, label: str) -> Path:
    """Unzip `zips` (in order, later ones overwriting) into a directory keyed by their content.

    Unpacking goes to a temporary directory renamed into place, so concurrent callers and a run
    killed half way never leave a partial tree behind under the final name.
    """
    zips = list(zips)
    for path in zips:
        if not path.is_file():
            raise SandboxError(f"package {path} does not exist: run make package (or make demo) first")
    key = hashlib.sha256("".join(file_digest(path) for path in zips).encode()).hexdigest()[:16]
    target = cache_dir / f"{label}-{key}"
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{label}-", dir=cache_dir))
    try:
        for path in zips:
            with zipfile.ZipFile(path) as archive:
                archive.extractall(staging)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # another process won the race when it exists now
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def relocate_layer_configuration(opt_dir: Path) -> None:
    """Layers are built to be unpacked at /opt; their configuration files (odbcinst.ini naming
    /opt/lib/libtdsodbc.so) are pointed at where they were unpacked here instead."""
    for path in opt_dir.glob("*.ini"):
        text = path.read_text()
        relocated = text.replace("/opt/", f"{opt_dir}/")
        if relocated != text:
            path.write_text(relocated)


def runtime_sdk(cache_dir: Path) -> Path:
    """A directory holding the SDK the Lambda runtime provides, copied from this environment."""
    distributions = [importlib.metadata.distribution(name) for name in RUNTIME_DISTRIBUTIONS]
    key = hashlib.sha256(",".join(f"{d.metadata['Name']}=={d.version}" for d in distributions).encode()).hexdigest()
    target = cache_dir / f"runtime-sdk-{key[:16]}"
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".runtime-sdk-", dir=cache_dir))
    try:
        for distribution in distributions:
            for relative in distribution.files or []:
                if relative.parts[0] == ".." or "__pycache__" in relative.parts:
                    continue
                destination = staging / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(str(distribution.locate_file(relative)), destination)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def python_paths(opt_dir: Path | None, runtime_dir: Path) -> list[str]:
    """Import path after the task directory, in Lambda's order: layers, then the runtime."""
    paths: list[str] = []
    if opt_dir is not None:
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        paths += [str(opt_dir / "python" / "lib" / version / "site-packages"), str(opt_dir / "python")]
    paths.append(str(runtime_dir))
    return paths


# --- the sandbox process ------------------------------------------------------------------------


@dataclass(frozen=True)
class Package:
    """A function ready to run: unpacked code, layers, runtime SDK and environment."""

    spec: FunctionSpec
    task_dir: Path
    opt_dir: Path | None
    runtime_dir: Path
    environment: dict[str, str]

    @classmethod
    def prepare(cls, spec: FunctionSpec, cache_dir: Path, aws: AwsTarget, rewrites: LocalRewrites) -> Package:
        task_dir = unpack([spec.zip_path], cache_dir, spec.name)
        opt_dir = unpack(spec.layer_zips, cache_dir, f"{spec.name}-opt") if spec.layer_zips else None
        if opt_dir is not None:
            relocate_layer_configuration(opt_dir)
        runtime_dir = runtime_sdk(cache_dir)
        environment = lambda_environment(spec, task_dir, opt_dir, aws, rewrites)
        return cls(spec, task_dir, opt_dir, runtime_dir, environment)


def rss_mb(pid: int, field_name: str = "VmRSS") -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def reset_peak_rss(pid: int) -> None:
    """Restart the kernel's peak-RSS count so each invocation reports its own maximum."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/clear_refs", "w") as handle:
        handle.write("5")


class Sandbox:
    """One warm worker process for one function. Not thread-safe: one invocation at a time."""

    def __init__(self, package: Package, log: IO[str]) -> None:
        self.package = package
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self.invocations = 0
        self.stream_name = f"local/{uuid.uuid4().hex}"

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def invoke(self, event: Any, request_id: str | None = None) -> Invocation:
        spec = self.package.spec
        invocation = Invocation(function=spec.name, request_id=request_id or str(uuid.uuid4()))
        if not self.alive:
            init_error = self._start(invocation)
            if init_error is not None:
                invocation.error = init_error
                return invocation
        assert self._process is not None and self._process.stdin is not None
        deadline = time.time() + spec.timeout
        request = {
            "event": event,
            "request_id": invocation.request_id,
            "deadline_ms": int(deadline * 1000),
            "function_name": spec.name,
            "invoked_function_arn": spec.arn or f"arn:aws:lambda:us-east-1:123456789012:function:{spec.name}",
            "memory_limit_in_mb": spec.memory_mb,
            "log_group_name": f"/aws/lambda/{spec.name}",
            "log_stream_name": self.stream_name,
        }
        self._log_line(f"START RequestId: {invocation.request_id} Version: $LATEST")
        reset_peak_rss(self._process.pid)
        started = time.monotonic()
        try:
            self._process.stdin.write((json.dumps(request) + "\n").encode())
            self._process.stdin.flush()
            reply = self._read_reply(deadline, spec.memory_mb)
        except BrokenPipeError:
            reply = self._exit_error()
        invocation.duration_ms = (time.monotonic() - started) * 1000
        invocation.max_memory_mb = rss_mb(self._process.pid, "VmHWM") if self.alive else None
        invocation.result = reply.get("result")
        invocation.error = reply.get("error")
        self.invocations += 1
        self._log_report(invocation)
        return invocation

    def stop(self) -> None:
        if self._process is None:
            return
        with contextlib.suppress(OSError):
            if self._process.stdin is not None:
                self._process.stdin.close()
        try:
            self._process.wait(2)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def _start(self, invocation: Invocation) -> dict[str, Any] | None:
        """Cold start: spawn the worker and run the init phase; returns an init error, if any."""
        package = self.package
        argv = [
            sys.executable,
            "-I",
            "-S",
            str(BOOTSTRAP),
            str(package.task_dir),
            package.spec.handler,
            *python_paths(package.opt_dir, package.runtime_dir),
        ]
        self._buffer = b""
        self._process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=package.environment,
            cwd=package.task_dir,
        )
        started = time.monotonic()
        reply = self._read_reply(time.time() + max(INIT_TIMEOUT_SECONDS, package.spec.timeout), None)
        invocation.init_ms = (time.monotonic() - started) * 1000
        if reply.get("ready"):
            return None
        self.stop()
        return reply.get("error") or {"errorType": "Runtime.Unknown", "errorMessage": "init failed"}

    def _read_reply(self, deadline: float, memory_mb: int | None) -> dict[str, Any]:
        process = self._process
        assert process is not None and process.stdout is not None
        descriptor = process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.time()
            if remaining <= 0:
                return self._kill("Sandbox.Timedout", f"Task timed out after {self.package.spec.timeout:.2f} seconds")
            if memory_mb is not None and (rss_mb(process.pid) or 0) > memory_mb:
                return self._kill(
                    "Runtime.OutOfMemory", f"Runtime exited: memory used exceeded the {memory_mb} MB memory size"
                )
            ready, _, _ = select.select([descriptor], [], [], min(POLL_SECONDS, remaining))
            if ready:
                chunk = os.read(descriptor, 1 << 16)
                if not chunk:
                    return self._exit_error()
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def _kill(self, error_type: str, message: str) -> dict[str, Any]:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        self._process = None
        self._log_line(f"{error_type}: {message}")
        return {"error": {"errorType": error_type, "errorMessage": message}}

    def _exit_error(self) -> dict[str, Any]:
        code = self._process.wait() if self._process is not None else None
        self._process = None
        return {"error": {"errorType": "Runtime.ExitError", "errorMessage": f"Runtime exited with status {code}"}}

    def _log_line(self, text: str) -> None:
        self._log.write(text + "\n")
        self._log.flush()

    def _log_report(self, invocation: Invocation) -> None:
        memory = f"{invocation.max_memory_mb:.0f} MB" if invocation.max_memory_mb is not None else "n/a"
        init = f" Init Duration: {invocation.init_ms:.2f} ms" if invocation.init_ms is not None else ""
        status = "" if invocation.ok else f" Status: {invocation.error_type}"
        self._log_line(
            f"END RequestId: {invocation.request_id}\nREPORT RequestId: {invocation.request_id} "
            f"Duration: {invocation.duration_ms:.2f} ms Memory Size: {self.package.spec.memory_mb} MB "
            f"Max Memory Used: {memory}{init}{status}"
        )


class FunctionPool:
    """The sandboxes of one function, at most `limit` at a time; idle ones are reused warm."""

    def __init__(self, package: Package, log: IO[str], limit: int) -> None:
        self.package = package
        self.limit = max(1, limit)
        self._log = log
        self._idle: list[Sandbox] = []
        self._count = 0
        self._available = threading.Condition()
        self.cold_starts = 0

    @contextlib.contextmanager
    def sandbox(self) -> Iterator[Sandbox]:
        sandbox = self._acquire()
        try:
            yield sandbox
        finally:
            self._release(sandbox)

    def invoke(self, event: Any) -> Invocation:
        with self.sandbox() as sandbox:
            if not sandbox.alive:
                self.cold_starts += 1
            return sandbox.invoke(event)

    def close(self) -> None:
        with self._available:
            idle, self._idle = self._idle, []
        for sandbox in idle:
            sandbox.stop()

    def _acquire(self) -> Sandbox:
        with self._available:
            while True:
                if self._idle:
                    return self._idle.pop()
                if self._count < self.limit:
                    self._count += 1
                    return Sandbox(self.package, self._log)
                self._available.wait()

    def _release(self, sandbox: Sandbox) -> None:
        with self._available:
            self._idle.append(sandbox)
            self._available.notify()
