"""report.html: one self-contained page for people (no external CSS, JS, fonts or images).

The verdict comes first, then which guarantees hold, the counts, throughput and
latency plots (inline SVG drawn here, fault windows shaded), the fault windows,
the anomalous messages with what explains them, and the log checker's findings.
Every string that comes from the history (ids, process names, fault names,
paths) goes through `html.escape`. Each section is rendered only from what the
results hold, so a missing or partial section never breaks the page.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

from checkers.vocabulary import (
    ANOMALIES,
    GUARANTEES,
    IDEMPOTENCY_ANOMALIES,
    LOG_FAILING,
    LOG_KINDS,
    holds_of,
    verdict_word,
)

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

CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg:#ffffff; --soft:#f6f8fa;
        --ok:#1a7f37; --bad:#cf222e; --unk:#9a6700; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; color: var(--fg); background: var(--bg); }
main { max-width: 1200px; margin: 0 auto; padding: 24px 28px 48px; }
h2 { font-size: 19px; margin: 34px 0 10px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 22px 0 8px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
              font-size: 12.5px; }
.verdict { font-size: 44px; font-weight: 800; letter-spacing: .5px; padding: 18px 24px; border-radius: 10px;
           color: #fff; margin: 0 0 10px; }
.verdict small { display: block; font-size: 17px; font-weight: 500; opacity: .95; letter-spacing: 0; }
.v-valid { background: var(--ok); } .v-invalid { background: var(--bad); } .v-unknown { background: var(--unk); }
.meta { color: var(--muted); margin: 4px 0; word-break: break-all; }
.reasons { margin: 8px 0; padding: 10px 14px; background: #fff8c5; border: 1px solid #d4a72c66;
           border-radius: 6px; }
.warnings { margin: 8px 0; padding: 10px 14px; background: var(--soft); border: 1px solid var(--line);
            border-radius: 6px; color: var(--muted); }
.reasons ul, .warnings ul { margin: 4px 0 0 18px; padding: 0; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { flex: 1 1 220px; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.card .g { font-weight: 700; font-size: 15px; }
.card .s { font-size: 18px; font-weight: 700; }
.card.claimed { border-width: 2px; border-color: var(--fg); }
.holds { color: var(--ok); } .violated { color: var(--bad); } .na { color: var(--muted); }
table { border-collapse: collapse; width: 100%; margin: 6px 0; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px; border-bottom: 1px solid var(--line); }
th { background: var(--soft); font-weight: 600; white-space: nowrap; }
tbody tr:nth-child(even) td { background: #fbfcfd; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.bad { color: var(--bad); font-weight: 700; }
.indent { padding-left: 16px; color: var(--muted); }
table.counts { width: auto; min-width: 420px; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 8px 28px; }
.badge { display: inline-block; padding: 1px 7px; border-radius: 10px; font-size: 12px; font-weight: 600;
         margin: 0 3px 2px 0; background: #ffebe9; color: var(--bad); border: 1px solid #ff818266; }
.badge { white-space: nowrap; }
.badge.middle { background: var(--bad); color: #fff; }
code.id { white-space: nowrap; } code.longid { overflow-wrap: anywhere; }
.nowrap { white-space: nowrap; }
.badge.soft { background: var(--soft); color: var(--muted); border-color: var(--line); }
ul.items { margin: 0; padding-left: 16px; } ul.items li { margin: 0 0 2px; }
.note { color: var(--muted); font-size: 13px; margin: 6px 0; }
.chart { margin: 10px 0 20px; }
.chart .title { font-weight: 600; margin-bottom: 2px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 12.5px; color: var(--muted); }
.legend i { display: inline-block; width: 18px; height: 3px; vertical-align: middle; margin-right: 5px; }
.legend i.fault { height: 11px; background: #fa454933; border: 1px dashed #fa4549; }
svg { display: block; width: 100%; height: auto; }
svg text { font: 11px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; fill: #59636e; }
svg .flabel { fill: #a40e26; font-weight: 600; paint-order: stroke; stroke: #fff; stroke-width: 3px;
              stroke-linejoin: round; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
"""


