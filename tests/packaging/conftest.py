"""Helpers for the packaging tests: fake lambda_src trees and running scripts/package.py for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_SCRIPT = REPO_ROOT / "scripts" / "package.py"


@dataclass
class Build:
    build_dir: Path
    result: subprocess.CompletedProcess[str]

    @property
    def manifest(self) -> dict:
        return json.loads((self.build_dir / "manifest.json").read_text())

    def names(self, zip_name: str) -> list[str]:
        with zipfile.ZipFile(self.build_dir / zip_name) as archive:
            return archive.namelist()


def run_package(
    src: Path,
    build_dir: Path,
    *extra: str,
    cache_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> Build:
    """Run the real CLI the Makefile runs; `check` fails the test with the script's output."""
    command = [sys.executable, str(PACKAGE_SCRIPT), "--src", str(src), "--build-dir", str(build_dir), *extra]
    if cache_dir is not None:
        command += ["--cache-dir", str(cache_dir)]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"package.py failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return Build(build_dir, result)


FakeTree = Callable[[Mapping[str, str | None]], Path]


@pytest.fixture
def fake_src(tmp_path: Path) -> FakeTree:
    """Make a lambda_src tree: {function: requirements.txt content or None for no file}."""

    def make(functions: Mapping[str, str | None]) -> Path:
        src = tmp_path / "lambda_src"
        common = src / "pipeline_common"
        common.mkdir(parents=True)
        (common / "__init__.py").write_text('"""Shared library stand-in."""\n')
        (common / "config.py").write_text("LEVEL = 'INFO'\n")
        for name, requirements in functions.items():
            package = src / name
            package.mkdir()
            (package / "__init__.py").write_text("")
            (package / "handler.py").write_text("def handler(event, context):\n    return {}\n")
            if requirements is not None:
                (package / "requirements.txt").write_text(requirements)
        return src

    return make


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One install cache for tests that do not test the cache itself, so pip runs once per requirement set."""
    return tmp_path_factory.mktemp("package-cache")
