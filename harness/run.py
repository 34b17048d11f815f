"""One live certification run: setup -> load under faults -> heal -> stop producers -> drain -> effects
-> teardown -> check -> report.

Everything the run starts (broker nodes, the Toxiproxy server, worker processes) is torn down on
normal exit, on exceptions and on Ctrl-C/SIGTERM, and the shards written so far are merged into
history.jsonl in every case, so an interrupted run still leaves a history that can be checked.
"""

from __future__ import annotations

import functools
import json
import os
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

import targets
import workloads
from harness.config import TARGET_OPTIONS, RunConfig
from harness.faults import SELECTABLE, candidates, fault_of
from harness.files import atomic_write
from harness.history import HistoryWriter, merge_shards
from harness.progress import ShardTail
from harness.runtime import NodeSpec, cleanup, make_runtime
from harness.schedule import Window, make_schedule
from harness.worker import shard_path, worker_spec
from plugin.runtime import Node, Placement, Proxies, Runtime
from plugin.target import BenchLoad, Deployment, NodeInfo, Target, node_names
from plugin.workload import Workload

BUSY_WAIT_S = 20.0  # longest a consumer fault waits for its victim to receive messages
BUSY_AFTER_S = (0.2, 1.5)  # and how much longer it then waits (seeded, uniform)
NATIVE_MAX_S = 20.0  # longest a native benchmark tool runs after a cost run


def make_run_dir(store: Path, test: str) -> Path:
    """store/<test>/<timestamp>, plus `latest` links in store/<test>/ and store/."""
    base = Path(store) / test
    base.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    d, n = base / stamp, 1
    while d.exists():
        n += 1
        d = base / f"{stamp}-{n}"
    d.mkdir()
    for link, dest in ((base / "latest", d.name), (Path(store) / "latest", f"{test}/{d.name}")):
        tmp = link.with_name(f".{link.name}.tmp")
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(dest)
        os.replace(tmp, link)
    return d


def prepare(cfg: RunConfig, out: TextIO | None = None) -> Run:
    """The usual wiring: the run directory in the store, the registered target and workload the
    configuration names, and a runtime of its kind in that directory."""
    target = targets.load(cfg.target)
    run_dir = make_run_dir(Path(cfg.store), cfg.test_name).resolve()  # absolute: mounted as is in containers
    runtime = make_runtime(cfg.runtime, run_dir, images=[target.image])
    return Run(cfg, target=target, runtime=runtime, workload=workloads.load(cfg.workload), out=out)


def _ready(target: Target, info: NodeInfo, node: Node) -> bool:
    return target.ready(info)