# --- small helpers -------------------------------------------------------------------------------


def esc(x: Any) -> str:
    """Text for HTML (element content and quoted attributes)."""
    if x is None:
        return ""
    if not isinstance(x, str):
        x = json.dumps(x, ensure_ascii=False, default=str) if isinstance(x, list | dict) else str(x)
    return html.escape(x, quote=True)


def _n(x: Any) -> str:
    if isinstance(x, bool) or x is None:
        return esc(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return f"{x:,.3f}".rstrip("0").rstrip(".") if math.isfinite(x) else esc(x)
    return esc(x)


class _Clock:
    """Formats history times (ns) as seconds since t0."""

    def __init__(self, t0: int) -> None:
        self.t0 = t0

    def s(self, t: Any) -> str:
        if not isinstance(t, int | float) or isinstance(t, bool):
            return "—"
        return f"{(t - self.t0) / 1e9:.3f}s"


def _table(head: list[tuple[str, str]], rows: list[list[str]], cls: str = "") -> str:
    """`head` = [(title, css class)]; `rows` hold already escaped cells."""
    th = "".join(f'<th class="{c}">{esc(t)}</th>' for t, c in head)
    body = "".join("<tr>" + "".join(f'<td class="{head[i][1]}">{cell}</td>' for i, cell in enumerate(r))
                   + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _cap_note(shown: int, total: int, what: str, extra: str = "") -> str:
    if total <= shown:
        return ""
    return (f'<p class="note">Showing the first {shown:,} of {total:,} {esc(what)}; '
            f'results.json has {esc(extra) if extra else "the rest"}.</p>')


def _items(items: list[str], total: int | None = None) -> str:
    if not items:
        return '<span class="na">none</span>'
    total = len(items) if total is None else total
    more = f'<li class="na">… and {total - MAX_ITEMS:,} more</li>' if total > MAX_ITEMS else ""
    return '<ul class="items">' + "".join(f"<li>{i}</li>" for i in items[:MAX_ITEMS]) + more + "</ul>"


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
           unit: str, log: bool | None = None) -> str:
    """A line chart as inline SVG. `series`: [{"label", "color", "ys", "dash"}], ys may hold None."""
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
        return head + '<p class="note">No data.</p></div>'
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
                x, y = seg[0].split(",")
                out.append(f'<circle cx="{x}" cy="{y}" r="2" fill="{s["color"]}"/>')
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
    return head + "".join(out) + "</div>"


# --- sections ------------------------------------------------------------------------------------


def _header(r: dict, clock: _Clock) -> str:
    word = verdict_word(r.get("valid"))
    g = r.get("guarantee", "?")
    parts = [f'<div id="verdict" class="verdict v-{word.lower()}">{word} '
             f"<small>{esc(g)} claimed</small></div>"]
    meta = []
    if r.get("history") is not None:
        meta.append(f"history <code>{esc(r['history'])}</code>")
    if r.get("operations") is not None:
        meta.append(f"{_n(r['operations'])} operations")
    if r.get("contract"):
        meta.append(f"contract {esc(r['contract'])}")
    if isinstance(r.get("faults"), list):
        meta.append(f"{len(r['faults'])} fault window(s)")
    if meta:
        parts.append('<p class="meta">' + " · ".join(meta) + "</p>")
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
    if checks:
        parts.append('<p class="meta">checkers — ' + esc(" · ".join(checks)) + "</p>")
    if r.get("reasons"):
        parts.append('<div class="reasons"><b>Why:</b><ul>'
                     + "".join(f"<li>{esc(x)}</li>" for x in r["reasons"]) + "</ul></div>")
    if r.get("warnings"):
        parts.append('<div class="warnings"><b>Warnings:</b><ul>'
                     + "".join(f"<li>{esc(x)}</li>" for x in r["warnings"][:MAX_ROWS]) + "</ul></div>")
    return "<header>" + "".join(parts) + "</header>"


def _guarantees(r: dict) -> str:
    d = r.get("delivery")
    if not isinstance(d, dict) or not isinstance(d.get("holds"), dict):
        return ""
    holds, claimed = holds_of(r), r.get("guarantee")
    cards = []
    for g in GUARANTEES:
        h = holds.get(g)
        s = ('<span class="holds">✔ holds</span>' if h is True else
             '<span class="violated">✘ violated</span>' if h is False else '<span class="na">unknown</span>')
        cl = " claimed" if g == claimed else ""
        cards.append(f'<div class="card{cl}"><div class="g">{esc(g)}{" (claimed)" if cl else ""}</div>'
                     f'<div class="s">{s}</div></div>')
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
    return ('<section><h2>Guarantees</h2><div class="cards">' + "".join(cards)
            + f'</div><p class="note">{esc(note)}</p></section>')


def _counts(r: dict) -> str:
    d = r.get("delivery")
    if not isinstance(d, dict) or not isinstance(d.get("counts"), dict):
        return ""
    c = d["counts"]
    fx = d.get("effects_checked")

    def row(label: str, key: str, anomaly: bool = False, note: str = "") -> list[str]:
        v = c.get(key)
        bad = anomaly and isinstance(v, int) and v > 0
        cell = _n(v) if v is not None else "—"
        lab = f'<span class="indent">{esc(label.strip())}</span>' if label.startswith("  ") else esc(label)
        return [lab, f'<span class="{"bad" if bad else ""}">{cell}</span>', esc(note)]

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
    if fx:
        anomalies += [row("lost_effects", "lost_effects", True, "acknowledged, applied 0 times"),
                      row("duplicated_effects", "duplicated_effects", True, "applied more than once")]
    else:
        anomalies.append([esc("effects"), '<span class="na">n/a</span>', esc("no effect-store read")])
    idem = r.get("idempotency")
    if isinstance(idem, dict) and idem.get("applicable"):
        v = (idem.get("counts") or {}).get("key_reuse_accepted", 0)
        anomalies.append([esc("key_reuse_accepted"), f'<span class="{"bad" if v else ""}">{_n(v)}</span>',
                          esc("requests: a key with another payload answered 2xx")])
    return ('<section><h2>Counts</h2><div class="grid2"><div><h3>Sends and deliveries</h3>'
            + _table(head, sends, "counts") + "</div><div><h3>Anomalies</h3>"
            + _table(head, anomalies, "counts") + "</div></div></section>")


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


def _perf(r: dict) -> str:
    p = r.get("perf")
    if not isinstance(p, dict) or not isinstance(p.get("series"), dict):
        return ""
    s, lat, summ = p["series"], p.get("latency") or {}, p.get("summary") or {}
    xs = s.get("t") or []
    bucket = float(p.get("bucket_s") or 1.0)
    faults = _faults_for_plots(r)
    parts = ["<section><h2>Throughput and latency</h2>"]
    rates = summ.get("rates") or {}
    sl = summ.get("send_latency_ms") or {}
    e2e = summ.get("e2e_latency_ms") or {}
    if summ:
        rows = []
        for k in ("send_ok", "send_fail", "send_info", "deliveries"):
            if k in (summ.get("completed") or {}):
                rows.append([esc(k.replace("_", " ")), _n(summ["completed"][k]), _n(rates.get(k))])
        head = [("completed", ""), ("total", "num"), ("mean per second", "num")]
        qhead = [("latency (ms)", ""), ("count", "num"), ("mean", "num"), ("p50", "num"), ("p95", "num"),
                 ("p99", "num"), ("max", "num")]
        qrows = []
        for label, q in [*((f"send {o}", sl.get(o)) for o in ("ok", "fail", "info")), ("end to end", e2e)]:
            if isinstance(q, dict) and q.get("count"):
                qrows.append([esc(label)] + [_n(q.get(k)) for k in ("count", "mean", "p50", "p95", "p99", "max")])
        parts.append('<div class="grid2"><div>' + _table(head, rows) + "</div><div>"
                     + (_table(qhead, qrows) if qrows else '<p class="note">No latencies.</p>') + "</div></div>")
        parts.append(f'<p class="note">Run length {_n(summ.get("duration_s"))} s, buckets of {_n(bucket)} s. '
                     "Send latency = completion − invoke; end to end = first delivery − first send invoke."
                     "</p>")
    tput = []
    for k, label in (("send_ok", "send ok"), ("send_fail", "send fail"), ("send_info", "send info"),
                     ("deliveries", "deliveries")):
        ys = s.get(k)
        if isinstance(ys, list) and (k in ("send_ok", "deliveries") or any(ys)):
            tput.append({"label": label, "color": COLORS[k],
                         "ys": [y / bucket if isinstance(y, int | float) else None for y in ys]})
    parts.append(_chart("Throughput", xs, bucket, tput, faults, "per second", log=False))
    send = lat.get("send") or {}
    ok = send.get("ok") or {}
    ss = [{"label": f"send ok {q}", "color": COLORS[q], "ys": ok.get(q) or [], "dash": q == "max"}
          for q in ("p50", "p99", "max") if ok.get(q)]
    for o, color in (("info", COLORS["send_info"]), ("fail", COLORS["send_fail"])):
        st = send.get(o) or {}
        if any(isinstance(y, int | float) for y in st.get("p99") or []):
            ss.append({"label": f"send {o} p99", "color": color, "ys": st["p99"]})
    parts.append(_chart("Send latency (by completion time)", xs, bucket, ss, faults, "ms"))
    e = lat.get("e2e") or {}
    es = [{"label": f"end to end {q}", "color": COLORS[q], "ys": e.get(q) or [], "dash": q == "max"}
          for q in ("p50", "p95", "p99", "max") if e.get(q)]
    parts.append(_chart("End-to-end latency (by time of first delivery)", xs, bucket, es, faults, "ms"))
    parts.append("</section>")
    return "".join(parts)


def _faults(r: dict, clock: _Clock) -> str:
    fs = r.get("faults")
    if not isinstance(fs, list):
        return ""
    if not fs:
        return '<section><h2>Fault windows</h2><p class="note">No faults were injected.</p></section>'
    rows = []
    for f in fs[:MAX_ROWS]:
        if not isinstance(f, dict):
            continue
        start, stop = f.get("start"), f.get("stop")
        known = isinstance(start, int | float) and isinstance(stop, int | float)
        dur = f"{(stop - start) / 1e9:.3f}s" if known else "—"
        rows.append([esc(f.get("fault")), esc(_nodes(f.get("nodes"))),
                     clock.s(start), clock.s(stop) + (" <b>(never healed)</b>" if f.get("unhealed") else ""), dur])
    head = [("fault", ""), ("nodes", ""), ("start", "num"), ("stop", "num"), ("duration", "num")]
    return ("<section><h2>Fault windows</h2>" + _table(head, rows, "counts")
            + _cap_note(min(len(fs), MAX_ROWS), len(fs), "fault windows") + "</section>")


def _send_item(s: dict, clock: _Clock) -> str:
    out = esc(s.get("outcome", "?"))
    cls = {"ok": "holds", "fail": "violated"}.get(s.get("outcome"), "na")
    text = (f'<span class="mono">{esc(s.get("process"))}</span> <b class="{cls}">{out}</b> '
            f"{clock.s(s.get('invoke_time'))} (line {esc(s.get('invoke_line'))})")
    if s.get("complete_time") is not None:
        text += f" → {clock.s(s.get('complete_time'))} (line {esc(s.get('complete_line'))})"
    else:
        text += " → never completed"
    if s.get("partition") is not None or s.get("offset") is not None:
        text += f' <span class="na">p{esc(s.get("partition"))}@{esc(s.get("offset"))}</span>'
    return text + _request_detail(s, clock)


# what an API request's explanation shows of its value and answer, and an execution's of its record:
# (field, label, how: "code", "bold", "time" or plain)
REQUEST_FIELDS = (("idempotency_key", "key", "code"), ("amount", "amount", ""), ("status", "answered", "bold"),
                  ("charge_id", "charge", "code"))
EXECUTION_FIELDS = (("charge_id", "charge", "code"), ("amount", "amount", ""), ("idempotency_key", "key", "code"),
                    ("executed_at", "executed at", "time"))


def _fields(item: dict, shown: tuple[tuple[str, str, str], ...], clock: _Clock) -> str:
    """The fields of `shown` that `item` has, each after its label, joined by middle dots."""
    parts = []
    for key, label, how in shown:
        v = item.get(key)
        if v is None:
            continue
        cell = {"code": f"<code>{esc(v)}</code>", "bold": f"<b>{esc(v)}</b>", "time": clock.s(v)}.get(how, esc(v))
        parts.append(f"{esc(label)} {cell}")
    return (" · " + " · ".join(parts)) if parts else ""


def _request_detail(s: dict, clock: _Clock) -> str:
    """An API request's key, payload markers and answer (status, charge), and what a 2xx answer named when that
    was not a charge of this request's payload."""
    text = _fields(s, REQUEST_FIELDS, clock)
    if s.get("reuse"):
        text += ' <span class="badge soft">the key again, another payload</span>'
    if s.get("burst"):
        text += ' <span class="badge soft">burst: one key sent at once</span>'
    r = s.get("replays")
    if isinstance(r, dict):
        text += f"<div><b>{esc(_named_charge(r))}</b></div>"
    return text


def _named_charge(r: dict) -> str:
    """What a 2xx answer's charge id was, when not a charge of the request's own payload."""
    if r.get("payment") is None:
        return f"its charge {r.get('charge_id')} is in no execution the history records"
    executed = r.get("executed") or {}
    what = ", ".join(f"{k} {v}" for k, v in executed.items() if k != "id")
    return (f"replays charge {r.get('charge_id')}, executed for payment {r['payment']}"
            + (f" ({what})" if what else "") + ": no charge of this request's payload")


def _delivery_item(d: dict, clock: _Clock) -> str:
    text = (f'<span class="mono">{esc(d.get("process"))}</span> at {clock.s(d.get("time"))} '
            f"(line {esc(d.get('line'))})")
    if d.get("partition") is not None or d.get("offset") is not None:
        text += f' <span class="na">p{esc(d.get("partition"))}@{esc(d.get("offset"))}</span>'
    if d.get("redelivered"):
        text += ' <span class="badge soft">redelivered</span>'
    return text + _fields(d, EXECUTION_FIELDS, clock)


def _id(i: Any) -> str:
    s = i if isinstance(i, str) else str(i)
    return f'<code class="{"id" if len(s) <= 32 else "longid"}">{esc(s)}</code>'


def _anomalies(r: dict, clock: _Clock) -> str:
    d = r.get("delivery")
    if not isinstance(d, dict):
        return ""
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
    head = f"<section><h2>Anomalous {'payments (by id)' if api else 'messages'}</h2>"
    if not classes:
        return head + ('<p class="note">None: every payment the client was told succeeded was executed exactly '
                       "once, and none other was.</p></section>" if api else
                       '<p class="note">None: every acknowledged message was delivered exactly once.</p></section>')
    dups, dfx = d.get("duplicated") or {}, d.get("duplicated_effects") or {}
    rows = []
    ids = list(classes)
    for i in ids[:MAX_ROWS]:
        e = expl.get(i) if isinstance(expl, dict) else None
        badges = "".join(f'<span class="badge">{esc(c)}</span>' for c in classes[i])
        if i in middle:
            n = e.get("later_delivered") if isinstance(e, dict) else None
            badges += ('<span class="badge middle" title="later messages of the same producer were delivered">'
                       "lost in the middle</span>")
            if isinstance(n, int):
                badges += f'<div class="note">{n:,} later message(s) of its producer delivered</div>'
        elif isinstance(e, dict) and e.get("later_delivered") == 0:
            badges += '<span class="badge soft">lost at the tail</span>'
        counts = []
        if i in dups:
            counts.append(f"delivered {_n(dups[i])}×")
        if i in dfx:
            counts.append(f"applied {_n(dfx[i])}×")
        if not isinstance(e, dict):
            rows.append([_id(i), badges, '<span class="na">not explained (beyond the explain '
                         "limit)</span>", "", "<br>".join(esc(c) for c in counts), ""])
            continue
        sends = e.get("sends") or []
        dels = e.get("deliveries") or []
        fs = e.get("faults") or []
        eff = e.get("effects")
        if eff is not None:
            counts.append(f"effects {_n(eff)}")
        fault_items = [f"{esc(_fault_label(f))} {clock.s(f.get('start'))}–{clock.s(f.get('stop'))}"
                       + (" (never healed)" if f.get("unhealed") else "")
                       + (" <b>(likely cause: first after the ack)</b>" if f.get("likely_cause") else "")
                       + (f" (its position taken by {esc(', '.join(f['offset_taken_by']))})"
                          if f.get("offset_taken_by") else "")
                       for f in fs if isinstance(f, dict)]
        rows.append([
            _id(i),
            badges,
            _items([_send_item(s, clock) for s in sends[:MAX_ITEMS] if isinstance(s, dict)], len(sends)),
            _items([_delivery_item(x, clock) for x in dels[:MAX_ITEMS] if isinstance(x, dict)], len(dels)),
            "<br>".join(f'<span class="nowrap">{esc(c)}</span>' for c in counts),
            _items(fault_items[:MAX_ITEMS], len(fault_items)),
        ])
    th = [("id", ""), ("anomaly", ""), ("sends (process, outcome, invoke → completion)", ""),
          ("deliveries (consumer, time)", ""), ("counts", ""), ("overlapping faults", "")]
    if api:
        th[2:4] = [("requests (process, outcome, invoke → answer)", ""),
                   ("executions (read from the provider's record)", "")]
        th[5] = ("faults that overlapped it (from its first request to its last answer, or to its last "
                 "execution when charged twice)", "")
    note = _cap_note(min(len(ids), MAX_ROWS), len(ids), "anomalous messages", "every id")
    limit = d.get("explain_limit")
    lim = (f'<p class="note">Times are seconds since the first operation. Up to {_n(limit)} messages '
           "per anomaly class are explained.</p>" if limit is not None else "")
    return head + _table(th, rows) + note + lim + "</section>"


def _payload(p: Any) -> str:
    if not isinstance(p, dict):
        return esc(p)
    return ", ".join(f"{esc(k)} <code>{esc(v)}</code>" for k, v in p.items())


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


def _idempotency(r: dict, clock: _Clock) -> str:
    sec = r.get("idempotency")
    if not isinstance(sec, dict) or not sec.get("applicable"):
        return ""
    c = sec.get("counts") or {}
    word = verdict_word(sec.get("valid") is not False)
    rows = [[esc("requests"), _n(c.get("requests", 0)), esc("sends with an idempotency key")],
            [esc("keys"), _n(c.get("keys", 0)), ""],
            [esc("reused with another payload"), _n(c.get("reused", 0)),
             esc("a request whose payload differs from its key's first (must get a 4xx)")]]
    for k in IDEMPOTENCY_ANOMALIES:
        v = c.get(k, 0)
        rows.append([esc(k), f'<span class="{"bad" if v else ""}">{_n(v)}</span>',
                     esc("answered 2xx anyway: fails an exactly-once claim")])
    parts = [f"<section><h2>Idempotency keys: {word}</h2>",
             _table([("", ""), ("requests", "num"), ("", "")], rows, "counts")]
    items = [e for e in sec.get("key_reuse_accepted") or [] if isinstance(e, dict)]
    if items:
        trs = []
        for e in items[:MAX_ROWS]:
            req, first = e.get("request") or {}, e.get("first") or {}
            trs.append([_id(e.get("key")), _payload(first.get("payload")),
                        _payload(req.get("payload")), esc(reuse_sentence(e, clock))])
        parts.append("<h3>A key reused with another payload, answered 2xx</h3>"
                     + _table([("key", ""), ("first payload", ""), ("reused with", ""), ("what happened", "")], trs)
                     + _cap_note(len(trs), c.get("key_reuse_accepted", len(items)), "accepted reuses"))
    parts.append("</section>")
    return "".join(parts)


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | float):
        return esc(v)  # offsets and lines: no thousands separators
    if isinstance(v, list):
        shown = ", ".join(_plain(x) for x in v[:20])
        return esc(shown + (f", … ({len(v):,} in all)" if len(v) > 20 else ""))
    return esc(v)


