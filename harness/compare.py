"""The cross-system comparison: runs of any targets, profiles and faults as one matrix (system/profile
rows, fault columns), each cell the verdict and anomaly counts of each seed with a link to its report.

Also the heart of a suite's suite.html. Runs come from run directories (results.json), suites
(suite.json) or store folders (every run below them). The pages are harness/report/templates' compare.html
(the matrix) and cost.html (the cost tables); this module prepares what they show."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checkers.vocabulary import counts_of, verdict_name
from harness.report.pages import page

SHOWN = ("lost", "duplicated", "duplicated_effects")  # the counts a cell shows
ABBREV = {"lost": "lost", "duplicated": "dup", "duplicated_effects": "dup fx", "lost_effects": "lost fx",
          "key_reuse_accepted": "reuse 2xx"}


class CompareError(Exception):
    """A path that holds no run: the message names it."""


@dataclass
class Entry:
    """One run as the comparison sees it. `verdict` is valid, invalid, unknown or error (the run failed)."""

    target: str
    profile: str
    faults: tuple[str, ...]
    seed: int
    verdict: str
    counts: dict[str, Any] = field(default_factory=dict)
    guarantee: str = ""
    time: float | None = None
    report: Path | None = None
    schedule: str | None = None  # a digest of the fault windows' kinds and times; equal digests, same schedule
    case: str | None = None  # from a suite: its case and expectation
    expect: str | None = None
    met: bool | None = None
    unmet: list[str] = field(default_factory=list)
    error: str | None = None
    cost: dict[str, Any] | None = None

    @property
    def row(self) -> tuple[str, str]:
        return (self.target, self.profile)

    @property
    def column(self) -> str:
        return ", ".join(self.faults) or "no faults"


def schedule_digest(run_dir: Path) -> str | None:
    """Which fault schedule a run followed: the windows' faults, starts and lengths (the nodes hit are the
    target's own and may differ by system)."""
    try:
        windows = json.loads((run_dir / "schedule.json").read_text())["windows"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    key = json.dumps([[w.get("fault"), w.get("start"), w.get("duration")] for w in windows])
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def entry_from_results(results: dict[str, Any], run_dir: Path) -> Entry:
    cfg = (results.get("run") or {}).get("config") or {}
    return Entry(
        target=str(cfg.get("system") or cfg.get("target", "?")), profile=str(cfg.get("profile", "?")),
        faults=tuple(cfg.get("faults") or ()), seed=int(cfg.get("seed", 0)),
        verdict=verdict_name(results.get("valid")),
        counts=counts_of(results), guarantee=str(results.get("guarantee", "")),
        time=cfg.get("time"), report=run_dir / "report.html" if (run_dir / "report.html").exists() else None,
        schedule=schedule_digest(run_dir))


def entries_from_suite(doc: dict[str, Any], base: Path) -> list[Entry]:
    """The entries of a suite.json at `base` (its run directories are relative to it)."""
    out = []
    for o in doc.get("runs", []):
        if o.get("kind") == "cost":
            continue  # a cost case is a table below the matrix (suite_costs), not a cell
        run_dir = base / o["run_dir"] if o.get("run_dir") else None
        e = Entry(target=o.get("system") or o["target"], profile=o["profile"], faults=tuple(o.get("faults") or ()),
                  seed=o["seed"],
                  verdict=o["verdict"], counts=o.get("counts") or {}, guarantee=o.get("guarantee", ""),
                  time=(o.get("options") or {}).get("time"), case=o.get("case"), expect=o.get("expect_text"),
                  met=o.get("met"), unmet=list(o.get("unmet") or []), error=o.get("error"), cost=o.get("cost"))
        if run_dir is not None:
            e.report = run_dir / "report.html" if (run_dir / "report.html").exists() else None
            e.schedule = schedule_digest(run_dir)
        out.append(e)
    return out


def collect(paths: list[str | Path]) -> list[Entry]:
    """Every run under `paths`: a run directory, a suite directory (or its suite.json), a store folder."""
    entries: list[Entry] = []
    seen: set[Path] = set()
    for p in map(Path, paths):
        found = 0
        if p.is_file() and p.name in ("suite.json", "results.json"):
            p = p.parent
        if not p.exists():
            raise CompareError(f"{p}: no such file or directory")
        if (p / "suite.json").is_file():
            try:
                doc = json.loads((p / "suite.json").read_text())
            except ValueError as e:
                raise CompareError(f"{p / 'suite.json'}: not JSON: {e}") from e
            dirs = [(p / o["run_dir"]).resolve() if o.get("run_dir") else None for o in doc.get("runs", [])
                    if o.get("kind") != "cost"]
            got = [e for e, d in zip(entries_from_suite(doc, p), dirs, strict=True) if d is None or d not in seen]
            entries += got
            found = len(doc.get("runs", []))
            seen.update(d for d in dirs if d is not None)
        else:
            for res in sorted(p.rglob("results.json")) if p.is_dir() else []:
                run_dir = res.parent
                if any(part == "latest" for part in run_dir.relative_to(p).parts) or run_dir.resolve() in seen:
                    continue  # `latest` links point at runs listed under their own names
                try:
                    results = json.loads(res.read_text())
                except ValueError as e:
                    raise CompareError(f"{res}: not JSON: {e}") from e
                if not isinstance(results, dict) or "run" not in results:
                    continue  # a checked history, not a run: no target, profile or faults to place it by
                seen.add(run_dir.resolve())
                entries.append(entry_from_results(results, run_dir))
                found += 1
        if not found:
            raise CompareError(f"{p}: holds no run (no results.json of an `onceproof run`, no suite.json)")
    return entries


def suite_costs(doc: dict[str, Any], base: Path) -> list[dict[str, Any]]:
    """The cost.json of each cost case of a suite document at `base`."""
    out = []
    for o in doc.get("runs", []):
        if o.get("kind") == "cost" and o.get("run_dir"):
            out += collect_costs([base / o["run_dir"] / "cost.json"])
    return out


def collect_costs(paths: list[str | Path]) -> list[dict[str, Any]]:
    """Every cost.json (`onceproof cost`) under `paths` or named by a suite there, with where it was found."""
    docs: list[dict[str, Any]] = []
    for p in map(Path, paths):
        if (p / "suite.json").is_file():
            with contextlib.suppress(ValueError):
                docs += suite_costs(json.loads((p / "suite.json").read_text()), p)
        files = [p] if p.is_file() and p.name == "cost.json" else sorted(p.rglob("cost.json")) if p.is_dir() else []
        for f in files:
            try:
                doc = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict) and "profiles" in doc and str(f.resolve()) not in {d["path"] for d in docs}:
                docs.append({**doc, "path": str(f.resolve())})
    return docs


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "—"
    return f"{v:,.0f}{unit}" if isinstance(v, float) and v >= 100 else f"{v:,.2f}{unit}" if isinstance(v, float) \
        else f"{v}{unit}"


