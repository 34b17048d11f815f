"""Whether a file holds some bytes anywhere: a scan at memory speed, without decoding a line.

A checker asks this of every history (is it one of API requests? `checkers.idempotency.is_api`), so on a
million-message history it reads 400 MB before any checker starts. Two things keep that cheap:

- libc's `memmem` (glibc's skips ahead on pairs of bytes), about 2.5x faster than Python's own search,
  whose skip table helps little for a needle such as `"idempotency_key"` made of JSON's common bytes;
- the file is mapped a window at a time: pages of a mapping count in the process's RSS, and one mapping of
  the whole file would raise the check's peak by the file's size (400 MB) for a moment.

Without `memmem` (not glibc, musl or a BSD), Python's search does the same work.
"""

from __future__ import annotations

import ctypes
import mmap
import os
from collections.abc import Callable

import numpy as np

WINDOW_BYTES = 16 << 20  # mapped at a time (read at call time: a test makes it small)

_Find = Callable[[mmap.mmap, bytes], bool]


def _python_find(m: mmap.mmap, needle: bytes) -> bool:
    return m.find(needle) >= 0


def _libc_find() -> _Find | None:
    """A search of a mapping by libc's `memmem`, or None where libc has none."""
    try:
        memmem = ctypes.CDLL(None).memmem
    except (OSError, AttributeError, TypeError):  # pragma: no cover - no memmem in this libc
        return None
    memmem.restype = ctypes.c_void_p
    memmem.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]

    def find(m: mmap.mmap, needle: bytes) -> bool:
        view = np.frombuffer(m, dtype=np.uint8)  # (a read-only mapping's address, for ctypes)
        try:
            return memmem(view.ctypes.data, len(view), needle, len(needle)) is not None
        finally:
            del view  # the mapping closes only once nothing points into it

    return find


_FIND = _libc_find() or _python_find


def mentions(path: str | os.PathLike, needle: bytes) -> bool:
    """Whether the file holds `needle` anywhere."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        grain = mmap.ALLOCATIONGRANULARITY  # where a mapping may start
        overlap = max(len(needle) - 1, 0)  # a needle cut by a window's end lies whole in the next one
        window = max(WINDOW_BYTES // grain, 2 + overlap // grain) * grain  # (so that each window moves on)
        start = 0
        while start < size:
            length = min(window, size - start)
            with mmap.mmap(fh.fileno(), length, offset=start, access=mmap.ACCESS_READ) as m:
                if _FIND(m, needle):
                    return True
            if start + length >= size:
                break
            start = (start + length - overlap) // grain * grain
    return False
