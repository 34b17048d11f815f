"""What does each Kafka delivery guarantee cost in acknowledged messages/s, in the harness and in Kafka's own tool?

    python benchmarks/kafka_throughput.py [--seconds 10] [--producers 2] [--nodes 3]
                                          [--profiles acks1,at-least-once,idempotent,exactly-once] [--rounds 1]

On one Kafka cluster it starts itself (KRaft nodes behind one Toxiproxy proxy each, in the order
harness/run.py uses), for each profile in turn:

1. the harness's producers, spawned exactly as harness/run.py spawns them, unpaced (rate 0) and
   recording their history: acknowledged messages/s. Each sends one message and waits for its ack;
2. Kafka's ProducerPerformance at the profile's acks and idempotence, through the same proxies, in three
   modes (MODES): "sync", as many JVMs as producers, each with one record on the wire at a time like the
   harness; "inflight1", one JVM with max.in.flight.requests.per.connection=1, linger.ms=0, batch.size=0,
   which still pipelines across records (its send() never waits); "default", the producer's defaults.
   Each run's rate is ProducerPerformance's steady state, after --warmup-records (a fresh JVM is slow);
3. the cost of each guarantee: its rate relative to acks1, for the harness and for the tool.

The exactly-once profile's producers are the idempotent producer (acks=all, idempotence); the
transactions are the consumer's (consume-transform-produce), which this does not measure. For it the tool
also runs once transactional (a commit every --txn-ms) for reference.

Run it with the project's interpreter (.venv/bin/python): it imports the harness. Everything runs on
127.0.0.1 in a temporary directory that is removed at the end (--keep to keep it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import harness_rate, start_nodes  # benchmarks/common.py, beside this script

from harness.runtime import LocalRuntime, cleanup
from harness.toxiproxy import ToxiproxyServer
from targets.kafka import PARTITIONS, _broker_settings, bench, create_perf_topic
from targets.kafka import TARGET as target
from targets.kafka.bench import RECORD_SIZE, producer_performance
from targets.kafka.jars import kafka_cds_archive, kafka_classpath

MODES = {  # ProducerPerformance's producer properties beyond acks and idempotence
    # one record on the wire per producer, as the harness: buffer.memory holds one 100-byte record's batch
    # (about 182 bytes) but not two, so send() blocks until the previous record is acknowledged
    "sync": {"linger.ms": 0, "batch.size": 0, "max.in.flight.requests.per.connection": 1, "buffer.memory": 300},
    # one request in flight per broker, one record per batch; send() never waits, so it pipelines across
    # records (a request carries one batch per partition the broker leads)
    "inflight1": {"linger.ms": 0, "batch.size": 0, "max.in.flight.requests.per.connection": 1},
    "default": {},  # the producer's defaults: linger.ms 5, batch.size 16384, 5 requests in flight
}


def perf_props(settings: dict, mode: str) -> dict:
    return bench.perf_props(settings, MODES[mode])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="load time of each harness phase (default 10)")
    ap.add_argument("--producers", type=int, default=2, help="producer workers per harness phase (default 2)")
    ap.add_argument("--nodes", type=int, default=target.node_counts[0], choices=target.node_counts)
    ap.add_argument("--in-flight", type=int, default=1, help="sends in flight per harness producer (threads)")
    ap.add_argument("--profiles", default="acks1,at-least-once,idempotent,exactly-once",
                    help="comma-separated; all must share the broker settings (default: the four safe ones)")
    ap.add_argument("--tool-seconds", type=float, default=4.0,
                    help="about how long each ProducerPerformance run lasts at acks=1 (sized by a probe)")
    ap.add_argument("--txn-ms", type=int, default=100, help="transaction length of the transactional tool run")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat every measurement, alternating the profiles' order; the table shows medians")
    ap.add_argument("--keep", action="store_true", help="keep the temporary run directory")
    args = ap.parse_args()

    names = [p.strip() for p in args.profiles.split(",") if p.strip()]
    unknown = [p for p in names if p not in target.profiles]
    if unknown or not names:
        print(f"unknown profiles {unknown}; valid: {', '.join(target.profiles)}")
        return 2
    profiles = [target.profiles[p] for p in names]
    if len({json.dumps(p.settings["broker"], sort_keys=True) for p in profiles}) > 1:
        print("these profiles need different broker settings (one cluster serves one setting); run them apart")
        return 2
    kafka_classpath()  # SetupError naming `onceproof setup kafka` when the jars are missing

    cleanup.install_handlers()  # Ctrl-C or SIGTERM: KeyboardInterrupt, so the finally below tears down
    run_dir = Path(tempfile.mkdtemp(prefix="onceproof-kafka-bench-"))
    runtime = LocalRuntime(run_dir)
    toxiproxy = None
    print(f"run dir {run_dir}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        print("warning: the machine is already busy; these figures will be noisy (rerun when it is quiet)")
    try:
        toxiproxy = ToxiproxyServer(log_path=run_dir / "toxiproxy.log").start()
        t0 = time.monotonic()
        d = start_nodes(target, profiles[0], args.nodes, runtime, toxiproxy, run_dir)
        bootstrap = d.bootstrap
        broker = _broker_settings(profiles[0], args.nodes)
        rf = min(3, args.nodes)
        create_perf_topic(d)
        print(f"{args.nodes} Kafka node(s) ready and prepared in {time.monotonic() - t0:.1f}s; broker settings "
              f"{broker}; topics {PARTITIONS} partitions, replication {rf}")
        print(f"every client (harness and tool) connects through the proxies: {','.join(bootstrap)}")
        print(f"ProducerPerformance JVM: class-data archive {kafka_cds_archive() or 'none'}")

        # probes at acks=1 size the tool runs (and warm the brokers up before the first measured phase)
        copies = {mode: args.producers if mode == "sync" else 1 for mode in MODES}
        print("\nprobing ProducerPerformance at acks=1 ...", flush=True)
        records = {}
        for mode in MODES:
            n = 300
            for _ in range(3):  # until a probe's steady state lasts 1 s: a shorter one is mostly start-up
                probe = producer_performance(bootstrap, perf_props({"acks": 1}, mode), n, copies[mode])
                per_jvm = probe["rate"] / copies[mode]
                if n / per_jvm >= 1.0:
                    break
                n = int(per_jvm * 1.5)
            records[mode] = max(300, int(per_jvm * args.tool_seconds))
            print(f"  {mode:<9} {probe['rate']:>9,.0f} records/s -> {records[mode]:,} records per JVM, "
                  f"{copies[mode]} JVM(s) per run")

        rates: dict[str, dict[str, list[float]]] = {}  # table row -> column -> one rate per round
        for rnd in range(1, args.rounds + 1):
            # odd rounds run the profiles forward, even rounds backward: a steady drift in the machine's load
            # then favours no profile in the medians
            for profile in profiles if rnd % 2 else profiles[::-1]:
                s = profile.settings
                print(f"\n[round {rnd}/{args.rounds}: {profile.name}] acks={s['acks']} "
                      f"idempotence={bool(s.get('idempotence'))}"
                      f"{' (its transactions are the consumer side: not measured)' if s.get('transactional') else ''}")
                print(f"  harness, {args.producers} producers, recording, {args.seconds:.0f}s ...", flush=True)
                h = harness_rate(runtime, run_dir / f"harness-{profile.name}-{rnd}", "kafka", profile.name,
                                 bootstrap, args.producers, args.seconds, in_flight=args.in_flight)
                print(f"    {h['rate']:>9,.0f} acked/s ({h['acked']:,} acked of {h['attempted']:,} attempted)")
                rates.setdefault(profile.name, {}).setdefault("harness", []).append(h["rate"])
                tool_runs = [(profile.name, mode, None) for mode in MODES]
                if s.get("transactional"):
                    tool_runs += [(f"{profile.name}+txn", mode, args.txn_ms) for mode in MODES]
                for row, mode, txn_ms in tool_runs:
                    props = perf_props(s, mode)
                    txn = f", transactional ({txn_ms} ms)" if txn_ms else ""
                    print(f"  ProducerPerformance {mode} x{copies[mode]}{txn} {props} ...", flush=True)
                    r = producer_performance(bootstrap, props, records[mode], copies[mode], txn_ms,
                                             timeout=max(120.0, 30 * args.tool_seconds))
                    print(f"    {r['rate']:>9,.0f} records/s ({r['records']:,} records after the warm-up, "
                          f"{r['mb']:.2f} MB/s), latency avg {r['avg_ms']:.1f} ms, p50 {r['p50']:.0f} ms, "
                          f"p99 {r['p99']:.0f} ms, max {r['max_ms']:.0f} ms")
                    rates.setdefault(row, {}).setdefault(mode, []).append(r["rate"])

        med = {row: {c: statistics.median(v) for c, v in cols.items()} for row, cols in rates.items()}
        base = med.get("acks1")
        cols = ["harness", *MODES]
        print(f"\nacknowledged messages/s ({'median of ' + str(args.rounds) + ' rounds, ' if args.rounds > 1 else ''}"
              f"{args.nodes} node(s), everything through Toxiproxy)"
              f"{'; (cost) = 1 - rate / the acks1 rate in the same column' if base else ''}:")
        print(f"  {'profile':<18}" + "".join(f"{c:>13}{'(cost)':9}" for c in cols))
        for row, res in med.items():
            cells = []
            for c in cols:
                if c not in res:
                    cells.append(f"{'-':>22}")
                    continue
                cost = f"({1 - res[c] / base[c]:+.0%})" if base and row != "acks1" else ""
                cells.append(f"{res[c]:>13,.0f} {cost:<8}")
            print(f"  {row:<18}" + "".join(cells))
        if args.rounds > 1:
            print("  spread across rounds (min-max):")
            for row, res in rates.items():
                print(f"  {row:<18}" + "".join(f"{f'{min(res[c]):,.0f}-{max(res[c]):,.0f}' if c in res else '-':>22}"
                                               for c in cols))
        print(f"""
  harness    {args.producers} Python producer processes (kafka-python), {args.in_flight} in flight each, ~30-byte JSON
             values, history recorded
  sync       ProducerPerformance, {args.producers} JVMs at once, one {RECORD_SIZE}-byte record on the wire each
             (buffer.memory=300); its latency counts the wait inside send() for the previous record
  inflight1  ProducerPerformance, one JVM, max.in.flight=1, linger.ms=0, batch.size=0: still pipelines
             across records (one batch per partition per request), so queueing dominates its latency
  default    ProducerPerformance, one JVM, the producer's defaults (batching): for reference
  exactly-once's producer is the idempotent producer: its row repeats idempotent (the difference is noise);
  the +txn row adds producer transactions (a commit every {args.txn_ms} ms) that the harness's producers
  do not use.""")
        print(f"  load average {os.getloadavg()[0]:.2f} at the end.")
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
