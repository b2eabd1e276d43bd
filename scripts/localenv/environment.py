"""The environment a local sandbox runs with: Lambda's reserved variables, the function's own
configuration from Terraform, and the local rewrites (AWS endpoint -> moto, database endpoints ->
the local servers, `/opt` -> the unpacked layers)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from scripts.localenv.wiring import FunctionSpec


@dataclass(frozen=True)
class AwsTarget:
    """Where the sandboxes' AWS SDK calls go: moto's server, with fake credentials."""

    endpoint_url: str
    region: str = "us-east-1"
    account_id: str = "123456789012"
    access_key_id: str = "testing"
    secret_access_key: str = "testing"

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": "testing",
            # Account-specific endpoints would send DynamoDB calls past the moto endpoint.
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        }


@dataclass(frozen=True)
class DatabaseEndpoint:
    host: str
    port: int


@dataclass(frozen=True)
class LocalRewrites:
    """How deployed configuration maps onto this machine.

    `databases` maps a variable prefix (`DB`, `SOURCE_DB`, as in docs/contracts.md) to the local
    server that stands in for it; `overrides` sets variables outright, per function name or for
    every function under the key `*`.
    """

    databases: Mapping[str, DatabaseEndpoint] = field(default_factory=dict)
    overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def rewrite_databases(environment: Mapping[str, str], databases: Mapping[str, DatabaseEndpoint]) -> dict[str, str]:
    """Point every configured database (a prefix with a `_SECRET_ARN` or `_HOST`) at its local server."""
    rewritten = dict(environment)
    for prefix, endpoint in databases.items():
        if f"{prefix}_SECRET_ARN" in environment or f"{prefix}_HOST" in environment:
            rewritten[f"{prefix}_HOST"] = endpoint.host
            rewritten[f"{prefix}_PORT"] = str(endpoint.port)
    return rewritten


def rewrite_opt(environment: Mapping[str, str], opt_dir: Path | None) -> dict[str, str]:
    """Layers unpack under /opt on Lambda; locally they unpack into `opt_dir`."""
    if opt_dir is None:
        return dict(environment)
    return {
        name: str(opt_dir) + value[len("/opt") :] if value == "/opt" or value.startswith("/opt/") else value
        for name, value in environment.items()
    }


def lambda_environment(
    spec: FunctionSpec,
    task_dir: Path,
    opt_dir: Path | None,
    aws: AwsTarget,
    rewrites: LocalRewrites,
) -> dict[str, str]:
    """The complete environment of one sandbox: nothing is inherited from the caller's shell."""
    library_path = [str(opt_dir / "lib")] if opt_dir else []
    reserved = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "LD_LIBRARY_PATH": ":".join([*library_path, "/lib64", "/usr/lib64"]),
        "LAMBDA_TASK_ROOT": str(task_dir),
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime or 'python3.11'}",
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
        # The task directory is read-only on Lambda; keep the unpacked zips free of bytecode files.
        "PYTHONDONTWRITEBYTECODE": "1",
        **aws.environment(),
    }
    environment = rewrite_opt(spec.environment, opt_dir)
    environment = rewrite_databases(environment, rewrites.databases)
    environment.update(reserved)
    environment.update(rewrites.overrides.get("*", {}))
    environment.update(rewrites.overrides.get(spec.name, {}))
    return environment
