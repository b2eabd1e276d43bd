"""The plan of one environment as a pull-request comment: counts by action, then the full plan.

    python3 -m scripts.ci.plan_comment pr --environment dev --pull-request 12 \
        --plan-json tfplan.json --plan-text tfplan.txt [--policy-report policy.md] [--plan-log tfplan.log]
    python3 -m scripts.ci.plan_comment summary --environment dev --plan-json tfplan.json --plan-text tfplan.txt

A comment holds at most 65,536 characters, and a plan of this module easily exceeds that (a new
environment's plan is about 140 kB). The first comment carries the summary and the start of the plan;
the rest of the plan follows in as many continuation comments as needed. Every comment carries a
hidden marker naming the environment and its part, so each push edits the same comments in place,
adds parts when the plan grew and deletes parts it no longer needs: reviewers see one current plan
per environment, never a stack of stale ones.

In the plan text, the action symbol of every line moves to the first column (`~` becomes `!`) so
GitHub colours it as a diff; nothing else changes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.ci.github import GitHub, GitHubError, add_to_summary, run_url

MAX_COMMENT_CHARS = 65_536
DEFAULT_AUTHOR = "github-actions[bot]"
MARKER = "<!-- aws-data-pipelines:{kind} {key} part={part} -->"
_MARKER = re.compile(r"<!-- aws-data-pipelines:(?P<kind>[\w-]+) (?P<key>\S+) part=(?P<part>\d+) -->")

# Display order of the actions, with the symbol Terraform prints for each.
ACTIONS = {
    "create": "+",
    "update": "~",
    "replace": "-/+",
    "delete": "-",
    "import": "<-",
    "move": "->",
    "forget": ".",
    "read": "<=",
}
RESOURCE_LIST_LIMIT = 200
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ACTION_SYMBOL = re.compile(r"^(\s+)(-/\+|\+/-|[-+~])(?= )")


@dataclass
class PlanSummary:
    counts: Counter[str] = field(default_factory=Counter)
    changes: list[tuple[str, str]] = field(default_factory=list)  # (action, address), in plan order
    outputs_changed: int = 0
    drifted: int = 0  # resources changed outside Terraform since the last apply

    @property
    def has_changes(self) -> bool:
        return any(n for action, n in self.counts.items() if action != "read") or self.outputs_changed > 0


def action_of(change: dict[str, Any]) -> str:
    """One word for a resource change: create, update, replace, delete, import, move, forget, read, no-op."""
    actions = change["change"]["actions"]
    if sorted(actions) == ["create", "delete"]:
        return "replace"
    action = actions[0] if len(actions) == 1 else "+".join(actions)
    if action == "no-op" and change["change"].get("importing"):
        return "import"
    if action == "no-op" and change.get("previous_address"):
        return "move"
    return action


def summarize(plan: dict[str, Any]) -> PlanSummary:
    summary = PlanSummary()
    for change in plan.get("resource_changes", []):
        action = action_of(change)
        if action == "no-op":
            continue
        summary.counts[action] += 1
        if action != "read":
            summary.changes.append((action, change["address"]))
    summary.outputs_changed = sum(
        1 for change in (plan.get("output_changes") or {}).values() if change.get("actions") != ["no-op"]
    )
    summary.drifted = len(plan.get("resource_drift") or [])
    return summary


# --- rendering --------------------------------------------------------------------------------


def as_diff(plan_text: str) -> str:
    """Move each line's action symbol to the first column so GitHub's diff colouring applies."""
    lines = []
    for line in plan_text.splitlines():
        match = _ACTION_SYMBOL.match(line)
        if match:
            indent, symbol = match.groups()
            line = ("!" if symbol == "~" else symbol) + indent + line[match.end() :]
        lines.append(line)
    return "\n".join(lines)


def fence_for(text: str) -> str:
    """A code fence longer than any run of backticks in the text, so the text cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def split_lines(text: str, budgets: Iterable[int]) -> list[str]:
    """Cut text into chunks at line ends, chunk i at most budgets[i] characters (a line longer than
    its chunk is cut inside). `budgets` may be infinite; every budget must be positive."""
    chunks: list[str] = []
    lines = text.splitlines(keepends=True)
    index = 0
    for budget in budgets:
        if index == len(lines):
            break
        chunk: list[str] = []
        size = 0
        while index < len(lines):
            line = lines[index]
            if size + len(line) <= budget:
                chunk.append(line)
                size += len(line)
                index += 1
            elif not chunk:  # a single line longer than a whole chunk: cut it
                chunk.append(line[:budget])
                lines[index] = line[budget:]
                break
            else:
                break
        chunks.append("".join(chunk))
    return chunks or [""]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def summary_markdown(environment: str, summary: PlanSummary, commit: str | None, link: str | None) -> str:
    """Title, counts by action and the list of changing resources."""
    verdict = "changes" if summary.has_changes else "no changes"
    lines = [f"### Terraform plan: `{environment}` ({verdict})", _facts(commit, link), ""]
    if summary.counts:
        lines += ["| action | resources |", "|---|---:|"]
        lines += [f"| `{ACTIONS.get(a, '?')}` {a} | {summary.counts[a]} |" for a in sorted(summary.counts, key=_order)]
    else:
        lines.append("No resource changes.")
    if summary.outputs_changed:
        lines.append(f"\n{_plural(summary.outputs_changed, 'output')} change.")
    if summary.drifted:
        lines.append(f"\n{_plural(summary.drifted, 'resource')} changed outside Terraform since the last apply.")
    if summary.changes:
        shown = summary.changes[:RESOURCE_LIST_LIMIT]
        lines += ["", f"<details><summary>{_plural(len(summary.changes), 'resource')} to change</summary>", ""]
        lines += [f"- `{ACTIONS.get(a, '?')}` {a} `{address}`" for a, address in shown]
        if len(summary.changes) > len(shown):
            lines.append(f"- ... and {len(summary.changes) - len(shown)} more (see the full plan)")
        lines += ["", "</details>"]
    return "\n".join(lines)


