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
    assert {p.name for p in WORKFLOWS} == {
        "terraform-pr.yml",
        "terraform-apply.yml",
        "terraform-deploy.yml",
        "terraform-drift.yml",
        "release.yml",
    }
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


def _workflow(name: str) -> dict[str, Any]:
    return _load(GITHUB / "workflows" / name)


@pytest.fixture(scope="module")
def apply_wf() -> dict[str, Any]:
    return _workflow("terraform-apply.yml")


@pytest.fixture(scope="module")
def deploy_wf() -> dict[str, Any]:
    return _workflow("terraform-deploy.yml")


@pytest.fixture(scope="module")
def pr_wf() -> dict[str, Any]:
    return _workflow("terraform-pr.yml")


@pytest.fixture(scope="module")
def drift_wf() -> dict[str, Any]:
    return _workflow("terraform-drift.yml")


@pytest.fixture(scope="module")
def release_wf() -> dict[str, Any]:
    return _workflow("release.yml")


@pytest.fixture(scope="module")
def plan_action() -> dict[str, Any]:
    return _load(GITHUB / "actions" / "terraform-plan" / "action.yml")


@pytest.fixture(scope="module")
def init_action() -> dict[str, Any]:
    return _load(GITHUB / "actions" / "terraform-init" / "action.yml")


def _needs(job: dict[str, Any]) -> set[str]:
    needs = job.get("needs", [])
    return {needs} if isinstance(needs, str) else set(needs)


def _steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).split("@")[0] == action]


def _runs(steps: list[dict[str, Any]]) -> str:
    return "\n".join(str(s.get("run", "")) for s in steps)


def _step(steps: list[dict[str, Any]], text: str) -> int:
    """Index of the one step whose name, uses or run contains `text`."""
    [index] = [i for i, s in enumerate(steps) if any(text in str(s.get(k, "")) for k in ("name", "uses", "run"))]
    return index


def _environment(job: dict[str, Any]) -> str | None:
    env = job.get("environment")
    return env.get("name") if isinstance(env, dict) else env


def _permissions(workflow: dict[str, Any], job: dict[str, Any]) -> dict[str, str]:
    # Job-level permissions replace the workflow's entirely; they do not merge.
    return dict(job.get("permissions", workflow.get("permissions", {})))


def _apply_jobs(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: job for name, job in workflow["jobs"].items() if "terraform apply" in _runs(job.get("steps", []))}


