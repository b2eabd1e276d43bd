"""Module READMEs: generated input/output tables are in sync, and the generator reads HCL right."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import tf_docs

REPO = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).parent / "fixtures" / "docs_module"


def test_every_module_readme_is_in_sync() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "tf_docs.py"), "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"module READMEs out of date (run `make docs`):\n{result.stdout}{result.stderr}"


def test_every_variable_and_output_has_a_description() -> None:
    directories = tf_docs.module_dirs(REPO)
    assert REPO / "modules" / "bucket" in directories
    undocumented: list[str] = []
    for directory in directories:
        variables, outputs = tf_docs.read_module(directory)
        where = directory.relative_to(REPO).as_posix() or "."
        undocumented += [f"{where}: variable {v.name} has no description" for v in variables if not v.description]
        undocumented += [f"{where}: output {o.name} has no description" for o in outputs if not o.description]
    assert not undocumented, "\n".join(undocumented)


# --- the generator on a fixture module ---------------------------------------------------------


@pytest.fixture
def module(tmp_path: Path) -> Path:
    directory = tmp_path / "modules" / "docs_module"
    shutil.copytree(FIXTURE, directory)
    return directory


def _rows(readme: str) -> dict[str, list[str]]:
    """Table rows keyed by the name cell (without backticks), cells split on unescaped pipes."""
    rows: dict[str, list[str]] = {}
    for line in readme.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").replace("\\|", "\0").split("|")]
        cells = [c.replace("\0", "\\|") for c in cells]
        rows[cells[0].strip("`")] = cells
    return rows


def _generate(module: Path) -> str:
    stale = tf_docs.sync([module], module.parents[1], check=False)
    assert stale == [module / "README.md"]
    return (module / "README.md").read_text()


def test_required_means_no_default_not_default_null(module: Path) -> None:
    rows = _rows(_generate(module))
    assert rows["name"][1:4] == ["`string`", "n/a", "yes"]
    assert rows["password"][1:4] == ["`string`", "n/a", "yes"]
    assert rows["kms_key_arn"][1:4] == ["`string`", "`null`", "no"]
    assert rows["untyped"][1:4] == ["`any`", '`"x"`', "no"]


def test_required_inputs_are_listed_first(module: Path) -> None:
    assert list(_rows(_generate(module)))[:6] == ["name", "password", "kms_key_arn", "routes", "tags", "untyped"]


def test_nested_object_type_with_optional_attributes(module: Path) -> None:
    rows = _rows(_generate(module))
    assert rows["routes"][1] == (
        '`list(object({prefix = string, format = optional(string, "csv"), '
        "columns = optional(list(object({name = string, type = optional(string)})), [])}))`"
    )
    assert rows["routes"][2] == '`[{"prefix": "in/"}]`'
    assert rows["tags"][1:3] == ["`map(string)`", '`{"team": "data", "env": "dev"}`']


def test_heredoc_description_keeps_paragraphs_and_lists_in_one_cell(module: Path) -> None:
    rows = _rows(_generate(module))
    assert rows["routes"][4] == (
        "Routes, one per prefix. A hard-wrapped line continues the sentence.<br><br>"
        "Formats:<br>- csv \\| with a pipe<br>- jsonl"
    )


def test_string_escapes_are_decoded(module: Path) -> None:
    rows = _rows(_generate(module))
    assert rows["tags"][4] == 'Tags with "quotes", a ${literal} and a backslash \\.'


def test_sensitive_inputs_and_outputs_are_marked(module: Path) -> None:
    readme = _generate(module)
    rows = _rows(readme)
    assert rows["password"][4] == "A sensitive input. *Sensitive.*"
    assert rows["secret_value"] == ["`secret_value`", "The password, passed through. *Sensitive.*"]
    assert rows["arn"] == ["`arn`", "ARN of the thing."]
    assert "*Sensitive.*" not in rows["name"][4]


def test_missing_readme_is_created_with_a_title(module: Path) -> None:
    readme = _generate(module)
    assert readme.startswith("# Module `docs_module`\n\n" + tf_docs.BEGIN + "\n")
    assert readme.endswith(tf_docs.END + "\n")


def test_text_outside_the_markers_is_preserved(module: Path) -> None:
    before = "# Docs module\n\nWritten by a person.\n\n"
    after = "\n\n## Notes\n\nAlso written by a person.\n"
    (module / "README.md").write_text(before + tf_docs.BEGIN + "\nstale table\n" + tf_docs.END + after)
    readme = _generate(module)
    assert readme.startswith(before + tf_docs.BEGIN + "\n## Inputs\n")
    assert readme.endswith(tf_docs.END + after)
    assert "stale table" not in readme
    # A second run finds nothing to do: the output is stable.
    assert tf_docs.sync([module], module.parents[1], check=False) == []


def test_readme_without_markers_gets_the_block_appended(module: Path) -> None:
    (module / "README.md").write_text("# Docs module\n\nUsage notes.\n")
    readme = _generate(module)
    assert readme.startswith("# Docs module\n\nUsage notes.\n\n" + tf_docs.BEGIN)


def test_unbalanced_markers_are_refused(module: Path) -> None:
    (module / "README.md").write_text(f"# Docs module\n\n{tf_docs.BEGIN}\nno end marker\n")
    with pytest.raises(tf_docs.DocsError, match="exactly one"):
        tf_docs.sync([module], module.parents[1], check=False)


def test_check_mode_reports_a_stale_readme_and_changes_nothing(module: Path) -> None:
    _generate(module)
    readme = module / "README.md"
    (module / "variables.tf").write_text(
        (module / "variables.tf").read_text()
        + '\nvariable "added" {\n  description = "New input."\n  type        = number\n  default     = 3\n}\n'
    )
    before = readme.read_text()
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "tf_docs.py"),
            "--check",
            "--root",
            str(module.parents[1]),
            str(module),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "out of date: modules/docs_module/README.md" in result.stdout
    assert readme.read_text() == before
    assert tf_docs.main(["--root", str(module.parents[1]), str(module)]) == 0
    assert _rows(readme.read_text())["added"][1:5] == ["`number`", "`3`", "no", "New input."]


def test_unparseable_hcl_is_a_clear_error(module: Path) -> None:
    (module / "broken.tf").write_text('variable "x" {\n  type = \n')
    with pytest.raises(tf_docs.DocsError, match=r"broken\.tf: cannot parse HCL"):
        tf_docs.read_module(module)
