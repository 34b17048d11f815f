"""The ordering checker on hand-built histories: a message acknowledged before another was sent, received after
it by one consumer, is reordered; a redelivery and a pair whose sends overlapped are not."""

from __future__ import annotations

from checkers.history import read_history
from checkers.order import check_order
from tests.histories import Builder


def _send(b: Builder, process: int, mid: str, producer: str = "p0") -> None:
    b.op(process, "invoke", "send", {"id": mid, "key": None, "producer": producer})
    b.op(process, "ok", "send", {"id": mid, "key": None})


def check(b: Builder, tmp_path, claimed: bool = True) -> dict:
    return check_order(read_history(b.write(tmp_path / "h.jsonl")), claimed)


def test_a_message_received_after_one_sent_once_it_was_acknowledged_is_reordered(tmp_path):
    b = Builder()
    _send(b, 0, "p0-0")
    _send(b, 0, "p0-1")  # sent after p0-0 was acknowledged
    b.poll(1, ["p0-1"])
    b.poll(1, ["p0-0"])
    r = check(b, tmp_path)
    assert r["applicable"] and r["counts"] == {"reordered": 1} and r["valid"] is False
    (e,) = r["reordered"]
    assert e["id"] == "p0-0" and e["after"]["id"] == "p0-1" and e["line"] == 8 and e["after"]["line"] == 6
    assert check(b, tmp_path, claimed=False)["valid"] is True  # reported, failing only a claim of order


def test_a_redelivery_of_the_first_after_the_second_is_no_reordering(tmp_path):
    b = Builder()
    _send(b, 0, "p0-0")
    _send(b, 0, "p0-1")
    b.poll(1, ["p0-0", "p0-1"])
    b.poll(1, [{"id": "p0-0", "key": None, "redelivered": True}])  # delivered again, marked
    b.poll(2, ["p0-1"])  # another consumer: its first deliveries are p0-1, then p0-0
    b.poll(2, ["p0-0"])
    r = check(b, tmp_path)
    # consumer 1's redelivery of p0-0 after p0-1 is no reordering; consumer 2's first deliveries are
    assert r["counts"] == {"reordered": 1} and r["reordered"][0]["consumer"] == 2


def test_messages_whose_sends_overlapped_may_arrive_in_any_order(tmp_path):
    b = Builder()
    b.op(0, "invoke", "send", {"id": "p0-0", "key": None, "producer": "p0"})
    b.op(5, "invoke", "send", {"id": "p0-1", "key": None, "producer": "p0"})  # sent before p0-0's ack
    b.op(0, "ok", "send", {"id": "p0-0", "key": None})
    b.op(5, "ok", "send", {"id": "p0-1", "key": None})
    b.poll(1, ["p0-1", "p0-0"])
    assert check(b, tmp_path)["counts"] == {"reordered": 0}


def test_other_producers_and_other_partitions_are_not_compared(tmp_path):
    b = Builder()
    _send(b, 0, "a-0", "a")
    _send(b, 3, "b-0", "b")
    b.op(0, "invoke", "send", {"id": "a-1", "key": None, "producer": "a"})
    b.op(0, "ok", "send", {"id": "a-1", "key": None, "partition": 1, "offset": 0})
    b.poll(1, [{"id": "b-0", "key": None}, {"id": "a-1", "key": None, "partition": 1, "offset": 0},
               {"id": "a-0", "key": None, "partition": 0, "offset": 0}])
    assert check(b, tmp_path)["counts"] == {"reordered": 0}