def _cost_tables(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What templates/cost.html shows of each cost.json: per target, each profile's throughput and latencies
    (with ratios to the cheapest) and its native tool's."""
    from harness.cost import native_cells  # here: harness.cost brings the whole run machinery along

    tables = []
    for d in docs:
        head = (f"{d['target']}: {d['producers']} producers × {d['in_flight']} in flight, {d['consumers']} consumers, "
                f"{d['time']:.0f} s per run at {d['rate']:.0f} msg/s offered; cheapest: {d.get('cheapest') or '—'}")
        rows = []
        for r in d["profiles"]:
            native = native_cells(r.get("native"))
            figures = ["", "", ""] if native.figures is None else [
                _fmt(native.figures[0]), _fmt(native.figures[1], " ms"), _fmt(native.figures[2], " ms")]
            rows.append({"profile": r["profile"], "native": native, "native_figures": figures,
                         "cells": [r["guarantee"], _fmt(r["acked_per_s"]), _fmt(r.get("sustainable_rate")),
                                   _fmt(r.get("throughput_ratio"), "×"), _fmt(r["send_p50_ms"], " ms"),
                                   _fmt(r["send_p99_ms"], " ms"), _fmt(r.get("send_p50_ratio"), "×"),
                                   _fmt(r["e2e_p50_ms"], " ms"), _fmt(r["e2e_p99_ms"], " ms"),
                                   _fmt(r.get("e2e_steady_p50_ms"), " ms"), _fmt(r.get("e2e_p50_ratio"), "×")],
                         "why": "" if r["kept_up"] else "did not keep pace: " + r.get("why_not", "")})
        tables.append({"head": head, "rows": rows})
    return tables


def cost_html(docs: list[dict[str, Any]]) -> str:
    """The cost tables alone (the comparison page shows them below its matrix): per target, each profile's
    throughput and latencies as ratios to the cheapest."""
    return page("cost.html", costs=_cost_tables(docs))


# --- the matrix ---------------------------------------------------------------------------------------


def matrix(entries: list[Entry]) -> tuple[list[tuple[str, str]], list[str], dict[tuple, list[Entry]]]:
    """Rows (target, profile) and columns (fault sets) in order of first appearance, grouped by target."""
    targets_order: list[str] = list(dict.fromkeys(e.target for e in entries))
    rows = sorted(dict.fromkeys(e.row for e in entries), key=lambda r: targets_order.index(r[0]))
    cols = list(dict.fromkeys(e.column for e in entries))
    cells: dict[tuple, list[Entry]] = {}
    for e in entries:
        cells.setdefault((e.row, e.column), []).append(e)
    for v in cells.values():
        v.sort(key=lambda e: e.seed)
    return rows, cols, cells


def _counts_text(e: Entry) -> str:
    # lost effects and accepted key reuses only when any
    shown = (*SHOWN, *(k for k in ("lost_effects", "key_reuse_accepted") if e.counts.get(k)))
    return " · ".join(f"{ABBREV[k]} {e.counts.get(k, 0):,}" for k in shown)


def text_matrix(entries: list[Entry]) -> str:
    """The matrix for a terminal: one line per cell and seed."""
    rows, cols, cells = matrix(entries)
    lines = []
    for row in rows:
        for col in cols:
            for e in cells.get((row, col), []):
                met = "" if e.met is None else (" (as expected)" if e.met else " (NOT as expected)")
                lines.append(f"{row[0]:<8} {row[1]:<30} {col:<40} seed {e.seed:<4} "
                             f"{e.verdict.upper():<8} "
                             f"{_counts_text(e) if e.counts else e.error or ''}{met}")
    return "\n".join(lines)


def seed_notes(entries: list[Entry]) -> list[str]:
    """Which seeds each column holds and whether the rows ran the same fault schedule at each seed."""
    _, cols, _ = matrix(entries)
    notes = []
    for col in cols:
        in_col = [e for e in entries if e.column == col]
        parts = []
        for seed in sorted({e.seed for e in in_col}):
            at = [e for e in in_col if e.seed == seed]
            digests = {e.schedule for e in at if e.schedule}
            rows = len({e.row for e in at})
            if col == "no faults":
                parts.append(f"seed {seed} ({rows} row{'s' if rows != 1 else ''})")
            elif len(digests) == 1 and rows > 1:
                parts.append(f"seed {seed}: the same schedule in all {rows} rows")
            elif len(digests) > 1:
                parts.append(f"seed {seed}: {len(digests)} different schedules over {rows} rows (different "
                             "durations or fault sets)")
            else:
                parts.append(f"seed {seed} ({rows} row{'s' if rows != 1 else ''})")
        notes.append(f"{col}: " + "; ".join(parts))
    return notes


def _run(e: Entry, out_dir: Path) -> dict[str, Any]:
    """One run in a cell of the matrix: verdict, seed, counts (or the harness's error), its report, whether
    its expectation was met."""
    return {"verdict": e.verdict, "seed": e.seed, "body": _counts_text(e) if e.counts else e.error or "",
            "href": os.path.relpath(e.report, out_dir) if e.report is not None else None,
            "met": e.met, "expect": e.expect, "unmet": "; ".join(e.unmet)}


def page_context(entries: list[Entry], out_dir: Path, title: str = "onceproof comparison",
                 costs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What templates/compare.html shows (suite.html too, which extends it); links are relative to `out_dir`."""
    rows, cols, cells = matrix(entries)
    body = []
    for row in rows:
        guarantee = next((e.guarantee for e in entries if e.row == row and e.guarantee), "")
        body.append({"target": row[0], "profile": row[1], "guarantee": guarantee,
                     "cells": [[_run(e, out_dir) for e in cells.get((row, col), [])] for col in cols]})
    n_targets = len({e.target for e in entries})
    sub = (f"{len(entries)} run{'s' if len(entries) != 1 else ''} of {n_targets} system"
           f"{'s' if n_targets != 1 else ''}; each cell: verdict, seed, lost · duplicated · duplicated effects")
    return {"title": title, "sub": sub, "columns": cols, "rows": body, "notes": seed_notes(entries),
            "costs": _cost_tables(costs or [])}


def render(entries: list[Entry], out_dir: Path, title: str = "onceproof comparison",
           costs: list[dict[str, Any]] | None = None) -> str:
    """The comparison page; links are relative to `out_dir`, where the page is written."""
    return page("compare.html", **page_context(entries, out_dir, title, costs))


# --- `onceproof compare` ---------------------------------------------------------------------------------------


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.files import atomic_write

    try:
        entries = collect(args.paths)
    except CompareError as e:
        print(f"onceproof compare: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "compare.html", render(entries, out, costs=collect_costs(args.paths)))
    print(text_matrix(entries))
    print(f"page: {out / 'compare.html'}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("compare", help="runs of several systems side by side (one HTML matrix)",
                       description="Place runs (run directories, suite results or store folders) in one matrix: "
                                   "system/profile rows, fault columns, a link to each run's report.")
    c.add_argument("paths", nargs="+", metavar="PATH")
    c.add_argument("--out", default="compare", metavar="DIR", help="where compare.html goes (default: ./compare)")
    c.set_defaults(func=cmd_compare)
