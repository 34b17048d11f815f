"""Every class and verdict of contract v1 on hand-built histories."""

from __future__ import annotations

import pytest

from checkers.delivery import check_delivery
from checkers.history import read_history
from tests.histories import Builder, assert_matches_reference, reference


def run(tmp_path, b: Builder, guarantee="exactly-once"):
    h = read_history(b.write(tmp_path / "history.jsonl"))
    d = check_delivery(h, guarantee)
    assert_matches_reference(d, reference(b.ops))
    return d


def test_clean_history_is_valid_for_every_guarantee(tmp_path):
    b = Builder()
    b.send(0, "a")
    b.send(0, "b")
    b.poll(1, ["a", "b"])
    d = run(tmp_path, b)
    assert d["valid"] is True
    assert d["holds"] == {"at-most-once": True, "at-least-once": True, "exactly-once": True}
    assert d["counts"]["attempted"] == 2 and d["counts"]["delivered"] == 2


def test_lost(tmp_path):
    b = Builder()
    b.send(0, "a")
    b.send(0, "b")
    b.poll(1, ["b"])
    d = run(tmp_path, b)
    assert d["lost"] == ["a"] and d["valid"] is False
    assert d["holds"]["at-most-once"] is True
    assert d["holds"]["at-least-once"] is False
    # a later message of the same producer was delivered: lost in the middle
    assert d["lost_middle"] == ["a"]
    assert d["explanations"]["a"]["later_delivered"] == 1


def test_lost_at_the_tail_is_not_in_the_middle(tmp_path):
    b = Builder()
    b.send(0, "a")
    b.send(0, "b")
    b.poll(1, ["a"])
    d = run(tmp_path, b)
    assert d["lost"] == ["b"] and d["lost_middle"] == []


def test_producer_field_decides_who_sent(tmp_path):
    b = Builder()
    b.op(0, "invoke", "send", {"id": "a", "producer": "P"})
    b.op(0, "ok", "send", None)
    b.op(1, "invoke", "send", {"id": "b", "producer": "P"})
    b.op(1, "ok", "send", None)
    b.poll(5, ["b"])
    d = run(tmp_path, b)
    assert d["lost_middle"] == ["a"]


def test_duplicated(tmp_path):
    b = Builder()
    b.send(0, "a")
    b.poll(1, ["a"])
    b.poll(2, [{"id": "a", "redelivered": True}, "a"])
    d = run(tmp_path, b)
    assert d["duplicated"] == {"a": 3}
    assert d["holds"] == {"at-most-once": False, "at-least-once": True, "exactly-once": False}
    assert len(d["explanations"]["a"]["deliveries"]) == 3


def test_unexpected(tmp_path):
    b = Builder()
    b.send(0, "a")
    b.poll(1, ["a", "ghost"])
    d = run(tmp_path, b)
    assert d["unexpected"] == ["ghost"]
    assert not any(d["holds"].values())


def test_failed_and_aborted_read(tmp_path):
    b = Builder()
    b.send(0, "a", "fail")
    b.send(0, "b", "fail")
    b.poll(1, ["a"])
    d = run(tmp_path, b)
    assert d["counts"]["failed"] == 2
    assert d["aborted_read"] == ["a"]
    assert not any(d["holds"].values())


def test_failed_then_ok_retry_is_acknowledged(tmp_path):
    b = Builder()
    b.send(0, "a", "fail")
    b.send(0, "a", "ok")
    b.poll(1, ["a"])
    d = run(tmp_path, b)
    assert d["counts"]["failed"] == 0 and d["counts"]["acknowledged"] == 1 and d["valid"] is True


def test_indeterminate_recovered_and_unresolved_are_not_anomalies(tmp_path):
    b = Builder()
    b.send(0, "a", "info")
    b.send(1, "b", "info")
    b.send(2, "c", None)  # never completed
    b.send(3, "d", "fail")
    b.send(3, "d", "info")  # fail + info: indeterminate, not failed
    b.poll(9, ["a", "d"])
    d = run(tmp_path, b)
    c = d["counts"]
    assert (c["indeterminate"], c["recovered"], c["unresolved"], c["failed"]) == (4, 2, 2, 0)
    assert c["aborted_read"] == 0
    assert d["valid"] is True


def test_info_and_fail_polls_are_not_deliveries(tmp_path):
    b = Builder()
    b.send(0, "a")
    b.op(1, "invoke", "poll", None)
    b.op(1, "info", "poll", {"messages": [{"id": "a"}]})
    b.op(2, "invoke", "poll", None)
    b.op(2, "fail", "poll", {"messages": [{"id": "a"}]})
    d = run(tmp_path, b)
    assert d["lost"] == ["a"] and d["counts"]["delivered"] == 0


def test_effects_decide_with_an_effect_store(tmp_path):
    b = Builder()
    b.send(0, "a")
    b.send(0, "b")
    b.send(0, "c")
    b.poll(1, ["a", "b", "c"])
    b.poll(2, ["a"])  # redelivery absorbed by the idempotent consumer
    b.effects(7, {"a": 1, "b": 2, "c": 0, "x": 1})
    d = run(tmp_path, b)
    assert d["effects_checked"] is True
    assert d["duplicated"] == {"a": 2}
    assert d["duplicated_effects"] == {"b": 2}
    assert d["lost_effects"] == ["c"]
    assert d["explanations"]["b"]["effects"] == 2


