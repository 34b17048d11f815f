"""Regenerate example-history.jsonl: a small exactly-once run with a consumer kill and ACK loss.

Run from the repository root: python harness/examples/make_example.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEC = 1_000_000_000


def build(seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    ops: list[dict] = []

    def op(t, p, typ, f, value):
        ops.append({"time": int(t), "process": p, "type": typ, "f": f, "value": value})

    op(3 * SEC, "nemesis", "info", "start-fault", {"fault": "ack-loss", "nodes": ["node-1"]})
    op(5 * SEC, "nemesis", "info", "stop-fault", {"fault": "ack-loss", "nodes": ["node-1"]})
    op(6 * SEC, "nemesis", "info", "start-fault", {"fault": "kill-consumer", "nodes": ["consumer-0"]})
    op(6.5 * SEC, "nemesis", "info", "stop-fault", {"fault": "kill-consumer", "nodes": ["consumer-0"]})
    procs = {0: 0, 1: 1}
    next_proc = 10
    applied: dict[str, int] = {}
    stream: list[tuple[int, str]] = []
    for producer in (0, 1):
        for n in range(150):
            t = 0.2 * SEC + n * 0.06 * SEC + producer * 0.01 * SEC
            mid = f"p{producer}-{n}"
            p = procs[producer]
            op(t, p, "invoke", "send", {"id": mid, "key": f"k{n % 4}", "producer": f"p{producer}"})
            lat = rng.uniform(0.5e6, 3e6)
            if 3 * SEC <= t < 5 * SEC and n % 9 == 0:
                op(t + 1 * SEC, p, "info", "send", None)  # response lost: outcome unknown
                procs[producer] = p = next_proc
                next_proc += 1
                if n % 2 == 0:  # retried: the same id again, dedup'd by the broker
                    op(t + 1.01 * SEC, p, "invoke", "send", {"id": mid, "key": f"k{n % 4}", "producer": f"p{producer}"})
                    op(t + 1.02 * SEC, p, "ok", "send", {"id": mid, "key": f"k{n % 4}"})
                    stream.append((t + 1.02 * SEC, mid))
                elif n % 4 == 3:
                    stream.append((t + 0.01 * SEC, mid))  # applied before the response was lost
                continue
            op(t + lat, p, "ok", "send", {"id": mid, "key": f"k{n % 4}"})
            stream.append((t + lat, mid))
    stream.sort()
    consumer = {0: 100, 1: 101}
    i = 0
    t = 0.3 * SEC
    while i < len(stream):
        for c in (0, 1):
            batch = [m for tt, m in stream[i:i + 3] if tt < t]
            if not batch:
                continue
            i += len(batch)
            p = consumer[c]
            op(t, p, "invoke", "poll", {"consumer": f"consumer-{c}"})
            op(t + 2e6, p, "ok", "poll", {"messages": [{"id": m, "key": None, "redelivered": False} for m in batch]})
            if c == 0 and 6 * SEC <= t < 6.5 * SEC:
                # killed after processing, before XACK: the batch is reclaimed and redelivered
                consumer[0] = next_proc
                next_proc += 1
                for m in batch:
                    applied[m] = applied.get(m, 0) + 1
                op(t + 0.6 * SEC, 102, "invoke", "poll", {"consumer": "consumer-1", "claim": True})
                op(t + 0.61 * SEC, 102, "ok", "poll",
                   {"messages": [{"id": m, "key": None, "redelivered": True} for m in batch]})
                continue
            for m in batch:
                applied[m] = applied.get(m, 0) + 1
            op(t + 3e6, p, "invoke", "ack", {"ids": batch})
            op(t + 4e6, p, "ok", "ack", {"ids": batch})
        t += 0.05 * SEC
    end = t + 0.5 * SEC
    op(end, 200, "invoke", "effects", None)
    op(end + 1e6, 200, "ok", "effects", {"counts": dict(sorted(applied.items()))})
    ops.sort(key=lambda o: o["time"])
    return ops


if __name__ == "__main__":
    out = Path(__file__).with_name("example-history.jsonl")
    out.write_text("".join(json.dumps(o) + "\n" for o in build()))
    print(f"wrote {out}")
