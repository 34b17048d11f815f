"""The cost of each guarantee: every profile of a target run without faults at the same load and
concurrency, its acknowledged messages per second and its send and end-to-end latencies (p50, p99), each
as a ratio to the target's cheapest profile. A figure only counts when the consumers kept pace (end-to-end
p50 under a second, nearly every offered message acknowledged): otherwise it measures the harness's
backlog, not the system, and the table says so. `--find-rate` searches each profile's sustainable rate
(doubling, then bisection). Where the target names one, its own benchmark tool runs against each
profile's nodes at the same load (the `native_bench` ability) and its
figures go beside the harness's."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import targets
from harness.certify import certify
from harness.config import RunConfig
from harness.files import atomic_write
from plugin.target import BenchLoad

if TYPE_CHECKING:
    from harness.run import Run

KEEP_UP_E2E_MS = 1000.0  # end-to-end p50 above this: the consumers fell behind
KEEP_UP_ACKED = 0.9  # acknowledged below this share of the offered rate: the producers fell behind
MAX_DOUBLINGS = 6  # the search doubles (or halves) the rate at most this often...
REFINE_STEPS = 2  # ...then bisects this often between the last rate kept and the first not: within 25 %
# the system's cost, not the simulated processing's: consumers that do almost no work, and enough of them
COST_WORK_MS = 0.5
COST_CONSUMERS = 4
NATIVE_MAX_S = 20.0  # longest a native benchmark tool runs after a cost run


@dataclass
class Measure:
    profile: str
    guarantee: str
    rate: float  # offered, messages/s
    acked_per_s: float
    delivered_per_s: float
    send_p50_ms: float | None
    send_p99_ms: float | None
    e2e_p50_ms: float | None
    e2e_p99_ms: float | None
    e2e_steady_p50_ms: float | None  # over the last third of the load: what a consumer group reaches once warm
    verdict: bool | str
    kept_up: bool
    run_dir: str
    why_not: str = ""
    native: dict[str, Any] | None = None  # the system's own tool at the same load (native.json), or why not


def cost_config(target: str, store: str, options: dict[str, Any]) -> RunConfig:
    """The base configuration of a cost run: no faults, the cost defaults, then `options` (run options that
    are set), for `onceproof cost` and suite cost cases alike."""
    cfg = RunConfig(target=target, store=store, faults=[], consumers=COST_CONSUMERS)
    cfg.set("work_ms", COST_WORK_MS)
    for name, value in options.items():
        if value is not None:
            cfg.set(name, value)
    return cfg


def native_bench(run: Run) -> None:
    """After a cost run's effects are read, while its nodes still run: the system's own benchmark tool against the
    same nodes and proxies at the run's load (its records go to a topic or stream of their own). Its figure, or
    why there is none, goes to native.json; a failing tool never changes the run's verdict."""
    cfg, target = run.cfg, run.target
    bench = target.abilities.native_bench
    doc: dict[str, Any]
    if bench is None:
        doc = {"skipped": f"the {target.name} target names no native benchmark tool"}
    elif cfg.runtime != "local":
        doc = {"skipped": "native tools run only with the local runtime (they run on this machine)"}
    else:
        load = BenchLoad(rate=cfg.rate, seconds=min(cfg.time, NATIVE_MAX_S), connections=cfg.producers * cfg.in_flight,
                         work_dir=run.dir / "native")
        load.work_dir.mkdir(exist_ok=True)
        run.say(f"[native] the system's own tool at {load.rate:.0f} msg/s for {load.seconds:.0f}s")
        try:
            doc = asdict(bench(run.cluster.deployment, load))
            run.say(f"[native] {doc['tool']}: {doc['acked_per_s']:.0f}/s, p50 {doc['send_p50_ms']} ms, "
                    f"p99 {doc['send_p99_ms']} ms")
        except Exception as e:
            doc = {"error": f"{type(e).__name__}: {e}"}
            run.say(f"  warning: the native tool failed: {doc['error']}")
    atomic_write(run.dir / "native.json", json.dumps(doc, indent=1, default=str) + "\n")


