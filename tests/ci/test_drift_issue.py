"""scripts/ci/drift_issue.py: one issue per drifting environment, opened, kept current and closed
through a fake GitHub."""

from __future__ import annotations

from pathlib import Path

from scripts.ci import drift_issue
from scripts.ci.github import GitHub
from scripts.ci.plan_comment import MAX_COMMENT_CHARS, PlanFiles
from tests.ci.fake_github import FakeGitHub


def plan_argv(planned: Path, changes: str, environment: str = "prod") -> list[str]:
    return [
        "--environment",
        environment,
        "--changes",
        changes,
        "--plan-json",
        str(planned / "tfplan.json"),
        "--plan-text",
        str(planned / "tfplan.txt"),
    ]


def open_issues(fake: FakeGitHub) -> list[dict]:
    return [issue for issue in fake.state.issues.values() if issue["state"] == "open"]


def test_drift_opens_one_issue_keeps_it_current_and_closes_it(
    planned: Path, fake_github: FakeGitHub, github_env: dict[str, str]
) -> None:
    someone = fake_github.add_issue("Terraform drift: prod", "a person's own issue about drift")
    pull = fake_github.add_issue("PR", "<!-- aws-data-pipelines:drift prod part=1 -->", "github-actions[bot]", True)

    assert drift_issue.main(plan_argv(planned, "true")) == 0
    [issue] = [i for i in open_issues(fake_github) if i["number"] not in (someone, pull)]
    assert issue["title"] == "Terraform drift: prod differs from main"
    assert issue["labels"] == ["terraform-drift"]
    assert "terraform_data.replaced" in issue["body"] and "/actions/runs/4242" in issue["body"]

    # The next day's plan still drifts: the same issue gets the new plan, no second issue.
    assert drift_issue.main(plan_argv(planned, "true")) == 0
    assert len(open_issues(fake_github)) == 3
    # Another environment drifting has an issue of its own.
    assert drift_issue.main(plan_argv(planned, "true", "dev")) == 0
    assert len(open_issues(fake_github)) == 4

    # A clean plan closes prod's issue with a comment, and only that one.
    assert drift_issue.main(plan_argv(planned, "false")) == 0
    assert issue["state"] == "closed" and issue["state_reason"] == "completed"
    [comment] = fake_github.comments(issue["number"])
    assert "no difference any more" in comment["body"]
    [still_open] = [i for i in open_issues(fake_github) if i["number"] not in (someone, pull)]
    assert still_open["title"] == "Terraform drift: dev differs from main"


def test_a_clean_plan_without_an_issue_does_nothing(github: GitHub, fake_github: FakeGitHub) -> None:
    assert drift_issue.sync_drift_issue(github, "dev", False, "", None) == "no drift"
    assert not fake_github.state.issues


def test_the_issue_body_fits_githubs_limit(planned: Path, tmp_path: Path) -> None:
    big = tmp_path / "tfplan.txt"
    big.write_text((planned / "tfplan.txt").read_text() * 200)
    body = drift_issue.drift_body("prod", PlanFiles(planned / "tfplan.json", big), "https://run")
    assert len(body) <= MAX_COMMENT_CHARS
    assert body.startswith("<!-- aws-data-pipelines:drift prod part=1 -->")
    assert "the whole plan is in the [workflow run](https://run)" in body
