"""Fixtures of the Terraform checks: the CLI config, a scratch copy of the Terraform tree, the
packages built by `make package`, and parallel validate / plan runs shared by the tests."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.terraform import tfkit


@pytest.fixture(scope="session")
def tf_env() -> dict[str, str]:
    """terraform's environment: TF_CLI_CONFIG_FILE written by scripts/terraform_cli_config.sh
    (even when pytest runs without make), a plugin cache, fake AWS credentials."""
    return tfkit.terraform_env()


@pytest.fixture(scope="session")
def tf_tree(tmp_path_factory: pytest.TempPathFactory, tf_env: dict[str, str]) -> Path:
    """A scratch copy of the Terraform sources, initialised once at the root."""
    tree = tfkit.copy_tree(tmp_path_factory.mktemp("tf-tree"))
    tfkit.init(tree, tf_env)
    return tree


@pytest.fixture(scope="session")
def build_dir() -> Path:
    """The real packages: build/manifest.json and the zips it names (`make test` builds them); the
    plans refuse a manifest without a package some enabled pipeline needs.

    BUILD_DIR (the Makefile's variable, relative to the repository) selects another build output.
    """
    build = (tfkit.REPO / os.environ.get("BUILD_DIR", "build")).resolve()
    manifest_path = build / "manifest.json"
    if not manifest_path.is_file():
        pytest.fail(f"{manifest_path} is missing: run `make package` (make test and make tf-check do)")
    manifest = json.loads(manifest_path.read_text())
    missing = [] if manifest.get("functions") else ["every function"]
    missing += [
        f"{name} ({entry['zip']})"
        for name, entry in {**manifest.get("functions", {}), **manifest.get("layers", {})}.items()
        if not (build / entry["zip"]).is_file()
    ]
    if missing:
        pytest.fail(f"{manifest_path} lacks packages: {', '.join(missing)}; run `make package`")
    return build


@pytest.fixture(scope="session")
def validated(tf_tree: Path, tf_env: dict[str, str]) -> dict[str, tfkit.Result]:
    """`init -backend=false` + `validate` of the root, every module and every example, three at a
    time (each run is mostly one CPU-bound provider process)."""

    def run(relative: str) -> tfkit.Result:
        directory = tf_tree / relative
        init = tfkit.terraform(directory, "init", "-backend=false", "-input=false", "-no-color", env=tf_env)
        if init.returncode != 0:
            return init
        return tfkit.terraform(directory, "validate", "-no-color", env=tf_env)

    dirs = tfkit.terraform_dirs()
    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(dirs, pool.map(run, dirs), strict=True))


ENVIRONMENTS = sorted(p.stem for p in (tfkit.REPO / "environments").glob("*.tfvars"))


@pytest.fixture(scope="session")
def plan_root(tf_tree: Path, tf_env: dict[str, str]) -> Path:
    """A copy of the root module with an offline provider (fake credentials, no API call)."""
    root = tf_tree.parent / "plan-root"
    tfkit.copy_tree(root)
    tfkit.write_offline_provider(root)
    tfkit.init(root, tf_env)
    return root


def _plan_json(
    plan_root: Path, tf_env: dict[str, str], build_dir: Path, name: str, var_files: list[str]
) -> dict[str, Any]:
    """`plan -refresh=false` of the root module with these -var-files (later ones override whole
    variables), offline with fake credentials; the plan's JSON is saved as build/plans/<name>.json."""
    out_dir = build_dir / "plans"
    out_dir.mkdir(exist_ok=True)
    plan_file = f"{name}.tfplan"
    tfkit.terraform(plan_root, *tfkit.plan_args(build_dir, var_files), f"-out={plan_file}", env=tf_env).check()
    shown = tfkit.terraform(plan_root, "show", "-json", plan_file, env=tf_env).check()
    (out_dir / f"{name}.json").write_text(shown.stdout)
    return json.loads(shown.stdout)


@pytest.fixture(scope="session")
def plans(plan_root: Path, tf_env: dict[str, str], build_dir: Path) -> dict[str, dict[str, Any]]:
    """`plan -refresh=false` of the root module for every environments/*.tfvars, offline with fake
    credentials; each plan's JSON is saved as build/plans/<environment>.json."""

    def plan(environment: str) -> dict[str, Any]:
        return _plan_json(plan_root, tf_env, build_dir, environment, [f"environments/{environment}.tfvars"])

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(ENVIRONMENTS, pool.map(plan, ENVIRONMENTS), strict=True))


PIPELINE_SECRETS_TFVARS = Path(__file__).parent / "fixtures" / "pipeline_secrets.tfvars"


@pytest.fixture(scope="session")
def pipeline_secrets_plan(plan_root: Path, tf_env: dict[str, str], build_dir: Path) -> dict[str, Any]:
    """The prod environment (RDS Proxy on) with a least-privilege database secret per loading
    pipeline (fixtures/pipeline_secrets.tfvars); saved as build/plans/prod-pipeline-secrets.json."""
    return _plan_json(
        plan_root,
        tf_env,
        build_dir,
        "prod-pipeline-secrets",
        ["environments/prod.tfvars", str(PIPELINE_SECRETS_TFVARS)],
    )
