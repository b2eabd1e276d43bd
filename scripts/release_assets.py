"""Lay out `make package` output as release assets, checksum them, and pick the release notes.

    python3 -m scripts.release_assets stage --build-dir build --output dist     # per architecture
    python3 -m scripts.release_assets checksums dist                            # once, over all of them
    python3 -m scripts.release_assets notes --tag v1.2.0 > notes.md             # CHANGELOG.md section

The release workflow (.github/workflows/release.yml) runs these, and scripts/fetch_packages.py reads
what they write: assets named `<runtime>-<arch>-<file>` (both architectures share one release) and
a `SHA256SUMS` in `sha256sum` format, so `sha256sum --check --ignore-missing SHA256SUMS` works too.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

from scripts.fetch_packages import CHECKSUMS, MANIFEST, asset_name
from scripts.verify_build import problems, sha256

REPO = Path(__file__).resolve().parent.parent
_TAG = re.compile(r"^v(\d+\.\d+\.\d+)(-[0-9A-Za-z.-]+)?$")


class ReleaseError(Exception):
    """Nothing to release as asked; the message says why."""


def stage(build_dir: Path, output: Path) -> list[Path]:
    """Copy the manifest and every zip it names into `output` under their asset names."""
    found = problems(build_dir)
    if found:
        raise ReleaseError(f"{build_dir} is not a complete build:\n  " + "\n  ".join(found))
    manifest = json.loads((build_dir / MANIFEST).read_text())
    runtime, arch = manifest["runtime"], manifest["architecture"]
    entries = [*manifest["functions"].values(), *manifest["layers"].values()]
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name in [MANIFEST, *(entry["zip"] for entry in entries)]:
        target = output / asset_name(runtime, arch, file_name)
        shutil.copyfile(build_dir / file_name, target)
        written.append(target)
    return written


def write_checksums(directory: Path) -> Path:
    """SHA256SUMS over every other file in `directory`, sorted by name."""
    lines = []
    for path in sorted(p for p in directory.iterdir() if p.is_file() and p.name != CHECKSUMS):
        lines.append(f"{sha256(path).hex()}  {path.name}\n")
    if not lines:
        raise ReleaseError(f"{directory} holds no assets to checksum")
    (directory / CHECKSUMS).write_text("".join(lines))
    return directory / CHECKSUMS


def release_notes(changelog: str, tag: str) -> str:
    """The CHANGELOG.md section of the tag's version; a pre-release (v1.2.0-rc.1) may fall back to
    [Unreleased]. A final release without its own section is refused: write the changelog first."""
    match = _TAG.match(tag)
    if not match:
        raise ReleaseError(f"tag {tag!r} is not a semantic version tag such as v1.2.0 or v1.2.0-rc.1")
    version, prerelease = match.group(1) + (match.group(2) or ""), bool(match.group(2))
    sections = dict(re.findall(r"^## \[([^\]]+)\][^\n]*\n(.*?)(?=^## \[|\Z)", changelog, re.MULTILINE | re.DOTALL))
    for name in (version, "Unreleased") if prerelease else (version,):
        if sections.get(name, "").strip():
            return sections[name].strip() + "\n"
    raise ReleaseError(f"CHANGELOG.md has no section '## [{version}]': add it before tagging {tag}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    staged = commands.add_parser("stage", help="copy a build directory's packages under their asset names")
    staged.add_argument("--build-dir", type=Path, default=Path("build"))
    staged.add_argument("--output", type=Path, required=True)
    sums = commands.add_parser("checksums", help=f"write {CHECKSUMS} over a directory of assets")
    sums.add_argument("directory", type=Path)
    notes = commands.add_parser("notes", help="print the CHANGELOG.md section of a tag")
    notes.add_argument("--tag", required=True)
    notes.add_argument("--changelog", type=Path, default=REPO / "CHANGELOG.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "stage":
            for path in stage(args.build_dir, args.output):
                print(path)
        elif args.command == "checksums":
            print(write_checksums(args.directory).read_text(), end="")
        else:
            print(release_notes(args.changelog.read_text(), args.tag), end="")
    except ReleaseError as error:
        print(f"release_assets: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
