"""Build the Lambda deployment artefacts: one reproducible zip per function, the ODBC layer, a manifest.

    python scripts/package.py --build-dir build --runtime python3.12 --arch x86_64

Every directory `lambda_src/<function>/` holding a `handler.py` becomes `<build>/<function>.zip`
with the function package, the shared library `pipeline_common` and the wheels of the packages its
`requirements.txt` pins, built for the Lambda runtime and architecture. `<build>/odbc_layer.zip` is a
Lambda layer with unixODBC and the FreeTDS driver taken from this machine's Debian packages.
`<build>/manifest.json` (format in docs/contracts.md) tells Terraform what to deploy.

Zips are byte-for-byte reproducible, so Terraform's `source_code_hash` changes only when content
does. Nothing in the build directory changes unless the whole build succeeds.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_LIBRARY = "pipeline_common"
MANIFEST_NAME = "manifest.json"
ODBC_LAYER_NAME = "odbc"
ODBC_LAYER_ZIP = "odbc_layer.zip"
ODBC_DRIVER_NAME = "FreeTDS"

MIB = 1024 * 1024
# Lambda quotas: 50 MB for a zip uploaded directly, 250 MB for a function unzipped together with
# every layer it uses (AWS counts both in MiB: 52,428,800 and 262,144,000 bytes).
MAX_ZIPPED_BYTES = 50 * MIB
MAX_UNZIPPED_BYTES = 250 * MIB

# The earliest time a zip header can hold; any fixed value works, this one is the convention.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

RUNTIMES = ("python3.11", "python3.12", "python3.13")
# glibc of the Lambda OS under each runtime: Amazon Linux 2 (python3.11) and Amazon Linux 2023.
RUNTIME_GLIBC: Mapping[str, tuple[int, int]] = {"python3.11": (2, 26), "python3.12": (2, 34), "python3.13": (2, 34)}
ARCH_MACHINE: Mapping[str, str] = {"x86_64": "x86_64", "arm64": "aarch64"}

# Distributions the Lambda Python runtime already ships (boto3 and its dependency tree). Packaging
# them again costs ~20 MB per zip and shadows the runtime's tested copy, so they are dropped unless
# the function pins its own SDK, in which case its versions must travel together.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "six", "python-dateutil"})
SDK_DISTRIBUTIONS = frozenset({"boto3", "botocore"})

# A function that declares pyodbc talks to SQL Server through the ODBC layer, so the layer counts
# towards its unzipped size limit.
ODBC_LAYER_USERS = frozenset({"pyodbc"})

# Bump when the cleaning of installed wheels changes, so old cache entries are not reused.
CACHE_FORMAT = "1"

# Debian packages and the files in them that form the layer's roots (Debian 12 splits unixODBC's
# libraries out of the `unixodbc` package into libodbc2 / libodbcinst2).
ODBC_ROOT_FILES: Mapping[str, tuple[str, str]] = {
    "libodbc.so.2": ("libodbc2", "libodbc.so.2"),
    "libodbcinst.so.2": ("libodbcinst2", "libodbcinst.so.2"),
    "libtdsodbc.so": ("tdsodbc", "libtdsodbc.so"),
}

# Sonames that belong to glibc itself. Amazon Linux 2023 provides glibc 2.34, and a private copy in
# the layer could not work anyway (libc and the dynamic loader must match), so these stay out; the
# build instead checks that nothing in the layer needs a newer glibc symbol version.
GLIBC_SONAMES = frozenset(
    {
        "linux-vdso.so.1",
        "ld-linux-x86-64.so.2",
        "ld-linux-aarch64.so.1",
        "libc.so.6",
        "libm.so.6",
        "libdl.so.2",
        "libpthread.so.0",
        "librt.so.1",
        "libresolv.so.2",
        "libutil.so.1",
        "libanl.so.1",
        "libnsl.so.1",
    }
)

_REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*[^\s;,]+\s*(?:;.*)?$")
_GLIBC_VERSION = re.compile(r"Name: GLIBC_([0-9][0-9.]*|PRIVATE)\b")


class PackagingError(Exception):
    """A build that cannot produce correct artefacts; the message says which input and why."""


@dataclass(frozen=True)
class Target:
    runtime: str
    arch: str

    @property
    def python_version(self) -> str:
        return self.runtime.removeprefix("python")

    @property
    def glibc(self) -> tuple[int, int]:
        return RUNTIME_GLIBC[self.runtime]


@dataclass(frozen=True)
class Limits:
    max_zipped: int = MAX_ZIPPED_BYTES
    max_unzipped: int = MAX_UNZIPPED_BYTES


@dataclass(frozen=True)
class Artefact:
    """A zip in the staging directory plus what the manifest and the size guard need to know."""

    name: str
    zip_path: Path
    unzipped_size: int
    uses_odbc_layer: bool = False
    cache_hit: bool | None = None


# --- reproducible zips -------------------------------------------------------------------------


def is_excluded(relative: Path) -> bool:
    """Bytecode and dotfiles are build-host state, never part of what Lambda should run."""
    return any(part == "__pycache__" or part.startswith(".") for part in relative.parts) or relative.suffix in {
        ".pyc",
        ".pyo",
    }


def tree_entries(root: Path, prefix: str, skip: frozenset[str] = frozenset()) -> Iterator[tuple[str, Path]]:
    """(archive name, file) for every file under root, named `prefix/<relative path>`."""
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if path.is_dir() or is_excluded(relative) or relative.as_posix() in skip:
            continue
        yield (f"{prefix}/{relative.as_posix()}" if prefix else relative.as_posix(), path)


def parent_directories(names: Iterable[str]) -> set[str]:
    directories: set[str] = set()
    for name in names:
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            directories.add("/".join(parts[:depth]) + "/")
    return directories


def write_reproducible_zip(entries: Mapping[str, Path], destination: Path) -> int:
    """Write entries (archive name -> file) as a zip that depends only on names, bytes and modes.

    Entries are sorted, every timestamp is ZIP_EPOCH and permissions are normalised to 0644 / 0755,
    so building the same content on another day or under another umask gives the same sha256.
    Returns the total unzipped size.
    """
    unzipped = 0
    names = sorted(set(entries) | parent_directories(entries))
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.create_system = 3  # Unix, so external_attr carries the mode bits
            if name.endswith("/"):
                info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10  # 0x10: MS-DOS directory flag
                archive.writestr(info, b"")
                continue
            source = entries[name]
            executable = source.stat().st_mode & 0o111
            info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = source.read_bytes()
            unzipped += len(data)
            archive.writestr(info, data)
    return unzipped


def base64_sha256(path: Path) -> str:
    """What Terraform's filebase64sha256() returns for the file."""
    return base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode("ascii")


