"""Check that a build directory holds exactly the zips its manifest describes.

    python3 scripts/verify_build.py build

The apply job of the CI/CD workflows runs this on the build/ it downloaded with the saved plan:
Terraform uploads whatever file sits at a function's path at apply time, while the plan recorded
the manifest's `source_code_hash`, so a missing, truncated or swapped zip must stop the apply
rather than deploy code nobody reviewed. Standard library only: it runs before any setup.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any


def sha256(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.digest()


def base64_sha256(path: Path) -> str:
    """What Terraform's filebase64sha256() returns, and the manifest's source_code_hash."""
    return base64.b64encode(sha256(path)).decode("ascii")


def problems(build_dir: Path) -> list[str]:
    manifest_path = build_dir / "manifest.json"
    if not manifest_path.is_file():
        return [f"{manifest_path} is missing"]
    try:
        manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        return [f"{manifest_path} is not JSON: {exc}"]
    entries = {
        f"{kind} {name}": entry
        for kind in ("functions", "layers")
        for name, entry in (manifest.get(kind) or {}).items()
    }
    if not entries:
        return [f"{manifest_path} lists no functions or layers"]
    found: list[str] = []
    for label, entry in sorted(entries.items()):
        zip_path = build_dir / entry["zip"]
        if not zip_path.is_file():
            found.append(f"{label}: {zip_path} is missing")
            continue
        if zip_path.stat().st_size != entry["size"]:
            found.append(f"{label}: {zip_path} has {zip_path.stat().st_size} bytes, manifest says {entry['size']}")
        if base64_sha256(zip_path) != entry["source_code_hash"]:
            found.append(f"{label}: {zip_path} does not match the manifest's source_code_hash")
    return found


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: verify_build.py BUILD_DIR", file=sys.stderr)
        return 2
    build_dir = Path(args[0])
    found = problems(build_dir)
    for problem in found:
        print(f"verify_build: {problem}", file=sys.stderr)
    if found:
        return 1
    print(f"verify_build: every zip in {build_dir}/manifest.json is present and matches its hash")
    return 0


if __name__ == "__main__":
    sys.exit(main())
