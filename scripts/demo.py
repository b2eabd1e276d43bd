"""`make demo`: every landed pipeline end to end on this machine, with no cloud and no Docker.

1. packages the functions for this machine's Python (build/local, so the python3.12 zips in build/
   are left alone);
2. starts moto's server on a free loopback port and a throwaway PostgreSQL (the unified database
   and the stand-in source databases; MariaDB too when a pipeline reads from MySQL) in build/demo/;
3. runs the real `terraform apply` of environments/local.tfvars against moto, from a copy of the
   Terraform code under build/demo/ with a provider file pointing every endpoint at moto (what
   tflocal does), so the user's working directory and state are never touched;
4. writes the local servers' credentials into the database secrets Terraform created, starts the
   event router (scripts/localenv) on the applied wiring, and drives each pipeline with sample
   data: migrations first (they create the tables the others load into), then files for the file
   loader, then rows changed in the source for the table sync and its schedule fired;
5. waits until everything is idle and prints what went in, what came out, where, and how long.

`--keep` (`make demo KEEP=1`) leaves it all running until Ctrl-C and prints how to send your own
events. A run killed half way leaves build/demo/ behind; the next run (or `make demo-down`) stops
what it recorded there and starts clean.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3
import psycopg2

from scripts.localdb import MariaDBServer, PostgresServer, free_port, mariadb_server, pg_bin_dir, postgres_server
from scripts.localenv.environment import AwsTarget, DatabaseEndpoint, LocalRewrites
from scripts.localenv.moto_provider import write_provider_override
from scripts.localenv.router import Router
from scripts.localenv.wiring import Wiring, wiring_from_state

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RUN_DIR = REPO_ROOT / "build" / "demo"
LOCAL_BUILD_DIR = REPO_ROOT / "build" / "local"
CACHE_DIR = REPO_ROOT / "build" / "local-cache"
REGION = "us-east-1"
PIPELINES = ("schema_migrations", "file_loader", "table_sync")
IDLE_TIMEOUT_SECONDS = 180


def log(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- stale runs ---------------------------------------------------------------------------------


def process_matches(pid: int, marker: str) -> bool:
    """True when `pid` is alive and its command line contains `marker` (pids get reused)."""
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def stop_stale_run(run_dir: Path) -> None:
    """Stop what a killed run left in `run_dir` (servers it recorded) and remove the directory."""
    if not run_dir.exists():
        return
    log(f"cleaning up a previous run in {run_dir}")
    pids = run_dir / "pids.json"
    if pids.exists():
        with contextlib.suppress(ValueError):
            for name, pid in json.loads(pids.read_text()).items():
                # A previous demo still running (or still cleaning up) would remove this run's files.
                if int(pid) != os.getpid() and process_matches(int(pid), name):
                    os.kill(int(pid), signal.SIGKILL)
    for pidfile in run_dir.glob("pg-*/data/postmaster.pid"):
        data = pidfile.parent
        argv = [str(pg_bin_dir() / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(argv, capture_output=True, check=False)
    for pidfile in run_dir.glob("mariadb-*/mysqld.pid"):
        with contextlib.suppress(ValueError, OSError):
            pid = int(pidfile.read_text().strip())
            if process_matches(pid, "mariadbd") or process_matches(pid, "mysqld"):
                os.kill(pid, signal.SIGKILL)
    shutil.rmtree(run_dir, ignore_errors=True)


def record_pid(run_dir: Path, name: str, pid: int) -> None:
    path = run_dir / "pids.json"
    pids = json.loads(path.read_text()) if path.exists() else {}
    pids[name] = pid
    path.write_text(json.dumps(pids))


# --- the parts ----------------------------------------------------------------------------------


def package_functions(runtime: str) -> dict[str, Any]:
    """Build the zips for this machine's Python into build/local (cached; seconds when unchanged)."""
    argv = [sys.executable, str(REPO_ROOT / "scripts" / "package.py"), "--build-dir", str(LOCAL_BUILD_DIR)]
    result = subprocess.run([*argv, "--runtime", runtime], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"packaging failed:\n{result.stdout}\n{result.stderr}")
    return json.loads((LOCAL_BUILD_DIR / "manifest.json").read_text())


