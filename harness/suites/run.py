"""Running a suite: its runs one after another, live progress, results rewritten after every run so an
interrupted or killed suite keeps the finished ones."""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

from checkers.vocabulary import counts_of, holds_of, verdict_name
from harness.certify import Interrupted, RunFailed, certify
from harness.suites.results import FORMAT, digest, write_all
from harness.suites.spec import Item, Suite


def _dur(s: float) -> str:
    n = round(s)
    return f"{n // 3600}h{n % 3600 // 60:02d}m" if n >= 3600 else f"{n // 60}m{n % 60:02d}s" if n >= 60 else f"{n}s"


def _brief(o: dict[str, Any]) -> str:
    """A finished run in a few words: its anomaly counts, its error, or a cost case's rates."""
    c = o["counts"]
    if c:
        return (f"lost {c.get('lost', 0)}, dup {c.get('duplicated', 0)}, lost fx {c.get('lost_effects', 0)}, "
                f"dup fx {c.get('duplicated_effects', 0)}")
    if o.get("cost"):
        return "cost of " + ", ".join(f"{x['profile']} {x['acked_per_s']:.0f}/s" for x in o["cost"]["profiles"])
    return o["error"] or ""


def outcome(item: Item, out: Path, results: dict[str, Any] | None, run_dir: Path | None, duration: float,
            error: str | None = None) -> dict[str, Any]:
    """suite.json's record of one run."""
    c = item.case
    counts = counts_of(results) if results else {}
    verdict = "error" if results is None else verdict_name(results.get("valid"))
    unmet = ([f"the harness could not run it: {error}"] if results is None
             else c.expect.unmet(verdict, counts))
    return {
        "index": item.index, "case": c.name, "seed": item.seed, "target": c.target,
        "system": ((results or {}).get("run") or {}).get("config", {}).get("system", c.target), "profile": c.profile,
        "guarantee": (results or {}).get("guarantee", ""), "faults": list(c.faults), "options": c.options,
        "expect": c.expect.as_dict(), "expect_text": str(c.expect), "verdict": verdict, "met": not unmet,
        "unmet": unmet, "counts": counts, "holds": holds_of(results or {}),
        "reasons": (results or {}).get("reasons", []), "error": error,
        "run_dir": os.path.relpath(run_dir, out) if run_dir is not None else None,
        "duration_s": round(duration, 1),
    }


def cost_outcome(item: Item, out: Path, log: TextIO) -> dict[str, Any]:
    """A cost case: `onceproof cost` for its target; valid when every profile kept pace and its claim."""
    from harness.cost import cost_config, run_cost

    c = item.case
    started = time.monotonic()
    where = out / "cost" / c.name
    base = cost_config(c.target, str(where), {**c.options, "profile": c.profiles[0]})  # as `onceproof cost` does
    base.validate()
    doc = run_cost(base, list(c.profiles), c.find_rate, say=log)
    behind = [r["profile"] for r in doc["profiles"] if not r["kept_up"]]
    broke = [r["profile"] for r in doc["profiles"] if r["verdict"] is not True]
    verdict = "valid" if not behind and not broke else "invalid"
    unmet = c.expect.unmet(verdict, {})
    if unmet and behind:
        unmet.append(f"did not keep pace: {', '.join(behind)}")
    if unmet and broke:
        unmet.append(f"not valid without faults: {', '.join(broke)}")
    return {
        "index": item.index, "kind": "cost", "case": c.name, "seed": item.seed, "target": c.target,
        "profile": ",".join(c.profiles), "guarantee": "", "faults": [], "options": c.options,
        "expect": c.expect.as_dict(), "expect_text": str(c.expect), "verdict": verdict, "met": not unmet,
        "unmet": unmet, "counts": {}, "holds": {}, "reasons": [], "error": None,
        "run_dir": os.path.relpath(where, out), "duration_s": round(time.monotonic() - started, 1),
        "cost": {"cheapest": doc["cheapest"], "profiles": [
            {k: r[k] for k in ("profile", "acked_per_s", "send_p50_ms", "e2e_p50_ms", "e2e_steady_p50_ms",
                               "throughput_ratio", "send_p50_ratio", "e2e_p50_ratio", "kept_up")}
            for r in doc["profiles"]]},
    }


def run_suite(suite: Suite, items: list[Item], out: Path, shard: str | None = None,
              say: TextIO | None = None) -> tuple[dict[str, Any], bool]:
    """Run `items` of `suite`, writing results into `out` after each; (the suite document, interrupted).

    Each run's own progress goes to out/logs/<case>-seed<N>.log; the terminal gets one line per run."""
    say = say or sys.stdout
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    keys = [it.key for it in suite.items()]
    doc: dict[str, Any] = {
        "format": FORMAT, "suite": suite.name, "file": str(suite.path), "all_runs": keys,
        "digest": digest(suite.path.read_text() + "\n" + "\n".join(keys)),  # shards must agree on both
        "shard": shard, "interrupted": False,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "runs": [], "missing": []}
    write_all(doc, out)
    t0 = time.monotonic()
    interrupted = False
    try:
        for k, item in enumerate(items, 1):
            runs = doc["runs"]
            elapsed = time.monotonic() - t0
            left = f", about {_dur(elapsed / (k - 1) * (len(items) - k + 1))} left" if k > 1 else ""
            met = sum(1 for r in runs if r["met"])
            under = ", ".join(item.case.faults) or "no faults"
            print(f"[suite {k}/{len(items)} {_dur(elapsed)}{left}; as expected {met}, not {len(runs) - met}] "
                  f"{item.key}: {item.case.target} "
                  + (f"cost of {', '.join(item.case.profiles)}" if item.case.kind == "cost"
                     else f"{item.case.profile} under {under}"),
                  file=say, flush=True)
            cfg = item.case.config(item.seed, str(out / "runs"))
            cfg.validate()
            started = time.monotonic()
            log_path = out / "logs" / f"{item.case.name}-seed{item.seed}.log"
            with open(log_path, "w") as log:
                try:
                    if item.case.kind == "cost":
                        o = cost_outcome(item, out, log)
                    else:
                        done = certify(cfg, out=log)
                        o = outcome(item, out, done.results, done.run_dir, time.monotonic() - started)
                except Interrupted as e:
                    interrupted = True
                    print(f"  interrupted; everything the run started is stopped (its history so far: "
                          f"{e.run_dir or 'none'})", file=say, flush=True)
                    break
                except RunFailed as e:
                    o = outcome(item, out, None, e.run_dir, time.monotonic() - started, error=str(e))
                except Exception as e:  # the harness's own fault: this run is an error, the suite goes on
                    o = outcome(item, out, None, None, time.monotonic() - started,
                                error=f"{type(e).__name__}: {e} (see {log_path})")
                    print(traceback.format_exc(), file=log)
            runs.append(o)
            write_all(doc, out)
            mark = "as expected" if o["met"] else "NOT AS EXPECTED: " + "; ".join(o["unmet"])
            print(f"  {o['verdict'].upper()} ({_brief(o)}) in {_dur(o['duration_s'])}: {mark} (log {log_path})",
                  file=say, flush=True)
    except KeyboardInterrupt:  # between runs: nothing is running
        interrupted = True
        print("  interrupted between runs", file=say, flush=True)
    doc["interrupted"] = interrupted
    doc["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_all(doc, out)
    return doc, interrupted
