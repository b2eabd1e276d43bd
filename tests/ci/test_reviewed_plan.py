"""scripts/ci/reviewed_plan.py: the reviewed plan is applied only while it is current, judged on a
real saved plan and state; the pull request's run is found through a fake GitHub."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from scripts.ci import reviewed_plan
from scripts.ci.github import GitHub
from scripts.ci.reviewed_plan import ReviewError
from tests.ci.conftest import git, pull_state, terraform
from tests.ci.fake_github import FakeGitHub
from tests.terraform import tfkit

LOCK = ".terraform.lock.hcl"


def state_now(workspace: Path) -> reviewed_plan.StateId:
    return reviewed_plan.state_id(pull_state(workspace))


def reasons(workspace: Path, environment: str = "dev") -> list[str]:
    tree = reviewed_plan.git_tree(workspace)
    return reviewed_plan.staleness(workspace, environment, state_now(workspace), tree, workspace / LOCK)


def terraform_applies_the_plan(workspace: Path) -> bool:
    result = tfkit.terraform(workspace, "apply", "-no-color", "-input=false", "tfplan", env=tfkit.terraform_env())
    assert result.returncode == 0 or "Saved plan is stale" in result.stdout + result.stderr, result.stderr
    return result.returncode == 0


def test_the_plan_as_reviewed_is_current(workspace: Path) -> None:
    meta = json.loads((workspace / "tfplan.meta.json").read_text())
    assert meta["environment"] == "dev" and meta["changes"] is True and meta["pull_request"] == 12
    assert meta["tree"] == git(workspace, "rev-parse", "HEAD^{tree}").strip()
    assert reasons(workspace) == []
    assert terraform_applies_the_plan(workspace)


def test_a_state_changed_since_the_plan_makes_it_stale_as_terraform_agrees(workspace: Path) -> None:
    before = state_now(workspace)
    terraform(workspace, "apply", "-input=false", "-auto-approve", "-var=v=c")  # someone else applied
    [reason] = reasons(workspace)
    assert f"planned from {before}" in reason and f"now {state_now(workspace)}" in reason
    assert not terraform_applies_the_plan(workspace)


def test_a_plan_made_before_the_state_existed_is_stale_once_it_does(workspace: Path) -> None:
    shutil.copy(workspace / "initial.tfplan", workspace / "tfplan")  # the plan of the first apply
    assert reviewed_plan.planned_state(workspace / "tfplan") == reviewed_plan.StateId("", 0)
    assert reviewed_plan.state_id("") == reviewed_plan.StateId("", 0)
    [reason] = reasons(workspace)
    assert "planned from lineage (none) serial 0" in reason
    assert not terraform_applies_the_plan(workspace)


def test_main_moving_under_the_pull_request_makes_it_stale(workspace: Path) -> None:
    (workspace / "other.tf").write_text('output "more" { value = 1 }\n')
    git(workspace, "add", "other.tf")
    git(workspace, "commit", "-qm", "another pull request merged first")
    [reason] = reasons(workspace)
    assert "main changed after the pull request was last planned" in reason


def test_a_commit_with_the_same_files_is_current(workspace: Path) -> None:
    # A squash or merge commit of the reviewed tree: a new commit id, the same files.
    git(workspace, "commit", "-qm", "merge", "--allow-empty")
    assert reasons(workspace) == []


def test_another_provider_lock_or_environment_makes_it_stale(workspace: Path) -> None:
    # init on another platform, or with -upgrade, rewrites the lock (here: one more package hash).
    lock = workspace / LOCK
    lock.write_text(
        lock.read_text().replace("hashes = [", 'hashes = [\n    "h1:someOtherPlatformPackageHash0000000000000=",', 1)
    )
    assert [r for r in reasons(workspace) if "provider lock file" in r]
    assert [r for r in reasons(workspace, "prod") if "the plan is for dev, not prod" in r]


def test_a_swapped_zip_makes_it_stale(workspace: Path) -> None:
    (workspace / "build" / "fn.zip").write_bytes(b"PK other bytes!!!")  # same size
    [reason] = reasons(workspace)
    assert reason.startswith("build: functions fn:") and "source_code_hash" in reason


def test_broken_inputs_are_named(workspace: Path) -> None:
    (workspace / "tfplan.meta.json").write_text("{}")
    with pytest.raises(ReviewError, match=r"tfplan\.meta\.json lacks environment"):
        reasons(workspace)
    with pytest.raises(ReviewError, match="not a Terraform plan file"):
        reviewed_plan.planned_state(workspace / "main.tf")
    with pytest.raises(ReviewError, match="not JSON"):
        reviewed_plan.state_id("<html>")


def test_the_check_command_sets_outputs_and_can_refuse(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workspace)
    outputs, summary = tmp_path / "outputs", tmp_path / "summary"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    state = tmp_path / "current.tfstate"
    state.write_text(pull_state(workspace))
    argv = ["check", "--reviewed", ".", "--environment", "dev", "--state", str(state)]
    assert reviewed_plan.main([*argv, "--require-current"]) == 0
    assert outputs.read_text() == "current=true\nchanges=true\n"
    state.write_text(json.dumps({"lineage": "x", "serial": 99}))
    why = tmp_path / "why.md"
    assert reviewed_plan.main([*argv, "--reasons", str(why)]) == 0
    assert outputs.read_text().endswith("current=false\nchanges=true\n")
    assert "lineage x serial 99" in why.read_text() and "not current" in summary.read_text()
    assert reviewed_plan.main([*argv, "--require-current"]) == 1


# --- finding the reviewed run -------------------------------------------------------------------


def merged(fake: FakeGitHub, merge_sha: str = "a" * 40, head: str = "b" * 40) -> None:
    fake.state.commit_pulls[merge_sha] = [
        {"number": 31, "merged_at": "2026-11-30T10:00:00Z", "merge_commit_sha": merge_sha, "head": {"sha": head}}
    ]


def run(fake: FakeGitHub, run_id: int, number: int, head: str = "b" * 40, conclusion: str = "success") -> None:
    fake.state.runs.append(
        {
            "id": run_id,
            "run_number": number,
            "workflow": "terraform-pr.yml",
            "head_sha": head,
            "event": "pull_request",
            "conclusion": conclusion,
        }
    )
    fake.state.artifacts[run_id] = [{"name": "tfplan-pr-dev", "expired": False}]


def test_the_newest_successful_run_of_the_merged_pull_request_is_found(github: GitHub, fake_github: FakeGitHub) -> None:
    merged(fake_github)
    run(fake_github, 501, 7)
    run(fake_github, 502, 9)
    run(fake_github, 503, 10, conclusion="failure")  # policy failed on the last push: not reviewable
    run(fake_github, 504, 11, head="c" * 40)  # another pull request
    found, why = reviewed_plan.find_reviewed_run(github, "a" * 40, "terraform-pr.yml", "tfplan-pr-dev")
    assert found == reviewed_plan.ReviewedRun(502, 31), why


def test_no_reviewed_plan_without_a_pull_request_or_with_an_expired_artifact(
    github: GitHub, fake_github: FakeGitHub
) -> None:
    found, why = reviewed_plan.find_reviewed_run(github, "d" * 40, "terraform-pr.yml", "tfplan-pr-dev")
    assert found is None and "not the merge of a pull request" in why
    merged(fake_github)
    found, why = reviewed_plan.find_reviewed_run(github, "a" * 40, "terraform-pr.yml", "tfplan-pr-dev")
    assert found is None and "no successful terraform-pr.yml run" in why
    run(fake_github, 601, 3)
    fake_github.state.artifacts[601] = [{"name": "tfplan-pr-dev", "expired": True}]
    found, why = reviewed_plan.find_reviewed_run(github, "a" * 40, "terraform-pr.yml", "tfplan-pr-dev")
    assert found is None and "no longer holds tfplan-pr-dev" in why


def test_the_find_command_writes_the_run_for_download_artifact(
    fake_github: FakeGitHub, github_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    merged(fake_github)
    run(fake_github, 777, 4)
    outputs = tmp_path / "outputs"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    argv = ["find", "--environment", "dev", "--sha", "a" * 40, "--artifact", "tfplan-pr-dev"]
    assert reviewed_plan.main(argv) == 0
    assert outputs.read_text() == "run-id=777\npull-request=31\n"


# --- the difference shown when planning again ---------------------------------------------------


def test_the_diff_shows_what_changed_since_the_review_and_tells_the_pull_request(
    workspace: Path, tmp_path: Path, fake_github: FakeGitHub, github_env: dict[str, str]
) -> None:
    new = tmp_path / "new"
    new.mkdir()
    (new / "tfplan.txt").write_text((workspace / "tfplan.txt").read_text().replace('"b"', '"c"'))
    why = tmp_path / "why.md"
    why.write_text("The reviewed plan is not current:\n\n- the state changed since the plan\n")
    argv = ["diff", "--reviewed", str(workspace), "--planned", str(new), "--environment", "dev"]
    assert reviewed_plan.main([*argv, "--reasons", str(why), "--sha", "e" * 40]) == 0
    [comment] = fake_github.comments(12)  # the pull request recorded in tfplan.meta.json
    body = comment["body"]
    assert "planned again on merge" in body and "the state changed since the plan" in body
    assert re.search(r'^-\s+~ input\s+= "a" -> "b"$', body, re.MULTILINE)
    assert re.search(r'^\+\s+~ input\s+= "a" -> "c"$', body, re.MULTILINE)
    # A re-run of the same workflow edits that comment rather than adding one.
    assert reviewed_plan.main([*argv, "--reasons", str(why), "--sha", "e" * 40]) == 0
    assert len(fake_github.comments(12)) == 1


def test_a_huge_diff_is_cut_to_fit_a_comment(workspace: Path) -> None:
    reviewed = (workspace / "tfplan.txt").read_text()
    markdown = reviewed_plan.diff_markdown("prod", reviewed, reviewed.replace('"', "'") * 400, "{reasons}")
    assert len(markdown) < 65_536 - 150 and "cut here" in markdown
    assert "identical to the reviewed one" in reviewed_plan.diff_markdown("prod", reviewed, reviewed, "reasons")
