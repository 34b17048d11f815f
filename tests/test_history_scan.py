"""`scan.mentions`, window by window, says what `needle in the file's bytes` says, with libc's search and Python's."""

from __future__ import annotations

import mmap

import numpy as np
import pytest

from checkers.history import read_history, scan
from checkers.idempotency import is_api

GRAIN = mmap.ALLOCATIONGRANULARITY
FINDERS = {"libc": scan._FIND, "python": scan._python_find}


@pytest.fixture(params=sorted(FINDERS))
def small_windows(request, monkeypatch):
    """Windows of the smallest size (two grains), so that a few KB of file cross many window ends."""
    monkeypatch.setattr(scan, "WINDOW_BYTES", 1)
    monkeypatch.setattr(scan, "_FIND", FINDERS[request.param])


def _file(tmp_path, data: bytes):
    p = tmp_path / "h.jsonl"
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("needle", [b'"idempotency_key"', b"x", b"ab" * 3000])  # the last one is longer than a grain
def test_a_needle_anywhere_is_found_whatever_the_window_it_straddles(tmp_path, small_windows, needle):
    size = 5 * GRAIN + 123
    around = sorted({max(0, min(size - len(needle), k * GRAIN + d))
                     for k in range(6) for d in (-len(needle), -len(needle) + 1, -1, 0, 1)})
    for at in around:
        data = bytearray(b"." * size)
        data[at:at + len(needle)] = needle
        assert scan.mentions(_file(tmp_path, bytes(data)), needle), at
    assert not scan.mentions(_file(tmp_path, b"." * size), needle)


def test_random_files_agree_with_bytes_in(tmp_path, small_windows):
    rng = np.random.default_rng(7)
    for _ in range(40):
        size = int(rng.integers(0, 4 * GRAIN))
        data = rng.choice(np.frombuffer(b"ab\n", np.uint8), size).tobytes()
        needle = rng.choice(np.frombuffer(b"ab", np.uint8), int(rng.integers(1, 12))).tobytes()
        assert scan.mentions(_file(tmp_path, data), needle) == (needle in data), (size, needle)


def test_edges(tmp_path, small_windows):
    assert not scan.mentions(_file(tmp_path, b""), b"x")
    assert not scan.mentions(_file(tmp_path, b""), b"")
    assert scan.mentions(_file(tmp_path, b"x"), b"")
    assert not scan.mentions(_file(tmp_path, b"ab"), b"abc")
    assert scan.mentions(_file(tmp_path, b"abc"), b"abc")


def test_is_api_decides_as_before(tmp_path):
    """Some send invoke, and the bytes "idempotency_key" anywhere in the file (what `send_cols` and a whole-file
    mmap found before)."""
    def history(*lines: str):
        p = tmp_path / "h.jsonl"
        p.write_text("".join(line + "\n" for line in lines))
        return read_history(p)

    inv = '{"time":1,"process":0,"type":"invoke","f":"send","value":{"id":"m1","key":null%s}}'
    ok = '{"time":2,"process":0,"type":"ok","f":"send","value":{"id":"m1"}}'
    assert is_api(history(inv % ',"idempotency_key":"k1"', ok))
    assert not is_api(history(inv % "", ok))
    assert not is_api(history(inv % ',"idempotency":"k1"', ok))
    # the bytes anywhere count, as before (here a poll's entry); no send invoke: not an API history
    poll = '{"time":3,"process":1,"type":"%s","f":"poll","value":%s}'
    assert is_api(history(inv % "", ok, poll % ("invoke", "null"),
                          poll % ("ok", '{"messages":[{"id":"m1","idempotency_key":"k"}]}')))
    assert not is_api(history(poll % ("invoke", "null"), poll % ("ok", '{"messages":[{"id":"idempotency_key"}]}')))
    h = history(inv % ',"idempotency_key":"k1"', ok)
    assert is_api(h) == (len(h.send_cols.id) > 0 and h.mentions(b'"idempotency_key"'))