def measure(cfg: RunConfig, log: TextIO, native: bool = False) -> Measure:
    """One run without faults; its throughput and latencies from the perf checker (and, with `native`, the
    system's own tool's, after it)."""
    done = certify(cfg, out=log, after=(native_bench,) if native else ())
    r = done.results
    s = r["perf"]["summary"]
    c = r["delivery"]["counts"]
    send = s["send_latency_ms"]["ok"]
    e2e = s["e2e_latency_ms"]
    acked = load_rate(r["perf"], c["acknowledged"] / cfg.time)
    steady = steady_e2e_p50(r["perf"], cfg.time)
    why = []
    if steady is None or steady > KEEP_UP_E2E_MS:
        why.append(f"end-to-end p50 {steady} ms over the last third of the load > {KEEP_UP_E2E_MS:.0f} ms: the "
                   "consumers fell behind")
    if acked < KEEP_UP_ACKED * cfg.rate:
        why.append(f"{acked:.0f} acknowledged/s of {cfg.rate:.0f} offered: the producers fell behind")
    native_file = done.run_dir / "native.json"
    figure = json.loads(native_file.read_text()) if native_file.exists() else None
    return Measure(cfg.profile, cfg.guarantee, cfg.rate, round(acked, 1), round(c["delivered"] / cfg.time, 1),
                   send.get("p50"), send.get("p99"), e2e.get("p50"), e2e.get("p99"), steady, r["valid"], not why,
                   str(done.run_dir), "; ".join(why), figure)


def steady_e2e_p50(perf: dict[str, Any], load_s: float) -> float | None:
    """End-to-end p50 of the deliveries in the last third of the load (the per-second medians, weighted by
    deliveries): a consumer group's start-up (joins, rebalances) is not the system's cost at that load. The
    whole run's figures stay beside it."""
    e2e = (perf.get("latency") or {}).get("e2e") or {}
    counts, p50s = e2e.get("count") or [], e2e.get("p50") or []
    bucket = perf.get("bucket_s") or 1.0
    # the load starts at the first send, which perf's t0 is close to; its buckets are seconds from t0
    first = int(load_s * 2 / 3 / bucket)
    last = int(load_s / bucket)
    window = zip(p50s[first:last + 1], counts[first:last + 1], strict=False)
    pairs = sorted((p, n) for p, n in window if p is not None and n)
    total = sum(n for _, n in pairs)
    seen = 0
    for p, n in pairs:
        seen += n
        if seen * 2 >= total:
            return round(p, 3)
    return None


def load_rate(perf: dict[str, Any], fallback: float) -> float:
    """Acknowledged sends per second while the producers ran: the whole buckets between the first and the last
    with an acknowledged send (the partial first and last seconds, and the producers' start-up, left out)."""
    per = (perf.get("series") or {}).get("send_ok") or []
    bucket = perf.get("bucket_s") or 1.0
    active = [i for i, n in enumerate(per) if n]
    if len(active) < 4:
        return fallback
    middle = per[active[0] + 1:active[-1]]
    return sum(middle) / (len(middle) * bucket) if middle else fallback


def run_cost(base: RunConfig, profiles: list[str], find_rate: bool, say: TextIO = sys.stdout) -> dict[str, Any]:
    """Measure each profile at `base`'s load (and, with `find_rate`, at doubled rates while it keeps pace)."""
    out = Path(base.store)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for p in profiles:
        steps: list[Measure] = []
        at = _stepper(base, p, steps, out, say)
        first = at(base.rate)
        sustainable = find_sustainable(first, at) if find_rate else None
        rows.append({**asdict(first), "sustainable_rate": sustainable,
                     "steps": [asdict(m) for m in sorted(steps, key=lambda m: m.rate)] if find_rate else []})
    # the cheapest profile: the highest sustainable rate when searched for, else the fastest send at the common
    # rate (there every profile that keeps pace acknowledges what is offered, so throughput cannot tell them apart)
    if find_rate:
        keeping = [r for r in rows if r["sustainable_rate"]]
        cheapest = max(keeping, key=lambda r: (r["sustainable_rate"], -(r["send_p50_ms"] or 0)), default=None)
    else:
        keeping = [r for r in rows if r["kept_up"]]
        cheapest = min(keeping, key=lambda r: r["send_p50_ms"] or float("inf"), default=None)
    key = "sustainable_rate" if find_rate else "acked_per_s"
    for r in rows:
        r["throughput_ratio"] = r["send_p50_ratio"] = r["e2e_p50_ratio"] = None
        if cheapest is None or r not in keeping:
            continue
        r["throughput_ratio"] = _ratio(r[key], cheapest[key])
        if r["kept_up"] and cheapest["kept_up"]:  # latencies compare only where both kept pace at the common rate
            r["send_p50_ratio"] = _ratio(r["send_p50_ms"], cheapest["send_p50_ms"])
            r["e2e_p50_ratio"] = _ratio(r["e2e_steady_p50_ms"], cheapest["e2e_steady_p50_ms"])
    doc = {"target": base.target, "rate": base.rate, "time": base.time, "producers": base.producers,
           "consumers": base.consumers, "in_flight": base.in_flight, "work_ms": base.value("work_ms"),
           "runtime": base.runtime,
           "cheapest": cheapest["profile"] if cheapest else None, "profiles": rows}
    atomic_write(out / "cost.json", json.dumps(doc, indent=1) + "\n")
    atomic_write(out / "cost.txt", table(doc) + "\n")
    return doc


