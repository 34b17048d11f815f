"""The typed chunk: what a piece of lines is decoded into, and how a chunk's pieces become one chunk.

A chunk (about tuning.CHUNK_BYTES of whole lines) is decoded in pieces: runs of canonical lines
(canon.py) and pieces of other lines (extract.py) both give a `Piece`. `join_pieces` makes the chunk's
`Chunk` from them: rows, lines and codes relative to the chunk, ids deduplicated, invokes paired
inside the chunk. The chunk then travels (pickled, from a worker process) to the parent, whose
assembler (assemble.py) maps it into the history's global codes. A piece or chunk that breaks the
contract is a `Failure` instead.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain
from typing import Any, cast

import msgspec
import numpy as np

from checkers.history.codes import Table, int_codes
from checkers.history.ids import U64, DistinctIds, dedupe, pad, unpack
from checkers.history.pairing import Pairs, local_pairs


class Failure(msgspec.Struct, kw_only=True, gc=False):
    """The first line of a piece or chunk that breaks the contract."""

    line: int  # relative to the piece or chunk (0: its first line)
    message: str


class Sends(msgspec.Struct, kw_only=True, gc=False):
    """The send operations (invokes and completions), one entry each, in row order."""

    rows: np.ndarray  # row of the operation
    offset: np.ndarray  # `value.offset` (a completion's), -1 none
    part: np.ndarray  # `value.partition` as a code into the piece's or chunk's `parts`
    producer: list[Any] | None = None  # `value.producer` as a string or None; None when no send has one
    inv_id: np.ndarray | None = None  # (chunks) each send invoke's id, as a code into the chunk's `ids`


class Entries(msgspec.Struct, kw_only=True, gc=False):
    """The message entries of poll and final-read completions, in row order."""

    rows: np.ndarray  # row of the completion
    seq: np.ndarray  # position in its completion
    offset: np.ndarray  # -1 none
    redelivered: np.ndarray  # bool
    part: np.ndarray  # code into `parts`
    id: np.ndarray | None = None  # (chunks) code into the chunk's `ids`


class PieceIds(msgspec.Struct, kw_only=True, gc=False):
    """A piece's ids in occurrence order: packed into rows of words (ids.py), or all three as lists of
    strings when some id does not pack."""

    invokes: np.ndarray | list[str]  # of send invokes
    entries: np.ndarray | list[str]  # of message entries
    effects: np.ndarray | list[str]  # of effects reads' counts, read after read

    @property
    def exact(self) -> bool:
        return any(isinstance(g, list) for g in (self.invokes, self.entries, self.effects))


class Columns(msgspec.Struct, kw_only=True, gc=False):
    """What pieces and chunks share: one entry per operation, rows relative to the piece or chunk."""

    n: int  # operations
    time: np.ndarray
    type: np.ndarray  # int8 code into contract.TYPES
    proc: np.ndarray  # code into `procs`; in a piece with only integer processes, the integers themselves
    procs: list[Any] | None  # None: `proc` holds the processes themselves (pieces only)
    f: np.ndarray  # code into `fnames`
    fnames: list[str]
    index: tuple[np.ndarray, np.ndarray] | None  # (has an index, the index) when some operation gives one
    send: Sends
    msg: Entries
    parts: list[Any]  # partitions by code (a piece's may hold None; a chunk codes "no partition" as -1)
    faults: list[tuple[int, str, Any]]  # (row, fault, nodes) of start-fault/stop-fault completions
    newlines: int = 0  # newlines in the bytes it covers (the next piece's first line follows)
    lines: np.ndarray | None = None  # each operation's line (relative); None: one operation per line
    warnings: list[tuple[int, str]] = []  # (relative line, message)


class Piece(Columns, kw_only=True, gc=False):
    """A run of lines decoded at once by one path."""

    effects: list[tuple[int, np.ndarray]]  # (row, counts) of ok effects reads; their ids in `ids.effects`
    ids: PieceIds


class Chunk(Columns, kw_only=True, gc=False):
    """A chunk's columns, ready for the assembler."""

    procs: list[Any]  # a chunk always codes its processes
    effects: list[tuple[int, np.ndarray, np.ndarray]]  # (row, id codes into `ids`, counts)
    ids: DistinctIds
    pairs: Pairs


def compact(c: Chunk) -> None:
    """The smallest integer types for the trip to the parent (which widens them again)."""
    def small(a: np.ndarray) -> np.ndarray:
        if a.dtype != np.int64 or len(a) == 0:
            return a
        lo, hi = int(a.min()), int(a.max())
        for t in (np.int8, np.int16, np.int32):
            info = np.iinfo(t)
            if info.min <= lo and hi <= info.max:
                return a.astype(t)
        return a

    c.proc, c.f = small(c.proc), small(c.f)
    s, m, pr = c.send, c.msg, c.pairs
    s.rows, s.part, s.offset = small(s.rows), small(s.part), small(s.offset)
    if s.inv_id is not None:
        s.inv_id = small(s.inv_id)
    m.rows, m.part, m.offset, m.seq = small(m.rows), small(m.part), small(m.offset), small(m.seq)
    if m.id is not None:
        m.id = small(m.id)
    pr.pair, pr.proc, pr.head, pr.tail = small(pr.pair), small(pr.proc), small(pr.head), small(pr.tail)


