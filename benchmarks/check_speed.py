"""How fast is `onceproof check` on a big history, against a naive checker?

    python benchmarks/check_speed.py [--messages N] [--out DIR] [--seed S] [--shape canonical|reordered]
                                     [--repeat K] [--compare-with DIR]

1. generates (deterministically from the seed) a contract-v1 history of N messages, about 3N operations;
   with --shape reordered, the same operations with every object's keys in another order
   (`{"type":…,"f":…,"value":{…},"time":…,"process":…}`, value and entry keys reversed), as other tools
   write them: the reader's C/canonical fast path takes none of those lines, so the msgspec path reads
   them all (and decodes the chunks in processes instead of threads);
2. runs a naive baseline checker (json.loads per line, Python sets and dicts) over it;
3. runs `onceproof check FILE --out DIR -q` over it, the full command including the reports;
4. cross-checks onceproof's `delivery.counts` (and its anomaly id lists) against the baseline's
   and exits 1 on any mismatch;
5. prints sizes, times, the ratio baseline/onceproof and peak memory, with PASS/FAIL lines for the
   targets "ratio >= 5" and "peak < 2048 MB" (informational: they do not change the exit status).

With --compare-with DIR (another checkout of onceproof, such as `git worktree add DIR HEAD~1`), that
checkout's `onceproof check` runs on the same history in the same run, alternating with this one's
(--repeat times each, default 5, each of them first in turn), is cross-checked the same way, and the
two medians are compared.

Every step runs in its own child process and is reaped with os.wait4, so each gets its own
ru_maxrss. This launcher stays small on purpose: Linux carries the parent's RSS high-water mark
into a child at exec, so a big launcher would inflate every child's figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COUNT_KEYS = ("attempted", "acknowledged", "failed", "indeterminate", "delivered", "lost", "duplicated",
              "unexpected", "aborted_read", "recovered", "unresolved", "lost_effects", "duplicated_effects")
LIST_KEYS = ("lost", "unexpected", "aborted_read", "lost_effects")
MAP_KEYS = ("duplicated", "duplicated_effects")
TARGET_RATIO = 5.0
TARGET_PEAK_MB = 2048.0


# --- 1. the history generator --------------------------------------------------------------------


class Canonical:
    """Lines shaped exactly as the harness writes them: the reader's C/canonical fast path takes them."""

    @staticmethod
    def op(t: int, proc: str, typ: str, f: str, value: str) -> str:
        """One operation's line; `proc` and `value` are JSON already."""
        return f'{{"time":{t},"process":{proc},"type":"{typ}","f":"{f}","value":{value}}}'

    @staticmethod
    def send(idx: int, kn: int, part: int | None = None, off: int | None = None) -> str:
        if part is None:
            return f'{{"id":"m{idx}","key":"k{kn}"}}'
        return f'{{"id":"m{idx}","key":"k{kn}","partition":{part},"offset":{off}}}'

    @staticmethod
    def entry(idx: int, kn: int, part: int, off: int, red: bool) -> str:
        return (f'{{"id":"m{idx}","key":"k{kn}","partition":{part},"offset":{off},'
                f'"redelivered":{"true" if red else "false"}}}')

    @staticmethod
    def fault(fault: str, nodes: list[str]) -> str:
        return f'{{"fault":"{fault}","nodes":{json.dumps(nodes)}}}'