def _stepper(base: RunConfig, profile: str, steps: list[Measure], out: Path, say: TextIO) -> Callable[[float], Measure]:
    """A function measuring `profile` at a rate, printing its figures and adding them to `steps`. The native
    tool runs once per profile, with the first step (the common rate)."""

    def at(rate: float) -> Measure:
        cfg = replace(base, profile=profile, rate=rate, faults=[], extra=dict(base.extra))
        cfg.validate()
        print(f"[cost] {base.target} {profile} at {rate:.0f} msg/s ...", file=say, flush=True)
        with open(out / "logs" / f"{profile}-{rate:.0f}.log", "w") as log:
            m = measure(cfg, log, native=not steps)
        print(f"  {m.acked_per_s:.0f} acked/s, send p50 {m.send_p50_ms} ms p99 {m.send_p99_ms} ms, "
              f"end-to-end p50 {m.e2e_p50_ms} ms p99 {m.e2e_p99_ms} ms"
              + ("" if m.kept_up else f" — {m.why_not}"), file=say, flush=True)
        n = m.native
        if n and "tool" in n:
            print(f"  {n['tool']}: {n['acked_per_s']:.0f}/s, p50 {n['send_p50_ms']} ms p99 {n['send_p99_ms']} ms "
                  f"({n.get('note', '')})", file=say, flush=True)
        steps.append(m)
        return m

    return at


def find_sustainable(first: Measure, at: Callable[[float], Measure]) -> float | None:
    """The highest rate at which a profile keeps pace, from `first` (already measured): doubling while it
    keeps pace (or halving while it does not), then REFINE_STEPS bisections between the last rate that kept
    pace and the first that did not, so the answer is good to 1/2**REFINE_STEPS of that bracket. None when
    even the lowest rate tried did not keep pace."""
    kept: float | None = first.rate if first.kept_up else None
    lost: float | None = None if first.kept_up else first.rate
    rate = first.rate
    for _ in range(MAX_DOUBLINGS):
        rate = rate * 2 if lost is None else rate / 2
        m = at(rate)
        if m.kept_up:
            kept = rate if kept is None else max(kept, rate)
        else:
            lost = rate if lost is None else min(lost, rate)
        if kept is not None and lost is not None:
            break
    if kept is None or lost is None:
        return kept
    for _ in range(REFINE_STEPS):
        mid = round((kept + lost) / 2)
        if mid in (round(kept), round(lost)):
            break
        if at(mid).kept_up:
            kept = mid
        else:
            lost = mid
    return kept


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def table(doc: dict[str, Any]) -> str:
    head = (f"{doc['target']}: {doc['producers']} producers x {doc['in_flight']} in flight, {doc['consumers']} "
            f"consumers at {doc['work_ms']} ms, {doc['time']:.0f} s per run, no faults; ratios against "
            f"{doc['cheapest'] or 'no profile (none kept pace)'}")
    thr = "x (sustainable)" if any(r.get("sustainable_rate") for r in doc["profiles"]) else "x"
    cols = ("profile", "claims", "offered/s", "acked/s", thr, "send p50", "p99", "x p50", "e2e p50", "p99",
            "warm e2e p50", "x warm", "sustainable/s", "native/s", "native p50", "native p99")
    w = max([len(r["profile"]) for r in doc["profiles"]] + [8])
    lines = [head, "  ".join(f"{c:>12}" if i else f"{c:<{w}}" for i, c in enumerate(cols))]
    for r in doc["profiles"]:
        cells = [r["profile"], r["guarantee"], f"{r['rate']:.0f}", f"{r['acked_per_s']:.0f}",
                 _x(r["throughput_ratio"]), _ms(r["send_p50_ms"]), _ms(r["send_p99_ms"]), _x(r["send_p50_ratio"]),
                 _ms(r["e2e_p50_ms"]), _ms(r["e2e_p99_ms"]), _ms(r["e2e_steady_p50_ms"]), _x(r["e2e_p50_ratio"]),
                 f"{r['sustainable_rate']:.0f}" if r.get("sustainable_rate") else "—", *_native_text(r.get("native"))]
        lines.append("  ".join(f"{c:>12}" if i else f"{c:<{w}}" for i, c in enumerate(cells))
                     + ("" if r["kept_up"] else f"   (not kept pace: {r['why_not']})"))
    lines += native_notes(doc["profiles"])
    return "\n".join(lines)


@dataclass(frozen=True)
class NativeCells:
    """A cost row's native tool as the cost tables show it, cost.txt and the comparison page alike."""

    tool: str  # its name, "(unpaced)" after it when it ran flat out; "none" without a figure; "" when it never ran
    how: str  # how it ran (pacing, its note, the exact command), or why there is no figure
    figures: tuple[float | None, float | None, float | None] | None = None  # acked/s, send p50 and p99 ms