# --- function sources and requirements ---------------------------------------------------------


def discover_functions(src: Path) -> list[str]:
    """Function packages: directories with a handler.py, except the shared library."""
    if not (src / SHARED_LIBRARY).is_dir():
        raise PackagingError(f"{src / SHARED_LIBRARY} is missing: every function zip includes the shared library")
    functions = sorted(
        path.parent.name
        for path in src.glob("*/handler.py")
        if path.parent.name != SHARED_LIBRARY and not is_excluded(Path(path.parent.name))
    )
    for name in functions:
        if not name.isidentifier():
            raise PackagingError(
                f"{src / name}: '{name}' is not a Python identifier, so '{name}.handler' cannot import"
            )
    return functions


def normalize_name(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: Path) -> list[str]:
    """Normalised names of the pinned requirements; anything not pinned with == is refused.

    The install cache is keyed by this file's content, which is only sound when the content names
    exact versions; options (-r, -e, --index-url) would bring in state the key does not see.
    """
    if not requirements.is_file():
        return []
    names = []
    for number, raw in enumerate(requirements.read_text().splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        match = _REQUIREMENT.match(line)
        if not match:
            raise PackagingError(
                f"{requirements} line {number}: {line!r} is not a plain requirement pinned with '==' "
                "(pins keep builds reproducible and the install cache valid)"
            )
        names.append(normalize_name(match["name"]))
    return names


def platform_tags(target: Target) -> list[str]:
    """Every manylinux tag the runtime's glibc accepts, newest last.

    pip matches --platform literally, and current wheels are tagged anywhere from manylinux2014
    (psycopg2-binary) to manylinux_2_28 (pyodbc 5.5), so listing one tag would miss packages that
    run fine on the runtime.
    """
    machine = ARCH_MACHINE[target.arch]
    major, minor = target.glibc
    oldest = 5 if machine == "x86_64" else 17
    tags = [f"manylinux_{major}_{m}_{machine}" for m in range(oldest, minor + 1)]
    legacy = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}
    tags += [f"{alias}_{machine}" for alias, m in legacy.items() if oldest <= m <= minor]
    return tags


