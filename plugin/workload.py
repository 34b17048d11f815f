"""The Workload protocol: what a run's clients do (Jepsen's `Client`, with the generator that drives it).
`--workload` names one; the harness spawns worker processes in the roles a run has (producers, consumers, and
consumers again as drainers), and each worker calls `workload.run(role, ctx)`, which makes the clients it needs
from the target's (`ctx.clients`: what `Target.clients[<workload>]` supplies, of the workload's own `client`
protocol) and records every operation.

A workload declares its client protocol (`client`: every target that serves it supplies an object of that
shape; checked when the target is loaded), its own run options (`options`: `Option`s, one declaration each),
the harness's options it reads (`reads`: rate, producers, ...), and `option_defaults`, the defaults of its
options that the target's clients decide (the queue's batch). The run passes the values of both in
`ctx.settings`. Which checkers judge a history is the history's own business: every checker looks at every
history and says where it does not apply. The rules, in words: docs/adding-a-workload.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from plugin.options import Option
from plugin.target import Profile, Target

PROCESS_SPAN = 1_000_000  # the process ids of one worker: worker k's logical processes are k * SPAN + 0, 1, ...


class Writer(Protocol):
    """A worker's history shard (harness.history.HistoryWriter): one line per operation."""

    start_ns: int  # the run's start on the machine-wide monotonic clock: the history's time 0

    @property
    def counts(self) -> Mapping[tuple[str, str], int]: ...
    def write(self, process: Any, type_: str, f: str, value: Any = None, time_ns: int | None = None,
              **extra: Any) -> dict[str, Any]: ...


class ProcessLog:
    """Writes one logical process's operations; after an `info` the process id is retired (Jepsen)."""

    def __init__(self, writer: Writer, first_id: int):
        self.w = writer
        self.process = first_id

    def invoke(self, f: str, value: Any) -> dict:
        return self.w.write(self.process, "invoke", f, value)

    def complete(self, type_: str, f: str, value: Any, error: str | None = None) -> None:
        extra: dict[str, Any] = {"error": error} if error else {}
        self.w.write(self.process, type_, f, value, **extra)
        if type_ == "info":
            self.process += 1


@dataclass
class WorkerContext:
    """What one worker process has: its role and index, the target and profile, the proxies of the nodes clients
    talk to (`bootstrap`; every node's by name in `addresses`, and past its proxy in `direct`), the run's
    directory, its slot, whether it drains, its history log, the workload's settings and `stop()`, true once the
    harness asked it to finish."""

    role: str
    index: int
    target: Target
    profile: Profile
    bootstrap: list[str]
    run_dir: Path
    slot: str
    drain: bool
    log: ProcessLog
    writer: Writer
    settings: Mapping[str, Any]
    stop: Callable[[], bool]
    clients: Any = None  # what the target supplies for this workload: an object of the workload's `client` protocol
    addresses: Mapping[str, str] = field(default_factory=dict)  # every node's proxy address, by node name
    # every node's own address, past its proxy: only for reading what a node recorded (never for the workload's
    # requests), so that the faults on the proxies do not delay the record of what happened
    direct: Mapping[str, str] = field(default_factory=dict)


class Workload(Protocol):
    name: ClassVar[str]
    client: ClassVar[type]  # the protocol of the clients a target supplies for this workload
    options: ClassVar[tuple[Option, ...]]  # its own run options
    reads: ClassVar[tuple[str, ...]]  # the harness's run options it reads (their values in ctx.settings)

    def option_defaults(self, clients: Any) -> Mapping[str, Any]:
        """Defaults of its options that the target's clients decide (an option whose declared default is None)."""
        ...

    def run(self, role: str, ctx: WorkerContext) -> dict[str, Any]:
        """Do the role's work until `ctx.stop()`; returns the worker's stats (written beside its shard)."""
        ...


class WorkloadBase:
    """What most workloads leave as it is: no options of their own, none read, no defaults from the clients."""

    options: ClassVar[tuple[Option, ...]] = ()
    reads: ClassVar[tuple[str, ...]] = ()

    def option_defaults(self, clients: Any) -> Mapping[str, Any]:
        return {}


class Pacer:
    """Holds a loop to one step per `interval` seconds (0: no pause). After falling more than a second behind
    (a fault held the step up) it starts again from now instead of bursting to catch up."""

    def __init__(self, interval: float):
        self.interval = interval
        self.next = time.monotonic()

    def wait(self) -> None:
        self.next += self.interval
        delay = self.next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -1.0:
            self.next = time.monotonic()
