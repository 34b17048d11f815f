"""Tests for checkers.log: inconsistent offsets, log duplicates, nonmonotonic and skipping polls."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checkers.history import read_history
from checkers.log import check_log

ZERO = {"inconsistent_offsets": 0, "duplicates": 0, "nonmonotonic": 0, "skips": 0}


class Hist:
    """Builds a contract-v1 history, one operation at a time."""

    def __init__(self) -> None:
        self.lines: list[dict] = []

    def op(self, process, typ, f, value=None) -> Hist:
        self.lines.append({"time": 10 * len(self.lines), "process": process, "type": typ, "f": f,
                           "value": value})
        return self

    def send(self, mid, partition=None, offset=None, outcome="ok", process="p") -> Hist:
        self.op(process, "invoke", "send", {"id": mid, "key": None})
        value = {"id": mid}
        if partition is not None:
            value["partition"] = partition
        if offset is not None:
            value["offset"] = offset
        return self.op(process, outcome, "send", value)

    def poll(self, process, msgs, outcome="ok") -> Hist:
        """msgs: (id, partition, offset) triples."""
        self.op(process, "invoke", "poll")
        value = {"messages": [{"id": i, "partition": p, "offset": o} for i, p, o in msgs]}
        return self.op(process, outcome, "poll", value)

    def assign(self, process, f="assign", types=("invoke", "ok")) -> Hist:
        for t in types:
            self.op(process, t, f, {"partitions": [0, 1]})
        return self

    def write(self, path: Path) -> Path:
        path.write_text("".join(json.dumps(x) + "\n" for x in self.lines))
        return path


def check(tmp_path: Path, hist: Hist, **kw) -> dict:
    res = check_log(read_history(hist.write(tmp_path / "history.jsonl")), **kw)
    assert json.loads(json.dumps(res)) == res  # plain JSON, no numpy scalars
    return res


def produce(hist: Hist, partition, n: int, start: int = 0) -> list[tuple]:
    """Send ids <partition>-<offset> at offsets start..start+n-1; return the log entries."""
    entries = [(f"{partition}-{o}", partition, o) for o in range(start, start + n)]
    for mid, p, o in entries:
        hist.send(mid, p, o)
    return entries


def only(res: dict, **counts) -> None:
    """The result has exactly these anomaly counts (others zero), and lists of matching length."""
    want = dict(ZERO, **counts)
    assert res["applicable"] is True
    assert res["counts"] == want
    for k, n in want.items():
        assert len(res[k]) == n, k


# --- single anomalies ----------------------------------------------------------------------------


def test_clean_history(tmp_path):
    h = Hist()
    log = produce(h, 0, 10)
    h.poll(1, log[:5]).poll(1, log[5:])
    res = check(tmp_path, h)
    only(res)
    assert res["valid"] is True


def test_inconsistent_offset_alone(tmp_path):
    h = Hist()
    h.send("a", 0, 0).send("b", 0, 0).send("c", 0, 1)
    h.poll(1, [("a", 0, 0), ("c", 0, 1)])
    res = check(tmp_path, h)
    only(res, inconsistent_offsets=1)
    assert res["inconsistent_offsets"] == [{"partition": 0, "offset": 0, "ids": ["a", "b"]}]
    assert res["valid"] is False
    assert check(tmp_path, h, guarantee="at-least-once")["valid"] is False


def test_inconsistency_seen_only_by_a_consumer(tmp_path):
    h = Hist()
    h.send("a", 0, 0)
    h.poll(1, [("z", 0, 0)])
    res = check(tmp_path, h)
    only(res, inconsistent_offsets=1)
    assert res["inconsistent_offsets"][0]["ids"] == ["a", "z"]


def test_log_duplicate_alone(tmp_path):
    h = Hist()
    h.send("a", 0, 0).send("b", 0, 1)
    h.poll(1, [("a", 0, 0), ("b", 0, 1), ("a", 0, 2)])
    res = check(tmp_path, h)
    only(res, duplicates=1)
    assert res["duplicates"] == [{"id": "a", "positions": [[0, 0], [0, 2]]}]
    assert res["valid"] is False
    assert check(tmp_path, h, guarantee="at-most-once")["valid"] is False
    assert check(tmp_path, h, guarantee="at-least-once")["valid"] is True


def test_redelivery_of_same_position_is_not_a_log_duplicate(tmp_path):
    h = Hist()
    log = produce(h, 0, 3)
    h.poll(1, log).poll(2, log)
    only(check(tmp_path, h))


def test_nonmonotonic_between_polls(tmp_path):
    h = Hist()
    log = produce(h, 0, 4)
    h.poll(1, log[:3]).poll(1, log[1:])
    res = check(tmp_path, h)
    only(res, nonmonotonic=1)
    poll_line = len(h.lines)  # the second poll's completion
    assert res["nonmonotonic"] == [{"process": 1, "partition": 0, "prev_offset": 2, "offset": 1,
                                    "line": poll_line, "within_poll": False}]
    assert res["valid"] is True  # reported, not a failure


def test_nonmonotonic_within_poll(tmp_path):
    h = Hist()
    log = produce(h, 0, 4)
    h.poll(1, [log[0], log[1], log[1], log[2], log[3]])
    res = check(tmp_path, h)
    only(res, nonmonotonic=1)
    nm = res["nonmonotonic"][0]
    assert (nm["prev_offset"], nm["offset"], nm["within_poll"]) == (1, 1, True)


def test_skip_between_polls(tmp_path):
    h = Hist()
    log = produce(h, 0, 5)
    h.poll("c", log[:2]).poll("c", log[3:])
    res = check(tmp_path, h)
    only(res, skips=1)
    assert res["skips"] == [{"process": "c", "partition": 0, "prev_offset": 1, "offset": 3,
                             "line": len(h.lines), "within_poll": False, "skipped": 1, "examples": [2]}]
    assert res["valid"] is True


def test_skip_within_poll_counts_and_examples(tmp_path):
    h = Hist()
    log = produce(h, 0, 20)
    h.poll(1, [log[0], log[19]])
    res = check(tmp_path, h)
    only(res, skips=1)
    sk = res["skips"][0]
    assert sk["within_poll"] is True
    assert sk["skipped"] == 18
    assert sk["examples"] == [1, 2, 3, 4, 5]


def test_skipped_offset_known_only_from_another_consumer(tmp_path):
    h = Hist()
    h.send("a", 0, 0).send("c", 0, 2)  # offset 1 was sent with an unknown outcome
    h.poll(1, [("a", 0, 0), ("b", 0, 1), ("c", 0, 2)])
    h.poll(2, [("a", 0, 0), ("c", 0, 2)])
    res = check(tmp_path, h)
    only(res, skips=1)
    assert res["skips"][0]["process"] == 2


def test_gap_without_known_offsets_is_not_a_skip(tmp_path):
    h = Hist()
    h.send("a", 0, 0).send("b", 0, 1).send("c", 0, 3).send("d", 0, 7)  # 2, 4-6: transaction markers
    h.poll(1, [("a", 0, 0), ("b", 0, 1)]).poll(1, [("c", 0, 3), ("d", 0, 7)])
    only(check(tmp_path, h))


def test_failed_send_does_not_enter_the_log(tmp_path):
    h = Hist()
    h.send("x", 0, 0, outcome="fail").send("y", 0, 0).send("z", 0, 1, outcome="info")
    h.send("w", 0, 2)
    h.poll(1, [("y", 0, 0), ("w", 0, 2)])  # 1 is not known: no skip
    only(check(tmp_path, h))


def test_info_and_fail_polls_are_not_tracked(tmp_path):
    h = Hist()
    log = produce(h, 0, 6)
    h.poll(1, log[:3]).poll(1, log[:1], outcome="fail").poll(1, log[5:], outcome="info")
    h.poll(2, log[3:])
    only(check(tmp_path, h))


# --- tracking ------------------------------------------------------------------------------------


def test_assign_between_polls_resets_tracking(tmp_path):
    h = Hist()
    log = produce(h, 0, 5)
    h.poll(1, log).assign(1).poll(1, log)
    only(check(tmp_path, h))


def test_rewind_without_assign_is_nonmonotonic(tmp_path):
    h = Hist()
    log = produce(h, 0, 5)
    h.poll(1, log).poll(1, log)
    res = check(tmp_path, h)
    only(res, nonmonotonic=1)
    assert res["nonmonotonic"][0]["prev_offset"] == 4
    assert res["nonmonotonic"][0]["offset"] == 0


@pytest.mark.parametrize(("f", "types"), [("subscribe", ("invoke", "ok")), ("assign", ("invoke", "fail")),
                                          ("assign", ("invoke", "info")), ("assign", ("invoke",))])
def test_any_assign_or_subscribe_op_resets(tmp_path, f, types):
    h = Hist()
    log = produce(h, 0, 5)
    h.poll(1, log).assign(1, f=f, types=types).poll(1, log[1:])
    only(check(tmp_path, h))


def test_assign_after_a_skip_target_resets_skip_tracking(tmp_path):
    h = Hist()
    log = produce(h, 0, 10)
    h.poll(1, log[:2]).assign(1).poll(1, log[8:])
    only(check(tmp_path, h))


def test_assign_of_another_process_does_not_reset(tmp_path):
    h = Hist()
    log = produce(h, 0, 5)
    h.poll(1, log).assign(2).poll(1, log)
    only(check(tmp_path, h), nonmonotonic=1)


def test_two_consumers_interleaved_tracked_separately(tmp_path):
    h = Hist()
    log = produce(h, 0, 6)
    h.poll(1, log[:2]).poll(2, log[:3]).poll(1, log[2:4]).poll(2, log[3:]).poll(1, log[4:])
    only(check(tmp_path, h))
    # a rewind of consumer 2 is reported for 2 only; consumer 1 carries on undisturbed
    h.poll(2, log[:1]).poll(1, log[5:6]).poll(1, log[:0])
    res = check(tmp_path, h)
    only(res, nonmonotonic=2)
    got = {(e["process"], e["prev_offset"], e["offset"]) for e in res["nonmonotonic"]}
    assert got == {(2, 5, 0), (1, 5, 5)}


def test_partitions_tracked_separately_and_may_be_strings(tmp_path):
    h = Hist()
    a = produce(h, "t-0", 3)
    b = produce(h, 1, 3, start=100)
    h.poll(1, [a[0], b[0], a[1], b[1]]).poll(1, [b[2], a[2]])
    only(check(tmp_path, h))
    h.send("a-dup", "t-0", 1)
    h.poll(1, [b[1]])
    res = check(tmp_path, h)
    only(res, inconsistent_offsets=1, nonmonotonic=1)
    assert res["inconsistent_offsets"][0] == {"partition": "t-0", "offset": 1, "ids": ["a-dup", "t-0-1"]}
    assert res["nonmonotonic"][0]["partition"] == 1


def test_int_and_string_partitions_are_distinct(tmp_path):
    h = Hist()
    h.send("a", 0, 0).send("b", "0", 0)
    only(check(tmp_path, h))


def test_messages_without_offsets_are_ignored(tmp_path):
    h = Hist()
    log = produce(h, 0, 3)
    h.poll(1, [log[0], ("x", 0, None), ("y", None, 7), log[1], log[2]])
    only(check(tmp_path, h))


def test_very_wide_offset_range(tmp_path):
    big = 2**62
    h = Hist()
    h.send("a", 0, 0).send("b", 0, big).send("c", 0, big + 5).send("d", 7, 3).send("e", 7, 3)
    h.poll(1, [("a", 0, 0), ("c", 0, big + 5)])
    res = check(tmp_path, h)
    only(res, inconsistent_offsets=1, skips=1)
    assert res["skips"][0]["examples"] == [big]
    assert res["inconsistent_offsets"][0]["partition"] == 7


# --- applicability, limits, output ---------------------------------------------------------------


def test_not_applicable_without_offsets(tmp_path):
    h = Hist()
    h.send("a").send("b", 0, None).send("c", None, 3)
    h.poll(1, [("a", None, None), ("b", 0, None)])
    res = check(tmp_path, h)
    assert res == {"applicable": False, "valid": True, "counts": ZERO, "inconsistent_offsets": [],
                   "duplicates": [], "nonmonotonic": [], "skips": [], "final_read": None}


def test_not_applicable_on_empty_history(tmp_path):
    res = check(tmp_path, Hist())
    assert res["applicable"] is False
    assert res["valid"] is True


def test_sends_only_is_applicable(tmp_path):
    h = Hist()
    produce(h, 0, 3)
    res = check(tmp_path, h)
    only(res)
    assert res["valid"] is True


def test_limit_caps_lists_not_counts(tmp_path):
    h = Hist()
    for o in range(5):
        h.send(f"a{o}", 0, o).send(f"b{o}", 0, o)
    h.poll(1, [(f"a{o}", 0, o) for o in (4, 3, 2, 1, 0)])
    res = check(tmp_path, h, limit=2)
    assert res["counts"] == {"inconsistent_offsets": 5, "duplicates": 0, "nonmonotonic": 4, "skips": 0}
    assert [e["offset"] for e in res["inconsistent_offsets"]] == [0, 1]
    assert [e["offset"] for e in res["nonmonotonic"]] == [3, 2]


def test_lists_are_sorted(tmp_path):
    h = Hist()
    h.send("z", "b", 5).send("y", "b", 5).send("x", 1, 9).send("w", 1, 9).send("v", 0, 3).send("u", 0, 3)
    h.send("m", 1, 0).send("m", "a", 0).send("k", 0, 10).send("k", 0, 11)
    res = check(tmp_path, h)
    assert [(e["partition"], e["offset"]) for e in res["inconsistent_offsets"]] == [(0, 3), (1, 9), ("b", 5)]
    assert res["inconsistent_offsets"][0]["ids"] == ["u", "v"]
    assert res["duplicates"] == [{"id": "k", "positions": [[0, 10], [0, 11]]},
                                 {"id": "m", "positions": [[1, 0], ["a", 0]]}]


def test_unknown_guarantee(tmp_path):
    h = Hist()
    produce(h, 0, 1)
    with pytest.raises(ValueError, match="guarantee"):
        check(tmp_path, h, guarantee="maybe-once")


# --- property: clean logs are clean; one injected anomaly is found alone -------------------------


def random_history(rnd, inject: str | None) -> tuple[Hist, dict]:
    """Producers fill a few partitions (with gaps: transaction markers); consumers read contiguous
    ranges in order, in one or two rounds separated by an assign; optionally inject one anomaly."""
    h = Hist()
    logs = {}
    for p in range(rnd.randint(1, 3)):
        part = rnd.choice([p, f"topic-{p}"])
        offsets, o = [], rnd.randint(0, 3)
        for _ in range(rnd.randint(1, 12)):
            offsets.append(o)
            o += rnd.choice([1, 1, 1, 2, 3])
        logs[part] = [(f"{part}/{o}", part, o) for o in offsets]
    sends = [e for log in logs.values() for e in log]
    rnd.shuffle(sends)
    for mid, p, o in sends:
        h.send(mid, p, o, process=rnd.choice(["p1", "p2"]))

    consumers = {}
    for c in range(rnd.randint(1, 3)):
        polls: list[list[tuple]] = []
        for r in range(rnd.randint(1, 2)):
            if r:
                polls.append("assign")
            streams = []
            for log in logs.values():
                if rnd.random() < 0.8:
                    a = rnd.randrange(len(log))
                    streams.append(list(log[a:rnd.randint(a + 1, len(log))]))
            merged = []
            while any(streams):
                s = rnd.choice([s for s in streams if s])
                merged.append(s.pop(0))
            while merged:
                if rnd.random() < 0.1:
                    polls.append([])  # an ok poll that got nothing
                k = rnd.randint(1, len(merged))
                polls.append(merged[:k])
                merged = merged[k:]
        consumers[c] = polls

    expect = {}
    if inject == "inconsistent_offsets":
        mid, p, o = rnd.choice(sends)
        h.send("intruder", p, o)
        expect = {"partition": p, "offset": o}
    elif inject == "duplicates":
        mid, p, _ = rnd.choice(sends)
        end = max(o for _, _, o in logs[p])
        h.send(mid, p, end + rnd.randint(1, 5))
        expect = {"id": mid}
    elif inject == "nonmonotonic":
        c = rnd.choice(list(consumers))
        polls = consumers[c]
        last_assign = max((i for i, poll in enumerate(polls) if poll == "assign"), default=-1)
        delivered = [m for poll in polls[last_assign + 1:] for m in poll]  # since the last assign
        if delivered:
            last = delivered[-1]
            # re-deliver the last message of its partition, or an earlier one of the same partition
            again = rnd.choice([m for m in delivered if m[1] == last[1]])
            within = bool(polls[-1]) and polls[-1] != "assign" and rnd.random() < 0.5
            if within:
                polls[-1] = [*polls[-1], again]
            else:
                polls.append([again])
        else:
            last = again = rnd.choice(sends)
            within = True
            polls.append([again, again])
        expect = {"process": c, "offset": again[2], "prev_offset": last[2], "within_poll": within}
    elif inject == "skip":
        # drop one message strictly inside a consumer's run on one partition
        cands = []
        for c, polls in consumers.items():
            seg = 0
            runs: dict = {}
            for i, poll in enumerate(polls):
                if poll == "assign":
                    seg += 1
                    continue
                for j, m in enumerate(poll):
                    runs.setdefault((seg, m[1]), []).append((i, j, m))
            for run in runs.values():
                cands += [(c, run[k - 1], run[k], run[k + 1]) for k in range(1, len(run) - 1)]
        if not cands:  # nobody read three in a row: add a fresh partition read by consumer 0
            log = produce(h, "extra", 3)
            n = len(consumers[0])
            consumers[0].extend([[log[0]], [log[1]], [log[2]]])
            cands = [(0, (n, 0, log[0]), (n + 1, 0, log[1]), (n + 2, 0, log[2]))]
        c, before, (i, j, _), after = rnd.choice(cands)
        del consumers[c][i][j]
        expect = {"process": c, "prev_offset": before[2][2], "offset": after[2][2],
                  "within_poll": before[0] == after[0]}

    queues = {c: list(polls) for c, polls in consumers.items()}
    while any(queues.values()):
        c = rnd.choice([c for c, q in queues.items() if q])
        poll = queues[c].pop(0)
        if poll == "assign":
            h.assign(c)
        else:
            h.poll(c, poll)
    return h, expect


@settings(max_examples=150, deadline=None)
@given(rnd=st.randoms(use_true_random=False),
       inject=st.sampled_from([None, "inconsistent_offsets", "duplicates", "nonmonotonic", "skip"]))
def test_property_clean_or_exactly_one_anomaly(rnd, inject):
    h, expect = random_history(rnd, inject)
    with tempfile.TemporaryDirectory() as d:
        res = check(Path(d), h)
    if inject is None:
        only(res)
        assert res["valid"] is True
        return
    kind = "skips" if inject == "skip" else inject
    only(res, **{kind: 1})
    got = res[kind][0]
    for k, v in expect.items():
        assert got[k] == v, (k, got)
    if inject == "skip":
        assert got["skipped"] == 1
    assert res["valid"] is (inject not in ("inconsistent_offsets", "duplicates"))


# --- the final read (onceproof's `final-read` operation) -----------------------------------------


def final_read(hist: Hist, msgs, process="harness", outcome="ok") -> Hist:
    hist.op(process, "invoke", "final-read")
    return hist.op(process, outcome, "final-read",
                   {"messages": [{"id": i, "key": None, "partition": p, "offset": o} for i, p, o in msgs]})


def test_a_final_read_shows_an_overwritten_offset_no_consumer_saw(tmp_path):
    """The acknowledged a@0/0 was truncated and its offset reused by b; only the final read shows b there."""
    h = Hist().send("a", 0, 0).send("b", 0, 1)
    final_read(h, [("b", 0, 0), ("c", 0, 1)])
    r = check(tmp_path, h)
    assert r["counts"]["inconsistent_offsets"] == 2  # 0/0 holds a and b; 0/1 holds b and c
    assert r["valid"] is False
    assert r["final_read"] == {"records": 2, "absent_acknowledged": 1, "absent_ids": ["a"]}


def test_a_final_read_matching_the_sends_is_clean_and_not_a_delivery(tmp_path):
    from checkers.delivery import check_delivery

    h = Hist().send("a", 0, 0).send("b", 1, 0).poll("c1", [("a", 0, 0), ("b", 1, 0)])
    final_read(h, [("a", 0, 0), ("b", 1, 0)])
    path = h.write(tmp_path / "history.jsonl")
    r = check_log(read_history(path))
    assert r["valid"] is True and r["counts"] == ZERO
    assert r["final_read"] == {"records": 2, "absent_acknowledged": 0, "absent_ids": []}
    hist = read_history(path)
    d = check_delivery(hist)
    assert d["counts"]["duplicated"] == 0 and d["counts"]["delivered"] == 2  # the read delivers nothing
    assert len(hist.message_cols.id) == 2 and len(hist.deliveries) == 2


def test_without_a_final_read_there_is_no_final_read_result(tmp_path):
    r = check(tmp_path, Hist().send("a", 0, 0).poll("c1", [("a", 0, 0)]))
    assert r["final_read"] is None


def test_a_final_read_of_another_shape_is_someone_elses_operation_and_ignored(tmp_path):
    """The contract lets histories carry operations checkers do not know: a user's own `final-read`
    without message entries is not refused, and not taken for an empty log."""
    h = Hist().send("a", 0, 0).poll("c1", [("a", 0, 0)])
    h.op("harness", "invoke", "final-read").op("harness", "ok", "final-read", {"records": []})
    h.op("harness", "invoke", "final-read").op("harness", "ok", "final-read", {"messages": [{"offset": "x"}]})
    r = check(tmp_path, h)
    assert r["valid"] is True and r["final_read"] is None
