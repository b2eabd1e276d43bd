"""The ODBC Lambda layer: layout, glibc compatibility, and pyodbc loading FreeTDS from it.

The layer is unpacked exactly as Lambda does it, under /opt. When this process may create a mount
namespace (root, as in CI), a child process sees the unpacked layer bind-mounted on /opt and runs
with the layer's files untouched and ODBCSYSINI=/opt, as a function does. Otherwise the test points
ODBCSYSINI at a copy of odbcinst.ini whose only change is /opt/lib -> the unpacked lib/ directory,
and asserts that this is the only change.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts import package
from tests.packaging.conftest import run_package

# glibc of the Lambda python3.12 runtime (Amazon Linux 2023).
RUNTIME_GLIBC = (2, 34)
# Libraries that are part of glibc, which the runtime provides and the layer must not carry.
GLIBC = {
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libresolv.so.2",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
}
REQUIRED_LIBS = {"libodbc.so.2", "libodbcinst.so.2", "libtdsodbc.so"}


@dataclass(frozen=True)
class Layer:
    zip_path: Path
    root: Path  # unpacked

    @property
    def libs(self) -> list[Path]:
        return sorted((self.root / "lib").iterdir())


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Layer:
    work = tmp_path_factory.mktemp("odbc-layer")
    (work / "src" / "pipeline_common").mkdir(parents=True)
    (work / "src" / "pipeline_common" / "__init__.py").write_text("")
    build = run_package(work / "src", work / "build")
    zip_path = build.build_dir / build.manifest["layers"]["odbc"]["zip"]
    root = work / "unpacked"
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(root)
    return Layer(zip_path, root)


def dynamic_section(path: Path) -> str:
    command = ["readelf", "--dynamic", "--wide", str(path)]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def needed(path: Path) -> set[str]:
    return set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic_section(path)))


def soname(path: Path) -> str | None:
    match = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", dynamic_section(path))
    return match[1] if match else None


def glibc_versions_required(path: Path) -> set[str]:
    """GLIBC_* versions in the object's 'Version needs' section (what the loader checks at load time)."""
    out = subprocess.run(
        ["readelf", "--version-info", "--wide", str(path)], capture_output=True, text=True, check=True
    ).stdout
    needs = out.partition("Version needs section")[2]
    return set(re.findall(r"Name: (GLIBC_[0-9A-Z_.]+)", needs))


def too_new(versions: set[str]) -> list[str]:
    bad = []
    for version in versions:
        number = version.removeprefix("GLIBC_")
        if not re.fullmatch(r"[0-9]+(\.[0-9]+)+", number):
            bad.append(version)  # GLIBC_PRIVATE: tied to the exact glibc build
        elif tuple(int(p) for p in number.split(".")) > RUNTIME_GLIBC:
            bad.append(version)
    return sorted(bad)


# --- layout ------------------------------------------------------------------------------------


def test_layer_layout(layer: Layer) -> None:
    names = {p.name for p in layer.libs}
    assert names >= REQUIRED_LIBS
    assert not names & GLIBC
    top = {p.name for p in layer.root.iterdir()}
    assert top == {"lib", "odbcinst.ini", "licenses"}

    ini = configparser.ConfigParser()
    ini.read(layer.root / "odbcinst.ini")
    assert ini.sections() == ["FreeTDS"]
    assert ini["FreeTDS"]["Driver"] == "/opt/lib/libtdsodbc.so"
    with zipfile.ZipFile(layer.zip_path) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos)


def test_every_library_the_layer_needs_is_in_it_or_glibc(layer: Layer) -> None:
    present = {p.name for p in layer.libs} | {soname(p) for p in layer.libs}
    missing = {f"{p.name} -> {n}" for p in layer.libs for n in needed(p) if n not in present and n not in GLIBC}
    assert not missing, f"layer libraries need libraries the layer does not ship: {sorted(missing)}"


# --- glibc -------------------------------------------------------------------------------------


def test_no_library_needs_a_glibc_newer_than_the_runtime(layer: Layer) -> None:
    required = {p.name: glibc_versions_required(p) for p in layer.libs}
    assert all(required.values()), "every library links glibc; an empty set means the parsing broke"
    problems = {name: too_new(versions) for name, versions in required.items() if too_new(versions)}
    assert not problems, f"needs newer than GLIBC_{RUNTIME_GLIBC[0]}.{RUNTIME_GLIBC[1]}: {problems}"


@pytest.fixture
def needs_glibc_2_36(tmp_path: Path) -> Path:
    """A shared object calling arc4random, which glibc added in 2.36."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if not compiler:  # Debian 12's libcrypt1 (essential) needs GLIBC_2.36 too
        return Path("/lib/x86_64-linux-gnu/libcrypt.so.1")
    source = tmp_path / "new.c"
    source.write_text("#include <stdlib.h>\nunsigned int f(void) { return arc4random(); }\n")
    subject = tmp_path / "libnew.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(subject), str(source)], check=True)
    return subject


def test_the_glibc_check_catches_a_newer_symbol(needs_glibc_2_36: Path) -> None:
    """Control for the test above: it must flag an object that needs a newer glibc."""
    assert "GLIBC_2.36" in too_new(glibc_versions_required(needs_glibc_2_36))


def test_the_build_refuses_a_library_needing_a_newer_glibc(needs_glibc_2_36: Path) -> None:
    problems = package.check_glibc({"libnew.so": needs_glibc_2_36}, (2, 34), "python3.12")
    assert problems == ["libnew.so needs GLIBC_2.36; python3.12 provides glibc 2.34"]


# --- pyodbc through the unpacked layer ---------------------------------------------------------

CHILD = r"""
import json, os, sys

