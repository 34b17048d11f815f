"""Throughput and latency over time.

Perf never fails a run (`valid` is always True); it is there so that a person
reading the report can see what the system was doing while faults were
injected. Everything is computed with numpy array operations (bincount
and a sort per latency kind); there is no Python loop per operation.

Time origin and buckets
-----------------------
``t0_ns`` is the time of the earliest operation of the history; every time in
this result is in seconds since ``t0_ns`` ("since the start"). An event at time
``t`` falls into bucket ``(t - t0_ns) // bucket_ns``; bucket ``i`` covers
``[t[i], t[i] + bucket_s)``. Buckets are dense: every bucket from the first to
the last operation is present, empty ones included. When the run is so long
that more than ``MAX_BUCKETS`` buckets would be needed, the bucket is widened
to the smallest 1/2/5 x 10^k seconds that fits (``bucket_s`` says what was
used, ``bucket_s_requested`` what was asked for).

Result (JSON-serialisable, plain Python numbers, ``None`` where there is no data)::

    {"valid": True,
     "bucket_s": float, "bucket_s_requested": float, "t0_ns": int,
     "series": {                       # throughput: counts per bucket (divide by bucket_s for a rate)
         "t": [bucket start, s],
         "send_ok": [...], "send_fail": [...], "send_info": [...],   # send completions, by completion time
         "poll_ok": [...], "deliveries": [...],                      # deliveries = entries of ok polls
         "<f>_<type>": [...],          # every other client completion (f, type) present in the history
     },
     "latency": {                      # milliseconds, per bucket
         "send": {"ok" | "fail" | "info": {"count": [...], "p50": [...], "p95": [...],
                                            "p99": [...], "max": [...]}},
                                       # completion - invoke, bucketed by completion time
         "e2e": {"count": [...], "p50": [...], "p95": [...], "p99": [...], "max": [...]},
                                       # first delivery of an id - its first send invoke,
                                       # bucketed by the time of that first delivery
     },
     "summary": {
         "duration_s": float, "buckets": int, "operations": int (all ops),
         "completed": {"send_ok": n, ...},          # totals of the throughput series
         "rates": {"send_ok": per second, ...},     # totals / duration_s (None for a zero-length run)
         "sends": {"ok": n, "fail": n, "info": n, "open": n},   # send invokes by outcome
         "send_latency_ms": {"ok" | "fail" | "info" | "all":
                             {"count", "mean", "p50", "p95", "p99", "max"}},
         "e2e_latency_ms": {"count", "mean", "p50", "p95", "p99", "max"},
         "e2e_negative": n,            # ids first delivered before their first send invoke (left out)
     },
     "faults": [{"fault", "nodes", "start_s", "stop_s", "unhealed"}]}

Quantiles use linear interpolation between order statistics (numpy's default
method). Nemesis operations are not counted as throughput. Latencies of sends
that never completed ("open") are unknown and left out.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from checkers.history import OUTCOMES as SEND_OUTCOMES
from checkers.history import TYPES, History

QUANTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
OUTCOMES = ("ok", "fail", "info")
ALWAYS = ("send_ok", "send_fail", "send_info", "poll_ok")
MAX_BUCKETS = 3600
_NS = 1_000_000_000


def _nice_bucket(span_ns: int, bucket_ns: int) -> int:
    """`bucket_ns`, or the smallest 1/2/5 x 10^k seconds that keeps the bucket count <= MAX_BUCKETS."""
    if span_ns // bucket_ns + 1 <= MAX_BUCKETS:
        return bucket_ns
    need = span_ns / (MAX_BUCKETS - 1)
    k = math.floor(math.log10(need))
    while True:
        for m in (1, 2, 5):
            cand = int(m * 10**k)
            if cand >= need and cand > bucket_ns and span_ns // cand + 1 <= MAX_BUCKETS:
                return cand
        k += 1


def _ms(a: np.ndarray) -> list:
    """ns (float array, NaN = no data) -> ms rounded to the microsecond, None for NaN."""
    out = np.round(np.asarray(a, dtype=np.float64) / 1e6, 3)
    return [None if math.isnan(x) else x for x in out.tolist()]


def grouped_quantiles(groups: np.ndarray, values: np.ndarray, ngroups: int) -> dict[str, np.ndarray]:
    """Per group 0..ngroups-1: count, p50/p95/p99 (linear interpolation) and max of int64 `values`.

    Quantile and max arrays are float64 with NaN for empty groups. One sort, no loop per group.
    """
    groups = np.asarray(groups, dtype=np.int64)
    values = np.asarray(values, dtype=np.int64)
    counts = np.bincount(groups, minlength=ngroups).astype(np.int64)
    out: dict[str, np.ndarray] = {"count": counts}
    empty = counts == 0
    if len(values) == 0:
        for name, _ in QUANTILES:
            out[name] = np.full(ngroups, np.nan)
        out["max"] = np.full(ngroups, np.nan)
        return out
    vmin, vmax = int(values.min()), int(values.max())
    if ngroups < (1 << 14) and vmin >= 0 and vmax < (1 << 48):
        sv = np.sort((groups << 48) | values) & ((1 << 48) - 1)  # one int64 sort by (group, value)
    else:
        sv = values[np.lexsort((values, groups))]
    ends = np.cumsum(counts)
    starts = ends - counts
    last = np.where(empty, 0, ends - 1)
    for name, q in QUANTILES:
        pos = starts + q * (counts - 1)
        lo = np.where(empty, 0, np.floor(pos)).astype(np.int64)
        hi = np.minimum(lo + 1, last)
        frac = pos - np.floor(pos)
        a, b = sv[lo].astype(np.float64), sv[hi].astype(np.float64)
        val = a + (b - a) * frac
        out[name] = np.where(empty, np.nan, val)
    out["max"] = np.where(empty, np.nan, sv[last].astype(np.float64))
    return out


def _series_stats(stats: dict[str, np.ndarray], sl: slice) -> dict[str, list]:
    r: dict[str, list] = {"count": stats["count"][sl].tolist()}
    for name, _ in QUANTILES:
        r[name] = _ms(stats[name][sl])
    r["max"] = _ms(stats["max"][sl])
    return r


def _overall(values: np.ndarray) -> dict[str, Any]:
    """count, mean and quantiles (ms) of all `values` (ns)."""
    n = len(values)
    if n == 0:
        return {"count": 0, "mean": None, **{name: None for name, _ in QUANTILES}, "max": None}
    v = values.astype(np.float64)
    qs = np.quantile(v, [q for _, q in QUANTILES])
    r: dict[str, Any] = {"count": int(n), "mean": _ms(np.array([v.mean()]))[0]}
    for (name, _), x in zip(QUANTILES, _ms(qs), strict=True):
        r[name] = x
    r["max"] = _ms(np.array([v.max()]))[0]
    return r


def _py(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, tuple | np.ndarray):
        return [_py(i) for i in x]
    if isinstance(x, list):
        return [_py(i) for i in x]
    return x


def _empty(bucket_s: float) -> dict[str, Any]:
    empty_stats = {"count": [], **{name: [] for name, _ in QUANTILES}, "max": []}
    return {
        "valid": True, "bucket_s": bucket_s, "bucket_s_requested": bucket_s, "t0_ns": 0,
        "series": {"t": [], **{k: [] for k in ALWAYS}, "deliveries": []},
        "latency": {"send": {o: dict(empty_stats) for o in OUTCOMES}, "e2e": dict(empty_stats)},
        "summary": {
            "duration_s": 0.0, "buckets": 0, "operations": 0,
            "completed": {**dict.fromkeys(ALWAYS, 0), "deliveries": 0},
            "rates": {**dict.fromkeys(ALWAYS), "deliveries": None},
            "sends": {**dict.fromkeys(OUTCOMES, 0), "open": 0},
            "send_latency_ms": {o: _overall(np.zeros(0, np.int64)) for o in (*OUTCOMES, "all")},
            "e2e_latency_ms": _overall(np.zeros(0, np.int64)),
            "e2e_negative": 0,
        },
        "faults": [],
    }


def check_perf(h: History, bucket_s: float = 1.0) -> dict[str, Any]:
    """Throughput, send latency and end-to-end latency of `h` per `bucket_s` seconds (see module doc)."""
    if not bucket_s > 0:
        raise ValueError(f"bucket_s must be positive, got {bucket_s!r}")
    if len(h) == 0:
        return _empty(float(bucket_s))
    time = h.time
    t0, t1 = int(time.min()), int(time.max())
    span = t1 - t0
    requested_ns = max(1, round(bucket_s * _NS))
    bucket_ns = _nice_bucket(span, requested_ns)
    nb = span // bucket_ns + 1

    def bucket(t: np.ndarray) -> np.ndarray:
        """Bucket of times of the history's operations (all within [t0, t1]: no clipping needed)."""
        b = np.subtract(t, t0, dtype=np.int64)
        b //= bucket_ns
        return b

    # --- throughput: completions of client operations per (f, type, bucket) ----------------------
    fnames = sorted(h.fnames)
    fmap = np.array([fnames.index(f) for f in h.fnames] or [0], dtype=np.int64)
    nf = len(fnames)
    comp = h.tcode > 0
    if h.nemesis_code >= 0:
        comp &= h.proc != h.nemesis_code
    key = bucket(time[comp])
    key += (fmap[h.fcode[comp]] * len(TYPES) + h.tcode[comp]) * nb
    grid = np.bincount(key, minlength=max(nf, 1) * len(TYPES) * nb).reshape(max(nf, 1), len(TYPES), nb)
    series: dict[str, list] = {"t": np.round(np.arange(nb) * (bucket_ns / _NS), 9).tolist()}
    named: dict[str, np.ndarray] = {}
    for k in ALWAYS:
        named[k] = np.zeros(nb, dtype=np.int64)
    for fi, fname in enumerate(fnames):
        for ti in range(1, len(TYPES)):
            row = grid[fi, ti]
            name = f"{fname}_{TYPES[ti]}"
            if name in named or row.any():
                named[name] = row
    d = h.delivery_cols
    named["deliveries"] = np.bincount(bucket(d.time), minlength=nb) if len(d) else np.zeros(nb, int)
    for k, v in named.items():
        series[k] = v.tolist()

    # --- send latency, by outcome, bucketed by completion time ----------------------------------
    s = h.send_cols
    ctime = s.complete_time
    lat = ctime - s.invoke_time
    done = ctime >= 0
    send_lat: dict[str, Any] = {}
    per_outcome: dict[str, np.ndarray] = {}
    # codes here: -1 open, 0 ok, 1 fail, 2 info (the order of OUTCOMES)
    ocode = np.array([OUTCOMES.index(o) if o in OUTCOMES else -1 for o in SEND_OUTCOMES], dtype=np.int64)[s.outcome]
    n_outcome = np.bincount(ocode + 1, minlength=len(OUTCOMES) + 1)  # [open, ok, fail, info]
    m = done & (ocode >= 0)
    stats = grouped_quantiles(ocode[m] * nb + bucket(ctime[m]), lat[m], len(OUTCOMES) * nb)
    for i, o in enumerate(OUTCOMES):
        send_lat[o] = _series_stats(stats, slice(i * nb, (i + 1) * nb))
        per_outcome[o] = lat[m & (ocode == i)]

    # --- end-to-end latency: first delivery - first send invoke, per id -------------------------
    e2e_stats, e2e_all, negative = _e2e(h, bucket, nb)

    duration_s = span / _NS
    completed = {k: int(v.sum()) for k, v in named.items()}
    summary = {
        "duration_s": duration_s,
        "buckets": int(nb),
        "operations": len(h),
        "completed": completed,
        "rates": {k: (round(n / duration_s, 3) if duration_s > 0 else None) for k, n in completed.items()},
        "sends": {**{o: int(n_outcome[i + 1]) for i, o in enumerate(OUTCOMES)}, "open": int(n_outcome[0])},
        "send_latency_ms": {
            **{o: _overall(per_outcome[o]) for o in OUTCOMES},
            "all": _overall(lat[m]),
        },
        "e2e_latency_ms": _overall(e2e_all),
        "e2e_negative": negative,
    }
    faults = [
        {"fault": _py(fault), "nodes": _py(nodes), "start_s": (start - t0) / _NS, "stop_s": (stop - t0) / _NS,
         "unhealed": unhealed}
        for fault, nodes, start, stop, _, unhealed in h.fault_windows
    ]
    return {
        "valid": True,
        "bucket_s": bucket_ns / _NS,
        "bucket_s_requested": float(bucket_s),
        "t0_ns": t0,
        "series": series,
        "latency": {"send": send_lat, "e2e": _series_stats(e2e_stats, slice(0, nb))},
        "summary": summary,
        "faults": faults,
    }


def _e2e(h: History, bucket, nb: int) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """Per-bucket stats of e2e latency, all e2e latencies (ns) and the count of negative ones."""
    s, d = h.send_cols, h.delivery_cols
    if len(s.id) == 0 or len(d) == 0:
        return grouped_quantiles(np.zeros(0, np.int64), np.zeros(0, np.int64), nb), np.zeros(0, np.int64), 0
    k = h.n_ids
    big = np.iinfo(np.int64).max
    first_send = np.full(k, big, dtype=np.int64)
    np.minimum.at(first_send, s.id, s.invoke_time)
    first_del = np.full(k, big, dtype=np.int64)
    np.minimum.at(first_del, d.id, d.time)
    both = (first_send < big) & (first_del < big)
    e2e = first_del[both] - first_send[both]
    at = first_del[both]
    neg = e2e < 0
    e2e, at = e2e[~neg], at[~neg]
    return grouped_quantiles(bucket(at), e2e, nb), e2e, int(neg.sum())
