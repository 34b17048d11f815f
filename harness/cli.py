"""The `onceproof` command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from checkers.delivery import GUARANTEES
from checkers.history import HistoryError, read_history, resolve_history_path
from checkers.suite import check_history

EXIT = {True: 0, False: 1, "unknown": 2}
EXAMPLE = Path(__file__).parent / "examples" / "example-history.jsonl"


def _verdict_word(valid: bool | str) -> str:
    return {True: "VALID", False: "INVALID"}.get(valid, "UNKNOWN")  # type: ignore[call-overload]


def summarize(results: dict) -> str:
    """A few lines for the terminal: the verdict first, then counts and anomalies."""
    d = results["delivery"]
    c = d["counts"]
    lines = [
        f"verdict: {_verdict_word(results['valid'])} ({results['guarantee']} claimed)",
        f"history: {results['history']} ({results['operations']} operations)",
    ]
    lines += [f"  because {r}" for r in results.get("reasons", [])]
    lines.append("sends: attempted {attempted}, acknowledged {acknowledged}, failed {failed}, "
                 "indeterminate {indeterminate} (recovered {recovered}, unresolved {unresolved})".format(**c))
    lines.append("deliveries: delivered {delivered} distinct ids".format(**c))
    anomalies = [f"lost {c['lost']} ({c.get('lost_middle', 0)} in the middle)", f"duplicated {c['duplicated']}",
                 f"unexpected {c['unexpected']}", f"aborted_read {c['aborted_read']}"]
    if d.get("effects_checked"):
        anomalies += [f"lost_effects {c['lost_effects']}", f"duplicated_effects {c['duplicated_effects']}"]
    lines.append("anomalies: " + ", ".join(anomalies))
    holds = d.get("holds", {})
    lines.append("guarantees held: " + (", ".join(g for g in GUARANTEES if holds.get(g)) or "none"))
    log = results.get("log", {})
    if log.get("applicable"):
        lc = log.get("counts", {})
        lines.append("log: " + ", ".join(f"{k} {v}" for k, v in lc.items()))
    return "\n".join(lines)


def cmd_check(args: argparse.Namespace) -> int:
    from harness.report import write_reports

    t0 = time.perf_counter()
    try:
        path = resolve_history_path(args.path)
        h = read_history(path)
    except HistoryError as e:
        print(f"onceproof check: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"onceproof check: error: {args.path}: {e.strerror or e}", file=sys.stderr)
        return 2
    for w in h.warnings:
        print(f"onceproof check: warning: {w}", file=sys.stderr)
    results = check_history(h, args.guarantee, explain_limit=args.explain_limit)
    out = Path(args.out) if args.out else path.parent
    paths = write_reports(results, out)
    print(summarize(results))
    print(f"results: {paths['results']}")
    print(f"report: {paths['report']}")
    if not args.quiet:
        print(f"checked in {time.perf_counter() - t0:.2f}s", file=sys.stderr)
    return EXIT[results["valid"]]


def cmd_run(args: argparse.Namespace) -> int:
    """Until live runs exist: check the bundled example history into the store."""
    out = Path(args.store) / "example" / time.strftime("%Y%m%dT%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    (out / "history.jsonl").write_bytes(EXAMPLE.read_bytes())
    latest = Path(args.store) / "example" / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(out.name)
    ns = argparse.Namespace(path=str(out), guarantee="exactly-once", out=None, explain_limit=1000, quiet=True)
    return cmd_check(ns)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="onceproof", description="Certify message-delivery guarantees.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("check", help="check a recorded history (contract history-v1)",
                       description="Check a history: exit 0 valid, 1 invalid, 2 unknown or unusable input.")
    c.add_argument("path", metavar="PATH", help="a run directory holding history.jsonl, or a history file")
    c.add_argument("--guarantee", "-g", choices=GUARANTEES, default="exactly-once",
                   help="the guarantee the system claims (default: exactly-once)")
    c.add_argument("--out", "-o", metavar="DIR", help="where to write results (default: the history's directory)")
    c.add_argument("--explain-limit", type=int, default=1000, metavar="N",
                   help="explain at most N messages of each anomaly class (default 1000)")
    c.add_argument("--quiet", "-q", action="store_true", help="no timing line")
    c.set_defaults(func=cmd_check)

    r = sub.add_parser("run", help="run a certification (for now: checks the bundled example history)")
    r.add_argument("--store", default="store", metavar="DIR", help="where runs are written (default: ./store)")
    r.set_defaults(func=cmd_run)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