# --- third-party installs (cached) -------------------------------------------------------------


def cache_key(requirements_text: bytes, target: Target) -> str:
    digest = hashlib.sha256()
    for part in (CACHE_FORMAT.encode(), target.runtime.encode(), target.arch.encode(), requirements_text):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def pip_install(requirements: Path, target: Target, destination: Path) -> None:
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    command += [arg for tag in platform_tags(target) for arg in ("--platform", tag)]
    command += ["--python-version", target.python_version, "--implementation", "cp", "--only-binary=:all:"]
    # --no-compile: pip would byte-compile with *this* interpreter (3.11), useless for the runtime.
    command += ["--no-compile", "--no-warn-script-location", "--target", str(destination), "-r", str(requirements)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PackagingError(
            f"pip could not install {requirements} for {target.runtime}/{target.arch}:\n{result.stderr.strip()}"
        )


def distribution_name(dist_info: Path) -> str:
    for line in (dist_info / "METADATA").read_text(errors="replace").splitlines():
        if line.startswith("Name:"):
            return normalize_name(line.split(":", 1)[1].strip())
    raise PackagingError(f"{dist_info}/METADATA has no Name field")


def record_paths(dist_info: Path) -> list[str]:
    record = dist_info / "RECORD"
    if not record.is_file():
        return []
    return [line.split(",", 1)[0] for line in record.read_text().splitlines() if line.strip()]


def remove_distribution(site: Path, dist_info: Path) -> None:
    for relative in record_paths(dist_info):
        path = (site / relative).resolve()
        if path.is_relative_to(site.resolve()) and path.is_file():
            path.unlink()
    shutil.rmtree(dist_info, ignore_errors=True)


def prune_empty_directories(root: Path) -> None:
    for directory in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()


def rewrite_record(site: Path, dist_info: Path) -> None:
    """Keep RECORD true to what ships: drop lines for files removed from the install.

    Those lines (console scripts under ../../bin, bytecode) carry hashes of files that embed this
    machine's interpreter path, which would make the zip differ between hosts.
    """
    record = dist_info / "RECORD"
    if not record.is_file():
        return
    root = site.resolve()
    kept = []
    for line in record.read_text().splitlines():
        path = (site / line.split(",", 1)[0]).resolve()
        if line.strip() and path.is_relative_to(root) and path.exists():
            kept.append(line)
    record.write_text("".join(f"{line}\n" for line in kept))


def clean_install(site: Path, keep_sdk: bool) -> None:
    """Reduce a pip --target tree to what the function imports at run time, deterministically."""
    # Console scripts: their shebang names this machine's interpreter, and Lambda never runs them.
    shutil.rmtree(site / "bin", ignore_errors=True)
    for pycache in list(site.rglob("__pycache__")):
        shutil.rmtree(pycache, ignore_errors=True)
    for compiled in [*site.rglob("*.pyc"), *site.rglob("*.pyo")]:
        compiled.unlink()
    for dist_info in sorted(site.glob("*.dist-info")):
        if not keep_sdk and distribution_name(dist_info) in RUNTIME_PROVIDED:
            remove_distribution(site, dist_info)
    for dist_info in sorted(site.glob("*.dist-info")):
        # INSTALLER names the tool, direct_url.json a local path: installer state, not package data.
        for name in ("INSTALLER", "direct_url.json"):
            (dist_info / name).unlink(missing_ok=True)
        rewrite_record(site, dist_info)
    prune_empty_directories(site)


def cached_site_packages(requirements: Path, target: Target, cache_root: Path) -> tuple[Path | None, bool]:
    """The cleaned install of a function's requirements and whether it came from the cache.

    Entries are complete or absent: an install lands in a temporary directory and is renamed into
    place only once cleaned, so an interrupted build never leaves a half-filled entry behind.
    """
    names = requirement_names(requirements)
    if not names:
        return None, True
    entry = cache_root / cache_key(requirements.read_bytes(), target)
    if entry.is_dir():
        return entry, True
    cache_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".install-", dir=cache_root))
    try:
        pip_install(requirements, target, scratch)
        clean_install(scratch, keep_sdk=bool(SDK_DISTRIBUTIONS & set(names)))
        try:
            scratch.rename(entry)
        except OSError:
            if not entry.is_dir():  # a concurrent build may have filled the same entry first
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return entry, False


