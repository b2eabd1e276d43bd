"""Policy check of a Terraform plan: checkov on the plan JSON, failing on findings not in the baseline.

    python3 -m scripts.ci.policy_check --plan tfplan.json --environment dev \
        [--baseline .checkov-plan-baseline.json] [--checkov .venv-checkov/bin/checkov] [--report policy.md]

checkov runs with `--framework terraform_plan` and the repository's `.checkov.yaml` (the same
skipped checks, each with its reason, as the scan of the code). A plan shows what the code scan
cannot: the values of this environment's variables, and which resources really get created. It also
cannot see what is unknown until apply (the ARN of a KMS key created in the same plan looks like no
key at all), so some findings are expected; those are listed in the committed baseline, each with
the reason it is accepted, and, when the reason holds for some environments only (backups off in
a throwaway environment), with those `environments`: the plan of another environment fails on the
same finding. Any other failed check fails this step: a change that makes the plan worse is caught
in the pull request that makes it. `make test` runs it on the plan of every environments/*.tfvars.

Exit status: 0 no new finding, 1 new findings, 2 the check could not run (bad baseline, checkov failed).
Baseline entries no plan produced any more are reported so they can be removed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scripts.ci.github import add_to_summary

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BASELINE = REPO / ".checkov-plan-baseline.json"
DEFAULT_CONFIG = REPO / ".checkov.yaml"
_CHECK_ID = re.compile(r"^CKV2?_[A-Z0-9]+_\d+$")
MIN_REASON = 30


class PolicyError(Exception):
    """The check could not run: the message says what to fix."""


@dataclass(frozen=True, order=True)
class Finding:
    check_id: str
    resource: str
    title: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.check_id, self.resource)


@dataclass(frozen=True)
class Baseline:
    reasons: dict[tuple[str, str], str]  # (check id, resource address) -> why it is accepted
    # (check id, resource address) -> the environments the reason holds for; absent: every one
    environments: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)

    def for_environment(self, environment: str | None) -> Baseline:
        """The entries that apply to a plan of `environment` (None: only those for every environment)."""
        return Baseline(
            {
                key: reason
                for key, reason in self.reasons.items()
                if key not in self.environments or environment in self.environments[key]
            }
        )

    @classmethod
    def load(cls, path: Path) -> Baseline:
        try:
            document = json.loads(path.read_text())
        except FileNotFoundError:
            raise PolicyError(f"baseline {path} does not exist") from None
        except ValueError as error:
            raise PolicyError(f"baseline {path} is not JSON: {error}") from None
        entries = document.get("accepted") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise PolicyError(f'baseline {path} must be an object with an "accepted" list')
        reasons: dict[tuple[str, str], str] = {}
        scopes: dict[tuple[str, str], frozenset[str]] = {}
        for number, entry in enumerate(entries, start=1):
            where = f"baseline {path} entry {number}"
            if not isinstance(entry, dict):
                raise PolicyError(f"{where} is not an object")
            check_id, reason, resources = entry.get("check_id"), entry.get("reason"), entry.get("resources")
            if not isinstance(check_id, str) or not _CHECK_ID.match(check_id):
                raise PolicyError(f"{where}: check_id {check_id!r} is not a checkov id such as CKV_AWS_26")
            if not isinstance(reason, str) or len(reason.strip()) < MIN_REASON:
                raise PolicyError(f"{where} ({check_id}): give the reason it is accepted ({MIN_REASON}+ characters)")
            if not isinstance(resources, list) or not resources or not all(isinstance(r, str) for r in resources):
                raise PolicyError(f"{where} ({check_id}): resources must be a non-empty list of resource addresses")
            environments = entry.get("environments")
            names = environments if isinstance(environments, list) else []
            if environments is not None and not (names and all(isinstance(e, str) for e in names)):
                raise PolicyError(f"{where} ({check_id}): environments must be a non-empty list of names, or absent")
            for resource in resources:
                if (check_id, resource) in reasons:
                    raise PolicyError(f"{where}: {check_id} {resource} is accepted twice")
                reasons[(check_id, resource)] = reason.strip()
                if environments is not None:
                    scopes[(check_id, resource)] = frozenset(environments)
        return cls(reasons, scopes)


def run_checkov(plan: Path, checkov: str, config: Path = DEFAULT_CONFIG) -> tuple[list[Finding], str]:
    """Failed checks of the plan, and checkov's version."""
    if not plan.is_file():
        raise PolicyError(f"plan {plan} does not exist (terraform show -json tfplan > {plan})")
    command = [checkov, "-f", str(plan), "--framework", "terraform_plan", "--config-file", str(config)]
    command += ["-o", "json", "--compact", "--quiet", "--skip-download"]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=900, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"}
        )
    except FileNotFoundError:
        raise PolicyError(f"checkov not found at {checkov} (make .venv-checkov/.installed installs it)") from None
    try:
        answer = json.loads(result.stdout)
    except ValueError:
        raise PolicyError(
            f"checkov exited {result.returncode} without a JSON report:\n{result.stdout[-2000:]}{result.stderr[-4000:]}"
        ) from None
    reports = answer if isinstance(answer, list) else [answer]
    findings: list[Finding] = []
    version = ""
    for report in reports:
        version = version or str(report.get("summary", {}).get("checkov_version", ""))
        for check in (report.get("results") or {}).get("failed_checks", []):
            findings.append(Finding(check["check_id"], check["resource"], check.get("check_name") or ""))
    return sorted(set(findings)), version


