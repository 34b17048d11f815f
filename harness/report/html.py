"""report.html: one self-contained page for people (no external CSS, JS, fonts or images).

The verdict comes first, then which guarantees hold, the counts, throughput and
latency plots (inline SVG drawn here, fault windows shaded), the fault windows,
the anomalous messages with what explains them, and the log checker's findings.
The page is templates/report.html; this module turns the results into what it
shows. Every string that comes from the history (ids, process names, fault
names, paths) is escaped by the template or, in cells and charts built here,
by `pages.esc`/`pages.markup`. Each section is rendered only from what the
results hold, so a missing or partial section never breaks the page.
"""

from __future__ import annotations

import json
import math
from typing import Any

from markupsafe import Markup

from checkers.vocabulary import (
    ANOMALIES,
    GUARANTEES,
    IDEMPOTENCY_ANOMALIES,
    LOG_FAILING,
    LOG_KINDS,
    holds_of,
    verdict_word,
)
from harness.report.pages import esc, markup, page, text

MAX_ROWS = 300  # rows per table
MAX_ITEMS = 8  # sends / deliveries / faults listed in one cell
LOG_COLUMNS = {
    "inconsistent_offsets": ("partition", "offset", "ids"),
    "duplicates": ("id", "positions"),
    "nonmonotonic": ("process", "partition", "prev_offset", "offset", "line", "within_poll"),
    "skips": ("process", "partition", "prev_offset", "offset", "skipped", "examples", "line", "within_poll"),
}
LOG_TITLES = {
    "inconsistent_offsets": "Inconsistent offsets (one position, several ids)",
    "duplicates": "Log duplicates (one id at several positions)",
    "nonmonotonic": "Nonmonotonic polls (a consumer went backwards; reported, never fails)",
    "skips": "Skipping polls (a consumer jumped over known offsets; reported, never fails)",
}
COLORS = {
    "send_ok": "#1a7f37", "send_fail": "#cf222e", "send_info": "#bf8700", "deliveries": "#0969da",
    "p50": "#0969da", "p95": "#8250df", "p99": "#bc4c00", "max": "#6e7781",
}
FAULT_FILL = "#fa4549"

Cell = Any  # a table cell: markup built by `markup`, or any value the template shows as text (and escapes)
Table = dict[str, Any]  # what the template's `table` macro draws: head [(title, css class)], rows, cls


# --- small helpers -------------------------------------------------------------------------------


def _n(x: Any) -> str:
    """A count or a figure as a page shows it: thousands separated, floats to 3 places without trailing zeros."""
    if isinstance(x, bool) or x is None:
        return "" if x is None else str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return f"{x:,.3f}".rstrip("0").rstrip(".") if math.isfinite(x) else str(x)
    return str(text(x))


class _Clock:
    """Formats history times (ns) as seconds since t0."""

    def __init__(self, t0: int) -> None:
        self.t0 = t0

    def s(self, t: Any) -> str:
        if not isinstance(t, int | float) or isinstance(t, bool):
            return "—"
        return f"{(t - self.t0) / 1e9:.3f}s"


def _table(head: list[tuple[str, str]], rows: list[list[Cell]], cls: str = "") -> Table:
    """A table for the template's `table` macro: `head` = [(title, css class)], each column's cells get its class."""
    return {"head": head, "rows": rows, "cls": cls}


def _cap(shown: int, total: int, what: str, extra: str = "") -> dict[str, str] | None:
    """What the template's `cap_note` says when a table shows only the first `shown` of `total`."""
    if total <= shown:
        return None
    return {"shown": f"{shown:,}", "total": f"{total:,}", "what": what, "extra": extra or "the rest"}


def _items(items: list[Markup], total: int | None = None) -> Markup:
    if not items:
        return Markup('<span class="na">none</span>')
    total = len(items) if total is None else total
    more = markup('<li class="na">… and {} more</li>', f"{total - MAX_ITEMS:,}") if total > MAX_ITEMS else ""
    shown = Markup().join(markup("<li>{}</li>", i) for i in items[:MAX_ITEMS])
    return markup('<ul class="items">{}{}</ul>', shown, more)


def _flag(v: Any, bad: bool) -> Markup:
    """A count, marked bad (red, bold) when `bad`."""
    return markup('<span class="{}">{}</span>', "bad" if bad else "", _n(v))


def _nodes(nodes: Any) -> str:
    if isinstance(nodes, list):
        return ", ".join(_plain(n) for n in nodes)
    return "" if nodes is None else _plain(nodes)


