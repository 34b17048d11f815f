"""redis-benchmark beside the harness's cost figures: the same node, through the same proxy, with as many
connections as the harness has sends in flight and no pipelining, sending what the profile's producers send
(a plain XADD, or the exactly-once profile's SET NX + XADD script on random ids). redis-benchmark cannot
pace itself, so it runs as fast as those connections go: its throughput is the node's ceiling at that
concurrency, its latencies those of a saturated node (higher than a paced harness's)."""

from __future__ import annotations

import re
import shutil
import subprocess

from plugin.target import BenchFigure, BenchLoad, Deployment

BENCH_STREAM = "onceproof:bench"  # apart from the harness's stream, so nothing of the run's is touched
PROBE_REQUESTS = 2000
MAX_REQUESTS = 1_000_000
LONGEST_S = 5.0  # the sized run lasts about this long (or the load's seconds, if shorter)
CSV = re.compile(r'^"[^"]*","([0-9.]+)","[0-9.]+","[0-9.]+","([0-9.]+)","[0-9.]+","([0-9.]+)"', re.M)


def command(port: int, load: BenchLoad, requests: int, script: str | None, host: str = "127.0.0.1") -> list[str]:
    """redis-benchmark's argv: the producers' `script` (SET NX + XADD) when given, else a plain XADD."""
    value = "v" * load.record_size
    if script:  # the exactly-once producer's script, on a fresh random id per request
        op = ["EVAL", script, "2", BENCH_STREAM, f"{BENCH_STREAM}:sent:__rand_int__", "__rand_int__", "k0",
              value]
    else:
        op = ["XADD", BENCH_STREAM, "*", "id", "__rand_int__", "key", "k0", "amount", value]
    return ["redis-benchmark", "-h", host, "-p", str(port), "-c", str(load.connections), "-n", str(requests),
            "-P", "1", "-r", "100000000", "--csv", *op]


def run(argv: list[str], timeout: float) -> tuple[float, float, float]:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    m = CSV.search(out.stdout)
    if out.returncode != 0 or not m:
        raise RuntimeError(f"redis-benchmark exited with {out.returncode} and no figures: "
                           f"{(out.stdout + out.stderr)[-400:]!r}")
    rps, p50, p99 = (float(x) for x in m.groups())
    return rps, p50, p99


def redis_benchmark(d: Deployment, load: BenchLoad, dedup_script: str) -> BenchFigure:
    """A probe, then a run sized to last about LONGEST_S; the sized run's figures."""
    if shutil.which("redis-benchmark") is None:
        raise RuntimeError("redis-benchmark is not installed (Debian: redis-tools)")
    node = d.nodes[0]
    if node.proxy_port is None:
        raise RuntimeError(f"{node.name} has no proxy")
    dedup = bool(d.profile.settings.get("producer_dedup"))
    script = dedup_script if dedup else None
    rps, _, _ = run(command(node.proxy_port, load, PROBE_REQUESTS, script, node.proxy_host), 60)
    n = int(min(MAX_REQUESTS, max(PROBE_REQUESTS, rps * min(LONGEST_S, load.seconds))))
    argv = command(node.proxy_port, load, n, script, node.proxy_host)
    value = "v" * load.record_size
    rps, p50, p99 = run(argv, 120)
    shown = ["<script>" if a == script else f"<{load.record_size}-byte value>" if a == value else a
             for a in argv]
    return BenchFigure("redis-benchmark", " ".join(shown), round(rps, 1), p50, p99, paced=False,
                       note=f"{load.connections} connections, -P 1, {n} requests, "
                            + ("SET NX + XADD script" if dedup else "XADD"))
