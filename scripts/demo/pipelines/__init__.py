"""One driver module per pipeline, named like its package in lambda_src.

A driver module defines `ORDER` (pipelines are driven in ascending order: migrations first, they
create the tables the others load into) and `drive(demo) -> PipelineReport`, which sends sample
data through the deployed wiring and checks what arrived; optionally `prepare(endpoint) -> dict`,
which sets up in moto what the pipeline needs before `terraform apply` and returns Terraform
variables for it. Adding a pipeline to the demo is adding its module here; the demo packages,
enables (`enable_<name>`) and drives every one it finds.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from scripts.demo.environment import Demo
from scripts.demo.processes import log
from scripts.demo.report import PipelineReport


def _drivers() -> list[ModuleType]:
    modules = [
        importlib.import_module(f"{__name__}.{info.name}")
        for info in pkgutil.iter_modules([str(Path(__file__).parent)])
        if not info.name.startswith("_")
    ]
    return sorted(modules, key=lambda module: module.ORDER)


MODULES = {module.__name__.rsplit(".", 1)[1]: module for module in _drivers()}
DRIVERS: dict[str, Callable[[Demo], PipelineReport]] = {name: module.drive for name, module in MODULES.items()}
PIPELINES = tuple(DRIVERS)


def prepare_all(endpoint: str, deployed: Sequence[str]) -> dict[str, str]:
    """Run the `prepare` of every deployed pipeline's driver that has one; their Terraform variables."""
    variables: dict[str, str] = {}
    for name, module in MODULES.items():
        if name in deployed and hasattr(module, "prepare"):
            log(f"preparing {name} ...")
            variables.update(module.prepare(endpoint))
    return variables


def drive_all(demo: Demo) -> list[PipelineReport]:
    reports = []
    for package, drive in DRIVERS.items():
        if demo.has(package):
            log(f"driving {package} ...")
            reports.append(drive(demo))
    return reports
