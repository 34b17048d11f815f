"""canon.c (the reader's C fast path) against the numpy version: the same lines taken, the same columns."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest

import checkers.history as hist
from checkers.history import canon, extract, native

needs_native = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                  reason="no C compiler: the reader uses its numpy path")

# bytes that break (or keep) the canonical shape when put anywhere in a line
_NOISE = ['"', "\\", "{", "}", "[", "]", ",", ":", " ", "0", "7", "-", "a", "é", "\t", "\x7f", "null", "true"]


def _canon_line(rnd: random.Random) -> str:
    """A line the harness could write, with values near the grammar's limits."""

    def num():
        if rnd.random() < 0.8:
            return rnd.randrange(100_000)
        return rnd.choice([0, 1, 9, 10, 10**15, 10**16 - 1, 10**16, 10**17])

    def sid():
        if rnd.random() < 0.8:
            return f"m{rnd.randrange(1000)}"
        return rnd.choice(["", "x" * 24, "x" * 25, "y" * 126, "y" * 127, "y" * 128, "k é", "a\"b"])

    def entry():
        e = {"id": sid(), "key": rnd.choice([None, "k", sid()])}
        for field, vals in (("partition", (0, 3, 10**15)), ("offset", (0, 17, 10**16 - 1)),
                            ("redelivered", (True, False))):
            if rnd.random() < 0.8:
                e[field] = rnd.choice(vals)
        return e

    typ = rnd.choice(["invoke", "ok", "ok", "fail", "info", "okay"])
    f = rnd.choice(["send", "send", "poll", "poll", "ack", "effects"])
    if f == "send":
        value = entry()
        value.pop("redelivered", None)
    elif f == "poll":
        value = None if rnd.random() < 0.3 else {"messages": [entry() for _ in range(rnd.choice((0, 1, 2, 3)))]}
    elif f == "ack":
        value = None if rnd.random() < 0.2 else {"ids": [sid() for _ in range(rnd.choice((0, 1, 3, 3, 64, 65)))]}
    else:
        value = None
    return json.dumps({"time": num(), "process": num(), "type": typ, "f": f, "value": value},
                      separators=(",", ":"), ensure_ascii=rnd.random() < 0.5)


def _mutate(line: str, rnd: random.Random) -> str:
    for _ in range(rnd.choice((1, 1, 2))):
        i = rnd.randrange(len(line) + 1)
        op = rnd.random()
        if op < 0.4:
            line = line[:i] + rnd.choice(_NOISE) + line[i:]
        elif op < 0.7:
            line = line[:i] + line[i + 1:]
        else:
            line = line[:i] + rnd.choice(_NOISE) + line[i + 1:]
    return line.replace("\n", "")


def _both(text: str):
    data = text.encode()
    buf = bytearray(data + bytes(canon.PAD))
    c = canon.Canon(buf, len(data))
    ends = np.flatnonzero(c.a[:c.n] == 10)
    starts = np.r_[0, ends[:-1] + 1].astype(np.int64)
    return native.canon_parse(c.a, starts, ends), canon.parse_numpy(c, starts, ends)


def _assert_same(a: dict, b: dict) -> None:
    good = b["good"]
    assert a["good"].tolist() == good.tolist()
    for k in ("time", "proc", "tcode", "fcode"):
        assert a[k][good].tolist() == b[k][good].tolist(), k
    keep = good[b["send"][0]]  # the numpy version also returns sends of lines refused later
    for x, y in zip(a["send"], b["send"], strict=True):
        assert x.tolist() == y[keep].tolist()
    for x, y in zip(a["msg"], b["msg"], strict=True):
        assert x.tolist() == y.tolist()


@needs_native
@pytest.mark.parametrize("seed", range(40))
def test_native_takes_the_same_lines_as_numpy(seed):
    assert native.available(), native.status()
    rnd = random.Random(seed)
    lines = []
    for _ in range(300):
        line = _canon_line(rnd)
        lines.append(_mutate(line, rnd) if rnd.random() < 0.5 else line)
    a, b = _both("\n".join(lines) + "\n")
    assert a["good"].sum() > 50  # the test exercises both outcomes
    assert (~a["good"]).sum() > 50
    _assert_same(a, b)


@needs_native
def test_native_on_the_harness_lines_and_their_edges():
    lines = [
        '{"time":1,"process":0,"type":"invoke","f":"send","value":{"id":"m1","key":"k"}}',
        '{"time":2,"process":0,"type":"ok","f":"send","value":{"id":"m1","key":null,"partition":3,"offset":17}}',
        '{"time":3,"process":9,"type":"invoke","f":"poll","value":null}',
        '{"time":4,"process":9,"type":"ok","f":"poll","value":{"messages":[{"id":"m1","key":"k","partition":3,'
        '"offset":17,"redelivered":false},{"id":"m0","key":null,"redelivered":true}]}}',
        '{"time":4,"process":9,"type":"ok","f":"poll","value":{"messages":[]}}',
        '{"time":4,"process":9,"type":"ok","f":"poll","value":{"messages":[{"id":"a","key":null}]}} ',
        '{"time":5,"process":9,"type":"invoke","f":"ack","value":{"ids":["m1","m0"]}}',
        '{"time":6,"process":9,"type":"ok","f":"ack","value":{"ids":[]}}',
        '{"time":6,"process":9,"type":"ok","f":"ack","value":null}',
        '{"time":1234567890123456,"process":9,"type":"invoke","f":"send","value":{"id":"m2","key":"k"}}',
        '{"time":12345678901234567,"process":9,"type":"invoke","f":"send","value":{"id":"m2","key":"k"}}',
        '{"time":01,"process":9,"type":"invoke","f":"send","value":{"id":"m2","key":"k"}}',
        '{"time":1,"process":9,"type":"invoke","f":"send","value":{"id":"' + "z" * 127 + '","key":"k"}}',
        '{"time":1,"process":9,"type":"invoke","f":"send","value":{"id":"' + "z" * 128 + '","key":"k"}}',
        '{"time":1,"process":9,"type":"invoke","f":"ack","value":{"ids":[' + ",".join(['"a"'] * 64) + "]}}",
        '{"time":1,"process":9,"type":"invoke","f":"ack","value":{"ids":[' + ",".join(['"a"'] * 65) + "]}}",
        '{"time":1,"process":9,"type":"ok","f":"poll","value":null}',
        '{"time":1,"process":9,"type":"invoke","f":"poll","value":{"messages":[]}}',
        '{"time":1,"process":"nemesis","type":"info","f":"start-fault","value":{"fault":"kill","nodes":["n1"]}}',
        "",
        "{",
    ]
    a, b = _both("\n".join(lines) + "\n")
    assert a["good"].tolist()[:10] == [True, True, True, True, True, False, True, True, True, True]
    _assert_same(a, b)


