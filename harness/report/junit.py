"""junit.xml: one <testsuite name="onceproof"> with a <testcase> per checker, for CI dashboards.

- delivery: fails (``<failure>``) when the claimed guarantee is violated, errors
  (``<error>``) when the verdict is unknown;
- log: fails on log violations, is skipped when the history records no
  partitions/offsets;
- idempotency (histories of API requests only): fails when a key reused with another payload got a 2xx and
  exactly-once is claimed;
- perf: always passes; its summary goes to ``<system-out>``.

A checker missing from the results gets an ``<error>`` when the overall verdict
is unknown (so that an unusable history is never green) and is skipped
otherwise. Text from the history is stripped of characters XML 1.0 cannot hold;
xml.etree does the escaping.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
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

    suite = ET.Element("testsuite", {
        "name": "onceproof",
        "tests": str(len(cases)),
        "failures": str(sum(1 for _, c in cases if c[0] == "failure")),
        "errors": str(sum(1 for _, c in cases if c[0] == "error")),
        "skipped": str(sum(1 for _, c in cases if c[0] == "skipped")),
        "time": "0",
    })
    props = ET.SubElement(suite, "properties")
    for k in ("guarantee", "contract", "history", "operations"):
        if r.get(k) is not None:
            ET.SubElement(props, "property", {"name": k, "value": _x(r[k])})
    ET.SubElement(props, "property", {"name": "verdict", "value": verdict_word(overall)})
    for name, (status, msg, details, out) in cases:
        tc = ET.SubElement(suite, "testcase", {"classname": f"onceproof.{name}", "name": _x(f"{name} ({g})"),
                                               "time": "0"})
        if status in ("failure", "error", "skipped"):
            el = ET.SubElement(tc, status, {"message": _x(msg or status)})
            if status != "skipped":
                el.set("type", "violation" if status == "failure" else "unknown")
            if details:
                el.text = _x(details)
        if out:
            ET.SubElement(tc, "system-out").text = _x(out)
    root = ET.Element("testsuites", {"name": "onceproof", "tests": suite.get("tests"),
                                     "failures": suite.get("failures"), "errors": suite.get("errors")})
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
