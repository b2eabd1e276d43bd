"""The benchmarks' results file and the README table generated from it (no timing is asserted)."""

from __future__ import annotations

import pkgutil
from pathlib import Path

import pytest

from scripts.bench import _readme, _results
from scripts.bench._phases import phase_of


@pytest.fixture
def results_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "bench" / "results.json"
    monkeypatch.setattr(_results, "RESULTS", path)
    return path


def _record(benchmark: str, case: str, ours: float, **kwargs: object) -> _results.Result:
    options: dict = {"unit": "rows/s", "baseline": 100.0, "baseline_what": "psql", "target": 0.8} | kwargs
    return _results.record(benchmark, case, ours=ours, **options)


def test_entries_merge_and_a_rerun_replaces_only_its_own(results_file: Path) -> None:
    _record("file_loader", "append", 90)
    _record("table_sync", "new", 60, target=0.5)
    _record("file_loader", "append", 70)

    entries = _results.load()
    assert sorted(entries) == ["file_loader/append", "table_sync/new"]
    append = entries["file_loader/append"]
    assert (append.ours, append.ratio, append.met) == (70, 0.7, False)
    assert entries["table_sync/new"].met
    assert append.machine["cores"] >= 1 and append.machine["memory_gb"] > 0
    assert "file_loader/append" in _results.summary_table() and "MISSED" in _results.summary_table()


def test_durations_compare_the_other_way_and_memory_ceilings_count(results_file: Path) -> None:
    faster = _record("backfill", "set_based", 4.0, unit="s", baseline=3.0, target=0.7, lower_is_better=True)
    assert faster.ratio == 0.75 and faster.met
    memory = _record(
        "file_loader",
        "memory",
        50,
        unit="MB/s",
        baseline=None,
        baseline_what=None,
        target=None,
        peak_rss_mb=160,
        rss_target_mb=150,
    )
    assert memory.ratio is None and not memory.met


def test_readme_block_is_replaced_and_the_rest_kept(results_file: Path) -> None:
    _record("file_loader", "append", 90, peak_rss_mb=67)
    text = f"# Title\n\n{_readme.BEGIN}\nold table\n{_readme.END}\n\nafter\n"
    rewritten = _readme.rewrite(text, _results.load())
    assert rewritten.startswith("# Title\n\n") and rewritten.endswith(f"{_readme.END}\n\nafter\n")
    assert "old table" not in rewritten
    assert "| file_loader / append | 90 rows/s | psql: 100 rows/s | **0.9x** | >= 0.8x | 67 MB | yes |" in rewritten
    with pytest.raises(SystemExit, match="markers"):
        _readme.rewrite("# no markers\n", _results.load())


def test_the_readme_has_the_generated_block() -> None:
    readme = _readme.README.read_text()
    assert readme.index(_readme.BEGIN) < readme.index(_readme.END)


def test_every_benchmark_records_its_results() -> None:
    directory = Path(_results.__file__).parent
    for module in pkgutil.iter_modules([str(directory)]):
        if not module.name.startswith("_"):
            assert "record(" in (directory / f"{module.name}.py").read_text(), module.name


@pytest.mark.parametrize(
    ("statement", "phase"),
    [
        ("SELECT ARRAY[pg_try_advisory_xact_lock(%s)]", "lock"),
        ('SELECT status FROM "pipeline_state"."file_loads" WHERE bucket = %s', "ledger check"),
        ('INSERT INTO "pipeline_state"."file_loads" AS l (bucket)', "ledger write"),
        ('COPY "public"."t" ("id") FROM STDIN', "COPY"),
        ("SELECT 1", "health check"),
    ],
)
def test_statements_are_filed_under_their_phase(statement: str, phase: str) -> None:
    assert phase_of(statement) == phase