# --- function zips -----------------------------------------------------------------------------


def function_entries(src: Path, function: str, site: Path | None) -> dict[str, Path]:
    entries: dict[str, Path] = {}
    for prefix, root in ((function, src / function), (SHARED_LIBRARY, src / SHARED_LIBRARY)):
        # requirements.txt is build input; Lambda needs the installed packages, not the list.
        entries.update(tree_entries(root, prefix, skip=frozenset({"requirements.txt"})))
    if site is not None:
        for name, path in tree_entries(site, ""):
            top = name.split("/", 1)[0]
            if top in (function, SHARED_LIBRARY):
                raise PackagingError(f"{function}: a third-party package installs '{top}', shadowing our own code")
            entries[name] = path
    return entries


def build_function(src: Path, function: str, staging: Path, site: Path | None, cache_hit: bool) -> Artefact:
    zip_path = staging / f"{function}.zip"
    unzipped = write_reproducible_zip(function_entries(src, function, site), zip_path)
    uses_layer = bool(ODBC_LAYER_USERS & set(requirement_names(src / function / "requirements.txt")))
    return Artefact(function, zip_path, unzipped, uses_odbc_layer=uses_layer, cache_hit=cache_hit)


def install_all(
    src: Path, functions: list[str], target: Target, cache_root: Path
) -> dict[str, tuple[Path | None, bool]]:
    """Install every function's requirements; cache misses run concurrently (pip mostly waits on I/O)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            name: pool.submit(cached_site_packages, src / name / "requirements.txt", target, cache_root)
            for name in functions
        }
        return {name: future.result() for name, future in futures.items()}


# --- ODBC layer --------------------------------------------------------------------------------


def host_machine() -> str:
    return os.uname().machine


def dpkg_file(package: str, basename: str) -> Path:
    """The file of an installed Debian package with the given name."""
    result = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PackagingError(
            f"Debian package {package} is not installed; the ODBC layer is built from it "
            "(run scripts/setup_system.sh as root)"
        )
    for line in result.stdout.splitlines():
        if Path(line).name == basename and Path(line).exists():
            return Path(line)
    raise PackagingError(f"Debian package {package} has no file named {basename}")


def shared_library_closure(roots: Iterable[Path]) -> dict[str, Path]:
    """soname -> file for every non-glibc library the roots load, as this machine's loader resolves them.

    ldd runs with a clean environment so an LD_LIBRARY_PATH of the caller cannot leak other copies in.
    """
    closure: dict[str, Path] = {}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for root in roots:
        result = subprocess.run(["ldd", str(root)], capture_output=True, text=True, check=False, env=env)
        if result.returncode != 0:
            raise PackagingError(f"ldd {root} failed: {result.stderr.strip()}")
        for line in result.stdout.splitlines():
            soname, _, rest = line.strip().partition(" => ")
            if not rest or soname in GLIBC_SONAMES:
                continue
            if rest.startswith("not found"):
                raise PackagingError(f"{root} needs {soname}, which this machine's loader cannot find")
            closure[soname] = Path(rest.split(" (", 1)[0])
    return closure


def glibc_versions_needed(shared_object: Path) -> set[str]:
    """GLIBC_* symbol versions the object requires (its 'Version needs' section)."""
    result = subprocess.run(
        ["readelf", "--version-info", "--wide", str(shared_object)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise PackagingError(f"readelf {shared_object} failed: {result.stderr.strip()}")
    needs = result.stdout.partition("Version needs section")[2]
    return set(_GLIBC_VERSION.findall(needs))


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def check_glibc(libraries: Mapping[str, Path], ceiling: tuple[int, int], runtime: str) -> list[str]:
    """Problems: libraries that need a glibc symbol version newer than the runtime has (or a private one)."""
    problems = []
    for name, path in sorted(libraries.items()):
        for version in sorted(glibc_versions_needed(path)):
            if version == "PRIVATE" or version_tuple(version) > ceiling:
                problems.append(f"{name} needs GLIBC_{version}; {runtime} provides glibc {ceiling[0]}.{ceiling[1]}")
    return problems


def path_spellings(path: Path) -> list[str]:
    """A file's path as dpkg may have registered it: merged-/usr systems hold /lib and /usr/lib alike."""
    spellings = []
    for candidate in (str(path), str(path.resolve())):
        bare = candidate.removeprefix("/usr")
        spellings += [candidate, bare, "/usr" + bare]
    return list(dict.fromkeys(spellings))


