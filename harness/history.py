"""Append-only history writing: JSON Lines, flushed per batch, so a crash loses at most one partial line.

Each worker process writes its own shard with `HistoryWriter`; `merge_shards` joins the shards into one
`history.jsonl` ordered by time. Times come from `clock_ns`, CLOCK_MONOTONIC relative to the run's start,
which every process on the machine shares.
"""

from __future__ import annotations

import heapq
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec

_ENC = msgspec.json.Encoder()


def clock_ns(start_ns: int) -> int:
    """Nanoseconds since the run started, on the machine-wide monotonic clock."""
    return time.monotonic_ns() - start_ns


class HistoryWriter:
    """Appends operations to a JSON-lines file; `flush` (or every `batch` ops) pushes them to the OS."""

    def __init__(self, path: str | os.PathLike, start_ns: int = 0, batch: int = 1, fsync: bool = False):
        self.path = Path(path)
        self.start_ns = start_ns
        self.batch = max(1, batch)
        self.fsync = fsync
        self._buf: list[bytes] = []
        self._fh = open(self.path, "ab")  # noqa: SIM115 - owned by the writer, closed in close()
        self.counts: Counter[tuple[str, str]] = Counter()  # (type, f) -> operations written
        self._lock = threading.Lock()

    def write(self, process: Any, type_: str, f: str, value: Any = None, time_ns: int | None = None,
              **extra: Any) -> dict[str, Any]:
        """Record one operation now (or at `time_ns`) and return it."""
        with self._lock:  # several logical processes of one worker (threads) share the shard; the time is
            # taken inside the lock so that the shard stays in time order
            op = {"time": clock_ns(self.start_ns) if time_ns is None else time_ns, "process": process,
                  "type": type_, "f": f, "value": value, **extra}
            self.counts[type_, f] += 1
            self._buf.append(_ENC.encode(op) + b"\n")
            if len(self._buf) >= self.batch:
                self.flush()
        return op

    def flush(self) -> None:
        if self._buf:
            self._fh.write(b"".join(self._buf))
            self._buf.clear()
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self.flush()
            self._fh.close()

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NullWriter:
    """Records nothing but counts: for measuring what the recording itself costs."""

    def __init__(self, start_ns: int = 0):
        self.start_ns = start_ns
        self.counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def write(self, process: Any, type_: str, f: str, value: Any = None, time_ns: int | None = None,
              **extra: Any) -> dict[str, Any]:
        with self._lock:
            self.counts[type_, f] += 1
        return {"time": time_ns, "process": process, "type": type_, "f": f, "value": value}

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> NullWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _shard_ops(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """(time, sequence, raw line) of each complete line in a shard; a torn last line is dropped."""
    with open(path, "rb") as fh:
        for seq, raw in enumerate(fh):
            if not raw.endswith(b"\n"):
                return  # the writer died mid-line
            try:
                t = msgspec.json.decode(raw)["time"]
            except (msgspec.DecodeError, KeyError, TypeError):
                continue
            yield t, seq, raw


def merge_shards(shards: Iterable[str | os.PathLike], out: str | os.PathLike) -> int:
    """Merge shard files (each in time order) into `out` by time, numbering `index`; returns the count."""
    streams = [_shard_ops(Path(s)) for s in shards if Path(s).exists()]
    tmp = Path(str(out) + ".tmp")
    n = 0
    with open(tmp, "wb") as fh:
        for _t, _seq, raw in heapq.merge(*streams, key=lambda x: x[0]):
            op = msgspec.json.decode(raw)
            op["index"] = n
            fh.write(_ENC.encode(op) + b"\n")
            n += 1
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, out)
    return n
