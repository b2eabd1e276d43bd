"""checkov over the Terraform code: zero failed checks, except those skipped in .checkov.yaml, each
with its reason."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.terraform import tfkit

CONFIG = tfkit.REPO / ".checkov.yaml"
CHECKOV = tfkit.REPO / ".venv-checkov" / "bin" / "checkov"


def _skipped_with_reasons() -> dict[str, str]:
    lines = CONFIG.read_text().splitlines()
    skipped: dict[str, str] = {}
    for index, line in enumerate(lines):
        match = re.fullmatch(r"\s*-\s*(CKV2?_[A-Z]+_\d+)\s*", line)
        if match:
            reason = re.fullmatch(rf"\s*#\s*{match.group(1)}:\s*(.+)", lines[index - 1])
            skipped[match.group(1)] = reason.group(1) if reason else ""
    return skipped


_INLINE_SKIP = re.compile(r"#checkov:skip=(CKV2?_[A-Z]+_\d+):(.*)")


def _inline_skips_with_reasons() -> dict[str, str]:
    """Skips written in a module's resource (where the code scan cannot judge one resource that the
    plan-based policy check judges per planned instance), each with its reason after the colon."""
    return {
        match.group(1): match.group(2).strip()
        for path in sorted(tfkit.REPO.glob("modules/*/*.tf"))
        for match in _INLINE_SKIP.finditer(path.read_text())
    }


def test_every_skipped_check_has_a_reason() -> None:
    skipped = {**_skipped_with_reasons(), **_inline_skips_with_reasons()}
    assert skipped, ".checkov.yaml skips nothing?"
    missing = [check for check, reason in skipped.items() if len(reason) < 30]
    assert not missing, f"skipped checks without a reason on the line above: {missing}"


@pytest.fixture(scope="module")
def checkov_report(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    if not CHECKOV.is_file():
        pytest.fail(f"{CHECKOV} is missing: run `make setup` (it installs checkov in its own venv)")
    tree = tfkit.copy_tree(tmp_path_factory.mktemp("checkov"))
    proc = subprocess.run(
        [str(CHECKOV), "--config-file", str(CONFIG), "-d", str(tree), "-o", "json", "--compact"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.stdout.strip(), f"checkov printed nothing:\n{proc.stderr[-4000:]}"
    report = json.loads(proc.stdout)
    return report if isinstance(report, list) else [report]


def test_checkov_has_no_failures(checkov_report: list[dict]) -> None:
    failed = [
        f"{c['check_id']} {c['check_name']}: {c['resource']} ({Path(c['file_path']).as_posix()}:{c['file_line_range']})"
        for report in checkov_report
        for c in report["results"]["failed_checks"]
    ]
    assert not failed, "checkov failures (fix them, or skip in .checkov.yaml with a reason):\n" + "\n".join(failed)


def test_checkov_really_scanned_the_module(checkov_report: list[dict]) -> None:
    summary = checkov_report[0]["summary"]
    assert summary["passed"] > 300, summary
    checked = {c["check_id"] for report in checkov_report for c in report["results"]["passed_checks"]}
    # A few checks that only pass because the module is hardened (not vacuously absent).
    assert {"CKV_AWS_16", "CKV_AWS_17", "CKV_AWS_27", "CKV_AWS_26", "CKV_AWS_158", "CKV_AWS_7"} <= checked
    skipped = {c["check_id"] for report in checkov_report for c in report["results"]["skipped_checks"]}
    assert skipped <= set(_skipped_with_reasons()) | set(_inline_skips_with_reasons())
