"""Every run option, gathered from its one declaration: the harness's own (the fields of `RunConfig`, declared with
`harness_option`), each workload's (`Workload.options`) and each target's (`Target.options`). The command line
(`add_option_flags`), `RunConfig`, suite files and the pytest plugin all take their names, kinds, defaults and
help from `harness.config.declared()`, so an option added in one place is accepted everywhere
(tests/test_options.py checks that they agree).
"""

from __future__ import annotations

import argparse
from dataclasses import Field, dataclass, field
from typing import Any

import targets
import workloads
from harness.runtime import RUNTIMES
from plugin.options import Option


def harness_option(default: Any, help: str, metavar: str = "", kind: type | None = None, **bounds: Any) -> Any:
    """A `RunConfig` field that is a run option of the harness's own: its declaration lives in the field's metadata
    (kind: the default's type unless given)."""
    return field(default=default, metadata={"option": dict(kind=kind, default=default, help=help, metavar=metavar,
                                                           **bounds)})


def from_field(f: Field) -> Option:
    spec = dict(f.metadata["option"])
    kind = spec.pop("kind") or type(spec["default"])
    return Option(f.name, kind, **spec)


@dataclass(frozen=True)
class Declared:
    """An option and who declares it: "harness", or the workloads or targets that read it."""

    option: Option
    owner: str
    by: tuple[str, ...] = ()


def gather(harness: list[Option]) -> dict[str, Declared]:
    """Every run option by name, in the order the command line lists them: the harness's (`harness`), the
    workloads', the targets'. An option two plug-ins declare must be declared alike (same kind and default)."""
    out: dict[str, Declared] = {o.name: Declared(o, "harness") for o in harness}
    plugged = [("workload", w.name, o) for w in map(workloads.load, workloads.names()) for o in w.options]
    plugged += [("target", t.name, o) for t in map(targets.load, targets.names()) for o in t.options]
    for owner, who, o in plugged:
        had = out.get(o.name)
        if had is None:
            out[o.name] = Declared(o, owner, (who,))
            continue
        if had.owner != owner or (had.option.kind, had.option.default) != (o.kind, o.default):
            raise ValueError(f"run option {o.name!r} is declared twice, differently: by the {had.owner} "
                             f"{', '.join(had.by) or ''} and by the {owner} {who}")
        out[o.name] = Declared(had.option, owner, (*had.by, who))
    return out


CHOICES = {"target": targets.names, "workload": workloads.names, "runtime": lambda: RUNTIMES}


def add_option_flags(p: argparse.ArgumentParser, options: dict[str, Declared],
                     defaults: dict[str, str] | None = None) -> None:
    """A flag for each run option, from its declaration: its kind, metavar and help (with the names it may take,
    and for a plug-in's option who reads it). Every flag defaults to None: the configuration's default applies.
    `defaults` replaces the help's default sentence where a command has defaults of its own (`cost`)."""
    for name, d in options.items():
        o = d.option
        text = o.help
        if defaults and name in defaults:
            text = text.split(" (default:")[0] + f" (default: {defaults[name]})"
        if name in CHOICES:
            text += f"; one of: {', '.join(CHOICES[name]())}"
        if d.owner != "harness":
            text += f" [{d.owner} {', '.join(d.by)}]"
        if o.kind is bool:
            p.add_argument(o.flag, dest=name, action=argparse.BooleanOptionalAction, help=text, default=None)
            continue
        kind = str if o.kind is list else o.kind
        p.add_argument(o.flag, dest=name, type=kind, metavar=o.metavar or None, help=text, default=None)
