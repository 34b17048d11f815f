"""Runtimes that run the systems under test and the workers: for now, local processes."""

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
    NodeSpec,
    free_port,
)

__all__ = [
    "LocalNode",
    "LocalRuntime",
    "NodeError",
    "NodeExitedError",
    "NodeNotReadyError",
    "NodeSpec",
    "free_port",
    "hard_kill_all",
    "install_handlers",
    "register",
    "run_teardowns",
    "uninstall_handlers",
    "unregister",
]
