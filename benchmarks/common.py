"""What the throughput benchmarks share: a target's nodes started the way a run starts them, and the
harness's own producer rate measured with real worker processes."""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

from harness.runtime import LocalRuntime, NodeSpec
from harness.toxiproxy import ToxiproxyServer
from harness.worker import shard_path, worker_spec
from plugin.target import Deployment, NodeInfo, Profile, Target


def _ready(target: Target, info: NodeInfo, node: Any) -> bool:
    return target.ready(info)


def start_nodes(target: Target, profile: Profile, n: int, runtime: LocalRuntime, toxiproxy: ToxiproxyServer,
                run_dir: Path) -> Deployment:
    """`n` nodes of `target` with the profile's settings, each behind its own proxy, ready and prepared, in
    the order harness/run.py uses (proxies, setup_nodes, node_argv, ready, prepare)."""
    return start_cluster(target, profile, n, runtime, toxiproxy, run_dir)[0]


def start_cluster(target: Target, profile: Profile, n: int, runtime: LocalRuntime, toxiproxy: ToxiproxyServer,
                  run_dir: Path) -> tuple[Deployment, dict[str, Any]]:
    """As start_nodes, with the nodes' handles by name (to kill or restart one)."""
    infos = []
    for i in range(1, n + 1):
        data = run_dir / "nodes" / f"{target.name}-{i}"
        data.mkdir(parents=True)
        info = NodeInfo(f"{target.name}-{i}", runtime.free_port(), data_dir=data,
                        extra_ports={p: runtime.free_port() for p in target.ports})
        info.proxy_port = toxiproxy.create_proxy(info.name, f"127.0.0.1:{info.port}").port
        infos.append(info)
    d = Deployment(infos, profile, run_dir)
    target.setup_nodes(d, lambda argv, timeout: runtime.run_once(target.image.role, argv, timeout))
    nodes = {}
    for info in infos:
        home = run_dir / "nodes" / info.name
        spec = NodeSpec(name=info.name, argv=target.node_argv(d, info), data_dir=home,
                        log_path=home / f"{info.name}.log", ports={"client": info.port, **info.extra_ports},
                        ready=functools.partial(_ready, target, info))
        nodes[info.name] = runtime.node(spec).start()
    for node in nodes.values():
        node.wait_ready(target.ready_timeout)
    target.prepare(d)
    return d, nodes


def harness_rate(runtime: LocalRuntime, phase_dir: Path, target: str, profile: str, bootstrap: list[str],
                 producers: int, seconds: float, record: bool = True, in_flight: int = 1) -> dict[str, float]:
    """Run `producers` unpaced producer workers for `seconds`, stop them with SIGTERM, and add up their stats
    files. Rate = sum over workers of acked / that worker's own seconds. `in_flight`: sends in flight per worker
    (its logical processes, as `onceproof run --in-flight`)."""
    start_ns = time.monotonic_ns()
    settings = {"rate": 0, "producers": producers, "consumers": 0, "in_flight": in_flight}
    (phase_dir / "workers").mkdir(parents=True)
    workers = []
    for i in range(producers):
        spec = worker_spec("producer", i, phase_dir, start_ns, target, profile, bootstrap, "queue", settings,
                           record=record)
        spec_path = phase_dir / "workers" / f"producer-{i}.json"
        spec_path.write_text(json.dumps(spec))
        workers.append(runtime.spawn(f"{phase_dir.name}-producer-{i}",
                                     [sys.executable, "-m", "harness.worker", str(spec_path)],
                                     log_path=phase_dir / "workers" / f"producer-{i}.log"))
    time.sleep(seconds)
    for w in workers:
        w.stop(timeout=20)  # SIGTERM: the worker finishes the send in hand, writes its stats and exits
    total = {"attempted": 0.0, "acked": 0.0, "rate": 0.0, "seconds": 0.0, "history_bytes": 0.0}
    for i, w in enumerate(workers):
        stats_file = shard_path(phase_dir, "producer", i).with_suffix(".stats.json")
        if w.returncode != 0 or not stats_file.exists():
            tail = "\n".join(w.log_tail())
            raise RuntimeError(f"worker {w.name} exited with {w.returncode}, no {stats_file.name}:\n{tail}")
        stats = json.loads(stats_file.read_text())
        total["attempted"] += stats["attempted"]
        total["acked"] += stats["acked"]
        total["rate"] += stats["acked"] / stats["seconds"]
        total["seconds"] = max(total["seconds"], stats["seconds"])
        shard = shard_path(phase_dir, "producer", i)
        total["history_bytes"] += shard.stat().st_size if shard.exists() else 0
    return total
