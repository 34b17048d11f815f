"""Delivery classification and verdicts of history contract v1, vectorised.

Set algebra over message ids, done on the integer id codes of `History.id_table`
(one code per distinct id across sends, polls and effects): counts per id are
bincounts, sets are boolean tables indexed by code, so a history of millions of
operations is classified without a Python loop per operation; ids become strings
only for the lists that go into the results. Beyond the contract it says, for
each lost message, whether later messages of the same producer were delivered
(lost in the middle: the worst kind), and gathers for each anomalous message
what explains it.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from checkers.history import OUTCOMES, History
from checkers.vocabulary import ANOMALIES, GUARANTEES, check_guarantee, failing_anomalies, id_order
from checkers.vocabulary import DELIVERY_COUNTS as COUNT_KEYS

LISTS = ("lost", "unexpected", "aborted_read", "lost_effects")
MAPS = ("duplicated", "duplicated_effects")
_OK, _FAIL = OUTCOMES.index("ok"), OUTCOMES.index("fail")


class Details(Protocol):
    """What a history's values say beyond the columns, for explanations. Given for histories of API requests
    (checkers.idempotency.Requests): there the system acts before it answers, so a loss is the answer's, and
    only faults that overlapped the request can explain it."""

    def send_detail(self, i: int) -> dict[str, Any]:
        """Fields to add to the explanation of send `i` (an index into `send_cols`)."""
        ...

    def delivery_detail(self, j: int) -> dict[str, Any]:
        """Fields to add to the explanation of delivery `j` (an index into `delivery_cols`)."""
        ...


def classify(h: History) -> dict[str, Any]:
    """The contract's sets as boolean tables over id codes, and per-id counts.

    Every key of COUNT_KEYS maps to a mask over id codes, except `duplicated` and
    `duplicated_effects`, which map to (codes, counts) sorted by code. `deliveries` and
    `applied` hold per-id counts (`applied` is None without an effects read).
    """
    k = h.n_ids
    s = h.send_cols
    n_all = np.bincount(s.id, minlength=k)
    n_ok = np.bincount(s.id[s.outcome == _OK], minlength=k)
    n_fail = np.bincount(s.id[s.outcome == _FAIL], minlength=k)
    attempted = n_all > 0
    acknowledged = n_ok > 0
    failed = attempted & ~acknowledged & (n_fail == n_all)
    indeterminate = attempted & ~acknowledged & (n_fail < n_all)

    dcount = np.bincount(h.delivery_cols.id, minlength=k)
    delivered = dcount > 0
    dup = np.flatnonzero(dcount > 1)
    out: dict[str, Any] = {
        "attempted": attempted,
        "acknowledged": acknowledged,
        "failed": failed,
        "indeterminate": indeterminate,
        "delivered": delivered,
        "lost": acknowledged & ~delivered,
        "duplicated": (dup, dcount[dup]),
        "unexpected": delivered & ~attempted,
        "aborted_read": delivered & failed,
        "recovered": indeterminate & delivered,
        "unresolved": indeterminate & ~delivered,
        "deliveries": dcount,
        "applied": None,
    }
    eff = h.effect_counts
    if eff is not None:
        codes, counts = eff
        applied = np.zeros(k, dtype=np.int64)
        applied[codes] = counts  # codes of one read are distinct
        out["applied"] = applied
        out["lost_effects"] = acknowledged & (applied == 0)
        many = counts > 1
        order = np.argsort(codes[many], kind="stable")
        out["duplicated_effects"] = (codes[many][order], counts[many][order])
    else:
        out["lost_effects"] = np.zeros(k, dtype=bool)
        out["duplicated_effects"] = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    return out


def verdicts(counts: dict[str, int], effects: bool) -> dict[str, bool]:
    """Which guarantees the classified history satisfies (contract v1, 'Verdict'). With an effect store,
    effects are the ground truth for what was processed: duplicate deliveries the consumer absorbed do
    not fail a guarantee, duplicate effects do."""
    return {g: all(counts[k] == 0 for k in failing_anomalies(g, effects)) for g in GUARANTEES}


def _by_id(h: History, codes: np.ndarray) -> list[tuple[str, int]]:
    """(id, code) pairs in id order (natural: "788" before "1000")."""
    return sorted(zip(h.id_table.strings(codes), codes.tolist(), strict=True), key=lambda p: id_order(p[0]))


def _lost_middle(h: History, lost: np.ndarray, delivered: np.ndarray) -> dict[int, int]:
    """For each lost id (code): how many later messages of the same producer were delivered.

    A message's producer is `value.producer` of its first send when given, else the sending
    process (compared as strings); "later" means a first send further down the history.
    """
    if len(lost) == 0:
        return {}
    s = h.send_cols
    n = len(s.id)
    first = np.full(h.n_ids, n, dtype=np.int64)  # per id: index (in send_cols) of its first send
    np.minimum.at(first, s.id, np.arange(n, dtype=np.int64))

    def names(idx: np.ndarray) -> list[str]:
        """Producer names of the sends at `idx`."""
        out = [str(h.processes[p]) for p in s.proc[idx].tolist()]
        if s.producer is not None:
            out = [o if p is None else p for o, p in zip(out, s.producer[idx].tolist(), strict=True)]
        return out

    lost_first = first[lost]
    lost_names = names(lost_first)
    # sends whose producer is one of those: by process (a name may be the str of an int process) ...
    code_of = {p: i for i, p in enumerate(h.processes)}
    match = np.zeros(len(h.processes), dtype=bool)
    for name in set(lost_names):
        for p in (name, _as_int(name)):
            if p is not None and p in code_of:
                match[code_of[p]] = True
    cand = match[s.proc]
    if s.producer is not None:  # ... or by `value.producer`
        given = np.flatnonzero(s.producer != None)  # noqa: E711 - elementwise
        cand[given] = np.isin(s.producer[given].astype(str), list(set(lost_names)))
    # ... that are the first send of a delivered id
    idx = np.flatnonzero(cand)
    idx = idx[(first[s.id[idx]] == idx) & delivered[s.id[idx]]]
    by_name: dict[str, list[int]] = {}
    for name, i in zip(names(idx), idx.tolist(), strict=True):
        by_name.setdefault(name, []).append(i)
    out = {}
    for code, name, f in zip(lost.tolist(), lost_names, lost_first.tolist(), strict=True):
        later = by_name.get(name, [])
        out[code] = len(later) - int(np.searchsorted(later, f, side="right"))
    return out


def _as_int(name: str) -> int | None:
    """The integer whose str() is `name`, if any."""
    try:
        v = int(name)
    except ValueError:
        return None
    return v if str(v) == name else None


def _groups(codes: np.ndarray, chosen: np.ndarray) -> dict[int, np.ndarray]:
    """For each chosen code: the positions in `codes` holding it, in order."""
    mark = np.zeros(int(max(codes.max(initial=-1), chosen.max(initial=-1))) + 1, dtype=bool)
    mark[chosen] = True
    sel = np.flatnonzero(mark[codes]) if len(codes) else np.zeros(0, dtype=np.int64)
    sel = sel[np.argsort(codes[sel], kind="stable")]
    c = codes[sel]
    cuts = np.flatnonzero(c[1:] != c[:-1]) + 1
    return {int(g[0]): sel[a:b] for g, a, b in zip(np.split(c, cuts), np.r_[0, cuts], np.r_[cuts, len(c)],
                                                    strict=True) if len(g)}


def explain(h: History, c: dict[str, Any], ids_by_class: dict[str, list[tuple[str, int]]],
            middle: dict[int, int], limit: int, details: Details | None = None) -> dict[str, dict]:
    """What explains each anomalous message: its sends, deliveries, effects and overlapping faults. With
    `details` (API requests), a loss's faults are those that overlapped its requests up to the last answer,
    and none is called its likely cause."""
    chosen: dict[str, list[str]] = {}
    code_of: dict[str, int] = {}
    for cls in ANOMALIES:
        for i, code in ids_by_class[cls][:limit]:
            chosen.setdefault(i, []).append(cls)
            code_of[i] = code
    if not chosen:
        return {}
    codes = np.array(list(code_of.values()), dtype=np.int64)
    s, d = h.send_cols, h.delivery_cols
    s_groups, d_groups = _groups(s.id, codes), _groups(d.id, codes)
    windows = h.fault_windows
    f_start = np.array([w[2] for w in windows], dtype=np.int64)
    f_stop = np.array([w[3] for w in windows], dtype=np.int64)
    end = int(h.time.max())
    applied = c["applied"]
    procs, parts = h.processes, h.partitions
    taken = _positions_taken(h, [code_of[i] for i, cl in chosen.items() if "lost" in cl or "lost_effects" in cl])
    out: dict[str, dict] = {}
    for i, classes in chosen.items():
        code = code_of[i]
        times = []
        send_list, del_list = [], []
        sel = s_groups.get(code)
        if sel is not None:
            for k, proc, it, il, oc, ct, cl, part, off in zip(
                    sel.tolist(), s.proc[sel].tolist(), s.invoke_time[sel].tolist(), s.invoke_line[sel].tolist(),
                    s.outcome[sel].tolist(), s.complete_time[sel].tolist(), s.complete_line[sel].tolist(),
                    s.part[sel].tolist(), s.offset[sel].tolist(), strict=True):
                send_list.append({
                    "process": procs[proc], "invoke_time": it, "invoke_line": il, "outcome": OUTCOMES[oc],
                    "complete_time": None if ct < 0 else ct, "complete_line": None if cl < 0 else cl,
                    "partition": None if part < 0 else parts[part], "offset": None if off < 0 else off,
                    **(details.send_detail(k) if details is not None else {}),
                })
                times += [it, ct]
        sel = d_groups.get(code)
        if sel is not None:
            for k, proc, t, line, part, off, red in zip(
                    sel.tolist(), d.proc[sel].tolist(), d.time[sel].tolist(), d.line[sel].tolist(),
                    d.part[sel].tolist(), d.offset[sel].tolist(), d.redelivered[sel].tolist(), strict=True):
                del_list.append({
                    "process": procs[proc], "time": t, "line": line,
                    "partition": None if part < 0 else parts[part], "offset": None if off < 0 else off,
                    "redelivered": red, **(details.delivery_detail(k) if details is not None else {}),
                })
                times.append(t)
        times = [t for t in times if t >= 0]
        lo = min(times) if times else 0
        hi = end if ("lost" in classes or "lost_effects" in classes or not times) else max(times)
        over = np.flatnonzero((f_start <= hi) & (f_stop >= lo)).tolist()
        likely = None
        takers: dict[int, int] = {}  # id code -> ack time of an id acknowledged at this one's position
        if details is not None and ("lost" in classes or "lost_effects" in classes):
            # an API acts before it answers: what the answer said was decided by its end, so only the faults
            # that overlapped the requests up to the last answer can explain it (no window is the likely cause)
            acks = [x["complete_time"] for x in send_list if x["outcome"] == "ok" and x["complete_time"] is not None]
            first = min((x["invoke_time"] for x in send_list), default=lo)
            last = max(acks, default=end)
            over = sorted((j for j in np.flatnonzero((f_start <= last) & (f_stop >= first)).tolist()),
                          key=lambda j: (f_start[j], j))
        elif "lost" in classes or "lost_effects" in classes:
            # a loss happens after the acknowledgement: the windows still open at or after it, in order; the
            # first is the likely cause
            acks = [x["complete_time"] for x in send_list if x["outcome"] == "ok" and x["complete_time"] is not None]
            if acks:
                over = [j for j in over if f_stop[j] >= min(acks)]
            over.sort(key=lambda j: (f_start[j], j))
            likely = over[0] if over else None
            # where the log shows it: another acknowledged id at this id's position, and the window of its ack
            for other, t in taken.get(code, []):
                takers.setdefault(other, t)
        entry: dict[str, Any] = {
            "classes": classes,
            "sends": send_list,
            "deliveries": del_list,
            "effects": None if applied is None else int(applied[code]),
            "faults": [{"fault": windows[j][0], "nodes": windows[j][1], "start": windows[j][2],
                        "stop": windows[j][3], "unhealed": windows[j][5],
                        **({"likely_cause": True} if j == likely else {}),
                        **_taken_in(j, takers, f_start, f_stop, h)} for j in over],
        }
        if code in middle:
            entry["later_delivered"] = middle[code]
        out[i] = entry
    return out


def _positions_taken(h: History, lost: list[int]) -> dict[int, list[tuple[int, int]]]:
    """For each lost id (code) acknowledged at a position (partition, offset): the other ids acknowledged at
    that same position, with their ack times. One pass over the sends, whatever the number of lost ids."""
    s = h.send_cols
    if not lost or not len(s.id):
        return {}
    ok = (s.outcome == _OK) & (s.offset >= 0) & (s.part >= 0)
    mine = np.flatnonzero(np.isin(s.id, np.array(lost, dtype=np.int64)) & ok)
    # the sends at one of those offsets (in any partition: few), then exactly at a lost id's position
    at = np.flatnonzero(ok & np.isin(s.offset, s.offset[mine]))
    by_key: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for p, o, c, t in zip(s.part[at].tolist(), s.offset[at].tolist(), s.id[at].tolist(),
                          s.complete_time[at].tolist(), strict=True):
        by_key.setdefault((p, o), []).append((c, t))
    out: dict[int, list[tuple[int, int]]] = {}
    for p, o, c in zip(s.part[mine].tolist(), s.offset[mine].tolist(), s.id[mine].tolist(), strict=True):
        out.setdefault(c, []).extend((other, t) for other, t in by_key.get((p, o), []) if other != c)
    return out


def _taken_in(j: int, takers: dict[int, int], f_start: np.ndarray, f_stop: np.ndarray,
              h: History) -> dict[str, Any]:
    """The ids acknowledged at the lost id's position during window j, if any (`offset_taken_by`)."""
    ids = [c for c, t in takers.items() if f_start[j] <= t <= f_stop[j]]
    return {"offset_taken_by": h.id_table.strings(np.array(ids, dtype=np.int64))} if ids else {}


