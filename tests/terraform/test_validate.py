"""`terraform fmt -check` over the repository; `init -backend=false` + `validate` of the root module,
every module under modules/ and every example."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import hcl2
import pytest

from tests.terraform import tfkit

# The provider versions tested here: hashicorp/aws 5.100 (docs/terraform.md, Provider versions).
PROVIDER_CONSTRAINT = ">= 5.100, < 6.0"

# Every folder holding Terraform source besides the root (Makefile TF_FMT_DIRS says the same).
FMT_RECURSIVE_DIRS = ["modules", "environments", "examples", "tests"]


def test_fmt_check(tf_env: dict[str, str]) -> None:
    # The root non-recursively plus the source folders: build/ holds generated copies (the demo's).
    failures = []
    for args in (["."], ["-recursive", *FMT_RECURSIVE_DIRS]):
        proc = subprocess.run(
            ["terraform", "fmt", "-check", "-diff", "-no-color", *args],
            cwd=tfkit.REPO,
            capture_output=True,
            text=True,
            env=tf_env,
            timeout=120,
        )
        if proc.returncode != 0:
            failures.append(proc.stdout + proc.stderr)
    assert not failures, "terraform fmt would change these files (run `make fmt`):\n" + "".join(failures)


def test_every_module_and_example_is_validated() -> None:
    dirs = tfkit.terraform_dirs()
    assert "." in dirs
    assert {
        "modules/network",
        "modules/database",
        "modules/bucket",
        "modules/event_queue",
        "modules/lambda_function",
        "modules/file_loader",
        "modules/table_sync",
        "modules/schema_migrations",
        "modules/dms",
    } <= set(dirs)
    assert {"examples/minimal", "examples/complete"} <= set(dirs)


@pytest.mark.parametrize("directory", tfkit.terraform_dirs())
def test_validate(directory: str, validated: dict[str, tfkit.Result]) -> None:
    result = validated[directory]
    assert result.returncode == 0, f"{directory}: terraform {result.args[0]} failed\n{result.stdout}\n{result.stderr}"
    assert "Success! The configuration is valid." in result.stdout
    # Deprecated arguments are warnings today and errors in the next major provider version.
    assert "Warning" not in result.stdout + result.stderr, (
        f"{directory}: validate warned\n{result.stdout}{result.stderr}"
    )


@pytest.mark.parametrize("directory", [d for d in tfkit.terraform_dirs() if d.startswith("modules/")])
def test_no_provider_block_in_modules(directory: str) -> None:
    for path in (tfkit.REPO / directory).glob("*.tf"):
        assert 'provider "aws"' not in path.read_text(), f"{path}: submodules must not configure providers"


@pytest.mark.parametrize("directory", [".", *(d for d in tfkit.terraform_dirs() if d.startswith("modules/"))])
def test_module_layout(directory: str) -> None:
    """terraform-aws-modules layout: main.tf, variables.tf, outputs.tf, versions.tf with the
    supported Terraform and provider range."""
    path = tfkit.REPO / directory
    for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
        assert (path / name).is_file(), f"{directory} lacks {name}"
    versions = (path / "versions.tf").read_text()
    assert 'required_version = ">= 1.6"' in versions
    assert f'version = "{PROVIDER_CONSTRAINT}"' in versions


def _lock(text: str) -> dict[str, object]:
    (provider,) = hcl2.loads(text)["provider"]
    return provider['"registry.terraform.io/hashicorp/aws"']  # python-hcl2 keeps the quotes


def test_the_lock_file_pins_the_provider_under_test(tmp_path: Path, tf_env: dict[str, str]) -> None:
    """The committed root lock file holds the checksum of the provider package these tests run
    (computed here from the mirror, or the registry without one), for the version and range that
    versions.tf states; every init of the root in these tests runs with -lockfile=readonly. zh:
    hashes (the registry's checksums of every platform's zip) let other platforms install it."""
    committed = _lock((tfkit.REPO / tfkit.LOCK_FILE).read_text())
    shutil.copy2(tfkit.REPO / "versions.tf", tmp_path / "versions.tf")
    mirror = re.search(r'filesystem_mirror\s*\{\s*path\s*=\s*"([^"]+)"', tfkit.TF_CLI_CONFIG.read_text())
    source = [f"-fs-mirror={mirror.group(1)}"] if mirror else []
    tfkit.terraform(tmp_path, "providers", "lock", "-platform=linux_amd64", *source, env=tf_env).check()
    computed = _lock((tmp_path / tfkit.LOCK_FILE).read_text())
    assert committed["version"] == computed["version"]
    assert committed["constraints"] == computed["constraints"] == '">= 5.100.0, < 6.0.0"'
    (h1,) = [h for h in computed["hashes"] if h.startswith('"h1:')]
    assert h1 in committed["hashes"], f"{tfkit.LOCK_FILE} lacks the linux_amd64 checksum {h1}"
    assert len([h for h in committed["hashes"] if h.startswith('"zh:')]) >= 4, "other platforms' zh: checksums"
