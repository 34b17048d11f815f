"""The docker runtime against a real engine: containers killed, paused and restarted, partitions as
iptables rules in each container's namespace, and nothing left behind by teardown, Ctrl-C or a SIGKILLed
harness (with `onceproof clean`)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.runtime.local import NodeSpec
from targets.redis import TARGET as REDIS
from targets.redis import ping
from tests.conftest import docker_images

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


REDIS_IMAGE = REDIS.image


@pytest.fixture(scope="module", autouse=True)
def _images():
    docker_images("redis")


def _redis(rt, name: str, port: int = 6379):
    spec = NodeSpec(name=name, argv=["redis-server", "--port", str(port), "--bind", "0.0.0.0",
                                     "--protected-mode", "no", "--save", "", "--appendonly", "no"],
                    data_dir=rt.run_dir / "nodes" / name, log_path=rt.run_dir / "nodes" / name / "node.log",
                    image="redis")
    node = rt.node(spec, rt.place())
    spec.ready = lambda n: ping(port, host=node.ip)
    return node


def _connects(pid: int, ip: str, port: int = 6379) -> bool:
    """Whether a TCP connect from inside the namespace of process `pid` to ip:port succeeds within 1 s."""
    code = (f"import socket,sys\ntry:\n socket.create_connection(({ip!r},{port}),timeout=1).close()\n"
            "except OSError:\n sys.exit(1)")
    return subprocess.run(["nsenter", "-t", str(pid), "-n", sys.executable, "-c", code], timeout=10).returncode == 0


def _leftovers() -> int:
    from harness.runtime.docker import leftovers

    found = leftovers()
    if any(found.values()):
        print("left behind:", found)
    return sum(len(v) for v in found.values())


def test_a_node_container_is_killed_paused_resumed_and_restarted_at_the_same_address(tmp_path):
    from harness.runtime.docker import DockerRuntime

    with DockerRuntime(tmp_path / "run", images=[REDIS_IMAGE]) as rt:
        node = _redis(rt, "redis-1")
        node.start().wait_ready(30)
        assert node.alive and ping(6379, host=node.ip)
        node.pause()
        assert node.paused and not ping(6379, host=node.ip, timeout=0.5)
        node.resume()
        assert ping(6379, host=node.ip)
        node.kill()
        assert not node.alive and node.returncode == 137  # SIGKILL
        assert not ping(6379, host=node.ip, timeout=0.5)
        node.start().wait_ready(30)
        assert ping(6379, host=node.ip)
        time.sleep(0.5)
        log = node.log_path.read_text()
        assert log.count("starting redis-1") == 2 and "killed by SIGKILL" in log and "Ready to accept" in log
    assert _leftovers() == 0


def test_partitions_are_rules_in_each_nodes_namespace_and_healing_removes_them(tmp_path):
    from harness.runtime.docker import DockerRuntime

    with DockerRuntime(tmp_path / "run", images=[REDIS_IMAGE]) as rt:
        a, b, c = (_redis(rt, f"redis-{i}") for i in (1, 2, 3))
        for n in (a, b, c):
            n.start()
        for n in (a, b, c):
            n.wait_ready(30)
        assert _connects(a.pid, b.ip) and _connects(a.pid, c.ip)
        rt.partition({"redis-1": ["redis-2"], "redis-2": ["redis-1"]})
        assert "onceproof" in rt.rules("redis-1") and b.ip in rt.rules("redis-1")
        assert not _connects(a.pid, b.ip) and not _connects(b.pid, a.ip)
        assert _connects(a.pid, c.ip) and _connects(c.pid, b.ip)  # only the grudge is cut
        assert ping(6379, host=a.ip)  # the harness (outside the grudge) still reaches every node
        rt.heal_partition()
        assert "DROP" not in rt.rules("redis-1") and "DROP" not in rt.rules("redis-2")
        assert _connects(a.pid, b.ip) and _connects(b.pid, a.ip)
    assert _leftovers() == 0


def test_grudges_follow_jepsen():
    from harness.faults import grudge

    nodes = ["n1", "n2", "n3", "n4", "n5"]
    g = grudge("isolate-one", nodes, "n3")
    assert g["n3"] == ["n4", "n5", "n1", "n2"] and all(g[x] == ["n3"] for x in ("n1", "n2", "n4", "n5"))
    g = grudge("halves", nodes, "n1")
    assert g["n1"] == ["n3", "n4", "n5"] and g["n4"] == ["n1", "n2"]
    g = grudge("majorities-ring", nodes, "n1")
    assert all(len(v) == 2 for v in g.values())  # each hears itself and two others: a majority of 5
    assert len({tuple(sorted(v)) for v in g.values()}) == 5  # no two nodes see the same majority
    for x, dropped in g.items():
        assert x not in dropped


def test_partition_faults_are_refused_for_local_nodes(tmp_path, capsys):
    assert main(["run", "--target", "kafka", "--faults", "partition-halves", "--store", str(tmp_path)]) == 2
    assert "needs --runtime docker" in capsys.readouterr().err


def test_a_sigkilled_harness_leaves_objects_that_onceproof_clean_removes(tmp_path):
    code = ("import sys,time\nfrom pathlib import Path\nfrom harness.runtime.docker import DockerRuntime\n"
            "from harness.runtime.local import NodeSpec\n"
            "import targets\n"
            f"rt = DockerRuntime({str(tmp_path / 'run')!r}, images=[targets.load('redis').image])\n"
            "d = rt.run_dir / 'n'\n"
            "rt.node(NodeSpec(name='redis-1', argv=['redis-server'], data_dir=d, log_path=d / 'log', image='redis'), "
            "rt.place()).start()\n"
            "print('up', flush=True)\ntime.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "up"
    proc.kill()  # no teardown can run
    proc.wait(10)
    assert _leftovers() == 2  # the container and the network
    assert main(["clean", "--dry-run"]) == 1
    assert main(["clean", "--orphans"]) == 0
    assert _leftovers() == 0
    assert main(["clean", "--dry-run"]) == 0


def _ours(marker: str) -> list[str]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (p / "stat").read_text().split(") ")[-1][:1]
            except OSError:
                continue
            if marker in cmd and state != "Z" and int(p.name) != os.getpid():
                out.append(cmd)
    return out


def _host_rules() -> str:
    r = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False)
    return r.stdout


def _netns() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout


def test_ten_runs_interrupted_at_random_moments_leave_nothing_behind(tmp_path):
    from harness.runtime.docker import clean

    clean(only_orphans=True)  # what earlier, failed tests may have left
    rng = random.Random("onceproof-interrupts")
    rules_before, netns_before = _host_rules().count("onceproof"), _netns()
    codes = []
    for i in range(10):
        store = tmp_path / f"run-{i}"
        proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "--runtime", "docker", "--time", "8",
                                 "--faults", "kill-consumer,ack-loss,restart", "--store", str(store)],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(rng.uniform(0.3, 14.0))  # from before the first container to the drain or the end
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
        codes.append(proc.returncode)
        assert proc.returncode in (0, 1, 2, 130, -signal.SIGINT), out  # -2: interrupted while importing
        assert _leftovers() == 0, f"run {i}:\n{out}"
        assert _ours(str(store)) == [], f"run {i}:\n{out}"
    assert _host_rules().count("onceproof") == rules_before and _netns() == netns_before
    assert main(["clean", "--dry-run"]) == 0
    assert 130 in codes  # most were really interrupted
    for i in range(10):  # and whatever history was written can be checked
        h = tmp_path / f"run-{i}" / "latest" / "history.jsonl"
        if h.exists() and h.stat().st_size:
            assert main(["check", str(h.parent), "-q"]) in (0, 1, 2)
    json.dumps(codes)
