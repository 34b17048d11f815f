"""A run's worker processes, by slot: spawned with the workload's settings, killed and replaced by faults, stopped
by role; and the ones that ended by themselves, noted (the history then lacks what they should have done, and
the harness, not the system, is to blame)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.progress import ShardTail
from harness.worker import shard_path, worker_spec
from plugin.runtime import Node, Runtime


class Workers:
    """`names` says what a worker needs besides its role: the target's and profile's names, the workload's name
    and settings, and where its clients go (`addresses()`: the client bootstrap, every node's proxy, every
    node's own address)."""

    def __init__(self, runtime: Runtime, run_dir: Path, start_ns: int, names: dict[str, str],
                 settings: dict[str, Any], addresses: Callable[[], tuple[list[str], dict[str, str], dict[str, str]]],
                 say: Callable[[str], None]) -> None:
        self.runtime, self.dir, self.start_ns = runtime, run_dir, start_ns
        self.names, self.settings, self.addresses, self.say = names, settings, addresses, say
        self.slots: dict[str, Node] = {}  # slot -> the process now in it
        self.shards: dict[str, Path] = {}  # slot -> the shard of the process now in it
        self.spawned: dict[str, Node] = {}  # every worker process by name, replaced ones too
        self.meant_to_end: set[str] = set()  # workers the run killed (a fault) or stopped
        self.failures: dict[str, dict[str, Any]] = {}  # workers that ended on their own
        self.index = 0
        self.tail = ShardTail(run_dir / "shards")

    def start(self, role: str, count: int, slot_prefix: str = "", drain: bool = False) -> None:
        """`count` workers of `role`, in slots `<slot_prefix or role>-<i>`."""
        for i in range(count):
            slot = f"{slot_prefix or role}-{i}"
            self.slots[slot] = self.spawn(role, slot, drain)

    def spawn(self, role: str, slot: str, drain: bool = False) -> Node:
        index = self.index
        self.index += 1
        bootstrap, proxies, direct = self.addresses()
        spec = worker_spec(role, index, self.dir, self.start_ns, self.names["target"], self.names["profile"],
                           bootstrap, self.names["workload"], self.settings, drain=drain, slot=slot,
                           addresses=proxies, direct=direct)
        wdir = self.dir / "workers"
        wdir.mkdir(exist_ok=True)
        spec_path = wdir / f"{role}-{index}.json"
        spec_path.write_text(json.dumps(spec))
        self.shards[slot] = shard_path(self.dir, role, index)
        proc = self.runtime.spawn(f"{role}-{index}", [self.runtime.python, "-m", "harness.worker", str(spec_path)],
                                  log_path=wdir / f"{role}-{index}.log")
        self.spawned[proc.name] = proc
        return proc

    def kill(self, slot: str) -> None:
        proc = self.slots.get(slot)
        if proc is not None:
            self.meant_to_end.add(proc.name)
            proc.kill()

    def replace(self, slot: str) -> None:
        role, _ = slot.split("-")
        self.slots[slot] = self.spawn(role, slot)

    def stop(self, prefix: str) -> None:
        """Stop the workers whose slots start with `prefix` (SIGTERM: each finishes the operation in hand)."""
        self.check()
        procs = [p for slot, p in self.slots.items() if slot.startswith(prefix)]
        for p in procs:
            self.meant_to_end.add(p.name)
            p.stop(timeout=10)
        for slot in [s for s in self.slots if s.startswith(prefix)]:
            del self.slots[slot]

    def received(self, slots: tuple[str, ...]) -> bool:
        """Whether the workers in these slots have delivered something (their shards say so)."""
        self.tail.poll()
        shards = [self.shards.get(s) for s in slots]
        return all(p is None or self.tail.delivered_in(p) for p in shards)

    def check(self) -> None:
        """Note every worker that ended although the run neither killed nor stopped it (a crash, an import error,
        a client library that gave up)."""
        for name, proc in self.spawned.items():
            if name in self.meant_to_end or name in self.failures or proc.alive:
                continue
            tail = proc.log_tail(8)
            self.failures[name] = {"exit": proc.returncode, "log": tail}
            self.say(f"  warning: worker {name} ended by itself (exit {proc.returncode}); its log ends: "
                     + " | ".join(tail[-3:]))
