"""The reader's entry point: `read_history(path)` -> `History`."""

from __future__ import annotations

import ctypes
import gc
import os
from pathlib import Path

import numpy as np

from checkers.history import schedule, tuning
from checkers.history.assemble import Assembler
from checkers.history.chunk import Chunk, Failure
from checkers.history.contract import HistoryError
from checkers.history.model import History


def resolve_history_path(path: str | os.PathLike) -> Path:
    """A run directory holding history.jsonl, or a history file."""
    p = Path(path)
    if p.is_dir():
        p = p / "history.jsonl"
    if not p.exists():
        raise HistoryError(f"{p}: no such history file")
    if not p.is_file():
        raise HistoryError(f"{p}: not a regular file")
    return p


_MALLOC_TUNED = False


def _keep_freed_memory() -> None:
    """Ask glibc to keep freed memory for reuse instead of handing it back to the system.

    Checking a big history makes and drops many large arrays; by default glibc returns every big
    block to the kernel at once, and the next one costs a page fault per 4 KiB page (a third of
    the CPU time of a million-message check went to the kernel). Done once per process, for big
    histories only; elsewhere than glibc, nothing happens.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return
    mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of free memory at the top of the heap
    mallopt(-2, 64 << 20)  # M_TOP_PAD: grow the heap 64 MiB at a time
    mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: blocks up to 32 MiB (glibc's maximum) come from the heap


def read_history(path: str | os.PathLike) -> History:
    """Read and validate a history file (or run directory) into a History."""
    p = resolve_history_path(path)
    was_enabled = gc.isenabled()
    gc.disable()  # millions of small objects: the cyclic GC would only rescan them
    try:
        st = p.stat()
        if st.st_size >= tuning.PARALLEL_MIN_BYTES:
            _keep_freed_memory()
        threads = schedule.mostly_canonical(p, st.st_size)  # (builds or loads canon.c before any fork)
        tasks = schedule.chunk_tasks(p, st.st_size)
        asm = Assembler(str(p), [(t.start, t.end, t.is_last) for t in tasks], (st.st_size, st.st_mtime_ns))
        parts = schedule.decoded_chunks(tasks, st.st_size, threads)
        # ids take their codes in a fixed order whatever the timing: the last chunk's first (it is
        # decoded first, so its many effects ids are merged early, not at the end), then file order
        id_order = [len(tasks) - 1, *range(len(tasks) - 1)]
        pending: dict[int, Chunk | Failure] = {}
        codes: dict[int, np.ndarray | None] = {}  # global codes of the ids of chunks not added yet
        next_ids = next_add = 0
        try:
            for k, part in parts:
                pending[k] = part
                while next_ids < len(id_order) and id_order[next_ids] in pending:
                    codes[id_order[next_ids]] = asm.add_ids(pending[id_order[next_ids]])
                    next_ids += 1
                while next_add in codes:
                    asm.add(pending.pop(next_add), codes.pop(next_add))
                    next_add += 1
        finally:
            parts.close()
        return asm.finish()
    finally:
        if was_enabled:
            gc.enable()
