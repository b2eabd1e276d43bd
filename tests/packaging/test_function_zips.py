"""scripts/package.py on small fake lambda_src trees: contents, reproducibility, manifest, cache, limits."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import zipfile
from pathlib import Path

from tests.packaging.conftest import FakeTree, run_package

# Small pure-Python pins. tabulate installs a console script (bin/), python-dateutil (and its
# dependency six) is one of the distributions the Lambda runtime provides.
TABULATE = "tabulate==0.10.0\n"
DATEUTIL = "python-dateutil==2.9.0.post0\n"
RUNTIME_PROVIDED_TOPS = {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "six.py", "dateutil"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def top_levels(names: list[str]) -> set[str]:
    return {name.split("/", 1)[0] for name in names}


def test_zip_holds_exactly_the_function_the_shared_library_and_its_requirements(
    fake_src: FakeTree, tmp_path: Path, shared_cache: Path
) -> None:
    src = fake_src({"loader": TABULATE + DATEUTIL, "bare": None})
    # Build-host debris that must never ship.
    (src / "loader" / "__pycache__").mkdir()
    (src / "loader" / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"\0")
    (src / "pipeline_common" / "stale.pyc").write_bytes(b"\0")
    (src / "loader" / ".pytest_cache").mkdir()
    (src / "loader" / ".pytest_cache" / "x").write_text("x")

    build = run_package(src, tmp_path / "build", cache_dir=shared_cache)

    loader = build.names("loader.zip")
    assert top_levels(loader) == {"loader", "pipeline_common", "tabulate", "tabulate-0.10.0.dist-info"}
    assert {n for n in loader if n.startswith(("loader/", "pipeline_common/"))} == {
        "loader/",
        "loader/__init__.py",
        "loader/handler.py",
        "pipeline_common/",
        "pipeline_common/__init__.py",
        "pipeline_common/config.py",
    }
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in loader)
    assert not top_levels(loader) & RUNTIME_PROVIDED_TOPS
    assert not any("dateutil" in n or n.startswith("six") for n in loader)

    with zipfile.ZipFile(build.build_dir / "loader.zip") as archive:
        record = archive.read("tabulate-0.10.0.dist-info/RECORD").decode()
        for info in archive.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0), info.filename
            mode = info.external_attr >> 16 & 0o777
            assert mode == (0o755 if info.is_dir() else 0o644), (info.filename, oct(mode))
    # The console script and bytecode are gone, and RECORD no longer lists them (their hashes embed
    # this machine's interpreter path); INSTALLER is installer state.
    assert "bin/" not in record and "__pycache__" not in record and "INSTALLER" not in record
    assert "tabulate/__init__.py" in record

    assert top_levels(build.names("bare.zip")) == {"bare", "pipeline_common"}


def test_functions_that_pin_boto3_keep_the_sdk(fake_src: FakeTree, tmp_path: Path, shared_cache: Path) -> None:
    src = fake_src({"own_sdk": "boto3==1.43.11\n", "runtime_sdk": "aws-xray-sdk==2.15.0\n"})
    build = run_package(src, tmp_path / "build", cache_dir=shared_cache)

    own = top_levels(build.names("own_sdk.zip"))
    assert {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3"} <= own
    assert "boto3-1.43.11.dist-info" in own
    # aws-xray-sdk depends on botocore: without a boto3 pin the runtime's SDK is used instead.
    runtime = top_levels(build.names("runtime_sdk.zip"))
    assert "aws_xray_sdk" in runtime
    assert not runtime & RUNTIME_PROVIDED_TOPS


def test_two_builds_are_byte_identical(fake_src: FakeTree, tmp_path: Path) -> None:
    src = fake_src({"loader": TABULATE, "bare": None})
    first = run_package(src, tmp_path / "first", cache_dir=tmp_path / "cache-1")

    # A second build from a cold cache, with the sources touched and their permissions changed,
    # as on another machine or checkout: only names, bytes and the executable bit may matter.
    for path in src.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
        if path.is_file():
            path.chmod(0o600)
    second = run_package(src, tmp_path / "second", cache_dir=tmp_path / "cache-2")

    zips = sorted(p.name for p in first.build_dir.glob("*.zip"))
    assert zips == ["bare.zip", "loader.zip", "odbc_layer.zip"]
    assert zips == sorted(p.name for p in second.build_dir.glob("*.zip"))
    for name in zips:
        assert sha256(first.build_dir / name) == sha256(second.build_dir / name), name
    assert (first.build_dir / "manifest.json").read_bytes() == (second.build_dir / "manifest.json").read_bytes()


def test_manifest_describes_the_files(fake_src: FakeTree, tmp_path: Path, shared_cache: Path) -> None:
    src = fake_src({"loader": TABULATE, "bare": None})
    build = run_package(src, tmp_path / "build", "--runtime", "python3.12", "--arch", "x86_64", cache_dir=shared_cache)
    manifest = build.manifest

    assert manifest["runtime"] == "python3.12"
    assert manifest["architecture"] == "x86_64"
    assert set(manifest) == {"runtime", "architecture", "functions", "layers"}
    assert set(manifest["functions"]) == {"loader", "bare"}
    assert set(manifest["layers"]) == {"odbc"}
    entries = [*manifest["functions"].items(), *manifest["layers"].items()]
    for name, entry in entries:
        path = build.build_dir / entry["zip"]  # relative to the manifest's directory
        assert entry["size"] == path.stat().st_size, name
        # What Terraform's filebase64sha256() computes.
        assert entry["source_code_hash"] == base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()
    assert manifest["functions"]["loader"] == {
        "zip": "loader.zip",
        "handler": "loader.handler.handler",
        "source_code_hash": manifest["functions"]["loader"]["source_code_hash"],
        "size": manifest["functions"]["loader"]["size"],
    }
    assert manifest["layers"]["odbc"]["zip"] == "odbc_layer.zip"
    assert not list(build.build_dir.glob(".staging-*")), "staging directory left behind"
    assert not list(build.build_dir.glob(".manifest.json.*")), "temporary manifest left behind"


def test_second_build_uses_the_cache_and_needs_no_network(fake_src: FakeTree, tmp_path: Path) -> None:
    src = fake_src({"loader": TABULATE})
    cache = tmp_path / "cache"
    first = run_package(src, tmp_path / "first", cache_dir=cache)
    assert "(requirements installed)" in first.result.stdout

    # pip can reach no index at all: neither the network nor the machine's local wheel mirrors.
    offline = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": os.devnull}
    second = run_package(src, tmp_path / "second", cache_dir=cache, env=offline)
    assert "(requirements from cache)" in second.result.stdout
    assert sha256(first.build_dir / "loader.zip") == sha256(second.build_dir / "loader.zip")

    # Control: the same offline environment with an empty cache does need pip, and fails.
    cold = run_package(src, tmp_path / "cold", cache_dir=tmp_path / "empty-cache", env=offline, check=False)
    assert cold.result.returncode == 1
    assert "pip could not install" in cold.result.stderr


def test_cache_is_keyed_by_requirements_and_runtime(fake_src: FakeTree, tmp_path: Path) -> None:
    src = fake_src({"loader": TABULATE})
    cache = tmp_path / "cache"
    run_package(src, tmp_path / "b1", cache_dir=cache)
    run_package(src, tmp_path / "b2", "--runtime", "python3.11", cache_dir=cache)
    (src / "loader" / "requirements.txt").write_text("tabulate==0.9.0\n")
    changed = run_package(src, tmp_path / "b3", cache_dir=cache)

    assert "(requirements installed)" in changed.result.stdout
    assert "tabulate-0.9.0.dist-info/" in changed.names("loader.zip")
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 3
    assert not [p for p in cache.iterdir() if p.name.startswith(".install-")], "half-built cache entry left"


def test_zipped_size_guard_names_the_function_and_sizes(fake_src: FakeTree, tmp_path: Path, shared_cache: Path) -> None:
    src = fake_src({"loader": TABULATE, "bare": None})
    build = run_package(src, tmp_path / "build", cache_dir=shared_cache)
    before = {p.name: p.read_bytes() for p in build.build_dir.iterdir() if p.is_file()}
    loader_size = (build.build_dir / "loader.zip").stat().st_size
    layer_size = (build.build_dir / "odbc_layer.zip").stat().st_size
    assert loader_size < layer_size

    limit = loader_size - 1
    failed = run_package(src, build.build_dir, "--max-zipped-bytes", str(limit), cache_dir=shared_cache, check=False)

    assert failed.result.returncode == 1
    assert "Lambda size limits exceeded" in failed.result.stderr
    assert f"loader: loader.zip is 0.0 MB ({loader_size} bytes) zipped" in failed.result.stderr
    assert f"({limit} bytes) limit for a direct upload" in failed.result.stderr
    assert f"odbc: odbc_layer.zip is 3.8 MB ({layer_size} bytes) zipped" in failed.result.stderr
    assert "bare:" not in failed.result.stderr  # under the limit
    # A failed build publishes nothing: the previous zips and manifest stay as they were.
    assert {p.name: p.read_bytes() for p in build.build_dir.iterdir() if p.is_file()} == before


def test_unzipped_size_guard_counts_the_layers_a_function_uses(
    fake_src: FakeTree, tmp_path: Path, shared_cache: Path
) -> None:
    src = fake_src({"sync": "pyodbc==5.5.0\n", "loader": TABULATE})
    build = run_package(src, tmp_path / "build", cache_dir=shared_cache)

    def unzipped(name: str) -> int:
        with zipfile.ZipFile(build.build_dir / name) as archive:
            return sum(info.file_size for info in archive.infolist())

    sync, loader, layer = unzipped("sync.zip"), unzipped("loader.zip"), unzipped("odbc_layer.zip")
    # Pick a limit every zip meets alone, but the pyodbc function with its layer does not.
    limit = sync + layer - 1
    assert max(sync, loader, layer) <= limit
    failed = run_package(
        src, tmp_path / "build", "--max-unzipped-bytes", str(limit), cache_dir=shared_cache, check=False
    )

    assert failed.result.returncode == 1
    stderr = failed.result.stderr
    assert "sync: unzipped size" in stderr and "for the odbc layer" in stderr
    assert f"({sync + layer} bytes), over the" in stderr and f"({limit} bytes) Lambda limit" in stderr
    assert "loader:" not in stderr


def test_removed_functions_lose_their_zip(fake_src: FakeTree, tmp_path: Path, shared_cache: Path) -> None:
    src = fake_src({"loader": TABULATE, "gone": None})
    build = run_package(src, tmp_path / "build", cache_dir=shared_cache)
    assert (build.build_dir / "gone.zip").is_file()
    unrelated = build.build_dir / "someone-elses.zip"
    unrelated.write_bytes(b"not ours")

    shutil.rmtree(src / "gone")
    rebuilt = run_package(src, build.build_dir, cache_dir=shared_cache)

    assert set(rebuilt.manifest["functions"]) == {"loader"}
    assert not (build.build_dir / "gone.zip").exists()
    assert unrelated.read_bytes() == b"not ours", "only zips a previous manifest listed are removed"


def test_zero_functions_give_an_empty_functions_map_and_the_layer(fake_src: FakeTree, tmp_path: Path) -> None:
    src = fake_src({})
    (src / "no_handler_yet").mkdir()
    (src / "no_handler_yet" / "requirements.txt").write_text(TABULATE)
    build = run_package(src, tmp_path / "build")

    assert build.manifest["functions"] == {}
    assert set(build.manifest["layers"]) == {"odbc"}
    assert sorted(p.name for p in build.build_dir.glob("*.zip")) == ["odbc_layer.zip"]


def test_unpinned_requirements_are_refused(fake_src: FakeTree, tmp_path: Path) -> None:
    src = fake_src({"loader": "tabulate>=0.9\n"})
    failed = run_package(src, tmp_path / "build", check=False)
    assert failed.result.returncode == 1
    expected = "requirements.txt line 1: 'tabulate>=0.9' is not a plain requirement pinned with '=='"
    assert expected in failed.result.stderr
    assert not (tmp_path / "build" / "manifest.json").exists()


def test_arm64_builds_functions_for_aarch64_but_refuses_an_x86_layer(fake_src: FakeTree, tmp_path: Path) -> None:
    src = fake_src({"sync": "pyodbc==5.5.0\n"})
    failed = run_package(src, tmp_path / "build", "--arch", "arm64", check=False)
    assert failed.result.returncode == 1
    assert "the ODBC layer for arm64 needs aarch64 builds of unixODBC and FreeTDS" in failed.result.stderr

    build = run_package(src, tmp_path / "build", "--arch", "arm64", "--without-odbc-layer")
    assert build.manifest["architecture"] == "arm64"
    assert build.manifest["layers"] == {}
    names = build.names("sync.zip")
    assert "pyodbc.cpython-312-aarch64-linux-gnu.so" in names
    with zipfile.ZipFile(build.build_dir / "sync.zip") as archive:
        wheel = archive.read("pyodbc-5.5.0.dist-info/WHEEL").decode()
    assert "aarch64" in wheel and "x86_64" not in wheel