def _facts(commit: str | None, link: str | None) -> str:
    facts = [f"commit `{commit[:12]}`" if commit else "", f"[workflow run]({link})" if link else ""]
    return " · ".join(fact for fact in facts if fact)


def _order(action: str) -> int:
    return list(ACTIONS).index(action) if action in ACTIONS else len(ACTIONS)


def render_parts(
    marker_kind: str,
    key: str,
    head: str,
    plan_text: str,
    limit: int = MAX_COMMENT_CHARS,
) -> list[str]:
    """Comment bodies, each at most `limit` characters: part 1 is the marker, `head` and the start of
    the plan; the next parts continue the plan. Every part is complete Markdown on its own."""
    diff = as_diff(plan_text)
    fence = fence_for(diff)

    def wrap(part: int, total: int, chunk: str) -> str:
        marker = MARKER.format(kind=marker_kind, key=key, part=part)
        intro = head if part == 1 else f"#### Terraform plan: `{key}`, continued"
        title = "Full plan" + (f" (part {part} of {total})" if total > 1 else "")
        body = chunk if chunk.endswith("\n") or not chunk else chunk + "\n"
        return f"{marker}\n{intro}\n\n<details><summary>{title}</summary>\n\n{fence}diff\n{body}{fence}\n</details>\n"

    # Room for the plan in each part: the limit minus its frame, measured with the widest numbers.
    widest = 10**6
    first = limit - len(wrap(1, widest, ""))
    rest = limit - len(wrap(widest, widest, ""))
    if first <= 0 or rest <= 0:
        raise ValueError(f"a comment of {limit} characters cannot hold the summary ({len(head)} characters)")

    def budgets() -> Iterable[int]:
        yield first
        while True:
            yield rest

    chunks = split_lines(diff, budgets())
    return [wrap(i, len(chunks), chunk) for i, chunk in enumerate(chunks, start=1)]


def failed_markdown(environment: str, log_tail: str, commit: str | None, link: str | None) -> str:
    head = f"### Terraform plan: `{environment}` failed\n{_facts(commit, link)}\n\n"
    if not log_tail:
        return head + "See the workflow run for the error.\n"
    fence = fence_for(log_tail)
    return f"{head}{fence}\n{log_tail.rstrip()}\n{fence}\n"


@dataclass(frozen=True)
class PlanFiles:
    plan_json: Path
    plan_text: Path
    policy_report: Path | None = None
    plan_log: Path | None = None

    def load(self) -> tuple[dict[str, Any], str] | None:
        """(plan, text), or None when the plan did not get that far."""
        if not (self.plan_json.is_file() and self.plan_text.is_file()):
            return None
        return json.loads(self.plan_json.read_text()), self.plan_text.read_text()

    def policy(self) -> str:
        if self.policy_report and self.policy_report.is_file():
            return "\n\n" + self.policy_report.read_text().strip()
        return ""

    def log_tail(self, characters: int = 6000) -> str:
        """The end of Terraform's output, without its colour codes."""
        if self.plan_log and self.plan_log.is_file():
            return _ANSI.sub("", self.plan_log.read_text(errors="replace"))[-characters:]
        return ""