def check_delivery(h: History, guarantee: str = "exactly-once", explain_limit: int = 1000,
                   details: Details | None = None) -> dict[str, Any]:
    """The `delivery` section of results.json for a claimed guarantee. `details`, for histories of API
    requests, adds what their values say to the explanations; lost in the middle (a queue's notion: later
    messages of the same producer delivered) is then not computed."""
    check_guarantee(guarantee)
    c = classify(h)
    effects = c["applied"] is not None
    counts = {k: (len(c[k][0]) if k in MAPS else int(np.count_nonzero(c[k]))) for k in COUNT_KEYS}
    holds = verdicts(counts, effects)
    ids_by_class: dict[str, list[tuple[str, int]]] = {k: _by_id(h, np.flatnonzero(c[k])) for k in LISTS}
    dups: dict[str, dict[str, int]] = {}
    for k in MAPS:
        codes, n = c[k]
        pairs = sorted(zip(h.id_table.strings(codes), codes.tolist(), n.tolist(), strict=True),
                       key=lambda p: id_order(p[0]))
        ids_by_class[k] = [(i, code) for i, code, _ in pairs]
        dups[k] = {i: m for i, _, m in pairs}
    lost = np.array([code for _, code in ids_by_class["lost"]], dtype=np.int64)
    middle = _lost_middle(h, lost, c["delivered"]) if details is None else {}
    valid: bool | str = holds[guarantee]
    reason = None
    warnings = []
    if counts["attempted"] == 0 and counts["unexpected"] == 0:
        valid, reason = "unknown", "the history has no send operations, so no delivery can be judged"
    elif counts["attempted"] == 0:  # the contract: a delivered id never sent is unexpected, whatever else is missing
        warnings.append("no send operations were recorded: every delivered id is unexpected (was the producers' "
                        "history left out?)")
    lists = {k: [i for i, _ in ids_by_class[k]] for k in LISTS}
    result: dict[str, Any] = {
        "valid": valid,
        "counts": counts,
        **lists,
        "duplicated": dups["duplicated"],
        "duplicated_effects": dups["duplicated_effects"],
        "effects_checked": effects,
        "holds": holds,
        "lost_middle": [i for i, code in ids_by_class["lost"] if middle.get(code, 0) > 0],
        "explanations": explain(h, c, ids_by_class, middle, explain_limit, details),
        "explain_limit": explain_limit,
    }
    result["counts"]["lost_middle"] = len(result["lost_middle"])
    if details is not None:
        result["api"] = True  # sends are requests to a system that acts before it answers
    if reason:
        result["reason"] = reason
    if warnings:
        result["warnings"] = warnings
    return result
