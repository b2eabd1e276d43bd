"""`make bench` as one command (issue 13): the benchmarks run one after the other from a single
`python -m scripts.bench`, at a size that takes seconds, and nothing the file loader's run leaves
behind (its environment pointing at its stopped moto server) breaks the schema migrations' run.
Timing is printed, never asserted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.terraform.tfkit import REPO

pytestmark = pytest.mark.slow

SMALL = {"FILE_LOADER_BENCH_ROWS": "2000", "FILE_LOADER_BENCH_RSS_MB": "1", "FILE_LOADER_BENCH_REPEATS": "1"}


def bench(results: Path, *names: str, **settings: str) -> subprocess.CompletedProcess[str]:
    # Figures at this size stay out of build/bench/results.json (the README's table is made from it).
    env = {**os.environ, **SMALL, **settings, "PYTHONPATH": "lambda_src", "BENCH_RESULTS": str(results)}
    return subprocess.run(
        [sys.executable, "-m", "scripts.bench", *names],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_file_loader_bench_leaves_nothing_that_breaks_the_next_one(tmp_path: Path) -> None:
    result = bench(tmp_path / "results.json", "file_loader", "schema_migrations")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "== bench file_loader: ok" in output and "== bench schema_migrations: ok" in output
    assert "file_loader results:" in output and "50 migrations across" in output


def test_a_failed_bench_fails_the_suite_and_the_next_one_still_runs(tmp_path: Path) -> None:
    result = bench(tmp_path / "results.json", "file_loader", "schema_migrations", FILE_LOADER_BENCH_ROWS="many")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-4000:]
    assert "== bench file_loader: FAILED" in output and "== bench schema_migrations: ok" in output
    assert "failed benchmark(s): file_loader" in output