@dataclass(frozen=True)
class Verdict:
    new: list[Finding]
    accepted: list[Finding]
    stale: list[tuple[str, str]]  # baseline entries this plan did not produce


def compare(findings: Iterable[Finding], baseline: Baseline) -> Verdict:
    findings = sorted(set(findings))
    seen = {f.key for f in findings}
    return Verdict(
        new=[f for f in findings if f.key not in baseline.reasons],
        accepted=[f for f in findings if f.key in baseline.reasons],
        stale=sorted(key for key in baseline.reasons if key not in seen),
    )


def report_markdown(verdict: Verdict, baseline_name: str, version: str) -> str:
    tool = f"checkov {version}".strip()
    if verdict.new:
        lines = [f"#### Policy check ({tool}, plan JSON): {len(verdict.new)} new finding(s)", ""]
        lines += ["| check | resource | what |", "|---|---|---|"]
        lines += [f"| {f.check_id} | `{f.resource}` | {f.title} |" for f in verdict.new]
        lines += [
            "",
            f"Fix them, or accept each in `{baseline_name}` with its reason (check_id, reason, resources).",
        ]
    else:
        lines = [f"#### Policy check ({tool}, plan JSON): no new findings"]
    if verdict.accepted:
        lines += ["", f"<details><summary>{len(verdict.accepted)} accepted in {baseline_name}</summary>", ""]
        lines += [f"- {f.check_id} `{f.resource}`" for f in verdict.accepted]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", type=Path, default=Path("tfplan.json"), help="terraform show -json of the plan")
    parser.add_argument(
        "--environment", help="environment of the plan: baseline entries limited to other environments do not apply"
    )
    parser.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="checkov configuration (skipped checks)")
    parser.add_argument("--checkov", default="checkov", help="checkov executable")
    parser.add_argument("--report", type=Path, help="write the Markdown report here (also to the job summary)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        baseline = Baseline.load(args.baseline).for_environment(args.environment)
        findings, version = run_checkov(args.plan, args.checkov, args.config)
    except PolicyError as error:
        print(f"policy_check: {error}", file=sys.stderr)
        return 2
    verdict = compare(findings, baseline)
    markdown = report_markdown(verdict, args.baseline.name, version)
    if args.report:
        args.report.write_text(markdown)
    add_to_summary(markdown)
    for check_id, resource in verdict.stale:
        print(f"policy_check: baseline entry {check_id} {resource} matched nothing in this plan", file=sys.stderr)
    return 1 if verdict.new else 0


if __name__ == "__main__":
    sys.exit(main())
