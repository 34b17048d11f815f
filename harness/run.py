"""One live certification run: setup -> load under faults -> heal -> stop producers -> drain -> final read ->
effects -> after-run steps -> teardown (then, in harness.certify, check -> report).

`Run.execute` is the script of those phases; the parts it drives each have a module: the nodes and proxies
(`harness.cluster`), the worker processes (`harness.workers`), the fault schedule (`harness.nemesis`).
Everything the run starts (nodes, the Toxiproxy server, worker processes) is torn down on normal exit, on
exceptions and on Ctrl-C/SIGTERM, and the shards written so far are merged into history.jsonl in every case, so
an interrupted run still leaves a history that can be checked.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import targets
import workloads
from harness.cluster import Cluster
from harness.config import RunConfig
from harness.faults import fault_of
from harness.files import atomic_write
from harness.history import HistoryWriter, merge_shards
from harness.nemesis import Nemesis, schedule
from harness.runtime import cleanup, make_runtime
from harness.workers import Workers
from plugin.runtime import Runtime
from plugin.target import Target
from plugin.workload import Workload

AfterRun = Callable[["Run"], None]  # a step after the effects read, before teardown: the nodes still run


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


def prepare(cfg: RunConfig, out: TextIO | None = None, after: tuple[AfterRun, ...] = ()) -> Run:
    """The usual wiring: the run directory in the store, the registered target and workload the
    configuration names, and a runtime of its kind in that directory."""
    target = targets.load(cfg.target)
    run_dir = make_run_dir(Path(cfg.store), cfg.test_name).resolve()  # absolute: mounted as is in containers
    runtime = make_runtime(cfg.runtime, run_dir, images=[target.image])
    return Run(cfg, target=target, runtime=runtime, workload=workloads.load(cfg.workload), out=out, after=after)


class Run:
    """One run: its configuration, the target, runtime and workload handed in (tests hand in fakes), and the parts
    built from them. The run directory is the runtime's. `after` are steps run once the effects are read, before
    teardown, while the nodes still run (the cost table's native benchmark)."""

    def __init__(self, cfg: RunConfig, *, target: Target, runtime: Runtime, workload: Workload,
                 out: TextIO | None = None, after: tuple[AfterRun, ...] = ()):
        self.cfg, self.out, self.after = cfg, out, after
        self.target, self.workload, self.runtime = target, workload, runtime
        self.profile = target.profiles[cfg.profile]
        self.dir = Path(runtime.run_dir)
        self.start_ns = time.monotonic_ns()
        (self.dir / "shards").mkdir(exist_ok=True)
        self.nemesis_log = HistoryWriter(self.dir / "shards" / "nemesis.jsonl", start_ns=self.start_ns)
        self.harness_log = HistoryWriter(self.dir / "shards" / "harness.jsonl", start_ns=self.start_ns)
        options = {o.name: cfg.value(o.name) for o in target.options if cfg.value(o.name) not in (None, "", 0)}
        lossy = cfg.lossy_disks or any(fault_of(f).needs_lossy_disk for f in cfg.faults or [])
        self.cluster = Cluster(target, self.profile, runtime, self.dir, cfg.nodes or target.node_counts[0], options,
                               lossy=lossy, synced_setup=cfg.synced_setup)
        settings = {name: cfg.value(name) for name in (*workload.reads, *(o.name for o in workload.options))}
        self.workers = Workers(runtime, self.dir, self.start_ns,
                               {"target": target.name, "profile": self.profile.name, "workload": workload.name},
                               settings, self._addresses, self.say)
        windows = schedule(cfg.faults or [], cfg.time, cfg.seed, self.cluster.names(), cfg.consumers, cfg.producers)
        self.nemesis = Nemesis(windows, self.cluster, self.workers, runtime, self.nemesis_log, cfg.seed, self.say)
        self.drain_incomplete: dict[str, Any] | None = None

    def say(self, msg: str) -> None:
        print(msg, file=self.out or sys.stdout, flush=True)  # sys.stdout now, not at import time

    @property
    def unrecovered(self) -> dict[str, dict[str, Any]]:
        """Nodes that did not start again after a power loss: findings about the system, with their logs' ends."""
        return self.nemesis.unrecovered

    @property
    def worker_failures(self) -> dict[str, dict[str, Any]]:
        """Workers that ended by themselves: the harness's failure, not the system's."""
        return self.workers.failures

    def _addresses(self) -> tuple[list[str], dict[str, str], dict[str, str]]:
        c = self.cluster
        return c.client_bootstrap, c.proxy_addresses, c.direct_addresses

    # --- the script ---------------------------------------------------------------------------------------

    def execute(self) -> Path:
        """Run the phases; always tear down and merge the shards. Returns history.jsonl's path."""
        cfg = self.cfg
        atomic_write(self.dir / "config.json", json.dumps(cfg.resolved(self.profile, self.target), indent=2) + "\n")
        atomic_write(self.dir / "schedule.json", json.dumps(
            {"seed": cfg.seed, "windows": [w.to_json() for w in self.nemesis.pending]}, indent=2) + "\n")
        self.say(f"run: {self.dir}")
        self.say(f"runtime {cfg.runtime}, target {cfg.target}, profile {cfg.profile} (claims "
                 f"{self.profile.guarantee}), workload {cfg.workload}, {cfg.time:.0f}s at {cfg.rate:.0f} msg/s, seed "
                 f"{cfg.seed}, {len(self.nemesis.pending)} fault windows: {', '.join(cfg.faults or []) or 'none'}")
        cleanup.register(self._teardown)
        try:
            self.say("[setup] starting nodes and toxiproxy")
            self.cluster.start()
            self._load()
            self.say("[heal] healing every fault")
            self.nemesis.heal_all()
            self.cluster.heal()
            self.say("[stop] stopping producers")
            self.workers.stop("producer")
            self.say("[drain] fresh consumers read until quiet")
            self._drain()
            self._final_read()
            self._effects()
            self.workers.check()
            for step in self.after:
                step(self)
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

    # --- the phases ---------------------------------------------------------------------------------------

    def _load(self) -> None:
        """Consumers, then producers; the schedule's windows as they come due; progress every 2 s."""
        self.workers.start("consumer", self.cfg.consumers)
        self.workers.start("producer", self.cfg.producers)
        tail = self.workers.tail
        t0 = time.monotonic()
        last_print, last_ops = t0, 0
        stalled = 0.0  # time spent inside fault actions: the schedule's clock stops meanwhile

        def now() -> float:
            return time.monotonic() - t0 - stalled

        while now() < self.cfg.time:
            stalled += self.nemesis.step(now())
            if time.monotonic() - last_print >= 2.0:
                self.workers.check()
                tail.poll()
                rate = (tail.ops - last_ops) / (time.monotonic() - last_print)
                last_print, last_ops = time.monotonic(), tail.ops
                self.say(f"[load {now():5.1f}/{self.cfg.time:.0f}s] sent {tail.sent} acked {tail.acked} unknown "
                         f"{tail.unknown} delivered {tail.delivered} | {rate:.0f} ops/s | faults: "
                         f"{self.nemesis.describe()}")
            time.sleep(0.05)

    def _backlog(self) -> int | str | None:
        """What the target says is still unconsumed: None when it has no such ability, "unknown" when asking
        failed (say, no leader to answer yet: not a reason to end the drain)."""
        backlog = self.target.abilities.backlog
        if backlog is None:
            return None
        try:
            return int(self.cluster.ask(backlog))
        except Exception as e:
            self.say(f"  note: the backlog could not be read: {type(e).__name__}: {e}")
            return "unknown"

    def _drain(self) -> None:
        """Fresh consumers until no delivery for `quiet` seconds (and, where the target can tell, nothing
        left unconsumed), bounded by the deadline. An unfinished drain is remembered: messages it did not
        reach are not provably lost."""
        self.workers.stop("consumer")
        self.workers.start("consumer", self.cfg.consumers, slot_prefix="drainer", drain=True)
        quiet = self.cfg.quiet or self.target.drain.quiet
        deadline = self.cfg.drain_deadline or self.target.drain.deadline
        tail = self.workers.tail
        t0 = last = time.monotonic()
        tail.poll()
        while True:
            time.sleep(0.25)
            if tail.poll():
                last = time.monotonic()
            now = time.monotonic()
            if now - last >= quiet:
                left = self._backlog()
                if left is None or left == 0:
                    self.say(f"[drain] quiet for {quiet:.0f}s after {now - t0:.1f}s"
                             f"{'' if left is None else ', nothing left unconsumed'}; delivered {tail.delivered}")
                    break
            if now - t0 >= deadline:
                left = self._backlog()
                self.drain_incomplete = {"deadline_s": deadline, "backlog": "unknown" if left is None else left}
                self.say(f"[drain] deadline of {deadline:.0f}s reached; "
                         f"{'unknown' if left is None else left} messages still unconsumed")
                break
            self.workers.check()
        self.workers.stop("drainer")

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
            records = self.cluster.ask(final_read)
        except Exception as e:
            self.harness_log.write(who, "info", "final-read", None, error=f"{type(e).__name__}: {e}")
            self.say(f"  warning: the final read failed: {type(e).__name__}: {e}")
            return
        self.harness_log.write(who, "ok", "final-read", {"messages": records})
        self.say(f"[final read] {len(records)} records in {time.monotonic() - t0:.1f}s")

    def _effects(self) -> None:
        self.harness_log.write("harness", "invoke", "effects", None)
        try:
            counts = self.cluster.ask(self.target.read_effects)
        except Exception as e:
            self.harness_log.write("harness", "info", "effects", None, error=f"{type(e).__name__}: {e}")
            return
        self.harness_log.write("harness", "ok", "effects", {"counts": counts})

    def _teardown(self) -> None:
        self.runtime.teardown()
        self.cluster.cleanup(self.say)
        self.nemesis_log.close()
        self.harness_log.close()
