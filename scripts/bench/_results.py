"""One results file for every benchmark: `build/bench/results.json`.

A benchmark module adopts it with one call per measured case:

    record("file_loader", "append", unit="rows/s", ours=704_000, baseline=773_000,
           baseline_what="psql \\copy of the same file", target=0.6, peak_rss_mb=67)

The ratio is ours / baseline for rates (higher is better) and baseline / ours for durations
(`lower_is_better=True`), so a ratio >= target always means "met". A case without a baseline (a
memory ceiling) passes `baseline=None` and `rss_target_mb`. Entries are keyed by
`benchmark/case` and merged into the existing file, so `make bench BENCH=name` replaces that
benchmark's entries and keeps the others; each entry carries when and on what machine it was
measured. `python -m scripts.bench` prints `summary_table()` at the end.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(os.environ.get("BENCH_RESULTS", ROOT / "build" / "bench" / "results.json"))


@dataclass
class Result:
    benchmark: str
    case: str
    unit: str
    ours: float
    baseline: float | None
    baseline_what: str | None
    ratio: float | None
    target: float | None
    met: bool
    peak_rss_mb: float | None = None
    rss_target_mb: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    measured_at: str = ""

    @property
    def key(self) -> str:
        return f"{self.benchmark}/{self.case}"


def machine() -> dict[str, Any]:
    """Cores and memory of this machine: a figure means little without them."""
    lines = Path("/proc/meminfo").read_text().splitlines()
    memory_kb = next((int(line.split()[1]) for line in lines if line.startswith("MemTotal:")), 0)
    return {"cores": os.cpu_count(), "memory_gb": round(memory_kb / 1024 / 1024, 1), "node": os.uname().nodename}


def record(
    benchmark: str,
    case: str,
    *,
    unit: str,
    ours: float,
    baseline: float | None,
    baseline_what: str | None,
    target: float | None,
    lower_is_better: bool = False,
    peak_rss_mb: float | None = None,
    rss_target_mb: float | None = None,
    details: dict[str, Any] | None = None,
) -> Result:
    """Compute the ratio, merge the entry into the results file and print one line."""
    ratio = None
    if baseline is not None and ours > 0 and baseline > 0:
        ratio = round(baseline / ours if lower_is_better else ours / baseline, 3)
    met = (target is None or (ratio is not None and ratio >= target)) and (
        rss_target_mb is None or (peak_rss_mb is not None and peak_rss_mb < rss_target_mb)
    )
    result = Result(
        benchmark=benchmark,
        case=case,
        unit=unit,
        ours=round(ours, 3),
        baseline=None if baseline is None else round(baseline, 3),
        baseline_what=baseline_what,
        ratio=ratio,
        target=target,
        met=met,
        peak_rss_mb=None if peak_rss_mb is None else round(peak_rss_mb, 1),
        rss_target_mb=rss_target_mb,
        details=details or {},
        machine=machine(),
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    entries = load()
    entries[result.key] = result
    save(entries)
    print(f"[result] {_row(result)}", flush=True)
    return result


def load(path: Path | None = None) -> dict[str, Result]:
    path = path or RESULTS
    if not path.exists():
        return {}
    return {key: Result(**entry) for key, entry in json.loads(path.read_text())["results"].items()}


def save(entries: dict[str, Result], path: Path | None = None) -> None:
    path = path or RESULTS
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"results": {key: asdict(entries[key]) for key in sorted(entries)}}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n")
    temporary.replace(path)  # a killed run never leaves half a file


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"
    return f"{text} {unit}".strip()


def _row(result: Result) -> str:
    ratio = "-" if result.ratio is None else f"{result.ratio:.3g}x"
    target = "-" if result.target is None else f">= {result.target:g}x"
    rss = _number(result.peak_rss_mb, "MB")
    if result.rss_target_mb is not None:
        rss += f" (< {result.rss_target_mb:g})"
    return (
        f"{result.key:<40} {_number(result.ours, result.unit):>18} {_number(result.baseline, result.unit):>18} "
        f"{ratio:>8} {target:>9} {rss:>16}  {'ok' if result.met else 'MISSED'}"
    )


def summary_table(entries: dict[str, Result] | None = None) -> str:
    entries = load() if entries is None else entries
    columns = ("ours", 18), ("baseline", 18), ("ratio", 8), ("target", 9), ("peak RSS", 16)
    header = f"{'benchmark/case':<40} " + " ".join(f"{name:>{width}}" for name, width in columns) + "  verdict"
    lines = [header, "-" * len(header)] + [_row(entries[key]) for key in sorted(entries)]
    stamps = sorted({entry.measured_at[:16] for entry in entries.values()})
    if stamps:
        lines.append(f"({len(entries)} entries from {RESULTS}, measured {stamps[0]} .. {stamps[-1]} UTC)")
    return "\n".join(lines)
