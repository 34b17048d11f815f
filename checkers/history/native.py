"""The history reader's C fast path (canon.c): built once with the system's C compiler, then loaded.

Why C: the numpy version of the canonical path makes a few dozen passes over every block and is
the reader's main cost; one pass in C is several times faster. Why not a wheel: the package stays
pure Python, and without a compiler (or with ONCEPROOF_NATIVE=0) the reader uses the numpy version,
which reads exactly the same lines to exactly the same columns (tests/test_history_native.py).

The library is built into the cache directory ($ONCEPROOF_CACHE, default ~/.cache/onceproof) under
a name that carries the hash of the source, written to a temporary name and renamed, so concurrent
first runs and edits of canon.c are safe.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

SOURCE = Path(__file__).with_name("canon.c")
CFLAGS = ("-O2", "-shared", "-fPIC", "-fno-strict-aliasing")
LIT_PAD = 64  # bytes canon.c may read after the last line's newline (its longest literal is 20)
_lib: ctypes.CDLL | None = None
_tried = False
_why = ""
_LOCK = threading.Lock()


def cache_dir() -> Path:
    return Path(os.environ.get("ONCEPROOF_CACHE") or Path.home() / ".cache" / "onceproof") / "native"


def _compiler() -> str | None:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


def build() -> Path:
    """The built library's path (built now if needed); raises RuntimeError saying why it cannot be."""
    src = SOURCE.read_bytes()
    digest = hashlib.sha256(src + " ".join((*CFLAGS, platform.machine(), platform.system())).encode()).hexdigest()[:16]
    out = cache_dir() / f"canon-{digest}.so"
    if out.exists():
        return out
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler (cc, gcc or clang) on PATH")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".canon-", suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        r = subprocess.run([cc, *CFLAGS, "-o", tmp, str(SOURCE)], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"{cc} failed: {(r.stderr or r.stdout).strip()[:500]}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def _load() -> ctypes.CDLL | None:
    if _tried:
        return _lib
    with _LOCK:
        return _load_once()


def _load_once() -> ctypes.CDLL | None:
    global _lib, _tried, _why
    if not _tried:
        try:
            _lib = _open()
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            _why = str(e)
        _tried = True  # last: `_load` reads it without the lock
    return _lib


def _open() -> ctypes.CDLL | None:
    global _why
    if os.environ.get("ONCEPROOF_NATIVE", "1") == "0":
        _why = "turned off (ONCEPROOF_NATIVE=0)"
        return None
    lib = ctypes.CDLL(str(build()))
    p = ctypes.c_void_p
    lib.canon_parse.argtypes = [p, ctypes.c_int64, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p,
                                ctypes.c_int64, p]
    lib.canon_parse.restype = ctypes.c_int
    lib.canon_counts.argtypes = [ctypes.c_char_p, ctypes.c_int64, p, p, p, ctypes.c_int64]
    lib.canon_counts.restype = ctypes.c_int64
    return lib


def available() -> bool:
    return _load() is not None


def why() -> str:
    """Why the C fast path is not in use ("" when it is)."""
    return "" if available() else _why


def status() -> str:
    """One line for `onceproof doctor` and the benchmark: which canonical path the reader uses."""
    return "C (canon.c)" if available() else f"numpy (no C fast path: {_why})"


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


def canon_parse(a: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> dict:
    """`canon.parse` by canon.c, over the block's bytes `a` (uint8, contiguous; every
    line ends with a newline at ends[i], and LIT_PAD bytes follow the last). The caller checks
    `available()` first."""
    lib = _load()
    assert lib is not None
    n = len(starts)
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    ends = np.ascontiguousarray(ends, dtype=np.int64)
    assert a.dtype == np.uint8 and a.flags.c_contiguous
    # what canon.c relies on: each line inside the buffer, ending with its newline, in order, padded
    if len(ends) != n:
        raise ValueError("canon_parse: as many line ends as line starts are needed")
    if n and (starts[0] < 0 or ends[-1] + LIT_PAD >= len(a) or not bool((a[ends] == 10).all())
              or not bool((starts <= ends).all()) or not bool((starts[1:] > ends[:-1]).all())):
        raise ValueError(f"canon_parse: lines must be inside the buffer, in order, end with a newline "
                         f"and have {LIT_PAD} bytes of padding after the last")
    good = np.empty(n, dtype=np.bool_)
    time, proc, tcode, fcode = (np.empty(n, dtype=np.int64) for _ in range(4))
    send = [np.empty(n, dtype=np.int64) for _ in range(5)]
    span = int(ends[-1] - starts[0]) + 1 if n else 0
    cap = span // 20 + 1  # an entry takes at least 20 bytes: {"id":"","key":null}
    msg = [np.empty(cap, dtype=np.int64) for _ in range(6)]
    red = np.empty(cap, dtype=np.bool_)
    ns, nm = ctypes.c_int64(0), ctypes.c_int64(0)
    rc = lib.canon_parse(_ptr(a), n, _ptr(starts), _ptr(ends), _ptr(good), _ptr(time), _ptr(proc),
                         _ptr(tcode), _ptr(fcode), *map(_ptr, send), ctypes.byref(ns),
                         *map(_ptr, msg), _ptr(red), cap, ctypes.byref(nm))
    if rc != 0:  # pragma: no cover - the bound above holds for every canonical entry
        raise AssertionError("canon.c: more poll entries than the block can hold")
    k, m = ns.value, nm.value
    s_rows, s_part, s_off, s_at, s_len = (a[:k] for a in send)
    m_rows, m_seq, m_at, m_len, m_part, m_off = (a[:m] for a in msg)
    return {"time": time, "proc": proc, "tcode": tcode, "fcode": fcode, "good": good,
            "send": (s_rows, s_part, s_off, s_at, s_len),
            "msg": (m_rows, m_seq, m_at, m_len, m_part, m_off, red[:m])}


def counts(raw: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """An effects read's raw `counts` (valid JSON) as the ids' positions and lengths in `raw` and the
    counts, when it is a plain object of ids without escapes to integers of at most 18 digits; else
    None (see `extract.plain_counts`, which reads the same objects to the same values)."""
    lib = _load()
    assert lib is not None
    cap = len(raw) // 4 + 1  # an entry takes at least 4 bytes: "":0
    at, lens, cnt = (np.empty(cap, dtype=np.int64) for _ in range(3))
    k = lib.canon_counts(raw, len(raw), _ptr(at), _ptr(lens), _ptr(cnt), cap)
    if k < 0:
        return None
    return at[:k].copy(), lens[:k].copy(), cnt[:k].copy()
