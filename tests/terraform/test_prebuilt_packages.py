"""A consumer's path without building anything: a release's packages, downloaded and verified by
scripts/fetch_packages.py, planned by examples/prebuilt_packages.

The release directory is made from this run's `make package` output by the commands the release
workflow runs (`release_assets stage` and `checksums`) and served over HTTP on loopback, so the
download code runs as it does against GitHub's release URLs.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from scripts import fetch_packages, release_assets
from tests.terraform import tfkit

FETCH = tfkit.REPO / "scripts" / "fetch_packages.py"
EXAMPLE = "examples/prebuilt_packages"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def release_step(*args: str) -> None:
    command = [sys.executable, "-m", "scripts.release_assets", *args]
    result = subprocess.run(command, cwd=tfkit.REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def fetch(*args: str) -> subprocess.CompletedProcess[str]:
    # Run as a consumer does: the file, from another directory, so it finds verify_build beside itself.
    return subprocess.run([sys.executable, str(FETCH), *args], cwd="/", capture_output=True, text=True)


@pytest.fixture(scope="module")
def release_dir(build_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The assets of a release, from build/ (x86_64 here; the workflow adds arm64 from its own runner)."""
    release = tmp_path_factory.mktemp("release")
    release_step("stage", "--build-dir", str(build_dir), "--output", str(release))
    release_step("checksums", str(release))
    return release


@pytest.fixture
def release_copy(release_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(release_dir, tmp_path / "release"))


def test_release_assets_are_named_per_runtime_and_architecture(release_dir: Path, build_dir: Path) -> None:
    manifest = json.loads((build_dir / "manifest.json").read_text())
    prefix = f"{manifest['runtime']}-{manifest['architecture']}-"
    zips = [e["zip"] for e in [*manifest["functions"].values(), *manifest["layers"].values()]]
    assert sorted(p.name for p in release_dir.iterdir()) == sorted(
        ["SHA256SUMS", f"{prefix}manifest.json", *(prefix + z for z in zips)]
    )
    # sha256sum itself accepts the checksum file.
    check = subprocess.run(["sha256sum", "--check", "SHA256SUMS"], cwd=release_dir, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_example_plans_against_downloaded_packages(
    release_dir: Path, build_dir: Path, tf_env: dict[str, str], tmp_path: Path
) -> None:
    tree = tfkit.copy_tree(tmp_path / "tree")
    example = tree / EXAMPLE
    with serve(release_dir) as url:
        result = fetch(
            "--from", url, "--runtime", "python3.12", "--arch", "x86_64", "--output", str(example / "packages")
        )
    assert result.returncode == 0, result.stderr
    built = json.loads((build_dir / "manifest.json").read_text())
    count = len(built["functions"]) + len(built["layers"])  # every function's zip and the layers'
    assert f"{count} packages for python3.12/x86_64 verified" in result.stdout
    packages = json.loads((example / "packages" / "manifest.json").read_text())
    assert packages == built

    tfkit.write_offline_provider(example, filename="providers_override.tf")
    tfkit.init(example, tf_env)
    plan_args = ["plan", "-refresh=false", "-lock=false", "-input=false", "-no-color", "-out=example.tfplan"]
    tfkit.terraform(example, *plan_args, env=tf_env).check()
    plan = json.loads(tfkit.terraform(example, "show", "-json", "example.tfplan", env=tf_env).check().stdout)

    functions = {tfkit.after(r)["function_name"]: tfkit.after(r) for r in tfkit.of_type(plan, "aws_lambda_function")}
    assert sorted(functions) == ["prebuilt-dev-file-loader", "prebuilt-dev-migrations", "prebuilt-dev-table-sync"]
    deployed = {Path(f["filename"]).name: f["source_code_hash"] for f in functions.values()}
    # The example deploys three of the release's packages, each exactly as the manifest hashes it.
    by_zip = {entry["zip"]: entry for entry in packages["functions"].values()}
    assert len(deployed) == 3 and set(deployed) <= set(by_zip), sorted(deployed)
    for zip_name, source_code_hash in deployed.items():
        assert source_code_hash == by_zip[zip_name]["source_code_hash"], zip_name
    for function in functions.values():
        assert (example / function["filename"]).resolve().parent == (example / "packages").resolve()
    [layer] = tfkit.of_type(plan, "aws_lambda_layer_version")
    assert tfkit.after(layer)["source_code_hash"] == packages["layers"]["odbc"]["source_code_hash"]


def test_a_download_that_does_not_match_sha256sums_is_refused_and_nothing_is_replaced(
    release_copy: Path, tmp_path: Path
) -> None:
    output = tmp_path / "packages"
    assert fetch("--from", str(release_copy), "--output", str(output)).returncode == 0
    before = {p.name: p.read_bytes() for p in output.iterdir()}
    victim = next(release_copy.glob("*-table_sync.zip"))
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    with serve(release_copy) as url:
        result = fetch("--from", url, "--output", str(output))
    assert result.returncode == 1
    assert f"{victim.name} has SHA-256" in result.stderr and "SHA256SUMS says" in result.stderr
    assert {p.name: p.read_bytes() for p in output.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".packages")], "staging left behind"