@contextlib.contextmanager
def moto_server(run_dir: Path) -> Iterator[str]:
    """moto's server in its own process (its own interpreter lock, killed by pid if we die)."""
    port = free_port()
    log_file = open(run_dir / "moto.log", "w")  # noqa: SIM115 - closed below, after the process
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    record_pid(run_dir, "moto", process.pid)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for_moto(endpoint, process)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()


def wait_for_moto(endpoint: str, process: subprocess.Popen[bytes]) -> None:
    client = aws_client("sts", endpoint)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with status {process.returncode}")
        with contextlib.suppress(Exception):
            client.get_caller_identity()
            return
        time.sleep(0.2)
    raise RuntimeError("moto server did not answer within 30 s")


def aws_client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


class Terraform:
    """The module's Terraform code copied to `directory` with a provider aimed at moto."""

    def __init__(self, directory: Path, endpoint: str) -> None:
        self.directory = directory
        self.endpoint = endpoint
        self.environment = {
            **os.environ,
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        }
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            self.environment.pop(name, None)
        cli_config = REPO_ROOT / ".terraform-cli" / "terraformrc"
        # An inherited config that is not there would send `terraform init` to the registry.
        if not Path(self.environment.get("TF_CLI_CONFIG_FILE", "")).is_file() and cli_config.exists():
            self.environment["TF_CLI_CONFIG_FILE"] = str(cli_config)
        # Providers are large; a plugin cache outside the run directory makes init a link, not a copy.
        plugin_cache = CACHE_DIR / "terraform-plugins"
        plugin_cache.mkdir(parents=True, exist_ok=True)
        self.environment["TF_PLUGIN_CACHE_DIR"] = str(plugin_cache)

    def prepare(self) -> None:
        self.directory.mkdir(parents=True)
        for path in REPO_ROOT.glob("*.tf"):
            shutil.copy2(path, self.directory / path.name)
        shutil.copytree(
            REPO_ROOT / "modules",
            self.directory / "modules",
            ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"),
        )
        write_provider_override(
            self.directory,
            self.endpoint,
            REGION,
            filename="demo_provider.tf",
            static_credentials=True,
            skip_requesting_account_id=True,
        )

    def run(self, *args: str, log_name: str) -> str:
        """Run terraform with its output streamed to a log in the run directory (follow it there)."""
        argv = ["terraform", f"-chdir={self.directory}", *args]
        log_path = self.directory.parent / f"terraform-{log_name}.log"
        with open(log_path, "w") as log_file:
            result = (
                subprocess.run(
                    argv, stdout=subprocess.PIPE, stderr=log_file, text=True, env=self.environment, check=False
                )
                if log_name == "show"
                else subprocess.run(
                    argv, stdout=log_file, stderr=subprocess.STDOUT, text=True, env=self.environment, check=False
                )
            )
        if result.returncode != 0:
            tail = log_path.read_text()[-6000:]
            raise RuntimeError(f"terraform {args[0]} failed ({result.returncode}), see {log_path}:\n{tail}")
        return result.stdout or ""

    def apply(self, variables: Mapping[str, str]) -> None:
        self.run("init", "-input=false", "-no-color", log_name="init")
        flags = [f"-var={name}={value}" for name, value in variables.items()]
        var_file = REPO_ROOT / "environments" / "local.tfvars"
        self.run(
            "apply", "-auto-approve", "-input=false", "-no-color", f"-var-file={var_file}", *flags, log_name="apply"
        )

    def show(self) -> dict[str, Any]:
        return json.loads(self.run("show", "-json", "-no-color", log_name="show"))


# --- databases ----------------------------------------------------------------------------------


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


# --- the demo environment -----------------------------------------------------------------------


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
    return 'engine      = "mysql"' in text or 'engine = "mysql"' in text


