"""The reader: valid histories load, bad lines are named by file, line and field."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkers.delivery import check_delivery
from checkers.history import HistoryError, canon, decode, ids, native, read_history, schedule, tuning
from tests.histories import Builder


def write(tmp_path, lines, name="history.jsonl"):
    p = tmp_path / name
    p.write_text("".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines))
    return p


def send_inv(mid="a", p=0, t=1):
    return {"time": t, "process": p, "type": "invoke", "f": "send", "value": {"id": mid, "key": None}}


def test_reads_run_directory_and_pairs(tmp_path):
    b = Builder()
    b.send(0, "a")
    b.poll(1, ["a"])
    b.write(tmp_path / "history.jsonl")
    h = read_history(tmp_path)
    assert len(h) == 4
    assert h.ops["pair"].tolist() == [1, 0, 3, 2]
    assert h.sends["outcome"].tolist() == ["ok"]
    assert h.deliveries["id"].tolist() == ["a"]


def test_index_orders_operations_and_defaults_to_line_number(tmp_path):
    lines = [
        {**send_inv(), "index": 1},
        {"time": 2, "process": 0, "type": "ok", "f": "send", "value": {"id": "a"}, "index": 2},
        {"time": 0, "process": 5, "type": "invoke", "f": "poll", "value": None, "index": 0},
    ]
    h = read_history(write(tmp_path, lines))
    assert h.ops["index"].tolist() == [0, 1, 2]
    assert h.ops["line"].tolist() == [3, 1, 2]
    h2 = read_history(write(tmp_path, lines[:2], "b.jsonl"))
    assert h2.sends["outcome"].tolist() == ["ok"]


def test_interleaved_processes_pair_correctly(tmp_path):
    lines = [send_inv("a", 0), send_inv("b", 1),
             {"time": 3, "process": 1, "type": "fail", "f": "send", "value": None},
             {"time": 4, "process": 0, "type": "info", "f": "send", "value": None}]
    h = read_history(write(tmp_path, lines))
    s = h.sends.set_index("id")["outcome"].to_dict()
    assert s == {"a": "info", "b": "fail"}


def test_latest_open_invoke_takes_the_completion(tmp_path):
    lines = [send_inv("a", 0), send_inv("b", 0, 2),
             {"time": 3, "process": 0, "type": "ok", "f": "send", "value": None}]
    h = read_history(write(tmp_path, lines))
    assert h.sends.set_index("id")["outcome"].to_dict() == {"a": "open", "b": "ok"}


def test_uncompleted_invoke_is_open(tmp_path):
    h = read_history(write(tmp_path, [send_inv()]))
    assert h.sends["outcome"].tolist() == ["open"]


def test_truncated_last_line_is_tolerated_with_a_warning(tmp_path):
    p = tmp_path / "history.jsonl"
    p.write_text(json.dumps(send_inv()) + "\n" + '{"time": 2, "process": 0, "ty')
    h = read_history(p)
    assert len(h) == 1
    assert any(":2:" in w and "truncated" in w for w in h.warnings)


def test_blank_lines_are_skipped_and_line_numbers_kept(tmp_path):
    p = tmp_path / "history.jsonl"
    p.write_text(json.dumps(send_inv()) + "\n\n" + '{"time": 2}\n')
    with pytest.raises(HistoryError, match=r"history.jsonl:3: field 'process' is missing"):
        read_history(p)


@pytest.mark.parametrize(("line", "message"), [
    ("not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ({"process": 0, "type": "invoke", "f": "send", "value": {"id": "a"}}, "field 'time' is missing"),
    ({"time": "x", "process": 0, "type": "invoke", "f": "send", "value": {"id": "a"}}, "field 'time' must be"),
    ({"time": 1.5, "process": 0, "type": "invoke", "f": "send", "value": {"id": "a"}}, "field 'time' must be"),
    ({"time": 1, "process": [1], "type": "invoke", "f": "send", "value": {"id": "a"}}, "field 'process'"),
    ({"time": 1, "process": 0, "type": "okay", "f": "send", "value": {"id": "a"}}, "unknown type"),
    ({"time": 1, "process": 0, "f": "send", "value": {"id": "a"}}, "field 'type' is missing"),
    ({"time": 1, "process": 0, "type": "invoke", "value": {"id": "a"}}, "field 'f' is missing"),
    ({"time": 1, "process": 0, "type": "invoke", "f": "send", "value": {}}, "field 'value.id' is missing"),
    ({"time": 1, "process": 0, "type": "invoke", "f": "send", "value": {"id": 7.5}},
     "'value.id' must be a string or an integer"),
    ({"time": 1, "process": 0, "type": "invoke", "f": "send", "value": {"id": True}},
     "'value.id' must be a string or an integer"),
    ({"time": 1, "process": 0, "type": "invoke", "f": "send", "value": None}, "value"),
    ({"time": 1, "process": 0, "type": "invoke", "f": "send", "value": {"id": "a"}, "index": "x"}, "'index'"),
])
def test_bad_line_names_file_line_and_field(tmp_path, line, message):
    p = write(tmp_path, [send_inv("z"), {"time": 1, "process": 0, "type": "ok", "f": "send", "value": None},
                         line, send_inv("y", 3)])
    with pytest.raises(HistoryError) as e:
        read_history(p)
    assert str(e.value).startswith(f"{p}:3: ")
    assert message in str(e.value)


@pytest.mark.parametrize(("value", "message"), [
    (None, "value.messages' is missing"),
    ({"messages": 3}, "must be a list"),
    ({"messages": [{"key": 1}]}, "value.messages[0]'.id is missing"),
    ({"messages": [{"id": "a", "offset": "7"}]}, "offset must be an integer"),
    ({"messages": [{"id": "a", "redelivered": "yes"}]}, "redelivered"),
])
def test_bad_poll_values(tmp_path, value, message):
    p = write(tmp_path, [{"time": 1, "process": 0, "type": "invoke", "f": "poll", "value": None},
                         {"time": 2, "process": 0, "type": "ok", "f": "poll", "value": value}])
    with pytest.raises(HistoryError, match=r":2: ") as e:
        read_history(p)
    assert message in str(e.value)


def test_bad_effects_counts(tmp_path):
    p = write(tmp_path, [{"time": 1, "process": 0, "type": "invoke", "f": "effects", "value": None},
                         {"time": 2, "process": 0, "type": "ok", "f": "effects", "value": {"counts": {"a": -1}}}])
    with pytest.raises(HistoryError, match=r":2: .*counts"):
        read_history(p)


def test_completion_without_invoke_is_an_error(tmp_path):
    p = write(tmp_path, [send_inv("a", 0), {"time": 2, "process": 9, "type": "ok", "f": "send", "value": None}])
    with pytest.raises(HistoryError, match=r":2: .*no open invoke"):
        read_history(p)


def test_completion_of_another_operation_is_an_error(tmp_path):
    p = write(tmp_path, [send_inv("a", 0), {"time": 2, "process": 0, "type": "ok", "f": "poll",
                                             "value": {"messages": []}}])
    with pytest.raises(HistoryError, match=r":2: completion of 'poll'"):
        read_history(p)


def test_unknown_operations_are_kept_and_ignored(tmp_path):
    p = write(tmp_path, [{"time": 1, "process": 0, "type": "invoke", "f": "frobnicate", "value": [1, 2]},
                         {"time": 2, "process": 0, "type": "ok", "f": "frobnicate", "value": "x"},
                         send_inv("a", 1, 3)])
    h = read_history(p)
    assert len(h) == 3 and h.sends["id"].tolist() == ["a"]


def test_missing_file_and_empty_history(tmp_path):
    with pytest.raises(HistoryError, match="no such history file"):
        read_history(tmp_path / "nope.jsonl")
    (tmp_path / "history.jsonl").write_text("")
    assert len(read_history(tmp_path)) == 0


def test_faults_become_windows(tmp_path):
    b = Builder()
    b.fault("start-fault", "kill", ["n1"])
    b.send(0, "a")
    b.fault("stop-fault", "kill", ["n1"])
    b.fault("start-fault", "pause", ["n2"])
    h = read_history(b.write(tmp_path / "h.jsonl"))
    f = h.faults
    assert f["fault"].tolist() == ["kill", "pause"]
    assert f["unhealed"].tolist() == [False, True]
    assert f["stop"].tolist()[1] == int(h.ops["time"].max())


def test_big_history_uses_several_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(tuning, "CHUNK_BYTES", 256)
    b = Builder()
    for i in range(200):
        b.send(i % 3, f"m{i}")
    b.poll(9, [f"m{i}" for i in range(200)])
    p = b.write(tmp_path / "h.jsonl")
    h = read_history(p)
    assert len(h) == 402
    assert h.ops["line"].tolist() == list(range(1, 403))
    assert (h.sends["outcome"] == "ok").all()
    lines = p.read_text().splitlines()
    lines[300] = lines[300].replace('"time"', '"tiem"')
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(HistoryError, match=r":301: field 'time' is missing"):
        read_history(p)


def _big_history(path, min_bytes):
    """Send invoke/ok pairs until the file is bigger than `min_bytes` (written in one go)."""
    lines, size, i = [], 0, 0
    while size <= min_bytes:
        for typ, extra in (("invoke", ""), ("ok", f',"partition":{i % 4},"offset":{i // 4}')):
            ln = (f'{{"time":{2 * i + (typ == "ok")},"process":{i % 8},"type":"{typ}","f":"send",'
                  f'"value":{{"id":"m{i}","key":"k{i % 100}"{extra}}}}}')
            lines.append(ln)
            size += len(ln) + 1
        i += 1
    path.write_text("\n".join(lines) + "\n")
    return lines


@pytest.mark.parametrize("threads", [True, False])
def test_bad_line_in_a_big_file_is_named_by_the_parallel_reader(tmp_path, monkeypatch, capsys, threads):
    import os

    from harness.cli import main

    monkeypatch.setattr(tuning, "CHUNK_BYTES", 4 << 20)  # several chunks, so several threads or processes
    monkeypatch.setattr(schedule, "mostly_canonical", lambda path, size: threads)
    p = tmp_path / "history.jsonl"
    lines = _big_history(p, tuning.PARALLEL_MIN_BYTES + (1 << 20))
    size = p.stat().st_size
    if (os.cpu_count() or 1) > 1 and "fork" in __import__("multiprocessing").get_all_start_methods():
        assert schedule.n_workers(size, len(schedule.chunk_tasks(p, size)), threads) > 1
    h = read_history(p)
    assert len(h) == len(lines) and h.n_ids == len(lines) // 2
    assert (h.sends["outcome"] == "ok").all()
    # two bad lines: one in the middle, one in the last chunk (which is decoded first); the first wins
    middle, late = len(lines) // 2 + 1, len(lines) - 3
    lines[middle] = lines[middle].replace('"time"', '"tiem"')
    lines[late] = "not json"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(HistoryError, match=rf"history.jsonl:{middle + 1}: field 'time' is missing"):
        read_history(p)
    assert main(["check", str(p)]) == 2
    err = capsys.readouterr().err
    assert f"history.jsonl:{middle + 1}: field 'time' is missing" in err


def test_big_files_of_canonical_lines_are_read_by_threads_others_by_processes(tmp_path, monkeypatch):
    from checkers.history import native

    if not native.available():
        pytest.skip(native.status())
    p = tmp_path / "history.jsonl"
    lines = _big_history(p, tuning.PARALLEL_MIN_BYTES + (1 << 20))
    size = p.stat().st_size
    assert schedule.mostly_canonical(p, size)
    spaced = tmp_path / "spaced.jsonl"
    spaced.write_text("\n".join(json.dumps(json.loads(ln)) for ln in lines) + "\n")
    assert not schedule.mostly_canonical(spaced, spaced.stat().st_size)
    assert not schedule.mostly_canonical(p, tuning.PARALLEL_MIN_BYTES - 1)  # small: one thread anyway
    half = len(lines) // 2  # canonical at its start, not after its middle: processes too
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("\n".join(lines[:half] + [json.dumps(json.loads(ln)) for ln in lines[half:]]) + "\n")
    assert not schedule.mostly_canonical(mixed, mixed.stat().st_size)
    monkeypatch.setattr(tuning, "CHUNK_BYTES", 4 << 20)
    a, b = read_history(p), read_history(spaced)
    assert len(a) == len(b) == len(lines)
    assert check_delivery(a) == check_delivery(b)


def test_two_objects_on_one_line_are_an_error(tmp_path):
    one = json.dumps(send_inv("a", 0))
    p = tmp_path / "history.jsonl"
    p.write_text(one + "\n" + one + " " + json.dumps(send_inv("b", 1)) + "\n\n" + json.dumps(send_inv("c", 2)) + "\n")
    with pytest.raises(HistoryError, match=r"history.jsonl:2: not valid JSON"):
        read_history(p)


def test_keys_are_read_on_demand(tmp_path):
    b = Builder()
    b.send(0, "a", key={"k": [1]})
    b.op(1, "invoke", "send", {"id": "b", "key": "kb"})
    b.op(1, "ok", "send", None)
    b.poll(2, [{"id": "a", "key": 7}, "b"])
    p = b.write(tmp_path / "history.jsonl")
    h = read_history(p)
    assert h.sends["key"].tolist() == [{"k": [1]}, "kb"]
    assert h.ops["key"].tolist()[:4] == [{"k": [1]}, {"k": [1]}, "kb", "kb"]
    assert h.deliveries["key"].tolist() == [7, None]
    h2 = read_history(p)
    p.write_text(p.read_text() + "\n")
    with pytest.raises(HistoryError, match="changed since it was read"):
        _ = h2.messages


_PARENT: list[int] = []


def _dying_work(task):
    """checkers.history.schedule.work, except that a worker process dies on chunk 2 (as if killed for memory)."""
    import os

    if task.k == 2 and os.getpid() not in _PARENT:
        os._exit(1)
    return task.k, decode.decode_chunk(task.path, task.start, task.end, task.is_last)


def test_a_worker_that_dies_does_not_lose_chunks(tmp_path, monkeypatch):
    import os

    if (os.cpu_count() or 1) < 2 or "fork" not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip("needs fork and two CPUs")
    monkeypatch.setattr(tuning, "CHUNK_BYTES", 1 << 20)
    monkeypatch.setattr(tuning, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(schedule, "work", _dying_work)
    monkeypatch.setattr(schedule, "mostly_canonical", lambda path, size: False)  # processes, not threads
    _PARENT[:] = [os.getpid()]
    p = tmp_path / "history.jsonl"
    lines = _big_history(p, 4 << 20)
    h = read_history(p)
    assert len(h) == len(lines) and (h.sends["outcome"] == "ok").all()


def test_effects_counts_read_like_a_dict(tmp_path):
    p = tmp_path / "history.jsonl"
    p.write_text(json.dumps(send_inv("a")) + "\n"
                 + '{"time": 2, "process": 0, "type": "ok", "f": "send", "value": null}\n'
                 + '{"time": 3, "process": 1, "type": "invoke", "f": "effects", "value": null}\n'
                 + '{"time": 4, "process": 1, "type": "ok", "f": "effects", "value": {"counts": '
                 + '{"a": 1, "b": 3, "a": 2, "c\\u00e9": 0}}}\n')
    assert read_history(p).effects == {"a": 2, "b": 3, "cé": 0}
    p.write_text(p.read_text().replace(', "c\\u00e9": 0', ""))  # no escapes: read without making a dict
    assert read_history(p).effects == {"a": 2, "b": 3}


def test_truncated_last_line_followed_by_blank_lines_in_later_pieces(tmp_path, monkeypatch):
    monkeypatch.setattr(tuning, "PIECE_BYTES", 64)
    p = tmp_path / "history.jsonl"
    p.write_text(json.dumps(send_inv()) + "\n" + '{"time": 2, "process": 0, "ty' + "\n" * 3 + " \n" * 100)
    h = read_history(p)
    assert len(h) == 1
    assert any(":2:" in w and "truncated" in w for w in h.warnings)
    bad = '{"time": 2, "process": 0, "ty'
    p.write_text(json.dumps(send_inv()) + "\n" + bad + "\n" * 200 + json.dumps(send_inv("b")) + "\n")
    with pytest.raises(HistoryError, match=r":2: not valid JSON"):
        read_history(p)


def test_ids_sharing_only_a_hash_prefix_stay_packed(monkeypatch):
    """Ids whose hashes agree in the bits the chunk's grouping sort looks at (likely among a million
    ids) are told apart by the whole hash, without falling back to Python strings."""
    import numpy as np

    words = ids.pack_strings(["a", "b", "a", "c"])
    hashes = np.array([0x100, 0x101, 0x100, 0x203], dtype=np.uint64)
    monkeypatch.setattr(ids, "hash_words", lambda w: hashes[:len(w)])
    d, codes = ids.dedupe(words, None)
    assert d.exact is None
    assert codes.tolist() == [0, 1, 0, 2]
    assert d.hash.tolist() == [0x100, 0x101, 0x203]
    assert ids.unpack(d.words) == ["a", "b", "c"]


def test_ids_whose_hashes_collide_stay_apart(tmp_path, monkeypatch):
    import numpy as np

    b = Builder()
    for i in range(20):
        b.send(i % 3, f"m{i}")
    b.poll(9, [f"m{i}" for i in range(0, 20, 2)] + ["m0", "ghost"])
    p = b.write(tmp_path / "h.jsonl")
    expected = check_delivery(read_history(p))
    monkeypatch.setattr(tuning, "CHUNK_BYTES", 300)  # several chunks: the table meets the collision across them
    monkeypatch.setattr(ids, "hash_words", lambda w: np.full(len(w), 42, dtype=np.uint64) ^ (w[:, 0] & 1))
    h = read_history(p)
    assert h.n_ids == 21 and sorted(h.ids.tolist()) == sorted([f"m{i}" for i in range(20)] + ["ghost"])
    assert check_delivery(h) == expected


# --- the canonical fast path (numpy, straight from the bytes) against the msgspec path -----------


def _msgspec_only(monkeypatch):
    """Turn the canonical fast path off: every line goes through msgspec (and its slow path)."""
    calls: list[int] = []

    def whole(c, b0, b1, ends):
        calls.append(b0)
        return [(b0, b1, None)]

    monkeypatch.setattr(canon, "split_block", whole)
    return calls


def _read_both(path, monkeypatch):
    """(History or HistoryError message) read with the fast path and without it."""
    out = []
    calls = []
    for fast in (True, False):
        if not fast:
            calls = _msgspec_only(monkeypatch)
        try:
            out.append(read_history(path))
        except HistoryError as e:
            out.append(str(e))
    monkeypatch.undo()
    assert calls or not path.stat().st_size, "the reader no longer calls canon.split_block: the patch compared nothing"
    return out


def _assert_same_history(a, b):
    import pandas as pd

    if isinstance(a, str) or isinstance(b, str):
        assert a == b
        return
    assert a.warnings == b.warnings and a.processes == b.processes
    assert sorted(a.fnames) == sorted(b.fnames) and sorted(map(repr, a.partitions)) == sorted(map(repr, b.partitions))
    for view in ("ops", "sends", "messages", "deliveries", "faults"):
        pd.testing.assert_frame_equal(getattr(a, view), getattr(b, view))
    assert a.effects == b.effects
    assert check_delivery(a) == check_delivery(b)


_ODD_IDS = ["", "é", "a\"b", "back\\slash", "tab\there", "日本", "x" * 40, "y" * 140, "nul\x00in", "\x7f", "{", "]"]


def _random_ops(rnd):
    """A random, mostly well-formed history: every operation the harness writes, and odd but legal values."""
    ops, t = [], rnd.randrange(0, 10**12) if rnd.random() < 0.3 else 0

    def mid():
        return rnd.choice(_ODD_IDS) + str(rnd.randrange(50)) if rnd.random() < 0.1 else f"m{rnd.randrange(60)}"

    def op(process, typ, f, value, **extra):
        nonlocal t
        t += rnd.choice((1, 7, 1000, 10**9, 10**13))
        ops.append({"time": t, "process": process, "type": typ, "f": f, "value": value, **extra})

    for _ in range(rnd.randrange(1, 60)):
        proc = rnd.choice((0, 1, 2, 17, 12345, 10**16, "c1", "7"))
        kind = rnd.random()
        if kind < 0.45:
            m, key = mid(), rnd.choice(("k1", None, "", "ké"))
            value = {"id": m, "key": key}
            if rnd.random() < 0.1:
                value["producer"] = "p1"
            op(proc, "invoke", "send", value)
            outcome = rnd.choice(("ok", "ok", "ok", "fail", "info", None))
            if outcome is not None:
                done = dict(value)
                if outcome == "ok":
                    if rnd.random() < 0.8:
                        done["partition"] = rnd.choice((0, 3, 11, "p", None))
                    if rnd.random() < 0.8:
                        done["offset"] = rnd.choice((0, 1, 99, 10**15, None))
                op(proc, outcome, "send", done if rnd.random() < 0.95 else None)
        elif kind < 0.75:
            op(proc, "invoke", "poll", None)
            outcome = rnd.choice(("ok", "ok", "ok", "fail", "info"))
            entries = []
            for _ in range(rnd.choice((0, 1, 3, 6, 70))):
                e = {"id": mid(), "key": rnd.choice(("k1", None))}
                for field, values in (("partition", (0, 5, 11, "p")), ("offset", (0, 8, 123456789012)),
                                      ("redelivered", (False, True))):
                    if rnd.random() < 0.85:
                        e[field] = rnd.choice(values)
                entries.append(e)
            value = {"messages": entries} if outcome == "ok" or rnd.random() < 0.5 else None
            op(proc, outcome, "poll", value)
        elif kind < 0.9:
            ids = {"ids": [mid() for _ in range(rnd.choice((0, 1, 4, 70)))]} if rnd.random() < 0.9 else None
            op(proc, "invoke", "ack", ids)
            op(proc, "ok", "ack", ids)
        elif kind < 0.95:
            op("nemesis", "info", rnd.choice(("start-fault", "stop-fault")), {"fault": "kill", "nodes": ["n1"]})
        else:
            op(proc, "invoke", "effects", None)
            op(proc, "ok", "effects", {"counts": {mid(): rnd.randrange(3) for _ in range(rnd.randrange(4))}})
    return ops


def _line(o, rnd):
    """One operation as the harness writes it (mostly), or in another legal spelling."""
    style = rnd.random()
    if style < 0.75:
        return json.dumps(o, separators=(",", ":"), ensure_ascii=rnd.random() < 0.5)
    if style < 0.82:
        return json.dumps(o)  # spaces
    if style < 0.87:
        keys = list(o)
        rnd.shuffle(keys)
        return json.dumps({k: o[k] for k in keys}, separators=(",", ":"))
    if style < 0.91:
        return json.dumps({**o, "extra": [1, {"a": None}]}, separators=(",", ":"))
    if style < 0.94:
        return json.dumps(o, separators=(",", ":")) + rnd.choice((" ", "\r", "\t"))
    if style < 0.96:
        return json.dumps({**o, "time": -o["time"]} if rnd.random() < 0.9 else {**o, "time": str(o["time"])},
                          separators=(",", ":"))
    return "\n" + json.dumps(o, separators=(",", ":"))  # after a blank line


@pytest.mark.parametrize("reader", ["native", "numpy"])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**32), st.sampled_from([64, 300, 4 << 20]))
def test_fast_path_reads_what_msgspec_reads(tmp_path, monkeypatch, reader, seed, block):
    import random

    if reader == "numpy":  # the reader's own fallback when canon.c cannot be built
        monkeypatch.setattr(native, "available", lambda: False)
    rnd = random.Random(seed)
    lines = [_line(o, rnd) for o in _random_ops(rnd)]
    if lines and rnd.random() < 0.2:
        lines[rnd.randrange(len(lines))] = '{"time":5,"process":1,"type":"okay","f":"send","value":null}'
    path = tmp_path / f"h{seed}.jsonl"
    path.write_text("\n".join(lines) + ("\n" if rnd.random() < 0.8 else ""), encoding="utf-8")
    monkeypatch.setattr(tuning, "BLOCK_BYTES", block)
    fast, slow = _read_both(path, monkeypatch)
    _assert_same_history(fast, slow)


def test_fast_path_takes_canonical_lines_and_leaves_the_rest(tmp_path):
    import numpy as np

    taken = [
        '{"time":1,"process":0,"type":"invoke","f":"send","value":{"id":"m1","key":"k"}}',
        '{"time":2,"process":0,"type":"ok","f":"send","value":{"id":"m1","key":null,"partition":3,"offset":17}}',
        '{"time":3,"process":9,"type":"invoke","f":"poll","value":null}',
        '{"time":4,"process":9,"type":"ok","f":"poll","value":{"messages":[{"id":"m1","key":"k","partition":3,'
        '"offset":17,"redelivered":false},{"id":"m0","key":null,"redelivered":true}]}}',
        '{"time":5,"process":9,"type":"invoke","f":"ack","value":{"ids":["m1","m0"]}}',
        '{"time":6,"process":9,"type":"ok","f":"ack","value":{"ids":[]}}',
        '{"time":1234567890123456,"process":9,"type":"invoke","f":"send","value":{"id":"m2","key":"k"}}',
    ]
    other = [
        '{"time": 1, "process": 0, "type": "invoke", "f": "send", "value": {"id": "m1", "key": "k"}}',
        '{"time":1,"process":"0","type":"invoke","f":"send","value":{"id":"m1","key":"k"}}',
        '{"time":1,"process":0,"type":"invoke","f":"send","value":{"id":"m\\u00e9","key":"k"}}',
        '{"time":01,"process":0,"type":"invoke","f":"send","value":{"id":"m1","key":"k"}}',
        '{"time":1,"process":0,"type":"invoke","f":"send","value":{"id":"m1","key":"k"},"index":0}',
        '{"time":1,"process":0,"type":"invoke","f":"send","value":{"key":"k","id":"m1"}}',
        '{"time":1,"process":0,"type":"ok","f":"poll","value":null}',
        '{"time":1,"process":0,"type":"invoke","f":"send","value":{"id":"m1","key":"k","producer":"x"}}',
        '{"time":1,"process":0,"type":"invoke","f":"send","value":{"id":"m1","key":"k"}} ',
        '{"time":12345678901234567,"process":0,"type":"invoke","f":"send","value":{"id":"m1","key":"k"}}',
    ]
    text = "\n".join(taken + other) + "\n"
    buf = bytearray(text.encode() + bytes(canon.PAD))
    c = canon.Canon(buf, len(text))
    ends = np.flatnonzero(c.a[:c.n] == 10)
    starts = np.r_[0, ends[:-1] + 1]
    good = canon.parse(c, starts, ends)["good"]
    assert good.tolist() == [True] * len(taken) + [False] * len(other)


@pytest.mark.parametrize("value", [
    '{"messages":[{"id":"a","key":null},{"x":1},{"id":"b","key":null}]}',
    '{"messages":[{"id":"a","key":null,"extra":{"id":"z","key":null}}]}',
    '{"messages":[{"id":"a","key":null}{"id":"b","key":null}]}',
    '{"messages":[{"id":"a","key":null},{"id":"b","key":null},]}',
    '{"messages":[,{"id":"a","key":null}]}',
    '{"messages":[{"id":"a","key":null}],"more":[{"id":"b","key":null}]}',
    '{"messages":[{"id":"a","key":null,"partition":1,"offset":2,"redelivered":false}, {"id":"b","key":null}]}',
])
def test_fast_path_poll_entries_must_follow_each_other(tmp_path, monkeypatch, value):
    lines = [
        '{"time":1,"process":0,"type":"invoke","f":"send","value":{"id":"a","key":null}}',
        '{"time":2,"process":0,"type":"ok","f":"send","value":{"id":"a","key":null}}',
        '{"time":3,"process":1,"type":"invoke","f":"poll","value":null}',
        '{"time":4,"process":1,"type":"ok","f":"poll","value":' + value + "}",
        '{"time":5,"process":1,"type":"invoke","f":"poll","value":null}',
        '{"time":6,"process":1,"type":"ok","f":"poll","value":{"messages":[{"id":"a","key":null}]}}',
    ]
    p = write(tmp_path, lines)
    fast, slow = _read_both(p, monkeypatch)
    _assert_same_history(fast, slow)


def test_integer_ids_are_their_decimal_strings(tmp_path):
    """Tools that count their messages (Kafka's verifiable producer) log integer ids: 788 and "788" are one id."""
    from checkers.suite import check_history

    p = write(tmp_path, [
        {"time": 1, "process": 0, "type": "invoke", "f": "send", "value": {"id": 788}},
        {"time": 2, "process": 0, "type": "ok", "f": "send", "value": {"id": 788, "partition": 0, "offset": 4}},
        {"time": 3, "process": 0, "type": "invoke", "f": "send", "value": {"id": "1000"}},
        {"time": 4, "process": 0, "type": "ok", "f": "send", "value": {"id": "1000"}},
        {"time": 5, "process": 1, "type": "invoke", "f": "poll", "value": None},
        {"time": 6, "process": 1, "type": "ok", "f": "poll", "value": {"messages": [{"id": "788"}, {"id": 1000}]}},
    ])
    d = check_history(read_history(p))["delivery"]
    assert d["counts"]["delivered"] == 2 and d["lost"] == [] and d["unexpected"] == []
