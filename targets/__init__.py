"""Systems under test, one module each. Imported by name so a run loads only its own client library."""

import importlib
from types import ModuleType

TARGETS = ("redis", "kafka")


def load(name: str) -> ModuleType:
    if name not in TARGETS:
        raise KeyError(name)
    return importlib.import_module(f"targets.{name}")
