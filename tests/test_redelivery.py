"""The redelivered-flag check on hand-built histories: a second delivery of a message sent once, not marked
redelivered, breaks the promise of systems that mark redeliveries; a marked one, or the copy of a retried send,
does not; a system that marks nothing is not judged."""

from __future__ import annotations

from checkers.history import read_history
from checkers.redelivery import check_redelivery
from tests.histories import Builder


def _send(b: Builder, process: int, mid: str) -> None:
    b.op(process, "invoke", "send", {"id": mid, "key": None, "producer": "p0"})
    b.op(process, "ok", "send", {"id": mid, "key": None})


def check(b: Builder, tmp_path) -> dict:
    return check_redelivery(read_history(b.write(tmp_path / "h.jsonl")))


def _marked(mid: str) -> dict:
    return {"id": mid, "key": None, "redelivered": True}


def test_a_second_delivery_without_the_mark_is_reported_with_its_lines(tmp_path):
    b = Builder()
    _send(b, 0, "p0-0")
    _send(b, 0, "p0-1")
    b.poll(1, ["p0-0"])
    b.poll(2, ["p0-0"])  # again, to another consumer, unmarked
    b.poll(1, [_marked("p0-1")])
    r = check(b, tmp_path)
    assert r["applicable"] and r["counts"] == {"unflagged_redeliveries": 1}
    (e,) = r["unflagged"]
    assert e["id"] == "p0-0" and e["consumer"] == 2 and e["first_delivered_line"] < e["line"]


def test_a_marked_redelivery_is_what_the_flag_promises(tmp_path):
    b = Builder()
    _send(b, 0, "p0-0")
    b.poll(1, ["p0-0"])
    b.poll(2, [_marked("p0-0")])
    assert check(b, tmp_path)["counts"] == {"unflagged_redeliveries": 0}


def test_a_retried_send_may_store_a_second_copy_whose_first_delivery_is_unmarked(tmp_path):
    b = Builder()
    b.op(0, "invoke", "send", {"id": "p0-0", "key": None, "producer": "p0"})
    b.op(0, "info", "send", None)  # the confirm was lost: maybe stored
    _send(b, 0, "p0-0")  # the retry: a second copy
    b.poll(1, ["p0-0"])
    b.poll(1, ["p0-0"])
    b.poll(1, [_marked("p0-0")])
    assert check(b, tmp_path)["counts"] == {"unflagged_redeliveries": 0}


def test_a_system_that_never_marks_a_redelivery_promises_nothing(tmp_path):
    b = Builder()
    _send(b, 0, "p0-0")
    b.poll(1, ["p0-0"])
    b.poll(1, ["p0-0"])
    r = check(b, tmp_path)
    assert not r["applicable"] and r["counts"] == {"unflagged_redeliveries": 0}