def owning_packages(paths: Iterable[Path]) -> dict[Path, str]:
    """Debian package that installed each file (one dpkg call: each call costs ~0.1 s)."""
    paths = list(paths)
    spellings = {spelling: path for path in paths for spelling in path_spellings(path)}
    # dpkg -S exits non-zero when any spelling is unknown, which most alternatives are: read stdout only.
    result = subprocess.run(["dpkg", "-S", *spellings], capture_output=True, text=True, check=False)
    owners: dict[Path, str] = {}
    for line in result.stdout.splitlines():
        packages, _, registered = line.partition(": ")
        if registered in spellings:
            owners[spellings[registered]] = packages.split(",")[0].split(":")[0].strip()
    unowned = [str(path) for path in paths if path not in owners]
    if unowned:
        raise PackagingError(f"no Debian package owns {', '.join(unowned)}; the layer ships packaged libraries only")
    return owners


def package_version(package: str) -> str:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def odbcinst_ini() -> str:
    # Lambda unpacks layers under /opt; functions set ODBCSYSINI=/opt so unixODBC reads this file.
    return (
        f"[{ODBC_DRIVER_NAME}]\n"
        "Description = FreeTDS ODBC driver (SQL Server, Sybase)\n"
        "Driver = /opt/lib/libtdsodbc.so\n"
        "UsageCount = 1\n"
    )


