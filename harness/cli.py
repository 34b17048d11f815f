"""The `onceproof` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from checkers import importers
from checkers.history import HistoryError, native, read_history, resolve_history_path
from checkers.suite import check_history
from checkers.vocabulary import GUARANTEES, exit_code, holds_of, verdict_word
from harness.config import DEFAULT_TARGET, declared
from harness.options import add_option_flags
from plugin.check import PluginError

SLOW_READ_NOTE_OPS = 100_000  # from this size on, a check without canon.c says how to get it


def summarize(results: dict) -> str:
    """A few lines for the terminal: the verdict first, then counts and anomalies."""
    d = results["delivery"]
    c = d["counts"]
    lines = [
        f"verdict: {verdict_word(results['valid'])} ({results['guarantee']} claimed)",
        f"history: {results['history']} ({results['operations']} operations)",
    ]
    lines += [f"  because {r}" for r in results.get("reasons", [])]
    lines.append("sends: attempted {attempted}, acknowledged {acknowledged}, failed {failed}, "
                 "indeterminate {indeterminate} (recovered {recovered}, unresolved {unresolved})".format(**c))
    lines.append("deliveries: delivered {delivered} distinct ids".format(**c))
    lost = f"lost {c['lost']}" + ("" if d.get("api") else f" ({c.get('lost_middle', 0)} in the middle)")
    anomalies = [lost, f"duplicated {c['duplicated']}",
                 f"unexpected {c['unexpected']}", f"aborted_read {c['aborted_read']}"]
    if d.get("effects_checked"):
        anomalies += [f"lost_effects {c['lost_effects']}", f"duplicated_effects {c['duplicated_effects']}"]
    lines.append("anomalies: " + ", ".join(anomalies))
    holds = holds_of(results)
    lines.append("guarantees held: " + (", ".join(g for g in GUARANTEES if holds.get(g)) or "none"))
    idem = results.get("idempotency") or {}
    if idem.get("applicable"):
        ic = idem.get("counts", {})
        lines.append(f"idempotency keys: {ic.get('requests', 0)} requests, {ic.get('reused', 0)} reused a key with "
                     f"another payload, {ic.get('key_reuse_accepted', 0)} of them answered 2xx (key_reuse_accepted)")
    order = results.get("order") or {}
    if order.get("counts", {}).get("reordered"):
        lines.append(f"order: {order['counts']['reordered']} reordered deliveries"
                     + (" (order claimed)" if order.get("claimed") else " (reported; no order claimed)"))
    unflagged = ((results.get("redelivery") or {}).get("counts") or {}).get("unflagged_redeliveries")
    if unflagged:
        lines.append(f"redelivered flag: {unflagged} deliveries not marked redelivered came after an earlier "
                     "delivery of the same message (reported; the system promised they were first deliveries)")
    log = results.get("log", {})
    if log.get("applicable"):
        lc = log.get("counts", {})
        lines.append("log: " + ", ".join(f"{k} {v}" for k, v in lc.items()))
        fr = log.get("final_read")
        if isinstance(fr, dict):
            lines.append(f"final read: {fr.get('records')} records; {fr.get('absent_acknowledged')} acknowledged "
                         "ids absent from the log")
    return "\n".join(lines)


def import_history(fmt: str, inputs: list[str], out: Path, prog: str) -> Path | None:
    """Convert `inputs` (another tool's format) into the history file `out`; None after saying why not."""
    from harness.files import atomic_write

    missing = [i for i in inputs if not Path(i).is_file()]
    if missing:
        print(f"onceproof {prog}: error: no such file: {', '.join(missing)}", file=sys.stderr)
        return None
    try:
        lines = [json.dumps(op, separators=(",", ":")) for op in importers.convert(fmt, [Path(i) for i in inputs])]
    except ValueError as e:
        print(f"onceproof {prog}: error: {e}", file=sys.stderr)
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, "".join(line + "\n" for line in lines))  # all or nothing: never a half-written history
    print(f"{prog}: {len(lines)} operations from {len(inputs)} {fmt} file(s) in {out}", file=sys.stderr)
    return out


def add_invokes(path: Path, out: Path) -> Path:
    """`path` with an invoke before each orphan completion, written to `out` (the original stays as it is)."""
    from checkers.completions import with_invokes
    from harness.files import atomic_write

    made = out / "history.with-invokes.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    with open(path) as f:
        atomic_write(made, "".join(line + "\n" for line in with_invokes(f)))
    return made


