"""`make package` on a machine with nothing but Python, pip and the ODBC layer's Debian packages.

The test runs the real Makefile target with a fresh virtualenv holding only pip (no
requirements-dev.txt), a checkov venv path that must stay absent, and a `dpkg-query` that reports
PostgreSQL, MariaDB and their ODBC drivers as not installed, beside an `apt-get` (and `sudo`) that
fail the build if anything tries to install them. pip reuses its own download cache, so the run costs the
wheel installs but no downloads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import verify_build
from tests.packaging.conftest import REPO_ROOT

TEST_ONLY_PACKAGES = ("postgresql", "mariadb-server", "odbc-postgresql", "odbc-mariadb", "unixodbc-dev")


def write_shims(directory: Path, apt_log: Path) -> None:
    directory.mkdir()
    hidden = " ".join(TEST_ONLY_PACKAGES)
    (directory / "dpkg-query").write_text(
        "#!/usr/bin/env bash\n"
        f'for pkg in {hidden}; do [[ " $* " == *" $pkg "* ]] && exit 1; done\n'
        'exec /usr/bin/dpkg-query "$@"\n'
    )
    for installer in ("apt-get", "sudo"):
        (directory / installer).write_text(f'#!/usr/bin/env bash\necho "{installer} $*" >> {apt_log}\nexit 100\n')
    for shim in directory.iterdir():
        shim.chmod(0o755)


@pytest.mark.slow
def test_make_package_needs_only_python_pip_and_the_odbc_packages(tmp_path: Path) -> None:
    reference = (REPO_ROOT / os.environ.get("BUILD_DIR", "build")).resolve() / "manifest.json"
    if not reference.is_file():
        pytest.fail(f"{reference} is missing: run `make package` (make test does)")
    expected = json.loads(reference.read_text())

    venv, build, checkov = tmp_path / "venv", tmp_path / "build", tmp_path / "checkov-venv"
    subprocess.run([sys._base_executable, "-m", "venv", str(venv)], check=True)
    apt_log = tmp_path / "apt-get.log"
    write_shims(tmp_path / "shims", apt_log)
    env = {**os.environ, "PATH": f"{tmp_path / 'shims'}:{os.environ['PATH']}"}
    env.pop("VIRTUAL_ENV", None)
    variables = {"VENV": venv, "CHECKOV_VENV": checkov, "BUILD_DIR": build}
    variables |= {"RUNTIME": expected["runtime"], "ARCH": expected["architecture"]}
    result = subprocess.run(
        ["make", "-C", str(REPO_ROOT), "package", *(f"{name}={value}" for name, value in variables.items())],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    # The build is complete and byte-identical to the one the rest of the suite uses.
    assert verify_build.problems(build) == []
    assert json.loads((build / "manifest.json").read_text()) == expected
    # Nothing of the test tool chain was installed or even asked for.
    assert not apt_log.exists(), apt_log.read_text()
    assert not checkov.exists()
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"], capture_output=True, text=True
    )
    names = {p["name"].lower() for p in json.loads(installed.stdout)}
    assert names <= {"pip", "setuptools", "wheel"}, names


def test_the_shims_would_catch_a_build_that_wanted_the_test_servers(tmp_path: Path) -> None:
    # Control: with the same shims, the full setup sees the servers as missing and calls apt-get.
    apt_log = tmp_path / "apt-get.log"
    write_shims(tmp_path / "shims", apt_log)
    env = {**os.environ, "PATH": f"{tmp_path / 'shims'}:{os.environ['PATH']}"}
    result = subprocess.run(
        [str(REPO_ROOT / "scripts" / "setup_system.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    if os.geteuid() == 0:
        assert "installing system packages: postgresql mariadb-server" in result.stdout
        assert apt_log.read_text().startswith("apt-get update")
    else:  # the sudo shim refuses, so the script names what is missing
        assert "missing system packages: postgresql mariadb-server" in result.stderr
