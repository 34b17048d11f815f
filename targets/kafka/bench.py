"""Kafka's own ProducerPerformance (kafka-tools) against the nodes the harness started, through the same
proxies: what `benchmarks/kafka_throughput.py` compares in depth and what `onceproof cost` puts beside each
profile's figures. In a cost run it is paced at the offered rate, with the profile's acks and idempotence
(and transactions, a commit every TXN_MS, where the profile is transactional) and the producer's default
batching: one producer batching many records, as Kafka is used, where the harness has one record in flight
per logical process. Its latencies are the records' (send to acknowledgement), like the harness's send
latency."""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any

from plugin.target import BenchFigure, BenchLoad, Deployment

PERF_TOPIC = "onceproof-perf"  # apart from the harness's topics
RECORD_SIZE = 100
TXN_MS = 100  # a transactional profile's tool run commits this often
# ProducerPerformance's summaries: "N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max latency,
# P ms 50th, ..." for the whole run, then "N steady state records sent, ..." for the records after the warm-up
# (the periodic lines lack the percentiles)
STEADY = re.compile(r"(\d+) steady state records sent, ([0-9.]+) records/sec \(([0-9.]+) MB/sec\), ([0-9.]+) ms avg "
                    r"latency, ([0-9.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th")
WARMUP = 0.5  # by default a tool run sends this share of its records more first (JIT, connections, metadata)


def perf_props(settings: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The producer properties of a profile's settings: acks and idempotence, then `extra`."""
    acks = "all" if settings["acks"] == "all" else "1"
    return {"acks": acks, "enable.idempotence": "true" if settings.get("idempotence") else "false", **(extra or {})}


def argv(bootstrap: list[str], props: dict[str, Any], records: int, warmup: int, throughput: float = -1,
         txn_ms: int | None = None, record_size: int = RECORD_SIZE) -> list[str]:
    from targets.kafka.jars import kafka_cds_archive, kafka_classpath

    cds = kafka_cds_archive()
    out = ["java", "-Xmx256m", *([f"-XX:SharedArchiveFile={cds}"] if cds else []), "-cp", kafka_classpath(),
           "org.apache.kafka.tools.ProducerPerformance", "--bootstrap-server", ",".join(bootstrap),
           "--topic", PERF_TOPIC, "--num-records", str(records + warmup), "--warmup-records", str(warmup),
           "--record-size", str(record_size), "--throughput", f"{throughput:.0f}",
           "--command-property", *(f"{k}={v}" for k, v in props.items())]
    if txn_ms:
        out += ["--transaction-duration-ms", str(txn_ms)]
    return out


def producer_performance(bootstrap: list[str], props: dict[str, Any], records: int, copies: int = 1,
                         txn_ms: int | None = None, timeout: float = 120.0, throughput: float = -1,
                         warmup: int | None = None) -> dict[str, Any]:
    """`copies` ProducerPerformance JVMs at once, each sending `records` after a warm-up (WARMUP * records
    unless given), through the proxies; their steady-state summaries combined: rates added, latencies
    averaged (avg) or the worst (max, p50, p99). A short JVM run without the warm-up reads 2-3x slower."""
    warm = int(WARMUP * records) if warmup is None else warmup
    cmd = argv(bootstrap, props, records, warm, throughput, txn_ms)
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(copies)]
    summaries = []
    try:
        deadline = time.monotonic() + timeout
        for p in procs:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            found = STEADY.findall(out)
            if p.returncode != 0 or not found:
                raise RuntimeError(f"ProducerPerformance exited with {p.returncode}, no summary:\n"
                                   f"{out[-800:]}\n{err[-800:]}")
            summaries.append([float(x) for x in found[-1]])
    finally:
        for p in procs:  # on a timeout, an error or Ctrl-C: no JVM outlives this call
            if p.poll() is None:
                p.kill()
                p.wait()
    sent, rate, mb, avg, mx, p50, _p95, p99 = zip(*summaries, strict=True)
    return {"records": int(sum(sent)), "rate": sum(rate), "mb": sum(mb), "avg_ms": sum(avg) / copies,
            "max_ms": max(mx), "p50": max(p50), "p99": max(p99), "argv": cmd}


def kafka_producer_performance(d: Deployment, load: BenchLoad) -> BenchFigure:
    """One ProducerPerformance JVM at the cost run's rate for its seconds (after a few seconds' warm-up at that
    rate), with the profile's acks, idempotence and transactions and the producer's default batching, on
    PERF_TOPIC (which the target creates first)."""
    s = d.profile.settings
    txn = TXN_MS if s.get("transactional") else None
    paced = load.rate > 0
    records = int(load.rate * load.seconds) if paced else 200_000
    warm = int(load.rate * 3) if paced else 50_000
    r = producer_performance(d.bootstrap, perf_props(s), records, txn_ms=txn, throughput=load.rate if paced else -1,
                             warmup=warm, timeout=load.seconds + 90)
    shown = [a for a in r["argv"] if not a.startswith("-XX:")]
    cp = shown.index("-cp")
    shown[cp + 1] = "<kafka libs>/*"
    return BenchFigure("Kafka ProducerPerformance", " ".join(shown), round(r["rate"], 1), r["p50"], r["p99"],
                       paced=paced,
                       note=f"one producer, default batching, acks={perf_props(s)['acks']}, idempotence "
                            f"{perf_props(s)['enable.idempotence']}"
                            + (f", transactional (a commit every {txn} ms)" if txn else "")
                            + f", {records} records after {warm} warm-up")
