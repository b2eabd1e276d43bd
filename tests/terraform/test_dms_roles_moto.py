"""A missing account-wide DMS role is reported when the root module is planned, naming the role and
what to do, against the project's moto server (scripts/localenv/moto_server.py): the IAM lookup of
modules/dms is the one plan-time API call, so this is where it is exercised for real.

The CDC lake of environments/dev.tfvars reuses the account's roles (create_dms_iam_roles = false,
verify_dms_iam_roles left on). Planned in an account of its own (credentials of a role assumed
there, so no other test's roles are seen): without dms-cloudwatch-logs-role, or with it at a path
where DMS does not look, the plan fails with the module's message; once it is at "/" the plan
passes. What the module creates is applied and read back with the local environment
(test_apply_moto.py, which creates the roles instead).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.terraform import tfkit

pytestmark = pytest.mark.slow

REGION = "us-east-1"
ACCOUNT = "310987654321"  # where the account-wide roles are missing
TRUST = json.dumps({"Version": "2012-10-17", "Statement": []})


@pytest.fixture(scope="module")
def account(moto_server: str) -> dict[str, str]:
    """Environment credentials of a role assumed in ACCOUNT (moto keeps each account apart)."""
    sts = boto3.client("sts", endpoint_url=moto_server, region_name=REGION)
    credentials = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/tfcheck", RoleSessionName="tfcheck")
    return {
        "AWS_ACCESS_KEY_ID": credentials["Credentials"]["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["Credentials"]["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["Credentials"]["SessionToken"],
    }


@pytest.fixture(scope="module")
def iam(moto_server: str, account: dict[str, str]) -> object:
    return boto3.client(
        "iam",
        endpoint_url=moto_server,
        region_name=REGION,
        aws_access_key_id=account["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=account["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=account["AWS_SESSION_TOKEN"],
    )


@pytest.fixture(scope="module")
def root(
    moto_server: str, account: dict[str, str], tmp_path_factory: pytest.TempPathFactory, tf_env: dict[str, str]
) -> Iterator[tuple[Path, dict[str, str]]]:
    directory = tfkit.copy_tree(tmp_path_factory.mktemp("dms-roles"))
    tfkit.write_moto_provider(directory, moto_server, REGION)
    env = {**tf_env, **account}
    tfkit.init(directory, env)
    yield directory, env


def _plan(root: tuple[Path, dict[str, str]], build_dir: Path) -> tfkit.Result:
    directory, env = root
    # The lookup stays on: plan_args() turns it off for offline plans, this -var turns it back on.
    args = [*tfkit.plan_args(build_dir, ["environments/dev.tfvars"]), "-var=verify_dms_iam_roles=true"]
    return tfkit.terraform(directory, *args, env=env)


def _message(result: tfkit.Result) -> str:
    return re.sub(r"\s+", " ", (result.stderr + result.stdout).replace("│", ""))


def test_a_missing_account_wide_role_is_reported_at_plan(root, iam, build_dir: Path) -> None:  # type: ignore[no-untyped-def]
    iam.create_role(RoleName="dms-vpc-role", AssumeRolePolicyDocument=TRUST)
    iam.create_role(RoleName="dms-cloudwatch-logs-role", Path="/service-role/", AssumeRolePolicyDocument=TRUST)
    missing = _plan(root, build_dir)
    assert missing.returncode == 1
    assert (
        "DMS needs the account-wide IAM role(s) dms-cloudwatch-logs-role (at path /), which this account does not "
        "have. Set create_dms_iam_roles = true in one deployment per account"
    ) in _message(missing), _message(missing)[-3000:]

    # Role names are unique across paths: the misplaced one goes before the right one is made.
    iam.delete_role(RoleName="dms-cloudwatch-logs-role")
    iam.create_role(RoleName="dms-cloudwatch-logs-role", AssumeRolePolicyDocument=TRUST)
    _plan(root, build_dir).check()
