"""Property tests: random correct histories are valid; one injected anomaly is reported as exactly that."""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkers.delivery import ANOMALIES, check_delivery
from checkers.history import read_history
from tests.histories import assert_matches_reference, reference

OUTCOMES = ["ok", "ok", "ok", "fail", "info", "open"]


def correct_history(rng: random.Random, effects: bool) -> tuple[list[dict], dict]:
    """Interleaved producers, consumers and a nemesis; every acked id delivered exactly once."""
    streams: list[list[dict]] = []
    next_proc = [100]
    status: dict[str, list[str]] = {}

    def new_proc() -> int:
        next_proc[0] += 1
        return next_proc[0]

    n_prod = rng.randint(1, 4)
    msgs = [f"p{rng.randrange(n_prod)}-{i}" for i in range(rng.randint(1, 40))]
    by_prod: dict[str, list[str]] = {}
    for m in msgs:
        by_prod.setdefault(m.split("-")[0], []).append(m)
    for prod, ids in by_prod.items():
        proc = new_proc()
        ops: list[dict] = []
        for m in ids:
            for _ in range(rng.randint(1, 3)):
                out = rng.choice(OUTCOMES)
                status.setdefault(m, []).append(out)
                ops.append({"process": proc, "type": "invoke", "f": "send",
                            "value": {"id": m, "key": prod, "producer": prod}})
                if out != "open":
                    ops.append({"process": proc, "type": out, "f": "send",
                                "value": {"id": m, "key": prod} if out == "ok" else None})
                if out in ("info", "open"):
                    streams.append(ops)
                    proc, ops = new_proc(), []
                if out == "ok":
                    break
        streams.append(ops)
    acked = [m for m, s in status.items() if "ok" in s]
    indet = [m for m, s in status.items() if "ok" not in s and ("info" in s or "open" in s)]
    to_deliver = acked + [m for m in indet if rng.random() < 0.5]
    rng.shuffle(to_deliver)
    consumers = [new_proc() for _ in range(rng.randint(1, 3))]
    cstreams: dict[int, list[dict]] = {c: [] for c in consumers}
    i = 0
    while i < len(to_deliver) or rng.random() < 0.2:
        c = rng.choice(consumers)
        batch = to_deliver[i:i + rng.randint(0, 5)]
        i += len(batch)
        kind = "ok" if rng.random() < 0.85 or not batch else rng.choice(["info", "fail"])
        if kind != "ok":
            i -= len(batch)  # not delivered: will come again in a later ok poll
        cstreams[c].append({"process": c, "type": "invoke", "f": "poll", "value": None})
        cstreams[c].append({"process": c, "type": kind, "f": "poll",
                            "value": {"messages": [{"id": m, "key": None} for m in batch]}})
        if kind == "info":
            cstreams[c].append("retire")
    for c, ops in cstreams.items():
        cur, proc = [], c
        for o in ops:
            if o == "retire":
                streams.append(cur)
                cur, proc = [], new_proc()
                continue
            o["process"] = proc
            cur.append(o)
        streams.append(cur)
    nem = []
    for _ in range(rng.randint(0, 3)):
        fault = rng.choice(["kill", "pause", "ack-loss"])
        nem += [{"process": "nemesis", "type": "info", "f": kind, "value": {"fault": fault, "nodes": ["n1"]}}
                for kind in ("start-fault", "stop-fault")]
    streams.append(nem)
    history: list[dict] = []
    live = [s for s in streams if s]
    while live:
        s = rng.choice(live)
        history.append(s.pop(0))
        live = [s for s in live if s]
    if effects:
        counts = {m: 1 for m in to_deliver}
        history += [{"process": 999, "type": "invoke", "f": "effects", "value": None},
                    {"process": 999, "type": "ok", "f": "effects", "value": {"counts": counts}}]
    for t, o in enumerate(history):
        o["time"] = t * 1000
    facts = {"acked": acked, "failed": [m for m, s in status.items() if set(s) == {"fail"}],
             "delivered": to_deliver}
    return history, facts


def deliveries_of(history):
    return [o for o in history if o["f"] == "poll" and o["type"] == "ok"]


def inject(history: list[dict], facts: dict, kind: str, rng: random.Random) -> str | None:
    """Add one anomaly of `kind` to a correct history; return the id it concerns, or None if impossible."""
    polls = deliveries_of(history)
    effects = next((o for o in history if o["f"] == "effects" and o["type"] == "ok"), None)
    if kind == "lost":
        if not facts["acked"] or effects:
            return None
        m = rng.choice(facts["acked"])
        for o in polls:
            o["value"]["messages"] = [x for x in o["value"]["messages"] if x["id"] != m]
        return m
    if kind in ("duplicated", "unexpected", "aborted_read"):
        if kind == "duplicated":
            if not facts["delivered"] or effects:
                return None
            m = rng.choice(facts["delivered"])
        elif kind == "unexpected":
            m = "never-sent"
        else:
            if not facts["failed"]:
                return None
            m = rng.choice(facts["failed"])
        if effects and kind != "duplicated":
            effects["value"]["counts"][m] = 1
        p = 777
        pos = rng.randint(0, len(history) - (2 if effects else 0))
        history[pos:pos] = [{"process": p, "type": "invoke", "f": "poll", "value": None, "time": 0},
                            {"process": p, "type": "ok", "f": "poll", "time": 0,
                             "value": {"messages": [{"id": m, "key": None}]}}]
        return m
    if kind in ("lost_effects", "duplicated_effects"):
        if not effects or not facts["acked"]:
            return None
        m = rng.choice(facts["acked"])
        effects["value"]["counts"][m] = 0 if kind == "lost_effects" else 2
        return m
    raise AssertionError(kind)


def check(history: list[dict]):
    for t, o in enumerate(history):
        o["time"] = t * 1000
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "history.jsonl"
        p.write_text("".join(json.dumps(o) + "\n" for o in history))
        return check_delivery(read_history(p))


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.integers(0, 2**32), st.booleans())
def test_correct_histories_are_valid(seed, effects):
    rng = random.Random(seed)
    history, _ = correct_history(rng, effects)
    d = check(history)
    assert_matches_reference(d, reference(json.loads(json.dumps(history))))
    assert d["valid"] is True
    assert all(d["counts"][k] == 0 for k in ANOMALIES)


@SETTINGS
@given(st.integers(0, 2**32), st.sampled_from(ANOMALIES))
def test_one_injected_anomaly_is_reported_as_exactly_that(seed, kind):
    rng = random.Random(seed)
    effects = kind.endswith("_effects") or rng.random() < 0.3
    history, facts = correct_history(rng, effects)
    m = inject(history, facts, kind, rng)
    if m is None:
        return
    d = check(history)
    assert_matches_reference(d, reference(json.loads(json.dumps(history))))
    for k in ANOMALIES:
        expected = [m] if k == kind else []
        got = list(d[k]) if isinstance(d[k], dict) else d[k]
        assert got == expected, (k, got)
    if kind in ("duplicated",):
        assert d["valid"] is False and d["holds"]["at-least-once"] is True
    else:
        assert d["valid"] is False
    assert m in d["explanations"] and kind in d["explanations"][m]["classes"]
