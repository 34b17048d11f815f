"""junit.xml, for CI dashboards: a run's (`render`) and a suite's (`render_suite`), built alike.

A run's: one <testsuite name="onceproof"> with a <testcase> per checker:

- delivery: fails (``<failure>``) when the claimed guarantee is violated, errors
  (``<error>``) when the verdict is unknown;
- log: fails on log violations, is skipped when the history records no
  partitions/offsets;
- idempotency (histories of API requests only): fails when a key reused with another payload got a 2xx and
  exactly-once is claimed;
- perf: always passes; its summary goes to ``<system-out>``.

A checker missing from the results gets an ``<error>`` when the overall verdict
is unknown (so that an unusable history is never green) and is skipped
otherwise.

A suite's: one <testcase> per case and seed, a ``<failure>`` when its expectation
was not met, an ``<error>`` when the harness could not run it (or no shard holds
it), with the counts and the report's path.

Text from histories and results is stripped of characters XML 1.0 cannot hold;
xml.etree does the escaping.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checkers.vocabulary import (
    ANOMALIES,
    IDEMPOTENCY_ANOMALIES,
    IDEMPOTENCY_COUNTS,
    LOG_FAILING,
    LOG_KINDS,
    failing_anomalies,
    verdict_word,
)

MAX_IDS = 50  # ids listed per anomaly class in a failure's details
MAX_OUTPUT_CHARS = 4000  # a suite case's <system-out>
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _x(s: Any) -> str:
    """Text XML 1.0 can hold."""
    return _INVALID_XML.sub("\ufffd", s if isinstance(s, str) else str(s))


def _ids(v: Any) -> str:
    items = [f"{k} (x{n})" for k, n in v.items()] if isinstance(v, dict) else [str(i) for i in v or []]
    more = f", ... ({len(items)} in all)" if len(items) > MAX_IDS else ""
    return ", ".join(items[:MAX_IDS]) + more


def _delivery_case(d: dict, guarantee: str, reasons: list) -> tuple[str, str | None, str, str]:
    """(status pass/failure/error, message, details, system-out) for the delivery checker."""
    c = d.get("counts") or {}
    summary = ", ".join(f"{k} {c[k]}" for k in ("attempted", "acknowledged", "delivered") if k in c)
    valid = d.get("valid")
    if valid is True:
        return "pass", None, "", summary
    if valid is False:
        fx = bool(d.get("effects_checked"))
        failing = failing_anomalies(guarantee, fx)
        kinds = [k for k in ANOMALIES if c.get(k) and k in failing]
        others = [k for k in ANOMALIES if c.get(k) and k not in failing]
        msg = f"{guarantee} violated: " + (", ".join(f"{k} {c[k]}" for k in kinds) or "see details")
        if c.get("lost_middle") and ("lost" in kinds or "lost_effects" in kinds):
            msg += f" ({c['lost_middle']} lost in the middle)"
        lines = [msg, summary]
        for k in kinds:
            lines.append(f"{k}: {_ids(d.get(k))}")
        if others:
            lines.append("also seen, not failing " + guarantee + ": "
                         + ", ".join(f"{k} {c[k]}" for k in others))
        if d.get("lost_middle"):
            lines.append(f"lost in the middle: {_ids(d['lost_middle'])}")
        holds = d.get("holds") or {}
        if holds:
            lines.append("guarantees held: " + (", ".join(g for g, h in holds.items() if h) or "none"))
        return "failure", msg, "\n".join(lines), summary
    reason = d.get("reason") or "; ".join(str(r) for r in reasons) or "the history could not support a verdict"
    return "error", f"verdict unknown: {reason}", reason, summary


def _log_case(log: dict, guarantee: str) -> tuple[str, str | None, str, str]:
    if not log.get("applicable"):
        return "skipped", "not applicable: no partitions/offsets recorded", "", ""
    c = log.get("counts") or {}
    summary = ", ".join(f"{k} {c.get(k, 0)}" for k in LOG_KINDS)
    valid = log.get("valid")
    if valid is True:
        return "pass", None, "", summary
    if valid is False:
        kinds = [k for k in LOG_FAILING if c.get(k)]
        msg = f"log violates {guarantee}: " + (", ".join(f"{k} {c[k]}" for k in kinds) or summary)
        lines = [msg, summary]
        for k in LOG_KINDS:
            for item in (log.get(k) or [])[:MAX_IDS]:
                lines.append(f"{k}: {json.dumps(item, ensure_ascii=False, default=str)}")
        return "failure", msg, "\n".join(lines), summary
    return "error", "log verdict unknown", "", summary


def _idempotency_case(sec: dict, guarantee: str) -> tuple[str, str | None, str, str]:
    """Only for histories of API requests with idempotency keys (the section is applicable)."""
    c = sec.get("counts") or {}
    summary = ", ".join(f"{k} {c.get(k, 0)}" for k in IDEMPOTENCY_COUNTS)
    if sec.get("valid") is not False:
        return "pass", None, "", summary
    kinds = [k for k in IDEMPOTENCY_ANOMALIES if c.get(k)]
    msg = f"{guarantee} violated: " + ", ".join(f"{k} {c[k]}" for k in kinds)
    lines = [msg, summary]
    for k in kinds:
        for item in (sec.get(k) or [])[:MAX_IDS]:
            lines.append(f"{k}: {json.dumps(item, ensure_ascii=False, default=str)}")
    return "failure", msg, "\n".join(lines), summary


def _perf_case(perf: dict) -> tuple[str, str | None, str, str]:
    s = perf.get("summary") or {}
    out = []
    if s:
        rates = s.get("rates") or {}
        out.append(f"duration {s.get('duration_s')} s; rates per second: "
                   + ", ".join(f"{k} {v}" for k, v in rates.items()))
        for name, q in (s.get("send_latency_ms") or {}).items():
            if isinstance(q, dict) and q.get("count"):
                out.append(f"send {name} latency ms: p50 {q.get('p50')} p99 {q.get('p99')} max {q.get('max')}")
        e = s.get("e2e_latency_ms") or {}
        if e.get("count"):
            out.append(f"end-to-end latency ms: p50 {e.get('p50')} p99 {e.get('p99')} max {e.get('max')}")
    return "pass", None, "", "\n".join(out)


@dataclass
class Case:
    """One <testcase>: passed, or a <failure>, <error> or <skipped> with its message and details."""

    classname: str
    name: str
    status: str = "pass"  # pass, failure, error or skipped
    message: str | None = None
    details: str = ""  # the failure's or error's text
    out: str = ""  # <system-out>
    time: str = "0"
    kind: str | None = None  # the failure's or error's type attribute


def _testsuite(name: str, cases: list[Case], time: str = "0") -> ET.Element:
    """A <testsuite> of `cases`, with their counts."""
    suite = ET.Element("testsuite", {
        "name": _x(name),
        "tests": str(len(cases)),
        "failures": str(sum(1 for c in cases if c.status == "failure")),
        "errors": str(sum(1 for c in cases if c.status == "error")),
        "skipped": str(sum(1 for c in cases if c.status == "skipped")),
        "time": time,
    })
    for c in cases:
        tc = ET.SubElement(suite, "testcase", {"classname": _x(c.classname), "name": _x(c.name), "time": c.time})
        if c.status in ("failure", "error", "skipped"):
            el = ET.SubElement(tc, c.status, {"message": _x(c.message or c.status)})
            if c.kind:
                el.set("type", c.kind)
            if c.details:
                el.text = _x(c.details)
        if c.out:
            ET.SubElement(tc, "system-out").text = _x(c.out)
    return suite


def _document(root: ET.Element) -> str:
    """The file's text, indented: people read junit.xml in CI logs too."""
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render(results: dict[str, Any]) -> str:
    """The junit.xml text for a results dict."""
    r = results if isinstance(results, dict) else {}
    g = str(r.get("guarantee", "?"))
    overall = r.get("valid")
    cases: list[tuple[str, tuple[str, str | None, str, str]]] = []
    for name in ("delivery", "log", "perf"):
        sec = r.get(name)
        if isinstance(sec, dict):
            if name == "delivery":
                res = _delivery_case(sec, g, r.get("reasons") or [])
            elif name == "log":
                res = _log_case(sec, g)
            else:
                res = _perf_case(sec)
        elif overall is not True and overall is not False:
            reason = "; ".join(str(x) for x in r.get("reasons") or []) or "no result"
            res = ("error", f"{name} checker did not run: {reason}", reason, "")
        else:
            res = ("skipped", f"{name} checker did not run", "", "")
        cases.append((name, res))
    idem = r.get("idempotency")
    if isinstance(idem, dict) and idem.get("applicable"):
        cases.insert(2, ("idempotency", _idempotency_case(idem, g)))
    kinds = {"failure": "violation", "error": "unknown"}
    suite = _testsuite("onceproof", [Case(f"onceproof.{name}", f"{name} ({g})", *res, kind=kinds.get(res[0]))
                                     for name, res in cases])
    props = ET.Element("properties")
    for k in ("guarantee", "contract", "history", "operations"):
        if r.get(k) is not None:
            ET.SubElement(props, "property", {"name": k, "value": _x(r[k])})
    ET.SubElement(props, "property", {"name": "verdict", "value": verdict_word(overall)})
    suite.insert(0, props)
    root = ET.Element("testsuites", {"name": "onceproof", "tests": suite.get("tests", ""),
                                     "failures": suite.get("failures", ""), "errors": suite.get("errors", "")})
    root.append(suite)
    return _document(root)


