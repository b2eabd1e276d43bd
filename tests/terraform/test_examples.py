"""Every example under examples/ plans offline, as a user runs it: `terraform init` and `plan` in the
example's directory against the module beside it, with the packages `make package` built. The
examples are found by listing the directory; test_apply_moto.py also applies examples/minimal."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.terraform import tfkit

EXAMPLES = sorted(p.name for p in (tfkit.REPO / "examples").iterdir() if any(p.glob("*.tf")))


@pytest.fixture(scope="module")
def example_plans(
    tmp_path_factory: pytest.TempPathFactory, tf_env: dict[str, str], build_dir: Path
) -> dict[str, dict[str, Any]]:
    tree = tfkit.copy_tree(tmp_path_factory.mktemp("examples"))
    tfkit.link_build_dir(tree, build_dir)

    def plan(example: str) -> dict[str, Any]:
        directory = tree / "examples" / example
        tfkit.write_offline_provider(directory, filename="provider_override.tf")
        tfkit.init(directory, tf_env)
        # An example that reads a release's fetched packages (packages_dir) is given the build's.
        packages = [f"-var=packages_dir={build_dir}"] if 'variable "packages_dir"' in _variables(directory) else []
        return tfkit.plan_json(
            directory, ["plan", "-refresh=false", "-lock=false", "-input=false", "-no-color", *packages], tf_env
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(EXAMPLES, pool.map(plan, EXAMPLES), strict=True))


def _variables(directory: Path) -> str:
    return "".join(path.read_text() for path in directory.glob("*.tf"))


def test_the_examples_are_found() -> None:
    assert {"minimal", "complete"} <= set(EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_has_a_readme(example: str) -> None:
    readme = tfkit.REPO / "examples" / example / "README.md"
    assert readme.is_file(), f"examples/{example} has no README.md"
    assert "terraform" in readme.read_text()


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_plans_its_pipelines(example: str, example_plans: dict[str, dict[str, Any]]) -> None:
    plan = example_plans[example]
    assert plan["errored"] is False
    resources = tfkit.resources(plan)
    assert resources and all(r["change"]["actions"] == ["create"] for r in resources)
    # The functions planned are exactly those of the pipelines the example enables.
    (call,) = plan["configuration"]["root_module"]["module_calls"].values()
    functions = tfkit.pipeline_functions()
    enabled = {p for p in functions if call["expressions"].get(f"enable_{p}", {}).get("constant_value") is True}
    assert enabled, f"{example} enables no pipeline"
    expected = sorted(f for p in enabled for f in functions[p])
    handlers = sorted(tfkit.after(r)["handler"].split(".")[0] for r in resources if r["type"] == "aws_lambda_function")
    assert handlers == expected
    statements, _ = tfkit.plan_statements(plan)
    assert not tfkit.iam_findings(statements)
