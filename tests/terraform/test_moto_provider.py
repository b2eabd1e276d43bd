"""The provider override that points Terraform at moto (scripts/localenv/moto_provider.py), shared by
`make demo` and the apply test: it names every service the module's resources call, every name is an
`endpoints` argument of the pinned provider, and `terraform validate` accepts it on the root module.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from scripts.localenv import moto_provider
from tests.terraform import tfkit

ENDPOINT = "http://127.0.0.1:5000"
REGION = "us-east-1"

# Resource and data source types (exact name, else longest prefix) -> the `endpoints` argument of
# the service the provider calls for them; None: computed by the provider, no API call. A type that
# matches nothing here fails the test: add it with its service (and the service to the override).
SERVICE_OF_TYPE: dict[str, str | None] = {
    "aws_iam_policy_document": None,
    "aws_partition": None,
    "aws_region": None,
    "aws_default_tags": None,
    "aws_caller_identity": "sts",
    "aws_cloudwatch_log_": "logs",
    "aws_cloudwatch_event_": "events",
    "aws_cloudwatch_metric_alarm": "cloudwatch",
    "aws_cloudwatch_composite_alarm": "cloudwatch",
    "aws_cloudwatch_dashboard": "cloudwatch",
    "aws_availability_zones": "ec2",
    "aws_default_network_acl": "ec2",
    "aws_default_route_table": "ec2",
    "aws_default_security_group": "ec2",
    "aws_eip": "ec2",
    "aws_flow_log": "ec2",
    "aws_internet_gateway": "ec2",
    "aws_nat_gateway": "ec2",
    "aws_network_acl": "ec2",
    "aws_route": "ec2",
    "aws_security_group": "ec2",
    "aws_subnet": "ec2",
    "aws_vpc": "ec2",
    "aws_db_": "rds",
    "aws_rds_": "rds",
    "aws_dms_": "dms",
    "aws_dynamodb_": "dynamodb",
    "aws_glue_": "glue",
    "aws_iam_": "iam",
    "aws_kms_": "kms",
    "aws_lambda_": "lambda",
    "aws_s3_": "s3",
    "aws_scheduler_": "scheduler",
    "aws_secretsmanager_": "secretsmanager",
    "aws_sns_": "sns",
    "aws_sqs_": "sqs",
}

_BLOCK = re.compile(r'^\s*(?:resource|data)\s+"(aws_[a-z0-9_]+)"', re.MULTILINE)


def _service_of(resource_type: str) -> str | None:
    if resource_type in SERVICE_OF_TYPE:
        return SERVICE_OF_TYPE[resource_type]
    prefixes = [p for p in SERVICE_OF_TYPE if resource_type.startswith(p)]
    if not prefixes:
        raise KeyError(resource_type)
    return SERVICE_OF_TYPE[max(prefixes, key=len)]


def _module_types() -> set[str]:
    """AWS resource and data source types of the root module and every module under modules/."""
    files = [*tfkit.REPO.glob("*.tf"), *(tfkit.REPO / "modules").rglob("*.tf")]
    files = [f for f in files if ".terraform" not in f.parts]
    return {t for f in files for t in _BLOCK.findall(f.read_text())}


def test_override_names_every_service_the_module_calls() -> None:
    types = _module_types()
    assert {"aws_lambda_function", "aws_db_instance", "aws_s3_bucket"} <= types, "the .tf scan found no resources"
    unmapped = sorted(t for t in types if not any(t == p or t.startswith(p) for p in SERVICE_OF_TYPE))
    assert not unmapped, f"map these types to their service in SERVICE_OF_TYPE: {unmapped}"
    needed = {s for t in types if (s := _service_of(t)) is not None}
    # Unless told to skip it, the provider asks STS for the account id when it is configured.
    needed.add("sts")
    missing = sorted(needed - set(moto_provider.ENDPOINT_SERVICES))
    assert not missing, f"the moto provider override does not point these services at moto: {missing}"

    text = moto_provider.provider_override(ENDPOINT, REGION)
    for service in moto_provider.ENDPOINT_SERVICES:
        assert re.search(rf'^\s+{service}\s+= "{re.escape(ENDPOINT)}"$', text, re.MULTILINE), service


def test_each_caller_keeps_its_settings() -> None:
    """The apply test takes credentials from its environment and lets the provider look up the
    account id; the demo writes fake keys into the block and skips the lookup."""
    common = [
        f'region                      = "{REGION}"',
        "s3_use_path_style           = true",
        "skip_credentials_validation = true",
        "skip_metadata_api_check     = true",
        "skip_region_validation      = true",
    ]
    plain = moto_provider.provider_override(ENDPOINT, REGION)
    demo = moto_provider.provider_override(ENDPOINT, REGION, static_credentials=True, skip_requesting_account_id=True)
    for line in common:
        assert line in plain
        assert line in demo
    for line in ('access_key                  = "testing"', 'secret_key                  = "testing"'):
        assert line in demo
        assert line not in plain
    assert "skip_requesting_account_id  = true" in demo
    assert "skip_requesting_account_id" not in plain


@pytest.mark.parametrize("value", ['http://x"y', "http://h/${var.x}", "ftp://host", "http://host\n"])
def test_an_endpoint_that_would_break_the_hcl_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        moto_provider.provider_override(value, REGION)


@pytest.fixture(scope="module")
def override_root(tmp_path_factory: pytest.TempPathFactory, tf_env: dict[str, str]) -> Path:
    """A copy of the root module with the moto override of the apply test, initialised."""
    root = tfkit.copy_tree(tmp_path_factory.mktemp("moto-provider"))
    tfkit.write_moto_provider(root, ENDPOINT, REGION)
    tfkit.init(root, tf_env)
    return root


def test_every_endpoint_is_an_argument_of_the_pinned_provider(override_root: Path, tf_env: dict[str, str]) -> None:
    schema = json.loads(tfkit.terraform(override_root, "providers", "schema", "-json", env=tf_env).check().stdout)
    (address,) = [a for a in schema["provider_schemas"] if a.endswith("/hashicorp/aws")]
    block = schema["provider_schemas"][address]["provider"]["block"]
    accepted = set(block["block_types"]["endpoints"]["block"]["attributes"])
    unknown = sorted(set(moto_provider.ENDPOINT_SERVICES) - accepted)
    assert not unknown, f"{address} has no `endpoints` argument named {unknown}"


@pytest.mark.parametrize("demo", [False, True], ids=["apply-test", "demo"])
def test_terraform_validate_accepts_the_override(demo: bool, override_root: Path, tf_env: dict[str, str]) -> None:
    path = moto_provider.write_provider_override(
        override_root,
        ENDPOINT,
        REGION,
        filename="providers_test.tf",
        static_credentials=demo,
        skip_requesting_account_id=demo,
    )
    fmt = tfkit.terraform(override_root, "fmt", "-check", "-diff", "-no-color", path.name, env=tf_env)
    assert fmt.returncode == 0, f"the override is not in `terraform fmt` layout:\n{fmt.stdout}{fmt.stderr}"
    result = tfkit.terraform(override_root, "validate", "-no-color", env=tf_env).check()
    assert "Success! The configuration is valid." in result.stdout
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
