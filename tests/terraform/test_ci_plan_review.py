"""The pull-request review of this module's real plans (the `plans` fixture's build/plans/<env>.json):

- the policy check (checkov on the plan JSON) passes the plan of every environments/*.tfvars with
  the committed baseline, each entry applying to the environments it names, every baseline entry is
  still needed by an environment it applies to, and a change that turns VPC flow logs off fails it,
  naming the check and the resource;
- a new environment's whole plan (~140 kB) goes into comments that each stay under GitHub's limit,
  posted to a fake GitHub that refuses longer ones as GitHub does.
"""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from scripts.ci import plan_comment
from scripts.ci import policy_check as policy_check_module
from scripts.ci.github import GitHub
from tests.ci.fake_github import REPO, TOKEN, FakeGitHub
from tests.terraform import tfkit
from tests.terraform.conftest import ENVIRONMENTS

CHECKOV = tfkit.REPO / ".venv-checkov" / "bin" / "checkov"
# The environments .github/workflows plan (terraform-pr.yml's matrix; test_workflows checks it).
CI_ENVIRONMENTS = ("dev", "prod")
_STALE = re.compile(r"baseline entry (\S+) (\S+) matched nothing")


def policy_check(plan: Path, report: Path, environment: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "scripts.ci.policy_check", "--plan", str(plan), "--checkov", str(CHECKOV)]
    return subprocess.run(
        [*command, "--environment", environment, "--report", str(report)],
        cwd=tfkit.REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_every_environment_passes_the_policy_check_with_the_committed_baseline(
    plans: dict[str, dict[str, Any]], build_dir: Path, tmp_path: Path
) -> None:
    """checkov on what each environment really plans, not on the code alone (where conditional
    resources pass vacuously): one policy check, the same as the workflows run."""
    assert set(CI_ENVIRONMENTS) <= set(ENVIRONMENTS)

    def check(environment: str) -> subprocess.CompletedProcess[str]:
        return policy_check(build_dir / "plans" / f"{environment}.json", tmp_path / f"{environment}.md", environment)

    with ThreadPoolExecutor(max_workers=len(ENVIRONMENTS)) as pool:
        results = dict(zip(ENVIRONMENTS, pool.map(check, ENVIRONMENTS), strict=True))
    for environment, result in results.items():
        assert result.returncode == 0, f"{environment}:\n{result.stdout}\n{result.stderr}"
        report = (tmp_path / f"{environment}.md").read_text()
        assert "no new findings" in report and "accepted in .checkov-plan-baseline.json" in report
    # Stale in every environment an entry applies to (the scoped baseline of each run): remove it.
    baseline = policy_check_module.Baseline.load(policy_check_module.DEFAULT_BASELINE)
    stale = {env: {*_STALE.findall(result.stderr)} for env, result in results.items()}
    unused = [
        key
        for key in baseline.reasons
        if all(key in stale[env] for env in ENVIRONMENTS if key in baseline.for_environment(env).reasons)
    ]
    assert not unused, f"baseline entries no environment needs any more (remove them): {sorted(unused)}"


def test_a_change_that_turns_flow_logs_off_fails_the_policy_check(
    plan_root: Path, tf_env: dict[str, str], build_dir: Path, tmp_path: Path
) -> None:
    args = tfkit.plan_args(build_dir, ["environments/dev.tfvars"], ["enable_flow_logs=false"])
    tfkit.terraform(plan_root, *args, "-out=no-flow-logs.tfplan", env=tf_env).check()
    plan = tmp_path / "no-flow-logs.json"
    plan.write_text(tfkit.terraform(plan_root, "show", "-json", "no-flow-logs.tfplan", env=tf_env).check().stdout)
    result = policy_check(plan, tmp_path / "report.md", "dev")
    assert result.returncode == 1, result.stdout + result.stderr
    report = (tmp_path / "report.md").read_text()
    assert "1 new finding(s)" in report
    assert "| CKV2_AWS_11 | `module.network.aws_vpc.this[0]` | Ensure VPC flow logging is enabled" in report


def test_a_new_environments_plan_is_posted_whole_in_comments_under_the_limit(
    plans: dict[str, dict[str, Any]], plan_root: Path, tf_env: dict[str, str], build_dir: Path, tmp_path: Path
) -> None:
    text = tmp_path / "tfplan.txt"
    text.write_text(tfkit.terraform(plan_root, "show", "-no-color", "dev.tfplan", env=tf_env).check().stdout)
    files = plan_comment.PlanFiles(build_dir / "plans" / "dev.json", text)
    bodies = plan_comment.plan_bodies("dev", files, "0" * 40, None)
    assert len(text.read_text()) > 2 * plan_comment.MAX_COMMENT_CHARS
    assert len(bodies) >= 3 and all(len(body) <= plan_comment.MAX_COMMENT_CHARS for body in bodies)
    creates = sum(1 for r in plans["dev"]["resource_changes"] if r["change"]["actions"] == ["create"])
    assert f"| `+` create | {creates} |" in bodies[0]
    # Every resource of the plan appears in the comments, in the plan's order.
    shown = "".join(bodies)
    addresses = re.findall(r"^  # (\S+) will be created$", text.read_text(), re.MULTILINE)
    assert len(addresses) == creates
    positions = [shown.index(f"# {address} will be created") for address in addresses]
    assert positions == sorted(positions)

    with FakeGitHub() as fake:
        github = GitHub(REPO, TOKEN, api_url=fake.url, backoff=0.01)
        done = plan_comment.sync_comments(github, 1, "plan", "dev", bodies)
        assert len(done["created"]) == len(bodies)
        assert [c["body"] for c in fake.comments(1)] == bodies
