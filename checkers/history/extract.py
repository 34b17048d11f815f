"""Extraction: a piece's decoded operations (msgspec structs) into compact columns (a `chunk.Piece`).

This is where the reader touches Python objects, once per operation and field, in list comprehensions
(Python 3.11 specialises `o.attr` there: about 3x faster than map(attrgetter)). Ids leave as packed
words (ids.py); an effects read's counts are read straight from their raw JSON when they are plain.
`Suspect` says the typed decoder let through something the contract rejects: the piece then goes to
the slow path (validate.py), which names the line.
"""

from __future__ import annotations

from itertools import chain, compress
from operator import itemgetter
from typing import Any, cast

import msgspec
import numpy as np

from checkers.history import native
from checkers.history.chunk import Entries, Piece, PieceIds, Sends
from checkers.history.codes import codes_of, ints, op_codes
from checkers.history.contract import EMPTY_VALUE, ENTRY_OPS, TYPES, AnyOp, Op, Value
from checkers.history.ids import U64, pack, pack_strings, pad, starts_of, unpack


class Suspect(Exception):
    """The typed decoder let through something the contract rejects: decode the piece line by line."""


_NONE = type(None)
_TYPE_CODE = {t: i for i, t in enumerate(TYPES)}


def _send_values(sv: list[Any], inv: np.ndarray) -> list[Value]:
    """Values of send operations, null completions as empty values (null is legal for them only)."""
    if not set(map(type, sv)) <= {Value, _NONE} or any(v is None for v in compress(sv, inv.tolist())):
        raise Suspect
    return [EMPTY_VALUE if v is None else v for v in sv]


def _poll_lists(pv: list[Any], ok: np.ndarray) -> list[Any]:
    """Entries of poll completions (empty when a fail/info poll carries none); ok polls must have them."""
    try:
        lists = [v.messages for v in pv]
    except AttributeError:  # a null (or odd) value
        lists = [getattr(v, "messages", None) for v in pv]
    if None not in lists:
        return lists
    if None in compress(lists, ok.tolist()):
        raise Suspect
    return [() if m is None else m for m in lists]


def _select(objs: list[Any], mask: np.ndarray) -> list[Any]:
    """The objects where mask is true (few of them: picked by row; many: filtered)."""
    rows = np.flatnonzero(mask)
    if 4 * len(rows) >= len(objs):
        return list(compress(objs, mask.tolist()))
    if len(rows) < 2:
        return [objs[r] for r in rows.tolist()]
    return list(itemgetter(*rows.tolist())(objs))


def extract(ops: list[Op] | list[AnyOp], raw: bytes) -> Piece:
    """The columns of a piece's operations (decoded from `raw`; rows relative to the piece)."""
    n = len(ops)
    time = np.fromiter([o.time for o in ops], np.int64, n)
    procs: list[Any] | None
    if n and ops[0].__class__ is Op:  # integer processes: the chunk gives them codes (see join_pieces)
        try:
            proc, procs = np.fromiter([o.process for o in ops], np.int64, n), None
        except OverflowError:
            proc, procs = codes_of([o.process for o in ops])
    else:
        proc, procs = codes_of([o.process for o in ops])
    types = np.fromiter([_TYPE_CODE[o.type] for o in ops], np.int8, n)
    fc, fu = op_codes(ops)
    index = None
    # cheap necessary conditions first: no "x" byte, no "index" key (unless spelled with escapes)
    if (b"x" in raw and b"index" in raw) or b"\\" in raw:
        idx = [o.index for o in ops]
        if idx.count(None) != n:
            index = (np.fromiter((i is not None for i in idx), bool, n), ints(idx))
    values = [o.value for o in ops]

    def mask(*names: str) -> np.ndarray:
        codes = [fu.index(f) for f in names if f in fu]
        if not codes:
            return np.zeros(n, dtype=bool)
        return fc == codes[0] if len(codes) == 1 else np.isin(fc, codes)

    # sends: the invoke names the message; completions keep their partition and offset
    sm = mask("send")
    sr = np.flatnonzero(sm)
    inv = types[sr] == 0
    sv = _select(values, sm)
    try:
        offsets = ints([v.offset for v in sv])
    except AttributeError:  # not every value is an object
        sv = _send_values(sv, inv)
        offsets = ints([v.offset for v in sv])
    inv_ids = [v.id for v in compress(sv, inv.tolist())]
    prods = [v.producer for v in sv]

    # poll (and final-read) completions: their entries (deliveries when an ok poll's)
    pm = mask(*ENTRY_OPS) & (types != 0)
    pr = np.flatnonzero(pm)
    # an ok poll must carry entries; a final-read without them is an operation of someone else's (ignored)
    lists = _poll_lists(_select(values, pm), (types[pr] == 1) & mask("poll")[pr])
    counts = np.fromiter(map(len, lists), np.int64, len(lists))
    flat = list(chain.from_iterable(lists))
    m_ids = [m.id for m in flat]
    total = len(flat)
    pc, pu = codes_of([v.partition for v in sv] + [m.partition for m in flat])
    send = Sends(rows=sr, offset=offsets, part=pc[:len(sv)],
                 producer=None if prods.count(None) == len(sv) else [None if p is None else str(p) for p in prods])
    msg = Entries(rows=np.repeat(pr, counts),
                  seq=np.arange(total, dtype=np.int64) - np.repeat(starts_of(counts), counts),
                  offset=ints([m.offset for m in flat]),
                  redelivered=np.fromiter([m.redelivered for m in flat], bool, total), part=pc[len(sv):])

    # effects reads and faults: few operations, kept as they are
    effects = []
    eff_ids: list[np.ndarray | list[str]] = []  # per read: packed ids, or the ids as strings
    for r in np.flatnonzero(mask("effects") & (types == 1)).tolist():
        v = values[r]
        if v.__class__ is not Value or v.counts is None:
            raise Suspect
        read_ids, c = _effect_counts(v.counts)
        effects.append((r, c))
        eff_ids.append(read_ids)
    faults = []
    for r in np.flatnonzero(mask("start-fault", "stop-fault") & (types != 0)).tolist():
        v = values[r]
        if v.__class__ is not Value or v.fault is None:
            raise Suspect
        faults.append((r, v.fault, v.nodes))

    # the ids of send invokes, poll entries and effects: packed (the chunk deduplicates them), or
    # strings when some id does not pack
    try:
        words = pack_strings(inv_ids + m_ids)
    except TypeError:  # a send invoke without an id
        raise Suspect from None
    if words is None or any(isinstance(e, list) for e in eff_ids):
        eff = list(chain.from_iterable(e if isinstance(e, list) else unpack(e) for e in eff_ids))
        ids = PieceIds(invokes=inv_ids, entries=m_ids, effects=eff)
    else:
        packed = cast(list[np.ndarray], eff_ids)  # (none is a list of strings here)
        width = max([words.shape[1]] + [e.shape[1] for e in packed])
        eff_w = np.concatenate([pad(e, width) for e in packed]) if packed else np.zeros((0, 1), dtype=U64)
        ids = PieceIds(invokes=words[:len(inv_ids)], entries=words[len(inv_ids):], effects=eff_w)
    return Piece(n=n, time=time, type=types, proc=proc, procs=procs, f=fc, fnames=fu, index=index, send=send,
                 msg=msg, parts=pu, faults=faults, effects=effects, ids=ids)


