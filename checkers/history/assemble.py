"""The assembler: the chunks' columns merged, in file order, into the history's global codes.

Chunks arrive as they are decoded; their ids take global codes in a fixed order (`add_ids`), then
they are added in file order (`add`): processes, operation names and partitions mapped into one table
each, columns appended while the workers still decode, pairs joined across chunk boundaries. The
first chunk that broke the contract raises the error, with its line in the file.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from checkers.history.chunk import Chunk, Failure
from checkers.history.codes import Table, stable_argsort
from checkers.history.contract import HistoryError
from checkers.history.ids import IdTable
from checkers.history.model import History, object_array
from checkers.history.pairing import Pairs, pair_all, pair_irregular, raise_bad_f


class _Buffer:
    """A growing numpy array: chunks are appended (copied) while the workers still decode."""

    def __init__(self, dtype: Any) -> None:
        self.a = np.zeros(1 << 16, dtype=dtype)
        self.n = 0

    def append(self, x: np.ndarray, expect: float = 2.0) -> None:
        """Append x; when growing, make room for `expect` times what is there (an estimate of the end)."""
        k = len(x)
        if self.n + k > len(self.a):
            grown = np.empty(max(self.n + k, int(expect * (self.n + k))), dtype=self.a.dtype)
            grown[: self.n] = self.a[: self.n]
            self.a = grown
        self.a[self.n:self.n + k] = x
        self.n += k

    def get(self) -> np.ndarray:
        return self.a[: self.n]


class Assembler:
    """Merges the chunks' columns, in file order, into the history's global codes."""

    def __init__(self, name: str, spans: list[tuple[int, int, bool]], stamp: tuple[int, int]) -> None:
        self.name = name
        self.spans, self.stamp = spans, stamp  # where to read keys from, should anyone ask
        self.size = max(stamp[0], 1)
        self.done = 0  # bytes of the chunks added so far
        self.n = 0
        self.line0 = 1
        self.warnings: list[str] = []
        self.ids = IdTable()
        self.procs, self.fs, self.parts = Table(), Table(), Table()
        self.cols = {k: _Buffer(np.int8 if k == "type" else bool if k == "m_red" else np.int64) for k in (
            "time", "type", "proc", "f", "pair", "s_row", "s_id", "s_part", "s_offset",
            "m_op", "m_seq", "m_id", "m_part", "m_offset", "m_red")}
        self.lines: list[tuple[int, int, np.ndarray | None]] = []  # (first line, n, lines or None)
        self.index: list[tuple[int, int, tuple[np.ndarray, np.ndarray]]] = []  # (first row, n, (has, index))
        self.producers: list[tuple[int, list[Any]]] = []  # (first send, producers)
        self.n_sends = 0
        self.effects: list[tuple[int, np.ndarray, np.ndarray]] = []
        self.faults: list[tuple[int, str, Any]] = []
        # pairing across chunks: per process, its open invoke at the end of the chunks so far
        self.open_row = np.zeros(0, dtype=np.int64)
        self.irregular = np.zeros(0, dtype=bool)
        self.cross: list[tuple[np.ndarray, np.ndarray]] = []  # (invoke rows, completion rows)
        self.bad_f = -1  # first row of a pair of different operations, -1 none

    def add_ids(self, p: Chunk | Failure) -> np.ndarray | None:
        """The global codes of a chunk's distinct ids, for `add` (which comes later, in file order)."""
        return None if isinstance(p, Failure) else self.ids.add(p.ids)

    def add(self, p: Chunk | Failure, ids: np.ndarray | None) -> None:
        """Add a chunk, in file order, with the global codes of its ids (`add_ids`)."""
        if isinstance(p, Failure):
            raise HistoryError(f"{self.name}:{self.line0 + p.line}: {p.message}")
        assert ids is not None
        n, r0 = p.n, self.n
        start, end, _ = self.spans[len(self.lines)]
        self.done += end - start
        expect = 1.1 * self.size / self.done  # buffers grow to the expected end at once

        def put(name: str, x: np.ndarray) -> None:
            self.cols[name].append(x, expect)

        for rel, msg in p.warnings:
            self.warnings.append(f"{self.name}:{self.line0 + rel}: {msg}")
        self.lines.append((self.line0, n, p.lines))
        if p.index is not None:
            self.index.append((r0, n, p.index))
        procs = self.procs.map(p.procs)
        put("time", p.time)
        put("type", p.type)
        put("proc", procs[p.proc])
        put("f", self.fs.map(p.fnames)[p.f])
        parts = np.append(self.parts.map(p.parts), -1)  # code -1 (no partition) stays -1
        s, m = p.send, p.msg
        put("s_row", np.add(s.rows, r0, dtype=np.int64))
        sid = np.full(len(s.rows), -1, dtype=np.int64)
        sid[p.type[s.rows] == 0] = ids[s.inv_id]
        put("s_id", sid)
        put("s_part", parts[s.part])
        put("s_offset", s.offset)
        if s.producer is not None:
            self.producers.append((self.n_sends, s.producer))
        self.n_sends += len(s.rows)
        put("m_op", np.add(m.rows, r0, dtype=np.int64))
        put("m_seq", m.seq)
        put("m_id", ids[m.id])
        put("m_part", parts[m.part])
        put("m_offset", m.offset)
        put("m_red", m.redelivered)
        for r, codes, counts in p.effects:
            self.effects.append((r + r0, ids[codes], counts))
        self.faults += [(r + r0, fault, nodes) for r, fault, nodes in p.faults]
        self._pairs(p.pairs, procs, r0, put)
        self.n += n
        self.line0 += p.newlines

    def _pairs(self, pr: Pairs, procs: np.ndarray, r0: int, put: Any) -> None:
        """Take the chunk's pairs; pair its first completions with the open invokes of earlier chunks."""
        pair = pr.pair.astype(np.int64)
        pair[pair >= 0] += r0
        put("pair", pair)
        if pr.bad_f >= 0 and self.bad_f < 0:
            self.bad_f = pr.bad_f + r0
        k = len(self.procs.values)
        if k > len(self.open_row):
            self.open_row = np.concatenate([self.open_row, np.full(k - len(self.open_row), -1, dtype=np.int64)])
            self.irregular = np.concatenate([self.irregular, np.zeros(k - len(self.irregular), dtype=bool)])
        g = procs[pr.proc]
        opened = self.open_row[g]
        head_comp = ~pr.head_inv
        join = head_comp & (opened >= 0)
        if join.any():
            self.cross.append((opened[join], pr.head[join].astype(np.int64) + r0))
        # a first completion with nothing open, or a first invoke while one is open: irregular
        self.irregular[g[(head_comp & (opened < 0)) | (~head_comp & (opened >= 0)) | pr.irregular]] = True
        self.open_row[g] = np.where(pr.tail_inv, pr.tail.astype(np.int64) + r0, -1)

    def finish(self) -> History:
        c = {k: b.get() for k, b in self.cols.items()}
        n = self.n
        if all(lines is None for _, _, lines in self.lines):  # no blank line anywhere
            line = np.arange(1, n + 1, dtype=np.int64)
        else:
            line = np.concatenate([first + (np.arange(k, dtype=np.int64) if lines is None else lines)
                                   for first, k, lines in self.lines])
        time, tcode, proc, fcode = c["time"], c["type"], c["proc"], c["f"]
        send = {"row": c["s_row"], "id": c["s_id"], "part": c["s_part"], "offset": c["s_offset"]}
        send["key"] = np.arange(len(send["row"]), dtype=np.int64)  # position among send keys, file order
        producers = None
        if self.producers:
            producers = np.full(self.n_sends, None, dtype=object)
            for first, prods in self.producers:
                producers[first:first + len(prods)] = object_array(prods)
        msg = {"op": c["m_op"], "seq": c["m_seq"], "id": c["m_id"], "part": c["m_part"],
               "offset": c["m_offset"], "redelivered": c["m_red"]}
        msg["key"] = np.arange(len(msg["op"]), dtype=np.int64)  # position among entry keys, file order
        effects, faults = self.effects, self.faults

        given = None
        reordered = False
        if self.index:
            has = np.zeros(n, dtype=bool)
            given = line - 1
            for r0, k, (has_index, idx) in self.index:
                has[r0:r0 + k] = has_index
                given[r0:r0 + k] = np.where(has_index, idx, given[r0:r0 + k])
            if not bool(np.all(given[1:] >= given[:-1])):  # put the operations in index order
                reordered = True
                order = stable_argsort(given)
                inv = np.empty(n, dtype=np.int64)
                inv[order] = np.arange(n)
                line, time, tcode, proc, fcode, given = (a[order] for a in (line, time, tcode, proc, fcode, given))
                # process codes follow first appearance in history order, as they do without an index
                first_row = np.full(len(self.procs.values), n, dtype=np.int64)
                np.minimum.at(first_row, proc, np.arange(n))
                rank = np.argsort(np.argsort(first_row, kind="stable"), kind="stable")
                proc = rank[proc]
                self.procs.values = [self.procs.values[i] for i in np.argsort(rank).tolist()]
                sorder = stable_argsort(inv[send["row"]])
                send = {k: v[sorder] for k, v in send.items()}
                send["row"] = inv[send["row"]]
                if producers is not None:
                    producers = producers[sorder]
                morder = stable_argsort(inv[msg["op"]])  # entries of one poll keep their order
                msg = {k: v[morder] for k, v in msg.items()}
                msg["op"] = inv[msg["op"]]
                effects = [(int(inv[r]), i, k) for r, i, k in effects]
                faults = sorted(((int(inv[r]), f, nodes) for r, f, nodes in faults), key=lambda x: x[0])

        h = History(
            source=self.name, warnings=self.warnings, line=line, time=time, tcode=tcode, proc=proc,
            processes=self.procs.values, fcode=fcode, fnames=self.fs.values, pair=c["pair"],
            send=send, producers=producers, msg=msg, partitions=self.parts.values, id_table=self.ids,
            effect_reads=effects, fault_ops=faults, given_index=given, spans=self.spans, stamp=self.stamp,
        )
        h.pair = pair_all(h) if reordered else self._finish_pairs(h)
        return h

    def _finish_pairs(self, h: History) -> np.ndarray:
        """The chunks' pairs, the pairs across chunks, and stack matching for irregular processes."""
        pair = h.pair
        first_bad = self.bad_f if self.bad_f >= 0 else len(h)
        for a, b in self.cross:
            pair[a] = b
            pair[b] = a
            wrong = h.fcode[a] != h.fcode[b]
            if wrong.any():
                first_bad = min(first_bad, int(a[wrong].min()))
        if self.irregular.any():
            rows = np.flatnonzero(self.irregular[h.proc])
            pair[rows] = -1
            first_bad = pair_irregular(h, rows, pair, first_bad)
        raise_bad_f(h, pair, first_bad)
        return pair


