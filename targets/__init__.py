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


def load(name: str) -> Target:
    """The target called `name`; KeyError for an unknown name."""
    if name not in names():
        raise KeyError(name)
    target: Target = importlib.import_module(f"targets.{name}").TARGET
    if target.name != name:
        raise RuntimeError(f"targets/{name}/ declares a target named {target.name!r}")
    return target
