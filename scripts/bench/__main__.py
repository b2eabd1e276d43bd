"""Run every pipeline benchmark: `python -m scripts.bench [name ...]`.

Each module in this package named after a pipeline exposes `main() -> None`, which measures the
pipeline and a baseline in the same run, prints the ratio and records it with
`scripts.bench._results.record`. The run ends with the table of every entry in
`build/bench/results.json` (this run's and earlier ones').
"""

import importlib
import pkgutil
import sys
from pathlib import Path

from scripts.bench._results import summary_table


def main(argv: list[str]) -> None:
    available = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_"))
    wanted = argv or available
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; available: {available}")
    for name in wanted:
        print(f"== bench {name}", flush=True)
        importlib.import_module(f"scripts.bench.{name}").main()
    print("== results", flush=True)
    print(summary_table())


if __name__ == "__main__":
    main(sys.argv[1:])
