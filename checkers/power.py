"""What the power-loss faults erased, read from the history: each `start-fault` of a power loss carries
`{"dropped": {node: {"files": N, "bytes": B}}}` (docs/extensions.md). A power loss that erased nothing on a
node was vacuous there (every write had been fsynced, or nothing was written since the last fsync): a run whose
power losses were all vacuous tested a kill, not a power loss, and results say so.

The values are read from the file on demand, only for histories that mention `"dropped"` (a scan at memory
speed): the reader keeps a fault's name and nodes, not the rest of its value.
"""

from __future__ import annotations

from typing import Any

import msgspec

from checkers.history import History

NEEDLE = b'"dropped"'


def power_losses(h: History) -> list[dict[str, Any]]:
    """Every power loss the history records, in order: fault, nodes, start (history time) and what each node's
    disk erased (`bytes` -1: the disk could not count, as with LazyFS)."""
    if not h.fault_ops or not h.mentions(NEEDLE):
        return []
    rows = {int(h.line[r]): int(h.time[r]) for r, _, _ in h.fault_ops}
    out = []
    dec = msgspec.json.Decoder()
    with open(h.source, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            if n not in rows or NEEDLE not in raw:
                continue
            try:
                op = dec.decode(raw)
            except msgspec.DecodeError:
                continue
            v = op.get("value") if isinstance(op, dict) else None
            if isinstance(v, dict) and op.get("f") == "start-fault" and isinstance(v.get("dropped"), dict):
                out.append({"fault": v.get("fault"), "nodes": v.get("nodes"), "start": rows[n], "line": n,
                            "dropped": v["dropped"]})
    return out


def vacuous(losses: list[dict[str, Any]], t0: int) -> list[str]:
    """A warning for each power loss that erased nothing on a node."""
    out = []
    for p in losses:
        none = [n for n, d in p["dropped"].items() if isinstance(d, dict) and d.get("bytes") == 0]
        if none:
            out.append(f"{p['fault']} at {(p['start'] - t0) / 1e9:.3f}s erased nothing on {', '.join(none)}: every "
                       "write there had been fsynced, so for that node it was a kill, not a power loss")
    return out
