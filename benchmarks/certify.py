"""The long known-answer certifications: many seeded runs per case, and how many gave the expected answer.

    python benchmarks/certify.py --target kafka [--seeds 10] [--time 60] [--cases acks1,unclean,...]
    python benchmarks/certify.py --target nats --seeds 10 --time 20

Each case is a profile, the faults it is run under and the answer expected of it (the short versions are
tests/test_<target>_known_answers.py). Every run is a full `onceproof run` in its own process; results and
reports stay in --store for inspection. Prints one line per run and a summary table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lost(r: dict) -> bool:
    """Acknowledged writes lost. When the drain ended with a backlog, undelivered is not proof of loss:
    then only overwritten offsets (the log checker's inconsistent offsets) count."""
    if (r.get("run") or {}).get("drain_incomplete"):
        return r["log"]["counts"]["inconsistent_offsets"] > 0
    return r["delivery"]["counts"]["lost"] > 0


def confirmed_lost(r: dict) -> str:
    c = r["delivery"]["counts"]
    if (r.get("run") or {}).get("drain_incomplete"):
        return f"{c['lost']} undelivered (drain incomplete), {r['log']['counts']['inconsistent_offsets']} overwritten"
    return str(c["lost"])


def at_least_once_dups(r: dict) -> bool:
    c = r["delivery"]["counts"]
    return c["duplicated"] > 0 and c["lost"] == 0 and c["lost_effects"] == 0


def exactly_once(r: dict) -> bool:
    c = r["delivery"]["counts"]
    return r["valid"] is True and c["lost"] == 0 and c["lost_effects"] == 0 and c["duplicated_effects"] == 0


def at_most_once_losses(r: dict) -> bool:
    c = r["delivery"]["counts"]
    return r["valid"] is True and c["lost_effects"] > 0 and c["duplicated_effects"] == 0


def duplicated_effects(r: dict) -> bool:
    return r["valid"] is False and r["delivery"]["counts"]["duplicated_effects"] > 0


_FAST_DRAIN = ["--consumers", "4", "--work-ms", "1", "--drain-deadline", "600"]

_NATS = ["--rate", "100", "--work-ms", "20"]

CASES = {"kafka": {
    # consumers keep up with the producers (1 ms of work each, 4 of them) and the drain may run long
    "acks1": ("acks1", "kill-leader", ["--producers", "4", "--rate", "600", *_FAST_DRAIN], lost, "lost > 0"),
    "unclean": ("unclean", "kill-leader", ["--producers", "4", "--rate", "600", *_FAST_DRAIN], lost, "lost > 0"),
    "at-least-once": ("at-least-once", "kill-consumer", ["--rate", "100", "--work-ms", "30"], at_least_once_dups,
                      "duplicates > 0, lost = 0"),
    "exactly-once": ("exactly-once", "kill-leader,pause-leader,ack-loss,kill-consumer",
                     ["--producers", "4", "--rate", "40"], exactly_once, "valid, no loss, no duplicated effects"),
}, "nats": {
    "at-most-once": ("at-most-once", "kill-consumer", _NATS, at_most_once_losses,
                     "lost effects > 0, no duplicated effect"),
    "at-least-once": ("at-least-once", "kill-consumer", _NATS, at_least_once_dups, "duplicates > 0, lost = 0"),
    "exactly-once": ("exactly-once", "ack-loss,kill-consumer,kill-producer,kill-leader", _NATS, exactly_once,
                     "valid, no loss, no duplicated effects"),
    # consumers slower than producers: the stream holds a backlog when its only node dies
    "r1-memory": ("r1-memory", "kill-leader", ["--rate", "200", "--work-ms", "20"], lost, "lost > 0"),
    "short-dedup-window": ("short-dedup-window", "ack-loss", ["--rate", "200"], duplicated_effects,
                           "duplicated effects > 0"),
    # containers: Jepsen's partitions (not a CI known answer: 2.9.10 lost an acknowledged write here once)
    "exactly-once-partitions": ("exactly-once", "partition-isolate-leader,partition-halves,kill-consumer",
                                ["--runtime", "docker", *_NATS], exactly_once, "valid, no loss, no duplicated effects"),
}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="kafka", choices=sorted(CASES))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--time", type=int, default=60)
    ap.add_argument("--cases", help="comma-separated cases (default: all of the target's)")
    ap.add_argument("--store", help="where runs go (default: bench-out/<target>-certify)")
    args = ap.parse_args()
    cases = CASES[args.target]
    store_root = Path(args.store or ROOT / "bench-out" / f"{args.target}-certify")
    summary = []
    for case in (args.cases.split(",") if args.cases else list(cases)):
        if case not in cases:
            print(f"unknown case {case!r} for {args.target}; known: {', '.join(cases)}", file=sys.stderr)
            return 2
        profile, faults, extra, expected, says = cases[case]
        good = 0
        runs = 0
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            store = store_root / case / f"seed-{seed}"
            t0 = time.monotonic()
            cmd = [sys.executable, "-m", "harness.cli", "run", "--target", args.target, "--profile", profile,
                   "--faults", faults, "--time", str(args.time), "--seed", str(seed), "--store", str(store), *extra]
            p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=args.time * 10 + 600)
            res = store / "latest" / "results.json"
            if not res.exists():
                print(f"{case} seed {seed}: no results (exit {p.returncode}): {p.stderr.strip()[-300:]}", flush=True)
                continue
            r = json.loads(res.read_text())
            runs += 1
            ok = expected(r)
            good += ok
            c = r["delivery"]["counts"]
            print(f"{case} seed {seed}: {'expected' if ok else 'UNEXPECTED'} valid={r['valid']} "
                  f"acked={c['acknowledged']} lost={confirmed_lost(r)} (middle {c.get('lost_middle', 0)}) "
                  f"dup={c['duplicated']} dup_effects={c['duplicated_effects']} lost_effects={c['lost_effects']} "
                  f"log={r['log'].get('counts')} {time.monotonic() - t0:.0f}s", flush=True)
        summary.append((case, faults, says, good, runs))
    print("\ncase            faults                                        expected                              got")
    for case, faults, says, good, runs in summary:
        print(f"{case:15} {faults:45} {says:37} {good}/{runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
