"""Everything up for a run: servers, the applied Terraform, secrets and the event router."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg2

from scripts.demo.processes import (
    CACHE_DIR,
    DEMO_PROCESS,
    LOCAL_BUILD_DIR,
    REGION,
    REPO_ROOT,
    aws_client,
    log,
    moto_server,
    package_functions,
    record_pid,
    stop_stale_run,
)
from scripts.demo.terraform import Terraform
from scripts.localdb import MariaDBServer, PostgresServer, mariadb_server, postgres_server
from scripts.localenv.environment import AwsTarget, DatabaseEndpoint, LocalRewrites
from scripts.localenv.router import Router
from scripts.localenv.wiring import Wiring, wiring_from_state


@dataclass
class Databases:
    postgres: PostgresServer
    mariadb: MariaDBServer | None = None

    def server_for(self, engine: str) -> PostgresServer | MariaDBServer:
        if engine == "mysql":
            if self.mariadb is None:
                raise RuntimeError("a pipeline reads from MySQL but MariaDB is not running")
            return self.mariadb
        if engine != "postgresql":
            # SQL Server has no local stand-in here; the demo replaces it with PostgreSQL.
            return self.postgres
        return self.postgres

    def create_database(self, engine: str, name: str) -> None:
        if engine == "mysql":
            assert self.mariadb is not None
            self.mariadb.sql(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
            return
        exists = self.postgres.psql("postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
        if not exists.strip():
            self.postgres.psql("postgres", "-c", f'CREATE DATABASE "{name}"')

    def connect(self, database: str) -> Any:
        return psycopg2.connect(self.postgres.dsn(database))


def database_prefixes(environment: Mapping[str, str]) -> list[str]:
    return [name[: -len("_SECRET_ARN")] for name in environment if name.endswith("_SECRET_ARN")]


def wire_databases(wiring: Wiring, databases: Databases, endpoint: str) -> LocalRewrites:
    """Create each configured database on its local server and put that server's credentials into
    the secret Terraform made for it; returns the endpoint rewrites for the router."""
    secrets = aws_client("secretsmanager", endpoint)
    rewrites: dict[str, DatabaseEndpoint] = {}
    done: set[str] = set()
    for spec in wiring.functions.values():
        for prefix in database_prefixes(spec.environment):
            engine = spec.environment.get(f"{prefix}_ENGINE", "postgresql")
            server = databases.server_for(engine)
            name = spec.environment.get(f"{prefix}_NAME") or "postgres"
            databases.create_database("mysql" if isinstance(server, MariaDBServer) else "postgresql", name)
            rewrites[prefix] = DatabaseEndpoint(server.host, server.port)
            arn = spec.environment[f"{prefix}_SECRET_ARN"]
            if arn not in done:
                put_secret(secrets, arn, server.secret(name))
                done.add(arn)
    return LocalRewrites(databases=rewrites)


def drop_tls_only_statements(endpoint: str) -> list[str]:
    """Remove the buckets' TLS-only Deny statements from the emulator; returns the buckets changed.

    moto 5.2 evaluates a bucket policy's Deny statements without their conditions, so
    `aws:SecureTransport = false` denies every object request, even over HTTPS. AWS evaluates the
    condition, and the statement stays in the Terraform code and state; only moto's copy changes.
    """
    s3 = aws_client("s3", endpoint)
    changed = []
    for bucket in s3.list_buckets()["Buckets"]:
        name = bucket["Name"]
        try:
            policy = json.loads(s3.get_bucket_policy(Bucket=name)["Policy"])
        except s3.exceptions.ClientError:
            continue
        statements = policy.get("Statement", [])
        kept = [s for s in statements if "aws:SecureTransport" not in json.dumps(s.get("Condition", {}))]
        if len(kept) == len(statements):
            continue
        if kept:
            s3.put_bucket_policy(Bucket=name, Policy=json.dumps({**policy, "Statement": kept}))
        else:
            s3.delete_bucket_policy(Bucket=name)
        changed.append(name)
    return changed


def put_secret(client: Any, arn: str, value: Mapping[str, Any]) -> None:
    try:
        client.put_secret_value(SecretId=arn, SecretString=json.dumps(value))
    except client.exceptions.ResourceNotFoundException:
        # A secret managed by RDS exists only in AWS: create it under the name in its ARN.
        name = arn.split(":secret:", 1)[1].rsplit("-", 1)[0]
        client.create_secret(Name=name, SecretString=json.dumps(value))


@dataclass
class Demo:
    run_dir: Path
    endpoint: str
    databases: Databases
    wiring: Wiring
    router: Router
    terraform_dir: Path
    small: bool
    timings: dict[str, float] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        return aws_client(service, self.endpoint)

    def function_env(self, package: str) -> Mapping[str, str]:
        return self.function_spec(package).environment

    def function_spec(self, package: str) -> Any:
        for spec in self.wiring.functions.values():
            if spec.handler.split(".")[0] == package:
                return spec
        raise KeyError(package)

    def has(self, package: str) -> bool:
        return any(spec.handler.split(".")[0] == package for spec in self.wiring.functions.values())


def host_runtime() -> str:
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


def needs_mariadb() -> bool:
    text = (REPO_ROOT / "environments" / "local.tfvars").read_text()
    return re.search(r'^\s*engine\s*=\s*"mysql"', text, re.MULTILINE) is not None


# What a pipeline sets up in the emulator before `terraform apply` (the DynamoDB migration's source
# table, which Terraform does not own): (moto endpoint, the pipelines deployed) -> Terraform variables.
BeforeApply = Callable[[str, Sequence[str]], Mapping[str, str]]


@contextlib.contextmanager
def demo_environment(
    run_dir: Path, small: bool, pipelines: Sequence[str], before_apply: BeforeApply | None = None
) -> Iterator[Demo]:
    """Everything up: servers, applied Terraform, secrets, a started router. Torn down on exit.
    `pipelines`: the packages to deploy, when their function has landed (lambda_src/<name>)."""
    timings: dict[str, float] = {}
    stop_stale_run(run_dir)
    run_dir.mkdir(parents=True)
    record_pid(run_dir, DEMO_PROCESS, os.getpid())
    with contextlib.ExitStack() as stack:
        started = time.monotonic()
        manifest = package_functions(host_runtime())
        landed = [name for name in pipelines if name in manifest["functions"]]
        log(f"packaged {', '.join(landed) or 'nothing'} for {host_runtime()} in {time.monotonic() - started:.1f}s")
        timings["package"] = time.monotonic() - started

        started = time.monotonic()
        endpoint = stack.enter_context(moto_server(run_dir))
        # wal_level = logical: the CDC lake's DMS stand-in decodes the source database's WAL.
        postgres = stack.enter_context(postgres_server(base_dir=str(run_dir), settings={"wal_level": "logical"}))
        mariadb = stack.enter_context(mariadb_server(base_dir=str(run_dir))) if needs_mariadb() else None
        databases = Databases(postgres, mariadb)
        log(f"moto at {endpoint}, PostgreSQL at {postgres.host}:{postgres.port} in {time.monotonic() - started:.1f}s")
        timings["servers"] = time.monotonic() - started

        started = time.monotonic()
        terraform = Terraform(run_dir / "terraform", endpoint)
        terraform.prepare()
        variables = {
            "build_dir": str(LOCAL_BUILD_DIR),
            "lambda_runtime": host_runtime(),
            **{f"enable_{name}": str(name in landed).lower() for name in pipelines},
            **(before_apply(endpoint, landed) if before_apply else {}),
        }
        log("terraform apply -var-file=environments/local.tfvars (against moto) ...")
        terraform.apply(variables)
        state = terraform.show()
        (run_dir / "state.json").write_text(json.dumps(state))
        wiring = wiring_from_state(state, terraform.directory)
        timings["terraform"] = time.monotonic() - started
        log(
            f"applied in {timings['terraform']:.1f}s: {len(wiring.functions)} functions, "
            f"{len(wiring.queues)} queue mappings, {len(wiring.topics)} topic subscriptions, "
            f"{len(wiring.schedules)} schedules"
        )

        relaxed = drop_tls_only_statements(endpoint)
        if relaxed:
            log(f"moto cannot evaluate the TLS-only bucket policy conditions; lifted them in the emulator: {relaxed}")
        rewrites = wire_databases(wiring, databases, endpoint)
        router = Router(
            wiring,
            AwsTarget(endpoint_url=endpoint, region=REGION),
            cache_dir=CACHE_DIR / "sandboxes",
            log_dir=run_dir / "logs",
            rewrites=rewrites,
            max_sandboxes=2,
        )
        stack.callback(router.stop)
        router.start()
        write_run_file(run_dir, endpoint, terraform.directory, rewrites)
        yield Demo(run_dir, endpoint, databases, wiring, router, terraform.directory, small, timings)


def write_run_file(run_dir: Path, endpoint: str, terraform_dir: Path, rewrites: LocalRewrites) -> None:
    """What `invoke_local.py --demo` and `local_router.py --demo` need to join the running demo."""
    settings = {
        "endpoint_url": endpoint,
        "terraform_dir": str(terraform_dir),
        "state_json": str(run_dir / "state.json"),
        "databases": {prefix: asdict(endpoint) for prefix, endpoint in rewrites.databases.items()},
    }
    (run_dir / "run.json").write_text(json.dumps(settings, indent=2))