def _cat(arrays: list[np.ndarray], dtype: Any = np.int64) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)


def _recode(parts: list[Piece], values: Callable[[Piece], list[Any]], *columns: Callable[[Piece], np.ndarray],
            none: bool = False) -> list[Any]:
    """Codes of the pieces' columns in one table of values; the last item is the table."""
    table = Table()
    maps = [table.map(values(p), none) for p in parts]
    return [_cat([m[col(p)] for m, p in zip(maps, parts, strict=True)]) for col in columns] + [table.values]


def join_pieces(pieces: list[tuple[int, Piece]], newlines: int) -> Chunk:
    """One chunk from its pieces (each with its first line): rows, lines and codes made relative to the
    chunk, ids deduplicated, invokes paired inside the chunk."""
    parts = [p for _, p in pieces]
    row0 = np.cumsum([0] + [p.n for p in parts]).tolist()
    warnings = [(first + rel, msg) for first, p in pieces for rel, msg in p.warnings]
    lines = None
    if any(p.lines is not None for p in parts):
        lines = _cat([first + (np.arange(p.n, dtype=np.int64) if p.lines is None else p.lines)
                      for first, p in pieces])
    if all(p.procs is None for p in parts):  # integer processes everywhere
        proc, procs = int_codes(_cat([p.proc for p in parts]))
    else:
        for p in parts:
            if p.procs is None:
                p.proc, p.procs = int_codes(p.proc)
        proc, procs = _recode(parts, lambda p: cast(list[Any], p.procs), lambda p: p.proc)
    f, fnames = _recode(parts, lambda p: p.fnames, lambda p: p.f)
    index = None
    if any(p.index is not None for p in parts):
        index = (_cat([np.zeros(p.n, bool) if p.index is None else p.index[0] for p in parts], bool),
                 _cat([np.full(p.n, -1) if p.index is None else p.index[1] for p in parts]))
    s_part, m_part, partitions = _recode(parts, lambda p: p.parts, lambda p: p.send.part, lambda p: p.msg.part,
                                         none=True)
    send = Sends(rows=_cat([p.send.rows + r0 for p, r0 in zip(parts, row0, strict=False)]),
                 offset=_cat([p.send.offset for p in parts]), part=s_part)
    if any(p.send.producer is not None for p in parts):
        send.producer = list(chain.from_iterable(p.send.producer or [None] * len(p.send.rows) for p in parts))
    msg = Entries(rows=_cat([p.msg.rows + r0 for p, r0 in zip(parts, row0, strict=False)]),
                  seq=_cat([p.msg.seq for p in parts]), offset=_cat([p.msg.offset for p in parts]),
                  redelivered=_cat([p.msg.redelivered for p in parts], bool), part=m_part)

    # ids: send invokes, then poll entries, then effects, of all pieces
    groups = [g for attr in ("invokes", "entries", "effects") for g in (getattr(p.ids, attr) for p in parts)]
    if any(p.ids.exact for p in parts):  # some id does not pack
        ids, codes = dedupe(None, list(chain.from_iterable(g if isinstance(g, list) else unpack(g) for g in groups)))
    else:
        width = max((g.shape[1] for g in groups), default=1)
        ids, codes = dedupe(np.concatenate([pad(g, width) for g in groups] or [np.zeros((0, 1), dtype=U64)]), None)
    n_inv, n_msg = sum(len(p.ids.invokes) for p in parts), sum(len(p.ids.entries) for p in parts)
    send.inv_id = codes[:n_inv]
    msg.id = codes[n_inv:n_inv + n_msg]

    # effects and faults keep their rows
    effects, faults = [], []
    a = n_inv + n_msg
    for p, r0 in zip(parts, row0, strict=False):
        for r, counts in p.effects:
            c = codes[a:a + len(counts)]
            a += len(counts)
            if len(c) and np.bincount(c).max() > 1:  # an id given twice: the last one counts (as in a dict)
                by_id = np.sort((c << 32) | np.arange(len(c)))  # (a read has far fewer than 2**32 ids)
                last = np.r_[(by_id[1:] >> 32) != (by_id[:-1] >> 32), True]
                keep_rows = np.sort(((1 << 32) - 1) & by_id[last])
                c, counts = c[keep_rows], counts[keep_rows]
            effects.append((r + r0, c, counts))
        faults += [(r + r0, fault, nodes) for r, fault, nodes in p.faults]
    tcode = _cat([p.type for p in parts], np.int8)
    chunk = Chunk(n=row0[-1], time=_cat([p.time for p in parts]), type=tcode, proc=proc, procs=procs, f=f,
                  fnames=fnames, index=index, send=send, msg=msg, parts=partitions, faults=faults,
                  newlines=newlines, lines=lines, warnings=warnings, effects=effects, ids=ids,
                  pairs=local_pairs(proc, tcode, f, procs))
    compact(chunk)
    return chunk