@contextlib.contextmanager
def demo_environment(run_dir: Path, small: bool) -> Iterator[Demo]:
    """Everything up: servers, applied Terraform, secrets, a started router. Torn down on exit."""
    timings: dict[str, float] = {}
    stop_stale_run(run_dir)
    run_dir.mkdir(parents=True)
    record_pid(run_dir, "demo.py", os.getpid())
    with contextlib.ExitStack() as stack:
        started = time.monotonic()
        manifest = package_functions(host_runtime())
        landed = [name for name in PIPELINES if name in manifest["functions"]]
        log(f"packaged {', '.join(landed) or 'nothing'} for {host_runtime()} in {time.monotonic() - started:.1f}s")
        timings["package"] = time.monotonic() - started

        started = time.monotonic()
        endpoint = stack.enter_context(moto_server(run_dir))
        postgres = stack.enter_context(postgres_server(base_dir=str(run_dir)))
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
            **{f"enable_{name}": str(name in landed).lower() for name in PIPELINES},
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


# --- driving the pipelines ----------------------------------------------------------------------


@dataclass
class PipelineReport:
    pipeline: str
    went_in: list[str]
    came_out: list[str]
    where: str
    seconds: float
    numbers: dict[str, Any] = field(default_factory=dict)
    ok: bool = True


def wait_idle(demo: Demo, what: str) -> None:
    if not demo.router.wait_idle(IDLE_TIMEOUT_SECONDS):
        raise RuntimeError(f"{what}: the pipelines did not go idle within {IDLE_TIMEOUT_SECONDS}s")


def bucket_of(demo: Demo, package: str, variable: str) -> str:
    return demo.function_env(package)[variable]


MIGRATIONS = {
    "postgres/0001_create_analytics.sql": "-- transactional: false\nCREATE DATABASE analytics;\n",
    "{db}/0001_staging_tables.sql": """
CREATE SCHEMA IF NOT EXISTS staging;
CREATE TABLE staging.sales (
    sale_id   bigint PRIMARY KEY,
    sold_at   timestamptz NOT NULL,
    store     text NOT NULL,
    sku       text NOT NULL,
    quantity  integer NOT NULL,
    amount    numeric(12, 2) NOT NULL
);
CREATE TABLE staging.customers (
    customer_id bigint PRIMARY KEY,
    name        text NOT NULL,
    email       text,
    country     text,
    updated_at  timestamptz NOT NULL
);
""",
    "{db}/0002_orders.sql": """
CREATE TABLE staging.orders (
    order_id    bigint PRIMARY KEY,
    customer_id bigint NOT NULL,
    status      text NOT NULL,
    amount      numeric(12, 2) NOT NULL,
    updated_at  timestamptz NOT NULL
);
""",
    "analytics/0001_daily_sales.sql": """
CREATE TABLE daily_sales (day date PRIMARY KEY, store_count integer NOT NULL, revenue numeric(14, 2) NOT NULL);
""",
}


def drive_schema_migrations(demo: Demo) -> PipelineReport:
    started = time.monotonic()
    environment = demo.function_env("schema_migrations")
    bucket = environment["MIGRATIONS_BUCKET"]
    database = environment["DB_NAME"]
    s3 = demo.client("s3")
    files = {key.format(db=database): body for key, body in MIGRATIONS.items()}
    # The root database's migrations first: they create the databases the others migrate.
    for key in sorted(files, key=lambda k: (not k.startswith("postgres/"), k)):
        s3.put_object(Bucket=bucket, Key=key, Body=files[key].encode())
        if key.startswith("postgres/"):
            wait_idle(demo, "schema migrations (postgres/)")
    wait_idle(demo, "schema migrations")
    applied = {name: count_migrations(demo, name) for name in ("postgres", database, "analytics")}
    tables = count_query(
        demo, database, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'staging'"
    )
    return PipelineReport(
        pipeline="schema migrations",
        went_in=[f"{len(files)} migration files uploaded to s3://{bucket}/ (postgres/, {database}/, analytics/)"],
        came_out=[
            "applied: " + ", ".join(f"{name} {count}" for name, count in applied.items()),
            f"database 'analytics' created; {tables} tables in {database}.staging",
        ],
        where=f"PostgreSQL {demo.databases.postgres.host}:{demo.databases.postgres.port}",
        seconds=time.monotonic() - started,
        numbers={"files": len(files), "applied": applied, "staging_tables": tables},
        ok=sum(applied.values()) == len(files),
    )


