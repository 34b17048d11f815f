"""`onceproof suite run|merge|list`."""

from __future__ import annotations

import argparse
import fnmatch
import sys
from pathlib import Path


def cmd_suite_run(args: argparse.Namespace) -> int:
    from harness.suites.run import run_suite
    from harness.suites.spec import SuiteError, load_suite, parse_seeds, parse_shard, shard, with_seeds

    try:
        suite = load_suite(args.file)
        if args.seeds:
            suite = with_seeds(suite, parse_seeds(args.seeds))
        items = suite.items()
        shard_text = None
        if args.only:
            patterns = [p for p in args.only.split(",") if p]
            items = [it for it in items if any(fnmatch.fnmatchcase(it.case.name, p) for p in patterns)]
            if not items:
                raise SuiteError(f"--only {args.only!r} matches no case of {args.file}; its cases: "
                                 f"{', '.join(c.name for c in suite.cases)}")
        if args.shard:
            k, n = parse_shard(args.shard)
            mine = {it.index for it in shard(suite.items(), k, n)}
            items = [it for it in items if it.index in mine]
            shard_text = f"{k}/{n}"
        local = sorted({it.case.target for it in items if it.case.options.get("runtime", "local") == "local"})
        missing = _missing(local)
        if missing:
            raise SuiteError(f"{args.file}: its cases need what is not installed: " + "; ".join(
                f"{r.name} ({r.detail}; fix: {r.fix})" for r in missing))
    except SuiteError as e:
        print(f"onceproof suite: error: {e}", file=sys.stderr)
        return 2
    default = Path("store") / "suites" / suite.name
    if shard_text:  # shards of one suite on one machine must not overwrite each other's results
        default = default / f"shard-{shard_text.replace('/', '-of-')}"
    out = Path(args.store or default)
    print(f"suite {suite.name}: {len(items)} run{'s' if len(items) != 1 else ''} of {len(suite.items())}"
          + (f" (shard {shard_text})" if shard_text else "") + f"; results in {out}", flush=True)
    from harness.suites.results import summary

    doc, interrupted = run_suite(suite, items, out, shard=shard_text)
    s = summary(doc)
    print(f"suite {suite.name}: {s['met']} of {s['runs']} runs as expected" + (
        f", {s['unmet']} not: " + ", ".join(f"{r['case']}[seed {r['seed']}]" for r in doc["runs"] if not r["met"])
        if s["unmet"] else ""))
    print(f"results: {out / 'suite.json'}\njunit: {out / 'junit.xml'}\npage: {out / 'suite.html'}")
    if interrupted:
        print("onceproof suite: interrupted; the finished runs are kept in the results", file=sys.stderr)
        return 130
    return 0 if s["unmet"] == 0 else 1


def _missing(names: list[str]) -> list:
    """What the local runs of these targets need and this machine lacks (found before the first run starts,
    not after an hour of earlier cases)."""
    from harness.setup import requirements

    return [r for r in requirements(names) if not r.present] if names else []


def cmd_suite_list(args: argparse.Namespace) -> int:
    """Validate a suite file and list its runs (and which shard each falls in)."""
    from harness.suites.spec import SuiteError, load_suite, parse_shard

    try:
        suite = load_suite(args.file)
        n = parse_shard(f"1/{args.shards}")[1] if args.shards else 0
    except SuiteError as e:
        print(f"onceproof suite: error: {e}", file=sys.stderr)
        return 2
    for it in suite.items():
        c = it.case
        shard = f"shard {it.index % n + 1}/{n}  " if n else ""
        what = (f"cost of {', '.join(c.profiles)}" if c.kind == "cost"
                else f"{c.profile} under {', '.join(c.faults) or 'no faults'}")
        print(f"{shard}{it.key:<50} {c.target} {what}; expect {c.expect}")
    return 0


def cmd_suite_merge(args: argparse.Namespace) -> int:
    from harness.suites.results import MergeError, merge, summary, write_all

    out = Path(args.out)
    try:
        doc = merge([Path(d) for d in args.dirs], out)
    except MergeError as e:
        print(f"onceproof suite merge: error: {e}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    write_all(doc, out)
    s = summary(doc)
    print(f"suite {doc.get('suite')}: merged {len(args.dirs)} results; {s['met']} of {s['runs']} runs as expected"
          + (f"; {s['missing']} missing: {', '.join(doc['missing'])}" if s["missing"] else ""))
    print(f"results: {out / 'suite.json'}\njunit: {out / 'junit.xml'}\npage: {out / 'suite.html'}")
    return 0 if not s["unmet"] and not s["missing"] else 1


def add_commands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("suite", help="certification suites: many cases with expected answers, one exit code",
                       description="Run, list or merge certification suites (TOML files; see suites/).")
    ss = s.add_subparsers(dest="suite_command", metavar="SUBCOMMAND", required=True)
    r = ss.add_parser("run", help="run a suite's cases one after another",
                      description="Run every case and seed of FILE. Writes suite.json, junit.xml and suite.html "
                                  "to --store. Exit 0 when every expectation was met, 1 when one was not, 2 on "
                                  "unusable input, 130 interrupted.")
    r.add_argument("file", metavar="FILE")
    r.add_argument("--store", metavar="DIR", help="where results and runs go (default: store/suites/<suite>)")
    r.add_argument("--shard", metavar="K/N", help="run only shard K of N (every N-th run; merge with suite merge)")
    r.add_argument("--only", metavar="PATTERN", help="only cases whose name matches (glob; comma-separated)")
    r.add_argument("--seeds", metavar="LIST", help="run every case at these seeds instead of its own (1-10, 1,2,5)")
    r.set_defaults(func=cmd_suite_run)
    ls = ss.add_parser("list", help="check a suite file and list its runs", description="Exit 0, or 2 with the "
                       "file, line and key of the first mistake.")
    ls.add_argument("file", metavar="FILE")
    ls.add_argument("--shards", type=int, metavar="N", help="also show which of N shards runs each")
    ls.set_defaults(func=cmd_suite_list)
    m = ss.add_parser("merge", help="join shards' results into one",
                      description="Merge the suite.json of shards of one suite. Exit 0 when every run is present "
                                  "and as expected, 1 otherwise, 2 on unusable input.")
    m.add_argument("dirs", nargs="+", metavar="DIR")
    m.add_argument("--out", required=True, metavar="DIR")
    m.set_defaults(func=cmd_suite_merge)
