"""Download a release's prebuilt Lambda packages, verify them, and write the directory `build_dir` reads.

    python3 scripts/fetch_packages.py --repository acme/aws-data-pipelines --version v0.2.0 \
        --arch x86_64 --output packages
    python3 scripts/fetch_packages.py --from ./release-assets --output packages     # a local copy
    python3 scripts/fetch_packages.py --from https://mirror.example.com/v0.2.0/ --output packages

A release (see .github/workflows/release.yml) carries, per runtime and architecture, the manifest
and the zips of `make package` under the names `<runtime>-<arch>-<file>` (for example
`python3.12-arm64-manifest.json`), plus one `SHA256SUMS` over every asset. This script fetches
`SHA256SUMS` and the manifest, then every zip the manifest names, and refuses the result unless

- every file's SHA-256 equals its line in `SHA256SUMS` (a truncated or swapped download), and
- every zip's size and base64 SHA-256 equal the manifest's `size` and `source_code_hash`, the
  value Terraform records in the plan (scripts/verify_build.py, the check CI runs before an apply).

The output directory then holds `manifest.json` and the zips under their manifest names, exactly
what `make package` writes: set the module's `build_dir` to it. Nothing is written unless every
check passes, and an existing output directory is replaced whole, never half.

Standard library only: it runs wherever Python 3 and Terraform run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO

try:
    from scripts.verify_build import problems
except ModuleNotFoundError:  # run as a file: python3 <checkout>/scripts/fetch_packages.py
    from verify_build import problems  # type: ignore[no-redef]

CHECKSUMS = "SHA256SUMS"
MANIFEST = "manifest.json"
RUNTIMES = ("python3.11", "python3.12", "python3.13")
ARCHITECTURES = ("x86_64", "arm64")
_CHECKSUM_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")
_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")
CHUNK = 1 << 20


class FetchError(Exception):
    """The packages cannot be used; the message names the file and what is wrong."""


def asset_name(runtime: str, arch: str, file_name: str) -> str:
    """Name of a build file among a release's assets: both architectures share one release."""
    return f"{runtime}-{arch}-{file_name}"


def release_url(repository: str, version: str, server: str = "https://github.com") -> str:
    """Where GitHub serves the assets of the release tagged `version` (v-prefixed or not)."""
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repository):
        raise FetchError(f"--repository {repository!r} is not OWNER/NAME")
    if not _VERSION.match(version):
        raise FetchError(f"--version {version!r} is not a semantic version such as v1.2.3")
    tag = version if version.startswith("v") else f"v{version}"
    return f"{server.rstrip('/')}/{repository}/releases/download/{tag}/"


def parse_checksums(text: str) -> dict[str, str]:
    """file name -> hex SHA-256, from `sha256sum` output."""
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _CHECKSUM_LINE.match(line.strip())
        if not match:
            raise FetchError(f"{CHECKSUMS} line {number} is not '<sha256>  <file>': {line[:100]!r}")
        sums[match.group(2)] = match.group(1)
    return sums


