"""scripts/ci/plan_comment.py: the summary of a real plan, the split under GitHub's comment limit,
and the one set of comments per environment that each push edits in place (against a fake GitHub)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from scripts.ci import plan_comment
from scripts.ci.github import GitHub, GitHubError
from scripts.ci.plan_comment import MAX_COMMENT_CHARS, PlanFiles
from tests.ci.fake_github import FakeGitHub

BOT = "github-actions[bot]"


def files(directory: Path, **extra: Path) -> PlanFiles:
    return PlanFiles(directory / "tfplan.json", directory / "tfplan.txt", **extra)


def test_summary_counts_every_action_of_a_real_plan(planned: Path) -> None:
    summary = plan_comment.summarize(json.loads((planned / "tfplan.json").read_text()))
    assert dict(summary.counts) == {"create": 1, "update": 1, "replace": 1, "delete": 1}
    assert sorted(summary.changes) == [
        ("create", "terraform_data.added[0]"),
        ("delete", "terraform_data.gone[0]"),
        ("replace", "terraform_data.replaced"),
        ("update", "terraform_data.changed"),
    ]
    assert summary.outputs_changed == 1 and summary.has_changes
    markdown = plan_comment.summary_markdown("dev", summary, "0123456789abcdef", "https://run")
    assert "| `-/+` replace | 1 |" in markdown and "| `+` create | 1 |" in markdown
    assert "commit `0123456789ab`" in markdown and "[workflow run](https://run)" in markdown
    # Terraform's own count line agrees with ours.
    assert "Plan: 2 to add, 1 to change, 2 to destroy." in (planned / "tfplan.txt").read_text()


def test_an_empty_plan_says_no_changes() -> None:
    plan = {"resource_changes": [{"address": "a.b", "change": {"actions": ["no-op"]}}], "output_changes": {}}
    summary = plan_comment.summarize(plan)
    assert not summary.has_changes
    assert "(no changes)" in plan_comment.summary_markdown("prod", summary, None, None)


def test_plan_text_is_coloured_as_a_diff_without_changing_its_words(planned: Path) -> None:
    text = (planned / "tfplan.txt").read_text()
    diff = plan_comment.as_diff(text)
    assert '-/+ resource "terraform_data" "replaced" {' in diff
    assert re.search(r"^!\s+input\s+= \"a\" -> \"b\"", diff, re.MULTILINE)
    assert re.search(r"^\+\s+resource \"terraform_data\" \"added\"", diff, re.MULTILINE)
    # Same words, same order: only the symbols moved (and ~ became !).
    assert diff.replace("!", "~").split() == [w for w in text.split()]


def test_a_fence_cannot_be_closed_by_the_plan() -> None:
    text = 'value = "```\n````"'
    assert plan_comment.fence_for(text) == "`````"


@pytest.mark.parametrize("limit", [1_500, 4_000, MAX_COMMENT_CHARS])
def test_parts_stay_under_the_limit_and_hold_the_whole_plan(limit: int) -> None:
    # A plan with long lines, a line longer than a whole comment, and backticks.
    lines = [f'  + resource "x" "r{i}" {{ value = "{"v" * (i % 300)}" }}' for i in range(2_000)]
    lines.insert(700, "  ~ blob = " + "z" * (limit * 2))
    lines.insert(5, '  + quoted = "```"')
    text = "\n".join(lines) + "\n"
    parts = plan_comment.render_parts("plan", "dev", "### head", text, limit)
    assert len(parts) > 1
    assert all(len(part) <= limit for part in parts)
    fence = plan_comment.fence_for(plan_comment.as_diff(text))
    chunks = [part.split(f"{fence}diff\n", 1)[1].rsplit(f"{fence}\n</details>", 1)[0] for part in parts]
    # Every line arrives whole and in order, except the over-long one, which is cut across parts.
    shown = "".join(chunks)
    assert shown.replace("\n", "") == plan_comment.as_diff(text).replace("\n", "")
    assert [line for line in shown.splitlines() if "blob" not in line and "zzz" not in line] == [
        line for line in plan_comment.as_diff(text).splitlines() if "blob" not in line
    ]
    assert [f"part={i}" in part.splitlines()[0] for i, part in enumerate(parts, 1)] == [True] * len(parts)
    assert all(f"(part {i} of {len(parts)})" in part for i, part in enumerate(parts, 1))


def test_a_failed_plan_shows_the_end_of_its_log(tmp_path: Path) -> None:
    log = tmp_path / "tfplan.log"
    log.write_text("noise\n" * 5000 + "\x1b[31m│\x1b[0m \x1b[1mError: Invalid value for variable\x1b[0m\n")
    [body] = plan_comment.plan_bodies("dev", files(tmp_path, plan_log=log), "abc", None)
    assert "`dev` failed" in body and "│ Error: Invalid value for variable\n" in body and "\x1b" not in body
    assert len(body) < 8_000


def test_comments_are_created_then_edited_in_place_then_trimmed(
    planned: Path, github: GitHub, fake_github: FakeGitHub
) -> None:
    other = fake_github.add_comment(12, "LGTM")
    foreign = fake_github.add_comment(12, "<!-- aws-data-pipelines:plan dev part=1 --> quoted by a person")
    prod = fake_github.add_comment(12, "<!-- aws-data-pipelines:plan prod part=1 -->\nprod plan", login=BOT)

    first = [f"<!-- aws-data-pipelines:plan dev part={i} -->\nv1 part {i}" for i in (1, 2, 3)]
    done = plan_comment.sync_comments(github, 12, "plan", "dev", first)
    assert len(done["created"]) == 3 and not done["updated"] + done["deleted"]
    ids = done["created"]

    # The next push: a shorter plan. Parts 1 and 2 are edited in place, part 3 goes away.
    second = [f"<!-- aws-data-pipelines:plan dev part={i} -->\nv2 part {i}" for i in (1, 2)]
    done = plan_comment.sync_comments(github, 12, "plan", "dev", second)
    assert done == {"updated": ids[:2], "unchanged": [], "created": [], "deleted": [ids[2]]}
    # Re-running with the same plan changes nothing.
    assert plan_comment.sync_comments(github, 12, "plan", "dev", second)["unchanged"] == ids[:2]

    by_id = {c["id"]: c["body"] for c in fake_github.comments(12)}
    assert [by_id[i] for i in ids[:2]] == second
    # Comments of people, of the other environment and the quoted marker are left alone.
    assert {other, foreign, prod} <= set(by_id)


def test_a_duplicated_part_is_removed(github: GitHub, fake_github: FakeGitHub) -> None:
    body = "<!-- aws-data-pipelines:plan dev part=1 -->\nold"
    keep = fake_github.add_comment(7, body, login=BOT)
    twin = fake_github.add_comment(7, body, login=BOT)  # e.g. two runs raced
    done = plan_comment.sync_comments(github, 7, "plan", "dev", ["<!-- aws-data-pipelines:plan dev part=1 -->\nnew"])
    assert done["updated"] == [keep] and done["deleted"] == [twin]


def test_comments_are_found_across_pages(github: GitHub, fake_github: FakeGitHub) -> None:
    for i in range(250):
        fake_github.add_comment(3, f"chatter {i}")
    mine = fake_github.add_comment(3, "<!-- aws-data-pipelines:plan dev part=1 -->\nold", login=BOT)
    done = plan_comment.sync_comments(github, 3, "plan", "dev", ["<!-- aws-data-pipelines:plan dev part=1 -->\nnew"])
    assert done["updated"] == [mine]
    pages = [path for method, path in fake_github.state.requests if method == "GET" and "/issues/3/comments" in path]
    assert len(pages) == 3


def test_github_errors_are_retried_then_reported(github: GitHub, fake_github: FakeGitHub) -> None:
    body = ["<!-- aws-data-pipelines:plan dev part=1 -->\nplan"]
    fake_github.state.fail_next = 2
    assert plan_comment.sync_comments(github, 5, "plan", "dev", body)["created"]
    fake_github.state.fail_next, fake_github.state.fail_status = 1, 429  # rate limited: wait and retry
    assert plan_comment.sync_comments(github, 5, "plan", "dev", body)["unchanged"]
    fake_github.state.fail_next, fake_github.state.fail_status = 10, 502
    with pytest.raises(GitHubError, match=r"GET .*/issues/5/comments.* failed \(502\)"):
        plan_comment.sync_comments(github, 5, "plan", "dev", body)
    # A refusal is not retried: a bad token fails at once, naming the request.
    fake_github.state.fail_next = 0
    before = len(fake_github.state.requests)
    with pytest.raises(GitHubError, match=r"failed \(401\): Bad credentials"):
        plan_comment.sync_comments(GitHub(github.repository, "wrong", github.api_url), 5, "plan", "dev", body)
    assert len(fake_github.state.requests) == before + 1


def test_the_pr_command_posts_a_large_plan_within_githubs_limit(
    planned: Path, tmp_path: Path, fake_github: FakeGitHub, github_env: dict[str, str]
) -> None:
    # The fake answers 422 above 65,536 characters, as GitHub does: every part must fit.
    big = tmp_path / "tfplan.txt"
    big.write_text((planned / "tfplan.txt").read_text() * 120)
    policy = tmp_path / "policy.md"
    policy.write_text("#### Policy check: no new findings\n")
    argv = ["pr", "--environment", "dev", "--pull-request", "9", "--commit", "feedface"]
    argv += ["--plan-json", str(planned / "tfplan.json"), "--plan-text", str(big), "--policy-report", str(policy)]
    assert plan_comment.main(argv) == 0
    bodies = [c["body"] for c in fake_github.comments(9)]
    assert len(bodies) >= 3 and all(len(b) <= MAX_COMMENT_CHARS for b in bodies)
    assert "Policy check: no new findings" in bodies[0] and "feedface" in bodies[0]
    assert "https://github.example/acme/pipelines/actions/runs/4242" in bodies[0]
    # The plan shrinks on the next push: one comment is left, edited in place.
    argv[argv.index(str(big))] = str(planned / "tfplan.txt")
    assert plan_comment.main(argv) == 0
    [body] = [c["body"] for c in fake_github.comments(9)]
    assert "terraform_data.replaced" in body and "(part" not in body


def test_the_summary_command_writes_the_job_summary(
    planned: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    argv = ["summary", "--environment", "dev", "--plan-json", str(planned / "tfplan.json")]
    assert plan_comment.main([*argv, "--plan-text", str(planned / "tfplan.txt")]) == 0
    text = summary.read_text()
    assert "### Terraform plan: `dev` (changes)" in text and "terraform_data.added" in text