def test_exactly_once_with_effects_absorbs_duplicate_deliveries(tmp_path):
    b = Builder()
    b.send(0, "a")
    b.poll(1, ["a"])
    b.poll(2, ["a"])
    b.effects(7, {"a": 1})
    d = run(tmp_path, b)
    assert d["counts"]["duplicated"] == 1
    assert d["valid"] is True


def test_last_ok_effects_read_counts(tmp_path):
    b = Builder()
    b.send(0, "a")
    b.poll(1, ["a"])
    b.effects(7, {"a": 2})
    b.effects(8, {"a": 1})
    d = run(tmp_path, b)
    assert d["duplicated_effects"] == {}


@pytest.mark.parametrize("guarantee", ["at-most-once", "at-least-once", "exactly-once"])
def test_verdict_follows_the_claimed_guarantee(tmp_path, guarantee):
    b = Builder()
    b.send(0, "a")
    b.poll(1, ["a"])
    b.poll(1, ["a"])
    d = run(tmp_path, b, guarantee)
    assert d["valid"] is (guarantee == "at-least-once")


def test_no_sends_is_unknown(tmp_path):
    b = Builder()
    b.poll(1, [])
    d = run(tmp_path, b)
    assert d["valid"] == "unknown" and "reason" in d


def test_explanations_name_overlapping_faults(tmp_path):
    b = Builder()
    b.send(0, "early")
    b.poll(1, ["early"])
    b.fault("start-fault", "kill", ["n1"])
    b.send(0, "a")
    b.fault("stop-fault", "kill", ["n1"])
    d = run(tmp_path, b)
    e = d["explanations"]["a"]
    assert e["classes"] == ["lost"]
    assert [f["fault"] for f in e["faults"]] == ["kill"]
    assert e["sends"][0]["outcome"] == "ok" and e["sends"][0]["invoke_line"] == 6


def test_explain_limit(tmp_path):
    b = Builder()
    for i in range(10):
        b.send(0, f"m{i}")
    h = read_history(b.write(tmp_path / "history.jsonl"))
    d = check_delivery(h, explain_limit=3)
    assert d["counts"]["lost"] == 10 and len(d["lost"]) == 10
    assert len(d["explanations"]) == 3


def test_a_lost_message_names_the_first_fault_after_its_acknowledgement_as_the_likely_cause(tmp_path):
    b = Builder()
    b.send(0, "early")
    b.poll(1, ["early"])
    b.send(0, "a")
    b.fault("start-fault", "kill", ["n1"])
    b.fault("stop-fault", "kill", ["n1"])
    b.fault("start-fault", "restart", ["n2"])
    b.fault("stop-fault", "restart", ["n2"])
    e = run(tmp_path, b)["explanations"]["a"]
    assert [(f["fault"], f.get("likely_cause", False)) for f in e["faults"]] == [("kill", True), ("restart", False)]


def test_deliveries_without_any_send_are_unexpected_and_say_why(tmp_path):
    b = Builder()
    b.poll(1, ["x", "y"])
    d = run(tmp_path, b)
    assert d["valid"] is False and d["unexpected"] == ["x", "y"]
    assert "no send operations were recorded" in d["warnings"][0]



def test_id_lists_sort_naturally(tmp_path):
    b = Builder()
    for i in ("1000", "788", "p0-10", "p0-9"):
        b.send(0, i)
    d = run(tmp_path, b)
    assert d["lost"] == ["788", "1000", "p0-9", "p0-10"]


def test_a_lost_message_names_the_window_in_which_its_position_went_to_another_id(tmp_path):
    b = Builder()
    b.send(0, "a", partition=0, offset=5)
    b.fault("start-fault", "pause", ["n2"])
    b.fault("stop-fault", "pause", ["n2"])
    b.fault("start-fault", "kill", ["n1"])
    b.send(1, "b", partition=0, offset=5)  # the new leader gave a's offset to b
    b.fault("stop-fault", "kill", ["n1"])
    b.poll(2, [{"id": "b", "partition": 0, "offset": 5}])
    faults = run(tmp_path, b)["explanations"]["a"]["faults"]
    assert [(f["fault"], f.get("likely_cause", False), f.get("offset_taken_by")) for f in faults] == [
        ("pause", True, None), ("kill", False, ["b"])]


def test_a_position_is_its_partition_and_offset_whatever_the_offset(tmp_path):
    """Offsets beyond 2**40 in other partitions are other positions (they once shared a packed key)."""
    big = 10**15
    b = Builder()
    b.send(0, "a", partition=3, offset=big)
    b.fault("start-fault", "kill", ["n1"])
    b.send(1, "b", partition=0, offset=big)
    b.send(1, "c", partition=3, offset=big)
    b.fault("stop-fault", "kill", ["n1"])
    b.poll(2, [{"id": "c", "partition": 3, "offset": big}])
    e = run(tmp_path, b)["explanations"]
    assert e["a"]["faults"][0]["offset_taken_by"] == ["c"]
    assert "offset_taken_by" not in e["b"]["faults"][0]
