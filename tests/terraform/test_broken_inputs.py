"""Deliberately broken calls of a real module are refused by the real `terraform validate`.

Each fixture under fixtures/broken_* calls modules/bucket with one mistake; fixtures/valid_bucket is
the same call without it, so each error can only come from the mistake. Assertions are on
Terraform's own diagnostics (`validate -json`): the error summary, the file and line it points at,
and the name it blames.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def terraform_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for terraform: the project's CLI config (provider mirror) and a plugin cache.

    `make` exports TF_CLI_CONFIG_FILE; when pytest runs on its own, generate the same config the
    Makefile would, with the same script.
    """
    env = dict(os.environ)
    config = env.get("TF_CLI_CONFIG_FILE", "")
    if not config or not Path(config).is_file():
        config = str(tmp_path_factory.mktemp("terraform-cli") / "terraformrc")
        subprocess.run([str(REPO / "scripts" / "terraform_cli_config.sh"), config], check=True, capture_output=True)
    cache = tmp_path_factory.mktemp("plugin-cache")
    # The cache makes every init after the first link the ~700 MB provider instead of copying it.
    env.update({"TF_CLI_CONFIG_FILE": config, "TF_PLUGIN_CACHE_DIR": str(cache), "TF_IN_AUTOMATION": "1"})
    env.pop("TF_DATA_DIR", None)
    return env


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    # Terraform writes .terraform/ and a lock file next to the configuration: run on a copy laid
    # out like the repository (modules/ linked in), so the fixtures' relative module source
    # resolves and the source tree stays clean while other runs use it.
    (tmp_path / "modules").symlink_to(REPO / "modules", target_is_directory=True)
    (tmp_path / "tests" / "terraform" / "fixtures").mkdir(parents=True)
    yield tmp_path / "tests" / "terraform" / "fixtures"


def _validate(fixture: str, workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    config = workdir / fixture
    shutil.copytree(FIXTURES / fixture, config)
    init = subprocess.run(
        ["terraform", f"-chdir={config}", "init", "-backend=false", "-input=false", "-no-color"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert init.returncode == 0, f"terraform init failed:\n{init.stdout}\n{init.stderr}"
    validate = subprocess.run(
        ["terraform", f"-chdir={config}", "validate", "-json", "-no-color"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    result: dict[str, Any] = json.loads(validate.stdout)
    assert validate.returncode == (0 if result["valid"] else 1), validate.stderr
    return result


def _line_of(fixture: str, needle: str) -> int:
    lines = (FIXTURES / fixture / "main.tf").read_text().splitlines()
    return next(number for number, line in enumerate(lines, start=1) if needle in line)


def _single_error(result: dict[str, Any]) -> dict[str, Any]:
    assert result["valid"] is False
    errors = [d for d in result["diagnostics"] if d["severity"] == "error"]
    assert len(errors) == 1, json.dumps(result["diagnostics"], indent=2)
    return errors[0]


def test_control_the_correct_call_is_valid(workdir: Path, terraform_env: dict[str, str]) -> None:
    result = _validate("valid_bucket", workdir, terraform_env)
    assert result["valid"] is True, json.dumps(result["diagnostics"], indent=2)
    assert result["error_count"] == 0


def test_unknown_argument(workdir: Path, terraform_env: dict[str, str]) -> None:
    error = _single_error(_validate("broken_unknown_argument", workdir, terraform_env))
    assert error["summary"] == "Unsupported argument"
    assert 'An argument named "versoning_enabled" is not expected here.' in error["detail"]
    assert 'Did you mean "versioning_enabled"?' in error["detail"]
    assert error["range"]["filename"] == "main.tf"
    assert error["range"]["start"]["line"] == _line_of("broken_unknown_argument", "versoning_enabled")


def test_missing_required_argument(workdir: Path, terraform_env: dict[str, str]) -> None:
    error = _single_error(_validate("broken_missing_argument", workdir, terraform_env))
    assert error["summary"] == "Missing required argument"
    assert 'The argument "bucket" is required, but no definition was found.' in error["detail"]
    assert error["range"]["filename"] == "main.tf"
    assert error["range"]["start"]["line"] == _line_of("broken_missing_argument", 'module "bucket"')


def test_reference_to_undeclared_resource(workdir: Path, terraform_env: dict[str, str]) -> None:
    error = _single_error(_validate("broken_undeclared_resource", workdir, terraform_env))
    assert error["summary"] == "Reference to undeclared resource"
    assert 'A managed resource "aws_kms_key" "pipeline" has not been declared in the root module.' in error["detail"]
    assert error["range"]["filename"] == "main.tf"
    assert error["range"]["start"]["line"] == _line_of("broken_undeclared_resource", "aws_kms_key.pipeline")
