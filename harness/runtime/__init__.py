"""Runtimes that run the systems under test and the workers: local processes or containers, both
implementing `harness.runtime.base.Runtime`; `make_runtime` builds one by its name."""

from collections.abc import Iterable
from pathlib import Path

from harness.imaging import Image
from harness.runtime.base import Node, NodeSpec, Partitions, Placement, Proxies, Runtime
from harness.runtime.cleanup import (
    hard_kill_all,
    install_handlers,
    register,
    run_teardowns,
    uninstall_handlers,
    unregister,
)
from harness.runtime.docker import DockerRuntime
from harness.runtime.local import (
    LocalNode,
    LocalRuntime,
    NodeError,
    NodeExitedError,
    NodeNotReadyError,
    free_port,
)

RUNTIMES: dict[str, type[LocalRuntime] | type[DockerRuntime]] = {r.name: r for r in (LocalRuntime, DockerRuntime)}


def make_runtime(kind: str, run_dir: Path, images: Iterable[Image] = ()) -> Runtime:
    """A runtime of `kind` in `run_dir`; `images` are the target images it may have to run."""
    if kind == DockerRuntime.name:
        return DockerRuntime(run_dir, images=images)
    if kind == LocalRuntime.name:
        return LocalRuntime(run_dir)
    raise ValueError(f"unknown runtime {kind!r}; valid runtimes: {', '.join(RUNTIMES)}")


__all__ = [
    "RUNTIMES",
    "DockerRuntime",
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
    "uninstall_handlers",
    "unregister",
]
