"""Importers: histories recorded by other tools, turned into contract-v1 operations (`docs/history-v1.md`),
so `onceproof check` judges them like its own. Each format is a module here with `NAME`, `DESCRIPTION` and
`convert(paths) -> Iterator[dict]`; the operations come out in time order, `index` unset."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FORMATS = {"jepsen-edn": "checkers.importers.jepsen_edn", "kafka-verifiable": "checkers.importers.kafka_verifiable"}


class FormatError(ValueError):
    """Input an importer cannot read: the message names the file, the line and the problem."""


def names() -> tuple[str, ...]:
    return tuple(FORMATS)


def convert(fmt: str, paths: list[Path]) -> Iterator[dict[str, Any]]:
    if fmt not in FORMATS:
        raise FormatError(f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    module = importlib.import_module(FORMATS[fmt])
    return module.convert(paths)


def description(fmt: str) -> str:
    return str(importlib.import_module(FORMATS[fmt]).DESCRIPTION)
