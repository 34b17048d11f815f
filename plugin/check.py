"""A plug-in checked against its protocol when it is loaded, before anything starts: what is missing is named, also
for a `TARGET` or `WORKLOAD` declared without its annotation (which mypy then does not check), instead of
failing in the middle of a run. The registries (`targets.load`, `workloads.load`) call it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plugin.target import Profile, Target
from plugin.workload import Workload


class PluginError(Exception):
    """A target or workload that does not satisfy its protocol; the message names it, what is missing, and where
    the rules are written."""


def members(protocol: type) -> list[str]:
    """The names a protocol asks for: its annotated attributes, its properties and its methods."""
    names = {k for k in getattr(protocol, "__annotations__", {}) if not k.startswith("_")}
    names |= {k for k, v in vars(protocol).items()
              if not k.startswith("_") and (callable(v) or isinstance(v, property | staticmethod | classmethod))}
    return sorted(names)


def missing(obj: Any, protocol: type) -> list[str]:
    """The members of `protocol` that `obj` lacks."""
    return [m for m in members(protocol) if not hasattr(obj, m)]


def _require(obj: Any, protocol: type, what: str, where: str, rules: str) -> None:
    """PluginError naming every member of `protocol` that `obj` (`what`, at `where`: "TARGET lacks") lacks."""
    lacking = missing(obj, protocol)
    if lacking:
        raise PluginError(f"{where}: {what} {', '.join(lacking)} ({rules})")


def check_target(t: Any, where: str) -> Target:
    """`t` if it is a Target (every member there, the declarations of the right shape), else PluginError."""
    rules = ("the Target protocol in plugin/target.py; docs/adding-a-target.md lists every member, and "
             "plugin.target.TargetBase gives the usual defaults")
    _require(t, Target, "TARGET lacks", where, rules)  # type: ignore[type-abstract]
    shape = [
        ("name", isinstance(t.name, str) and t.name),
        ("profiles", isinstance(t.profiles, Mapping) and t.profiles
         and all(isinstance(p, Profile) for p in t.profiles.values())),
        ("faults", isinstance(t.faults, tuple)),
        ("clients", isinstance(t.clients, Mapping) and t.clients),
        ("node_counts", isinstance(t.node_counts, tuple) and t.node_counts),
        ("options", isinstance(t.options, tuple)),
    ]
    bad = [name for name, ok in shape if not ok]
    if bad:
        raise PluginError(f"{where}: TARGET's {', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not what the Target "
                          "protocol asks for (a name; a mapping of Profiles, not empty; a tuple of fault names; a "
                          "mapping of workload names to clients, not empty; a tuple of cluster sizes, not empty; a "
                          "tuple of Options): docs/adding-a-target.md")
    return t  # type: ignore[no-any-return]


def check_clients(target: str, workload: Workload, clients: Any) -> None:
    """The clients a target supplies for `workload` have every member of the workload's client protocol."""
    _require(clients, workload.client, f"the clients it supplies for the {workload.name} workload lack",
             f"targets/{target}/", f"the workload's client protocol, {workload.client.__name__}; "
             "docs/adding-a-workload.md")


def check_workload(w: Any, where: str) -> Workload:
    """`w` if it is a Workload, else PluginError naming what is missing."""
    rules = ("the Workload protocol in plugin/workload.py; docs/adding-a-workload.md; plugin.workload.WorkloadBase "
             "gives the usual defaults")
    _require(w, Workload, "WORKLOAD lacks", where, rules)  # type: ignore[type-abstract]
    if not isinstance(w.client, type):
        raise PluginError(f"{where}: WORKLOAD's client must be the protocol (a class) its targets' clients follow")
    return w  # type: ignore[no-any-return]
