"""Ordering: messages of one producer that a consumer received out of the order they were sent in, for systems
that promise order per queue, topic or producer but record no offsets to compare.

A delivery of message `x` is **reordered** when the same consumer (process) had earlier received, for the first
time, a message `y` of the same producer (and, where deliveries carry partitions, the same partition) that was
sent only after `x` was acknowledged: x's acknowledgement happened before y's first send was invoked, so no
reading of the history lets y legitimately come first. Only first deliveries to a consumer count, and a
delivery marked `redelivered` never does: a redelivery of x after y is no reordering. Messages whose sends
overlapped (y sent while x was still unacknowledged) are never compared: their order was not decided.

Reordering is reported for every history; it fails a run only when the profile claims order (a claim beside
the delivery guarantees). Everything is numpy over id and process codes; Python loops run only over the
(capped) examples.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from checkers.history import OUTCOMES, History
from checkers.vocabulary import id_order

_OK = OUTCOMES.index("ok")
_NEVER = np.iinfo(np.int64).max


def _per_id(h: History) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per id code: the first send's invoke time, the first acknowledgement's time (_NEVER: none) and a
    producer code (-1: never sent)."""
    s, k = h.send_cols, h.n_ids
    invoked = np.full(k, _NEVER, dtype=np.int64)
    np.minimum.at(invoked, s.id, s.invoke_time)
    acked = np.full(k, _NEVER, dtype=np.int64)
    ok = s.outcome == _OK
    np.minimum.at(acked, s.id[ok], s.complete_time[ok])
    first = np.full(k, len(s.id), dtype=np.int64)
    np.minimum.at(first, s.id, np.arange(len(s.id), dtype=np.int64))
    names = [str(h.processes[p]) for p in s.proc.tolist()]
    if s.producer is not None:
        names = [n if p is None else str(p) for n, p in zip(names, s.producer.tolist(), strict=True)]
    codes = {name: i for i, name in enumerate(dict.fromkeys(names))}
    send_producer = np.fromiter((codes[n] for n in names), np.int64, len(names))
    producer = np.full(k, -1, dtype=np.int64)
    sent = first < len(s.id)
    producer[sent] = send_producer[first[sent]]
    return invoked, acked, producer


def check_order(h: History, claimed: bool = False, limit: int = 1000) -> dict[str, Any]:
    """The `order` section of results.json: reordered deliveries, failing `valid` only when order is claimed."""
    d = h.delivery_cols
    invoked, acked, producer = _per_id(h)
    # first deliveries of each id to each consumer, not marked as redelivered
    key = d.proc.astype(np.int64) * max(1, h.n_ids) + d.id
    _, first_idx = np.unique(key, return_index=True)
    keep = np.zeros(len(d.id), dtype=bool)
    keep[first_idx] = True
    keep &= ~d.redelivered & (producer[d.id] >= 0)
    idx = np.flatnonzero(keep)
    applicable = bool(len(idx) > 1)
    if not applicable:
        return {"applicable": False, "claimed": claimed, "valid": True, "counts": {"reordered": 0}, "reordered": []}
    # groups: (consumer, producer, partition), deliveries in history order within each
    group = np.stack([d.proc[idx].astype(np.int64), producer[d.id[idx]], d.part[idx].astype(np.int64)])
    order = np.lexsort((idx, group[2], group[1], group[0]))
    idx, g = idx[order], group[:, order]
    starts = np.ones(len(idx), dtype=bool)
    starts[1:] = np.any(g[:, 1:] != g[:, :-1], axis=0)
    inv = invoked[d.id[idx]]
    seg = np.cumsum(starts) - 1
    seg_start = np.flatnonzero(starts)
    # the latest first send among the messages delivered before each one in its group
    prev_max = _segmented_cummax(np.r_[-1, inv[:-1]], starts, seg)
    ack = acked[d.id[idx]]
    bad = (ack < _NEVER) & (prev_max > ack)
    reordered = idx[bad]
    examples = [_example(h, int(i), idx, seg, inv, seg_start, ack) for i in np.flatnonzero(bad)[:limit].tolist()]
    examples.sort(key=lambda e: (id_order(e["id"]), e["line"]))
    return {"applicable": applicable, "claimed": claimed, "valid": not (claimed and len(reordered)),
            "counts": {"reordered": len(reordered)}, "reordered": examples}


def _segmented_cummax(x: np.ndarray, starts: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """The running maximum of `x` (non-negative times, each the previous delivery's) that restarts at every
    segment (a group): a segment's first value is -1, since the delivery before it belongs to another group.
    Each segment is lifted above every earlier one, so one running maximum serves them all."""
    y = np.where(starts, -1, x).astype(np.int64)
    span = int(y.max()) + 2
    lifted = y + seg.astype(np.int64) * span
    return np.maximum.accumulate(lifted) - seg.astype(np.int64) * span


def _example(h: History, j: int, idx: np.ndarray, seg: np.ndarray, inv: np.ndarray, seg_start: np.ndarray,
             ack: np.ndarray) -> dict[str, Any]:
    """One reordered delivery: the message, the earlier-delivered one sent after it was acknowledged, their
    lines, and the faults between its acknowledgement and its delivery."""
    d, s = h.delivery_cols, h.send_cols
    lo = int(seg_start[seg[j]])
    before = [k for k in range(lo, j) if inv[k] > ack[j]]
    k = before[0]
    x, y = int(idx[j]), int(idx[k])
    x_id, y_id = h.id_table.strings(np.array([d.id[x], d.id[y]], dtype=np.int64))
    x_ack_line = int(s.complete_line[(s.id == d.id[x]) & (s.outcome == _OK)].min())
    y_invoke_line = int(s.invoke_line[s.id == d.id[y]].min())
    t_ack, t_del = int(ack[j]), int(d.time[x])
    faults = [{"fault": w[0], "nodes": w[1], "start": w[2], "stop": w[3]} for w in h.fault_windows
              if w[2] <= t_del and w[3] >= t_ack]
    return {"id": x_id, "line": int(d.line[x]), "acknowledged_line": x_ack_line,
            "consumer": h.processes[int(d.proc[x])],
            "partition": None if d.part[x] < 0 else h.partitions[int(d.part[x])],
            "after": {"id": y_id, "line": int(d.line[y]), "sent_line": y_invoke_line}, "faults": faults}