def cmd_import(args: argparse.Namespace) -> int:
    """Another tool's history, as a contract-v1 history file."""
    return 0 if import_history(args.format, args.inputs, Path(args.out), "import") else 2


def cmd_check(args: argparse.Namespace) -> int:
    from harness.report import write_reports

    t0 = time.perf_counter()
    if args.from_format:
        where = Path(args.out) if args.out else Path(args.path).resolve().parent
        made = import_history(args.from_format, [args.path, *args.more], where / "history.jsonl", "check")
        if made is None:
            return 2
        args.path = str(made)
    elif args.more:
        print("onceproof check: error: several inputs need --from FORMAT", file=sys.stderr)
        return 2
    try:
        path = resolve_history_path(args.path)
        if args.completions_only:
            path = add_invokes(path, Path(args.out) if args.out else path.parent)
        h = read_history(path)
    except HistoryError as e:
        print(f"onceproof check: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"onceproof check: error: {args.path}: {e.strerror or e}", file=sys.stderr)
        return 2
    for w in h.warnings:
        print(f"onceproof check: warning: {w}", file=sys.stderr)
    if not args.quiet and len(h) >= SLOW_READ_NOTE_OPS and not native.available():
        print(f"onceproof check: note: the history was read by numpy, not by the C fast path ({native.why()}); "
              "with a C compiler (`apt-get install gcc`) big histories read several times faster", file=sys.stderr)
    results = check_history(h, args.guarantee, explain_limit=args.explain_limit, claims_order=args.order)
    if args.completions_only:
        results["completions_only"] = True
        results["warnings"].append("--completions-only: each completion without an invoke was given one at its own "
                                   f"time ({path.name}); operations have no duration")
    for w in results["warnings"][len(h.warnings):]:  # what the checkers could not judge
        print(f"onceproof check: warning: {w}", file=sys.stderr)
    out = Path(args.out) if args.out else path.parent
    paths = write_reports(results, out)
    print(summarize(results))
    print(f"results: {paths['results']}")
    print(f"report: {paths['report']}")
    if not args.quiet:
        print(f"checked in {time.perf_counter() - t0:.2f}s", file=sys.stderr)
    return exit_code(results["valid"])


def cmd_run(args: argparse.Namespace) -> int:
    """A live certification run, then the check and the reports in the run directory."""
    from harness.certify import Interrupted, RunFailed, certify
    from harness.config import ConfigError, RunConfig

    cfg = RunConfig()
    try:
        for name in declared():
            value = getattr(args, name)
            if value is not None:
                cfg.set(name, value)
    except ConfigError as e:
        print(f"onceproof run: error: {e}", file=sys.stderr)
        return 2
    try:
        cfg.validate()
    except ConfigError as e:
        print(f"onceproof run: error: {e}", file=sys.stderr)
        return 2
    try:
        done = certify(cfg)
    except Interrupted as e:
        if e.run_dir is not None:
            print(f"onceproof run: interrupted; everything it started is stopped. The history so far is in "
                  f"{e.run_dir / 'history.jsonl'} (check it with: onceproof check {e.run_dir})", file=sys.stderr)
        return 130
    except RunFailed as e:
        where = f" (run directory {e.run_dir})" if e.run_dir is not None else ""
        print(f"onceproof run: error: {e}{where}", file=sys.stderr)
        return 2
    print(summarize(done.results))
    print(f"report: {done.paths['report']}")
    return exit_code(done.results["valid"])


def cmd_clean(args: argparse.Namespace) -> int:
    """Remove what crashed runs left: lossy disks whose daemon died with its harness, and containers, networks and
    volumes labelled onceproof."""
    from harness import lossyfs
    from harness.runtime import docker as rt

    if args.dry_run:
        stale = [t for _, t in lossyfs.mounts() if not os.path.exists(t)]
        for t in stale:
            print(f"mount {t}")
    else:
        lossyfs.clean_leftovers(say=print)
    if not rt.available():
        print("onceproof clean: no docker engine answers; local runs leave nothing behind (their processes "
              "die with the harness)")
        return 0
    if args.dry_run:
        found = rt.leftovers(only_orphans=args.orphans)
        n = sum(len(v) for v in found.values())
        for kind, names in found.items():
            for name in names:
                print(f"{kind[:-1]} {name}")
        print(f"onceproof clean: {n} object{'s' if n != 1 else ''} found")
        return 1 if n else 0
    found = rt.clean(only_orphans=args.orphans, say=print)
    n = sum(len(v) for v in found.values())
    print(f"onceproof clean: removed {n} object{'s' if n != 1 else ''}" if n else "onceproof clean: nothing to remove")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="onceproof", description="Certify message-delivery guarantees.")
    p.add_argument("--version", action="version", version=version_line())
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("check", help="check a recorded history (contract history-v1)",
                       description="Check a history: exit 0 valid, 1 invalid, 2 unknown or unusable input.")
    c.add_argument("path", metavar="PATH", help="a run directory holding history.jsonl, or a history file")
    c.add_argument("more", nargs="*", metavar="INPUT", help="more inputs of --from's format")
    c.add_argument("--from", dest="from_format", choices=importers.names(), metavar="FORMAT",
                   help=f"PATH (and INPUTs) are another tool's history: {', '.join(importers.names())}; imported "
                        "into history.jsonl in --out (default: PATH's directory), then checked")
    c.add_argument("--guarantee", "-g", choices=GUARANTEES, default="exactly-once",
                   help="the guarantee the system claims (default: exactly-once)")
    c.add_argument("--order", action="store_true",
                   help="the system also claims that each producer's messages arrive in the order they were sent: "
                        "reordered deliveries then fail it (they are reported either way)")
    c.add_argument("--out", "-o", metavar="DIR", help="where to write results (default: the history's directory)")
    c.add_argument("--completions-only", action="store_true",
                   help="the history records completions only: give each completion without an invoke one at its "
                        "own time (written beside the results as history.with-invokes.jsonl)")
    c.add_argument("--explain-limit", type=int, default=1000, metavar="N",
                   help="explain at most N messages of each anomaly class (default 1000)")
    c.add_argument("--quiet", "-q", action="store_true", help="no timing line and no notes")
    c.set_defaults(func=cmd_check)

    im = sub.add_parser("import", help="another tool's history as a history-v1 file",
                        description="Convert histories recorded by other tools: "
                                    + "; ".join(f"{n}: {importers.description(n)}" for n in importers.names())
                                    + ". Exit 0, or 2 naming the file and line it cannot read.")
    im.add_argument("format", choices=importers.names(), metavar="FORMAT")
    im.add_argument("inputs", nargs="+", metavar="INPUT")
    im.add_argument("--out", required=True, metavar="FILE", help="the history file to write")
    im.set_defaults(func=cmd_import)

    r = sub.add_parser("run", help=f"a live certification run (no arguments: a short {DEFAULT_TARGET} "
                                   "certification)",
                       description="Start the target's nodes, drive producers and consumers under a seeded fault "
                                   "schedule, heal, drain, check and report. Exit 0 valid, 1 invalid, 2 unknown "
                                   "or error, 130 interrupted.")
    add_option_flags(r, declared())
    r.set_defaults(func=cmd_run)

    k = sub.add_parser("clean", help="remove containers and networks that crashed docker runs left behind",
                       description="Remove every container, network and volume labelled onceproof. Exit 0; with "
                                   "--dry-run, exit 1 when something is found.")
    k.add_argument("--dry-run", "-n", action="store_true", help="list what would be removed")
    k.add_argument("--orphans", action="store_true", help="only objects whose harness process is gone")
    k.set_defaults(func=cmd_clean)

    from harness.compare import add_commands as add_compare_commands
    from harness.cost import add_commands as add_cost_commands
    from harness.images import add_commands as add_image_commands
    from harness.setup import add_commands
    from harness.suites.cli import add_commands as add_suite_commands

    add_commands(sub)
    add_image_commands(sub)
    add_suite_commands(sub)
    add_compare_commands(sub)
    add_cost_commands(sub)
    return p


def version_line() -> str:
    """onceproof's version (the installed package's, from pyproject.toml) and the history contract it reads."""
    from importlib.metadata import PackageNotFoundError, version

    from checkers.suite import CONTRACT

    try:
        v = version("onceproof")
    except PackageNotFoundError:
        v = "unknown (not installed: run harness/bootstrap.sh)"
    return f"onceproof {v} (history contract {CONTRACT})"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
    except PluginError as e:  # a target or workload that does not follow its protocol: named before anything runs
        print(f"onceproof: error: {e}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("onceproof: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