def native_cells(n: dict[str, Any] | None) -> NativeCells:
    """The cells of a row's native.json (None: the tool was not asked for)."""
    if not n:
        return NativeCells("", "")
    if "tool" not in n:
        return NativeCells("none", n.get("skipped") or n.get("error") or "")
    how = f"{'paced at the offered rate' if n.get('paced') else 'unpaced'}; {n.get('note', '')}: {n.get('command', '')}"
    return NativeCells(n["tool"] + ("" if n.get("paced") else " (unpaced)"), how,
                       (n.get("acked_per_s"), n.get("send_p50_ms"), n.get("send_p99_ms")))


def _native_text(n: dict[str, Any] | None) -> list[str]:
    """cost.txt's native columns: the tool's figures (its name and how it ran go to the notes below)."""
    acked, p50, p99 = native_cells(n).figures or (None, None, None)
    return ["—" if acked is None else f"{acked:.0f}", _ms(p50), _ms(p99)]


def native_notes(rows: list[dict[str, Any]]) -> list[str]:
    """One line per profile on its native figure: the tool, how it ran, or why there is none."""
    out = []
    for r in rows:
        n = r.get("native")
        if not n:
            continue
        if "tool" in n:
            out.append(f"native {r['profile']}: {n['tool']} ({'paced at the offered rate' if n['paced'] else 'unpaced'}"
                       f"; {n['note']}): {n['command']}")
        else:
            out.append(f"native {r['profile']}: none ({n.get('skipped') or n.get('error')})")
    return out


def _x(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}x"


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f} ms"


def profiles_of(target: str, only: str | None) -> list[str]:
    names = list(targets.load(target).profiles)
    if not only:
        return names
    wanted = [p for p in only.split(",") if p]
    bad = [p for p in wanted if p not in names]
    if bad:
        raise ValueError(f"unknown profile {', '.join(map(repr, bad))} for target {target}; valid profiles: "
                         f"{', '.join(names)}")
    return wanted


# --- `onceproof cost` ------------------------------------------------------------------------------------------

# the run options `onceproof cost` takes, and the defaults it has of its own
COST_OPTIONS = ("time", "rate", "producers", "consumers", "in_flight", "work_ms", "batch", "runtime", "nodes")
COST_TIME = 30.0


def cmd_cost(args: argparse.Namespace) -> int:
    """Each profile of a target without faults at one load; ratios to the cheapest."""
    from harness.certify import Interrupted, RunFailed
    from harness.config import ConfigError

    store = args.store or str(Path("store") / "cost" / args.target)
    try:
        cfg = cost_config(args.target, store, {"time": COST_TIME, **{
            name: getattr(args, name) for name in COST_OPTIONS if getattr(args, name) is not None}})
        cfg.validate()
        profiles = profiles_of(args.target, args.profiles)
    except (ConfigError, ValueError) as e:
        print(f"onceproof cost: error: {e}", file=sys.stderr)
        return 2
    try:
        doc = run_cost(cfg, profiles, args.find_rate)
    except Interrupted:
        print("onceproof cost: interrupted; everything the run started is stopped", file=sys.stderr)
        return 130
    except RunFailed as e:
        print(f"onceproof cost: error: {e}", file=sys.stderr)
        return 2
    print(table(doc))
    print(f"results: {Path(store) / 'cost.json'}")
    bad = [r["profile"] for r in doc["profiles"] if r["verdict"] is not True]
    if bad:
        print(f"onceproof cost: without faults, {', '.join(bad)} did not keep its claim (see its run)", file=sys.stderr)
    return 1 if bad else 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from harness.config import declared
    from harness.options import add_option_flags

    k = sub.add_parser("cost", help="what each guarantee costs: every profile of a target without faults",
                       description="Run each profile of TARGET without faults at the same load and concurrency; "
                                   "print acknowledged msg/s and send and end-to-end latency (p50, p99) as ratios "
                                   "to the cheapest profile. Exit 0, 1 when a run without faults was not valid, "
                                   "2 on bad input.")
    k.add_argument("--target", required=True)
    k.add_argument("--profiles", metavar="P1,P2", help="only these profiles (default: all the target's)")
    options = declared()
    add_option_flags(k, {name: options[name] for name in COST_OPTIONS},
                     defaults={"time": f"{COST_TIME:g}", "consumers": str(COST_CONSUMERS),
                               "work_ms": f"{COST_WORK_MS:g}: the system's cost, not the work's"})
    k.add_argument("--find-rate", action="store_true", help="double the rate while each profile keeps pace")
    k.add_argument("--store", metavar="DIR", help="where runs and cost.json go (default: store/cost/<target>)")
    k.set_defaults(func=cmd_cost)
