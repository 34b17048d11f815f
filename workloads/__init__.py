"""The registry of workloads: every module `workloads/<name>.py` whose `WORKLOAD` satisfies
`plugin.workload.Workload`. Adding a workload is adding its module. `HELPERS` are modules here that serve
workloads' clients and are not workloads (the queue workload's client-side effect store)."""

from __future__ import annotations

import functools
import importlib
import pkgutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plugin.workload import Workload

_HERE = Path(__file__).resolve().parent
HELPERS = ("base", "effects")


@functools.cache
def names() -> tuple[str, ...]:
    return tuple(sorted(m.name for m in pkgutil.iter_modules([str(_HERE)]) if m.name not in HELPERS))


def load(name: str) -> Workload:
    """The workload called `name`, checked against the Workload protocol (plugin.check.PluginError naming what is
    missing); KeyError for an unknown name."""
    from plugin.check import PluginError, check_workload

    if name not in names():
        raise KeyError(name)
    module = importlib.import_module(f"workloads.{name}")
    if not hasattr(module, "WORKLOAD"):
        raise PluginError(f"workloads/{name}.py: no WORKLOAD (the module must define `WORKLOAD: Workload = ...`; "
                          "docs/adding-a-workload.md)")
    return check_workload(module.WORKLOAD, f"workloads/{name}.py")
