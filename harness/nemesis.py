"""The nemesis: a run's fault schedule, from the configured faults to windows with their nodes, applied as the load
goes on and healed at the end; each start and stop recorded in the history. It is the `FaultContext` faults act
through (nodes and proxies are the cluster's, workers the workers', partitions the runtime's)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from harness.cluster import Cluster
from harness.faults import SELECTABLE, candidates, fault_of
from harness.history import HistoryWriter, clock_ns
from harness.schedule import Window, make_schedule
from harness.workers import Workers
from plugin.runtime import Node, Proxies, Runtime

BUSY_WAIT_S = 20.0  # longest a consumer fault waits for its victim to receive messages
BUSY_AFTER_S = (0.2, 1.5)  # and how much longer it then waits (seeded, uniform)


def schedule(faults: list[str], load_s: float, seed: int, nodes: list[str], consumers: int,
             producers: int) -> list[Window]:
    """The seeded windows of a run: which nodes (or worker slots, or a role found when it starts) each may hit."""
    cands: dict[str, list[str]] = {}
    for name in faults:
        f = fault_of(name)
        if f.kind in SELECTABLE:
            cands[name] = candidates(name, nodes)
        elif f.kind in ("leader", "controller", "cluster", "majority"):
            cands[name] = [f.kind]
        elif f.kind == "consumer":
            cands[name] = [f"consumer-{i}" for i in range(consumers)]
        else:
            cands[name] = [f"producer-{i}" for i in range(producers)]
    durations = {f: d for f in faults if (d := fault_of(f).duration) is not None}
    return make_schedule(faults, load_s, seed, cands, durations=durations)


class Nemesis:
    """Applies `windows` to the cluster and workers; `writer` is the nemesis's history shard."""

    def __init__(self, windows: list[Window], cluster: Cluster, workers: Workers, runtime: Runtime,
                 writer: HistoryWriter, seed: int, say: Callable[[str], None]) -> None:
        self.pending = sorted(windows, key=lambda w: w.start)
        self.cluster, self.workers, self.runtime, self.writer = cluster, workers, runtime, writer
        self.seed, self.say = seed, say
        self.active: list[Window] = []
        self.resolved: dict[Window, Window] = {}
        self.unrecovered: dict[str, dict[str, Any]] = {}  # nodes that did not start again after a power loss

    # --- the FaultContext ---------------------------------------------------------------------------------

    @property
    def toxiproxy(self) -> Proxies | None:
        return self.cluster.toxiproxy

    def node(self, name: str) -> Node:
        return self.cluster.node(name)

    def proxy(self, node: str) -> Any:
        return self.cluster.proxy(node)

    def restart_node(self, name: str) -> None:
        self.cluster.restart_node(name)

    def start_nodes(self, names: tuple[str, ...]) -> None:
        self.cluster.start_nodes(names)

    def kill_worker(self, slot: str) -> None:
        self.workers.kill(slot)

    def replace_worker(self, slot: str) -> None:
        self.workers.replace(slot)

    def node_names(self) -> list[str]:
        return list(self.cluster.infos)

    def partition(self, grudge: dict[str, list[str]]) -> None:
        if self.runtime.partitions is None:
            raise RuntimeError(f"node-to-node partitions are not possible in the {self.runtime.name} runtime")
        self.runtime.partitions.partition(grudge)

    def heal_partition(self) -> None:
        if self.runtime.partitions is not None:
            self.runtime.partitions.heal_partition()

    def lose_unsynced(self, node: str) -> dict[str, int]:
        if self.runtime.lossy is None:
            raise RuntimeError(f"the {self.runtime.name} runtime has no lossy disks here (FUSE)")
        return self.runtime.lossy.drop(node)

    # --- the schedule -------------------------------------------------------------------------------------

    def step(self, now: float) -> float:
        """Heal the windows that are over and start the ones that are due at `now` (seconds of load); returns the
        seconds spent doing it, which the schedule's clock does not count (a slow heal, such as a JVM restart,
        shifts later windows instead of squeezing them together)."""
        spent = 0.0
        for w in list(self.active):
            if now >= w.stop:
                self.active.remove(w)
                a = time.monotonic()
                self._apply(w, "heal")
                spent += time.monotonic() - a
        while self.pending and now >= self.pending[0].start:
            w = self.pending.pop(0)
            self.active.append(w)
            a = time.monotonic()
            self._apply(w, "start")
            spent += time.monotonic() - a
        return spent

    def describe(self) -> str:
        """The faults now active, for the progress line."""
        return ", ".join(f"{w.fault}({','.join(self.resolved.get(w, w).nodes)})" for w in self.active) or "none"

    def heal_all(self) -> None:
        """Every active window healed (recorded), and any partition healed."""
        for w in list(self.active):
            self.active.remove(w)
            self._apply(w, "heal")
        try:
            self.heal_partition()
        except Exception as e:
            self.say(f"  warning: healing partitions failed: {type(e).__name__}: {e}")

    def _record(self, kind: str, w: Window, error: str | None = None, extra: dict[str, Any] | None = None,
                time_ns: int | None = None) -> None:
        value: dict[str, Any] = {"fault": w.fault, "nodes": list(w.nodes), **(extra or {})}
        if error:
            value["error"] = error
        self.writer.write("nemesis", "info", kind, value, time_ns=time_ns)

    def _resolve(self, w: Window) -> Window:
        """Turn a role (leader, controller, cluster) into node names when the fault starts."""
        kind = fault_of(w.fault).kind
        if kind in ("leader", "controller"):
            find = getattr(self.cluster.target.abilities, kind)  # the ability named like the kind (config checked)
            if find is None:
                raise RuntimeError(f"{self.cluster.target.name} cannot tell its {kind}")
            nodes: tuple[str, ...] = (self.cluster.ask(find),)
        elif kind == "cluster":
            nodes = tuple(self.cluster.infos)
        elif kind == "majority":
            names = list(self.cluster.infos)
            pick = random.Random(f"{self.seed}:{w.fault}:{w.start}").sample(names, len(names) // 2 + 1)
            nodes = tuple(n for n in names if n in pick)
        else:
            return w
        return Window(w.fault, nodes, w.start, w.duration)

    def _apply(self, w: Window, action: str) -> None:
        fault = fault_of(w.fault)
        if action == "start":
            try:
                self.resolved[w] = self._resolve(w)
            except Exception as e:
                self.say(f"  warning: could not find the nodes for {w.fault}: {type(e).__name__}: {e}")
                self.resolved[w] = w
        rw = self.resolved.get(w, w)
        if action == "start" and fault.kind == "consumer":
            self._await_busy(rw.nodes, random.Random(f"{self.seed}:{w.start}").uniform(*BUSY_AFTER_S))
        began = clock_ns(self.writer.start_ns)  # the fault's recorded start: before it acts
        err, result = None, None
        try:
            result = getattr(fault, action)(self, rw)
        except Exception as e:  # a fault that did not apply is reported, and the run goes on
            err = f"{type(e).__name__}: {e}"
            self.say(f"  warning: {action} {w.fault} on {','.join(w.nodes)} failed: {err}")
            if action == "heal" and fault.needs_lossy_disk:
                self._unrecovered(rw)
        if action == "start":
            self._record("start-fault", rw, err, result if isinstance(result, dict) else None, time_ns=began)
            if isinstance(result, dict) and "dropped" in result:
                self.say("  power loss erased " + ", ".join(f"{d['bytes']:,} bytes in {d['files']} file(s) on {n}"
                                                            for n, d in result["dropped"].items()))
        else:
            self._record("stop-fault", rw, err)

    def _unrecovered(self, w: Window) -> None:
        """A node that does not start again after its power loss: a finding about the system (with its log's
        end), never the harness's error. It stays down; the run goes on without it."""
        dead = [n for n in w.nodes if not self.cluster.node(n).alive]
        for n in dead or w.nodes:
            self.unrecovered[n] = {"fault": w.fault, "log": self.cluster.node(n).log_tail(20)}
            self.cluster.given_up.add(n)
            self.say(f"  finding: {n} did not start again after {w.fault}; its log ends: "
                     + " | ".join(self.unrecovered[n]["log"][-3:]))

    def _await_busy(self, slots: tuple[str, ...], then: float) -> None:
        """Hold a consumer fault until its victim has received messages (bounded by BUSY_WAIT_S), then `then`
        seconds more (seeded), so the kill lands somewhere inside its processing, not always right after its
        first poll.

        A freshly started replacement may not have joined its group yet (a group coordinator may wait out the
        dead member's session before it reassigns); killing it then tests nothing. The schedule's clock stops
        meanwhile, so later windows keep their spacing, and the fault's recorded start is the kill."""
        deadline = time.monotonic() + BUSY_WAIT_S
        while time.monotonic() < deadline:
            if self.workers.received(slots):
                time.sleep(then)
                return
            time.sleep(0.1)
        self.say(f"  note: {', '.join(slots)} received nothing within {BUSY_WAIT_S:.0f}s; faulting it anyway")
