"""scripts/ci/policy_check.py without checkov: the committed baseline's rules, the comparison and the
errors that stop the check. checkov on real plans: tests/terraform/test_ci_plan_review.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.ci import policy_check
from scripts.ci.policy_check import Baseline, Finding, PolicyError

REASON = "unknown until apply: the key is created in the same plan"


def write(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document))
    return path


def test_the_committed_baseline_is_valid_and_every_entry_has_a_reason() -> None:
    baseline = Baseline.load(policy_check.DEFAULT_BASELINE)
    assert baseline.reasons
    assert all(len(reason) >= policy_check.MIN_REASON for reason in baseline.reasons.values())


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"check_id": "KV_AWS_1", "reason": REASON, "resources": ["a.b"]}, "is not a checkov id"),
        ({"check_id": "CKV_AWS_26", "reason": "because", "resources": ["a.b"]}, "give the reason"),
        ({"check_id": "CKV_AWS_26", "reason": REASON, "resources": []}, "non-empty list"),
        ({"check_id": "CKV_AWS_26", "reason": REASON, "resources": "a.b"}, "non-empty list"),
        ("CKV_AWS_26", "is not an object"),
    ],
)
def test_a_baseline_entry_without_id_reason_or_resources_is_refused(
    tmp_path: Path, entry: object, message: str
) -> None:
    with pytest.raises(PolicyError, match=f"entry 1.*{message}"):
        Baseline.load(write(tmp_path / "baseline.json", {"accepted": [entry]}))


def test_a_missing_or_malformed_baseline_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        Baseline.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(PolicyError, match="is not JSON"):
        Baseline.load(tmp_path / "bad.json")
    with pytest.raises(PolicyError, match='"accepted" list'):
        Baseline.load(write(tmp_path / "list.json", []))


def test_only_findings_missing_from_the_baseline_are_new() -> None:
    baseline = Baseline({("CKV_AWS_26", "aws_sns_topic.a"): REASON, ("CKV_AWS_18", "aws_s3_bucket.gone"): REASON})
    findings = [
        Finding("CKV_AWS_26", "aws_sns_topic.a", "SNS encrypted"),
        Finding("CKV_AWS_26", "aws_sns_topic.b", "SNS encrypted"),  # same check, another resource: new
        Finding("CKV_AWS_53", "aws_s3_bucket_public_access_block.x", "block public ACLs"),
    ]
    verdict = policy_check.compare(findings, baseline)
    assert [f.key for f in verdict.new] == [
        ("CKV_AWS_26", "aws_sns_topic.b"),
        ("CKV_AWS_53", "aws_s3_bucket_public_access_block.x"),
    ]
    assert [f.key for f in verdict.accepted] == [("CKV_AWS_26", "aws_sns_topic.a")]
    assert verdict.stale == [("CKV_AWS_18", "aws_s3_bucket.gone")]
    report = policy_check.report_markdown(verdict, "baseline.json", "3.3.30")
    assert "2 new finding(s)" in report and "`aws_sns_topic.b`" in report and "1 accepted in baseline.json" in report
    clean = policy_check.compare(findings[:1], baseline)
    assert "no new findings" in policy_check.report_markdown(clean, "baseline.json", "3.3.30")


def test_a_check_that_cannot_run_exits_2_naming_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = write(tmp_path / "tfplan.json", {"format_version": "1.2"})
    assert policy_check.main(["--plan", str(tmp_path / "none.json")]) == 2
    assert "plan" in capsys.readouterr().err
    assert policy_check.main(["--plan", str(plan), "--checkov", str(tmp_path / "no-checkov")]) == 2
    assert "checkov not found" in capsys.readouterr().err
    assert policy_check.main(["--plan", str(plan), "--checkov", "false"]) == 2
    assert "without a JSON report" in capsys.readouterr().err


def test_an_entry_naming_environments_applies_to_those_plans_only(tmp_path: Path) -> None:
    path = write(
        tmp_path / "baseline.json",
        {
            "accepted": [
                {"check_id": "CKV_AWS_26", "reason": REASON, "resources": ["aws_sns_topic.a"]},
                {
                    "check_id": "CKV_AWS_133",
                    "reason": "backups off in the throwaway local environment only",
                    "environments": ["local"],
                    "resources": ["aws_db_instance.x"],
                },
            ]
        },
    )
    baseline = Baseline.load(path)
    backups = Finding("CKV_AWS_133", "aws_db_instance.x", "RDS backups")
    assert policy_check.compare([backups], baseline.for_environment("local")).new == []
    # The same finding in prod (or a plan of no stated environment) is new: the reason does not hold there.
    assert policy_check.compare([backups], baseline.for_environment("prod")).new == [backups]
    assert policy_check.compare([backups], baseline.for_environment(None)).new == [backups]
    assert set(baseline.for_environment("prod").reasons) == {("CKV_AWS_26", "aws_sns_topic.a")}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"environments": []}, "environments must be a non-empty list"),
        ({"environments": "prod"}, "environments must be a non-empty list"),
    ],
)
def test_malformed_environments_are_refused(tmp_path: Path, extra: dict, message: str) -> None:
    entry = {"check_id": "CKV_AWS_26", "reason": REASON, "resources": ["a.b"], **extra}
    with pytest.raises(PolicyError, match=message):
        Baseline.load(write(tmp_path / "baseline.json", {"accepted": [entry]}))


def test_an_entry_accepted_twice_is_refused(tmp_path: Path) -> None:
    entry = {"check_id": "CKV_AWS_26", "reason": REASON, "resources": ["a.b"]}
    with pytest.raises(PolicyError, match="accepted twice"):
        Baseline.load(write(tmp_path / "baseline.json", {"accepted": [entry, entry]}))
