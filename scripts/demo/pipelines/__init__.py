"""One driver module per pipeline, named like its package in lambda_src.

A driver module defines `ORDER` (pipelines are driven in ascending order: migrations first, they
create the tables the others load into) and `drive(demo) -> PipelineReport`, which sends sample
data through the deployed wiring and checks what arrived. Adding a pipeline to the demo is adding
its module here; the demo packages, enables (`enable_<name>`) and drives every one it finds.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
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


DRIVERS: dict[str, Callable[[Demo], PipelineReport]] = {
    module.__name__.rsplit(".", 1)[1]: module.drive for module in _drivers()
}
PIPELINES = tuple(DRIVERS)


def drive_all(demo: Demo) -> list[PipelineReport]:
    reports = []
    for package, drive in DRIVERS.items():
        if demo.has(package):
            log(f"driving {package} ...")
            reports.append(drive(demo))
    return reports
