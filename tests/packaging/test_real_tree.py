"""scripts/package.py over the real lambda_src/ and its real pinned requirements."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.packaging.conftest import REPO_ROOT, Build, run_package

LAMBDA_SRC = REPO_ROOT / "lambda_src"
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "six", "python_dateutil"}
VENV_SITE = Path(next(p for p in sys.path if p.endswith("site-packages")))


def source_files(package: Path) -> set[str]:
    return {
        f"{package.name}/{p.relative_to(package).as_posix()}"
        for p in package.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and p.suffix != ".pyc"
        and p.name != "requirements.txt"
        and not any(part.startswith(".") for part in p.relative_to(package).parts)
    }


def declared(function_dir: Path) -> set[str]:
    path = function_dir / "requirements.txt"
    lines = path.read_text().splitlines() if path.is_file() else []
    names = (re.split(r"[=<>\[; ]", line.strip(), maxsplit=1)[0] for line in lines if line.strip())
    return {name.lower().replace("-", "_") for name in names}


def dist_names(names: list[str]) -> set[str]:
    tops = {n.split("/")[0] for n in names}
    return {t.removesuffix(".dist-info").rsplit("-", 1)[0].lower() for t in tops if t.endswith(".dist-info")}


@pytest.fixture(scope="module")
def real_build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    work = tmp_path_factory.mktemp("real")
    return run_package(LAMBDA_SRC, work / "build", cache_dir=work / "cache")


def test_real_tree_packages_every_function_with_exactly_its_own_code(real_build: Build) -> None:
    functions = sorted(p.parent.name for p in LAMBDA_SRC.glob("*/handler.py") if p.parent.name != "pipeline_common")
    manifest = real_build.manifest
    assert sorted(manifest["functions"]) == functions
    assert manifest["runtime"] == "python3.12" and manifest["architecture"] == "x86_64"
    for name in functions:
        names = real_build.names(f"{name}.zip")
        ours = {n for n in names if n.startswith((f"{name}/", "pipeline_common/")) and not n.endswith("/")}
        assert ours == source_files(LAMBDA_SRC / name) | source_files(LAMBDA_SRC / "pipeline_common")
        other_functions = {p.name for p in LAMBDA_SRC.iterdir() if p.is_dir()} - {name, "pipeline_common"}
        assert not {n.split("/")[0] for n in names} & other_functions
        assert declared(LAMBDA_SRC / name) <= dist_names(names)
        assert not dist_names(names) & RUNTIME_PROVIDED
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def stub_tree(root: Path) -> Path:
    """Every real function's requirements.txt with a stub handler, for handlers not written yet."""
    src = root / "lambda_src"
    (src / "pipeline_common").mkdir(parents=True)
    (src / "pipeline_common" / "__init__.py").write_text("")
    for requirements in sorted(LAMBDA_SRC.glob("*/requirements.txt")):
        package = src / requirements.parent.name
        package.mkdir()
        (package / "handler.py").write_text("def handler(event, context):\n    return {}\n")
        (package / "requirements.txt").write_bytes(requirements.read_bytes())
    return src


def test_real_requirements_install_as_python312_wheels(tmp_path: Path, shared_cache: Path) -> None:
    build = run_package(stub_tree(tmp_path), tmp_path / "build", cache_dir=shared_cache)
    extensions: dict[str, list[str]] = {}
    for requirements in sorted(LAMBDA_SRC.glob("*/requirements.txt")):
        name = requirements.parent.name
        names = build.names(f"{name}.zip")
        assert declared(requirements.parent) <= dist_names(names), name
        assert not dist_names(names) & RUNTIME_PROVIDED, name
        extensions[name] = [n for n in names if n.endswith(".so") and "cpython-" in n]
    # Functions with compiled dependencies get them for the runtime; pure-Python ones (the DynamoDB
    # migration) have none.
    assert any(extensions.values()), extensions
    assert all("cpython-312-x86_64-linux-gnu" in n for found in extensions.values() for n in found), extensions


IMPORTS = r"""
import sys
sys.path[:0] = sys.argv[1:]
import aws_lambda_powertools, psycopg2, pymysql, pyodbc
assert psycopg2.__file__.startswith(sys.argv[1]), psycopg2.__file__
assert pyodbc.__file__.startswith(sys.argv[1]), pyodbc.__file__
print(pyodbc.drivers())
"""


def test_a_python311_zip_imports_its_packages_and_finds_the_layer_driver(tmp_path: Path, shared_cache: Path) -> None:
    """The zip built for the host's Python really runs: its wheels import without the venv's copies."""
    if not (LAMBDA_SRC / "table_sync" / "requirements.txt").is_file():
        pytest.fail("lambda_src/table_sync/requirements.txt is gone; this test needs a pyodbc function")
    build = run_package(stub_tree(tmp_path), tmp_path / "build", "--runtime", "python3.11", cache_dir=shared_cache)
    task, opt = tmp_path / "task", tmp_path / "opt"
    with zipfile.ZipFile(build.build_dir / "table_sync.zip") as archive:
        archive.extractall(task)
    with zipfile.ZipFile(build.build_dir / "odbc_layer.zip") as archive:
        archive.extractall(opt)
    # Stand-in for the runtime's own boto3 tree (/var/runtime on Lambda): only those distributions.
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    for top in ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six.py"):
        (runtime / top).symlink_to(VENV_SITE / top)
    ini = (opt / "odbcinst.ini").read_text().replace("/opt/lib/", f"{opt}/lib/")
    (opt / "odbcinst.ini").write_text(ini)

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ODBCSYSINI": str(opt), "LD_LIBRARY_PATH": f"{opt}/lib"}
    # -S: no site-packages, so nothing can come from the venv.
    result = subprocess.run(
        [sys.executable, "-S", "-c", IMPORTS, str(task), str(runtime)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['FreeTDS']"
