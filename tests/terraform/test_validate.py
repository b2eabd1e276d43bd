"""`terraform fmt -check` over the repository; `init -backend=false` + `validate` of the root module,
every module under modules/ and every example."""

from __future__ import annotations

import subprocess

import pytest

from tests.terraform import tfkit

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
    assert 'version = ">= 5.100, < 7.0"' in versions