def build_odbc_layer(target: Target, staging: Path) -> Artefact:
    """lib/ with unixODBC, FreeTDS and every non-glibc library they load, plus odbcinst.ini.

    The whole dependency closure ships (GnuTLS, Kerberos, nettle, p11-kit, ...), not just what
    Amazon Linux 2023 is known to lack: the runtime's library set is not something this machine can
    inspect, Lambda puts /opt/lib after /lib64 on LD_LIBRARY_PATH so a library the runtime has
    still wins over ours (sonames guarantee the ABI), and the few MB buy a layer that loads anywhere
    with glibc >= 2.34. glibc itself stays out (see GLIBC_SONAMES) and is checked instead.
    """
    machine = ARCH_MACHINE[target.arch]
    if machine != host_machine():
        raise PackagingError(
            f"the ODBC layer for {target.arch} needs {machine} builds of unixODBC and FreeTDS, but this machine "
            f"({host_machine()}) has only its own Debian packages; build on an {machine} host, or pass "
            "--without-odbc-layer if no function uses SQL Server"
        )
    roots = {name: dpkg_file(package, basename) for name, (package, basename) in ODBC_ROOT_FILES.items()}
    libraries = dict(shared_library_closure(roots.values()))
    libraries.update(roots)  # roots under the names the layer promises (libtdsodbc.so, not its soname)
    problems = check_glibc(libraries, target.glibc, target.runtime)
    if problems and target.runtime != "python3.11":
        raise PackagingError("the ODBC layer would not load on Lambda:\n  " + "\n  ".join(problems))
    if problems:
        # python3.11 builds serve the local demo on this host; Amazon Linux 2 could not load the layer.
        print("warning: ODBC layer is for local use only:\n  " + "\n  ".join(problems), file=sys.stderr)

    files_dir = staging / "odbc_layer_files"
    (files_dir / "licenses").mkdir(parents=True)
    entries = {f"lib/{name}": path.resolve() for name, path in libraries.items()}
    (files_dir / "odbcinst.ini").write_text(odbcinst_ini())
    entries["odbcinst.ini"] = files_dir / "odbcinst.ini"
    # unixODBC, FreeTDS and GnuTLS are LGPL: ship each package's copyright file and the exact versions.
    packages = sorted(set(owning_packages(libraries.values()).values()))
    for package in packages:
        copyright_file = Path("/usr/share/doc") / package / "copyright"
        if copyright_file.is_file():
            entries[f"licenses/{package}/copyright"] = copyright_file
    (files_dir / "licenses" / "PACKAGES.txt").write_text("".join(f"{p} {package_version(p)}\n" for p in packages))
    entries["licenses/PACKAGES.txt"] = files_dir / "licenses" / "PACKAGES.txt"
    zip_path = staging / ODBC_LAYER_ZIP
    unzipped = write_reproducible_zip(entries, zip_path)
    shutil.rmtree(files_dir)
    return Artefact(ODBC_LAYER_NAME, zip_path, unzipped)


# --- limits, manifest, publishing --------------------------------------------------------------


def megabytes(size: int) -> str:
    return f"{size / MIB:.1f} MB"


def check_limits(functions: list[Artefact], layer: Artefact | None, limits: Limits) -> list[str]:
    """Every Lambda size limit the artefacts break, each naming the artefact and its sizes."""
    problems = []
    for artefact in [*functions, *([layer] if layer else [])]:
        zipped = artefact.zip_path.stat().st_size
        if zipped > limits.max_zipped:
            problems.append(
                f"{artefact.name}: {artefact.zip_path.name} is {megabytes(zipped)} ({zipped} bytes) zipped, over "
                f"the {megabytes(limits.max_zipped)} ({limits.max_zipped} bytes) limit for a direct upload"
            )
        with_layers = artefact.unzipped_size
        detail = f"{megabytes(artefact.unzipped_size)}"
        if artefact.uses_odbc_layer and layer is not None:
            with_layers += layer.unzipped_size
            detail += f" + {megabytes(layer.unzipped_size)} for the {layer.name} layer"
        if with_layers > limits.max_unzipped:
            problems.append(
                f"{artefact.name}: unzipped size {detail} = {megabytes(with_layers)} ({with_layers} bytes), over "
                f"the {megabytes(limits.max_unzipped)} ({limits.max_unzipped} bytes) Lambda limit"
            )
    return problems


def manifest(target: Target, functions: list[Artefact], layer: Artefact | None, build_dir: Path) -> dict[str, object]:
    def described(artefact: Artefact) -> dict[str, object]:
        path = build_dir / artefact.zip_path.name
        return {"zip": path.name, "source_code_hash": base64_sha256(path), "size": path.stat().st_size}

    return {
        "runtime": target.runtime,
        "architecture": target.arch,
        "functions": {
            a.name: {**described(a), "handler": f"{a.name}.handler.handler"}
            for a in sorted(functions, key=lambda a: a.name)
        },
        "layers": {layer.name: described(layer)} if layer else {},
    }


