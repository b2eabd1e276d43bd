"""One issue per environment whose deployment differs from main: opened, kept current, closed.

    python3 -m scripts.ci.drift_issue --environment prod --changes true \
        --plan-json tfplan.json --plan-text tfplan.txt

The scheduled drift workflow plans every environment with `-detailed-exitcode`. When the plan has
changes (exit code 2: someone changed a resource by hand, or main holds changes that were never
applied) the environment's drift issue is opened, or its description replaced with the latest plan
if it is already open, so the issue always shows today's difference rather than a thread of old ones.
When a later plan is clean, the issue gets a closing comment and is closed. The issue is found by a
hidden marker in its description among the open issues opened by the workflow's own login.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scripts.ci.github import GitHub, GitHubError, run_url
from scripts.ci.plan_comment import DEFAULT_AUTHOR, MARKER, MAX_COMMENT_CHARS, PlanFiles, plan_bodies

LABEL = "terraform-drift"


def drift_body(environment: str, files: PlanFiles, link: str | None) -> str:
    """Summary and as much of the plan as one issue description holds (GitHub: 65,536 characters)."""
    note = f"\n_The plan is longer than an issue holds; the whole plan is in the [workflow run]({link})._\n"
    parts = plan_bodies(environment, files, None, link, limit=MAX_COMMENT_CHARS - len(note), kind="drift")
    return parts[0] + (note if len(parts) > 1 else "")


def open_drift_issues(github: GitHub, environment: str, author: str) -> list[dict[str, Any]]:
    marker = MARKER.format(kind="drift", key=environment, part=1)
    return [
        issue
        for issue in github.paginate("issues", {"state": "open", "creator": author})
        if "pull_request" not in issue and marker in (issue.get("body") or "")
    ]


def sync_drift_issue(
    github: GitHub, environment: str, changes: bool, body: str, link: str | None, author: str = DEFAULT_AUTHOR
) -> str:
    """Open, update or close the environment's drift issue; returns what was done."""
    issues = open_drift_issues(github, environment, author)
    if changes:
        if issues:
            number = issues[0]["number"]
            github.request("PATCH", f"issues/{number}", {"body": body})
            return f"updated #{number}"
        title = f"Terraform drift: {environment} differs from main"
        created = github.request("POST", "issues", {"title": title, "body": body, "labels": [LABEL]})
        return f"opened #{created['number']}"
    for issue in issues:
        closing = "The scheduled plan shows no difference any more" + (f" ([workflow run]({link}))." if link else ".")
        github.request("POST", f"issues/{issue['number']}/comments", {"body": closing})
        github.request("PATCH", f"issues/{issue['number']}", {"state": "closed", "state_reason": "completed"})
    return "closed " + ", ".join(f"#{issue['number']}" for issue in issues) if issues else "no drift"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--environment", required=True)
    parser.add_argument("--changes", choices=("true", "false"), required=True, help="did the plan find changes?")
    parser.add_argument("--plan-json", type=Path, default=Path("tfplan.json"))
    parser.add_argument("--plan-text", type=Path, default=Path("tfplan.txt"))
    parser.add_argument("--author", default=DEFAULT_AUTHOR, help="login that opens the issues")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    link = run_url()
    changes = args.changes == "true"
    body = drift_body(args.environment, PlanFiles(args.plan_json, args.plan_text), link) if changes else ""
    try:
        done = sync_drift_issue(GitHub.from_environment(), args.environment, changes, body, link, args.author)
    except GitHubError as error:
        print(f"drift_issue: {error}", file=sys.stderr)
        return 1
    print(f"drift_issue: {args.environment}: {done}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
