"""`Run` with a fake runtime and a fake target: the phases, the abilities asked for by name, faults on
the nodes the target names, teardown on every path. No process, proxy or broker is started; the fake
workers write their history shards the way real ones do."""

from __future__ import annotations

import io
import json
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from checkers.history import read_history
from checkers.suite import check_history
from harness.config import RunConfig
from harness.history import HistoryWriter
from harness.run import Run
from plugin.imaging import Image, Layout
from plugin.needs import Needs
from plugin.runtime import NodeSpec, Partitions, Placement
from plugin.target import Abilities, Deployment, Drain, NodeInfo, Profile, Runner
from workloads.queue import WORKLOAD as QUEUE

SENDS_PER_PRODUCER = 5


class FakeNode:
    """A node or worker that only remembers what was done to it."""

    def __init__(self, name: str, log: list[str], on_start: Any = None) -> None:
        self.name, self.log, self.on_start = name, log, on_start
        self.alive = self.paused = False
        self.pid: int | None = None
        self.returncode: int | None = None

    def start(self) -> FakeNode:
        self.alive, self.pid = True, 1
        self.log.append(f"start {self.name}")
        if self.on_start:
            self.on_start()
        return self

    def wait_ready(self, timeout: float = 30.0) -> FakeNode:
        self.log.append(f"ready {self.name}")
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        self.alive = False
        self.log.append(f"stop {self.name}")
        return 0

    def kill(self) -> int | None:
        self.alive = False
        self.log.append(f"kill {self.name}")
        return -9

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def log_tail(self, lines: int = 20, *, since_start: bool = True) -> list[str]:
        return ["ModuleNotFoundError: No module named 'requests'"] if self.returncode == 1 else []


class FakeProxies:
    client_host = "127.0.0.1"

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.port = 40000

    def start(self) -> FakeProxies:
        self.log.append("toxiproxy start")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.log.append("toxiproxy stop")

    def create_proxy(self, name: str, upstream: str, listen: str | None = None) -> Any:
        self.port += 1
        return SimpleNamespace(name=name, port=self.port)

    def add_toxic(self, proxy: Any, name: str, type: str, stream: str = "downstream", toxicity: float = 1.0,
                  attributes: dict[str, Any] | None = None) -> dict[str, Any]:
        self.log.append(f"toxic {proxy.name} {type}")
        return {}

    def remove_toxic(self, proxy: Any, name: str) -> None:
        self.log.append(f"untoxic {proxy.name}")

    def enable(self, proxy: Any) -> None: ...
    def disable(self, proxy: Any) -> None: ...

    def reset(self) -> None:
        self.log.append("toxiproxy reset")


class FakeRuntime:
    """Nodes are FakeNodes; a worker writes its shard at once: a producer its sends, a drainer a poll that
    delivers every id sent so far."""

    name: ClassVar[str] = "fake"
    can_partition: ClassVar[bool] = False

    def __init__(self, run_dir: Path, partitions: Partitions | None = None, crash: str = "") -> None:
        self.run_dir = run_dir
        self.crash = crash  # workers of this role die at once, by themselves
        self.python = sys.executable
        self.log: list[str] = []
        self._partitions = partitions
        self._port = 30000
        self.sent: list[str] = []
        self.delivered: list[str] = []
        self.lock = threading.Lock()

    @property
    def partitions(self) -> Partitions | None:
        return self._partitions

    def place(self) -> Placement:
        return Placement("127.0.0.1", "127.0.0.1", False)

    def free_port(self) -> int:
        self._port += 1
        return self._port

    def node(self, spec: NodeSpec, placement: Placement) -> FakeNode:
        self.log.append(f"node {spec.name} {spec.image}: {spec.argv[0]}")
        return FakeNode(spec.name, self.log)

    def spawn(self, name: str, argv: list[str], *, log_path: Path) -> FakeNode:
        assert argv[:3] == [sys.executable, "-m", "harness.worker"]
        spec = json.loads(Path(argv[3]).read_text())
        node = FakeNode(name, self.log, on_start=lambda: self._work(spec)).start()
        if spec["role"] == self.crash:
            node.alive, node.returncode = False, 1
        return node

    def _work(self, spec: dict[str, Any]) -> None:
        path = Path(spec["run_dir"]) / "shards" / f"{spec['role']}-{spec['index']}.jsonl"
        p = (spec["index"] + 1) * 1_000_000
        with HistoryWriter(path, start_ns=spec["start_ns"]) as w, self.lock:
            if spec["role"] == "producer":
                for n in range(SENDS_PER_PRODUCER):
                    mid = f"p{spec['index']}-{n}"
                    w.write(p, "invoke", "send", {"id": mid, "key": "k0"})
                    w.write(p, "ok", "send", {"id": mid})
                    self.sent.append(mid)
            elif spec["drain"] and self.sent:
                w.write(p, "invoke", "poll", {"consumer": f"c{spec['index']}"})
                w.write(p, "ok", "poll", {"messages": [{"id": m, "key": "k0"} for m in self.sent]})
                self.delivered += self.sent
                self.sent = []

    def run_once(self, image: str, argv: list[str], timeout: float = 120.0) -> tuple[int, str]:
        self.log.append(f"run_once {image} {argv[0]}")
        return 0, ""

    def toxiproxy(self, log_path: Path) -> FakeProxies:
        return FakeProxies(self.log)

    def teardown(self) -> None:
        self.log.append("teardown")


