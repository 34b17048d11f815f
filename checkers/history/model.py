"""The columnar history: what the checkers read.

`History` holds numpy columns for the checkers (one row per operation in history order; every message
id as one integer code in `id_table`, so the checkers do set algebra on integers) and offers the same
data as pandas DataFrames (`ops`, `sends`, `messages`, `deliveries`, `faults`), built on first use;
pandas is imported only then. Keys are not kept: no checker reads them, so a DataFrame view that asks
for them reads them from the file.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import msgspec
import numpy as np

from checkers.history.contract import NEMESIS, OUTCOMES, TYPES
from checkers.history.ids import IdTable
from checkers.history.keys import read_keys, read_values
from checkers.history.scan import mentions

# (msgspec structs, not dataclasses: generating dataclass methods costs import time on every run)


class SendCols(msgspec.Struct, kw_only=True, gc=False, eq=False):
    """One entry per send invoke, in history order."""

    row: np.ndarray  # row of the invoke
    id: np.ndarray  # id code (History.id_table)
    proc: np.ndarray  # process code of the invoke
    invoke_time: np.ndarray
    invoke_line: np.ndarray
    outcome: np.ndarray  # code into OUTCOMES: 0 open, 1 ok, 2 fail, 3 info
    complete_time: np.ndarray  # -1 when open
    complete_line: np.ndarray  # -1 when open
    part: np.ndarray  # partition code of the completion (History.partitions), -1 none
    offset: np.ndarray  # offset of the completion, -1 none
    producer: np.ndarray | None  # `value.producer` of the invoke (str or None); None when no send has one


class MessageCols(msgspec.Struct, kw_only=True, gc=False, eq=False):
    """One entry per message entry of poll completions (or only of ok polls: the deliveries)."""

    op: np.ndarray  # row of the poll completion
    seq: np.ndarray  # position in the poll
    id: np.ndarray  # id code
    part: np.ndarray  # partition code, -1 none
    offset: np.ndarray  # -1 none
    redelivered: np.ndarray
    key: np.ndarray  # position among the keys of poll entries in file order
    type: np.ndarray  # type code of the poll
    line: np.ndarray
    time: np.ndarray
    proc: np.ndarray

    def __len__(self) -> int:
        return len(self.op)

    def take(self, sel: np.ndarray) -> MessageCols:
        """The entries where `sel` (a boolean mask) is true."""
        if bool(sel.all()):
            return self
        return MessageCols(**{k: getattr(self, k)[sel] for k in self.__struct_fields__})


class History:
    """One history as numpy columns, one row per operation in history order.

    Operations: line, time, tcode (into TYPES), proc (into processes), fcode (into fnames), pair
    (row of the matching invoke/completion or -1), index. `send` has one entry per send operation
    (row, id: the invoke's id code into id_table, -1 on completions; part: into partitions, -1
    none; offset, -1 none); `msg` one per entry of a poll completion. Checkers use `send_cols`,
    `message_cols`, `delivery_cols`, `effect_counts` and `fault_windows`. The pandas views `ops`,
    `sends`, `messages`, `deliveries` and `faults` are built on first use.
    """

    def __init__(self, *, source: str, warnings: list[str], line: np.ndarray, time: np.ndarray,
                 tcode: np.ndarray, proc: np.ndarray, processes: list[Any], fcode: np.ndarray,
                 fnames: list[str], pair: np.ndarray, send: dict[str, np.ndarray], producers: np.ndarray | None,
                 msg: dict[str, np.ndarray], partitions: list[Any], id_table: IdTable,
                 effect_reads: list[tuple[int, np.ndarray, np.ndarray]], fault_ops: list[tuple[int, str, Any]],
                 given_index: np.ndarray | None, spans: list[tuple[int, int, bool]], stamp: tuple[int, int]) -> None:
        self.source, self.warnings = source, warnings
        self.line, self.time, self.tcode, self.proc, self.processes = line, time, tcode, proc, processes
        self.fcode, self.fnames, self.pair = fcode, fnames, pair
        self.send, self.producers, self.msg, self.partitions = send, producers, msg, partitions
        self.id_table, self.effect_reads, self.fault_ops = id_table, effect_reads, fault_ops
        self._given_index, self._spans, self._stamp = given_index, spans, stamp

    def __repr__(self) -> str:
        return f"History({self.source!r}, {len(self)} operations)"

    def __len__(self) -> int:
        return len(self.line)

    @property
    def index(self) -> np.ndarray:
        """Position in the history: the `index` field, or line - 1 where absent."""
        return self._given_index if self._given_index is not None else self.line - 1

    # --- numpy views for the checkers ---

    def f_mask(self, *names: str) -> np.ndarray:
        """Rows whose operation is one of `names`."""
        codes = [i for i, f in enumerate(self.fnames) if f in names]
        if not codes:
            return np.zeros(len(self), dtype=bool)
        if len(codes) == 1:
            return self.fcode == codes[0]
        return np.isin(self.fcode, codes)

    @cached_property
    def nemesis_code(self) -> int:
        """Code of the nemesis process, -1 when there is none."""
        return next((i for i, p in enumerate(self.processes) if isinstance(p, str) and p == NEMESIS), -1)

    @property
    def n_ids(self) -> int:
        return len(self.id_table)

    @cached_property
    def send_cols(self) -> SendCols:
        s = self.send
        inv = np.flatnonzero(self.tcode[s["row"]] == 0)
        rows = s["row"][inv]
        pair = self.pair[rows]
        has = pair >= 0
        safe = np.where(has, pair, 0)
        # the completion of a send is a send operation too: its position among them
        at = np.empty(len(self), dtype=np.int64)
        at[s["row"]] = np.arange(len(s["row"]))
        cpos = np.where(has, at[safe], 0) if len(s["row"]) else safe
        return SendCols(
            row=rows, id=s["id"][inv], proc=self.proc[rows], invoke_time=self.time[rows],
            invoke_line=self.line[rows], outcome=np.where(has, self.tcode[safe], 0).astype(np.int8),
            complete_time=np.where(has, self.time[safe], -1), complete_line=np.where(has, self.line[safe], -1),
            part=np.where(has, s["part"][cpos], -1), offset=np.where(has, s["offset"][cpos], -1),
            producer=None if self.producers is None else self.producers[inv],
        )

    @cached_property
    def _entry_cols(self) -> MessageCols:
        """Every message entry of a poll or final-read completion."""
        m = self.msg
        op = m["op"]
        return MessageCols(op=op, seq=m["seq"], id=m["id"], part=m["part"], offset=m["offset"],
                           redelivered=m["redelivered"], key=m["key"], type=self.tcode[op], line=self.line[op],
                           time=self.time[op], proc=self.proc[op])

    def _entries_of(self, f: str) -> MessageCols:
        e = self._entry_cols
        if f not in self.fnames:
            return e.take(np.zeros(len(e.op), dtype=bool))
        if not len(e.op) or not np.any(self.fcode[e.op] != self.fnames.index(f)):
            return e
        return e.take(self.fcode[e.op] == self.fnames.index(f))

    @cached_property
    def message_cols(self) -> MessageCols:
        """Entries of poll completions (ok, fail or info)."""
        return self._entries_of("poll")

    @cached_property
    def final_read_cols(self) -> MessageCols:
        """Entries of ok `final-read` operations: the log as a reader of every partition, from the beginning
        to the end offsets, found it after the run (an onceproof extension; never deliveries)."""
        m = self._entries_of("final-read")
        return m.take(m.type == 1)

    @cached_property
    def delivery_cols(self) -> MessageCols:
        m = self.message_cols
        return m.take(m.type == 1)

    @cached_property
    def effect_counts(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(id codes, times applied) of the last ok `effects` read, or None when the history has none."""
        if not self.effect_reads:
            return None
        _, ids, counts = max(self.effect_reads, key=lambda e: e[0])
        return ids, counts

    @cached_property
    def fault_windows(self) -> list[tuple[str, Any, int, int, int, bool]]:
        """(fault, nodes, start, stop, line, unhealed), stop = end of history when never stopped."""
        end = int(self.time.max()) if len(self) else 0
        open_: dict[tuple, list[tuple[int, int, Any]]] = {}
        windows = []
        start_code = self.fnames.index("start-fault") if "start-fault" in self.fnames else -1
        for r, name, nodes in self.fault_ops:
            t, line = int(self.time[r]), int(self.line[r])
            if self.fcode[r] == start_code:
                open_.setdefault((name, _freeze(nodes)), []).append((t, line, nodes))
                continue
            starts = open_.get((name, _freeze(nodes)))
            if not starts:  # a stop naming other nodes heals the oldest open window of that fault
                starts = next((s for k, s in open_.items() if k[0] == name and s), None)
            if starts:
                t0, l0, n0 = starts.pop(0)
                windows.append((name, n0, t0, t, l0, False))
        for key, starts in open_.items():
            for t0, l0, n0 in starts:
                windows.append((key[0], n0, t0, end, l0, True))
        windows.sort(key=lambda w: w[2])
        return windows

    @cached_property
    def ids(self) -> np.ndarray:
        """Every distinct message id (object array), indexed by id code."""
        return object_array(self.id_table.strings(np.arange(self.n_ids)))

    # --- Python and pandas views ---

    @cached_property
    def effects(self) -> dict[str, int] | None:
        """Counts of the last ok `effects` read, or None when the history has none."""
        e = self.effect_counts
        if e is None:
            return None
        return dict(zip(self.id_table.strings(e[0]), e[1].tolist(), strict=True))

    @cached_property
    def _keys(self) -> tuple[np.ndarray, np.ndarray]:
        """Keys of send operations and of poll entries, in file order (read from the file: no checker
        needs them, so the reader does not keep them)."""
        send, msg = read_keys(self.source, self._spans, self._stamp)
        return object_array(send), object_array(msg)

    def mentions(self, needle: bytes) -> bool:
        """Whether the history's file holds `needle` anywhere (say, a field's name): cheap, decodes nothing."""
        return mentions(self.source, needle)

    @cached_property
    def values(self) -> tuple[np.ndarray, np.ndarray]:
        """The whole values of send operations (indexed like `send["row"]`: invokes and completions, in file
        order) and of message entries (indexed by `MessageCols.key`), read from the file: for checkers of
        small histories that need more of a value than the columns hold (idempotency keys, status codes)."""
        send, msg = read_values(self.source, self._spans, self._stamp)
        return object_array(send), object_array(msg)

    @staticmethod
    def _obj(table: list[Any] | np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Values of codes (-1 -> None) as an object array."""
        return object_array([*table, None])[codes]

    @cached_property
    def ops(self):
        """One row per operation: line, index, time, process, proc, type, f, pair, id, key, partition,
        offset, producer (and id_code)."""
        pd = _pandas()
        n = len(self)
        s = self.send
        rows = s["row"]
        comp = rows[(self.tcode[rows] != 0) & (self.pair[rows] >= 0)]  # completions inherit from the invoke
        op_id = np.full(n, -1, dtype=np.int64)
        op_id[rows] = s["id"]
        op_id[comp] = op_id[self.pair[comp]]
        part = np.full(n, -1, dtype=np.int64)
        part[rows] = s["part"]
        offset = np.full(n, -1, dtype=np.int64)
        offset[rows] = s["offset"]
        keys = np.full(n, None, dtype=object)
        keys[rows] = self._keys[0][s["key"]]
        nokey = comp[pd.isna(keys[comp])]
        keys[nokey] = keys[self.pair[nokey]]
        producer = np.full(n, None, dtype=object)
        if self.producers is not None:
            producer[rows] = self.producers
        cats = sorted(self.fnames)
        fmap = np.array([cats.index(f) for f in self.fnames], dtype=np.int64)
        return pd.DataFrame({
            "line": self.line,
            "index": self.index,
            "time": self.time,
            "process": pd.Series(self._obj(self.processes, self.proc), dtype=object),
            "proc": self.proc,
            "type": pd.Categorical.from_codes(self.tcode.astype(np.int64), categories=list(TYPES)),
            "f": pd.Categorical.from_codes(fmap[self.fcode] if n else self.fcode, categories=cats),
            "pair": self.pair,
            "id": pd.Series(self._obj(self.ids, op_id), dtype=object),
            "key": pd.Series(keys, dtype=object),
            "partition": pd.Series(self._obj(self.partitions, part), dtype=object),
            "offset": offset,
            "producer": pd.Series(producer, dtype=object),
            "id_code": op_id,
        })

    @cached_property
    def sends(self):
        """One row per send invoke: id, key, process, times, lines and outcome (and id_code)."""
        pd = _pandas()
        s = self.send_cols
        return pd.DataFrame({
            "id": pd.Series(self.ids[s.id], dtype=object),
            "key": pd.Series(self.ops["key"].to_numpy()[s.row], dtype=object),
            "process": pd.Series(self._obj(self.processes, s.proc), dtype=object),
            "invoke_time": s.invoke_time,
            "invoke_line": s.invoke_line,
            "row": s.row,
            "outcome": pd.Series(np.array(OUTCOMES, dtype=object)[s.outcome], dtype=object),
            "complete_time": s.complete_time,
            "complete_line": s.complete_line,
            "partition": pd.Series(self._obj(self.partitions, s.part), dtype=object),
            "offset": s.offset,
            "id_code": s.id,
        })

    def _message_frame(self, m: MessageCols):
        pd = _pandas()
        return pd.DataFrame({
            "op": m.op,
            "seq": m.seq,
            "line": m.line,
            "time": m.time,
            "process": pd.Series(self._obj(self.processes, m.proc), dtype=object),
            "proc": m.proc,
            "type": pd.Series(np.array(TYPES, dtype=object)[m.type.astype(np.int64)], dtype=object),
            "id": pd.Series(self.ids[m.id], dtype=object),
            "key": pd.Series(self._keys[1][m.key], dtype=object),
            "partition": pd.Series(self._obj(self.partitions, m.part), dtype=object),
            "offset": m.offset,
            "redelivered": m.redelivered,
            "id_code": m.id,
        })

    @cached_property
    def messages(self):
        """One row per message entry of a poll completion (ok, fail or info)."""
        return self._message_frame(self.message_cols)

    @cached_property
    def deliveries(self):
        """Entries of ok polls: each one is a delivery."""
        return self._message_frame(self.delivery_cols)

    @cached_property
    def faults(self):
        """Fault windows: fault, nodes, start, stop (end of history when never stopped)."""
        pd = _pandas()
        return pd.DataFrame(self.fault_windows, columns=["fault", "nodes", "start", "stop", "line", "unhealed"])


def _pandas():
    import pandas as pd

    return pd


def object_array(values: list[Any]) -> np.ndarray:
    """An object array of `values` (lists stay elements; they are not turned into dimensions)."""
    return np.fromiter(values, dtype=object, count=len(values))


def _freeze(x: Any) -> Any:
    if isinstance(x, list):
        return tuple(_freeze(i) for i in x)
    if isinstance(x, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in x.items()))
    return x


