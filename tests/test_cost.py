"""Producers with several sends in flight, and `onceproof cost`, on a real redis-server."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from harness.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _need_redis():
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (run: onceproof setup redis)")


def test_in_flight_producers_are_logical_processes_with_one_send_each(tmp_path):
    rc = main(["run", "--target", "redis", "--profile", "exactly-once", "--faults", "none", "--time", "3",
               "--rate", "600", "--in-flight", "3", "--store", str(tmp_path)])
    assert rc == 0
    ops = [json.loads(line) for line in (tmp_path / "latest" / "history.jsonl").read_text().splitlines()]
    sends = [o for o in ops if o["f"] == "send" and o["type"] == "invoke"]
    producers = {o["value"]["producer"] for o in sends}
    assert len(producers) == 6 and {p.split(".")[1] for p in producers} == {"0", "1", "2"}
    open_ops: Counter = Counter()
    for o in ops:  # the contract: a process has at most one operation open
        if o["f"] != "send":
            continue
        open_ops[o["process"]] += 1 if o["type"] == "invoke" else -1
        assert open_ops[o["process"]] in (0, 1)
    assert len({o["process"] for o in sends}) == 6
    times = [o["time"] for o in ops]
    assert times == sorted(times)


def test_cost_measures_every_profile_against_the_cheapest(tmp_path, capsys):
    rc = main(["cost", "--target", "redis", "--profiles", "exactly-once,at-least-once-debian-defaults",
               "--time", "5", "--rate", "300", "--store", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    doc = json.loads((tmp_path / "cost.json").read_text())
    rows = {r["profile"]: r for r in doc["profiles"]}
    assert set(rows) == {"exactly-once", "at-least-once-debian-defaults"}
    assert all(r["kept_up"] and r["verdict"] is True for r in rows.values())
    assert rows[doc["cheapest"]]["send_p50_ratio"] == 1.0
    assert all(r["e2e_p50_ms"] < 1000 and r["send_p99_ms"] >= r["send_p50_ms"] for r in rows.values())
    assert "ratios against" in out and "exactly-once" in out
    # redis-benchmark ran against each profile's node, sending what its producers send
    assert all(r["native"]["tool"] == "redis-benchmark" and r["native"]["acked_per_s"] > 0 for r in rows.values())
    assert "EVAL" in rows["exactly-once"]["native"]["command"]
    assert "XADD" in rows["at-least-once-debian-defaults"]["native"]["command"]
    assert "native exactly-once: redis-benchmark" in out


def test_cost_refuses_an_unknown_profile(tmp_path, capsys):
    assert main(["cost", "--target", "redis", "--profiles", "nope", "--store", str(tmp_path)]) == 2
    assert "unknown profile 'nope' for target redis" in capsys.readouterr().err


def test_a_suite_cost_case_lands_in_suite_json_and_under_the_matrix(tmp_path):
    suite = tmp_path / "cost.toml"
    suite.write_text('[[case]]\nkind = "cost"\ntarget = "redis"\nprofiles = ["exactly-once", "at-most-once"]\n'
                     'time = 5\nrate = 300\n')
    assert main(["suite", "run", str(suite), "--store", str(tmp_path / "out")]) == 0
    doc = json.loads((tmp_path / "out" / "suite.json").read_text())
    (r,) = doc["runs"]
    assert r["kind"] == "cost" and r["met"] and r["verdict"] == "valid"
    assert {p["profile"] for p in r["cost"]["profiles"]} == {"exactly-once", "at-most-once"}
    page = (tmp_path / "out" / "suite.html").read_text()
    assert "The cost of each guarantee" in page and "redis: 2 producers" in page
