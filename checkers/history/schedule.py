"""Scheduling: the file cut into chunks on line boundaries, and the chunks decoded here, by threads or by
processes.

Big files are decoded by several threads at once when they are mostly canonical lines (canon.c runs
without the GIL, and threads share memory: nothing is pickled and copied back), else by several
processes (fork), since msgspec holds the GIL. Should a worker process die, its chunks are decoded here.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
from collections.abc import Generator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple

from checkers.history import canon, native, tuning
from checkers.history.chunk import Chunk, Failure
from checkers.history.decode import decode_chunk


class Task(NamedTuple):
    """One chunk to decode: bytes [start, end) of the file at `path`, the k-th chunk."""

    k: int
    path: str
    start: int
    end: int
    is_last: bool


def work(task: Task) -> tuple[int, Chunk | Failure]:
    """Decode one chunk (in a worker thread or process, or here)."""
    return task.k, decode_chunk(task.path, task.start, task.end, task.is_last)


def chunk_bounds(path: Path, size: int) -> list[int]:
    """Chunk boundaries: about tuning.CHUNK_BYTES apart, each just after a newline."""
    bounds = [0]
    with open(path, "rb") as fh:
        while bounds[-1] < size:
            target = bounds[-1] + max(1, tuning.CHUNK_BYTES)
            if target >= size:
                bounds.append(size)
                break
            fh.seek(target - 1)
            pos = target - 1
            while True:
                block = fh.read(1 << 16)
                if not block:
                    pos = size
                    break
                i = block.find(b"\n")
                if i >= 0:
                    pos += i + 1
                    break
                pos += len(block)
            bounds.append(pos)
    return bounds


def n_workers(size: int, n_tasks: int, threads: bool) -> int:
    if size < tuning.PARALLEL_MIN_BYTES or n_tasks < 2:
        return 1
    if not threads and ("fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1):
        return 1  # forking a process that runs other threads is not safe
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, n_tasks, tuning.MAX_WORKERS))


def chunk_tasks(path: Path, size: int) -> list[Task]:
    return [Task(k, str(path), a, b, b >= size) for k, (a, b) in enumerate(pairwise(chunk_bounds(path, size)))]


def mostly_canonical(path: Path, size: int) -> bool:
    """Whether the file is lines the C fast path takes: at least 9 in 10 of those in each of three
    samples (tuning.PROBE_BYTES at its start, middle and end).

    Then chunks are decoded by threads: canon.c and most numpy work run without the GIL, and
    threads share memory, so nothing is pickled, piped and copied back. Other lines go to msgspec,
    which holds the GIL: those files are decoded by processes.
    """
    if not native.available() or size < tuning.PARALLEL_MIN_BYTES:
        return False
    with open(path, "rb") as fh:
        for at in (0, size // 2, max(0, size - tuning.PROBE_BYTES)):
            fh.seek(at)
            sample = fh.read(tuning.PROBE_BYTES)
            first = 0 if at == 0 else sample.find(b"\n") + 1  # whole lines only
            cut = sample.rfind(b"\n")
            if (first <= 0 and at != 0) or cut < first:
                continue  # no whole line here (one long line: the effects read, say)
            if canon.canonical_share(sample[first:cut + 1]) < 0.9:
                return False
    return True


def decoded_chunks(tasks: list[Task], size: int,
                   threads: bool = False) -> Generator[tuple[int, Chunk | Failure], None, None]:
    """Every chunk's columns as (chunk number, columns), the last chunk first (it often holds the
    biggest line, the final effects read), then as they come; big files are decoded by several
    threads (`threads`) or processes. Should a worker process die (killed for memory, say), the
    chunks it did not deliver are decoded in this process instead.
    """
    order = tasks[-1:] + tasks[:-1]
    workers = n_workers(size, len(tasks), threads)
    if workers <= 1:
        for t in order:
            yield work(t)
        return
    done: set[int] = set()
    if threads:
        pool: Executor = ThreadPoolExecutor(workers, thread_name_prefix="onceproof-read")
    else:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=gc.disable)
    try:
        futures = [pool.submit(work, t) for t in order]
        try:
            for fut in as_completed(futures):
                k, part = fut.result()
                done.add(k)
                yield k, part
        except BrokenProcessPool:
            for t in order:
                if t.k not in done:
                    yield work(t)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


