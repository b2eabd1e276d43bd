"""Run every pipeline benchmark: `python -m scripts.bench [name ...]`.

Each module in this package named after a pipeline exposes `main() -> None`, which measures the
pipeline and a baseline in the same run and prints the ratio.

Each benchmark runs in an interpreter of its own: what one leaves in its process (environment
variables pointing at its stopped moto server, a peak RSS of gigabytes, imported handlers with
their cached clients) cannot reach the next. A failed benchmark does not stop the others; the
exit status says whether all passed.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import time
from pathlib import Path

RUN_ONE = "import sys, importlib; importlib.import_module('scripts.bench.' + sys.argv[1]).main()"


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    names = available()
    wanted = argv or names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; available: {names}")
    failed: list[str] = []
    for name in wanted:
        print(f"== bench {name}", flush=True)
        started = time.monotonic()
        if subprocess.run([sys.executable, "-c", RUN_ONE, name], check=False).returncode != 0:
            failed.append(name)
        print(
            f"== bench {name}: {'FAILED' if name in failed else 'ok'} in {time.monotonic() - started:.0f} s", flush=True
        )
    if failed:
        print(f"failed benchmark(s): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
