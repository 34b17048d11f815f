"""Pairing: each completion with the latest open invoke of its process.

Chunks pair what they can alone (`local_pairs`); the assembler joins the pairs across chunk
boundaries and falls back to stack matching (`pair_slow`) for processes that do more than one thing
at a time. `pair_all` does the same on a whole history (after it was put in `index` order).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from checkers.history.contract import CLIENT_OPS, NEMESIS, TYPES, HistoryError

if TYPE_CHECKING:
    from checkers.history.model import History


class Pairs(msgspec.Struct, kw_only=True, gc=False):
    """A chunk's pairs, and what the parent needs to pair across chunks (`assemble.Assembler`)."""

    pair: np.ndarray  # row of the matching invoke/completion inside the chunk, -1 none
    bad_f: int  # first row of a pair of two different operations, -1 none
    proc: np.ndarray  # per client process of the chunk: its code,
    head: np.ndarray  # its first row,
    head_inv: np.ndarray  # whether that is an invoke,
    tail: np.ndarray  # its last row,
    tail_inv: np.ndarray  # whether that is an invoke,
    irregular: np.ndarray  # and whether it does something irregular inside the chunk


def local_pairs(proc: np.ndarray, types: np.ndarray, fcode: np.ndarray, procs: list[Any]) -> Pairs:
    """Pairs of the chunk (a completion right after an invoke of its process), and what the parent needs
    to pair across chunks: each client process's first and last operation in the chunk, and whether it
    does something irregular inside the chunk (two invokes in a row, a completion after a completion).
    See `pair_all` for the same on a whole history."""
    n = len(proc)
    pair = np.full(n, -1, dtype=np.int64)
    nemesis = next((i for i, x in enumerate(procs) if isinstance(x, str) and x == NEMESIS), -1)
    none = np.zeros(0, dtype=np.int64)
    if n == 0:
        return Pairs(pair=pair, bad_f=-1, proc=none, head=none, head_inv=none.astype(bool), tail=none,
                     tail_inv=none.astype(bool), irregular=none.astype(bool))
    row_bits = n.bit_length()
    key = proc << (row_bits + 1)
    key |= np.arange(n, dtype=np.int64) << 1
    key |= types == 0
    key.sort()
    p = key >> (row_bits + 1)
    rows = (key >> 1) & ((1 << row_bits) - 1)
    inv = (key & 1).astype(bool)
    first = np.ones(n, dtype=bool)
    np.not_equal(p[1:], p[:-1], out=first[1:])
    prev_inv = np.zeros(n, dtype=bool)
    prev_inv[1:] = inv[:-1]
    simple = ~inv & ~first & prev_inv
    k = np.flatnonzero(simple)
    pair[rows[k]] = rows[k - 1]
    pair[rows[k - 1]] = rows[k]
    wrong = k[fcode[rows[k]] != fcode[rows[k - 1]]]
    # irregular inside the chunk; a first operation that is a completion is for the parent to judge
    bad = ~first & ((~inv & ~simple) | (inv & prev_inv))
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], n) - 1
    irregular = np.add.reduceat(bad, starts) > 0
    if nemesis >= 0:  # the nemesis's operations are not paired
        pair[rows[p == nemesis]] = -1
        wrong = wrong[p[wrong] != nemesis]
    bad_f = int(min(rows[wrong].min(), rows[wrong - 1].min())) if len(wrong) else -1
    client = p[starts] != nemesis
    starts, ends = starts[client], ends[client]
    return Pairs(pair=pair, bad_f=bad_f, proc=p[starts], head=rows[starts], head_inv=inv[starts], tail=rows[ends],
                 tail_inv=inv[ends], irregular=irregular[client])


