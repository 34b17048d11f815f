"""A suite's results: suite.json (every run with its expectation and whether it was met), junit.xml (one
testcase per case and seed) and suite.html (the comparison matrix), and the merge of shards' results."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from harness.compare import entries_from_suite, page_context, suite_costs
from harness.files import atomic_write
from harness.report import junit, pages
from harness.report.junit import counts_line as counts_line  # where the pytest plug-in finds it

FORMAT = "onceproof-suite-1"


class MergeError(Exception):
    """Shard results that do not belong together, or cannot be read; the message names the file."""


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def summary(doc: dict[str, Any]) -> dict[str, int]:
    runs = doc.get("runs", [])
    return {"runs": len(runs), "met": sum(1 for r in runs if r.get("met")),
            "unmet": sum(1 for r in runs if not r.get("met")), "missing": len(doc.get("missing", []))}


def write_all(doc: dict[str, Any], out: Path) -> dict[str, Path]:
    """suite.json, junit.xml and suite.html in `out` (each replaced whole: never half-written)."""
    doc["summary"] = summary(doc)
    paths = {"json": out / "suite.json", "junit": out / "junit.xml", "html": out / "suite.html"}
    atomic_write(paths["json"], json.dumps(doc, indent=1) + "\n")
    atomic_write(paths["junit"], junit.render_suite(doc, out))
    atomic_write(paths["html"], page(doc, out))
    return paths


def page(doc: dict[str, Any], out: Path) -> str:
    """suite.html: how many runs met their expectation, then the comparison matrix of the runs and any cost tables."""
    s = summary(doc)
    verdict = "every expectation met" if not s["unmet"] and not s["missing"] else (
        f"{s['unmet']} run{'s' if s['unmet'] != 1 else ''} not as expected"
        + (f", {s['missing']} missing" if s["missing"] else ""))
    intro = {"verdict": verdict, "met": s["met"], "runs": s["runs"], "interrupted": bool(doc.get("interrupted")),
             "shard": f" · shard {doc['shard']}" if doc.get("shard") else "",
             "merged": f" · merged from {len(doc['merged_from'])} shards" if doc.get("merged_from") else ""}
    return pages.page("suite.html", suite=intro,
                      **page_context(entries_from_suite(doc, out), out, title=f"onceproof suite {doc.get('suite', '')}",
                                     costs=suite_costs(doc, out)))


def merge(dirs: list[Path], out: Path) -> dict[str, Any]:
    """One suite document from shards' results: the same suite file (by digest), each run once; runs that no
    shard holds are listed as missing. Run directories are made relative to `out`."""
    docs = []
    for d in dirs:
        f = d / "suite.json" if d.is_dir() else d
        try:
            doc = json.loads(f.read_text())
        except OSError as e:
            raise MergeError(f"{f}: {e.strerror or e}") from e
        except ValueError as e:
            raise MergeError(f"{f}: not JSON: {e}") from e
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise MergeError(f"{f}: not a suite result (format {FORMAT!r} expected)")
        docs.append((f.parent, f, doc))
    if not docs:
        raise MergeError("nothing to merge")
    first = docs[0][2]
    for _, f, doc in docs[1:]:
        if doc.get("digest") != first.get("digest"):
            raise MergeError(f"{f}: from another suite file ({doc.get('file')}, digest {doc.get('digest')}) than "
                             f"{docs[0][1]} ({first.get('file')}, digest {first.get('digest')})")
    runs: dict[int, dict[str, Any]] = {}
    for base, f, doc in docs:
        for r in doc.get("runs", []):
            if r["index"] in runs:
                raise MergeError(f"{f}: run {r['case']}[seed {r['seed']}] is also in another shard's results")
            r = dict(r)
            if r.get("run_dir"):
                r["run_dir"] = os.path.relpath((base / r["run_dir"]).resolve(), out.resolve())
            runs[r["index"]] = r
    names = first.get("all_runs") or []
    missing = [names[i] for i in range(len(names)) if i not in runs]
    return {**{k: first[k] for k in ("format", "suite", "file", "digest", "all_runs") if k in first},
            "shard": None, "merged_from": [str(f) for _, f, _ in docs],
            "interrupted": any(doc.get("interrupted") for _, _, doc in docs),
            "runs": [runs[i] for i in sorted(runs)], "missing": missing}
