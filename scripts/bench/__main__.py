"""Run every pipeline benchmark: `python -m scripts.bench [name ...]`.

Each module in this package named after a pipeline exposes `main() -> None`, which measures the
pipeline and a baseline in the same run, prints the ratio and records it with
`scripts.bench._results.record`. Each benchmark runs in a process of its own, so a peak RSS read in
the benchmark's own process (`_child.own_peak_rss_mb`, VmHWM, which exec resets) is its own and
not an earlier benchmark's, and one that fails does not stop the others. The run ends with the table of every entry in
`build/bench/results.json` (this run's and earlier ones').
"""

import importlib
import pkgutil
import subprocess
import sys
import time
from pathlib import Path

from scripts.bench._results import summary_table


def main(argv: list[str]) -> None:
    available = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_"))
    wanted = argv or available
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; available: {available}")
    failed = []
    for name in wanted:
        started = time.monotonic()
        if _run_alone(name):
            failed.append(name)
        status = "FAILED" if name in failed else "ok"
        print(f"== bench {name}: {status} in {time.monotonic() - started:.0f} s", flush=True)
    print("== results", flush=True)
    print(summary_table())
    if failed:
        raise SystemExit(f"failed benchmark(s): {', '.join(failed)}")


def _run_alone(name: str) -> int:
    child = subprocess.Popen([sys.executable, "-m", "scripts.bench", "--one", name])
    try:
        return child.wait()
    except KeyboardInterrupt:
        # Ctrl-C reached the child too: let it stop its servers (subprocess.run would kill it).
        child.wait()
        raise


def run(name: str) -> None:
    print(f"== bench {name}", flush=True)
    importlib.import_module(f"scripts.bench.{name}").main()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        run(sys.argv[2])
    else:
        main(sys.argv[1:])