class FakeTarget:
    """A target whose abilities the test chooses; it records what the run asked of it."""

    name = "fake"
    profiles: ClassVar[dict[str, Profile]] = {
        "safe": Profile("safe", "exactly-once", "a profile of the fake target")}
    faults = ("ack-loss", "kill-leader", "kill")
    clients: ClassVar[dict[str, Any]] = {"queue": object()}  # clients run in workers, never in the harness
    node_counts = (3,)
    ports = ("cluster",)
    options = ()
    ready_timeout = 1.0
    drain = Drain(quiet=0.3, deadline=5.0)
    needs = Needs()
    image = Image("fake", None, Layout)

    def __init__(self, abilities: Abilities | None = None, fail_prepare: bool = False) -> None:
        self.calls: list[str] = []
        self.applied: list[str] = []  # the effect store: the test points it at what the fake drainers delivered
        self.fail_prepare = fail_prepare
        self.abilities = abilities or Abilities()

    def setup_nodes(self, d: Deployment, run: Runner) -> None:
        self.calls.append("setup_nodes")
        assert [n.name for n in d.nodes] == ["fake-1", "fake-2", "fake-3"]
        assert all(n.proxy_port and "cluster" in n.extra_ports for n in d.nodes)
        run(["format"], 5.0)

    def node_argv(self, d: Deployment, node: NodeInfo) -> list[str]:
        return ["fake-server", str(node.port)]

    def ready(self, node: NodeInfo) -> bool:
        return True

    def prepare(self, d: Deployment) -> None:
        self.calls.append("prepare")
        if self.fail_prepare:
            raise RuntimeError("the fake cluster refuses to prepare")

    def read_effects(self, d: Deployment) -> dict[str, int]:
        self.calls.append("read_effects")
        return dict.fromkeys(self.applied, 1)


def _cfg(tmp_path: Path, faults: list[str], time: float = 3.5, target: str = "fake", profile: str = "safe",
         nodes: int = 3) -> RunConfig:
    return RunConfig(target=target, profile=profile, workload="queue", faults=faults, time=time, nodes=nodes,
                     quiet=0.3, drain_deadline=5.0, store=str(tmp_path), runtime="fake", extra={"batch": 10})


def _run(tmp_path: Path, target: FakeTarget, faults: list[str], runtime: FakeRuntime | None = None) -> tuple[Run, Any]:
    runtime = runtime or FakeRuntime(tmp_path / "run")
    runtime.run_dir.mkdir(parents=True, exist_ok=True)
    target.applied = runtime.delivered
    run = Run(_cfg(tmp_path, faults), target=target, runtime=runtime, workload=QUEUE, out=io.StringIO())
    return run, runtime


def test_phases_abilities_and_the_checked_history(tmp_path):
    backlogs = [4, 0]
    asked: list[str] = []

    def backlog(d: Deployment) -> int:  # the drain must not end on quiet while something is unconsumed
        asked.append("backlog")
        return backlogs.pop(0) if backlogs else 0

    def leader(d: Deployment) -> str:
        asked.append("leader")
        return d.nodes[1].name

    def final_read(d: Deployment) -> list[dict[str, Any]]:
        asked.append("final_read")
        return [{"id": "p0-0", "key": "k0", "partition": 0, "offset": 0}]

    target = FakeTarget(Abilities(backlog=backlog, final_read=final_read, leader=leader))
    run, rt = _run(tmp_path, target, ["ack-loss", "kill-leader"])
    history = run.execute()

    assert target.calls == ["setup_nodes", "prepare", "read_effects"]
    assert "leader" in asked and "final_read" in asked and asked.count("backlog") >= 2
    assert rt.log.index("toxiproxy start") < rt.log.index("run_once fake format") < rt.log.index("start fake-1")
    assert "kill fake-2" in rt.log  # the node the leader ability named
    assert rt.log[-2:] == ["teardown", "toxiproxy stop"]
    h = read_history(history)
    results = check_history(h, "exactly-once")
    assert results["valid"] is True, results["delivery"]["counts"]
    assert results["delivery"]["counts"]["delivered"] == 2 * SENDS_PER_PRODUCER
    assert {f["fault"] for f in results["faults"]} == {"ack-loss", "kill-leader"}
    assert {tuple(f["nodes"]) for f in results["faults"] if f["fault"] == "kill-leader"} == {("fake-2",)}
    assert results["log"]["final_read"]["records"] == 1
    assert run.drain_incomplete is None


