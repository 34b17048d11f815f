"""Delivery classification and verdicts of history contract v1, vectorised.

Set algebra over message ids, done with factorize/bincount/isin so that a
history of millions of operations is classified without a Python loop per
operation. Beyond the contract it says, for each lost message, whether later
messages of the same producer were delivered (lost in the middle: the worst
kind), and gathers for each anomalous message what explains it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from checkers.history import History

GUARANTEES = ("at-most-once", "at-least-once", "exactly-once")
COUNT_KEYS = ("attempted", "acknowledged", "failed", "indeterminate", "delivered", "lost", "duplicated",
              "unexpected", "aborted_read", "recovered", "unresolved", "lost_effects", "duplicated_effects")
ANOMALIES = ("lost", "duplicated", "unexpected", "aborted_read", "lost_effects", "duplicated_effects")


def _ids(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=object)


def _isin(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hash-based membership of `a` in `b` (both object arrays of ids)."""
    if len(a) == 0:
        return np.zeros(0, dtype=bool)
    return pd.Index(a).isin(b) if len(b) else np.zeros(len(a), dtype=bool)


def _sorted(a: np.ndarray) -> list:
    return sorted(a.tolist())


def classify(h: History) -> dict[str, Any]:
    """The contract's sets, as object arrays of ids (and id -> count maps for duplicates)."""
    sends = h.sends
    codes, attempted = pd.factorize(sends["id"])
    attempted = _ids(attempted)
    k = len(attempted)
    outcome = sends["outcome"].to_numpy()
    n_all = np.bincount(codes, minlength=k)
    n_ok = np.bincount(codes[outcome == "ok"], minlength=k)
    n_fail = np.bincount(codes[outcome == "fail"], minlength=k)
    acknowledged = attempted[n_ok > 0]
    failed = attempted[(n_ok == 0) & (n_fail == n_all)]
    indeterminate = attempted[(n_ok == 0) & (n_fail < n_all)]

    d = h.deliveries
    dcodes, delivered = pd.factorize(d["id"])
    delivered = _ids(delivered)
    dcount = np.bincount(dcodes, minlength=len(delivered))
    dup_mask = dcount > 1

    out: dict[str, Any] = {
        "attempted": attempted,
        "acknowledged": acknowledged,
        "failed": failed,
        "indeterminate": indeterminate,
        "delivered": delivered,
        "lost": acknowledged[~_isin(acknowledged, delivered)],
        "duplicated": dict(zip(delivered[dup_mask].tolist(), dcount[dup_mask].tolist(), strict=True)),
        "unexpected": delivered[~_isin(delivered, attempted)],
        "aborted_read": delivered[_isin(delivered, failed)],
    }
    rec = _isin(indeterminate, delivered)
    out["recovered"] = indeterminate[rec]
    out["unresolved"] = indeterminate[~rec]
    eff = h.effects
    if eff is not None:
        applied = _ids([i for i, n in eff.items() if n > 0])
        out["lost_effects"] = acknowledged[~_isin(acknowledged, applied)]
        out["duplicated_effects"] = {i: n for i, n in eff.items() if n > 1}
    else:
        out["lost_effects"] = _ids([])
        out["duplicated_effects"] = {}
    return out


def verdicts(c: dict[str, Any], effects: bool) -> dict[str, bool]:
    """Which guarantees the classified history satisfies (contract v1, 'Verdict')."""
    clean = len(c["unexpected"]) == 0 and len(c["aborted_read"]) == 0
    # With an effect store, effects are the ground truth for what was processed: duplicate
    # deliveries the consumer absorbed do not fail a guarantee, duplicate effects do.
    no_dup = not (c["duplicated_effects"] if effects else c["duplicated"])
    no_loss = len(c["lost_effects"] if effects else c["lost"]) == 0
    return {
        "at-most-once": clean and no_dup,
        "at-least-once": clean and no_loss,
        "exactly-once": clean and no_dup and no_loss,
    }


def _lost_middle(h: History, lost: np.ndarray, delivered: np.ndarray) -> dict[str, int]:
    """For each lost id: how many later messages of the same producer were delivered."""
    if len(lost) == 0:
        return {}
    sends = h.sends
    first = sends.drop_duplicates("id")[["id", "row"]].copy()
    first["producer"] = _producers(h, first)
    first["delivered"] = _isin(first["id"].to_numpy(), delivered)
    dl = first[first["delivered"]]
    out: dict[str, int] = {}
    by_prod = {p: np.sort(g["row"].to_numpy()) for p, g in dl.groupby("producer", sort=False)}
    lost_rows = first[_isin(first["id"].to_numpy(), lost)]
    for i, row, prod in zip(lost_rows["id"], lost_rows["row"], lost_rows["producer"], strict=True):
        rows = by_prod.get(prod)
        out[i] = 0 if rows is None else int(len(rows) - np.searchsorted(rows, row, side="right"))
    return out


