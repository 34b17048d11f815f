"""How many acknowledged messages/s does the harness push through Redis, against redis-benchmark?

    python benchmarks/redis_throughput.py [--seconds 10] [--producers 2] [--profile at-least-once]

On one redis-server node started with the profile's persistence settings, behind one Toxiproxy proxy
(as in a real run), this measures in one go:

1. the harness's producers, spawned exactly as harness/run.py spawns them, unpaced (rate 0) and
   recording their history: acknowledged messages/s;
2. the same producers without recording (NullWriter): the recording overhead is 1 - (1) / (2);
3. redis-benchmark's XADD with as many connections as producers, without pipelining, direct and
   through the proxy, and one pipelined (-P 16) figure for reference;
4. the ratios harness / redis-benchmark.

Run it with the project's interpreter (.venv/bin/python): it imports the harness. Everything runs on
127.0.0.1 in a temporary directory that is removed at the end (--keep to keep it).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import redis
from common import harness_rate, start_nodes  # benchmarks/common.py, beside this script

from harness.runtime import LocalRuntime, cleanup
from harness.toxiproxy import ToxiproxyServer
from targets.redis import TARGET as target

BENCH_STREAM = "onceproof:bench"  # redis-benchmark's stream, apart from the harness's onceproof:stream
RPS = re.compile(r"([0-9.]+) requests per second")


def redis_benchmark(port: int, clients: int, pipeline: int, seconds: float) -> tuple[float, int]:
    """redis-benchmark's XADD requests/s, with a request count sized (by a short probe) to last about
    `seconds`. Returns (requests/s, requests)."""
    def run(n: int) -> float:
        argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(clients), "-n", str(n),
                "-P", str(pipeline), "-q", "XADD", BENCH_STREAM, "*", "f", "v"]
        out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=max(60, 10 * seconds))
        found = RPS.findall(out.stdout)
        if not found:
            raise RuntimeError(f"no 'requests per second' in redis-benchmark's output: {out.stdout[-300:]!r}")
        return float(found[-1])

    probe = run(2000 * pipeline)
    n = max(2000, int(probe * seconds))
    return run(n), n


def fs_type(path: Path) -> str:
    """The file system type of the mount holding `path` (fsync costs depend on it)."""
    best, kind = "", "?"
    with open("/proc/mounts") as fh:
        for line in fh:
            _dev, mnt, fstype, *_ = line.split()
            if str(path).startswith(mnt) and len(mnt) > len(best):
                best, kind = mnt, fstype
    return f"{kind} (mounted on {best})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="load time of each harness phase (default 10)")
    ap.add_argument("--producers", type=int, default=2, help="producer workers = redis-benchmark -c (default 2)")
    ap.add_argument("--in-flight", type=int, default=1,
                    help="sends in flight per producer (threads; redis-benchmark gets producers x this connections)")
    ap.add_argument("--profile", default="at-least-once", choices=sorted(target.profiles))
    ap.add_argument("--bench-seconds", type=float, default=3.0, help="length of each redis-benchmark run")
    ap.add_argument("--keep", action="store_true", help="keep the temporary run directory")
    args = ap.parse_args()
    if shutil.which("redis-server") is None or shutil.which("redis-benchmark") is None:
        print("needs redis-server and redis-benchmark on PATH (Debian: apt-get install redis-server redis-tools)")
        return 2

    profile = target.profiles[args.profile]
    cleanup.install_handlers()  # Ctrl-C or SIGTERM: KeyboardInterrupt, so the finally below tears down
    run_dir = Path(tempfile.mkdtemp(prefix="onceproof-redis-bench-"))
    runtime = LocalRuntime(run_dir)
    toxiproxy = None
    n = args.producers * args.in_flight  # redis-benchmark connections: as many sends in flight as the harness
    print(f"run dir {run_dir}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        print("warning: the machine is already busy; these figures will be noisy (rerun when it is quiet)")
    try:
        toxiproxy = ToxiproxyServer(log_path=run_dir / "toxiproxy.log").start()
        info = start_nodes(target, profile, 1, runtime, toxiproxy, run_dir).nodes[0]

        r = redis.Redis(host="127.0.0.1", port=info.port, decode_responses=True, socket_timeout=5)
        live = {k: r.config_get(k)[k] for k in ("appendonly", "appendfsync", "save")}
        settings = {k: v for k, v in profile.settings.items() if k in ("appendonly", "appendfsync")}
        print(f"profile {profile.name} (claims {profile.guarantee}): persistence {settings}")
        print(f"redis-server {r.info('server')['redis_version']} reports {live}; "
              f"data on {fs_type(info.data_dir)}")
        print(f"redis on 127.0.0.1:{info.port}, toxiproxy proxy on 127.0.0.1:{info.proxy_port}")
        if profile.settings.get("producer_dedup"):
            print("note: this profile's producers send a Lua script (SET NX + XADD); redis-benchmark a plain XADD")

        print(f"\n[1/5] harness, {n} producers through the proxy, recording, {args.seconds:.0f}s ...", flush=True)
        rec = harness_rate(runtime, run_dir / "recorded", "redis", args.profile, [f"127.0.0.1:{info.proxy_port}"],
                           args.producers, args.seconds, record=True, in_flight=args.in_flight)
        print(f"[2/5] harness, {n} producers through the proxy, not recording, {args.seconds:.0f}s ...", flush=True)
        unrec = harness_rate(runtime, run_dir / "unrecorded", "redis", args.profile, [f"127.0.0.1:{info.proxy_port}"],
                             args.producers, args.seconds, record=False, in_flight=args.in_flight)
        print(f"[3/5] redis-benchmark XADD -c {n} -P 1, direct ...", flush=True)
        direct, direct_n = redis_benchmark(info.port, n, 1, args.bench_seconds)
        print(f"[4/5] redis-benchmark XADD -c {n} -P 1, through the proxy ...", flush=True)
        proxied, proxied_n = redis_benchmark(info.proxy_port, n, 1, args.bench_seconds)
        print(f"[5/5] redis-benchmark XADD -c {n} -P 16, direct (reference) ...", flush=True)
        piped, piped_n = redis_benchmark(info.port, n, 16, args.bench_seconds)
        persistence = r.info("persistence")
        r.close()

        print(f"\nacknowledged messages/s, {n} connections, {profile.name} "
              f"(appendonly {live['appendonly']}, appendfsync {live['appendfsync']}):")
        for label, res in (("harness, recording", rec), ("harness, not recording", unrec)):
            print(f"  {label:<34} {res['rate']:>10,.0f}/s   ({res['acked']:,} acked of {res['attempted']:,} "
                  f"attempted in {res['seconds']:.1f}s)")
        print(f"  {'redis-benchmark, via proxy, -P 1':<34} {proxied:>10,.0f}/s   ({proxied_n:,} requests)")
        print(f"  {'redis-benchmark, direct, -P 1':<34} {direct:>10,.0f}/s   ({direct_n:,} requests)")
        print(f"  {'redis-benchmark, direct, -P 16':<34} {piped:>10,.0f}/s   ({piped_n:,} requests, reference)")
        if rec["acked"]:
            print(f"  history written while recording: {rec['history_bytes'] / 1e6:.1f} MB, "
                  f"{rec['history_bytes'] / rec['acked']:.0f} bytes per acked message")

        print("\nratios:")
        ratios = (
            ("recording overhead, 1 - recorded/unrecorded", 1 - rec["rate"] / unrec["rate"], "%",
             "writing the history: two JSON lines per send, one write() each"),
            ("proxy overhead, 1 - r-b via proxy/direct", 1 - proxied / direct, "%",
             "the extra Toxiproxy hop, for redis-benchmark"),
            ("harness recorded / r-b direct", rec["rate"] / direct, "x",
             "the harness pays for Python, the proxy hop and the history on top of Redis's round trip"),
            ("harness recorded / r-b via proxy", rec["rate"] / proxied, "x",
             "same path on the wire: what is left is the Python client and the history writing"),
            ("harness unrecorded / r-b via proxy", unrec["rate"] / proxied, "x",
             "same path, no history: the Python client (redis-py, a round trip per message) alone"),
        )
        for label, value, kind, meaning in ratios:
            shown = f"{value:6.1%}" if kind == "%" else f"{value:6.2f}"
            print(f"  {label:<44} {shown}   {meaning}")
        if rec["rate"] / proxied >= 0.8:
            print("  => the harness keeps up with redis-benchmark over the same path: the node (its round trip"
                  " and fsync) sets the pace, not the harness")
        else:
            print("  => the harness is well below redis-benchmark over the same path: the harness's own"
                  " per-message cost (Python, recording) sets the pace")
        print("\nnotes: every -P 1 figure is one round trip per message per connection.")
        if live["appendfsync"] == "always" and live["appendonly"] == "yes":
            print("  appendfsync always: each round trip also waits for an fsync (shared by the requests of one "
                  "event-loop turn), so the disk's fsync latency sets much of the pace.")
        print(f"  AOF rewrites during the run: {persistence.get('aof_rewrites', '?')}; "
              f"load average {os.getloadavg()[0]:.2f} at the end.")
        return 0
    finally:
        runtime.teardown()
        if toxiproxy is not None:
            toxiproxy.stop()
        if args.keep:
            print(f"kept {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; everything the benchmark started is stopped", file=sys.stderr)
        sys.exit(130)
