"""The idempotency-key contract (docs/payments-contract.md): what the answers to API requests must be, judged
from the requests and answers themselves, beside the effects the delivery checker counts.

A history is one of API requests when its sends carry `idempotency_key` (docs/extensions.md): each send is a
request, its completion the answer (`status`, and `charge_id` when the answer named one), and each delivery an
execution by the system behind the API (a charge in the provider's record, with its `charge_id`). The system
acts *before* it answers, so nothing that happens after an answer can change what the answer was about.

Effects (charged twice; told it succeeded but never charged) are the delivery checker's. What effects cannot
show is judged here:

- `key_reuse_accepted`: a key reused with another payload must get a 4xx (422), whatever field differs. A 2xx
  either replayed an earlier answer (the client was told a charge of *its* payload happened, which did not) or
  executed the new payload (the key guarded nothing). It fails an exactly-once claim: the key is that claim's
  mechanism. Profiles that claim less report it without failing.

A key's payload is that of its first request (by invoke time) not answered `fail`: a 4xx changed nothing, so it
bound nothing. A request's payload is its send value without the bookkeeping fields (MARKERS). Everything here
is a pure function of the history; the values beyond the reader's columns are read from its file on demand
(API histories are small: one operation per request).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from checkers.history import OUTCOMES, History
from checkers.vocabulary import GUARANTEES, IDEMPOTENCY_ANOMALIES, failing_idempotency, id_order

KEY_FIELD = "idempotency_key"
MARKERS = ("producer", KEY_FIELD, "reuse", "burst")  # a send value's bookkeeping, not what was requested
ENTRY_PAYLOAD = ("id", "key", "amount")  # what an execution's entry says it executed, compared with a request
_OK, _FAIL = OUTCOMES.index("ok"), OUTCOMES.index("fail")


def is_api(h: History) -> bool:
    """Whether `h` records requests to an API with idempotency keys (some send carries `idempotency_key`).

    Asked before the checkers start, of every history: so it counts the send invokes from the rows (`send_cols`
    would be built here, alone, instead of beside the other shared columns in `check_history`'s threads)."""
    return bool(np.any(h.tcode[h.send["row"]] == 0)) and h.mentions(b'"' + KEY_FIELD.encode() + b'"')


def payload(value: dict[str, Any]) -> dict[str, Any]:
    """What a request asked for: its send value without the bookkeeping fields."""
    return {k: v for k, v in value.items() if k not in MARKERS}


@dataclass(frozen=True)
class Execution:
    """One execution in the system behind the API (a delivery), by the charge id it carries."""

    id: str
    line: int
    time: int
    entry: dict[str, Any]


class Requests:
    """A history's requests with their keys, payloads and answers, and the executions by charge id: what the
    idempotency check and the explanations of anomalies read beside the columns. Built once per history."""

    def __init__(self, h: History) -> None:
        self.h = h
        s = h.send_cols
        send_values, entry_values = h.values
        at = np.full(len(h), -1, dtype=np.int64)  # row -> index into send_values
        at[h.send["row"]] = np.arange(len(h.send["row"]))
        invoke = at[s.row]
        pair = h.pair[s.row]
        done = np.where(pair >= 0, at[np.where(pair >= 0, pair, 0)], -1)
        self.invoke_values: list[dict[str, Any]] = [v if isinstance(v, dict) else {} for v in
                                                    send_values[invoke].tolist()]
        self.answers: list[dict[str, Any]] = [
            (send_values[j] if isinstance(send_values[j], dict) else {}) if j >= 0 else {} for j in done.tolist()]
        d = h.delivery_cols
        self.entries: list[dict[str, Any]] = [e if isinstance(e, dict) else {} for e in entry_values[d.key].tolist()]
        self.executions: dict[str, Execution] = {}  # charge id -> its (first) execution
        for e, mid, line, t in zip(self.entries, h.id_table.strings(d.id), d.line.tolist(), d.time.tolist(),
                                   strict=True):
            cid = e.get("charge_id")
            if isinstance(cid, str) and cid not in self.executions:
                self.executions[cid] = Execution(str(mid), line, t, e)

    def key(self, i: int) -> Any:
        return self.invoke_values[i].get(KEY_FIELD)

    def replays(self, i: int) -> dict[str, Any] | None:
        """For an ok answer naming a charge: the execution it names when that was not one of this request's
        payload (another payment's charge, or this payment's charge of another amount), else None."""
        cid = self.answers[i].get("charge_id")
        if not isinstance(cid, str):
            return None
        ex = self.executions.get(cid)
        if ex is None:
            return {"charge_id": cid, "payment": None, "note": "no execution in the history carries this charge id"}
        mine = payload(self.invoke_values[i])
        differ = sorted(k for k in ENTRY_PAYLOAD if k in mine and k in ex.entry and ex.entry[k] != mine[k])
        if not differ:
            return None
        return {"charge_id": cid, "payment": ex.id, "executed": {k: ex.entry[k] for k in ENTRY_PAYLOAD
                                                               if k in ex.entry}, "differs_in": differ}

    def send_detail(self, i: int) -> dict[str, Any]:
        """What a request's value and answer add to its line in an explanation."""
        v, a = self.invoke_values[i], self.answers[i]
        out: dict[str, Any] = {"idempotency_key": v.get(KEY_FIELD)}
        for k in ("amount", "reuse", "burst"):
            if v.get(k) is not None:
                out[k] = v[k]
        for k in ("status", "charge_id"):
            if a.get(k) is not None:
                out[k] = a[k]
        if self.h.send_cols.outcome[i] == _OK:
            r = self.replays(i)
            if r is not None:
                out["replays"] = r
        return out

    def delivery_detail(self, j: int) -> dict[str, Any]:
        """What an execution's entry adds to its line in an explanation (charge id, amount, key, when the
        system recorded it executed)."""
        e = self.entries[j]
        return {k: e[k] for k in ("charge_id", "amount", KEY_FIELD, "executed_at") if e.get(k) is not None}


def _empty(applicable: bool) -> dict[str, Any]:
    return {"applicable": applicable, "valid": True,
            "counts": {"requests": 0, "keys": 0, "reused": 0, **dict.fromkeys(IDEMPOTENCY_ANOMALIES, 0)},
            **{k: [] for k in IDEMPOTENCY_ANOMALIES}, "holds": dict.fromkeys(GUARANTEES, True)}


def check_idempotency(h: History, guarantee: str, reqs: Requests | None, limit: int = 1000) -> dict[str, Any]:
    """The `idempotency` section of results.json: not applicable (and valid) unless `reqs` holds the history's
    requests (`is_api`)."""
    if reqs is None:
        return _empty(False)
    s = h.send_cols
    out = _empty(True)
    keyed = [i for i in range(len(s.id)) if isinstance(reqs.key(i), str)]
    order = sorted(keyed, key=lambda i: (int(s.invoke_time[i]), int(s.row[i])))
    bound: dict[str, int] = {}  # key -> the request that bound it (requests before it had all failed)
    reused: list[int] = []
    for i in order:
        k = reqs.key(i)
        if k not in bound:
            if s.outcome[i] != _FAIL:
                bound[k] = i
        elif payload(reqs.invoke_values[i]) != payload(reqs.invoke_values[bound[k]]):
            reused.append(i)
    accepted = sorted((i for i in reused if s.outcome[i] == _OK),
                      key=lambda i: (id_order(str(reqs.key(i))), int(s.row[i])))
    c = out["counts"]
    c.update(requests=len(keyed), keys=len({reqs.key(i) for i in keyed}), reused=len(reused),
             key_reuse_accepted=len(accepted))
    out["key_reuse_accepted"] = [_explain_reuse(h, reqs, i, bound[reqs.key(i)]) for i in accepted[:limit]]
    failing = {g: failing_idempotency(g) for g in GUARANTEES}
    out["holds"] = {g: all(c[k] == 0 for k in failing[g]) for g in GUARANTEES}
    out["valid"] = out["holds"][guarantee]
    return out


def _request(h: History, reqs: Requests, i: int) -> dict[str, Any]:
    s = h.send_cols
    ct, cl = int(s.complete_time[i]), int(s.complete_line[i])
    return {"id": reqs.invoke_values[i].get("id"), "process": h.processes[int(s.proc[i])],
            "payload": payload(reqs.invoke_values[i]), "outcome": OUTCOMES[int(s.outcome[i])],
            "invoke_time": int(s.invoke_time[i]), "invoke_line": int(s.invoke_line[i]),
            "complete_time": None if ct < 0 else ct, "complete_line": None if cl < 0 else cl,
            **{k: reqs.answers[i][k] for k in ("status", "charge_id") if reqs.answers[i].get(k) is not None}}


def _explain_reuse(h: History, reqs: Requests, i: int, first: int) -> dict[str, Any]:
    """A 2xx to a reused key: the key, both payloads, the answer, what it replayed or executed, and the faults
    that overlapped the request (before its answer: nothing after it can change what it answered)."""
    req, bound = _request(h, reqs, i), _request(h, reqs, first)
    differs = sorted(k for k in set(req["payload"]) | set(bound["payload"])
                     if req["payload"].get(k) != bound["payload"].get(k))
    out: dict[str, Any] = {"key": reqs.key(i), "differs_in": differs, "request": req, "first": bound}
    cid = req.get("charge_id")
    ex = reqs.executions.get(cid) if isinstance(cid, str) else None
    if ex is not None:
        same = all(ex.entry.get(k) == req["payload"].get(k) for k in ENTRY_PAYLOAD
                   if k in ex.entry and k in req["payload"])
        out["answer_names"] = {"charge_id": cid, "payment": ex.id, "line": ex.line, "time": ex.time,
                               "executed": {k: ex.entry[k] for k in ENTRY_PAYLOAD if k in ex.entry},
                               "of_this_payload": same}
    elif isinstance(cid, str):
        out["answer_names"] = {"charge_id": cid, "payment": None, "of_this_payload": False}
    lo, hi = req["invoke_time"], req["complete_time"] if req["complete_time"] is not None else req["invoke_time"]
    out["faults"] = [{"fault": w[0], "nodes": w[1], "start": w[2], "stop": w[3], "unhealed": w[5]}
                     for w in h.fault_windows if w[2] <= hi and w[3] >= lo]
    return out