def _fault_label(f: dict) -> str:
    nodes = _nodes(f.get("nodes"))
    label = str(f.get("fault", "?"))
    return f"{label} [{nodes}]" if nodes else label


# --- SVG charts ----------------------------------------------------------------------------------


def _nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _tick_label(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e4:
        return f"{v / 1e3:g}k"
    if a >= 1:
        return f"{v:g}"
    return f"{v:.3g}"


def _chart(title: str, xs: list[float], width_s: float, series: list[dict], faults: list[dict],
           unit: str, log: bool | None = None) -> Markup:
    """A line chart as inline SVG, built here from the series (every text in it through `esc`).
    `series`: [{"label", "color", "ys", "dash"}], ys may hold None."""
    W, H = 1000, 250
    L, R, T, B = 62, 14, 8, 34
    pw, ph = W - L - R, H - T - B
    pts = [y for s in series for y in s["ys"] if isinstance(y, int | float) and math.isfinite(y)]
    xmax = max([(xs[-1] + width_s) if xs else 0.0] + [f["stop_s"] for f in faults] + [1e-9])
    legend = "".join(
        f'<span><i style="background:{s["color"]};{"opacity:.7" if s.get("dash") else ""}"></i>{esc(s["label"])}'
        "</span>" for s in series)
    if faults:
        legend += '<span><i class="fault"></i>fault window</span>'
    head = f'<div class="chart"><div class="title">{esc(title)}</div><div class="legend">{legend}</div>'
    if not pts:
        return Markup(head + '<p class="note">No data.</p></div>')
    pos = [y for y in pts if y > 0]
    ymax = max(pts)
    if log is None:
        log = bool(pos) and min(pos) > 0 and ymax / min(pos) > 200
    if log and pos:
        lo_e, hi_e = math.floor(math.log10(min(pos))), math.ceil(math.log10(ymax))
        if hi_e == lo_e:
            hi_e += 1
        ylo, yhi = 10.0**lo_e, 10.0**hi_e

        def ymap(y: float) -> float:
            y = max(y, ylo)
            return T + ph - (math.log10(y) - lo_e) / (hi_e - lo_e) * ph

        yticks = [10.0**e for e in range(lo_e, hi_e + 1)]
    else:
        log = False
        yhi = ymax * 1.08 if ymax > 0 else 1.0
        yticks = _nice_ticks(0.0, yhi, 5)
        yhi = max(yhi, yticks[-1])

        def ymap(y: float) -> float:
            return T + ph - (y / yhi) * ph

    def xmap(x: float) -> float:
        return L + (x / xmax) * pw

    out = [f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{esc(title)}">',
           f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="#ffffff" stroke="#d1d9e0"/>']
    # fault windows (labels are drawn last, over the lines, staggered so that they do not overlap)
    labels: list[tuple[float, str]] = []
    for f in faults:
        x0, x1 = xmap(max(0.0, f["start_s"])), xmap(min(xmax, f["stop_s"]))
        label = _fault_label(f) + (" (never healed)" if f.get("unhealed") else "")
        tip = (f"{label}: {f['start_s']:.3f}s – {f['stop_s']:.3f}s")
        out.append(f'<g><title>{esc(tip)}</title><rect x="{x0:.1f}" y="{T}" width="{max(1.0, x1 - x0):.1f}" '
                   f'height="{ph}" fill="{FAULT_FILL}" fill-opacity="0.13" stroke="{FAULT_FILL}" '
                   f'stroke-opacity="0.55" stroke-dasharray="4 3"/></g>')
        labels.append((x0, label))
    # grid and axes
    for v in yticks:
        y = ymap(v)
        out.append(f'<line x1="{L}" x2="{L + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaeef2"/>')
        out.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{esc(_tick_label(v))}</text>')
    for v in _nice_ticks(0.0, xmax, 10):
        x = xmap(v)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{T + ph}" y2="{T + ph + 4}" stroke="#8c959f"/>')
        out.append(f'<text x="{x:.1f}" y="{T + ph + 16}" text-anchor="middle">{esc(_tick_label(v))}</text>')
    out.append(f'<text x="{L + pw}" y="{H - 3}" text-anchor="end">seconds since start</text>')
    out.append(f'<text x="12" y="{T + ph / 2:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 12 {T + ph / 2:.1f})">{esc(unit)}{" (log)" if log else ""}</text>')
    # lines: points at bucket centres, broken where there is no data
    half = width_s / 2
    for s in series:
        segs, cur = [], []
        for x, y in zip(xs, s["ys"], strict=False):
            if isinstance(y, int | float) and math.isfinite(y) and not (log and y <= 0):
                cur.append(f"{xmap(x + half):.1f},{ymap(y):.1f}")
            elif log and isinstance(y, int | float) and y <= 0:
                cur.append(f"{xmap(x + half):.1f},{ymap(ylo):.1f}")
            else:
                if cur:
                    segs.append(cur)
                cur = []
        if cur:
            segs.append(cur)
        dash = ' stroke-dasharray="5 3"' if s.get("dash") else ""
        for seg in segs:
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{s["color"]}"/>')
            else:
                out.append(f'<polyline points="{" ".join(seg)}" fill="none" stroke="{s["color"]}" '
                           f'stroke-width="1.6" stroke-linejoin="round"{dash}/>')
    row_end: list[float] = []
    for x0, label in labels:
        row = next((i for i, e in enumerate(row_end) if e < x0), None)
        if row is None:
            row = len(row_end)
            row_end.append(0.0)
        row_end[row] = x0 + 6.6 * len(label) + 8
        if row < 4:
            out.append(f'<text class="flabel" x="{x0 + 3:.1f}" y="{T + 13 + 13 * row}">{esc(label)}</text>')
    out.append("</svg>")
    return Markup(head + "".join(out) + "</div>")


# --- sections: each returns what its part of templates/report.html shows, or None when it has nothing -----------


def _header(r: dict) -> dict[str, Any]:
    meta = []
    cfg = (r.get("run") or {}).get("config") or {}
    if cfg.get("target"):
        meta.append(markup("system {} · profile {}", cfg.get("system") or cfg["target"], cfg.get("profile", "?")))
    if r.get("history") is not None:
        meta.append(markup("history <code>{}</code>", r["history"]))
    if r.get("operations") is not None:
        meta.append(markup("{} operations", _n(r["operations"])))
    if r.get("contract"):
        meta.append(markup("contract {}", r["contract"]))
    if isinstance(r.get("faults"), list):
        meta.append(markup("{} fault window(s)", len(r["faults"])))
    checks = []
    for name in ("delivery", "log", "idempotency"):
        sec = r.get(name)
        if isinstance(sec, dict) and "valid" in sec:
            if name == "idempotency" and not sec.get("applicable", True):
                continue  # a queue's history: nothing to say
            if name == "log" and not sec.get("applicable", True):
                if not (r.get("delivery") or {}).get("api"):  # API requests never have positions
                    checks.append(f"{name}: not applicable")
            else:
                checks.append(f"{name}: {verdict_word(sec.get('valid'))}")
    order = r.get("order")
    if isinstance(order, dict) and (order.get("claimed") or (order.get("counts") or {}).get("reordered")):
        n = (order.get("counts") or {}).get("reordered", 0)
        checks.append(f"order: {verdict_word(order.get('valid'))} ({n} reordered)" if order.get("claimed")
                      else f"order: {n} reordered (reported; no order claimed)")
    unflagged = ((r.get("redelivery") or {}).get("counts") or {}).get("unflagged_redeliveries")
    if unflagged:
        checks.append(f"redelivered flag: {unflagged} repeated deliveries not marked redelivered (reported)")
    return {"word": verdict_word(r.get("valid")), "guarantee": r.get("guarantee", "?"), "meta": meta,
            "checks": checks, "reasons": r.get("reasons") or [], "warnings": (r.get("warnings") or [])[:MAX_ROWS]}


def _guarantees(r: dict) -> dict[str, Any] | None:
    d = r.get("delivery")
    if not isinstance(d, dict) or not isinstance(d.get("holds"), dict):
        return None
    holds, claimed = holds_of(r), r.get("guarantee")
    cards = [{"guarantee": g, "claimed": g == claimed,
              "state": "holds" if holds.get(g) is True else "violated" if holds.get(g) is False else "unknown"}
             for g in GUARANTEES]
    note = ("Judged on the effect store: duplicate deliveries the consumer absorbed do not fail a guarantee, "
            "duplicate effects do." if d.get("effects_checked") else
            "No effect-store read in the history: judged on deliveries.")
    log = r.get("log")
    if isinstance(log, dict) and log.get("applicable") and log.get("valid") is False:
        note += " The log checker found violations too (see below); they also fail the run."
    idem = r.get("idempotency")
    if isinstance(idem, dict) and idem.get("applicable") and idem.get("valid") is False:
        note += (" The idempotency checker found answers the key contract forbids (see below); they fail the "
                 "run's claim.")
    return {"cards": cards, "note": note}


def _counts(r: dict) -> dict[str, Table] | None:
    d = r.get("delivery")
    if not isinstance(d, dict) or not isinstance(d.get("counts"), dict):
        return None
    c = d["counts"]

    def row(label: str, key: str, anomaly: bool = False, note: str = "") -> list[Cell]:
        v = c.get(key)
        cell = _flag(v, anomaly and isinstance(v, int) and v > 0) if v is not None else _flag("—", False)
        lab = markup('<span class="indent">{}</span>', label.strip()) if label.startswith("  ") else label
        return [lab, cell, note]

    head = [("", ""), ("messages", "num"), ("", "")]
    sends = [
        row("attempted", "attempted", note="ids with a send invoke"),
        row("acknowledged", "acknowledged", note="at least one send ok"),
        row("failed", "failed", note="every send failed"),
        row("indeterminate", "indeterminate", note="no ok, some info or never completed"),
        row("  recovered", "recovered", note="indeterminate, but delivered"),
        row("  unresolved", "unresolved", note="indeterminate, never delivered"),
        row("delivered", "delivered", note="distinct ids in ok polls"),
    ]
    anomalies = [row("lost", "lost", True, "acknowledged, never delivered")]
    if not d.get("api"):  # a queue's notion: API requests have no order of a producer's messages to lose within
        anomalies.append(row("  lost in the middle", "lost_middle", True,
                             "later messages of the same producer were delivered"))
    anomalies += [
        row("duplicated", "duplicated", True, "delivered more than once"),
        row("unexpected", "unexpected", True, "delivered, never sent"),
        row("aborted_read", "aborted_read", True, "delivered, but every send failed"),
    ]
    if d.get("effects_checked"):
        anomalies += [row("lost_effects", "lost_effects", True, "acknowledged, applied 0 times"),
                      row("duplicated_effects", "duplicated_effects", True, "applied more than once")]
    else:
        anomalies.append(["effects", Markup('<span class="na">n/a</span>'), "no effect-store read"])
    idem = r.get("idempotency")
    if isinstance(idem, dict) and idem.get("applicable"):
        v = (idem.get("counts") or {}).get("key_reuse_accepted", 0)
        anomalies.append(["key_reuse_accepted", _flag(v, bool(v)), "requests: a key with another payload answered 2xx"])
    return {"sends": _table(head, sends, "counts"), "anomalies": _table(head, anomalies, "counts")}


def _faults_for_plots(r: dict) -> list[dict]:
    perf = r.get("perf")
    if isinstance(perf, dict) and isinstance(perf.get("faults"), list):
        return [f for f in perf["faults"] if isinstance(f, dict) and "start_s" in f and "stop_s" in f]
    t0 = perf.get("t0_ns", 0) if isinstance(perf, dict) else 0
    out = []
    for f in r.get("faults") or []:
        if isinstance(f, dict) and isinstance(f.get("start"), int | float) and isinstance(f.get("stop"), int | float):
            out.append({**f, "start_s": (f["start"] - t0) / 1e9, "stop_s": (f["stop"] - t0) / 1e9})
    return out


def _perf(r: dict) -> dict[str, Any] | None:
    p = r.get("perf")
    if not isinstance(p, dict) or not isinstance(p.get("series"), dict):
        return None
    s, lat, summ = p["series"], p.get("latency") or {}, p.get("summary") or {}
    xs = s.get("t") or []
    bucket = float(p.get("bucket_s") or 1.0)
    faults = _faults_for_plots(r)
    out: dict[str, Any] = {"summary": bool(summ), "duration": _n(summ.get("duration_s")), "bucket": _n(bucket)}
    rates = summ.get("rates") or {}
    sl = summ.get("send_latency_ms") or {}
    e2e = summ.get("e2e_latency_ms") or {}
    rows: list[list[Cell]] = []
    for k in ("send_ok", "send_fail", "send_info", "deliveries"):
        if k in (summ.get("completed") or {}):
            rows.append([k.replace("_", " "), _n(summ["completed"][k]), _n(rates.get(k))])
    out["completed"] = _table([("completed", ""), ("total", "num"), ("mean per second", "num")], rows)
    qrows: list[list[Cell]] = []
    for label, q in [*((f"send {o}", sl.get(o)) for o in ("ok", "fail", "info")), ("end to end", e2e)]:
        if isinstance(q, dict) and q.get("count"):
            qrows.append([label] + [_n(q.get(k)) for k in ("count", "mean", "p50", "p95", "p99", "max")])
    out["latency"] = _table([("latency (ms)", ""), ("count", "num"), ("mean", "num"), ("p50", "num"), ("p95", "num"),
                             ("p99", "num"), ("max", "num")], qrows) if qrows else None
    tput = []
    for k, label in (("send_ok", "send ok"), ("send_fail", "send fail"), ("send_info", "send info"),
                     ("deliveries", "deliveries")):
        ys = s.get(k)
        if isinstance(ys, list) and (k in ("send_ok", "deliveries") or any(ys)):
            tput.append({"label": label, "color": COLORS[k],
                         "ys": [y / bucket if isinstance(y, int | float) else None for y in ys]})
    send = lat.get("send") or {}
    ok = send.get("ok") or {}
    ss = [{"label": f"send ok {q}", "color": COLORS[q], "ys": ok.get(q) or [], "dash": q == "max"}
          for q in ("p50", "p99", "max") if ok.get(q)]
    for o, color in (("info", COLORS["send_info"]), ("fail", COLORS["send_fail"])):
        st = send.get(o) or {}
        if any(isinstance(y, int | float) for y in st.get("p99") or []):
            ss.append({"label": f"send {o} p99", "color": color, "ys": st["p99"]})
    e = lat.get("e2e") or {}
    es = [{"label": f"end to end {q}", "color": COLORS[q], "ys": e.get(q) or [], "dash": q == "max"}
          for q in ("p50", "p95", "p99", "max") if e.get(q)]
    out["charts"] = [_chart("Throughput", xs, bucket, tput, faults, "per second", log=False),
                     _chart("Send latency (by completion time)", xs, bucket, ss, faults, "ms"),
                     _chart("End-to-end latency (by time of first delivery)", xs, bucket, es, faults, "ms")]
    return out


def _faults(r: dict, clock: _Clock) -> dict[str, Any] | None:
    fs = r.get("faults")
    if not isinstance(fs, list):
        return None
    if not fs:
        return {"table": None}
    rows: list[list[Cell]] = []
    lossy = any(isinstance(f, dict) and "dropped" in f for f in fs)
    for f in fs[:MAX_ROWS]:
        if not isinstance(f, dict):
            continue
        start, stop = f.get("start"), f.get("stop")
        known = isinstance(start, int | float) and isinstance(stop, int | float)
        dur = f"{(stop - start) / 1e9:.3f}s" if known else "—"  # type: ignore[operator]
        row: list[Cell] = [f.get("fault"), _nodes(f.get("nodes")), clock.s(start),
                           markup("{}{}", clock.s(stop), Markup(" <b>(never healed)</b>") if f.get("unhealed") else ""),
                           dur]
        if lossy:
            row.append(_erased(f.get("dropped")))
        rows.append(row)
    head = [("fault", ""), ("nodes", ""), ("start", "num"), ("stop", "num"), ("duration", "num")]
    if lossy:
        head.append(("power loss erased (never fsynced)", ""))
    return {"table": _table(head, rows, "counts"), "cap": _cap(min(len(fs), MAX_ROWS), len(fs), "fault windows")}


def _erased(dropped: Any) -> Cell:
    """What a power loss erased, per node; a node where it erased nothing is marked: the fault was vacuous there."""
    if not isinstance(dropped, dict):
        return ""
    parts = []
    for node, d in dropped.items():
        n = d.get("bytes") if isinstance(d, dict) else None
        if n == 0:
            parts.append(markup('{}: <span class="bad">nothing (vacuous)</span>', node))
        elif isinstance(n, int) and n > 0:
            parts.append(markup("{}: {} bytes in {} file(s)", node, _n(n), d.get("files")))
        else:
            parts.append(markup("{}: not counted", node))
    return Markup("<br>").join(parts)


def _send_item(s: dict, clock: _Clock) -> Markup:
    cls = {"ok": "holds", "fail": "violated"}.get(str(s.get("outcome")), "na")
    text = markup('<span class="mono">{}</span> <b class="{}">{}</b> {} (line {})', s.get("process"), cls,
                s.get("outcome", "?"), clock.s(s.get("invoke_time")), s.get("invoke_line"))
    if s.get("complete_time") is not None:
        text += markup(" → {} (line {})", clock.s(s.get("complete_time")), s.get("complete_line"))
    else:
        text += " → never completed"
    if s.get("partition") is not None or s.get("offset") is not None:
        text += markup(' <span class="na">p{}@{}</span>', s.get("partition"), s.get("offset"))
    return text + _request_detail(s, clock)


# what an API request's explanation shows of its value and answer, and an execution's of its record:
# (field, label, how: "code", "bold", "time" or plain)
REQUEST_FIELDS = (("idempotency_key", "key", "code"), ("amount", "amount", ""), ("status", "answered", "bold"),
                  ("charge_id", "charge", "code"))
EXECUTION_FIELDS = (("charge_id", "charge", "code"), ("amount", "amount", ""), ("idempotency_key", "key", "code"),
                    ("executed_at", "executed at", "time"))
FIELD_MARKUP = {"code": "<code>{}</code>", "bold": "<b>{}</b>", "": "{}"}


def _fields(item: dict, shown: tuple[tuple[str, str, str], ...], clock: _Clock) -> Markup:
    """The fields of `shown` that `item` has, each after its label, joined by middle dots."""
    parts = []
    for key, label, how in shown:
        v = item.get(key)
        if v is None:
            continue
        cell = clock.s(v) if how == "time" else markup(FIELD_MARKUP[how], v)
        parts.append(markup("{} {}", label, cell))
    return (" · " + Markup(" · ").join(parts)) if parts else Markup()


def _request_detail(s: dict, clock: _Clock) -> Markup:
    """An API request's key, payload markers and answer (status, charge), and what a 2xx answer named when that
    was not a charge of this request's payload."""
    text = _fields(s, REQUEST_FIELDS, clock)
    if s.get("reuse"):
        text += Markup(' <span class="badge soft">the key again, another payload</span>')
    if s.get("burst"):
        text += Markup(' <span class="badge soft">burst: one key sent at once</span>')
    r = s.get("replays")
    if isinstance(r, dict):
        text += markup("<div><b>{}</b></div>", _named_charge(r))
    return text


def _named_charge(r: dict) -> str:
    """What a 2xx answer's charge id was, when not a charge of the request's own payload."""
    if r.get("payment") is None:
        return f"its charge {r.get('charge_id')} is in no execution the history records"
    executed = r.get("executed") or {}
    what = ", ".join(f"{k} {v}" for k, v in executed.items() if k != "id")
    return (f"replays charge {r.get('charge_id')}, executed for payment {r['payment']}"
            + (f" ({what})" if what else "") + ": no charge of this request's payload")


def _delivery_item(d: dict, clock: _Clock) -> Markup:
    text = markup('<span class="mono">{}</span> at {} (line {})', d.get("process"), clock.s(d.get("time")),
                d.get("line"))
    if d.get("partition") is not None or d.get("offset") is not None:
        text += markup(' <span class="na">p{}@{}</span>', d.get("partition"), d.get("offset"))
    if d.get("redelivered"):
        text += Markup(' <span class="badge soft">redelivered</span>')
    return text + _fields(d, EXECUTION_FIELDS, clock)


def _id(i: Any) -> Markup:
    s = i if isinstance(i, str) else str(i)
    return markup('<code class="{}">{}</code>', "id" if len(s) <= 32 else "longid", s)


def _fault_item(f: dict, clock: _Clock) -> Markup:
    """A fault that overlapped an anomalous message: when, and what the checker made of it."""
    text = markup("{} {}–{}", _fault_label(f), clock.s(f.get("start")), clock.s(f.get("stop")))
    if f.get("unhealed"):
        text += " (never healed)"
    if f.get("likely_cause"):
        text += Markup(" <b>(likely cause: first after the ack)</b>")
    if f.get("offset_taken_by"):
        text += markup(" (its position taken by {})", ", ".join(f["offset_taken_by"]))
    return text


def _anomalies(r: dict, clock: _Clock) -> dict[str, Any] | None:
    d = r.get("delivery")
    if not isinstance(d, dict):
        return None
    classes: dict[Any, list[str]] = {}
    for cls in ANOMALIES:
        v = d.get(cls)
        for i in (list(v) if isinstance(v, list | dict) else []):
            classes.setdefault(i if isinstance(i, str) else json.dumps(i), []).append(cls)
    expl = d.get("explanations") or {}
    for i, e in expl.items():  # explained ids not in the lists (should not happen, but show them)
        if i not in classes and isinstance(e, dict):
            classes[i] = list(e.get("classes") or [])
    middle = set(d.get("lost_middle") or [])
    api = bool(d.get("api"))
    if not classes:
        return {"api": api, "table": None}
    dups, dfx = d.get("duplicated") or {}, d.get("duplicated_effects") or {}
    rows: list[list[Cell]] = []
    ids = list(classes)
    for i in ids[:MAX_ROWS]:
        e = expl.get(i) if isinstance(expl, dict) else None
        badges = Markup().join(markup('<span class="badge">{}</span>', c) for c in classes[i])
        if i in middle:
            n = e.get("later_delivered") if isinstance(e, dict) else None
            badges += Markup('<span class="badge middle" title="later messages of the same producer were delivered">'
                             "lost in the middle</span>")
            if isinstance(n, int):
                badges += markup('<div class="note">{} later message(s) of its producer delivered</div>', f"{n:,}")
        elif isinstance(e, dict) and e.get("later_delivered") == 0:
            badges += Markup('<span class="badge soft">lost at the tail</span>')
        counts = []
        if i in dups:
            counts.append(f"delivered {_n(dups[i])}×")
        if i in dfx:
            counts.append(f"applied {_n(dfx[i])}×")
        if not isinstance(e, dict):
            rows.append([_id(i), badges, Markup('<span class="na">not explained (beyond the explain limit)</span>'),
                         "", Markup("<br>").join(counts), ""])
            continue
        sends = e.get("sends") or []
        dels = e.get("deliveries") or []
        fs = [f for f in e.get("faults") or [] if isinstance(f, dict)]
        eff = e.get("effects")
        if eff is not None:
            counts.append(f"effects {_n(eff)}")
        rows.append([
            _id(i),
            badges,
            _items([_send_item(s, clock) for s in sends[:MAX_ITEMS] if isinstance(s, dict)], len(sends)),
            _items([_delivery_item(x, clock) for x in dels[:MAX_ITEMS] if isinstance(x, dict)], len(dels)),
            Markup("<br>").join(markup('<span class="nowrap">{}</span>', c) for c in counts),
            _items([_fault_item(f, clock) for f in fs[:MAX_ITEMS]], len(fs)),
        ])
    th = [("id", ""), ("anomaly", ""), ("sends (process, outcome, invoke → completion)", ""),
          ("deliveries (consumer, time)", ""), ("counts", ""), ("overlapping faults", "")]
    if api:
        th[2:4] = [("requests (process, outcome, invoke → answer)", ""),
                   ("executions (read from the provider's record)", "")]
        th[5] = ("faults that overlapped it (from its first request to its last answer, or to its last "
                 "execution when charged twice)", "")
    return {"api": api, "table": _table(th, rows), "limit": _n(d.get("explain_limit")),
            "cap": _cap(min(len(ids), MAX_ROWS), len(ids), "anomalous messages", "every id")}


def _payload(p: Any) -> Markup:
    if not isinstance(p, dict):
        return esc(p)
    return Markup(", ").join(markup("{} <code>{}</code>", k, v) for k, v in p.items())


def reuse_sentence(e: dict, clock: _Clock) -> str:
    """One accepted reuse of a key in words (plain text): the key, both payloads, the answer and what it named."""
    req, first = e.get("request") or {}, e.get("first") or {}
    differs = ", ".join(f"{k} {first.get('payload', {}).get(k)!r} → {req.get('payload', {}).get(k)!r}"
                        for k in e.get("differs_in") or [])
    text = (f"Key {e.get('key')} was first used for payment {first.get('id')} (line {first.get('invoke_line')}"
            + (f", answered {first['status']}" if first.get("status") is not None else "")
            + (f" with charge {first['charge_id']}" if first.get("charge_id") is not None else "")
            + f"), then sent again with another payload ({differs}) at {clock.s(req.get('invoke_time'))} "
            f"(line {req.get('invoke_line')}) and answered {req.get('status', 'ok')}"
            + (f" with charge {req['charge_id']}" if req.get("charge_id") is not None else "") + ".")
    named = e.get("answer_names")
    if isinstance(named, dict):
        if named.get("payment") is None:
            text += f" No execution in the history carries charge {named.get('charge_id')}."
        elif named.get("of_this_payload"):
            text += (f" That charge was executed for this payload at {clock.s(named.get('time'))}: the key "
                     "guarded nothing.")
        else:
            ex = ", ".join(f"{k} {v!r}" for k, v in (named.get("executed") or {}).items() if k != "id")
            text += (f" That charge was executed for payment {named['payment']}" + (f" ({ex})" if ex else "")
                     + ": the answer replayed it, so the client was told a charge of its payload happened that "
                     "never did.")
    faults = e.get("faults") or []
    text += (" Faults during the request: " + "; ".join(_fault_label(f) for f in faults) + "."
             if faults else " No fault overlapped the request.")
    return text


def _idempotency(r: dict, clock: _Clock) -> dict[str, Any] | None:
    sec = r.get("idempotency")
    if not isinstance(sec, dict) or not sec.get("applicable"):
        return None
    c = sec.get("counts") or {}
    rows: list[list[Cell]] = [
        ["requests", _n(c.get("requests", 0)), "sends with an idempotency key"],
        ["keys", _n(c.get("keys", 0)), ""],
        ["reused with another payload", _n(c.get("reused", 0)),
         "a request whose payload differs from its key's first (must get a 4xx)"]]
    for k in IDEMPOTENCY_ANOMALIES:
        v = c.get(k, 0)
        rows.append([k, _flag(v, bool(v)), "answered 2xx anyway: fails an exactly-once claim"])
    out: dict[str, Any] = {"word": verdict_word(sec.get("valid") is not False),
                           "counts": _table([("", ""), ("requests", "num"), ("", "")], rows, "counts"), "reuses": None}
    items = [e for e in sec.get("key_reuse_accepted") or [] if isinstance(e, dict)]
    if items:
        trs: list[list[Cell]] = []
        for e in items[:MAX_ROWS]:
            req, first = e.get("request") or {}, e.get("first") or {}
            trs.append([_id(e.get("key")), _payload(first.get("payload")), _payload(req.get("payload")),
                        reuse_sentence(e, clock)])
        out["reuses"] = _table([("key", ""), ("first payload", ""), ("reused with", ""), ("what happened", "")], trs)
        out["cap"] = _cap(len(trs), c.get("key_reuse_accepted", len(items)), "accepted reuses")
    return out


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | float):
        return str(v)  # offsets and lines: no thousands separators
    if isinstance(v, list):
        shown = ", ".join(_plain(x) for x in v[:20])
        return shown + (f", … ({len(v):,} in all)" if len(v) > 20 else "")
    return str(text(v))


def _plain(x: Any) -> str:
    if isinstance(x, list):
        return "(" + ", ".join(_plain(i) for i in x) + ")"
    return str(x)


def _log(r: dict) -> dict[str, Any] | None:
    log = r.get("log")
    if not isinstance(log, dict):
        return None
    if not log.get("applicable") and (r.get("delivery") or {}).get("api"):
        return None  # API requests have no partitions and offsets: nothing to say
    if not log.get("applicable"):
        return {"applicable": False}
    c = log.get("counts") or {}
    rows: list[list[Cell]] = [[k.replace("_", " "), _flag(c.get(k, 0), bool(c.get(k)) and k in LOG_FAILING)]
                              for k in LOG_KINDS if k in c]
    out: dict[str, Any] = {"applicable": True, "word": verdict_word(log.get("valid") is not False),
                           "counts": _table([("finding", ""), ("count", "num")], rows, "counts"), "final_read": None,
                           "kinds": []}
    fr = log.get("final_read")
    if isinstance(fr, dict):
        absent = fr.get("absent_ids") or []
        out["final_read"] = {"records": _n(fr.get("records", 0)),
                             "absent": _flag(fr.get("absent_acknowledged", 0), bool(fr.get("absent_acknowledged"))),
                             "examples": ", ".join(map(str, absent[:5]))}
    for k in LOG_KINDS:
        items = log.get(k)
        if not isinstance(items, list) or not items:
            continue
        cols = list(LOG_COLUMNS[k])
        for it in items[:5]:
            for key in it if isinstance(it, dict) else []:
                if key not in cols:
                    cols.append(key)
        trs: list[list[Cell]] = [[_cell(it.get(col)) for col in cols] for it in items[:MAX_ROWS]
                                 if isinstance(it, dict)]
        total = c.get(k, len(items)) if isinstance(c.get(k), int) else len(items)
        head = [(col.replace("_", " "), "") for col in cols]
        out["kinds"].append({"title": LOG_TITLES[k], "table": _table(head, trs),
                             "cap": _cap(len(trs), total, k.replace("_", " "))})
    return out


def render(results: dict[str, Any]) -> str:
    """The whole report page for a results dict (see checkers/suite.py for its shape)."""
    r = results if isinstance(results, dict) else {}
    perf = r.get("perf")
    t0 = perf.get("t0_ns", 0) if isinstance(perf, dict) and isinstance(perf.get("t0_ns"), int) else 0
    clock = _Clock(t0)
    return page("report.html", title=f"onceproof: {verdict_word(r.get('valid'))} ({r.get('guarantee', '?')})",
                header=_header(r), guarantees=_guarantees(r), counts=_counts(r), perf=_perf(r),
                faults=_faults(r, clock), anomalies=_anomalies(r, clock), idempotency=_idempotency(r, clock),
                log=_log(r), contract=r.get("contract", "history-v1"))
