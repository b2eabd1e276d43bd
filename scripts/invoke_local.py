"""Invoke one function locally from its packaged zip, the `sam local invoke` of this module.

    # a function of the running demo (`make demo KEEP=1`): its deployed environment, moto, local DBs
    .venv/bin/python scripts/invoke_local.py schema_migrations --demo --event event.json

    # a function described by a Terraform working directory's state
    .venv/bin/python scripts/invoke_local.py file_loader --terraform-dir path/to/root --event event.json

    # straight from build/ with a hand-made environment
    .venv/bin/python scripts/invoke_local.py file_loader --build-dir build/local \\
        --env DB_HOST=127.0.0.1 --env DB_NAME=app --env DB_SECRET_ARN=arn:... --event - < event.json

The handler runs in a sandbox process that sees only the unpacked zip (plus layers and the SDK the
Lambda runtime provides), with the function's timeout and memory size enforced. The result is
printed to stdout as JSON; the function's logs go to stderr. Exit status: 0 on success, 1 on a
function error (the error document is printed), 2 on a usage problem.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.localenv.environment import AwsTarget, DatabaseEndpoint, LocalRewrites
from scripts.localenv.sandbox import Package, Sandbox
from scripts.localenv.wiring import FunctionSpec, Wiring, WiringError, terraform_show, wiring_from_state

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_RUN_FILE = REPO_ROOT / "build" / "demo" / "run.json"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("function", help="function name as deployed (or the package name with --build-dir)")
    parser.add_argument("--event", default="-", help="JSON event file, '-' for stdin (default)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--demo", action="store_true", help=f"use the running demo ({DEMO_RUN_FILE})")
    source.add_argument("--terraform-dir", type=Path, help="Terraform working directory holding the applied state")
    source.add_argument("--state-json", type=Path, help="a saved `terraform show -json` document")
    source.add_argument("--build-dir", type=Path, help="run <build-dir>/<function>.zip from its manifest.json")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="set or override a variable")
    parser.add_argument(
        "--db",
        action="append",
        default=[],
        metavar="PREFIX=HOST:PORT",
        help="rewrite a database endpoint, e.g. DB=127.0.0.1:5432 or SOURCE_DB=127.0.0.1:3306",
    )
    parser.add_argument("--endpoint-url", help="AWS endpoint for the function's SDK calls (moto)")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--timeout", type=int, help="override the function timeout (seconds)")
    parser.add_argument("--memory", type=int, help="override the memory size (MB)")
    parser.add_argument("--cache-dir", type=Path, default=REPO_ROOT / "build" / "local-cache", help="unzip cache")
    return parser.parse_args(argv)


def read_event(name: str) -> Any:
    text = sys.stdin.read() if name == "-" else Path(name).read_text()
    return json.loads(text) if text.strip() else {}


def parse_pairs(pairs: list[str], what: str) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name:
            raise SystemExit(f"invoke_local: {what} must look like NAME=VALUE, got {pair!r}")
        parsed[name] = value
    return parsed


def parse_databases(pairs: list[str]) -> dict[str, DatabaseEndpoint]:
    endpoints: dict[str, DatabaseEndpoint] = {}
    for prefix, address in parse_pairs(pairs, "--db").items():
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise SystemExit(f"invoke_local: --db {prefix} must be HOST:PORT, got {address!r}")
        endpoints[prefix] = DatabaseEndpoint(host, int(port))
    return endpoints


def spec_from_build_dir(function: str, build_dir: Path, environment: Mapping[str, str]) -> FunctionSpec:
    manifest_path = build_dir / "manifest.json"
    if not manifest_path.is_file():
        raise SystemExit(f"invoke_local: {manifest_path} not found: run make package BUILD_DIR={build_dir}")
    manifest = json.loads(manifest_path.read_text())
    entry = manifest.get("functions", {}).get(function)
    if entry is None:
        known = ", ".join(sorted(manifest.get("functions", {})))
        raise SystemExit(f"invoke_local: {manifest_path} has no function {function!r} (has: {known})")
    return FunctionSpec(
        name=function,
        handler=entry["handler"],
        zip_path=build_dir / entry["zip"],
        runtime=manifest.get("runtime", ""),
        timeout=60,
        environment=dict(environment),
    )


def demo_settings() -> dict[str, Any]:
    if not DEMO_RUN_FILE.is_file():
        raise SystemExit("invoke_local: no running demo: start one with `make demo KEEP=1`")
    return json.loads(DEMO_RUN_FILE.read_text())


def resolve(args: argparse.Namespace) -> tuple[FunctionSpec, AwsTarget, LocalRewrites]:
    overrides = parse_pairs(args.env, "--env")
    databases = parse_databases(args.db)
    endpoint = args.endpoint_url
    wiring: Wiring | None = None
    if args.demo:
        settings = demo_settings()
        endpoint = endpoint or settings["endpoint_url"]
        databases = {
            **{prefix: DatabaseEndpoint(**value) for prefix, value in settings["databases"].items()},
            **databases,
        }
        wiring = wiring_from_state(
            json.loads(Path(settings["state_json"]).read_text()), Path(settings["terraform_dir"])
        )
    elif args.terraform_dir is not None:
        wiring = wiring_from_state(terraform_show(args.terraform_dir), args.terraform_dir)
    elif args.state_json is not None:
        wiring = wiring_from_state(json.loads(args.state_json.read_text()), args.state_json.parent)
    if wiring is not None:
        spec = wiring.function(resolve_name(wiring, args.function))
    else:
        spec = spec_from_build_dir(args.function, args.build_dir, overrides)
    if args.timeout:
        spec = replace(spec, timeout=args.timeout)
    if args.memory:
        spec = replace(spec, memory_mb=args.memory)
    if not endpoint:
        raise SystemExit("invoke_local: --endpoint-url is required (where the function's AWS calls go)")
    aws = AwsTarget(endpoint_url=endpoint, region=args.region)
    return spec, aws, LocalRewrites(databases=databases, overrides={"*": overrides})


def resolve_name(wiring: Wiring, name: str) -> str:
    """A deployed name, or a package name such as `file_loader` matching one function's handler."""
    if name in wiring.functions:
        return name
    matches = [spec.name for spec in wiring.functions.values() if spec.handler.split(".")[0] == name]
    if len(matches) == 1:
        return matches[0]
    raise WiringError(f"no function {name!r}; deployed: {', '.join(sorted(wiring.functions))}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        spec, aws, rewrites = resolve(args)
    except WiringError as exc:
        print(f"invoke_local: {exc}", file=sys.stderr)
        return 2
    event = read_event(args.event)
    package = Package.prepare(spec, args.cache_dir, aws, rewrites)
    sandbox = Sandbox(package, sys.stderr)
    try:
        invocation = sandbox.invoke(event)
    finally:
        sandbox.stop()
    print(json.dumps(invocation.result if invocation.ok else invocation.error, indent=2, default=str))
    print(
        f"{spec.name}: {'ok' if invocation.ok else invocation.error_type} in {invocation.duration_ms:.0f} ms"
        f" (init {invocation.init_ms or 0:.0f} ms, max memory {invocation.max_memory_mb or 0:.0f} MB"
        f" of {spec.memory_mb} MB)",
        file=sys.stderr,
    )
    return 0 if invocation.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