def _plan_steps(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """job -> the step using the terraform-plan action, for every job that plans."""
    return {
        name: step
        for name, job in workflow["jobs"].items()
        for step in _steps_using(job, "./.github/actions/terraform-plan")
    }


# --- main: apply the reviewed plan, per environment ---------------------------------------------

DEPLOY = "./.github/workflows/terraform-deploy.yml"


def test_main_deploys_dev_then_prod_each_in_its_own_concurrency_group(apply_wf: dict[str, Any]) -> None:
    assert apply_wf["on"]["push"]["branches"] == ["main"]
    # A workflow-wide group would make a pending prod approval hold back every later dev deployment.
    assert "concurrency" not in apply_wf
    jobs = apply_wf["jobs"]
    assert {name: job["uses"] for name, job in jobs.items()} == {"dev": DEPLOY, "prod": DEPLOY}
    assert _needs(jobs["prod"]) == {"dev"} and not _needs(jobs["dev"])
    groups = set()
    for name, job in jobs.items():
        assert job["with"]["environment"] == name and (REPO / "environments" / f"{name}.tfvars").is_file()
        assert job["with"]["plan-role-arn"] == f"${{{{ vars.AWS_PLAN_ROLE_ARN_{name.upper()} }}}}"
        # Held for the environment's whole plan and apply, never cancelled half way.
        assert job["concurrency"]["cancel-in-progress"] is False
        groups.add(job["concurrency"]["group"])
    assert groups == {"terraform-deploy-dev", "terraform-deploy-prod"}
    # A waiting run of another workflow in a deployment's group would replace a waiting deployment.
    for path in WORKFLOWS:
        if path.name != "terraform-apply.yml":
            text = path.read_text()
            assert not any(group in text for group in groups), path.name


def test_callers_grant_what_the_deploy_jobs_ask_for(apply_wf: dict[str, Any], deploy_wf: dict[str, Any]) -> None:
    # GitHub refuses to start a called workflow whose jobs ask for more than the caller's job grants.
    asked: dict[str, str] = {}
    for job in deploy_wf["jobs"].values():
        for scope, level in _permissions(deploy_wf, job).items():
            asked[scope] = "write" if "write" in (level, asked.get(scope)) else level
    for name, job in apply_wf["jobs"].items():
        assert job["permissions"] == asked, name


# Scopes a job that assumes an AWS role may have besides contents: read and id-token: write.
EXTRA_SCOPES = {"actions": "read", "pull-requests": "write", "issues": "write"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_workflow_is_read_only_by_default(path: Path) -> None:
    assert _load(path)["permissions"] == {"contents": "read"}


@pytest.mark.parametrize("workflow_name", ["terraform-pr.yml", "terraform-deploy.yml", "terraform-drift.yml"])
def test_aws_access_is_oidc_with_id_token_permission(workflow_name: str) -> None:
    workflow = _workflow(workflow_name)
    using_aws = 0
    for name, job in workflow["jobs"].items():
        permissions = _permissions(workflow, job)
        for step in _steps_using(job, "aws-actions/configure-aws-credentials"):
            using_aws += 1
            assert permissions["contents"] == "read" and permissions["id-token"] == "write", name
            extra = {scope: level for scope, level in permissions.items() if scope not in ("contents", "id-token")}
            assert extra.items() <= EXTRA_SCOPES.items(), name
            assert re.fullmatch(r"\$\{\{ (vars|matrix|inputs)\.[\w-]+ \}\}", step["with"]["role-to-assume"]), name
            assert not {"aws-access-key-id", "aws-secret-access-key"} & set(step["with"]), name
        if "id-token" in permissions:
            assert _steps_using(job, "aws-actions/configure-aws-credentials"), f"{name} needs no OIDC token"
    assert using_aws >= 1


def test_the_apply_job_applies_exactly_the_saved_plan_once_checked_current(
    deploy_wf: dict[str, Any], plan_action: dict[str, Any]
) -> None:
    assert set(deploy_wf["on"]) == {"workflow_call"}
    jobs = deploy_wf["jobs"]
    [apply] = _apply_jobs(deploy_wf).values()
    [(plan_name, plan_step)] = _plan_steps(deploy_wf).items()
    assert _needs(apply) == {plan_name}
    # Only a plan with changes is applied (and only then does prod ask its reviewers).
    assert apply["if"] == f"needs.{plan_name}.outputs.changes == 'true'"
    assert jobs[plan_name]["outputs"]["changes"] == "${{ steps.plan.outputs.changes }}"
    assert plan_step["id"] == "plan" and "changes" in plan_action["outputs"]
    # The approval gates the apply job alone; the plan job runs outside any environment.
    assert _environment(apply) == "${{ inputs.environment }}" and "environment" not in jobs[plan_name]
    steps = apply["steps"]
    [download] = _steps_using(apply, "actions/download-artifact")
    assert download["with"] == {"name": plan_step["with"]["artifact-name"], "path": "."}
    check = steps[_step(steps, "reviewed_plan check")]["run"]
    assert "terraform state pull > current.tfstate" in check and "--require-current" in check
    assert "--reviewed ." in check
    apply_command = steps[_step(steps, "terraform apply")]["run"]
    assert apply_command.split()[-1] == "tfplan", "apply must run the saved plan, not plan again"
    assert "-var-file" not in apply_command and "-auto-approve" not in apply_command
    assert steps.index(download) < _step(steps, "reviewed_plan check") < _step(steps, "terraform apply")
    [init] = _steps_using(apply, "./.github/actions/terraform-init")
    assert init["with"]["environment"] == "${{ inputs.environment }}"
    [creds] = _steps_using(apply, "aws-actions/configure-aws-credentials")
    assert creds["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}", "the apply role is the environment's"


def test_main_reuses_the_plan_reviewed_in_the_pull_request_while_it_is_current(
    deploy_wf: dict[str, Any], pr_wf: dict[str, Any], plan_action: dict[str, Any]
) -> None:
    [(plan_name, plan_step)] = _plan_steps(deploy_wf).items()
    job = deploy_wf["jobs"][plan_name]
    steps = job["steps"]
    find = steps[_step(steps, "reviewed_plan find")]
    assert find["id"] == "find"
    assert '--workflow terraform-pr.yml --artifact "tfplan-pr-$ENVIRONMENT"' in find["run"]
    [pr_plan] = _plan_steps(pr_wf).values()
    assert pr_plan["with"]["artifact-name"] == "tfplan-pr-${{ matrix.environment }}"
    [download] = _steps_using(job, "actions/download-artifact")
    assert download["if"] == "steps.find.outputs.run-id != ''"
    assert download["with"]["run-id"] == "${{ steps.find.outputs.run-id }}"
    assert download["with"]["name"] == "tfplan-pr-${{ inputs.environment }}"
    assert (
        plan_step["with"]["reviewed-plan"]
        == f"${{{{ steps.find.outputs.run-id != '' && '{download['with']['path']}' || '' }}}}"
    )
    assert steps.index(find) < steps.index(download) < steps.index(plan_step)
    assert _permissions(deploy_wf, job)["actions"] == "read"

    # In the action: reuse when current, else package, plan and show the difference.
    action_steps = plan_action["runs"]["steps"]
    check = action_steps[_step(action_steps, "reviewed_plan check")]
    assert check["id"] == "reviewed" and check["if"] == "inputs.reviewed-plan != ''"
    assert (
        action_steps[_step(action_steps, "Use the reviewed plan")]["if"] == "steps.reviewed.outputs.current == 'true'"
    )
    for name in ("make package", "terraform plan"):
        assert action_steps[_step(action_steps, name)]["if"] == "steps.reviewed.outputs.current != 'true'", name
    diff = action_steps[_step(action_steps, "reviewed_plan diff")]
    assert diff["if"] == "inputs.reviewed-plan != '' && steps.plan.outcome == 'success'"
    # The lock file comes back before init, so a current plan is not refused for another lock.
    assert _step(action_steps, "provider lock") < _step(action_steps, "terraform-init") < action_steps.index(check)


def test_plan_artifact_holds_the_plan_and_the_build_it_references(plan_action: dict[str, Any]) -> None:
    steps = plan_action["runs"]["steps"]
    assert plan_action["runs"]["using"] == "composite"
    runs = _runs(steps)
    assert "make package" in runs
    assert '-detailed-exitcode -var-file="environments/$ENVIRONMENT.tfvars" -out=tfplan' in runs
    assert "terraform show -json tfplan > tfplan.json" in runs and "reviewed_plan record" in runs
    [upload] = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    paths = [line.strip() for line in upload["with"]["path"].splitlines() if line.strip()]
    assert {
        "tfplan",
        "tfplan.txt",
        "tfplan.json",
        "tfplan.meta.json",
        "build/manifest.json",
        "build/*.zip",
        ".terraform.lock.hcl",
    } <= set(paths)
    assert all(not p.startswith("/") for p in paths)
    # .terraform.lock.hcl is a dot file, which upload-artifact leaves out unless told otherwise.
    assert upload["with"]["include-hidden-files"] is True
    assert upload["with"]["if-no-files-found"] == "error"
    # Packaging happens before the plan, so the plan records the hashes of the zips uploaded; the
    # policy check comes before the upload, so a plan that fails it is never uploaded.
    index = {s.get("name") or s.get("uses"): i for i, s in enumerate(steps)}
    assert index["make package"] < index["terraform plan"] < index["Policy check"] < steps.index(upload)


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


# --- pull requests: plan comment and policy check -----------------------------------------------


def test_pull_requests_check_format_validate_and_plan_every_environment(pr_wf: dict[str, Any]) -> None:
    assert "pull_request" in pr_wf["on"]
    jobs = pr_wf["jobs"]
    runs = "\n".join(_runs(job.get("steps", [])) for job in jobs.values())
    assert "terraform fmt -check -recursive" in runs
    assert "terraform validate" in runs
    assert not _apply_jobs(pr_wf)
    [(plan_name, step)] = _plan_steps(pr_wf).items()
    environments = [entry["environment"] for entry in jobs[plan_name]["strategy"]["matrix"]["include"]]
    assert environments == ["dev", "prod"]
    for environment in environments:
        assert (REPO / "environments" / f"{environment}.tfvars").is_file(), environment
    assert step["with"]["environment"] == "${{ matrix.environment }}"
    assert "${{ matrix.environment }}" in step["with"]["artifact-name"]
    assert step["with"]["pull-request"] == "${{ github.event.pull_request.number }}"


def test_each_environments_plan_is_one_comment_on_the_pull_request(pr_wf: dict[str, Any]) -> None:
    [(plan_name, plan_step)] = _plan_steps(pr_wf).items()
    job = pr_wf["jobs"][plan_name]
    assert _permissions(pr_wf, job)["pull-requests"] == "write"
    steps = job["steps"]
    comment = steps[_step(steps, "scripts.ci.plan_comment pr")]
    assert steps.index(plan_step) < steps.index(comment)
    # Posted when the plan or the policy check failed too, saying so.
    assert comment["if"] == "${{ !cancelled() }}"
    assert comment["env"]["GITHUB_TOKEN"] == "${{ github.token }}"
    assert comment["env"]["PULL_REQUEST"] == "${{ github.event.pull_request.number }}"
    assert comment["env"]["ENVIRONMENT"] == "${{ matrix.environment }}"
    for option in ('--pull-request "$PULL_REQUEST"', "--policy-report policy.md", "--plan-log tfplan.log"):
        assert option in comment["run"]


def test_new_plans_are_policy_checked(plan_action: dict[str, Any], pr_wf: dict[str, Any]) -> None:
    steps = plan_action["runs"]["steps"]
    policy = steps[_step(steps, "scripts.ci.policy_check")]
    assert policy["if"] == "inputs.policy-check == 'true' && steps.plan.outcome == 'success'"
    assert plan_action["inputs"]["policy-check"]["default"] == "true"
    assert "--plan tfplan.json" in policy["run"] and "--report policy.md" in policy["run"]
    # checkov comes from the Makefile's pinned checkov venv.
    assert "make .venv-checkov/.installed" in policy["run"] and "--checkov .venv-checkov/bin/checkov" in policy["run"]
    makefile = (REPO / "Makefile").read_text()
    assert "CHECKOV_VENV ?= .venv-checkov" in makefile and "$(CHECKOV_VENV)/.installed:" in makefile
    [pr_plan] = _plan_steps(pr_wf).values()
    assert "policy-check" not in pr_plan["with"]


# --- drift ----------------------------------------------------------------------------------------


def test_drift_is_planned_daily_and_reported_in_an_issue(drift_wf: dict[str, Any], pr_wf: dict[str, Any]) -> None:
    assert drift_wf["on"]["schedule"][0]["cron"] and "workflow_dispatch" in drift_wf["on"]
    [(name, plan_step)] = _plan_steps(drift_wf).items()
    job = drift_wf["jobs"][name]
    assert "artifact-name" not in plan_step["with"], "a drift plan is never applied, so never uploaded"
    assert plan_step["with"]["policy-check"] == "false"
    steps = job["steps"]
    report = steps[_step(steps, "scripts.ci.drift_issue")]
    assert report["env"]["CHANGES"] == f"${{{{ steps.{plan_step['id']}.outputs.changes }}}}"
    assert _permissions(drift_wf, job)["issues"] == "write"
    environments = [entry["environment"] for entry in job["strategy"]["matrix"]["include"]]
    [pr_plan_job] = _plan_steps(pr_wf)
    assert environments == [e["environment"] for e in pr_wf["jobs"][pr_plan_job]["strategy"]["matrix"]["include"]]


# --- releases -------------------------------------------------------------------------------------


def test_releases_build_each_architecture_on_its_own_runner(release_wf: dict[str, Any], pr_wf: dict[str, Any]) -> None:
    assert release_wf["on"] == {"push": {"tags": ["v*.*.*"]}}
    assert release_wf["permissions"] == {"contents": "read"}
    packages = release_wf["jobs"]["packages"]
    assert packages["runs-on"] == "${{ matrix.runner }}"
    assert {e["arch"]: e["runner"] for e in packages["strategy"]["matrix"]["include"]} == {
        "x86_64": "ubuntu-24.04",
        "arm64": "ubuntu-24.04-arm",
    }
    # The image the plan jobs build in: Debian 12's ODBC libraries, for the runner's architecture.
    assert packages["container"] == pr_wf["jobs"]["plan"]["container"] == "python:3.12-bookworm"
    steps = packages["steps"]
    assert steps[_step(steps, "make package")]["run"] == 'make package RUNTIME=python3.12 ARCH="$ARCH"'
    assert steps[_step(steps, "make package")]["env"]["ARCH"] == "${{ matrix.arch }}"
    assert "release_assets stage --build-dir build --output dist" in _runs(steps)
    assert "permissions" not in packages  # read-only, as the workflow


def test_the_release_carries_checksums_and_its_changelog_notes(release_wf: dict[str, Any]) -> None:
    release = release_wf["jobs"]["release"]
    assert _needs(release) == {"packages"}
    assert release["permissions"] == {"contents": "write"}
    [download] = _steps_using(release, "actions/download-artifact")
    assert download["with"] == {"pattern": "packages-*", "merge-multiple": True, "path": "dist"}
    steps = release["steps"]
    runs = _runs(steps)
    assert 'release_assets notes --tag "$TAG"' in runs and "release_assets checksums dist" in runs
    # The published assets are downloaded and verified as a consumer would, for both architectures.
    verify = steps[_step(steps, "fetch_packages.py")]["run"]
    assert "for arch in x86_64 arm64" in verify and "--from dist" in verify
    create = steps[_step(steps, "gh release create")]
    assert "--verify-tag" in create["run"] and "dist/*" in create["run"]
    assert _step(steps, "release_assets checksums") < steps.index(create)


# --- every script a workflow runs exists, with the options used -----------------------------------

_SCRIPT_CALL = re.compile(r"python3 (?:-m (scripts(?:\.\w+)+)|(scripts/\w+\.py))((?:[ \t]+(?:\\\n)?[^\n|;&>]*)?)")


def _script_calls() -> Iterator[tuple[str, str, str]]:
    for path in [*WORKFLOWS, *ACTIONS]:
        text = path.read_text().replace("\\\n", " ")
        for match in _SCRIPT_CALL.finditer(text):
            module = match.group(1) or match.group(2).removesuffix(".py").replace("/", ".")
            yield path.name, module, match.group(3)


def test_every_script_the_workflows_run_exists_and_takes_the_options_used() -> None:
    calls = list(_script_calls())
    assert {module for _, module, _ in calls} >= {
        "scripts.ci.plan_comment",
        "scripts.ci.policy_check",
        "scripts.ci.reviewed_plan",
        "scripts.ci.drift_issue",
        "scripts.release_assets",
        "scripts.fetch_packages",
    }
    for where, module, arguments in calls:
        words = arguments.split()
        command = [words[0]] if words and not words[0].startswith("-") else []
        help_text = subprocess.run(
            [sys.executable, "-m", module, *command, "--help"], cwd=REPO, capture_output=True, text=True
        )
        assert help_text.returncode == 0, f"{where}: {module} {command}: {help_text.stderr}"
        for option in (w.split("=")[0] for w in words if w.startswith("--")):
            assert re.search(rf"{option}\b(?!-)", help_text.stdout), f"{where}: {module} {command} has no {option}"


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