def count_migrations(demo: Demo, database: str) -> int:
    try:
        return count_query(demo, database, "SELECT count(*) FROM _yoyo_migration")
    except psycopg2.Error:
        return 0


def count_query(demo: Demo, database: str, query: str) -> int:
    with contextlib.closing(demo.databases.connect(database)) as conn, conn.cursor() as cur:
        cur.execute(query)
        return int(cur.fetchone()[0])


def sales_csv(first_id: int, rows: int, rng: random.Random) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["sale_id", "sold_at", "store", "sku", "quantity", "amount"])
    start = datetime(2025, 3, 1, tzinfo=UTC)
    for sale_id in range(first_id, first_id + rows):
        sold_at = start + timedelta(seconds=rng.randrange(86400 * 30))
        store = rng.choice(["Lisboa, Baixa", "Porto", 'Faro "Marina"', "Coimbra"])
        quantity = rng.randint(1, 9)
        writer.writerow(
            [
                sale_id,
                sold_at.isoformat(),
                store,
                f"SKU-{rng.randrange(500):04d}",
                quantity,
                f"{quantity * rng.uniform(2, 80):.2f}",
            ]
        )
    return buffer.getvalue().encode()


def customers_jsonl(ids: range, version: int, bad_line: bool) -> bytes:
    lines = [
        json.dumps(
            {
                "customer_id": customer_id,
                "name": f"Conceição {customer_id} v{version}",
                "email": f"c{customer_id}@example.com",
                "country": ["PT", "ES", "FR", "DE"][customer_id % 4],
                "updated_at": f"2025-03-0{version}T10:00:00Z",
            },
            ensure_ascii=False,
        )
        for customer_id in ids
    ]
    if bad_line:
        lines.insert(len(lines) // 2, '{"customer_id": "not a number", "name": ')
    return ("\n".join(lines) + "\n").encode()


def drive_file_loader(demo: Demo) -> PipelineReport:
    started = time.monotonic()
    environment = demo.function_env("file_loader")
    bucket = environment["SOURCE_BUCKET"]
    database = environment["DB_NAME"]
    rng = random.Random(7)
    files, rows = (3, 200) if demo.small else (8, 5000)
    s3 = demo.client("s3")
    sent_sales = 0
    for index in range(files):
        body = sales_csv(index * rows + 1, rows, rng)
        if index % 2:
            s3.put_object(Bucket=bucket, Key=f"sales/2025/03/day {index:02d}.csv", Body=body)
        else:
            key = f"sales/2025/03/store+{index:02d}.csv"
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        sent_sales += rows
    customers = 50 if demo.small else 2000
    first = range(1, customers + 1)
    updated = range(customers // 2, customers + customers // 2 + 1)
    s3.put_object(Bucket=bucket, Key="customers/2025-03-01.jsonl", Body=customers_jsonl(first, 1, False))
    wait_idle(demo, "file loader (first customers file)")
    s3.put_object(
        Bucket=bucket,
        Key="customers/2025-03-02.jsonl.gz",
        Body=gzip.compress(customers_jsonl(updated, 2, True)),
    )
    wait_idle(demo, "file loader")
    loaded_sales = count_query(demo, database, "SELECT count(*) FROM staging.sales")
    loaded_customers = count_query(demo, database, "SELECT count(*) FROM staging.customers")
    updated_customers = count_query(demo, database, "SELECT count(*) FROM staging.customers WHERE name LIKE '%v2'")
    expected_customers = len(set(first) | set(updated))
    dlq = dead_letters(demo, "file_loader")
    return PipelineReport(
        pipeline="file loader",
        went_in=[
            f"{files} CSV files, {sent_sales} sales rows -> s3://{bucket}/sales/",
            f"2 JSON-lines files (one gzip, one malformed line), {len(first) + len(updated)} customer records "
            f"-> s3://{bucket}/customers/",
        ],
        came_out=[
            f"staging.sales: {loaded_sales} rows (append)",
            f"staging.customers: {loaded_customers} rows, {updated_customers} updated by the second file (upsert)",
            f"dead-letter queue: {dlq} messages",
        ],
        where=f"PostgreSQL database {database}",
        seconds=time.monotonic() - started,
        numbers={
            "sales_sent": sent_sales,
            "sales_loaded": loaded_sales,
            "customers_expected": expected_customers,
            "customers_loaded": loaded_customers,
            "customers_updated": updated_customers,
            "dead_letters": dlq,
        },
        ok=loaded_sales == sent_sales
        and loaded_customers == expected_customers
        and updated_customers == len(updated)
        and dlq == 0,
    )


def dead_letters(demo: Demo, package: str) -> int:
    """Messages in the dead-letter queues of the function's queue mappings."""
    spec = demo.function_spec(package)
    sqs = demo.client("sqs")
    total = 0
    for mapping in demo.wiring.queues:
        if mapping.function != spec.name:
            continue
        url = sqs.get_queue_url(QueueName=mapping.queue_name)["QueueUrl"]
        redrive = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]
        if "RedrivePolicy" in redrive:
            dlq_name = json.loads(redrive["RedrivePolicy"])["deadLetterTargetArn"].rsplit(":", 1)[-1]
            dlq_url = sqs.get_queue_url(QueueName=dlq_name)["QueueUrl"]
            attributes = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])
            total += int(attributes["Attributes"]["ApproximateNumberOfMessages"])
    return total