class Run:
    """A run's state; also the context faults act through (nodes, proxies, worker slots). The target,
    runtime and workload are handed in (tests hand in fakes); the run directory is the runtime's."""

    def __init__(self, cfg: RunConfig, *, target: Target, runtime: Runtime, workload: Workload,
                 out: TextIO | None = None):
        self.cfg = cfg
        self.out = out
        self.target = target
        self.profile = target.profiles[cfg.profile]
        self.workload = workload
        self.runtime = runtime
        self.dir = Path(runtime.run_dir)
        self.toxiproxy: Proxies | None = None
        self.nodes: dict[str, Node] = {}
        self.infos: dict[str, NodeInfo] = {}
        self.proxies: dict[str, Any] = {}
        self.workers: dict[str, Node] = {}  # slot -> process
        self.worker_shards: dict[str, Path] = {}  # slot -> the shard of the process now in it
        self.worker_index = 0
        self.start_ns = time.monotonic_ns()
        self.tail = ShardTail(self.dir / "shards")
        self.active: list[Window] = []
        self.resolved: dict[Window, Window] = {}
        self.drain_incomplete: dict[str, Any] | None = None
        self.spawned: dict[str, Node] = {}  # every worker process by name, replaced ones too
        self.meant_to_end: set[str] = set()  # workers the run killed (a fault) or stopped
        self.worker_failures: dict[str, dict[str, Any]] = {}  # workers that ended on their own
        (self.dir / "shards").mkdir(exist_ok=True)
        self.nemesis = HistoryWriter(self.dir / "shards" / "nemesis.jsonl", start_ns=self.start_ns)
        self.harness_log = HistoryWriter(self.dir / "shards" / "harness.jsonl", start_ns=self.start_ns)

    # --- output -----------------------------------------------------------------------------------

    def say(self, msg: str) -> None:
        print(msg, file=self.out or sys.stdout, flush=True)  # sys.stdout now, not at import time

    # --- the context faults use ------------------------------------------------------------------

    def node(self, name: str) -> Node:
        return self.nodes[name]

    def proxy(self, node: str) -> Any:
        return self.proxies[node]

    def restart_node(self, name: str) -> None:
        node = self.nodes[name]
        if node.alive:
            node.stop()
        node.start()
        node.wait_ready(self.target.ready_timeout)

    def kill_worker(self, slot: str) -> None:
        proc = self.workers.get(slot)
        if proc is not None:
            self.meant_to_end.add(proc.name)
            proc.kill()

    def replace_worker(self, slot: str) -> None:
        role, _ = slot.split("-")
        self.workers[slot] = self._spawn_worker(role, slot=slot)

    def node_names(self) -> list[str]:
        return list(self.infos)

    def partition(self, grudge: dict[str, list[str]]) -> None:
        if self.runtime.partitions is None:
            raise RuntimeError(f"node-to-node partitions are not possible in the {self.runtime.name} runtime")
        self.runtime.partitions.partition(grudge)

    def heal_partition(self) -> None:
        if self.runtime.partitions is not None:
            self.runtime.partitions.heal_partition()

    @property
    def deployment(self) -> Deployment:
        return Deployment(list(self.infos.values()), self.profile, self.dir,
                          {name: str(getattr(self.cfg, name)) for name in TARGET_OPTIONS if getattr(self.cfg, name)})

    # --- phases ------------------------------------------------------------------------------------

    def _node_names(self) -> list[str]:
        return node_names(self.target, self.cfg.nodes or self.target.node_counts[0])

    @property
    def proxy_addresses(self) -> dict[str, str]:
        """Every node's proxy (host:port), by node name."""
        return {name: f"{n.proxy_host}:{n.proxy_port}" for name, n in self.infos.items()}

    @property
    def client_bootstrap(self) -> list[str]:
        """The proxies clients talk to: every node's, or only the client-facing ones' where the nodes have
        roles (a service's, not its database's)."""
        roles = self.target.abilities.roles
        return [a for name, a in self.proxy_addresses.items() if roles is None or roles.client_facing(name)]

    def _start_nodes(self) -> None:
        """Toxiproxy first, so each node can advertise its proxy; then the nodes, ready, prepared."""
        self.toxiproxy = toxiproxy = self.runtime.toxiproxy(self.dir / "toxiproxy.log")
        toxiproxy.start()
        for name in self._node_names():
            data = self.dir / "nodes" / name
            data.mkdir(parents=True, exist_ok=True)
            extra = {p: self.runtime.free_port() for p in self.target.ports}
            where = self.runtime.place()
            info = NodeInfo(name, self.runtime.free_port(), data_dir=data, extra_ports=extra, host=where.host,
                            bind=where.bind, proxy_host=toxiproxy.client_host, in_container=where.in_container)
            self.proxies[name] = toxiproxy.create_proxy(name, f"{info.host}:{info.port}")
            info.proxy_port = self.proxies[name].port
            self.infos[name] = info
        d = self.deployment
        role = self.target.image.role
        self.target.setup_nodes(d, lambda argv, timeout: self.runtime.run_once(role, argv, timeout))
        for info in d.nodes:
            assert info.data_dir is not None
            spec = NodeSpec(name=info.name, argv=self.target.node_argv(d, info),
                            data_dir=info.data_dir, log_path=info.data_dir / f"{info.name}.log",
                            ports={"client": info.port, **info.extra_ports},
                            ready=functools.partial(_ready, self.target, info), image=role)
            node = self.runtime.node(spec, Placement(info.host, info.bind, info.in_container))
            node.start()
            self.nodes[info.name] = node
        for node in self.nodes.values():
            node.wait_ready(self.target.ready_timeout)
        self.target.prepare(d)

    def _spawn_worker(self, role: str, drain: bool = False, slot: str = "") -> Any:
        index = self.worker_index
        self.worker_index += 1
        spec = worker_spec(role, index, self.dir, self.start_ns, self.target.name, self.profile.name,
                           self.client_bootstrap, self.workload.name, self.workload_settings(), drain=drain,
                           slot=slot, addresses=self.proxy_addresses,
                           direct={name: f"{n.host}:{n.port}" for name, n in self.infos.items()})
        wdir = self.dir / "workers"
        wdir.mkdir(exist_ok=True)
        spec_path = wdir / f"{role}-{index}.json"
        spec_path.write_text(json.dumps(spec))
        if slot:
            self.worker_shards[slot] = shard_path(self.dir, role, index)
        proc = self.runtime.spawn(f"{role}-{index}", [self.runtime.python, "-m", "harness.worker", str(spec_path)],
                                  log_path=wdir / f"{role}-{index}.log")
        self.spawned[proc.name] = proc
        return proc

    def _check_workers(self) -> None:
        """Note every worker that ended although the run neither killed nor stopped it (a crash, an import
        error, a client library that gave up): the history then lacks what it should have done, and the
        harness, not the system, is to blame. The CLI turns the verdict into `unknown`."""
        for name, proc in self.spawned.items():
            if name in self.meant_to_end or name in self.worker_failures or proc.alive:
                continue
            tail = proc.log_tail(8)
            self.worker_failures[name] = {"exit": proc.returncode, "log": tail}
            self.say(f"  warning: worker {name} ended by itself (exit {proc.returncode}); its log ends: "
                     + " | ".join(tail[-3:]))

    def workload_settings(self) -> dict[str, Any]:
        """The run options the workload reads."""
        return {name: getattr(self.cfg, name) for name in self.workload.options}

    def _nemesis(self, kind: str, w: Window, error: str | None = None) -> None:
        value: dict[str, Any] = {"fault": w.fault, "nodes": list(w.nodes)}
        if error:
            value["error"] = error
        self.nemesis.write("nemesis", "info", kind, value)

    def _resolve(self, w: Window) -> Window:
        """Turn a role (leader, controller, cluster) into node names when the fault starts."""
        kind = fault_of(w.fault).kind
        if kind in ("leader", "controller"):
            find = getattr(self.target.abilities, kind)  # the ability named like the kind (config checked it)
            if find is None:
                raise RuntimeError(f"{self.target.name} cannot tell its {kind}")
            nodes: tuple[str, ...] = (find(self.deployment),)
        elif kind == "cluster":
            nodes = tuple(self.infos)
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
        if action == "start":
            if fault.kind == "consumer":
                self._await_busy(rw.nodes, random.Random(f"{self.cfg.seed}:{w.start}").uniform(*BUSY_AFTER_S))
            self._nemesis("start-fault", rw)
        err = None
        try:
            getattr(fault, action)(self, rw)
        except Exception as e:  # a fault that did not apply is reported, and the run goes on
            err = f"{type(e).__name__}: {e}"
            self.say(f"  warning: {action} {w.fault} on {','.join(w.nodes)} failed: {err}")
        if action == "heal":
            self._nemesis("stop-fault", rw, err)

    def _await_busy(self, slots: tuple[str, ...], then: float) -> None:
        """Hold a consumer fault until its victim has received messages (bounded by BUSY_WAIT_S), then
        `then` seconds more (seeded), so the kill lands somewhere inside its processing, not always
        right after its first poll.

        A freshly started replacement may not have joined its group yet (a group coordinator may wait out
        the dead member's session before it reassigns); killing it then tests nothing. The schedule's clock stops
        meanwhile, so later windows keep their spacing, and the fault's recorded start is the kill."""
        deadline = time.monotonic() + BUSY_WAIT_S
        while time.monotonic() < deadline:
            self.tail.poll()
            shards = [self.worker_shards.get(s) for s in slots]
            if all(p is None or self.tail.delivered_in(p) for p in shards):
                time.sleep(then)
                return
            time.sleep(0.1)
        self.say(f"  note: {', '.join(slots)} received nothing within {BUSY_WAIT_S:.0f}s; faulting it anyway")

    def _load(self, schedule: list[Window]) -> None:
        for i in range(self.cfg.consumers):
            self.workers[f"consumer-{i}"] = self._spawn_worker("consumer", slot=f"consumer-{i}")
        for i in range(self.cfg.producers):
            self.workers[f"producer-{i}"] = self._spawn_worker("producer", slot=f"producer-{i}")
        t0 = time.monotonic()
        pending = sorted(schedule, key=lambda w: w.start)
        last_print, last_ops = t0, 0
        stalled = 0.0  # time spent inside fault actions: the schedule's clock stops meanwhile, so a slow
        # heal (a JVM restart) shifts later windows instead of squeezing them together

        def now() -> float:
            return time.monotonic() - t0 - stalled

        while now() < self.cfg.time:
            for w in list(self.active):
                if now() >= w.stop:
                    self.active.remove(w)
                    a = time.monotonic()
                    self._apply(w, "heal")
                    stalled += time.monotonic() - a
            while pending and now() >= pending[0].start:
                w = pending.pop(0)
                self.active.append(w)
                a = time.monotonic()
                self._apply(w, "start")
                stalled += time.monotonic() - a
            if time.monotonic() - last_print >= 2.0:
                self._check_workers()
                self.tail.poll()
                rate = (self.tail.ops - last_ops) / (time.monotonic() - last_print)
                last_print, last_ops = time.monotonic(), self.tail.ops
                faults = ", ".join(f"{w.fault}({','.join(self.resolved.get(w, w).nodes)})" for w in self.active)
                self.say(f"[load {now():5.1f}/{self.cfg.time:.0f}s] sent {self.tail.sent} acked {self.tail.acked} "
                         f"unknown {self.tail.unknown} delivered {self.tail.delivered} | {rate:.0f} ops/s | "
                         f"faults: {faults or 'none'}")
            time.sleep(0.05)

    def _heal_all(self) -> None:
        for w in list(self.active):
            self.active.remove(w)
            self._apply(w, "heal")
        try:
            self.heal_partition()
        except Exception as e:
            self.say(f"  warning: healing partitions failed: {type(e).__name__}: {e}")
        if self.toxiproxy is not None:
            self.toxiproxy.reset()
        for name, node in self.nodes.items():
            if node.paused:
                node.resume()
            if not node.alive:
                self.restart_node(name)

    def _stop_role(self, role: str) -> None:
        self._check_workers()
        procs = [p for slot, p in self.workers.items() if slot.startswith(role)]
        for p in procs:
            self.meant_to_end.add(p.name)
            p.stop(timeout=10)
        for slot in [s for s in self.workers if s.startswith(role)]:
            del self.workers[slot]

    def _backlog(self) -> int | str | None:
        """What the target says is still unconsumed: None when it has no such ability, "unknown" when asking
        failed (say, no leader to answer yet: not a reason to end the drain)."""
        backlog = self.target.abilities.backlog
        if backlog is None:
            return None
        try:
            return int(backlog(self.deployment))
        except Exception as e:
            self.say(f"  note: the backlog could not be read: {type(e).__name__}: {e}")
            return "unknown"

    def _drain(self) -> None:
        """Fresh consumers until no delivery for `quiet` seconds (and, where the target can tell, nothing
        left unconsumed), bounded by the deadline. An unfinished drain is remembered: messages it did not
        reach are not provably lost."""
        self._stop_role("consumer")
        for i in range(self.cfg.consumers):
            self.workers[f"drainer-{i}"] = self._spawn_worker("consumer", drain=True, slot=f"drainer-{i}")
        quiet = self.cfg.quiet or self.target.drain.quiet
        deadline = self.cfg.drain_deadline or self.target.drain.deadline
        t0 = last = time.monotonic()
        self.tail.poll()
        while True:
            time.sleep(0.25)
            if self.tail.poll():
                last = time.monotonic()
            now = time.monotonic()
            if now - last >= quiet:
                left = self._backlog()
                if left is None or left == 0:
                    self.say(f"[drain] quiet for {quiet:.0f}s after {now - t0:.1f}s"
                             f"{'' if left is None else ', nothing left unconsumed'}; delivered {self.tail.delivered}")
                    break
            if now - t0 >= deadline:
                left = self._backlog()
                self.drain_incomplete = {"deadline_s": deadline, "backlog": "unknown" if left is None else left}
                self.say(f"[drain] deadline of {deadline:.0f}s reached; "
                         f"{'unknown' if left is None else left} messages still unconsumed")
                break
            self._check_workers()
        self._stop_role("drainer")

    def _final_read(self) -> None:
        """Where the target can: read the whole log once more, from the beginning to the end offsets, and
        record it as `final-read` (the log checker's view of the log's final state)."""
        final_read = self.target.abilities.final_read
        if final_read is None:
            return
        self.say("[final read] the whole log once more, from its beginning to its end")
        who = "final-reader"  # its own process: after an `info` a process id is never used again
        self.harness_log.write(who, "invoke", "final-read", None)
        t0 = time.monotonic()
        try:
            records = final_read(self.deployment)
        except Exception as e:
            self.harness_log.write(who, "info", "final-read", None, error=f"{type(e).__name__}: {e}")
            self.say(f"  warning: the final read failed: {type(e).__name__}: {e}")
            return
        self.harness_log.write(who, "ok", "final-read", {"messages": records})
        self.say(f"[final read] {len(records)} records in {time.monotonic() - t0:.1f}s")

    def _effects(self) -> None:
        self.harness_log.write("harness", "invoke", "effects", None)
        try:
            counts = self.target.read_effects(self.deployment)
        except Exception as e:
            self.harness_log.write("harness", "info", "effects", None, error=f"{type(e).__name__}: {e}")
            return
        self.harness_log.write("harness", "ok", "effects", {"counts": counts})

    def _native_bench(self) -> None:
        """A cost run's comparison: the system's own benchmark tool against the same nodes and proxies at the
        run's load, once the history is complete (its records go to a topic or stream of their own). Its
        figure or why there is none goes to native.json; a failing tool never changes the run's verdict."""
        if not self.cfg.native:
            return
        bench = self.target.abilities.native_bench
        doc: dict[str, Any]
        if bench is None:
            doc = {"skipped": f"the {self.target.name} target names no native benchmark tool"}
        elif self.cfg.runtime != "local":
            doc = {"skipped": "native tools run only with the local runtime (they run on this machine)"}
        else:
            load = BenchLoad(rate=self.cfg.rate, seconds=min(self.cfg.time, NATIVE_MAX_S),
                             connections=self.cfg.producers * self.cfg.in_flight, work_dir=self.dir / "native")
            load.work_dir.mkdir(exist_ok=True)
            self.say(f"[native] the system's own tool at {load.rate:.0f} msg/s for {load.seconds:.0f}s")
            try:
                doc = asdict(bench(self.deployment, load))
                self.say(f"[native] {doc['tool']}: {doc['acked_per_s']:.0f}/s, p50 {doc['send_p50_ms']} ms, "
                         f"p99 {doc['send_p99_ms']} ms")
            except Exception as e:
                doc = {"error": f"{type(e).__name__}: {e}"}
                self.say(f"  warning: the native tool failed: {doc['error']}")
        atomic_write(self.dir / "native.json", json.dumps(doc, indent=1, default=str) + "\n")

    def _teardown(self) -> None:
        self.runtime.teardown()
        tidy = self.target.abilities.cleanup  # what the nodes kept outside the run directory
        if tidy is not None and self.infos:
            try:
                tidy(self.deployment)
            except Exception as e:
                self.say(f"  warning: the target's cleanup failed: {type(e).__name__}: {e}")
        if self.toxiproxy is not None:
            self.toxiproxy.stop()
        self.nemesis.close()
        self.harness_log.close()

    def execute(self) -> Path:
        """Run the phases; always tear down and merge the shards. Returns history.jsonl's path."""
        cfg = self.cfg
        candidates = self._candidates()
        faults = cfg.faults or []  # validated: the target's defaults filled in
        durations = {f: d for f in faults if (d := fault_of(f).duration) is not None}
        schedule = make_schedule(faults, cfg.time, cfg.seed, candidates, durations=durations)
        atomic_write(self.dir / "config.json", json.dumps(cfg.resolved(self.profile), indent=2) + "\n")
        atomic_write(self.dir / "schedule.json",
                     json.dumps({"seed": cfg.seed, "windows": [w.to_json() for w in schedule]}, indent=2) + "\n")
        self.say(f"run: {self.dir}")
        self.say(f"runtime {cfg.runtime}, target {cfg.target}, profile {cfg.profile} "
                 f"(claims {self.profile.guarantee}), workload "
                 f"{cfg.workload}, {cfg.time:.0f}s at {cfg.rate:.0f} msg/s, seed {cfg.seed}, "
                 f"{len(schedule)} fault windows: {', '.join(faults) or 'none'}")
        cleanup.register(self._teardown)
        try:
            self.say("[setup] starting nodes and toxiproxy")
            self._start_nodes()
            self._load(schedule)
            self.say("[heal] healing every fault")
            self._heal_all()
            self.say("[stop] stopping producers")
            self._stop_role("producer")
            self.say("[drain] fresh consumers read until quiet")
            self._drain()
            self._final_read()
            self._effects()
            self._check_workers()
            self._native_bench()
        finally:
            self.say("[teardown] stopping everything the run started")
            try:
                self._teardown()
            finally:
                cleanup.unregister(self._teardown)
                shards = sorted((self.dir / "shards").glob("*.jsonl"))
                n = merge_shards(shards, self.dir / "history.jsonl")
                self.say(f"[history] {n} operations in {self.dir / 'history.jsonl'}")
        return self.dir / "history.jsonl"

    def _candidates(self) -> dict[str, list[str]]:
        nodes = self._node_names()
        out = {}
        for name in self.cfg.faults or []:
            f = fault_of(name)
            if f.kind in SELECTABLE:
                out[name] = candidates(name, nodes)
            elif f.kind in ("leader", "controller", "cluster"):
                out[name] = [f.kind]
            elif f.kind == "consumer":
                out[name] = [f"consumer-{i}" for i in range(self.cfg.consumers)]
            else:
                out[name] = [f"producer-{i}" for i in range(self.cfg.producers)]
        return out
