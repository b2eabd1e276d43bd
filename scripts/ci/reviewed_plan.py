"""Apply on merge the plan that was reviewed in the pull request, but only while it is still current.

    python3 -m scripts.ci.reviewed_plan record --environment dev --changes true [--pull-request 12]
    python3 -m scripts.ci.reviewed_plan find --environment dev --sha "$GITHUB_SHA" --artifact tfplan-pr-dev
    python3 -m scripts.ci.reviewed_plan check --reviewed reviewed --environment dev --state current.tfstate
    python3 -m scripts.ci.reviewed_plan diff --reviewed reviewed --environment dev [--reasons replan.md]

A pull request's plan job saves the plan (`tfplan`, with its text, JSON, the build/ zips and the
provider lock file) and `record` adds `tfplan.meta.json`: the environment, whether the plan changes
anything, the pull request, and the git tree that was planned. On the push to main, `find` looks up
the merged pull request's last successful plan run and its artifact, and `check` decides whether
that reviewed plan may be applied as it is:

- the tree being applied is the tree that was planned (main did not move under the pull request);
- the state is the one the plan was made from: same lineage and serial, read from the plan file
  itself (Terraform refuses a stale plan at apply too; asking first lets the workflow plan again
  with a visible difference instead of failing);
- the provider lock file is the plan's, and every zip matches the manifest (scripts/verify_build.py).

When any of these fails the workflow plans again, and `diff` shows the difference between the
reviewed plan and the new one in the job summary and on the merged pull request.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts import verify_build
from scripts.ci.github import GitHub, GitHubError, add_to_summary, run_url, set_outputs
from scripts.ci.plan_comment import MARKER, MAX_COMMENT_CHARS, fence_for, split_lines, sync_comments

PLAN = "tfplan"
META = "tfplan.meta.json"
TEXT = "tfplan.txt"
LOCK = ".terraform.lock.hcl"


class ReviewError(Exception):
    """Input the check cannot work with; the message names the file."""


@dataclass(frozen=True)
class StateId:
    lineage: str
    serial: int

    def __str__(self) -> str:
        return f"lineage {self.lineage or '(none)'} serial {self.serial}"


def git_tree(directory: Path = Path()) -> str:
    """Hash of the tree of HEAD: equal for two commits with exactly the same files."""
    return _git(directory, "rev-parse", "HEAD^{tree}")


def _git(directory: Path, *args: str) -> str:
    # safe.directory: job containers check out as another user than the one running later steps.
    command = ["git", "-c", f"safe.directory={directory.resolve()}", "-C", str(directory), *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ReviewError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def _plan_member(plan: Path, name: str) -> bytes | None:
    try:
        with zipfile.ZipFile(plan) as archive:
            return archive.read(name) if name in archive.namelist() else None
    except (OSError, zipfile.BadZipFile) as error:
        raise ReviewError(f"{plan} is not a Terraform plan file: {error}") from None


def planned_state(plan: Path) -> StateId:
    """The state the plan was made from, as recorded in the plan file (its `tfstate` member)."""
    raw = _plan_member(plan, "tfstate")
    if raw is None:
        raise ReviewError(f"{plan} holds no prior state (tfstate)")
    return state_id(raw.decode())


def state_id(text: str) -> StateId:
    """Lineage and serial of a state document (`terraform state pull`); no state at all is ("", 0)."""
    if not text.strip():
        return StateId("", 0)
    try:
        state = json.loads(text)
    except ValueError:
        raise ReviewError("the current state is not JSON (terraform state pull > FILE)") from None
    return StateId(str(state.get("lineage") or ""), int(state.get("serial") or 0))


def record(environment: str, changes: bool, pull_request: int | None, directory: Path = Path()) -> dict[str, Any]:
    return {
        "environment": environment,
        "changes": changes,
        "pull_request": pull_request,
        "commit": _git(directory, "rev-parse", "HEAD"),
        "tree": git_tree(directory),
        "run_id": os.environ.get("GITHUB_RUN_ID"),
    }


def read_meta(reviewed: Path) -> dict[str, Any]:
    path = reviewed / META
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ReviewError(f"{path} is missing or not JSON: {error}") from None
    if not isinstance(meta, dict) or not {"environment", "tree", "changes"} <= set(meta):
        raise ReviewError(f"{path} lacks environment, tree or changes")
    return meta


def staleness(reviewed: Path, environment: str, current_state: StateId, tree: str, lock: Path) -> list[str]:
    """Why the reviewed plan in `reviewed/` must not be applied now (empty: it is current)."""
    meta = read_meta(reviewed)
    plan = reviewed / PLAN
    reasons = []
    if meta["environment"] != environment:
        reasons.append(f"the plan is for {meta['environment']}, not {environment}")
    if meta["tree"] != tree:
        reasons.append(
            f"the files being applied (tree {tree[:12]}) are not the ones planned (tree {meta['tree'][:12]}): "
            "main changed after the pull request was last planned"
        )
    planned = planned_state(plan)
    if planned != current_state:
        reasons.append(f"the state changed since the plan: planned from {planned}, now {current_state}")
    planned_lock = _plan_member(plan, LOCK)
    if planned_lock is not None and (not lock.is_file() or lock.read_bytes() != planned_lock):
        reasons.append(f"the provider lock file {lock} differs from the one the plan was made with")
    reasons += [f"build: {problem}" for problem in verify_build.problems(reviewed / "build")]
    return reasons


# --- finding the reviewed plan ----------------------------------------------------------------


@dataclass(frozen=True)
class ReviewedRun:
    run_id: int
    pull_request: int


def find_reviewed_run(github: GitHub, sha: str, workflow: str, artifact: str) -> tuple[ReviewedRun | None, str]:
    """The newest successful pull-request run of `workflow` for the pull request merged as `sha`,
    if it still holds `artifact`; otherwise None and why."""
    pulls = [p for p in github.request("GET", f"commits/{sha}/pulls") or [] if p.get("merged_at")]
    if not pulls:
        return None, f"commit {sha[:12]} is not the merge of a pull request"
    pull = next((p for p in pulls if p.get("merge_commit_sha") == sha), pulls[0])
    head = pull["head"]["sha"]
    params = {"head_sha": head, "event": "pull_request", "status": "success"}
    runs = list(github.paginate(f"actions/workflows/{workflow}/runs", params, key="workflow_runs"))
    if not runs:
        return None, f"pull request #{pull['number']} has no successful {workflow} run for its head {head[:12]}"
    newest = max(runs, key=lambda run: (run["run_number"], run.get("run_attempt", 1)))
    found = github.request("GET", f"actions/runs/{newest['id']}/artifacts", params={"name": artifact})
    if not any(not a.get("expired") for a in found.get("artifacts", [])):
        return None, f"run {newest['id']} of pull request #{pull['number']} no longer holds {artifact} (expired?)"
    return ReviewedRun(newest["id"], pull["number"]), f"pull request #{pull['number']}, run {newest['id']}"


# --- the difference between the reviewed plan and a new one ----------------------------------


def diff_markdown(
    environment: str, reviewed_text: str, planned_text: str, reasons: str, limit: int = MAX_COMMENT_CHARS
) -> str:
    lines = list(
        difflib.unified_diff(
            reviewed_text.splitlines(keepends=True),
            planned_text.splitlines(keepends=True),
            "reviewed plan",
            "plan being applied",
        )
    )
    head = f"### Terraform `{environment}`: planned again on merge\n\n{reasons.strip()}\n\n"
    if not lines:
        return head + "The new plan is identical to the reviewed one.\n"
    diff = "".join(lines)
    fence = fence_for(diff)
    opening = f"{head}Difference from the reviewed plan:\n\n{fence}diff\n"
    note = "\n_(cut here: the whole new plan is in the job summary and the plan artifact)_\n"
    room = limit - len(opening) - len(fence) - len(note) - 200  # 200: the marker and link the comment adds
    body = split_lines(diff, [room])[0]
    body += "" if body.endswith("\n") else "\n"
    return f"{opening}{body}{fence}\n" + (note if len(body) < len(diff) else "")


# --- command line -----------------------------------------------------------------------------


def _optional_int(value: str) -> int | None:
    return int(value) if value.strip() else None


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record", help=f"write {META} beside the plan of a pull request")
    rec.add_argument("--environment", required=True)
    rec.add_argument("--changes", choices=("true", "false"), required=True)
    rec.add_argument("--pull-request", type=_optional_int, default=None)
    rec.add_argument("--output", type=Path, default=Path(META))
    find = commands.add_parser("find", help="the pull-request run holding the reviewed plan of a merge commit")
    find.add_argument("--environment", required=True)
    find.add_argument("--sha", required=True)
    find.add_argument("--workflow", default="terraform-pr.yml")
    find.add_argument("--artifact", required=True)
    check = commands.add_parser("check", help="is the reviewed plan in --reviewed still current?")
    check.add_argument("--reviewed", type=Path, required=True)
    check.add_argument("--environment", required=True)
    check.add_argument("--state", type=Path, required=True, help="output of terraform state pull")
    check.add_argument("--lock", type=Path, default=Path(LOCK))
    check.add_argument("--reasons", type=Path, help="write why it is stale here (Markdown)")
    check.add_argument("--require-current", action="store_true", help="exit 1 when it is not current")
    diff = commands.add_parser("diff", help="show how the new plan differs from the reviewed one")
    diff.add_argument("--reviewed", type=Path, required=True)
    diff.add_argument("--planned", type=Path, default=Path())
    diff.add_argument("--environment", required=True)
    diff.add_argument("--reasons", type=Path)
    diff.add_argument("--sha", default=os.environ.get("GITHUB_SHA", ""))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return COMMANDS[args.command](args)
    except (ReviewError, GitHubError) as error:
        print(f"reviewed_plan {args.command}: {error}", file=sys.stderr)
        return 1


def _record(args: argparse.Namespace) -> int:
    args.output.write_text(json.dumps(record(args.environment, args.changes == "true", args.pull_request), indent=2))
    return 0


def _find(args: argparse.Namespace) -> int:
    found, why = find_reviewed_run(GitHub.from_environment(), args.sha, args.workflow, args.artifact)
    set_outputs(run_id=str(found.run_id) if found else "", pull_request=str(found.pull_request) if found else "")
    add_to_summary(f"**{args.environment}**: reviewed plan " + (f"found in {why}." if found else f"not found: {why}."))
    return 0


def _check(args: argparse.Namespace) -> int:
    current_state = state_id(args.state.read_text() if args.state.is_file() else "")
    reasons = staleness(args.reviewed, args.environment, current_state, git_tree(), args.lock)
    changes = str(read_meta(args.reviewed)["changes"]).lower()
    set_outputs(current="false" if reasons else "true", changes=changes)
    if reasons:
        text = "The reviewed plan is not current:\n\n" + "".join(f"- {reason}\n" for reason in reasons)
        if args.reasons:
            args.reasons.write_text(text)
        add_to_summary(f"**{args.environment}**: {text}")
        return 1 if args.require_current else 0
    add_to_summary(f"**{args.environment}**: the reviewed plan is current (same files, state and providers).")
    return 0


def _diff(args: argparse.Namespace) -> int:
    reviewed_text = (args.reviewed / TEXT).read_text() if (args.reviewed / TEXT).is_file() else ""
    reasons = args.reasons.read_text() if args.reasons and args.reasons.is_file() else "No reviewed plan was found."
    markdown = diff_markdown(args.environment, reviewed_text, (args.planned / TEXT).read_text(), reasons)
    link = run_url()
    add_to_summary(markdown)
    pull_request = read_meta(args.reviewed).get("pull_request") if (args.reviewed / META).is_file() else None
    if pull_request:
        key = f"{args.environment}@{args.sha[:12]}"
        footer = f"\n[workflow run]({link})\n" if link else ""
        body = f"{MARKER.format(kind='replan', key=key, part=1)}\n{markdown}{footer}"
        sync_comments(GitHub.from_environment(), int(pull_request), "replan", key, [body])
    return 0


COMMANDS = {"record": _record, "find": _find, "check": _check, "diff": _diff}


if __name__ == "__main__":
    sys.exit(main())
