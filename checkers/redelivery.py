"""The redelivered flag: systems that mark a redelivery (RabbitMQ's `redelivered`, JetStream's delivery count)
promise, where the flag is *not* set, that the message was never delivered before (RabbitMQ's reliability guide).
A history can check that promise for messages stored exactly once.

A delivery is an **unflagged redelivery** when it is not marked `redelivered`, an earlier delivery of the same id
exists (to any consumer), and the id was sent in exactly one attempt (so only one copy can exist: a retried send
may have stored a second copy, whose first delivery is rightly unmarked). Applicable only to histories whose
deliveries ever carry the mark (a system that marks nothing promises nothing). It is reported, with examples and
their lines, and never fails a verdict: it is a promise about the flag, not about delivery.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from checkers.history import History
from checkers.vocabulary import id_order


def check_redelivery(h: History, limit: int = 1000) -> dict[str, Any]:
    """The `redelivery` section of results.json."""
    d, s = h.delivery_cols, h.send_cols
    if not len(d.id) or not bool(d.redelivered.any()):
        return {"applicable": False, "counts": {"unflagged_redeliveries": 0}, "unflagged": []}
    attempts = np.bincount(s.id, minlength=h.n_ids) if len(s.id) else np.zeros(h.n_ids, dtype=np.int64)
    order = np.lexsort((d.line, d.id))  # each id's deliveries in history order
    ids = d.id[order]
    earlier = np.zeros(len(ids), dtype=bool)
    earlier[1:] = ids[1:] == ids[:-1]
    # for each delivery in that order, the position of its id's first delivery
    first = np.maximum.accumulate(np.where(earlier, 0, np.arange(len(ids))))
    bad_pos = np.flatnonzero(earlier & ~d.redelivered[order] & (attempts[ids] == 1))
    bad = order[bad_pos]
    examples = []
    for k in bad_pos[np.argsort(d.line[bad])][:limit].tolist():
        i = int(order[k])
        (mid,) = h.id_table.strings(np.array([d.id[i]], dtype=np.int64))
        examples.append({"id": mid, "line": int(d.line[i]), "consumer": h.processes[int(d.proc[i])],
                         "first_delivered_line": int(d.line[order[first[k]]])})
    examples.sort(key=lambda e: (id_order(e["id"]), e["line"]))
    return {"applicable": True, "counts": {"unflagged_redeliveries": len(bad)}, "unflagged": examples}
