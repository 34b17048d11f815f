"""What clients do in a run, and which checkers apply to it."""

import importlib
from types import ModuleType

WORKLOADS = ("queue",)


def load(name: str) -> ModuleType:
    if name not in WORKLOADS:
        raise KeyError(name)
    return importlib.import_module(f"workloads.{name}")
