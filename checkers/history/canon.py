"""The canonical path: lines shaped exactly as the harness writes them, parsed straight from the bytes.

The harness writes every operation as compact JSON with its keys in one order:
    {"time":N,"process":N,"type":"…","f":"…","value":{…}}
For such lines of `send`, `poll` and `ack` (with their usual values), the columns are read straight
from the bytes, for all the lines of a block at once, without a Python object per operation: by
canon.c (native.py) when a C compiler is there, else by numpy here, a few operations per field, to
the same columns. Every byte of such a line is accounted for: literals are compared exactly, numbers
are plain digits (no sign, no leading zero, at most 16 of them) and strings are printable ASCII
without escapes, so the line is valid JSON that the typed decoder reads to the same values. Any line
that does not match exactly (another shape, key order or spacing, an escape, a non-ASCII id, a
string process, the effects read, faults, an `index`, a blank line, ...) is left to the msgspec path
(and its slow path and error messages), as a piece of its own between the matched runs.
tests/test_history_reader.py and tests/test_history_native.py check that the paths agree.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np

from checkers.history import native
from checkers.history.chunk import Entries, Piece, PieceIds, Sends
from checkers.history.codes import int_codes, known_codes
from checkers.history.contract import KNOWN_OPS, TYPES
from checkers.history.ids import U64, gather

_CANON_MAX_RUNS = 16  # a block with more runs of other lines than this goes to msgspec whole
_CANON_MAX_ITEMS = 64  # ids of one ack read by the fast path; more: msgspec
PAD = 512  # zero bytes after a chunk's lines: the windows below never read past the buffer
_STR_W2 = 128  # strings longer than their first window get a second look this wide (longer: msgspec)
_CANON_F = ("send", "poll", "ack")  # codes 0, 1, 2: the first three of KNOWN_OPS
assert KNOWN_OPS[:3] == _CANON_F
_ALL_BYTES = U64(0xFFFFFFFFFFFFFFFF)
_SHIFTS = np.array([8 * (8 - n) if 1 <= n <= 8 else 0 for n in range(17)], dtype=U64)
_POW10U = 10 ** np.arange(17, dtype=U64)


def _swar8(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The numbers written by the first n (1 to 8) bytes of each word, all ASCII digits (little
    endian: the first byte is the first digit), eight digits at a time in uint64 arithmetic."""
    x = (x - U64(0x3030303030303030)) << _SHIFTS[n]  # right-align them (n = 0 or > 8: garbage)
    x = x * U64(10) + (x >> U64(8))
    return ((x & U64(0x000000FF000000FF)) * U64(100 + (1000000 << 32))
            + ((x >> U64(16)) & U64(0x000000FF000000FF)) * U64(1 + (10000 << 32))) >> U64(32)


_LITS: dict[bytes, list[tuple[int, np.uint64, np.uint64]]] = {}


def _lit_parts(s: bytes) -> list[tuple[int, np.uint64, np.uint64]]:
    """s as (offset, little-endian word, mask) for each 8 bytes."""
    parts = _LITS.get(s)
    if parts is None:
        parts = _LITS[s] = [(j, U64(int.from_bytes(s[j:j + 8], "little")), U64((1 << (8 * len(s[j:j + 8]))) - 1))
                            for j in range(0, len(s), 8)]
    return parts


_VOIDS: dict[int, np.dtype] = {}


def _void(w: int) -> np.dtype:
    d = _VOIDS.get(w)
    if d is None:
        d = _VOIDS[w] = np.dtype(f"V{w}")
    return d