def pair_all(h: History) -> np.ndarray:
    """Match each completion to the latest open invoke of its process (row numbers, -1 for none)."""
    n = len(h)
    pair = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return pair
    # one sort of packed keys orders the operations by (process, row) and carries f and invoke-ness
    row_bits = max(1, n.bit_length())
    f_bits = max(1, len(h.fnames).bit_length())
    proc_bits = max(1, len(h.processes).bit_length())
    if proc_bits + row_bits + f_bits + 1 <= 63:
        low = f_bits + 1
        key = h.proc << (row_bits + low)
        key |= np.arange(n, dtype=np.int64) << low
        key |= h.fcode << 1
        key |= h.tcode == 0
        key.sort()
        p = key >> (row_bits + low)
        rows = (key >> low) & ((1 << row_bits) - 1)
        fs = (key >> 1) & ((1 << f_bits) - 1)
        inv = (key & 1).astype(bool)
    else:  # pragma: no cover - billions of operations
        rows = np.argsort(h.proc, kind="stable")
        p, fs, inv = h.proc[rows], h.fcode[rows], h.tcode[rows] == 0
    client = p != h.nemesis_code  # the nemesis's operations are not paired
    same_prev = np.zeros(n, dtype=bool)
    same_prev[1:] = p[1:] == p[:-1]
    prev_inv = np.zeros(n, dtype=bool)
    prev_inv[1:] = inv[:-1]
    simple = ~inv & same_prev & prev_inv & client  # completion right after an invoke of its process
    # a process is irregular if it has a completion not right after an invoke, or two invokes in a row
    bad = ((~inv & ~simple) | (inv & same_prev & prev_inv)) & client
    irregular = np.zeros(len(h.processes), dtype=bool)
    irregular[p[bad]] = True
    irr = irregular[p]
    k = np.flatnonzero(simple & ~irr)
    pair[rows[k]] = rows[k - 1]
    pair[rows[k - 1]] = rows[k]
    first_bad = n
    if len(k):
        wrong = k[fs[k] != fs[k - 1]]
        if len(wrong):
            first_bad = int(min(rows[wrong].min(), rows[wrong - 1].min()))
    if irr.any():
        first_bad = pair_irregular(h, rows[irr], pair, first_bad)
    raise_bad_f(h, pair, first_bad)
    return pair


def pair_irregular(h: History, rows: np.ndarray, pair: np.ndarray, first_bad: int) -> int:
    """Stack matching (`pair_slow`) of `rows`, the operations of irregular processes; returns the first row
    of a pair of two different operations, `first_bad` or earlier."""
    pair_slow(h, rows, pair)
    got = rows[pair[rows] >= 0]
    wrong = got[h.fcode[got] != h.fcode[pair[got]]]
    return min(first_bad, int(wrong.min())) if len(wrong) else first_bad


def raise_bad_f(h: History, pair: np.ndarray, first_bad: int) -> None:
    """The error for the first pair (in history order) of two different operations, if any."""
    if first_bad < len(h):
        r = first_bad
        a, b = (r, int(pair[r])) if h.tcode[r] != 0 else (int(pair[r]), r)
        fa, fb = h.fnames[h.fcode[a]], h.fnames[h.fcode[b]]
        raise HistoryError(f"{h.source}:{h.line[a]}: completion of '{fa}' matches an open invoke of "
                           f"'{fb}' (line {h.line[b]}) of the same process")


def pair_slow(h: History, rows: np.ndarray, pair: np.ndarray) -> None:
    """Stack matching for processes that do more than one thing at a time or complete orphans."""
    proc, types, fs = h.proc.tolist(), h.tcode, h.fcode
    stacks: dict[int, list[int]] = {}
    orphan = len(h)
    for r in rows.tolist():
        st = stacks.setdefault(proc[r], [])
        if types[r] == 0:
            st.append(r)
        elif st:
            pair[r] = st.pop()
            pair[pair[r]] = r
        elif h.fnames[fs[r]] in CLIENT_OPS:
            orphan = min(orphan, r)
    if orphan < len(h):  # the first one in history order
        r = orphan
        raise HistoryError(f"{h.source}:{h.line[r]}: '{TYPES[types[r]]}' completion of '{h.fnames[fs[r]]}' "
                           f"by process {h.processes[proc[r]]!r} has no open invoke (a history that records "
                           "completions only is checked with --completions-only)")