def _effect_counts(counts: Any) -> tuple[np.ndarray | list[str], np.ndarray]:
    """The ids (packed, or as strings) and counts of an effects read (raw JSON or, from the slow path,
    a dict); raises Suspect unless it is an object of ids to non-negative integers."""
    if isinstance(counts, msgspec.Raw):
        raw = bytes(counts)
        plain = plain_counts(raw)
        if plain is not None:
            return plain
        try:
            counts = msgspec.json.decode(raw, type=dict[str, int])
        except msgspec.ValidationError:
            raise Suspect from None
    c = np.fromiter(counts.values(), np.int64, len(counts))
    if len(c) and c.min() < 0:
        raise Suspect
    ids = list(counts)
    words = pack_strings(ids)
    return (ids if words is None else words), c


_OUTSIDE = np.zeros(256, dtype=bool)  # bytes a plain object of id -> count has outside its strings
_OUTSIDE[np.frombuffer(b"{}:, \t\r\n0123456789", np.uint8)] = True
_POW10 = 10 ** np.arange(19, dtype=np.int64)


def plain_counts(raw: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """Ids (packed words) and counts of an effects read's `counts`, straight from its raw JSON (valid
    JSON: msgspec has parsed it); None unless it is a plain object of ids without escapes mapping to
    non-negative integers (then it is decoded the ordinary way). By canon.c when it is built."""
    if not native.available():
        return plain_counts_numpy(raw)
    got = native.counts(raw)
    if got is None:
        return None
    at, lens, counts = got
    words = pack(raw, at, lens)
    return None if words is None else (words, counts)


def plain_counts_numpy(raw: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """`plain_counts` with numpy."""
    if b"\\" in raw:
        return None
    b = np.frombuffer(raw, np.uint8)
    q = np.flatnonzero(b == 34)  # '"': with no escapes, every quote opens or closes a string
    opens, closes = q[0::2], q[1::2]
    if len(opens) != len(closes):
        return None
    inside = np.zeros(len(b) + 1, dtype=np.int8)
    inside[opens] = 1
    inside[closes + 1] -= 1
    out = b[np.cumsum(inside[:-1], dtype=np.int8) == 0]  # the bytes outside the strings (sums: 0 or 1)
    if not _OUTSIDE[out].all():
        return None
    sym = out[~np.isin(out, (32, 9, 13, 10))]
    colon, comma = sym == 58, sym == 44
    n = len(opens)
    # { "id" : digits , "id" : digits } -- one '{' first, one '}' last, a ':' per string, as many numbers
    if (len(sym) < 2 or sym[0] != 123 or sym[-1] != 125 or int(colon.sum()) != n or int(comma.sum()) != max(n - 1, 0)
            or int((sym == 123).sum()) != 1 or int((sym == 125).sum()) != 1):
        return None
    digit = (out >= 48) & (out <= 57)
    edges = np.diff(np.r_[0, digit.astype(np.int8), 0])
    run_start, run_end = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if len(run_start) != n or (n and int((run_end - run_start).max()) > 18):
        return None
    pos = np.flatnonzero(digit)
    exp = np.repeat(run_end, run_end - run_start) - 1 - pos
    digits = (out[pos].astype(np.int64) - 48) * _POW10[exp]
    counts = np.add.reduceat(digits, starts_of(run_end - run_start)) if n else np.zeros(0, dtype=np.int64)
    words = pack(raw, opens + 1, closes - opens - 1)
    return None if words is None else (words, counts)