def drive_table_sync(demo: Demo) -> PipelineReport:
    started = time.monotonic()
    environment = demo.function_env("table_sync")
    source_db = environment["SOURCE_DB_NAME"]
    target_db = environment["DB_NAME"]
    tables = json.loads(environment["SYNC_TABLES"])
    source_table = tables[0].get("source") or "public.orders"
    target_table = tables[0]["target"]
    rows = 300 if demo.small else 20000
    with contextlib.closing(demo.databases.connect(source_db)) as conn, conn.cursor() as cur:
        cur.execute(
            f"CREATE TABLE {source_table} (order_id bigint PRIMARY KEY, customer_id bigint NOT NULL, "
            "status text NOT NULL, amount numeric(12,2) NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())"
        )
        cur.execute(
            f"INSERT INTO {source_table} (order_id, customer_id, status, amount, updated_at) "
            "SELECT g, 1 + mod(g, 500), 'new', round(mod(g, 997) * 1.37, 2), now() - interval '2 hours' "
            "FROM generate_series(1, %s) g",
            (rows,),
        )
        conn.commit()
    schedule = next(s.name for s in demo.wiring.schedules if s.function == demo.function_spec("table_sync").name)
    first = demo.router.fire_schedule(schedule)
    first_count = count_query(demo, target_db, f"SELECT count(*) FROM {target_table}")
    changed, added = rows // 10, rows // 20
    with contextlib.closing(demo.databases.connect(source_db)) as conn, conn.cursor() as cur:
        cur.execute(
            f"UPDATE {source_table} SET status = 'shipped', updated_at = now() WHERE order_id <= %s", (changed,)
        )
        cur.execute(
            f"INSERT INTO {source_table} (order_id, customer_id, status, amount) "
            "SELECT g, 1 + mod(g, 500), 'new', 10 FROM generate_series(%s, %s) g",
            (rows + 1, rows + added),
        )
        conn.commit()
    second = demo.router.fire_schedule(schedule)
    total = count_query(demo, target_db, f"SELECT count(*) FROM {target_table}")
    shipped = count_query(demo, target_db, f"SELECT count(*) FROM {target_table} WHERE status = 'shipped'")
    return PipelineReport(
        pipeline="table sync",
        went_in=[
            f"{rows} rows in stand-in source {source_db}.{source_table}, schedule '{schedule}' fired",
            f"then {changed} rows updated and {added} inserted, schedule fired again",
        ],
        came_out=[
            f"run 1: {first_count} rows in {target_table} ({'ok' if first.ok else first.error_type})",
            f"run 2: {total} rows, {shipped} with the updated status ({'ok' if second.ok else second.error_type})",
        ],
        where=f"PostgreSQL database {target_db}",
        seconds=time.monotonic() - started,
        numbers={
            "source_rows": rows,
            "first_run_rows": first_count,
            "changed": changed,
            "added": added,
            "total_rows": total,
            "shipped": shipped,
        },
        ok=first.ok and second.ok and first_count == rows and total == rows + added and shipped == changed,
    )


