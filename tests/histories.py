"""Hand-built histories for tests, and a reference classifier written straight from the contract."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from checkers.vocabulary import id_order


class Builder:
    """Appends contract-v1 operations with increasing times; `write` saves them as JSON Lines."""

    def __init__(self) -> None:
        self.ops: list[dict[str, Any]] = []
        self.t = 0

    def op(self, process: Any, type_: str, f: str, value: Any = None, **extra: Any) -> dict:
        self.t += 1_000_000
        o = {"time": self.t, "process": process, "type": type_, "f": f, "value": value, **extra}
        self.ops.append(o)
        return o

    def send(self, process: Any, mid: str, outcome: str | None = "ok", key: Any = None, **ok_extra: Any):
        self.op(process, "invoke", "send", {"id": mid, "key": key})
        if outcome is not None:
            value = {"id": mid, "key": key, **ok_extra} if outcome == "ok" else None
            self.op(process, outcome, "send", value)

    def poll(self, process: Any, ids: list, outcome: str = "ok"):
        msgs = [m if isinstance(m, dict) else {"id": m, "key": None} for m in ids]
        self.op(process, "invoke", "poll", None)
        self.op(process, outcome, "poll", {"messages": msgs} if outcome == "ok" else None)

    def effects(self, process: Any, counts: dict[str, int]):
        self.op(process, "invoke", "effects", None)
        self.op(process, "ok", "effects", {"counts": counts})

    def fault(self, kind: str, name: str, nodes: list | None = None):
        self.op("nemesis", "info", kind, {"fault": name, "nodes": nodes or []})

    def lines(self) -> list[str]:
        return [json.dumps(o) for o in self.ops]

    def write(self, path: Path) -> Path:
        Path(path).write_text("".join(line + "\n" for line in self.lines()))
        return Path(path)


def reference(ops: list[dict[str, Any]]) -> dict[str, Any]:
    """The contract's classification, computed naively, op by op, as a test oracle."""
    open_: dict[Any, list[dict]] = {}
    sends: dict[str, list[str]] = {}
    deliveries: Counter = Counter()
    effects = None
    for o in ops:
        p = o["process"]
        if p == "nemesis":
            continue
        if o["type"] == "invoke":
            open_.setdefault(p, []).append(o)
            if o["f"] == "send":
                sends.setdefault(o["value"]["id"], []).append("open")
                o["_slot"] = len(sends[o["value"]["id"]]) - 1
            continue
        inv = open_[p].pop()
        if o["f"] == "send":
            sends[inv["value"]["id"]][inv["_slot"]] = o["type"]
        elif o["f"] == "poll" and o["type"] == "ok":
            for m in o["value"]["messages"]:
                deliveries[m["id"]] += 1
        elif o["f"] == "effects" and o["type"] == "ok":
            effects = o["value"]["counts"]
    attempted = set(sends)
    acked = {i for i, s in sends.items() if "ok" in s}
    failed = {i for i, s in sends.items() if all(x == "fail" for x in s)}
    indet = {i for i, s in sends.items() if "ok" not in s and any(x in ("info", "open") for x in s)}
    delivered = set(deliveries)
    r: dict[str, Any] = {
        "attempted": attempted, "acknowledged": acked, "failed": failed, "indeterminate": indet,
        "delivered": delivered, "lost": acked - delivered,
        "duplicated": {i: n for i, n in deliveries.items() if n > 1},
        "unexpected": delivered - attempted, "aborted_read": delivered & failed,
        "recovered": indet & delivered, "unresolved": indet - delivered,
        "lost_effects": set(), "duplicated_effects": {},
    }
    if effects is not None:
        r["lost_effects"] = {i for i in acked if effects.get(i, 0) == 0}
        r["duplicated_effects"] = {i: n for i, n in effects.items() if n > 1}
    fx = effects is not None
    clean = not r["unexpected"] and not r["aborted_read"]
    no_dup = not (r["duplicated_effects"] if fx else r["duplicated"])
    no_loss = not (r["lost_effects"] if fx else r["lost"])
    r["holds"] = {"at-most-once": clean and no_dup, "at-least-once": clean and no_loss,
                  "exactly-once": clean and no_dup and no_loss}
    return r


def assert_matches_reference(delivery: dict[str, Any], ref: dict[str, Any]) -> None:
    """Every count, id list and verdict of a delivery result equals the oracle's."""
    for k in ("attempted", "acknowledged", "failed", "indeterminate", "delivered", "lost", "duplicated",
              "unexpected", "aborted_read", "recovered", "unresolved", "lost_effects", "duplicated_effects"):
        assert delivery["counts"][k] == len(ref[k]), k
    for k in ("lost", "unexpected", "aborted_read", "lost_effects"):
        assert delivery[k] == sorted(ref[k], key=id_order), k
    assert delivery["duplicated"] == dict(sorted(ref["duplicated"].items(), key=lambda kv: id_order(kv[0])))
    assert delivery["duplicated_effects"] == dict(sorted(ref["duplicated_effects"].items(),
                                                         key=lambda kv: id_order(kv[0])))
    assert delivery["holds"] == ref["holds"]
