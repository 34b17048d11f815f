"""The registry of systems under test: every package `targets/<name>/` whose `TARGET` satisfies
`plugin.target.Target`. Adding a target is adding its folder; nothing here or in the harness lists them.
A target is imported only when asked for, and imports its client library only when it makes a client,
so listing targets stays cheap."""

from __future__ import annotations

import functools
import importlib
import pkgutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plugin.target import Target

_HERE = Path(__file__).resolve().parent


@functools.cache
def names() -> tuple[str, ...]:
    """The registered targets' names, sorted: the packages in this folder."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules([str(_HERE)]) if m.ispkg))


@functools.cache
def load(name: str) -> Target:
    """The target called `name`, checked against the Target protocol and its clients against the protocols of the
    workloads it serves (plugin.check.PluginError naming what is missing); KeyError for an unknown name."""
    from plugin.check import PluginError, check_clients, check_target

    if name not in names():
        raise KeyError(name)
    where = f"targets/{name}/"
    module = importlib.import_module(f"targets.{name}")
    if not hasattr(module, "TARGET"):
        raise PluginError(f"{where}: no TARGET (the package must define `TARGET: Target = ...`; "
                          "docs/adding-a-target.md)")
    target = check_target(module.TARGET, where)
    if target.name != name:
        raise PluginError(f"{where} declares a target named {target.name!r}: it must be named like its folder")
    import workloads

    for w, clients in target.clients.items():
        if w not in workloads.names():
            raise PluginError(f"{where}: it supplies clients for a workload {w!r} that does not exist; workloads: "
                              f"{', '.join(workloads.names())}")
        check_clients(name, workloads.load(w), clients)
    return target