DRIVERS: dict[str, Callable[[Demo], PipelineReport]] = {
    "schema_migrations": drive_schema_migrations,
    "file_loader": drive_file_loader,
    "table_sync": drive_table_sync,
}


def drive_all(demo: Demo) -> list[PipelineReport]:
    reports = []
    for package in PIPELINES:
        if demo.has(package):
            log(f"driving {package} ...")
            reports.append(DRIVERS[package](demo))
    return reports


def format_report(reports: list[PipelineReport], demo: Demo, total_seconds: float) -> str:
    lines = ["", "=" * 78, "Local demo report", "=" * 78]
    for report in reports:
        status = "ok" if report.ok else "CHECK FAILED"
        lines.append(f"{report.pipeline}  [{status}, {report.seconds:.1f}s]  -> {report.where}")
        lines += [f"  in:  {item}" for item in report.went_in]
        lines += [f"  out: {item}" for item in report.came_out]
    lines.append("-" * 78)
    lines.append("invocations (local sandboxes from build/local/*.zip):")
    for name, stats in demo.router.stats.items():
        if stats.invocations:
            lines.append(
                f"  {name}: {stats.invocations} invocations, {stats.records} records, {stats.errors} errors, "
                f"max {stats.max_ms:.0f} ms, max memory {stats.max_memory_mb:.0f} MB"
            )
    timing = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in demo.timings.items())
    lines.append(f"total {total_seconds:.0f}s ({timing})")
    lines.append("=" * 78)
    return "\n".join(lines)


def keep_running_help(demo: Demo) -> str:
    pg = demo.databases.postgres
    py = ".venv/bin/python"
    return f"""
Everything stays up until Ctrl-C.
  AWS (moto):   {demo.endpoint}    e.g. AWS_ENDPOINT_URL={demo.endpoint} aws s3 ls
  PostgreSQL:   psql "{pg.dsn()}"
  Terraform:    {demo.terraform_dir} (state there; function logs in {demo.run_dir / "logs"})
Send your own events:
  upload a file:     AWS_ENDPOINT_URL={demo.endpoint} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \\
                     aws s3 cp my.csv s3://<file loader bucket>/sales/my.csv
  invoke directly:   {py} scripts/invoke_local.py table_sync --demo --event my-event.json
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="leave everything running until Ctrl-C")
    parser.add_argument("--small", action="store_true", help="small sample data (what make test runs)")
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    parser.add_argument("--down", action="store_true", help="only clean up what a previous run left behind")
    parser.add_argument("--no-drive", action="store_true", help="bring everything up but send no sample data")
    parser.add_argument("--report-json", type=Path, help="also write the report as JSON here")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.down:
        stop_stale_run(args.run_dir)
        return 0
    started = time.monotonic()
    try:
        with demo_environment(args.run_dir, args.small) as demo:
            reports = [] if args.no_drive else drive_all(demo)
            print(format_report(reports, demo, time.monotonic() - started), flush=True)
            if args.report_json:
                args.report_json.write_text(json.dumps([asdict(report) for report in reports], indent=2))
            if args.keep:
                print(keep_running_help(demo), flush=True)
                with contextlib.suppress(KeyboardInterrupt):
                    signal.pause()
            failed = [report.pipeline for report in reports if not report.ok]
    finally:
        shutil.rmtree(args.run_dir, ignore_errors=True)
    if failed:
        print(f"checks failed for: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