def mapped():
    with open("/proc/self/maps") as maps:
        return {f.split()[5] for f in maps if len(f.split()) >= 6 and ".so" in f.split()[5]}

before = mapped()
import pyodbc

drivers = pyodbc.drivers()
try:
    pyodbc.connect(os.environ["TEST_CONNECTION_STRING"], timeout=5)
    error = None
except pyodbc.Error as exc:
    error = [str(arg) for arg in exc.args]
print(json.dumps({"drivers": drivers, "error": error, "loaded": sorted(mapped() - before)}))
"""


def can_bind_mount_opt(scratch: Path) -> bool:
    probe = ["unshare", "--mount", "--propagation", "private", "--", "mount", "--bind", str(scratch), "/opt"]
    try:
        return subprocess.run(probe, capture_output=True, check=False).returncode == 0
    except FileNotFoundError:
        return False


@dataclass(frozen=True)
class OptView:
    """How a child process sees the layer: command prefix, environment, and where lib/ appears."""

    prefix: list[str]
    env: dict[str, str]
    lib: str


@pytest.fixture
def opt_view(layer: Layer, tmp_path: Path) -> Iterator[OptView]:
    home = tmp_path / "home"  # no ~/.odbc.ini or ~/.odbcinst.ini of this machine
    home.mkdir()
    # Only the layer's lib/: a library missing from the layer then shows up as loaded from elsewhere.
    base = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
    if can_bind_mount_opt(tmp_path):
        mount = ["unshare", "--mount", "--propagation", "private", "--"]
        mount += ["sh", "-c", 'mount --bind "$0" /opt && exec "$@"', str(layer.root)]
        yield OptView(mount, {**base, "ODBCSYSINI": "/opt", "LD_LIBRARY_PATH": "/opt/lib"}, "/opt/lib")
        return
    original = (layer.root / "odbcinst.ini").read_text()
    substituted = original.replace("/opt/lib/", f"{layer.root}/lib/")
    changed = [(a, b) for a, b in zip(original.splitlines(), substituted.splitlines(), strict=True) if a != b]
    assert changed == [("Driver = /opt/lib/libtdsodbc.so", f"Driver = {layer.root}/lib/libtdsodbc.so")]
    sysini = tmp_path / "sysini"
    sysini.mkdir()
    (sysini / "odbcinst.ini").write_text(substituted)
    lib = str(layer.root / "lib")
    yield OptView([], {**base, "ODBCSYSINI": str(sysini), "LD_LIBRARY_PATH": lib}, lib)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_pyodbc_lists_and_loads_freetds_from_the_layer(layer: Layer, opt_view: OptView) -> None:
    port = closed_port()
    connection = f"DRIVER={{FreeTDS}};SERVER=127.0.0.1;PORT={port};TDS_Version=7.4;UID=u;PWD=p"
    env = {**opt_view.env, "TEST_CONNECTION_STRING": connection}
    result = subprocess.run(
        [*opt_view.prefix, sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)

    assert outcome["drivers"] == ["FreeTDS"]
    # The driver manager opened the driver and the driver tried the network: a FreeTDS connection
    # error, not unixODBC's "Can't open lib" or "Data source name not found".
    state, message = outcome["error"]
    assert "[FreeTDS]" in message and "Unable to connect" in message, message
    assert state.startswith("08"), state

    loaded = [Path(p) for p in outcome["loaded"]]
    from_layer = {p.name for p in loaded if str(p.parent) == opt_view.lib}
    assert from_layer >= REQUIRED_LIBS | {"libltdl.so.7", "libgnutls.so.30"}
    # Whatever else got loaded came from glibc or from Python itself (pyodbc, its C++ runtime,
    # stdlib modules), never as a dependency of a layer library resolved outside the layer.
    layer_needs = {n for lib in layer.libs for n in needed(lib)} - GLIBC
    elsewhere = [p for p in loaded if str(p.parent) != opt_view.lib]
    leaked = sorted(str(p) for p in elsewhere if (soname(p) or p.name) in layer_needs)
    assert not leaked, f"layer dependencies loaded from outside the layer: {leaked}"


def test_layer_is_rebuilt_byte_identically(layer: Layer, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "pipeline_common").mkdir(parents=True)
    (src / "pipeline_common" / "__init__.py").write_text("")
    again = run_package(src, tmp_path / "build")
    assert (again.build_dir / "odbc_layer.zip").read_bytes() == layer.zip_path.read_bytes()
    assert os.path.getsize(layer.zip_path) < 10 * 1024 * 1024