class Canon:
    """One chunk of lines, padded, and the views the fast path reads it through."""

    def __init__(self, pad: bytearray, n: int) -> None:
        """pad: n bytes of lines, then at least PAD zero bytes."""
        self.n = n
        self.pad = pad
        self.a = np.frombuffer(pad, np.uint8)
        self._views: dict[int, np.ndarray] = {}

    def view(self, w: int) -> np.ndarray:
        """Every w bytes of the block as one item (numpy copies such items much faster than rows
        of a strided uint8 view)."""
        v = self._views.get(w)
        if v is None:
            v = self._views[w] = np.ndarray((len(self.pad) - w + 1,), dtype=_void(w), buffer=self.pad, strides=(1,))
        return v

    def clip(self, p: np.ndarray) -> np.ndarray:
        """Positions of lines that failed may run off; keep every window inside the padding."""
        return np.minimum(p, self.n, out=p)

    def string(self, p: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A string of printable ASCII without escapes at p (after its opening quote): (ok, length,
        open: nothing wrong but no closing quote within `width` bytes)."""
        m = self.view(width)[p].view(np.uint8).reshape(len(p), width)
        # the first quote, control byte, non-ASCII byte or backslash must be the closing quote
        stop = ((m - np.uint8(32)) > 94) | (m == 34) | (m == 92)
        ln = np.argmax(stop, axis=1)
        first = m.ravel()[np.arange(0, width * len(p), width) + ln]
        return first == 34, ln, (ln == 0) & ~stop[:, 0]


class _Win:
    """The `width` bytes at each of some positions of a block (one gather), and what is written at
    fixed offsets in them."""

    def __init__(self, c: Canon, p: np.ndarray, width: int) -> None:
        raw = c.view(width)[p]
        self.c, self.p, self.k = c, p, len(p)
        self.m = raw.view(np.uint8).reshape(self.k, width)
        self.w = raw.view("<u8").reshape(self.k, width // 8)

    def word(self, o: int) -> np.ndarray:
        """The 8 bytes at offset o as a little-endian word."""
        j, r = divmod(o, 8)
        if r == 0:
            return self.w[:, j]
        return (self.w[:, j] >> U64(8 * r)) | (self.w[:, j + 1] << U64(64 - 8 * r))

    def eq(self, o: int, s: bytes) -> np.ndarray:
        """Where the bytes at offset o are s."""
        ok = np.ones(self.k, dtype=bool)
        for j, val, mask in _lit_parts(s):
            x = self.word(o + j)
            ok &= x == val if mask == _ALL_BYTES else (x & mask) == val
        return ok

    def num(self, o: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A plain non-negative integer of at most 16 digits at offset o (no sign, no leading zero;
        its end inside the window): (ok, value, length). The window must hold the words at o and o + 8."""
        nd = (self.m - np.uint8(48)) > 9  # the whole window: numpy runs over it as one long array
        if o:
            nd[:, :o] = False
        ln = np.argmax(nd, axis=1) - o  # the first non-digit from o on (-o when none: refused)
        ok = (ln > 0) & (ln <= 16) & ((self.m[:, o] != 48) | (ln == 1))
        v = _swar8(self.word(o), np.clip(ln, 0, 8))
        long = ln > 8
        if 2 * int(np.count_nonzero(long)) > self.k:  # times: mostly long
            n = np.clip(ln - 8, 0, 8)
            v = np.where(long, v * _POW10U[n] + _swar8(self.word(o + 8), n), v)
        elif long.any():
            long = np.flatnonzero(long)
            n = np.minimum(ln[long] - 8, 8)
            v[long] = v[long] * _POW10U[n] + _swar8(self.word(o + 8)[long], n)
        return ok, v.view(np.int64), ln

    def string(self, o: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A string of printable ASCII without escapes at offset o >= 1 (after its opening quote):
        (ok, length, open: nothing wrong but no closing quote inside the window)."""
        m = self.m
        # the first quote, control byte, non-ASCII byte or backslash must be the closing quote
        stop = ((m - np.uint8(32)) > 94) | (m == 34) | (m == 92)
        stop[:, :o] = False
        at = np.argmax(stop, axis=1)
        first = m.ravel()[np.arange(0, m.size, m.shape[1]) + at]
        ln = at - o
        return (first == 34) & (ln >= 0), ln, at == 0

    def long_string(self, o: int) -> tuple[np.ndarray, np.ndarray]:
        """`string`, with a second, wider look where the window held no closing quote."""
        ok, ln, open_ = self.string(o)
        again = np.flatnonzero(open_)
        if len(again):
            ok[again], ln[again], _ = self.c.string(self.p[again] + o, _STR_W2)
        return ok, ln

    def key(self, o: int) -> tuple[np.ndarray, np.ndarray]:
        """A string or null at offset o: (ok, bytes taken)."""
        isq = self.m[:, o] == 34
        ok, ln = self.long_string(o + 1)
        return (isq & ok) | (~isq & self.eq(o, b"null")), np.where(isq, ln + 2, 4)

    def opt_int(self, name: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """An optional `name` (such as `,"offset":`) and integer at offset 0: (ok, value or -1, bytes taken)."""
        has = self.eq(0, name)
        ok, v, ln = self.num(len(name))
        return ok | ~has, np.where(has, v, -1), np.where(has, len(name) + ln, 0)


def _closes(c: Canon, q: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Where the line ends at q with `}}`."""
    return (c.a[q] == 125) & (c.a[q + 1] == 125) & (q + 2 == ends)


def _entry_tail(c: Canon, q: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`","key":…[,"partition":N][,"offset":N]` at q (the closing quote of an id): (partition,
    offset, position after); clears g where malformed."""
    w = _Win(c, q, 32)
    g &= w.eq(0, b'","key":')
    ok, taken = w.key(8)
    g &= ok
    q = c.clip(q + 8 + taken)
    ok, part, taken = _Win(c, q, 32).opt_int(b',"partition":')
    g &= ok
    q = c.clip(q + taken)
    ok, off, taken = _Win(c, q, 32).opt_int(b',"offset":')
    g &= ok
    return part, off, c.clip(q + taken)


def parse(c: Canon, starts: np.ndarray, ends: np.ndarray) -> dict[str, Any]:
    """Parse the lines [starts, ends) (ends: their newlines) of a block; `good` marks the lines
    that match the canonical shapes exactly, the other columns are meaningful there only. By
    canon.c when it could be built (native.py), else by numpy: the same columns."""
    if native.available():
        return native.canon_parse(c.a, starts, ends)
    return parse_numpy(c, starts, ends)


def parse_numpy(c: Canon, starts: np.ndarray, ends: np.ndarray) -> dict[str, Any]:
    """`parse` with numpy: a few operations per field for all the lines at once."""
    n = len(starts)
    w = _Win(c, starts, 32)
    good = w.eq(0, b'{"time":')
    ok, time, ln = w.num(8)
    good &= ok
    p = c.clip(starts + 8 + ln)
    w = _Win(c, p, 32)
    good &= w.eq(0, b',"process":')
    ok, proc, ln = w.num(11)
    good &= ok
    p = c.clip(p + 11 + ln)
    w = _Win(c, p, 24)
    good &= w.eq(0, b',"type":"')
    x = w.word(9)
    tcode = np.full(n, -1, dtype=np.int64)
    adv = np.zeros(n, dtype=np.int64)
    for code, name in enumerate(TYPES):
        ((_, val, mask),) = _lit_parts(name.encode() + b'"')
        m = (x & mask) == val
        tcode[m], adv[m] = code, len(name) + 1
    good &= tcode >= 0
    p = c.clip(p + 9 + adv)
    w = _Win(c, p, 24)
    fcode = np.full(n, -1, dtype=np.int64)
    adv[:] = 0
    for code, name in enumerate(_CANON_F):
        lit = b',"f":"' + name.encode() + b'","value":'
        m = w.eq(0, lit)
        fcode[m], adv[m] = code, len(lit)
    good &= fcode >= 0
    p = c.clip(p + adv)
    out: dict[str, Any] = {"time": time, "proc": proc, "tcode": tcode, "fcode": fcode}

    # send: {"id":"…","key":"…"|null[,"partition":N][,"offset":N]}
    rows = np.flatnonzero(good & (fcode == 0))
    q = p[rows]
    w = _Win(c, q, 32)
    g = w.eq(0, b'{"id":"')
    ok, ln = w.long_string(7)
    g &= ok
    id_at, id_len = q + 7, ln
    part, off, q = _entry_tail(c, c.clip(q + 7 + ln), g)
    g &= _closes(c, q, ends[rows])
    good[rows] &= g
    out["send"] = (rows, part, off, id_at, id_len)

    # poll: null (not for an ok poll), or {"messages":[entries]} on a completion; each entry
    # {"id":"…","key":"…"|null[,"partition":N][,"offset":N][,"redelivered":true|false]}
    rows = np.flatnonzero(good & (fcode == 1))
    q = p[rows]
    t = tcode[rows]
    w = _Win(c, q, 16)
    null = w.eq(0, b"null}") & (q + 5 == ends[rows]) & (t != 1)
    msgs = w.eq(0, b'{"messages":[') & (t != 0)
    empty = w.m[:, 13] == 93  # ']'
    good[rows] &= null | msgs
    done = msgs & empty
    good[rows[done]] &= _closes(c, q[done] + 14, ends[rows[done]])
    full = msgs & ~empty
    lrows, lfirst = rows[full], q[full] + 13  # polls with entries, where their first entry starts
    # Entry starts: every `{"id":"` inside those lines. A canonical string holds no quote, so in a
    # canonical line these are exactly its entries; the chain check below refuses any other line.
    slot = np.full(n, -1, dtype=np.int64)
    slot[lrows] = np.arange(len(lrows))
    lo, hi = int(starts[0]), int(ends[-1])
    e = np.flatnonzero(c.a[lo:hi] == 123)
    e += lo
    li = slot[np.searchsorted(ends, e)]  # the poll of each '{', -1 for other lines
    keep = li >= 0
    e, li = e[keep], li[keep]
    keep = e >= lfirst[li]
    e, li = e[keep], li[keep]
    keep = _Win(c, e, 8).eq(0, b'{"id":"')
    e, li = e[keep], li[keep]
    # every entry at once: {"id":"…","key":…[,"partition":N][,"offset":N][,"redelivered":…]}
    w = _Win(c, e, 32)
    ok, ln = w.long_string(7)
    g = ok.copy()
    e_at, e_len = e + 7, ln
    epart, eoff, q = _entry_tail(c, c.clip(e + 7 + ln), g)
    w = _Win(c, q, 24)
    has = w.eq(0, b',"redelivered":')
    red = has & w.eq(15, b"true}")
    fals = has & w.eq(15, b"false}")
    g &= red | fals | (~has & (w.m[:, 0] == 125))
    q = c.clip(q + np.where(red, 20, np.where(fals, 21, 1)))
    sep = c.a[q]  # ',' another entry, ']' the end
    # the chain: the first entry right after '[', each next one right after a ',', ']' after the last
    k = len(e)
    first = np.ones(k, dtype=bool)
    np.not_equal(li[1:], li[:-1], out=first[1:])
    last = np.ones(k, dtype=bool)
    last[:-1] = first[1:]
    bad = ~g | (first & (e != lfirst[li])) | (last & (sep != 93)) | (~last & (sep != 44))
    bad[:-1] |= ~last[:-1] & (q[:-1] + 1 != e[1:])
    line_ok = np.zeros(len(lrows), dtype=bool)
    line_ok[li[last]] = _closes(c, c.clip(q[last] + 1), ends[lrows[li[last]]])
    line_ok[li[bad]] = False
    good[lrows] &= line_ok
    at = np.arange(k)
    seq = at - np.maximum.accumulate(np.where(first, at, 0))
    keep = good[lrows[li]]
    out["msg"] = tuple(x[keep] for x in (lrows[li], seq, e_at, e_len, epart, eoff, red))

    # ack: null, or {"ids":["…",…]} (the checkers do not read acks: the line only has to be valid)
    rows = np.flatnonzero(good & (fcode == 2))
    q = p[rows]
    w = _Win(c, q, 16)
    null = w.eq(0, b"null}") & (q + 5 == ends[rows])
    ids = w.eq(0, b'{"ids":[')
    empty = w.m[:, 8] == 93
    good[rows] &= null | ids
    rows, q, empty = rows[ids], q[ids] + 8, empty[ids]
    q[empty] += 1
    active = np.flatnonzero(~empty)
    for i in range(_CANON_MAX_ITEMS + 1):
        if not len(active) or i == _CANON_MAX_ITEMS:
            good[rows[active]] = False
            break
        e = q[active]
        w = _Win(c, e, 32)
        ok, ln = w.long_string(1)
        g = (w.m[:, 0] == 34) & ok
        e = c.clip(e + ln + 2)
        sep = c.a[e]
        g &= (sep == 44) | (sep == 93)
        q[active] = e + 1
        good[rows[active[~g]]] = False
        active = active[g & (sep == 44)]
    good[rows] &= _closes(c, c.clip(q), ends[rows])
    out["good"] = good
    return out


def canonical_share(lines: bytes) -> float:
    """The share of these whole lines that canon.c takes (to choose threads or processes for a file)."""
    a = np.frombuffer(lines + bytes(native.LIT_PAD + 1), np.uint8)
    ends = np.flatnonzero(a[:len(lines)] == 10)
    starts = np.r_[0, ends[:-1] + 1]
    return float(native.canon_parse(a, starts, ends)["good"].mean())


def split_block(c: Canon, b0: int, b1: int, ends: np.ndarray) -> list[tuple[int, int, Piece | None]]:
    """The block [b0, b1) of whole lines (`ends`: its newlines) as consecutive byte ranges: runs of
    canonical lines with their columns (as `decode_piece` makes them), and runs of other lines
    (None) for the msgspec path."""
    whole: list[tuple[int, int, Piece | None]] = [(b0, b1, None)]
    if not len(ends):
        return whole
    starts = np.empty(len(ends), dtype=np.int64)
    starts[0] = b0
    starts[1:] = ends[:-1] + 1
    r = parse(c, starts, ends)
    good = r["good"]
    # runs of good and of other lines (a tail without a newline is another line)
    edges = np.flatnonzero(good[1:] != good[:-1]) + 1
    if len(edges) > 2 * _CANON_MAX_RUNS or not good.any():
        return whole
    bounds = [0, *edges.tolist(), len(good)]
    s_rows, s_part, s_off, s_at, s_len = r["send"]
    keep = good[s_rows]
    s_rows, s_part, s_off, s_at, s_len = (x[keep] for x in r["send"])
    s_inv = r["tcode"][s_rows] == 0
    m_rows, m_seq, m_at, m_len, m_part, m_off, m_red = r["msg"]
    at = c.view(8).view("<u8")  # (the padding after the lines is longer than any canonical string)
    inv_words = gather(at, s_at[s_inv], s_len[s_inv])
    m_words = gather(at, m_at, m_len)
    inv_rows = s_rows[s_inv]
    tcode = r["tcode"].astype(np.int8)
    out: list[tuple[int, int, Piece | None]] = []
    for a, b in pairwise(bounds):
        lo = int(starts[a])
        hi = int(ends[b - 1]) + 1
        if not good[a]:
            out.append((lo, hi, None))
            continue
        sa, sb = np.searchsorted(s_rows, (a, b)).tolist()
        ia, ib = np.searchsorted(inv_rows, (a, b)).tolist()
        ma, mb = np.searchsorted(m_rows, (a, b)).tolist()
        fc, fnames = known_codes(r["fcode"][a:b], _CANON_F)
        pc, pu = int_codes(np.concatenate([s_part[sa:sb], m_part[ma:mb]]))
        ns = sb - sa
        out.append((lo, hi, Piece(
            n=b - a, time=r["time"][a:b], proc=r["proc"][a:b], procs=None, type=tcode[a:b], f=fc,
            fnames=fnames, index=None,
            send=Sends(rows=s_rows[sa:sb] - a, offset=s_off[sa:sb], part=pc[:ns]),
            msg=Entries(rows=m_rows[ma:mb] - a, seq=m_seq[ma:mb], offset=m_off[ma:mb], redelivered=m_red[ma:mb],
                        part=pc[ns:]),
            parts=[None if v == -1 else v for v in pu], effects=[], faults=[],
            ids=PieceIds(invokes=inv_words[ia:ib], entries=m_words[ma:mb], effects=np.zeros((0, 1), dtype=U64)),
            newlines=b - a,
        )))
    if b1 > int(ends[-1]) + 1:  # a last line without a newline
        if out[-1][2] is None:
            out[-1] = (out[-1][0], b1, None)
        else:
            out.append((int(ends[-1]) + 1, b1, None))
    return out