def plan_bodies(
    environment: str,
    files: PlanFiles,
    commit: str | None,
    link: str | None,
    limit: int = MAX_COMMENT_CHARS,
    kind: str = "plan",
) -> list[str]:
    """The bodies of the comments showing a plan (marked `kind`), or its failure when there is no plan."""
    loaded = files.load()
    if loaded is None:
        marker = MARKER.format(kind=kind, key=environment, part=1)
        return [f"{marker}\n{failed_markdown(environment, files.log_tail(), commit, link)}{files.policy()}"]
    plan, text = loaded
    head = summary_markdown(environment, summarize(plan), commit, link) + files.policy()
    return render_parts(kind, environment, head, text, limit)


# --- publishing -------------------------------------------------------------------------------


def marked_comments(github: GitHub, issue: int, kind: str, key: str, author: str) -> dict[int, list[dict[str, Any]]]:
    """part number -> comments by `author` carrying this marker, oldest first."""
    found: dict[int, list[dict[str, Any]]] = {}
    for comment in github.paginate(f"issues/{issue}/comments"):
        match = _MARKER.search(comment.get("body") or "")
        if match and match["kind"] == kind and match["key"] == key and comment["user"]["login"] == author:
            found.setdefault(int(match["part"]), []).append(comment)
    return found


def sync_comments(
    github: GitHub, issue: int, kind: str, key: str, bodies: Sequence[str], author: str = DEFAULT_AUTHOR
) -> dict[str, list[int]]:
    """Make the marked comments of (kind, key) on an issue or pull request equal `bodies`: edit the
    parts that exist, create the missing ones, delete the surplus (and any duplicate of a part).
    Returns the comment ids by what was done."""
    existing = marked_comments(github, issue, kind, key, author)
    done: dict[str, list[int]] = {"updated": [], "unchanged": [], "created": [], "deleted": []}
    surplus = [comment for part, comments in existing.items() if part > len(bodies) for comment in comments]
    for part, body in enumerate(bodies, start=1):
        keep, *duplicates = existing.get(part) or [None]
        surplus += duplicates
        if keep is None:
            created = github.request("POST", f"issues/{issue}/comments", {"body": body})
            done["created"].append(created["id"])
        elif keep.get("body") == body:
            done["unchanged"].append(keep["id"])
        else:
            github.request("PATCH", f"issues/comments/{keep['id']}", {"body": body})
            done["updated"].append(keep["id"])
    for comment in surplus:
        github.request("DELETE", f"issues/comments/{comment['id']}")
        done["deleted"].append(comment["id"])
    return done


# --- command line -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("pr", "summary"))
    parser.add_argument("--environment", required=True)
    parser.add_argument("--plan-json", type=Path, default=Path("tfplan.json"))
    parser.add_argument("--plan-text", type=Path, default=Path("tfplan.txt"))
    parser.add_argument("--policy-report", type=Path, help="Markdown of scripts/ci/policy_check.py, shown in part 1")
    parser.add_argument("--plan-log", type=Path, help="terraform plan's output, shown when the plan failed")
    parser.add_argument("--commit", help="commit the plan was made for (shown in the title)")
    parser.add_argument("--pull-request", type=int, help="pr: the pull request number")
    parser.add_argument("--author", default=DEFAULT_AUTHOR, help="pr: login that owns the comments")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    files = PlanFiles(args.plan_json, args.plan_text, args.policy_report, args.plan_log)
    if args.command == "summary":
        # A job summary takes up to 1 MiB: one part, cut with a note if the plan is longer still.
        parts = plan_bodies(args.environment, files, args.commit, run_url(), limit=1_000_000)
        note = f"\n_The plan continues beyond the job summary's 1 MiB; see `{args.plan_text}` in the plan artifact._"
        add_to_summary(parts[0] + (note if len(parts) > 1 else ""))
        return 0
    if args.pull_request is None:
        print("plan_comment: pr needs --pull-request", file=sys.stderr)
        return 2
    bodies = plan_bodies(args.environment, files, args.commit, run_url())
    try:
        github = GitHub.from_environment()
        done = sync_comments(github, args.pull_request, "plan", args.environment, bodies, args.author)
    except GitHubError as error:
        print(f"plan_comment: {error}", file=sys.stderr)
        return 1
    print("plan_comment: " + ", ".join(f"{what} {ids}" for what, ids in done.items() if ids))
    return 0


if __name__ == "__main__":
    sys.exit(main())
