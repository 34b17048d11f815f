"""checkers/perf.py: buckets, throughput, send and end-to-end latency, fault windows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checkers.history import read_history
from checkers.perf import MAX_BUCKETS, check_perf, grouped_quantiles

S = 1_000_000_000  # ns per second
MS = 1_000_000


class Timed:
    """Operations at exact times (ns), in the order they are added."""

    def __init__(self) -> None:
        self.ops: list[dict] = []

    def op(self, t: int, process, type_: str, f: str, value=None) -> None:
        self.ops.append({"time": int(t), "process": process, "type": type_, "f": f, "value": value})

    def send(self, t0: int, t1: int | None, process, mid: str, outcome: str = "ok") -> None:
        self.op(t0, process, "invoke", "send", {"id": mid, "key": None})
        if t1 is not None:
            self.op(t1, process, outcome, "send", {"id": mid, "key": None} if outcome == "ok" else None)

    def poll(self, t0: int, t1: int, process, ids: list[str]) -> None:
        self.op(t0, process, "invoke", "poll", None)
        self.op(t1, process, "ok", "poll", {"messages": [{"id": i, "key": None} for i in ids]})

    def fault(self, t: int, kind: str, name: str, nodes: list) -> None:
        self.op(t, "nemesis", "info", kind, {"fault": name, "nodes": nodes})

    def history(self, tmp_path: Path):
        p = tmp_path / "history.jsonl"
        p.write_text("".join(json.dumps(o) + "\n" for o in self.ops))
        return read_history(p)


def plain(x) -> bool:
    """Only plain JSON types all the way down (no numpy scalars, no NaN)."""
    if isinstance(x, dict):
        return all(isinstance(k, str) and plain(v) for k, v in x.items())
    if isinstance(x, list):
        return all(plain(v) for v in x)
    if isinstance(x, float):
        return math.isfinite(x)
    return x is None or type(x) in (int, str, bool)


def test_buckets_and_throughput(tmp_path):
    t = Timed()
    t.send(0, 100 * MS, 0, "a")                      # ok in bucket 0
    t.send(200 * MS, 300 * MS, 0, "b")               # ok in bucket 0
    t.send(900 * MS, 1_100 * MS, 0, "c")             # invoked in 0, ok in bucket 1
    t.send(1_200 * MS, 1_300 * MS, 1, "d", "fail")   # fail in bucket 1
    t.send(1_400 * MS, 3_500 * MS, 2, "e", "info")   # info in bucket 3
    t.fault(1_500 * MS, "start-fault", "partition", ["n1"])
    t.poll(2_000 * MS, 2_100 * MS, "c", ["a", "b", "c"])  # 3 deliveries in bucket 2
    t.poll(3_000 * MS, 3_900 * MS, "c", ["a"])            # 1 delivery in bucket 3
    t.fault(3_950 * MS, "stop-fault", "partition", ["n1"])
    r = check_perf(t.history(tmp_path), bucket_s=1.0)
    assert r["valid"] is True
    assert plain(r)
    json.dumps(r, allow_nan=False)
    s = r["series"]
    assert s["t"] == [0.0, 1.0, 2.0, 3.0]
    assert s["send_ok"] == [2, 1, 0, 0]
    assert s["send_fail"] == [0, 1, 0, 0]
    assert s["send_info"] == [0, 0, 0, 1]
    assert s["poll_ok"] == [0, 0, 1, 1]
    assert s["deliveries"] == [0, 0, 3, 1]
    # nemesis operations are not throughput
    assert not any(k.startswith(("start-fault", "stop-fault")) for k in s)
    summ = r["summary"]
    assert summ["buckets"] == 4
    assert summ["operations"] == 16
    assert summ["duration_s"] == pytest.approx(3.95)
    assert summ["completed"]["send_ok"] == 3 and summ["completed"]["deliveries"] == 4
    assert summ["rates"]["send_ok"] == pytest.approx(3 / 3.95, abs=1e-3)
    assert summ["sends"] == {"ok": 3, "fail": 1, "info": 1, "open": 0}


def test_half_second_buckets_and_origin(tmp_path):
    t = Timed()
    base = 10 * S  # times need not start at 0: t=0 is the first operation
    t.send(base, base + 100 * MS, 0, "a")
    t.send(base + 600 * MS, base + 700 * MS, 0, "b")
    t.send(base + 1_200 * MS, base + 1_300 * MS, 0, "c")
    r = check_perf(t.history(tmp_path), bucket_s=0.5)
    assert r["t0_ns"] == base
    assert r["bucket_s"] == 0.5
    assert r["series"]["t"] == [0.0, 0.5, 1.0]
    assert r["series"]["send_ok"] == [1, 1, 1]


def test_send_latency_by_outcome(tmp_path):
    t = Timed()
    oks = [10, 20, 30, 40, 100]  # ms, all completing in bucket 0
    for i, lat in enumerate(oks):
        t.send(i * MS, i * MS + lat * MS, f"p{i}", f"ok{i}")
    t.send(1_000 * MS, 1_500 * MS, "q", "f1", "fail")  # 500 ms, bucket 1
    t.send(1_100 * MS, 1_900 * MS, "r", "i1", "info")  # 800 ms, bucket 1
    t.send(1_200 * MS, None, "s", "open1")             # never completed: no latency
    r = check_perf(t.history(tmp_path))
    ok = r["latency"]["send"]["ok"]
    assert ok["count"] == [5, 0]
    assert ok["p50"][0] == pytest.approx(float(np.quantile(oks, 0.5)))
    assert ok["p95"][0] == pytest.approx(float(np.quantile(oks, 0.95)))
    assert ok["p99"][0] == pytest.approx(float(np.quantile(oks, 0.99)))
    assert ok["max"] == [100.0, None]
    assert ok["p50"][1] is None
    assert r["latency"]["send"]["fail"]["max"] == [None, 500.0]
    assert r["latency"]["send"]["info"]["p50"] == [None, 800.0]
    sl = r["summary"]["send_latency_ms"]
    assert sl["ok"]["count"] == 5 and sl["ok"]["mean"] == pytest.approx(40.0)
    assert sl["ok"]["max"] == 100.0
    assert sl["fail"]["p99"] == 500.0 and sl["info"]["count"] == 1
    assert sl["all"]["count"] == 7 and sl["all"]["max"] == 800.0
    assert r["summary"]["sends"]["open"] == 1


def test_end_to_end_latency(tmp_path):
    t = Timed()
    t.send(100 * MS, 150 * MS, 0, "a", "info")
    t.send(500 * MS, 600 * MS, 0, "a")           # a retry: e2e counts from the first invoke (0.1 s)
    t.send(700 * MS, 800 * MS, 1, "b")
    t.send(900 * MS, 950 * MS, 1, "never")       # never delivered: no e2e
    t.poll(1_100 * MS, 1_200 * MS, "c", ["a", "ghost"])   # a: 1.1 s (bucket 1); ghost never sent
    t.poll(2_400 * MS, 2_500 * MS, "c", ["b", "a"])       # b: 1.8 s (bucket 2); a again: not first
    r = check_perf(t.history(tmp_path))
    e = r["latency"]["e2e"]
    assert e["count"] == [0, 1, 1]
    assert e["p50"] == [None, 1100.0, 1800.0]
    assert e["max"] == [None, 1100.0, 1800.0]
    s = r["summary"]["e2e_latency_ms"]
    assert s["count"] == 2 and s["mean"] == pytest.approx(1450.0) and s["max"] == 1800.0
    assert s["p50"] == pytest.approx(1450.0)
    assert r["summary"]["e2e_negative"] == 0


def test_delivery_before_send_is_left_out(tmp_path):
    t = Timed()
    t.poll(0, 100 * MS, "c", ["x"])
    t.send(200 * MS, 300 * MS, 0, "x")
    r = check_perf(t.history(tmp_path))
    assert r["summary"]["e2e_negative"] == 1
    assert r["summary"]["e2e_latency_ms"]["count"] == 0
    assert r["summary"]["e2e_latency_ms"]["p50"] is None


def test_fault_windows_in_seconds(tmp_path):
    t = Timed()
    t.send(1 * S, 1 * S + MS, 0, "a")
    t.fault(2 * S, "start-fault", "partition", ["n1", "n2"])
    t.fault(3 * S, "start-fault", "kill", ["n3"])
    t.fault(4 * S, "stop-fault", "partition", ["n1", "n2"])
    t.send(5 * S, 5 * S + MS, 0, "b")  # kill is never healed: it lasts until the end
    r = check_perf(t.history(tmp_path))
    assert r["faults"] == [
        {"fault": "partition", "nodes": ["n1", "n2"], "start_s": 1.0, "stop_s": 3.0, "unhealed": False},
        {"fault": "kill", "nodes": ["n3"], "start_s": 2.0, "stop_s": 4.001, "unhealed": True},
    ]


def test_empty_and_sendless_histories(tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_text("")
    r = check_perf(read_history(p))
    assert r["valid"] is True and r["series"]["t"] == [] and plain(r)
    t = Timed()
    t.op(0, "nemesis", "info", "start-fault", {"fault": "pause", "nodes": []})
    t.op(S, 0, "invoke", "ack", {"ids": []})
    t.op(S + 5, 0, "ok", "ack", None)
    r = check_perf(t.history(tmp_path))
    assert r["valid"] is True and plain(r)
    assert r["series"]["ack_ok"] == [0, 1]
    assert r["series"]["send_ok"] == [0, 0]
    assert r["latency"]["e2e"]["count"] == [0, 0]
    assert r["summary"]["e2e_latency_ms"]["count"] == 0


def test_bad_bucket():
    with pytest.raises(ValueError):
        check_perf(None, bucket_s=0)  # type: ignore[arg-type]


def test_long_runs_get_wider_buckets(tmp_path):
    t = Timed()
    t.send(0, MS, 0, "a")
    t.send(10 * 3600 * S, 10 * 3600 * S + MS, 0, "b")  # ten hours later
    r = check_perf(t.history(tmp_path), bucket_s=1.0)
    assert r["bucket_s_requested"] == 1.0
    assert r["bucket_s"] == 20.0  # smallest 1/2/5 x 10^k seconds with <= MAX_BUCKETS buckets
    assert len(r["series"]["t"]) <= MAX_BUCKETS
    assert sum(r["series"]["send_ok"]) == 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(-(2**50), 2**50)), max_size=80),
       st.booleans())
def test_grouped_quantiles_match_numpy(pairs, nonnegative):
    groups = np.array([g for g, _ in pairs], dtype=np.int64)
    values = np.array([abs(v) if nonnegative else v for _, v in pairs], dtype=np.int64)
    out = grouped_quantiles(groups, values, 7)
    for g in range(7):
        v = values[groups == g]
        assert out["count"][g] == len(v)
        if len(v) == 0:
            assert math.isnan(out["p50"][g]) and math.isnan(out["max"][g])
            continue
        assert out["max"][g] == float(v.max())
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            assert out[name][g] == pytest.approx(float(np.quantile(v.astype(np.float64), q)), rel=1e-9)
