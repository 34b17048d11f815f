"""The Runtime protocol: where a run's nodes, Toxiproxy and workers run. `LocalRuntime` (processes on this
machine) and `DockerRuntime` (containers on a network of the run's own) implement it with the same
signatures; a `Run` is handed one and never asks which it got. Node-to-node partitions are an optional
ability: `runtime.partitions` is None where the runtime cannot cut traffic between nodes; so are lossy disks
(`runtime.lossy`, None where this machine has no FUSE).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol


@dataclass
class NodeSpec:
    name: str
    argv: list[str]
    data_dir: Path
    log_path: Path
    ports: dict[str, int] = field(default_factory=dict)
    env: dict[str, str] | None = None  # merged over os.environ
    ready: Callable[[Any], bool] | None = None  # polled until true; exceptions count as "not yet"
    stop_signal: int = signal.SIGTERM
    image: str = ""  # the image role a container runtime runs it with (the target's, or a harness role)

    def __post_init__(self) -> None:
        self.argv = [str(a) for a in self.argv]
        if not self.argv:
            raise ValueError(f"node {self.name!r}: empty argv")
        self.data_dir = Path(self.data_dir)
        self.log_path = Path(self.log_path)


@dataclass(frozen=True)
class Placement:
    """Where a new node lives: `host` is its address as the harness and the other nodes reach it, `bind` the
    address it listens on, `in_container` whether it runs in a container of its image."""

    host: str
    bind: str
    in_container: bool


class Node(Protocol):
    """One restartable process or container: what faults and the run do to nodes and workers."""

    @property
    def name(self) -> str: ...
    @property
    def pid(self) -> int | None: ...
    @property
    def alive(self) -> bool: ...
    @property
    def paused(self) -> bool: ...
    @property
    def returncode(self) -> int | None: ...
    def start(self) -> Node: ...
    def wait_ready(self, timeout: float = 30.0) -> Node: ...
    def stop(self, timeout: float = 10.0) -> int | None: ...
    def kill(self) -> int | None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def log_tail(self, lines: int = 20, *, since_start: bool = True) -> list[str]: ...


class Proxies(Protocol):
    """The run's Toxiproxy server as faults and the run use it (harness.toxiproxy.ToxiproxyServer)."""

    @property
    def client_host(self) -> str: ...
    def start(self) -> Any: ...
    def stop(self, timeout: float = 5.0) -> None: ...
    def create_proxy(self, name: str, upstream: str, listen: str | None = None) -> Any: ...
    def add_toxic(self, proxy: Any, name: str, type: str, stream: str = "downstream", toxicity: float = 1.0,
                  attributes: dict[str, Any] | None = None) -> dict[str, Any]: ...
    def remove_toxic(self, proxy: Any, name: str) -> None: ...
    def enable(self, proxy: Any) -> None: ...
    def disable(self, proxy: Any) -> None: ...
    def reset(self) -> None: ...


class Partitions(Protocol):
    """Cutting node-to-node traffic: each node in `grudge` drops every packet from the nodes it names."""

    def partition(self, grudge: dict[str, list[str]]) -> None: ...
    def heal_partition(self) -> None: ...


class LossyDisks(Protocol):
    """Nodes' data directories on disks that can forget what was never fsynced (the power-loss faults): `mount`
    before a node's first start, `drop` the power loss of one node's disk (its processes dead), `checkpoint`
    (everything written so far counts as synced), `unsynced` what a drop would take now, `unmount_all` at
    teardown. Each answer is `{"files": N, "bytes": B}`."""

    def mount(self, node: str, data_dir: Path) -> None: ...
    def drop(self, node: str) -> dict[str, int]: ...
    def checkpoint(self) -> dict[str, dict[str, int]]: ...
    def unsynced(self, node: str) -> dict[str, int]: ...
    def unmount_all(self) -> None: ...


class Runtime(Protocol):
    """`place` gives a new node its address, `node` registers it (not started), `spawn` starts a worker,
    `run_once` runs a command to completion where nodes run (say, formatting storage) with the image of
    `image` (a role: the target's image or the harness's own), `toxiproxy` makes the run's proxy server,
    `python` is the interpreter workers run with, and `teardown` stops and removes everything."""

    name: ClassVar[str]
    can_partition: ClassVar[bool]
    run_dir: Path
    python: str

    @property
    def partitions(self) -> Partitions | None: ...
    @property
    def lossy(self) -> LossyDisks | None: ...
    def place(self) -> Placement: ...
    def free_port(self) -> int: ...
    def node(self, spec: NodeSpec, placement: Placement) -> Node: ...
    def spawn(self, name: str, argv: list[str], *, log_path: Path) -> Node: ...
    def run_once(self, image: str, argv: list[str], timeout: float = 120.0) -> tuple[int, str]: ...
    def toxiproxy(self, log_path: Path) -> Proxies: ...
    def teardown(self) -> None: ...
