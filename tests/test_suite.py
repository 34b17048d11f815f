"""check_history: on big histories the log and perf checkers run in threads; same results either way."""

from __future__ import annotations

import json

import checkers.suite as suite
from checkers.history import read_history
from tests.histories import Builder


def history(tmp_path):
    b = Builder()
    for i in range(30):
        b.send(i % 3, f"m{i}", partition=i % 2, offset=i // 2)
    b.poll("c1", [{"id": f"m{i}", "partition": i % 2, "offset": i // 2} for i in range(0, 30, 2)])
    b.poll("c1", [{"id": "m0", "partition": 0, "offset": 0}, {"id": "m5", "partition": 1, "offset": 9}])
    b.fault("start-fault", "kill", ["n1"])
    return read_history(b.write(tmp_path / "history.jsonl"))


def test_checks_in_threads_give_the_same_results(tmp_path, monkeypatch):
    alone = suite.check_history(history(tmp_path), "exactly-once")
    monkeypatch.setattr(suite, "PARALLEL_MIN_OPS", 0)
    threaded = suite.check_history(read_history(tmp_path / "history.jsonl"), "exactly-once")
    assert json.dumps(threaded, sort_keys=True) == json.dumps(alone, sort_keys=True)
    assert alone["log"]["applicable"] and alone["log"]["counts"]["duplicates"] >= 1


def test_warnings_say_what_the_checkers_could_not_look_at(tmp_path):
    b = Builder()
    b.send(0, "a")
    b.poll(1, ["a"])
    b.ops[-1]["time"] = 1  # a line written with an earlier time than the one before it
    w = suite.check_history(read_history(b.write(tmp_path / "history.jsonl")))["warnings"]
    assert any(x.startswith("times out of order: 1 line") for x in w)
    assert any("no send or delivery carries a partition and offset" in x for x in w)
    assert any(x.startswith("no effects read") for x in w)


def test_no_warnings_when_everything_was_recorded(tmp_path):
    b = Builder()
    b.send(0, "a", partition=0, offset=0)
    b.poll(1, [{"id": "a", "partition": 0, "offset": 0}])
    b.effects("harness", {"a": 1})
    assert suite.check_history(read_history(b.write(tmp_path / "history.jsonl")))["warnings"] == []
