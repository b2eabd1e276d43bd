"""The DynamoDB migration's source table in an emulator, created before Terraform applies.

The migration reads a table it does not own: in AWS the application's table exists, with its
stream, before the module is applied, and the module takes the stream's ARN as a plain input (so
every environment plans offline). moto starts empty and gives a new stream an ARN that ends in its
creation time, so `make demo` and the apply test (tests/terraform) create the source table that
environments/local.tfvars names, with its key and a NEW_AND_OLD_IMAGES stream, and apply with that
file's `dynamodb_migration` object, the placeholder stream ARN replaced by the real one:

    settings = local_settings()
    stream_arn = create_source_table(dynamodb_client, settings)
    terraform apply -var-file=environments/local.tfvars -var dynamodb_migration=<terraform_value(settings, stream_arn)>
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hcl2

LOCAL_TFVARS = Path(__file__).resolve().parents[2] / "environments" / "local.tfvars"
VARIABLE = "dynamodb_migration"


def local_settings(tfvars: Path = LOCAL_TFVARS) -> dict[str, Any]:
    """The `dynamodb_migration` object of a tfvars file as plain JSON values."""
    document = hcl2.loads(tfvars.read_text())
    if VARIABLE not in document:
        raise KeyError(f"{tfvars} sets no {VARIABLE}")
    return _literal(document[VARIABLE])


def _literal(value: Any) -> Any:
    """python-hcl2 keeps a string's quotes (`'"id"'`); HCL's string escapes are JSON's."""
    if isinstance(value, str) and len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return json.loads(value)
    if isinstance(value, str) and "${" in value:
        raise ValueError(f"{VARIABLE} in local.tfvars must hold literals, not the expression {value!r}")
    if isinstance(value, dict):
        return {key: _literal(item) for key, item in value.items() if not key.startswith("__")}
    if isinstance(value, list):
        return [_literal(item) for item in value]
    return value


def create_source_table(client: Any, settings: dict[str, Any]) -> str:
    """Create the source table the settings name (on-demand, the settings' key, a NEW_AND_OLD_IMAGES
    stream) unless it exists; returns its stream's ARN."""
    name = settings["source_table_name"]
    key = settings["key"]
    attributes = [(key["partition_key"], key.get("partition_key_type") or "S", "HASH")]
    if key.get("sort_key"):
        attributes.append((key["sort_key"], key.get("sort_key_type") or "S", "RANGE"))
    try:
        table = client.describe_table(TableName=name)["Table"]
    except client.exceptions.ResourceNotFoundException:
        table = client.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": n, "KeyType": kind} for n, _, kind in attributes],
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t, _ in attributes],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )["TableDescription"]
    return str(table["LatestStreamArn"])


def terraform_value(settings: dict[str, Any], stream_arn: str) -> str:
    """The settings with this stream ARN, as a `-var` value (JSON is HCL expression syntax)."""
    return json.dumps({**settings, "source_stream_arn": stream_arn})