def write_atomically(path: Path, text: str) -> None:
    """Readers (Terraform, a concurrent plan) see the old file or the new one, never a partial one."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def previous_zips(build_dir: Path) -> set[str]:
    """Zips the last manifest published; only those are ours to delete."""
    try:
        old = json.loads((build_dir / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return set()
    listed = [*old.get("functions", {}).values(), *old.get("layers", {}).values()]
    return {entry["zip"] for entry in listed if isinstance(entry, dict) and "zip" in entry}


def publish(build_dir: Path, target: Target, functions: list[Artefact], layer: Artefact | None) -> dict[str, object]:
    """Move the checked zips into the build directory, write the manifest, then drop stale zips."""
    artefacts = [*functions, *([layer] if layer else [])]
    stale = previous_zips(build_dir) - {a.zip_path.name for a in artefacts}
    for artefact in artefacts:
        os.replace(artefact.zip_path, build_dir / artefact.zip_path.name)
    document = manifest(target, functions, layer, build_dir)
    write_atomically(build_dir / MANIFEST_NAME, json.dumps(document, indent=2, sort_keys=True) + "\n")
    for name in sorted(stale):
        (build_dir / Path(name).name).unlink(missing_ok=True)
    return document


# --- entry point -------------------------------------------------------------------------------


def package(
    src: Path,
    build_dir: Path,
    target: Target,
    *,
    cache_root: Path | None = None,
    limits: Limits | None = None,
    with_odbc_layer: bool = True,
) -> dict[str, object]:
    """Build everything into a staging directory, check it, then publish it; returns the manifest."""
    limits = limits or Limits()
    build_dir.mkdir(parents=True, exist_ok=True)
    cache_root = cache_root or build_dir / ".cache" / "site-packages"
    functions = discover_functions(src)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=build_dir))
    try:
        installs = install_all(src, functions, target, cache_root)
        # zlib releases the GIL while compressing, so zips build in parallel on threads.
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            layer_job = pool.submit(build_odbc_layer, target, staging) if with_odbc_layer else None
            jobs = [pool.submit(build_function, src, name, staging, *installs[name]) for name in functions]
            artefacts = [job.result() for job in jobs]
            layer = layer_job.result() if layer_job else None
        problems = check_limits(artefacts, layer, limits)
        if problems:
            raise PackagingError("Lambda size limits exceeded:\n  " + "\n  ".join(problems))
        document = publish(build_dir, target, artefacts, layer)
        report(artefacts, layer, build_dir)
        return document
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def report(functions: list[Artefact], layer: Artefact | None, build_dir: Path) -> None:
    origin = {None: "", True: "  (requirements from cache)", False: "  (requirements installed)"}
    for artefact in [*functions, *([layer] if layer else [])]:
        zipped = megabytes((build_dir / artefact.zip_path.name).stat().st_size)
        unzipped = megabytes(artefact.unzipped_size)
        print(f"{artefact.zip_path.name:<28} {zipped:>9} zipped {unzipped:>9} unzipped{origin[artefact.cache_hit]}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", type=Path, default=Path("build"))
    parser.add_argument("--runtime", choices=RUNTIMES, default="python3.12")
    parser.add_argument("--arch", choices=sorted(ARCH_MACHINE), default="x86_64")
    parser.add_argument("--src", type=Path, default=REPO_ROOT / "lambda_src", help="directory of function packages")
    parser.add_argument("--cache-dir", type=Path, help="install cache (default: BUILD_DIR/.cache/site-packages)")
    parser.add_argument("--max-zipped-bytes", type=int, default=MAX_ZIPPED_BYTES)
    parser.add_argument("--max-unzipped-bytes", type=int, default=MAX_UNZIPPED_BYTES)
    parser.add_argument(
        "--without-odbc-layer", action="store_true", help="skip the ODBC layer (manifest 'layers' is then empty)"
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    try:
        package(
            args.src.resolve(),
            args.build_dir.resolve(),
            Target(args.runtime, args.arch),
            cache_root=args.cache_dir.resolve() if args.cache_dir else None,
            limits=Limits(args.max_zipped_bytes, args.max_unzipped_bytes),
            with_odbc_layer=not args.without_odbc_layer,
        )
    except PackagingError as error:
        print(f"package: error: {error}", file=sys.stderr)
        return 1
    print(f"packaged for {args.runtime}/{args.arch} in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
