"""The processes a demo run owns: what a killed run left behind, the packaged zips, moto's server."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3

from scripts.localdb import free_port, pg_bin_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RUN_DIR = REPO_ROOT / "build" / "demo"
LOCAL_BUILD_DIR = REPO_ROOT / "build" / "local"
CACHE_DIR = REPO_ROOT / "build" / "local-cache"
REGION = "us-east-1"
# What a run records its own pid under; the next run stops a demo process still running.
DEMO_PROCESS = "scripts.demo"


def log(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def process_matches(pid: int, marker: str) -> bool:
    """True when `pid` is alive and its command line contains `marker` (pids get reused)."""
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def stop_stale_run(run_dir: Path) -> None:
    """Stop what a killed run left in `run_dir` (servers it recorded) and remove the directory."""
    if not run_dir.exists():
        return
    log(f"cleaning up a previous run in {run_dir}")
    pids = run_dir / "pids.json"
    if pids.exists():
        with contextlib.suppress(ValueError):
            for name, pid in json.loads(pids.read_text()).items():
                # A previous demo still running (or still cleaning up) would remove this run's files.
                if int(pid) != os.getpid() and process_matches(int(pid), name):
                    os.kill(int(pid), signal.SIGKILL)
    for pidfile in run_dir.glob("pg-*/data/postmaster.pid"):
        data = pidfile.parent
        argv = [str(pg_bin_dir() / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(argv, capture_output=True, check=False)
    for pidfile in run_dir.glob("mariadb-*/mysqld.pid"):
        with contextlib.suppress(ValueError, OSError):
            pid = int(pidfile.read_text().strip())
            if process_matches(pid, "mariadbd") or process_matches(pid, "mysqld"):
                os.kill(pid, signal.SIGKILL)
    shutil.rmtree(run_dir, ignore_errors=True)


def record_pid(run_dir: Path, name: str, pid: int) -> None:
    path = run_dir / "pids.json"
    pids = json.loads(path.read_text()) if path.exists() else {}
    pids[name] = pid
    path.write_text(json.dumps(pids))


def package_functions(runtime: str) -> dict[str, Any]:
    """Build the zips for this machine's Python into build/local (cached; seconds when unchanged)."""
    argv = [sys.executable, str(REPO_ROOT / "scripts" / "package.py"), "--build-dir", str(LOCAL_BUILD_DIR)]
    result = subprocess.run([*argv, "--runtime", runtime], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"packaging failed:\n{result.stdout}\n{result.stderr}")
    return json.loads((LOCAL_BUILD_DIR / "manifest.json").read_text())


@contextlib.contextmanager
def moto_server(run_dir: Path) -> Iterator[str]:
    """The project's corrected moto server (scripts/localenv/moto_server.py) in its own process:
    its own interpreter lock, killed by pid if we die."""
    port = free_port()
    log_file = open(run_dir / "moto.log", "w")  # noqa: SIM115 - closed below, after the process
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.localenv.moto_server", "-H", "127.0.0.1", "-p", str(port)],
        cwd=REPO_ROOT,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    record_pid(run_dir, "moto", process.pid)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for_moto(endpoint, process)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()


def wait_for_moto(endpoint: str, process: subprocess.Popen[bytes]) -> None:
    client = aws_client("sts", endpoint)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with status {process.returncode}")
        with contextlib.suppress(Exception):
            client.get_caller_identity()
            return
        time.sleep(0.2)
    raise RuntimeError("moto server did not answer within 30 s")


def aws_client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