class Source:
    """Release assets under a base: an http(s) URL, a file:// URL or a local directory."""

    def __init__(self, base: str, timeout: float = 60.0) -> None:
        scheme = urllib.parse.urlsplit(base).scheme
        self.remote = scheme in ("http", "https", "file")
        self.base = base if not self.remote or base.endswith("/") else base + "/"
        self.timeout = timeout
        if not self.remote and not Path(base).is_dir():
            raise FetchError(f"{base} is neither a URL nor a directory")

    def where(self, name: str) -> str:
        return urllib.parse.urljoin(self.base, urllib.parse.quote(name)) if self.remote else str(Path(self.base, name))

    def open(self, name: str) -> BinaryIO:
        if not self.remote:
            return Path(self.base, name).open("rb")
        request = urllib.request.Request(self.where(name), headers={"User-Agent": "fetch_packages"})
        return urllib.request.urlopen(request, timeout=self.timeout)

    def copy(self, name: str, destination: Path) -> str:
        """Copy the asset to `destination`; returns its hex SHA-256."""
        digest = hashlib.sha256()
        try:
            with self.open(name) as stream, destination.open("wb") as out:
                for chunk in iter(lambda: stream.read(CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
        except urllib.error.HTTPError as error:
            raise FetchError(f"{self.where(name)}: HTTP {error.code} {error.reason}") from None
        except (urllib.error.URLError, OSError) as error:
            raise FetchError(f"{self.where(name)}: {getattr(error, 'reason', error)}") from None
        return digest.hexdigest()


def fetch(source: Source, runtime: str, arch: str, output: Path) -> dict[str, object]:
    """Verify and install the packages for runtime/arch into `output`; returns the manifest."""
    output = output.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        source.copy(CHECKSUMS, staging / CHECKSUMS)
        sums = parse_checksums((staging / CHECKSUMS).read_text())
        (staging / CHECKSUMS).unlink()

        def download(file_name: str) -> None:
            name = asset_name(runtime, arch, file_name)
            if name not in sums:
                offered = sorted(n.removesuffix(f"-{MANIFEST}") for n in sums if n.endswith(f"-{MANIFEST}"))
                raise FetchError(f"{CHECKSUMS} of {source.base} lists no {name} (packages: {', '.join(offered)})")
            actual = source.copy(name, staging / file_name)
            if actual != sums[name]:
                raise FetchError(f"{source.where(name)} has SHA-256 {actual}, {CHECKSUMS} says {sums[name]}")

        download(MANIFEST)
        try:
            manifest = json.loads((staging / MANIFEST).read_text())
        except ValueError as error:
            raise FetchError(f"{asset_name(runtime, arch, MANIFEST)} is not JSON: {error}") from None
        if (manifest.get("runtime"), manifest.get("architecture")) != (runtime, arch):
            raise FetchError(
                f"{asset_name(runtime, arch, MANIFEST)} describes {manifest.get('runtime')}/"
                f"{manifest.get('architecture')} packages, not {runtime}/{arch}"
            )
        entries = [*manifest.get("functions", {}).values(), *manifest.get("layers", {}).values()]
        for entry in entries:
            zip_name = str(entry.get("zip", ""))
            if Path(zip_name).name != zip_name or not zip_name.endswith(".zip"):
                raise FetchError(f"the manifest names {zip_name!r}, not a zip file name")
            download(zip_name)
        found = problems(staging)
        if found:
            raise FetchError("the packages do not match their manifest:\n  " + "\n  ".join(found))
        os.chmod(staging, 0o755)
        _replace_directory(staging, output)
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace_directory(new: Path, target: Path) -> None:
    """Put `new` at `target`; an old `target` is moved aside first, put back if that fails, removed after."""
    old = None
    if target.exists() or target.is_symlink():
        if not target.is_dir() or (not (target / MANIFEST).is_file() and any(target.iterdir())):
            raise FetchError(f"{target} exists and is not a packages directory (no {MANIFEST}); refusing to replace it")
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(old)
    try:
        new.rename(target)
    except OSError as error:
        if old is not None:
            old.rename(target)
        raise FetchError(f"cannot move the verified packages to {target}: {error}") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--version", help="release tag, e.g. v0.2.0 (with --repository)")
    where.add_argument("--from", dest="source", help="URL or directory holding the release's assets")
    parser.add_argument("--repository", help="GitHub OWNER/NAME of the release (with --version)")
    parser.add_argument("--server", default="https://github.com", help="GitHub server (Enterprise Server)")
    parser.add_argument("--runtime", choices=RUNTIMES, default="python3.12", help="the module's lambda_runtime")
    parser.add_argument("--arch", choices=ARCHITECTURES, default="x86_64", help="the module's lambda_architecture")
    parser.add_argument("--output", type=Path, required=True, help="directory to write (the module's build_dir)")
    args = parser.parse_args(argv)
    if args.version and not args.repository:
        parser.error("--version needs --repository OWNER/NAME")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        base = args.source or release_url(args.repository, args.version, args.server)
        manifest = fetch(Source(base), args.runtime, args.arch, args.output)
    except FetchError as error:
        print(f"fetch_packages: error: {error}", file=sys.stderr)
        return 1
    count = len(manifest.get("functions", {})) + len(manifest.get("layers", {}))
    print(f"fetch_packages: {count} packages for {args.runtime}/{args.arch} verified in {args.output}")
    print(f'fetch_packages: set build_dir = "{args.output.resolve()}" (or a path relative to your configuration)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