def test_a_zip_that_does_not_match_the_manifest_is_refused(release_copy: Path, tmp_path: Path) -> None:
    # Assets and SHA256SUMS agree (both replaced), but the zip is not the one the manifest describes:
    # the manifest's source_code_hash is what the plan records, so this must not deploy.
    victim = next(release_copy.glob("*-file_loader.zip"))
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    release_assets.write_checksums(release_copy)
    result = fetch("--from", str(release_copy), "--output", str(tmp_path / "packages"))
    assert result.returncode == 1
    assert "functions file_loader" in result.stderr and "source_code_hash" in result.stderr
    assert not (tmp_path / "packages").exists()


def test_missing_assets_and_other_architectures_are_named(release_copy: Path, tmp_path: Path) -> None:
    result = fetch("--from", str(release_copy), "--arch", "arm64", "--output", str(tmp_path / "p"))
    assert result.returncode == 1
    assert "lists no python3.12-arm64-manifest.json (packages: python3.12-x86_64)" in result.stderr
    next(release_copy.glob("*-odbc_layer.zip")).unlink()
    with serve(release_copy) as url:
        result = fetch("--from", url, "--output", str(tmp_path / "p"))
    assert result.returncode == 1 and "odbc_layer.zip: HTTP 404" in result.stderr
    (release_copy / "SHA256SUMS").unlink()
    result = fetch("--from", str(release_copy), "--output", str(tmp_path / "p"))
    assert result.returncode == 1 and "SHA256SUMS" in result.stderr and not (tmp_path / "p").exists()


def test_an_output_directory_that_is_not_a_packages_directory_is_not_replaced(
    release_dir: Path, tmp_path: Path
) -> None:
    precious = tmp_path / "work"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    result = fetch("--from", str(release_dir), "--output", str(precious))
    assert result.returncode == 1 and "not a packages directory" in result.stderr
    assert (precious / "notes.txt").read_text() == "mine"


def test_github_release_urls() -> None:
    assert fetch_packages.release_url("acme/aws-data-pipelines", "0.2.0") == (
        "https://github.com/acme/aws-data-pipelines/releases/download/v0.2.0/"
    )
    assert fetch_packages.release_url("acme/x", "v1.0.0-rc.1", "https://ghe.example/").endswith(
        "ghe.example/acme/x/releases/download/v1.0.0-rc.1/"
    )
    with pytest.raises(fetch_packages.FetchError, match="not OWNER/NAME"):
        fetch_packages.release_url("acme", "v1.0.0")
    with pytest.raises(fetch_packages.FetchError, match="not a semantic version"):
        fetch_packages.release_url("acme/x", "latest")


def test_release_notes_come_from_the_changelog() -> None:
    changelog = "# Changelog\n\n## [Unreleased]\n\n- next\n\n## [1.2.0] - 2026-11-30\n\n### Added\n\n- thing\n"
    assert release_assets.release_notes(changelog, "v1.2.0") == "### Added\n\n- thing\n"
    assert release_assets.release_notes(changelog, "v1.3.0-rc.1") == "- next\n"
    with pytest.raises(release_assets.ReleaseError, match=r"no section '## \[1.3.0\]'"):
        release_assets.release_notes(changelog, "v1.3.0")
    with pytest.raises(release_assets.ReleaseError, match="not a semantic version tag"):
        release_assets.release_notes(changelog, "1.2.0")
    # The real CHANGELOG.md has the sections the release workflow reads.
    real = (tfkit.REPO / "CHANGELOG.md").read_text()
    assert release_assets.release_notes(real, "v0.1.0-rc.1").strip()