def _plain(x: Any) -> str:
    if isinstance(x, list):
        return "(" + ", ".join(_plain(i) for i in x) + ")"
    return str(x)


def _log(r: dict) -> str:
    log = r.get("log")
    if not isinstance(log, dict):
        return ""
    if not log.get("applicable") and (r.get("delivery") or {}).get("api"):
        return ""  # API requests have no partitions and offsets: nothing to say
    if not log.get("applicable"):
        return ('<section><h2>Log (partitions and offsets)</h2><p class="note">Not applicable: no operation '
                "recorded both a partition and an offset.</p></section>")
    c = log.get("counts") or {}
    word = verdict_word(log.get("valid") is not False)
    parts = [f"<section><h2>Log (partitions and offsets): {word}</h2>"]
    rows = [[esc(k.replace("_", " ")),
             f'<span class="{"bad" if c.get(k) and k in LOG_FAILING else ""}">'
             f"{_n(c.get(k, 0))}</span>"] for k in LOG_KINDS if k in c]
    parts.append(_table([("finding", ""), ("count", "num")], rows, "counts"))
    fr = log.get("final_read")
    if isinstance(fr, dict):
        absent = fr.get("absent_ids") or []
        parts.append(f'<p class="note">Final read (every partition, from the beginning to the end offsets, after '
                     f"the run): {_n(fr.get('records', 0))} records; "
                     f'<span class="{"bad" if fr.get("absent_acknowledged") else ""}">'
                     f"{_n(fr.get('absent_acknowledged', 0))}</span> acknowledged ids absent from the log"
                     + (f" (e.g. {esc(', '.join(map(str, absent[:5])))})" if absent else "") + ".</p>")
    for k in LOG_KINDS:
        items = log.get(k)
        if not isinstance(items, list) or not items:
            continue
        cols = list(LOG_COLUMNS[k])
        for it in items[:5]:
            for key in it if isinstance(it, dict) else []:
                if key not in cols:
                    cols.append(key)
        trs = [[_cell(it.get(col)) for col in cols] for it in items[:MAX_ROWS] if isinstance(it, dict)]
        total = c.get(k, len(items)) if isinstance(c.get(k), int) else len(items)
        parts.append(f"<h3>{esc(LOG_TITLES[k])}</h3>"
                     + _table([(col.replace("_", " "), "") for col in cols], trs)
                     + _cap_note(len(trs), total, k.replace("_", " ")))
    parts.append("</section>")
    return "".join(parts)


def render(results: dict[str, Any]) -> str:
    """The whole report page for a results dict (see checkers/suite.py for its shape)."""
    r = results if isinstance(results, dict) else {}
    perf = r.get("perf")
    t0 = perf.get("t0_ns", 0) if isinstance(perf, dict) and isinstance(perf.get("t0_ns"), int) else 0
    clock = _Clock(t0)
    word = verdict_word(r.get("valid"))
    sections = [
        _header(r, clock), _guarantees(r), _counts(r), _perf(r), _faults(r, clock), _anomalies(r, clock),
        _idempotency(r, clock), _log(r),
    ]
    title = f"onceproof: {word} ({r.get('guarantee', '?')})"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "img-src data:\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
        + "".join(s for s in sections if s)
        + f'<footer>onceproof · contract {esc(r.get("contract", "history-v1"))} · times are seconds since the '
          "first operation of the history</footer></main></body></html>\n"
    )
