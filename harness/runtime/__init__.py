"""Runtimes that run the systems under test and the workers: local processes or containers, both
implementing `plugin.runtime.Runtime`; `make_runtime` builds one by its name.

Light on purpose: worker processes import this package (through the harness's worker), so it must not pull in
the docker runtime (or its HTTP libraries, absent from the worker image) on import."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from harness.runtime.cleanup import (
    hard_kill_all,
    install_handlers,
    register,
    run_teardowns,
    uninstall_handlers,
    unregister,
)
from harness.runtime.local import (
    LocalNode,
    LocalRuntime,
    NodeError,
    NodeExitedError,
    NodeNotReadyError,
    free_port,
)
from plugin.imaging import Image
from plugin.runtime import Node, NodeSpec, Partitions, Placement, Proxies, Runtime

if TYPE_CHECKING:
    from harness.runtime.docker import DockerRuntime

RUNTIMES = ("local", "docker")


def runtime_class(kind: str) -> type[LocalRuntime] | type[DockerRuntime]:
    """The class of the runtime called `kind` (its `can_partition` and the like); ValueError if unknown."""
    if kind == "docker":
        from harness.runtime.docker import DockerRuntime

        return DockerRuntime
    if kind == "local":
        return LocalRuntime
    raise ValueError(f"unknown runtime {kind!r}; valid runtimes: {', '.join(RUNTIMES)}")


def make_runtime(kind: str, run_dir: Path, images: Iterable[Image] = ()) -> Runtime:
    """A runtime of `kind` in `run_dir`; `images` are the target images it may have to run."""
    if kind == "docker":
        from harness.runtime.docker import DockerRuntime

        return DockerRuntime(run_dir, images=images)
    if kind == "local":
        return LocalRuntime(run_dir)
    raise ValueError(f"unknown runtime {kind!r}; valid runtimes: {', '.join(RUNTIMES)}")


__all__ = [
    "RUNTIMES",
    "LocalNode",
    "LocalRuntime",
    "Node",
    "NodeError",
    "NodeExitedError",
    "NodeNotReadyError",
    "NodeSpec",
    "Partitions",
    "Placement",
    "Proxies",
    "Runtime",
    "free_port",
    "hard_kill_all",
    "install_handlers",
    "make_runtime",
    "register",
    "run_teardowns",
    "runtime_class",
    "uninstall_handlers",
    "unregister",
]