def counts_line(c: dict[str, Any]) -> str:
    """A run's delivery counts in one line (a suite case's details, the pytest plug-in's summary)."""
    keys = ("attempted", "acknowledged", "delivered", "lost", "lost_middle", "duplicated", "unexpected",
            "lost_effects", "duplicated_effects")
    return ", ".join(f"{k} {c[k]}" for k in keys if k in c)


def _suite_case(r: dict[str, Any], out: Path) -> Case:
    """A suite run's testcase: a failure when its expectation was not met, an error when the harness could not
    run it; its details (expectation, verdict, counts, reasons, report) also go to <system-out>."""
    report = str(out / r["run_dir"] / "report.html") if r.get("run_dir") else "none (the run did not start)"
    detail = "\n".join([f"expected: {r.get('expect_text')}", f"verdict: {r['verdict']}",
                        f"counts: {counts_line(r.get('counts') or {})}",
                        *[f"reason: {x}" for x in r.get("reasons") or []], f"report: {report}"])
    case = Case(f"onceproof.{r['target']}.{r['profile']}", f"{r['case']}[seed {r['seed']}]",
                details=detail, out=detail[:MAX_OUTPUT_CHARS], time=f"{r.get('duration_s') or 0:.1f}")
    if r.get("verdict") == "error":
        case.status, case.message = "error", f"the harness could not run this case: {r.get('error')}"
    elif not r.get("met"):
        case.status, case.message = "failure", "; ".join(r.get("unmet") or ["expectation not met"])
    return case


def render_suite(doc: dict[str, Any], out: Path) -> str:
    """A suite's junit.xml: one <testcase> per case and seed (run directories are relative to `out`), and an
    <error> for each run no shard's results hold."""
    runs = doc.get("runs", [])
    cases = [_suite_case(r, out) for r in runs]
    cases += [Case("onceproof.missing", m, "error", "no shard's results hold this run") for m in doc.get("missing", [])]
    return _document(_testsuite(f"onceproof suite {doc.get('suite', '')}", cases,
                                f"{sum(r.get('duration_s') or 0 for r in runs):.1f}"))
