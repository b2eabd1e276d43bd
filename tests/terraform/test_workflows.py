"""Users' CI/CD: the GitHub workflows are schema-valid (offline) and keep their structural promises.

The schemas are the ones check-jsonschema vendors; the tests run it with a proxy that refuses every
connection, so a validation that needed the network would fail here rather than pass silently.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from scripts import verify_build

REPO = Path(__file__).resolve().parents[2]
GITHUB = REPO / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))
ACTIONS = sorted((GITHUB / "actions").glob("*/action.yml"))
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
SHA_PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def _load(path: Path) -> dict[str, Any]:
    # YAML 1.2 (ruamel): `on:` stays the string "on" instead of becoming True as in YAML 1.1.
    data = YAML(typ="safe", pure=True).load(path.read_text())
    assert isinstance(data, dict), path
    return data


def _validate(path: Path, schema: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # Any attempt to reach the network fails fast: proves the vendored schema is used offline.
    env.update({"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""})
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


# --- schema validation --------------------------------------------------------------------------


def test_workflows_and_actions_exist() -> None:
    assert {p.name for p in WORKFLOWS} == {"terraform-pr.yml", "terraform-apply.yml"}
    assert {p.parent.name for p in ACTIONS} == {"terraform-init", "terraform-plan"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_github_workflow_schema(path: Path) -> None:
    result = _validate(path, "vendor.github-workflows")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", ACTIONS, ids=lambda p: p.parent.name)
def test_composite_action_matches_github_action_schema(path: Path) -> None:
    result = _validate(path, "vendor.github-actions")
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_validation_rejects_a_broken_workflow(tmp_path: Path) -> None:
    # Control: the same validation must fail on a workflow with a misspelt permission level and a
    # job without runs-on, or the checks above prove nothing.
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  apply:\n    permissions:\n      id-token: writ\n    steps:\n      - run: terraform apply\n"
    )
    result = _validate(broken, "vendor.github-workflows")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Schema validation errors were encountered" in result.stdout + result.stderr


# --- structure ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def apply_wf() -> dict[str, Any]:
    return _load(GITHUB / "workflows" / "terraform-apply.yml")


@pytest.fixture(scope="module")
def pr_wf() -> dict[str, Any]:
    return _load(GITHUB / "workflows" / "terraform-pr.yml")


@pytest.fixture(scope="module")
def plan_action() -> dict[str, Any]:
    return _load(GITHUB / "actions" / "terraform-plan" / "action.yml")


@pytest.fixture(scope="module")
def init_action() -> dict[str, Any]:
    return _load(GITHUB / "actions" / "terraform-init" / "action.yml")


def _needs(job: dict[str, Any]) -> set[str]:
    needs = job.get("needs", [])
    return {needs} if isinstance(needs, str) else set(needs)


def _ancestors(jobs: dict[str, Any], name: str) -> set[str]:
    seen: set[str] = set()
    stack = list(_needs(jobs[name]))
    while stack:
        parent = stack.pop()
        if parent not in seen:
            seen.add(parent)
            stack.extend(_needs(jobs[parent]))
    return seen


def _steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).split("@")[0] == action]


def _runs(steps: list[dict[str, Any]]) -> str:
    return "\n".join(str(s.get("run", "")) for s in steps)


def _environment(job: dict[str, Any]) -> str | None:
    env = job.get("environment")
    return env.get("name") if isinstance(env, dict) else env


def _permissions(workflow: dict[str, Any], job: dict[str, Any]) -> dict[str, str]:
    # Job-level permissions replace the workflow's entirely; they do not merge.
    return dict(job.get("permissions", workflow.get("permissions", {})))


def _apply_jobs(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: job for name, job in workflow["jobs"].items() if "terraform apply" in _runs(job.get("steps", []))}


def _plan_uploads(workflow: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """plan job -> (environment, artifact name) for every job using the terraform-plan action."""
    uploads: dict[str, tuple[str, str]] = {}
    for name, job in workflow["jobs"].items():
        for step in _steps_using(job, "./.github/actions/terraform-plan"):
            uploads[name] = (step["with"]["environment"], step["with"]["artifact-name"])
    return uploads


def test_apply_runs_on_push_to_main(apply_wf: dict[str, Any]) -> None:
    assert apply_wf["on"]["push"]["branches"] == ["main"]
    # Never cancel a deployment half way through.
    assert apply_wf["concurrency"]["cancel-in-progress"] is False


def test_each_environment_is_applied_from_its_own_saved_plan(apply_wf: dict[str, Any]) -> None:
    uploads = _plan_uploads(apply_wf)
    applies = _apply_jobs(apply_wf)
    assert {_environment(job) for job in applies.values()} == {"dev", "prod"}
    for name, job in applies.items():
        environment = _environment(job)
        [plan_job] = [p for p, (env, _) in uploads.items() if env == environment]
        assert plan_job in _needs(job), f"{name} must depend on {plan_job}"
        [download] = _steps_using(job, "actions/download-artifact")
        assert download["with"]["name"] == uploads[plan_job][1], f"{name} must apply the plan {plan_job} uploaded"
        # Restored at the workspace root, where the plan expects build/ and the lock file.
        assert download["with"]["path"] == "."
        steps = job["steps"]
        assert steps.index(download) < next(i for i, s in enumerate(steps) if "terraform apply" in str(s.get("run")))
        apply_command = next(str(s["run"]) for s in steps if "terraform apply" in str(s.get("run", "")))
        assert apply_command.split()[-1] == "tfplan", "apply must run the saved plan, not plan again"
        assert "-var-file" not in apply_command and "-auto-approve" not in apply_command
        assert "scripts/verify_build.py build" in _runs(steps)
        [init] = _steps_using(job, "./.github/actions/terraform-init")
        assert init["with"]["environment"] == environment


def test_prod_follows_dev_and_waits_for_its_environment(apply_wf: dict[str, Any]) -> None:
    jobs = apply_wf["jobs"]
    applies = _apply_jobs(apply_wf)
    [prod] = [name for name, job in applies.items() if _environment(job) == "prod"]
    [dev] = [name for name, job in applies.items() if _environment(job) == "dev"]
    assert dev in _ancestors(jobs, prod)
    assert jobs[prod]["environment"] == "prod"
    # Plan jobs carry no environment: a prod approval should gate the apply only, once.
    for name in _plan_uploads(apply_wf):
        assert "environment" not in jobs[name]


@pytest.mark.parametrize("workflow_name", ["terraform-apply.yml", "terraform-pr.yml"])
def test_aws_access_is_oidc_with_id_token_permission(workflow_name: str) -> None:
    workflow = _load(GITHUB / "workflows" / workflow_name)
    assert workflow["permissions"] == {"contents": "read"}
    using_aws = 0
    for name, job in workflow["jobs"].items():
        for step in _steps_using(job, "aws-actions/configure-aws-credentials"):
            using_aws += 1
            assert _permissions(workflow, job) == {"contents": "read", "id-token": "write"}, name
            assert re.fullmatch(r"\$\{\{ (vars|matrix)\.[\w-]+ \}\}", step["with"]["role-to-assume"]), name
            assert not {"aws-access-key-id", "aws-secret-access-key"} & set(step["with"]), name
        if "id-token" in _permissions(workflow, job):
            assert _steps_using(job, "aws-actions/configure-aws-credentials"), f"{name} needs no OIDC token"
    assert using_aws >= 1


def test_apply_roles_come_from_the_environment(apply_wf: dict[str, Any]) -> None:
    for name, job in _apply_jobs(apply_wf).items():
        [creds] = _steps_using(job, "aws-actions/configure-aws-credentials")
        assert creds["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}", name


def test_plan_artifact_holds_the_plan_and_the_build_it_references(plan_action: dict[str, Any]) -> None:
    steps = plan_action["runs"]["steps"]
    assert plan_action["runs"]["using"] == "composite"
    runs = _runs(steps)
    assert "make package" in runs
    assert '-var-file="environments/$ENVIRONMENT.tfvars" -out=tfplan' in runs
    [upload] = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    paths = [line.strip() for line in upload["with"]["path"].splitlines() if line.strip()]
    assert {"tfplan", "build/manifest.json", "build/*.zip", ".terraform.lock.hcl"} <= set(paths)
    assert all(not p.startswith("/") for p in paths)
    # .terraform.lock.hcl is a dot file, which upload-artifact leaves out unless told otherwise.
    assert upload["with"]["include-hidden-files"] is True
    assert upload["with"]["if-no-files-found"] == "error"
    # Packaging happens before the plan, so the plan records the hashes of the zips uploaded.
    index = {s.get("name") or s.get("uses"): i for i, s in enumerate(steps)}
    assert index["make package"] < index["terraform plan"] < steps.index(upload)


def test_backend_is_s3_with_locking_configured_from_variables(init_action: dict[str, Any]) -> None:
    runs = _runs(init_action["runs"]["steps"])
    assert 'backend "s3" {}' in runs
    for setting in (
        "bucket=$STATE_BUCKET",
        "key=$STATE_KEY_PREFIX/$ENVIRONMENT/terraform.tfstate",
        "use_lockfile=true",
    ):
        assert f'-backend-config="{setting}"' in runs
    for workflow in (_load(p) for p in WORKFLOWS):
        for job in workflow["jobs"].values():
            for step in job.get("steps", []):
                if str(step.get("uses", "")).startswith("./.github/actions/terraform-"):
                    assert step["with"]["state-bucket"] == "${{ vars.TF_STATE_BUCKET }}"


def test_pull_requests_check_format_validate_and_plan_every_environment(pr_wf: dict[str, Any]) -> None:
    assert "pull_request" in pr_wf["on"]
    jobs = pr_wf["jobs"]
    runs = "\n".join(_runs(job.get("steps", [])) for job in jobs.values())
    assert "terraform fmt -check -recursive" in runs
    assert "terraform validate" in runs
    assert not _apply_jobs(pr_wf)
    plan_jobs = [job for name, job in jobs.items() if name in _plan_uploads(pr_wf)]
    [plan] = plan_jobs
    environments = [entry["environment"] for entry in plan["strategy"]["matrix"]["include"]]
    assert environments == ["dev", "prod"]
    for environment in environments:
        assert (REPO / "environments" / f"{environment}.tfvars").is_file(), environment
    [step] = _steps_using(plan, "./.github/actions/terraform-plan")
    assert step["with"]["environment"] == "${{ matrix.environment }}"
    assert "${{ matrix.environment }}" in step["with"]["artifact-name"]


def _all_uses() -> Iterator[tuple[str, str]]:
    for path in [*WORKFLOWS, *ACTIONS]:
        text = path.read_text()
        for match in re.finditer(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", text, re.MULTILINE):
            yield f"{path.relative_to(REPO)}: {match.group(1)}", match.group(2)


def test_third_party_actions_are_pinned_by_commit_sha() -> None:
    remote = [(where, comment) for where, comment in _all_uses() if "./.github/" not in where]
    assert remote
    for where, comment in remote:
        assert SHA_PINNED.match(where.split(": ", 1)[1]), f"{where} is not pinned to a full commit SHA"
        assert re.search(r"#\s*v\d", comment), f"{where} needs a `# vX.Y.Z` comment naming the pinned release"


# --- the build verification the apply jobs run --------------------------------------------------


def _build(tmp_path: Path) -> Path:
    build = tmp_path / "build"
    build.mkdir()
    entries: dict[str, dict[str, Any]] = {}
    for name, content in (("file_loader", b"PK function"), ("odbc_layer", b"PK layer")):
        (build / f"{name}.zip").write_bytes(content)
        digest = base64.b64encode(hashlib.sha256(content).digest()).decode()
        entries[name] = {"zip": f"{name}.zip", "source_code_hash": digest, "size": len(content)}
    manifest = {"functions": {"file_loader": entries["file_loader"]}, "layers": {"odbc": entries["odbc_layer"]}}
    (build / "manifest.json").write_text(json.dumps(manifest))
    return build


def test_verify_build_accepts_the_build_it_describes(tmp_path: Path) -> None:
    build = _build(tmp_path)
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "verify_build.py"), str(build)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_verify_build_refuses_a_swapped_zip(tmp_path: Path) -> None:
    build = _build(tmp_path)
    (build / "file_loader.zip").write_bytes(b"PK other")  # same size, other content
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "verify_build.py"), str(build)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "functions file_loader" in result.stderr and "source_code_hash" in result.stderr


def test_verify_build_refuses_a_missing_zip_or_manifest(tmp_path: Path) -> None:
    build = _build(tmp_path)
    (build / "odbc_layer.zip").unlink()
    assert verify_build.problems(build) == [f"layers odbc: {build / 'odbc_layer.zip'} is missing"]
    (build / "manifest.json").unlink()
    assert verify_build.main([str(build)]) == 1
