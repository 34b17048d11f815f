"""The cross-system comparison: runs of any targets, profiles and faults as one matrix (system/profile
rows, fault columns), each cell the verdict and anomaly counts of each seed with a link to its report.

Also the heart of a suite's suite.html. Runs come from run directories (results.json), suites
(suite.json) or store folders (every run below them)."""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checkers.vocabulary import counts_of, verdict_name

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
        target=str(cfg.get("target", "?")), profile=str(cfg.get("profile", "?")),
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
        e = Entry(target=o["target"], profile=o["profile"], faults=tuple(o.get("faults") or ()), seed=o["seed"],
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


def cost_html(docs: list[dict[str, Any]]) -> str:
    """The cost tables: per target, each profile's throughput and latencies as ratios to the cheapest."""
    if not docs:
        return ""
    parts = ["<h2>The cost of each guarantee</h2><p class=\"n\">Each profile without faults at the same load and "
             "concurrency; ratios against the target's cheapest profile. Warm: end-to-end p50 over the last third "
             "of the load, after the consumers' start-up. A row that did not keep pace measures a backlog, not "
             "the system, and has no ratios.</p>"]
    for d in docs:
        head = (f"{d['target']}: {d['producers']} producers × {d['in_flight']} in flight, {d['consumers']} consumers, "
                f"{d['time']:.0f} s per run at {d['rate']:.0f} msg/s offered; cheapest: {d.get('cheapest') or '—'}")
        rows = "".join(
            f"<tr><th>{_esc(r['profile'])}</th><td>{_esc(r['guarantee'])}</td><td>{_fmt(r['acked_per_s'])}</td>"
            f"<td>{_fmt(r.get('sustainable_rate'))}</td><td>{_fmt(r.get('throughput_ratio'), '×')}</td>"
            f"<td>{_fmt(r['send_p50_ms'], ' ms')}</td><td>{_fmt(r['send_p99_ms'], ' ms')}</td>"
            f"<td>{_fmt(r.get('send_p50_ratio'), '×')}</td><td>{_fmt(r['e2e_p50_ms'], ' ms')}</td>"
            f"<td>{_fmt(r['e2e_p99_ms'], ' ms')}</td><td>{_fmt(r.get('e2e_steady_p50_ms'), ' ms')}</td>"
            f"<td>{_fmt(r.get('e2e_p50_ratio'), '×')}</td>{_native_cells(r.get('native'))}"
            f"<td>{'' if r['kept_up'] else _esc('did not keep pace: ' + r.get('why_not', ''))}</td></tr>"
            for r in d["profiles"])
        parts.append(f'<h3>{_esc(head)}</h3><table class="matrix cost"><thead><tr><th>profile</th><th>claims</th>'
                     "<th>acked/s</th><th>sustainable/s</th><th>throughput ×</th><th>send p50</th><th>send p99</th>"
                     "<th>send ×</th><th>end-to-end p50</th><th>p99</th><th>warm p50</th><th>warm ×</th>"
                     "<th>system's own tool</th><th>its msg/s</th><th>its p50</th><th>its p99</th><th></th>"
                     "</tr></thead>"
                     f"<tbody>{rows}</tbody></table>")
    return "".join(parts)


def _native_cells(n: dict[str, Any] | None) -> str:
    """A cost row's native tool: its name (the exact command and how it ran on hover) and figures, or why not."""
    if not n:
        return "<td></td>" * 4
    if "tool" not in n:
        return f'<td title="{_esc(n.get("skipped") or n.get("error") or "")}">none</td>' + "<td></td>" * 3
    how = f"{'paced at the offered rate' if n.get('paced') else 'unpaced'}; {n.get('note', '')}: {n.get('command', '')}"
    return (f'<td title="{_esc(how)}">{_esc(n["tool"])}{"" if n.get("paced") else " (unpaced)"}</td>'
            f"<td>{_fmt(n.get('acked_per_s'))}</td><td>{_fmt(n.get('send_p50_ms'), ' ms')}</td>"
            f"<td>{_fmt(n.get('send_p99_ms'), ' ms')}</td>")


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


def _esc(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
main{max-width:1400px;margin:auto;padding:20px}
h1{font-size:20px;margin:0 0 4px} .sub{color:#5b6475;margin-bottom:14px}
table.matrix{border-collapse:collapse;background:#fff;box-shadow:0 1px 2px #0002}
.matrix th,.matrix td{border:1px solid #d9dde5;padding:6px 8px;vertical-align:top;text-align:left}
.matrix th{background:#eef1f6;font-weight:600} .matrix th.row{white-space:nowrap}
.run{display:block;margin:2px 0 4px} .matrix td{min-width:170px;max-width:330px}
.v{display:inline-block;min-width:62px;font-weight:700;border-radius:3px;padding:0 4px;text-align:center}
.v-valid{background:#d8f3dc;color:#1b5e20}.v-invalid{background:#fde2e1;color:#a4161a}
.v-unknown{background:#fff3bf;color:#7a5c00}.v-error{background:#e9ecef;color:#495057}
.miss{outline:2px solid #d00;outline-offset:1px} .ok{color:#1b5e20} .bad{color:#a4161a;font-weight:700}
.n{color:#5b6475} ul.notes{color:#3c4456;padding-left:18px} .empty{color:#aab}
.summary{margin:10px 0 16px;font-size:15px}
"""


def _cell_html(e: Entry, out_dir: Path) -> str:
    link = ""
    if e.report is not None:
        href = os.path.relpath(e.report, out_dir)
        link = f' <a href="{_esc(href)}">report</a>'
    word = e.verdict.upper()  # VALID, INVALID, UNKNOWN or ERROR
    exp = ""
    if e.met is not None:
        exp = (f' <span class="ok" title="expected: {_esc(e.expect)}">✓</span>' if e.met
               else f' <span class="bad" title="{_esc("; ".join(e.unmet))}">✗ expected {_esc(e.expect)}</span>')
    body = _esc(_counts_text(e)) if e.counts else _esc(e.error or "")
    cls = "run miss" if e.met is False else "run"
    return (f'<span class="{cls}" data-seed="{e.seed}"><span class="v v-{_esc(e.verdict)}">{word}</span> '
            f'<span class="n">seed {e.seed}</span> {body}{link}{exp}</span>')


def render(entries: list[Entry], out_dir: Path, title: str = "onceproof comparison", intro: str = "",
           costs: list[dict[str, Any]] | None = None) -> str:
    """The comparison page; links are relative to `out_dir`, where the page is written."""
    rows, cols, cells = matrix(entries)
    head = "".join(f"<th>{_esc(c)}</th>" for c in cols)
    body = []
    for row in rows:
        guarantee = next((e.guarantee for e in entries if e.row == row and e.guarantee), "")
        tds = []
        for col in cols:
            runs = cells.get((row, col))
            tds.append("<td>" + ("".join(_cell_html(e, out_dir) for e in runs) if runs else '<span class="empty">—'
                                 "</span>") + "</td>")
        claim = f'<br><span class="n">claims {_esc(guarantee)}</span>' if guarantee else ""
        body.append(f'<tr><th class="row">{_esc(row[0])} / {_esc(row[1])}{claim}</th>{"".join(tds)}</tr>')
    notes = "".join(f"<li>{_esc(n)}</li>" for n in seed_notes(entries))
    n_targets = len({e.target for e in entries})
    sub = (f"{len(entries)} run{'s' if len(entries) != 1 else ''} of {n_targets} system"
           f"{'s' if n_targets != 1 else ''}; each cell: verdict, seed, lost · duplicated · duplicated effects")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            f'<title>{_esc(title)}</title>'
            f"<style>{CSS}</style></head><body><main><h1>{_esc(title)}</h1><div class=\"sub\">{_esc(sub)}</div>"
            f"{intro}<table class=\"matrix\"><thead><tr><th>system / profile</th>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>"
            "<h2>Seeds and schedules</h2><p class=\"n\">A seed, a fault set and a duration make a fault schedule; "
            "runs with equal schedules faced the same faults at the same moments (the node hit is each "
            f"system's own).</p><ul class=\"notes\">{notes}</ul>{cost_html(costs or [])}</main></body></html>\n")