def test_without_abilities_the_drain_ends_on_quiet_and_nothing_is_read_again(tmp_path):
    target = FakeTarget()
    run, rt = _run(tmp_path, target, ["kill"])
    ops = [json.loads(line) for line in run.execute().read_text().splitlines()]
    assert not any(o["f"] == "final-read" for o in ops)
    assert [o["type"] for o in ops if o["f"] == "effects"] == ["invoke", "ok"]
    assert any(line.startswith("kill fake-") for line in rt.log)


def test_a_leader_fault_without_the_ability_is_reported_not_applied(tmp_path):
    run, rt = _run(tmp_path, FakeTarget(), ["kill-leader"])
    run.execute()
    assert not any(line.startswith("kill fake-") for line in rt.log)


def test_partitions_need_the_runtime_ability(tmp_path):
    run, _ = _run(tmp_path, FakeTarget(), [])
    with pytest.raises(RuntimeError, match="not possible in the fake runtime"):
        run.nemesis.partition({"fake-1": ["fake-2"]})
    run.nemesis.heal_partition()  # nothing to heal: no error

    cut: list[dict[str, list[str]]] = []
    able = SimpleNamespace(partition=cut.append, heal_partition=lambda: cut.append({}))
    run2, _ = _run(tmp_path / "2", FakeTarget(), [], FakeRuntime(tmp_path / "2" / "run", partitions=able))
    run2.nemesis.partition({"fake-1": ["fake-2"]})
    run2.nemesis.heal_partition()
    assert cut == [{"fake-1": ["fake-2"]}, {}]


def test_a_failure_while_preparing_still_tears_down_and_keeps_the_history(tmp_path):
    run, rt = _run(tmp_path, FakeTarget(fail_prepare=True), ["ack-loss"])
    with pytest.raises(RuntimeError, match="refuses to prepare"):
        run.execute()
    assert "teardown" in rt.log and "toxiproxy stop" in rt.log
    assert (run.dir / "history.jsonl").exists()


def test_a_worker_that_ends_by_itself_is_the_harness_s_failure_not_the_system_s(tmp_path):
    run, _ = _run(tmp_path, FakeTarget(), ["ack-loss"], FakeRuntime(tmp_path / "run", crash="producer"))
    run.execute()
    assert sorted(run.worker_failures) == ["producer-2", "producer-3"]
    assert run.worker_failures["producer-2"]["exit"] == 1
    assert "requests" in run.worker_failures["producer-2"]["log"][0]


def test_a_backlog_that_cannot_be_read_does_not_end_the_drain(tmp_path):
    answers: list[Any] = [RuntimeError("no leader yet"), RuntimeError("no leader yet"), 0]

    def backlog(d: Deployment) -> int:
        a = answers.pop(0) if answers else 0
        if isinstance(a, Exception):
            raise a
        return a

    run, _ = _run(tmp_path, FakeTarget(Abilities(backlog=backlog)), [])
    run.execute()
    assert answers == [] and run.drain_incomplete is None


def test_a_fourth_queue_target_written_from_the_docs_runs_on_the_fakes(tmp_path):
    """tests/fixtures/spool: a target written from docs/adding-a-target.md alone goes through every phase with the
    fake runtime as it is (no subclass): its nodes set up and started, the faults it lists applied, its effect
    store read back (empty here: the fake workers do not run its clients, so every acknowledged send is a lost
    effect, which shows the read was made)."""
    from tests.fixtures.spool import TARGET as SPOOL

    runtime = FakeRuntime(tmp_path / "run")
    runtime.run_dir.mkdir(parents=True)
    cfg = _cfg(tmp_path, ["kill", "kill-producer"], target="spool", profile="at-least-once", nodes=1)
    run = Run(cfg, target=SPOOL, runtime=runtime, workload=QUEUE, out=io.StringIO())
    h = read_history(run.execute())
    assert (runtime.run_dir / "spool").is_dir() and f"node spool-1 spool: {sys.executable}" in runtime.log
    assert "kill spool-1" in runtime.log and runtime.log[-2:] == ["teardown", "toxiproxy stop"]
    results = check_history(h, "at-least-once")
    c = results["delivery"]["counts"]
    assert results["delivery"]["effects_checked"] and c["delivered"] >= 2 * SENDS_PER_PRODUCER
    assert c["lost_effects"] == c["acknowledged"] == c["delivered"]  # (a replaced producer sends again)
    assert {f["fault"] for f in results["faults"]} == {"kill", "kill-producer"}