def _producers(h: History, first: pd.DataFrame) -> np.ndarray:
    """A message's producer: `value.producer` of its first send when given, else the sending process."""
    prod = h.ops["producer"].to_numpy()[first["row"].to_numpy()] if "producer" in h.ops else None
    procs = h.ops["process"].to_numpy()[first["row"].to_numpy()]
    if prod is None:
        return procs.astype(str)
    return np.where(pd.isna(prod), procs.astype(str), prod.astype(str))


def explain(h: History, c: dict[str, Any], ids_by_class: dict[str, list], middle: dict[str, int],
            limit: int) -> dict[str, dict]:
    """What explains each anomalous message: its sends, deliveries, effects and overlapping faults."""
    chosen: dict[str, list[str]] = {}
    for cls in ANOMALIES:
        for i in ids_by_class[cls][:limit]:
            chosen.setdefault(i, []).append(cls)
    if not chosen:
        return {}
    ids = _ids(list(chosen))
    sends = h.sends[_isin(h.sends["id"].to_numpy(), ids)]
    dels = h.deliveries[_isin(h.deliveries["id"].to_numpy(), ids)]
    faults = h.faults
    end = int(h.ops["time"].max())
    eff = h.effects
    out: dict[str, dict] = {}
    s_groups = {i: g for i, g in sends.groupby("id", sort=False)}
    d_groups = {i: g for i, g in dels.groupby("id", sort=False)}
    for i, classes in chosen.items():
        s, d = s_groups.get(i), d_groups.get(i)
        times = []
        send_list, del_list = [], []
        if s is not None:
            for r in s.itertuples(index=False):
                send_list.append({
                    "process": _py(r.process), "invoke_time": int(r.invoke_time), "invoke_line": int(r.invoke_line),
                    "outcome": r.outcome,
                    "complete_time": None if r.complete_time < 0 else int(r.complete_time),
                    "complete_line": None if r.complete_line < 0 else int(r.complete_line),
                    "partition": _py(r.partition), "offset": None if r.offset < 0 else int(r.offset),
                })
                times += [int(r.invoke_time), int(r.complete_time)]
        if d is not None:
            for r in d.itertuples(index=False):
                del_list.append({
                    "process": _py(r.process), "time": int(r.time), "line": int(r.line),
                    "partition": _py(r.partition), "offset": None if r.offset < 0 else int(r.offset),
                    "redelivered": bool(r.redelivered),
                })
                times.append(int(r.time))
        times = [t for t in times if t >= 0]
        lo = min(times) if times else 0
        hi = end if ("lost" in classes or "lost_effects" in classes or not times) else max(times)
        over = faults[(faults["start"] <= hi) & (faults["stop"] >= lo)] if len(faults) else faults
        entry: dict[str, Any] = {
            "classes": classes,
            "sends": send_list,
            "deliveries": del_list,
            "effects": None if eff is None else int(eff.get(i, 0)),
            "faults": [{"fault": f.fault, "nodes": f.nodes, "start": int(f.start), "stop": int(f.stop),
                        "unhealed": bool(f.unhealed)} for f in over.itertuples(index=False)],
        }
        if i in middle:
            entry["later_delivered"] = middle[i]
        out[i] = entry
    return out


def _py(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return None
    return x


def check_delivery(h: History, guarantee: str = "exactly-once", explain_limit: int = 1000) -> dict[str, Any]:
    """The `delivery` section of results.json for a claimed guarantee."""
    if guarantee not in GUARANTEES:
        raise ValueError(f"unknown guarantee {guarantee!r}; valid: {', '.join(GUARANTEES)}")
    c = classify(h)
    effects = h.effects is not None
    holds = verdicts(c, effects)
    counts = {k: len(c[k]) for k in COUNT_KEYS}
    lists = {k: _sorted(c[k]) for k in ("lost", "unexpected", "aborted_read", "lost_effects")}
    dups = {k: dict(sorted(c[k].items())) for k in ("duplicated", "duplicated_effects")}
    middle = _lost_middle(h, c["lost"], c["delivered"])
    valid: bool | str = holds[guarantee]
    reason = None
    if counts["attempted"] == 0:
        valid, reason = "unknown", "the history has no send operations, so no delivery can be judged"
    ids_by_class = {**lists, **{k: list(v) for k, v in dups.items()}}
    result: dict[str, Any] = {
        "valid": valid,
        "counts": counts,
        **lists,
        "duplicated": dups["duplicated"],
        "duplicated_effects": dups["duplicated_effects"],
        "effects_checked": effects,
        "holds": holds,
        "lost_middle": sorted(i for i, n in middle.items() if n > 0),
        "explanations": explain(h, c, ids_by_class, middle, explain_limit),
        "explain_limit": explain_limit,
    }
    result["counts"]["lost_middle"] = len(result["lost_middle"])
    if reason:
        result["reason"] = reason
    return result
