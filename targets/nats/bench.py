"""`nats bench` (the NATS CLI, natscli) beside the harness's cost figures: synchronous JetStream publishes
(each waits for its acknowledgement, as the harness's producers do) from as many clients as the harness has
sends in flight, paced at the offered rate, through the same proxies, to a stream of its own with the
profile's storage, replicas and (where the profile dedups) Nats-Msg-Id headers. Debian ships no natscli, so
`onceproof setup nats` builds the pinned version with `go install` as an optional need: without it the cost
table has no native figure, and nothing else changes."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from plugin.needs import Fetched, Requirement, SetupTools, cache_dir, go_install, run
from plugin.target import BenchFigure, BenchLoad, Deployment

NATSCLI_VERSION = "0.5.0"
NATSCLI_PACKAGE = "github.com/nats-io/natscli/nats"
BENCH_STREAM = "onceproof-bench"  # apart from the harness's stream
BENCH_SUBJECT = "onceproof.bench"
MAX_BYTES = "64MB"  # the stream's limit: inside the nodes' memory store (server.py), which the default 1 GB is not
# "latencies per operation min 46.00us | avg 357.23us | max 1,502.93us | stddev ... | P50 343.98us | ... | P99 756.63us"
AGGREGATE = re.compile(r"aggregated stats: ([0-9,.]+) msgs/sec")
PERCENTILE = r"\| P{} ([0-9,.]+)(ns|us|µs|ms|s)\b"
UNIT_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1000.0}


def natscli_path() -> Path:
    return cache_dir() / f"natscli-{NATSCLI_VERSION}" / "nats"


def natscli_requirement() -> Requirement:
    path = natscli_path()
    if path.is_file() and os.access(path, os.X_OK):
        out = run([str(path), "--version"], timeout=10)
        if out.stdout.strip() == f"v{NATSCLI_VERSION}":
            return Requirement("natscli", True, NATSCLI_VERSION, "onceproof setup nats")
        return Requirement("natscli", False, f"{path} says {out.stdout.strip()!r}", "onceproof setup nats")
    return Requirement("natscli", False, f"not built ({path}); only `onceproof cost`'s native figure needs it",
                       "onceproof setup nats")


def install_natscli(tools: SetupTools) -> Path:
    go_install(f"{NATSCLI_PACKAGE}@v{NATSCLI_VERSION}", natscli_path().parent, f"natscli {NATSCLI_VERSION}",
               tools.progress)
    return natscli_path()


NATSCLI = Fetched(natscli_requirement, install_natscli)


def _ms(value: str, unit: str) -> float:
    return round(float(value.replace(",", "")) * UNIT_MS[unit], 3)


def parse(out: str) -> tuple[float, float | None, float | None]:
    """Messages/s and the p50 and p99 publish latency (ms) from `nats bench`'s aggregated summary."""
    m = AGGREGATE.search(out)
    if not m:
        raise RuntimeError(f"no aggregated figures in nats bench's output: {out[-400:]!r}")
    p50, p99 = (re.search(PERCENTILE.format(q), out[m.start():]) for q in ("50", "99"))
    return (float(m.group(1).replace(",", "")), _ms(*p50.groups()) if p50 else None,
            _ms(*p99.groups()) if p99 else None)


def command(d: Deployment, load: BenchLoad) -> list[str]:
    s = d.profile.settings
    servers = ",".join(f"nats://{b}" for b in d.bootstrap)
    argv = [str(natscli_path()), "--no-context", "-s", servers, "bench", "js", "pub", "sync", BENCH_SUBJECT,
            "--clients", str(load.connections), "--size", f"{load.record_size}B", "--stream", BENCH_STREAM,
            "--create", f"--maxbytes={MAX_BYTES}", "--storage", str(s.get("storage", "file")),
            "--replicas", str(min(int(s.get("replicas", 1)), len(d.nodes))), "--no-progress"]
    if s.get("dedup"):
        argv += ["--dedup", f"--dedupwindow={float(s.get('duplicate_window', 120.0)):g}s"]
    if load.rate > 0:
        argv += ["--throughput", f"{load.rate:.0f}", "--duration", f"{load.seconds:.0f}s"]
    else:
        argv += ["--msgs", str(int(load.connections * 1000))]
    return argv


def nats_bench(d: Deployment, load: BenchLoad) -> BenchFigure:
    req = natscli_requirement()
    if not req.present:
        raise RuntimeError(f"natscli is not installed: {req.detail}; run `{req.fix}`")
    argv = command(d, load)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=load.seconds + 60)
    (load.work_dir / "nats-bench.log").write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        raise RuntimeError(f"nats bench exited with {out.returncode}: {(out.stdout + out.stderr)[-400:]!r}")
    rate, p50, p99 = parse(out.stdout + out.stderr)
    s = d.profile.settings
    return BenchFigure(f"nats bench (natscli {NATSCLI_VERSION})", " ".join(argv[1:]), rate, p50, p99,
                       paced=load.rate > 0,
                       note=f"synchronous JetStream publish, {load.connections} clients, {s.get('storage')} "
                            f"storage, R{min(int(s.get('replicas', 1)), len(d.nodes))}"
                            + (", Nats-Msg-Id dedup" if s.get("dedup") else ""))