class Reordered(Canonical):
    """The same operations with every object's keys in another order, as other tools may write them:
    the C/canonical fast path refuses these lines, so the reader decodes them with msgspec."""

    @staticmethod
    def op(t: int, proc: str, typ: str, f: str, value: str) -> str:
        return f'{{"type":"{typ}","f":"{f}","value":{value},"time":{t},"process":{proc}}}'

    @staticmethod
    def send(idx: int, kn: int, part: int | None = None, off: int | None = None) -> str:
        if part is None:
            return f'{{"key":"k{kn}","id":"m{idx}"}}'
        return f'{{"offset":{off},"partition":{part},"key":"k{kn}","id":"m{idx}"}}'

    @staticmethod
    def entry(idx: int, kn: int, part: int, off: int, red: bool) -> str:
        return (f'{{"redelivered":{"true" if red else "false"},"offset":{off},"partition":{part},'
                f'"key":"k{kn}","id":"m{idx}"}}')

    @staticmethod
    def fault(fault: str, nodes: list[str]) -> str:
        return f'{{"nodes":{json.dumps(nodes)},"fault":"{fault}"}}'


SHAPES: dict[str, type[Canonical]] = {"canonical": Canonical, "reordered": Reordered}


def generate(path: Path, n: int, seed: int, shape: type[Canonical] = Canonical) -> dict[str, int]:
    """Write a realistic contract-v1 history of `n` messages to `path`; return a few tallies.

    8 producer slots send with invoke/ok pairs: 1% of sends `fail`, 3% complete `info` (the system
    took half of those anyway; the producer takes a new process id and retries 60% of them with the
    same message id). The two last messages are left uncompleted. 4 consumers poll batches of 1-7
    messages and ack them; 0.4% of deliveries are redelivered later (marked `redelivered`), 0.1%
    of polls end `info` (their messages are not deliveries and come back later) and 0.2% `fail`.
    Partition p (of 12) is consumed by consumer p % 4, in log order. The consumer applies each
    message once to the effect store. Nemesis faults open and heal four times. Injected anomalies:
    3 + n/200000 acknowledged messages are lost, as many are applied twice, and two delivered
    messages are never applied. `shape` writes the lines: the same operations, whatever their key order.
    """
    op, send_value, entry, fault_value = shape.op, shape.send, shape.entry, shape.fault
    rng = random.Random(seed)
    rnd = rng.random
    n_prod, n_cons, n_parts, n_keys = 8, 4, 12, 1000
    k_anom = 3 + n // 200_000
    lost_set = set(rng.sample(range(n), min(n, k_anom)))
    dup_eff_set = set(rng.sample(range(n), min(n, k_anom)))
    skip_apply = set(rng.sample(range(n), min(n, 2)))
    hang_set = set(range(max(0, n - 2), n))

    keyn = [rng.randrange(n_keys) for _ in range(n)]
    part_next = [0] * n_parts
    seen = bytearray(n)
    eff = bytearray(n)
    # the broker: per consumer (partition p is assigned to consumer p % n_cons), a queue of
    # (msg index, partition, offset, redelivered) in log order
    queues: list[deque] = [deque() for _ in range(n_cons)]

    next_pid = 0

    def new_pid() -> int:
        nonlocal next_pid
        next_pid += 1
        return next_pid - 1

    # producer slot: [pid, in-flight msg (-1 none), outcome 0 ok / 1 fail / 2 info, retry msg (-1 none)]
    producers = [[new_pid(), -1, 0, -1] for _ in range(n_prod)]
    # consumer: [pid, state 0 idle / 1 polling / 2 acking, JSON of the ids being acked, its queue]
    consumers = [[new_pid(), 0, None, queues[j]] for j in range(n_cons)]
    active_p = list(producers)
    active_c = list(consumers)
    next_msg = 0

    est_steps = 3 * n + 10
    faults = [("partition", ["n1", "n2"]), ("kill", ["n3"]), ("pause", ["n2"]), ("partition", ["n3"])]
    nemesis_events = []
    for j, (name, nodes) in enumerate(faults):
        start = int(est_steps * (0.12 + 0.2 * j))
        nemesis_events.append((start, "start-fault", name, nodes))
        nemesis_events.append((start + est_steps // 25, "stop-fault", name, nodes))
    nemesis_events.sort(key=lambda e: e[0])
    next_event = nemesis_events.pop(0) if nemesis_events else None

    out: list[str] = []
    t = 1_000_000
    step = 0
    tallies = {"operations": 0}
    batch_lines = 200_000

    with open(path, "w", encoding="ascii") as fh:

        def flush() -> None:
            if out:
                fh.write("\n".join(out))
                fh.write("\n")
                tallies["operations"] += len(out)
                out.clear()

        while active_p or active_c:
            step += 1
            t += 200 + int(rnd() * 20_000)
            if next_event is not None and step >= next_event[0]:
                _, fname, fault, nodes = next_event
                out.append(op(t, '"nemesis"', "info", fname, fault_value(fault, nodes)))
                next_event = nemesis_events.pop(0) if nemesis_events else None
                t += 1000

            c = active_c[int(rnd() * len(active_c))] if active_c else None
            if active_p and (c is None or len(c[3]) < 12 or rnd() < 0.55):
                p = active_p[int(rnd() * len(active_p))]
                pid, idx = p[0], p[1]
                if idx < 0:  # invoke a send
                    if p[3] >= 0:
                        idx, p[3] = p[3], -1
                        retry = True
                    elif next_msg < n:
                        idx = next_msg
                        next_msg += 1
                        retry = False
                    else:
                        active_p.remove(p)
                        continue
                    out.append(op(t, str(pid), "invoke", "send", send_value(idx, keyn[idx])))
                    if idx in hang_set and not retry:
                        active_p.remove(p)  # never completes: treated as info
                        continue
                    r = rnd()
                    p[1], p[2] = idx, (1 if r < 0.01 else 2 if r < 0.04 else 0)
                else:  # complete it
                    kn = keyn[idx]
                    outcome = p[2]
                    p[1] = -1
                    if outcome == 0:
                        part = kn % n_parts
                        off = part_next[part]
                        part_next[part] += 1
                        if idx not in lost_set:
                            queues[part % n_cons].append((idx, part, off, False))
                        out.append(op(t, str(pid), "ok", "send", send_value(idx, kn, part, off)))
                    elif outcome == 1:
                        out.append(op(t, str(pid), "fail", "send", send_value(idx, kn)))
                    else:
                        if rnd() < 0.5:  # the system did take it
                            part = kn % n_parts
                            off = part_next[part]
                            part_next[part] += 1
                            queues[part % n_cons].append((idx, part, off, False))
                        out.append(op(t, str(pid), "info", "send", send_value(idx, kn)))
                        p[0] = new_pid()
                        if rnd() < 0.6:
                            p[3] = idx
            else:
                pid, state, queue = c[0], c[1], c[3]
                if state == 0:
                    if not queue and not active_p:
                        active_c.remove(c)
                        continue
                    out.append(op(t, str(pid), "invoke", "poll", "null"))
                    c[1] = 1
                elif state == 1:
                    r = rnd()
                    if r < 0.002:
                        out.append(op(t, str(pid), "fail", "poll", "null"))
                        c[1] = 0
                        continue
                    b = 1 + int(rnd() * 7)
                    got = [queue.popleft() for _ in range(min(b, len(queue)))]
                    msgs = ",".join(entry(i, keyn[i], pa, of, red) for i, pa, of, red in got)
                    if r < 0.003:  # the consumer crashed holding them: not deliveries, they come back
                        out.append(op(t, str(pid), "info", "poll", f'{{"messages":[{msgs}]}}'))
                        queue.extend((i, pa, of, True) for i, pa, of, _ in got)
                        c[0], c[1] = new_pid(), 0
                        continue
                    out.append(op(t, str(pid), "ok", "poll", f'{{"messages":[{msgs}]}}'))
                    ids = []
                    for i, pa, of, _ in got:
                        ids.append(i)
                        if rnd() < 0.004:
                            queue.append((i, pa, of, True))  # ack lost: the broker delivers it again
                        if not seen[i]:
                            seen[i] = 1
                            if i in dup_eff_set:
                                eff[i] = 2
                            elif i not in skip_apply:
                                eff[i] = 1
                    if ids:
                        ids_json = ",".join([f'"m{i}"' for i in ids])
                        c[1], c[2] = 2, ids_json
                        out.append(op(t + 100, str(pid), "invoke", "ack", f'{{"ids":[{ids_json}]}}'))
                        t += 100
                    else:
                        c[1] = 0
                else:
                    out.append(op(t, str(pid), "ok", "ack", f'{{"ids":[{c[2]}]}}'))
                    c[1], c[2] = 0, None
            if len(out) >= batch_lines:
                flush()

        while next_event is not None:  # faults scheduled past the end still heal
            _, fname, fault, nodes = next_event
            t += 1000
            out.append(op(t, '"nemesis"', "info", fname, fault_value(fault, nodes)))
            next_event = nemesis_events.pop(0) if nemesis_events else None
        t += 1_000_000
        out.append(op(t, '"effects"', "invoke", "effects", "null"))
        counts = ",".join(f'"m{i}":{e}' for i, e in enumerate(eff) if e)
        out.append(op(t + 5_000_000, '"effects"', "ok", "effects", f'{{"counts":{{{counts}}}}}'))
        flush()
    tallies["messages"] = n
    tallies["processes"] = next_pid
    return tallies


# --- 2. the naive baseline -----------------------------------------------------------------------


def baseline(path: Path) -> dict:
    """Contract v1's delivery classification, the plain way: json.loads per line, sets and dicts."""
    open_invokes: dict = {}  # process -> stack of open invokes
    attempts: dict[str, int] = {}  # id -> send invokes
    fails: dict[str, int] = {}  # id -> send fail completions
    acked: set[str] = set()
    deliveries: dict[str, int] = {}
    effects = None
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            op = json.loads(line)
            proc, typ, f, value = op["process"], op["type"], op["f"], op.get("value")
            if typ == "invoke":
                open_invokes.setdefault(proc, []).append(op)
                if f == "send":
                    mid = value["id"]
                    attempts[mid] = attempts.get(mid, 0) + 1
                continue
            stack = open_invokes.get(proc)
            inv = stack.pop() if stack else None
            if f == "send":
                mid = inv["value"]["id"] if inv is not None else value["id"]
                if typ == "ok":
                    acked.add(mid)
                elif typ == "fail":
                    fails[mid] = fails.get(mid, 0) + 1
            elif f == "poll" and typ == "ok":
                for m in value["messages"]:
                    deliveries[m["id"]] = deliveries.get(m["id"], 0) + 1
            elif f == "effects" and typ == "ok":
                effects = value["counts"]
    # uncompleted invokes stay counted in `attempts` without a completion: they count as info

    attempted = set(attempts)
    failed = {i for i, k in attempts.items() if i not in acked and fails.get(i, 0) == k}
    indeterminate = {i for i, k in attempts.items() if i not in acked and fails.get(i, 0) < k}
    delivered = set(deliveries)
    sets: dict = {
        "attempted": attempted,
        "acknowledged": acked,
        "failed": failed,
        "indeterminate": indeterminate,
        "delivered": delivered,
        "lost": acked - delivered,
        "duplicated": {i: k for i, k in deliveries.items() if k > 1},
        "unexpected": delivered - attempted,
        "aborted_read": delivered & failed,
        "recovered": indeterminate & delivered,
        "unresolved": indeterminate - delivered,
    }
    if effects is not None:
        applied = {i for i, k in effects.items() if k > 0}
        sets["lost_effects"] = acked - applied
        sets["duplicated_effects"] = {i: k for i, k in effects.items() if k > 1}
    else:
        sets["lost_effects"], sets["duplicated_effects"] = set(), {}
    return {
        "counts": {k: len(sets[k]) for k in COUNT_KEYS},
        **{k: sorted(sets[k]) for k in LIST_KEYS},
        **{k: dict(sorted(sets[k].items())) for k in MAP_KEYS},
    }


# --- child-process entry points ------------------------------------------------------------------


def _child_generate(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    tallies = generate(Path(args.path), args.messages, args.seed, SHAPES[args.shape])
    tallies["seconds"] = time.perf_counter() - t0
    Path(args.result).write_text(json.dumps(tallies))
    return 0


def _child_baseline(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    res = baseline(Path(args.path))
    res["seconds"] = time.perf_counter() - t0
    Path(args.result).write_text(json.dumps(res))
    return 0


# --- 3. timing, memory, cross-check, report ------------------------------------------------------


def run_child(cmd: list[str], log: Path, cwd: Path = REPO) -> tuple[int, float, float]:
    """Run `cmd` from a checkout's root; return (exit code, wall seconds, peak RSS in MB) of that child alone."""
    code, wall, mb, _ = run_child_cpu(cmd, log, cwd)
    return code, wall, mb


def run_child_cpu(cmd: list[str], log: Path, cwd: Path = REPO) -> tuple[int, float, float, tuple[float, float]]:
    """`run_child`, and the child's (user, system) CPU seconds."""
    with open(log, "wb") as fh:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4; tell Popen
    return p.returncode, wall, usage.ru_maxrss / 1024, (usage.ru_utime, usage.ru_stime)  # ru_maxrss: kB


def _reader_path() -> str:
    """Which canonical path the reader used (canon.c or numpy), asked of a child: this launcher
    stays small (see the module's docstring)."""
    r = subprocess.run([sys.executable, "-c", "from checkers.history import native; print(native.status())"],
                       cwd=REPO, capture_output=True, text=True)
    return r.stdout.strip() or f"unknown ({r.stderr.strip()[-200:]})"


def _self_cmd(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


def _die(msg: str, log: Path | None = None) -> int:
    print(f"check_speed: ERROR: {msg}", file=sys.stderr)
    if log is not None and log.exists():
        print(f"--- {log} (tail) ---", file=sys.stderr)
        print("\n".join(log.read_text(errors="replace").splitlines()[-30:]), file=sys.stderr)
    return 1


def compare(base: dict, delivery: dict) -> list[str]:
    """Differences between the baseline and onceproof's `delivery` section."""
    problems = []
    oc = delivery.get("counts", {})
    for k in COUNT_KEYS:
        if oc.get(k) != base["counts"][k]:
            problems.append(f"counts.{k}: baseline {base['counts'][k]}, onceproof {oc.get(k)}")
    for k in (*LIST_KEYS, *MAP_KEYS):
        ours, theirs = delivery.get(k), base[k]
        if k in LIST_KEYS and ours is not None:  # the same ids; each side lists them in its own order
            ours, theirs = sorted(ours), sorted(theirs)
        if k in delivery and ours != theirs:
            problems.append(f"{k}: the ids differ (baseline {len(base[k])}, onceproof {len(delivery[k])})")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", "-n", type=int, default=1_000_000,
                    help="messages in the history (default 1,000,000)")
    ap.add_argument("--out", default=str(REPO / "bench-out"),
                    help="directory for the history, results and logs (default: <repo>/bench-out)")
    ap.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    ap.add_argument("--shape", choices=tuple(SHAPES), default="canonical",
                    help="canonical: lines as the harness writes them (the C fast path reads them); reordered: "
                         "the same operations with their keys in another order (the msgspec path reads them)")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse the history in --out when it was generated with the same messages, seed and shape")
    ap.add_argument("--repeat", type=int, default=None,
                    help="run onceproof's check this many times and report the median (default 1; 5 when comparing)")
    ap.add_argument("--compare-with", metavar="DIR",
                    help="another onceproof checkout whose check runs on the same history in the same run, "
                         "alternating with this one's")
    hidden = argparse.SUPPRESS  # the child-process modes below
    ap.add_argument("--_generate", dest="child", action="store_const", const="generate", help=hidden)
    ap.add_argument("--_baseline", dest="child", action="store_const", const="baseline", help=hidden)
    ap.add_argument("--path", help=hidden)
    ap.add_argument("--result", help=hidden)
    args = ap.parse_args(argv)
    if args.child == "generate":
        return _child_generate(args)
    if args.child == "baseline":
        return _child_baseline(args)
    if args.messages < 1:
        ap.error("--messages must be at least 1")
    if args.repeat is not None and args.repeat < 1:
        ap.error("--repeat must be at least 1")

    load_start = os.getloadavg()[0]
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    stem = "" if args.shape == "canonical" else f"-{args.shape}"  # each shape's files apart: both can be reused
    hist = out / f"history{stem}.jsonl"
    gen_info = out / f"generate{stem}.json"
    want = {"messages": args.messages, "seed": args.seed, "shape": args.shape}
    reused = False
    if args.reuse and hist.exists() and gen_info.exists():
        info = json.loads(gen_info.read_text())
        reused = {k: info.get(k, "canonical" if k == "shape" else None) for k in want} == want
    if not reused:
        print(f"generating {args.messages:,} messages (seed {args.seed}, {args.shape} lines) into {hist} ...",
              flush=True)
        rc, _, gen_mb = run_child(_self_cmd("--_generate", "--path", str(hist), "--result", str(gen_info),
                                            "--messages", str(args.messages), "--seed", str(args.seed),
                                            "--shape", args.shape),
                                  out / f"generate{stem}.log")
        if rc != 0:
            return _die(f"the generator failed (exit {rc})", out / f"generate{stem}.log")
        info = json.loads(gen_info.read_text())
        info.update(want, peak_mb=gen_mb)
        gen_info.write_text(json.dumps(info))
    info = json.loads(gen_info.read_text())
    size_mb = hist.stat().st_size / 2**20
    print(f"history: {info['operations']:,} operations, {size_mb:,.1f} MB, {info['processes']} process ids, "
          f"{args.shape} lines"
          + (" (reused)" if reused else f" (generated in {info['seconds']:.1f}s)"), flush=True)

    print("baseline (json.loads + sets) ...", flush=True)
    base_result = out / f"baseline{stem}.json"
    rc, base_wall, base_mb = run_child(
        _self_cmd("--_baseline", "--path", str(hist), "--result", str(base_result)), out / f"baseline{stem}.log")
    if rc != 0:
        return _die(f"the baseline failed (exit {rc})", out / f"baseline{stem}.log")

    repeat = args.repeat or (5 if args.compare_with else 1)
    checkouts = [("onceproof", REPO)]
    if args.compare_with:
        other = Path(args.compare_with).resolve()
        if not (other / "harness" / "cli.py").is_file():
            return _die(f"--compare-with {other}: not an onceproof checkout (no harness/cli.py)")
        checkouts.append(("other", other))
    base = json.loads(base_result.read_text())
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in checkouts}
    cpus: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in checkouts}
    problems: dict[str, list[str]] = {}
    rc = 0
    for i in range(repeat):
        # alternating, the first one in turn: a slow spell of the machine hits both alike
        for name, repo in (checkouts if i % 2 == 0 else checkouts[::-1]):
            print(f"{name} check ({repo}) {i + 1}/{repeat} ...", flush=True)
            check_out = out / ("check" if name == "onceproof" else f"check-{name}")
            cmd = [sys.executable, "-m", "harness.cli", "check", str(hist), "--out", str(check_out), "-q"]
            code, wall, mb, cpu = run_child_cpu(cmd, out / f"{name}.log", cwd=repo)
            if code not in (0, 1):  # 1 = invalid, expected: the history carries anomalies
                return _die(f"`onceproof check` of {repo} exited {code}", out / f"{name}.log")
            runs[name].append((wall, mb))
            cpus[name].append(cpu)
            if name == "onceproof":
                rc = code
            results = json.loads((check_out / "results.json").read_text())
            problems[name] = compare(base, results.get("delivery", {}))
    walls = {name: sorted(w for w, _ in r) for name, r in runs.items()}
    op_wall = statistics.median(walls["onceproof"])
    op_mb = max(mb for _, mb in runs["onceproof"])
    floor_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load_end = os.getloadavg()[0]

    c = base["counts"]
    ratio = base["seconds"] / op_wall if op_wall > 0 else float("inf")
    print()
    print(f"operations          {info['operations']:>12,}   ({info['messages']:,} messages)")
    print(f"file size           {size_mb:>12,.1f} MB")
    print("counts              " + ", ".join(f"{k} {c[k]}" for k in COUNT_KEYS))
    print(f"baseline            {base['seconds']:>12.2f} s   (json.loads + sets, in-process; "
          f"{base_wall:.2f}s with interpreter start)")
    print(f"onceproof check     {op_wall:>12.2f} s   (whole command: start, imports, read, check, reports"
          + (f"; median of {repeat}: " + ", ".join(f"{w:.2f}" for w in walls["onceproof"]) if repeat > 1 else "")
          + ")")
    print(f"ratio               {ratio:>12.2f} x   (baseline / onceproof)")
    print(f"onceproof peak RSS  {op_mb:>12,.0f} MB")
    print(f"reader fast path    {_reader_path():>12}"
          + ("   (not taken: reordered lines go to msgspec)" if args.shape != "canonical" else ""))
    print(f"baseline peak RSS   {base_mb:>12,.0f} MB")
    print(f"(no child's peak can read below this launcher's own, {floor_mb:.0f} MB, carried over at exec)")
    print(f"verdict             {'False' if rc else 'True':>12}   (exit {rc}; results in {out / 'check'})")
    if args.compare_with:
        other_wall = statistics.median(walls["other"])
        print(f"other checkout      {other_wall:>12.2f} s   ({args.compare_with}; median of {repeat}: "
              + ", ".join(f"{w:.2f}" for w in walls["other"]) + ")")
        print(f"other peak RSS      {max(mb for _, mb in runs['other']):>12,.0f} MB")
        print(f"this / other        {other_wall / op_wall:>12.2f} x   (medians; best of each: "
              f"{min(walls['other']) / min(walls['onceproof']):.2f} x; above 1: this checkout is faster)")
        for name in ("onceproof", "other"):
            user = statistics.median(u for u, _ in cpus[name])
            system = statistics.median(s for _, s in cpus[name])
            print(f"{name + ' CPU':<20}{user:>12.2f} s user, {system:.2f} s system (medians; the system time "
                  "is mostly page faults, which the machine makes noisy)")
    print(f"load average        {load_start:>12.2f} -> {load_end:.2f}   ({os.cpu_count()} CPUs; "
          "other work on the machine skews the times)")
    print()
    ratio_ok, peak_ok = ratio >= TARGET_RATIO, op_mb < TARGET_PEAK_MB
    print(f"target ratio >= {TARGET_RATIO:g}:       {'PASS' if ratio_ok else 'FAIL'} ({ratio:.2f}x)")
    print(f"target peak < {TARGET_PEAK_MB:g} MB:   {'PASS' if peak_ok else 'FAIL'} ({op_mb:,.0f} MB)")
    bad = {name: p for name, p in problems.items() if p}
    if bad:
        for name, found in bad.items():
            print()
            print("!" * 78)
            print(f"COUNTS MISMATCH between {name} and the baseline:")
            for p in found:
                print(f"  {p}")
            print("!" * 78)
        return 1
    print("cross-check: " + " and ".join(f"{name}'s" for name in problems)
          + " delivery counts and anomaly ids equal the baseline's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