@needs_native
def test_native_on_a_big_block_of_polls():
    rnd = random.Random(7)
    lines = []
    for i in range(3000):
        msgs = ",".join(f'{{"id":"m{i}-{j}","key":"k","partition":{j},"offset":{i},"redelivered":false}}'
                        for j in range(rnd.randrange(1, 9)))
        lines.append(f'{{"time":{i + 1},"process":{i % 5},"type":"ok","f":"poll","value":{{"messages":[{msgs}]}}}}')
    a, b = _both("\n".join(lines) + "\n")
    assert a["good"].all() and len(a["msg"][0]) > 3000
    _assert_same(a, b)


def test_without_the_native_path_the_reader_uses_numpy(monkeypatch, tmp_path):
    """ONCEPROOF_NATIVE=0 (or no compiler) leaves the numpy version in charge, with the same history."""
    from checkers.delivery import check_delivery

    lines = [
        '{"time":1,"process":0,"type":"invoke","f":"send","value":{"id":"m1","key":"k"}}',
        '{"time":2,"process":0,"type":"ok","f":"send","value":{"id":"m1","key":null,"partition":3,"offset":17}}',
        '{"time":3,"process":9,"type":"invoke","f":"poll","value":null}',
        '{"time":4,"process":9,"type":"ok","f":"poll","value":{"messages":[{"id":"m1","key":"k"}]}}',
    ]
    p = tmp_path / "h.jsonl"
    p.write_text("\n".join(lines) + "\n")
    with_native = check_delivery(hist.read_history(p))
    monkeypatch.setattr(native, "_tried", True)
    monkeypatch.setattr(native, "_lib", None)
    monkeypatch.setattr(native, "_why", "turned off (test)")
    assert not native.available() and native.status().startswith("numpy")
    assert check_delivery(hist.read_history(p)) == with_native


def test_build_failure_is_reported_not_raised(monkeypatch, tmp_path):
    monkeypatch.setenv("ONCEPROOF_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    monkeypatch.setattr(native, "_compiler", lambda: "false")
    monkeypatch.setattr(native, "_tried", False)
    monkeypatch.setattr(native, "_lib", None)
    assert not native.available()
    assert "false failed" in native.status()
    assert not list((tmp_path / "native").glob("*.so"))  # nothing half-written left behind


def _counts_json(rnd: random.Random) -> bytes:
    """A valid JSON value, mostly an object of ids to counts, sometimes spaced or not plain."""
    items = []
    for _ in range(rnd.choice((0, 1, 2, 5, 40))):
        mid = rnd.choice(["m1", "", "x" * 300, "é", "a\\\"b", "\\u00e9", "tab\\t", "k y",
                          "m" + str(rnd.randrange(10**6))])
        val = rnd.choice(["0", "1", "7", "123456789012345678", "1234567890123456789", "-1", "1.5", "2e3",
                          "null", '"3"', "[1]", "true"] if rnd.random() < 0.2 else ["0", "1", "2", "37"])
        sp = [rnd.choice(("", "", " ", "\n ", "\t")) for _ in range(4)]
        items.append(f'{sp[0]}"{mid}"{sp[1]}:{sp[2]}{val}{sp[3]}')
    text = "{" + ",".join(items) + "}"
    if rnd.random() < 0.1:
        text = rnd.choice(["[]", "null", "3", '"x"', " " + text + " \n"])
    json.loads(text)
    return text.encode()


@needs_native
@pytest.mark.parametrize("seed", range(20))
def test_native_effect_counts_read_like_numpy(seed):
    rnd = random.Random(seed)
    for _ in range(50):
        raw = _counts_json(rnd)
        a, b = extract.plain_counts(raw), extract.plain_counts_numpy(raw)
        assert (a is None) == (b is None), raw
        if a is not None:
            assert a[0].tolist() == b[0].tolist() and a[1].tolist() == b[1].tolist(), raw


@needs_native
def test_the_wrapper_refuses_what_canon_c_would_misread():
    data = b'{"time":1,"process":0,"type":"ok","f":"ack","value":null}\n'
    a = np.frombuffer(data + bytes(native.LIT_PAD + 1), np.uint8)
    starts, ends = np.array([0]), np.array([len(data) - 1])
    assert native.canon_parse(a, starts, ends)["good"].tolist() == [True]
    for s, e, buf in ((starts, np.array([], dtype=np.int64), a), (starts, ends - 1, a),
                      (np.array([0, 5]), np.array([len(data) - 1, 3]), a),
                      (starts, ends, np.frombuffer(data, np.uint8).copy())):
        with pytest.raises(ValueError):
            native.canon_parse(buf, s, e)
