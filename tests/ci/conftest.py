"""Fixtures of the CI scripts' tests: a fake GitHub on loopback and a real, small Terraform plan.

The plan comes from the real Terraform: a configuration of `terraform_data` resources is applied to
a local state, then planned with another variable value, which creates, updates, replaces and
deletes one resource each and changes an output. It lives in a git repository, as in a workflow's
checkout, with the build/ zips and manifest a plan artifact carries and the metadata the pull
request's plan job records.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.ci import reviewed_plan
from scripts.ci.github import GitHub
from tests.ci.fake_github import REPO, TOKEN, FakeGitHub
from tests.terraform import tfkit

CONFIG = """
terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = ">= 5.100, < 7.0" }
  }
}

variable "v" {
  type    = string
  default = "a"
}

resource "terraform_data" "keep" { input = "same" }
resource "terraform_data" "changed" { input = var.v }
resource "terraform_data" "replaced" { triggers_replace = [var.v] }
resource "terraform_data" "gone" { count = var.v == "a" ? 1 : 0 }
resource "terraform_data" "added" { count = var.v == "a" ? 0 : 1 }

output "v" { value = var.v }
"""


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


@pytest.fixture
def github(fake_github: FakeGitHub) -> GitHub:
    return GitHub(REPO, TOKEN, api_url=fake_github.url, backoff=0.01)


@pytest.fixture
def github_env(fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment a workflow step gives the scripts, pointed at the fake."""
    env = {
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_API_URL": fake_github.url,
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_RUN_ID": "4242",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)
    return env


def git(directory: Path, *args: str) -> str:
    identity = ["-c", "user.name=ci-test", "-c", "user.email=ci-test@example.com"]
    command = ["git", "-C", str(directory), *identity, *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def terraform(directory: Path, command: str, *args: str) -> tfkit.Result:
    return tfkit.terraform(directory, command, "-no-color", *args, env=tfkit.terraform_env()).check()


def pull_state(directory: Path) -> str:
    """`terraform state pull`: what the workflow hands to `reviewed_plan check --state`."""
    return tfkit.terraform(directory, "state", "pull", env=tfkit.terraform_env()).check().stdout


def write_build(directory: Path) -> None:
    """build/ with one zip and the manifest describing it, as `make package` writes."""
    build = directory / "build"
    build.mkdir()
    content = b"PK function bytes"
    (build / "fn.zip").write_bytes(content)
    digest = base64.b64encode(hashlib.sha256(content).digest()).decode()
    entry = {"zip": "fn.zip", "source_code_hash": digest, "size": len(content), "handler": "fn.handler.handler"}
    manifest = {"runtime": "python3.12", "architecture": "x86_64", "functions": {"fn": entry}, "layers": {}}
    (build / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="session")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkout with an applied state and a saved plan of changes: tfplan, tfplan.txt, tfplan.json,
    tfplan.meta.json (environment dev, pull request 12), build/ and the provider lock file; and
    initial.tfplan, the plan that created the state."""
    work = tmp_path_factory.mktemp("planned")
    (work / "main.tf").write_text(CONFIG)
    (work / ".gitignore").write_text(".terraform/\n*.tfstate*\ntfplan*\nbuild/\n.terraform.lock.hcl\n")
    git(work, "init", "-q")
    git(work, "add", ".")
    git(work, "commit", "-qm", "config")
    terraform(work, "init", "-input=false")
    # The first deployment, from a plan made before any state existed (kept as initial.tfplan).
    terraform(work, "plan", "-input=false", "-out=initial.tfplan")
    terraform(work, "apply", "-input=false", "initial.tfplan")
    terraform(work, "plan", "-input=false", "-var=v=b", "-out=tfplan")
    (work / "tfplan.txt").write_text(terraform(work, "show", "tfplan").stdout)
    (work / "tfplan.json").write_text(terraform(work, "show", "-json", "tfplan").stdout)
    write_build(work)
    meta = reviewed_plan.record("dev", True, 12, work)
    (work / "tfplan.meta.json").write_text(json.dumps(meta))
    return work


@pytest.fixture
def workspace(planned: Path, tmp_path: Path) -> Path:
    """A private copy of `planned` a test may change (apply, commit, edit)."""
    return Path(shutil.copytree(planned, tmp_path / "workspace", symlinks=True))
