"""Read a history (contract v1, JSON Lines) into columns for the checkers.

The reader lives beside the checkers and imports nothing from the rest of
onceproof, so `onceproof check` works on any history, including ones written by
a user's own producers and consumers.

Speed matters (histories of millions of operations), and there the cost is in
touching Python objects, so the design keeps them out of every step but the
first:

- The file is cut into chunks (CHUNK_BYTES) on line boundaries; big files are
  decoded by several threads at once when they are mostly canonical lines (the C
  path runs without the GIL), else by several processes (fork). A chunk is read
  at once and taken in blocks (BLOCK_BYTES). Lines written exactly as the
  harness writes them (compact JSON, keys in the harness's order,
  `send`/`poll`/`ack` with their usual values, plain ASCII ids) are parsed
  straight from the bytes, every byte of such a line checked (the canonical
  path, `_canon_block`): by canon.c (checkers/native.py) when a C compiler is
  there, else by numpy, to the same columns.
  Every other line goes to msgspec, in pieces of about PIECE_BYTES (small
  enough for the objects of a piece to stay in the CPU's cache): decoded
  straight into typed structs (`Op`, then the more permissive `AnyOp`); a piece
  the typed decoders reject, or whose values the contract still rejects, is
  decoded again line by line by a slow path that accepts each line or names
  exactly what is wrong with it. The first error in file order is the one
  reported. Both fast paths give the same columns as the slow path.
- Each piece is turned at once into compact columns: numpy arrays of times,
  type codes and codes of processes, operations and partitions. Message ids are
  packed into 64-bit words, hashed and deduplicated with numpy (equal hashes are
  checked word by word), so only small tables travel to the parent; an effects
  read's counts are read straight from their raw JSON when they are plain.
  Keys are not decoded at all: no checker reads them, and `History` reads them
  from the file if a DataFrame view asks for them.
- The parent merges the chunks into global codes. Every message id of the
  history (sends, poll entries, effects) has ONE code in `History.id_table`, so
  the checkers do set algebra on integers (bincount, boolean tables). Pairing of
  invokes and completions is done per chunk; the parent joins chunk boundaries.

`History` holds numpy columns for the checkers and offers the same data as
pandas DataFrames (`ops`, `sends`, `messages`, `deliveries`, `faults`), built on
first use; pandas is imported only then.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import threading
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from functools import cached_property
from itertools import chain, compress, count, pairwise
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np

from checkers import native

TYPES = ("invoke", "ok", "fail", "info")
OUTCOMES = ("open", "ok", "fail", "info")  # a send's outcome code: the type code of its completion, 0 if none
CLIENT_OPS = ("send", "poll", "ack")
NEMESIS = "nemesis"
CHUNK_BYTES = 32 << 20
PIECE_BYTES = 256 << 10  # a chunk is read and decoded piece by piece (see _pieces)
PARALLEL_MIN_BYTES = 16 << 20  # smaller files are decoded in this process
PROBE_BYTES = 256 << 10  # how much of a big file `_mostly_canonical` looks at, in each of three places
MAX_WORKERS = 8


class HistoryError(Exception):
    """A history that does not follow the contract; the message names file, line and field."""


# --- structs (fast path and slow path both produce them) ------------------------------------------


class Message(msgspec.Struct, gc=False):
    id: str
    partition: int | str | None = None
    offset: int | None = -1  # -1 or None: no offset
    redelivered: bool = False
    # `key` is not decoded here: no checker reads keys, `History` reads them from the file on demand


class Value(msgspec.Struct, gc=False):
    id: str | None = None
    partition: int | str | None = None
    offset: int | None = -1
    messages: list[Message] | None = None
    counts: msgspec.Raw = None  # type: ignore[assignment]  # raw JSON (a dict from the slow path)
    fault: str | None = None
    nodes: Any = None
    producer: Any = None


# operation names the typed decoder knows (others are decoded by the next decoder, as strings)
KNOWN_OPS = ("send", "poll", "ack", "effects", "start-fault", "stop-fault", "assign", "subscribe", "final-read")
ENTRY_OPS = ("poll", "final-read")  # operations whose completions carry message entries


class Op(msgspec.Struct, gc=False):
    time: int
    process: int  # integers (as the harness writes them); a piece naming a process by string takes AnyOp
    type: Literal["invoke", "ok", "fail", "info"]
    f: Literal[KNOWN_OPS]  # type: ignore[valid-type]  # one shared string per name: no string per operation
    value: Value | None = None
    index: int | None = None


class AnyOp(msgspec.Struct, gc=False):
    time: int
    process: int | str
    type: Literal["invoke", "ok", "fail", "info"]
    f: str
    # other shapes are legal for operations the checkers do not know (Jepsen's assign takes a list)
    value: Value | list[Any] | str | int | float | bool | None = None
    index: int | None = None


_OP_DECODERS = (msgspec.json.Decoder(Op), msgspec.json.Decoder(AnyOp))
_EMPTY = Value()


# --- slow path: validate one line and say exactly what is wrong -----------------------------------


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_range(x: Any, what: str) -> None:
    """Times, indexes and offsets are kept as 64-bit integers."""
    if x is not None and not -(2**63) <= x < 2**63:
        raise ValueError(f"{what} is out of range (a 64-bit integer)")


def _message_id(x: Any, where: str) -> str:
    """An id as the checkers keep it: a string, or an integer as its decimal string (788 and "788" are one
    id: tools such as Kafka's verifiable producer count their messages)."""
    if isinstance(x, str):
        return x
    if _is_int(x):
        return str(x)
    raise ValueError(f"{where} must be a string or an integer")


def _check_message(m: Any, where: str) -> Message:
    if not isinstance(m, dict):
        raise ValueError(f"{where} must be an object")
    if "id" not in m:
        raise ValueError(f"{where}.id is missing")
    mid = _message_id(m["id"], f"{where}.id")
    part = m.get("partition")
    if part is not None and not (_is_int(part) or isinstance(part, str)):
        raise ValueError(f"{where}.partition must be an integer, a string or null")
    off = m.get("offset")
    if off is not None and not _is_int(off):
        raise ValueError(f"{where}.offset must be an integer or null")
    _check_range(off, f"{where}.offset")
    red = m.get("redelivered", False)
    if red is None:
        red = False
    if not isinstance(red, bool):
        raise ValueError(f"{where}.redelivered must be true or false")
    return Message(id=mid, partition=part, offset=off, redelivered=red)


def _check_value(f: str, typ: str, v: Any) -> Value | None:
    """Validate the operation-specific value; unknown operations keep no value."""
    if f == "send":
        if not isinstance(v, dict):
            if typ == "invoke" or v is not None:
                raise ValueError("field 'value' of a send must be an object with an 'id'")
            return None
        if "id" not in v and typ == "invoke":
            raise ValueError("field 'value.id' is missing")
        mid = _message_id(v["id"], "field 'value.id'") if "id" in v else None
        part, off = v.get("partition"), v.get("offset")
        if part is not None and not (_is_int(part) or isinstance(part, str)):
            raise ValueError("field 'value.partition' must be an integer, a string or null")
        if off is not None and not _is_int(off):
            raise ValueError("field 'value.offset' must be an integer or null")
        _check_range(off, "field 'value.offset'")
        return Value(id=mid, partition=part, offset=off, producer=v.get("producer"))
    if f in ENTRY_OPS and typ != "ok":
        # entries of fail/info polls are not deliveries; keep them when well-formed, as the fast path does
        try:
            return _check_value(f, "ok", v) if isinstance(v, dict) and "messages" in v else None
        except ValueError:
            return None
    if f in ENTRY_OPS and typ == "ok":
        if not isinstance(v, dict) or "messages" not in v:
            raise ValueError(f"field 'value.messages' is missing from an ok {f}")
        msgs = v["messages"]
        if not isinstance(msgs, list):
            raise ValueError("field 'value.messages' must be a list")
        return Value(messages=[_check_message(m, f"field 'value.messages[{i}]'") for i, m in enumerate(msgs)])
    if f == "effects" and typ == "ok":
        if not isinstance(v, dict) or "counts" not in v:
            raise ValueError("field 'value.counts' is missing from an ok effects read")
        counts = v["counts"]
        if not isinstance(counts, dict):
            raise ValueError("field 'value.counts' must be an object of id -> times applied")
        for k, n in counts.items():
            if not _is_int(n) or n < 0:
                raise ValueError(f"field 'value.counts[{k!r}]' must be a non-negative integer")
            _check_range(n, f"field 'value.counts[{k!r}]'")
        return Value(counts=counts)
    if f in ("start-fault", "stop-fault") and typ != "invoke":
        if not isinstance(v, dict) or not isinstance(v.get("fault"), str):
            raise ValueError(f"field 'value.fault' (a string) is missing from {f}")
        return Value(fault=v["fault"], nodes=v.get("nodes"))
    return None


def _check_line(raw: bytes) -> AnyOp:
    try:
        obj = msgspec.json.decode(raw)
    except msgspec.DecodeError as e:
        raise ValueError(f"not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ValueError("an operation must be a JSON object")
    for name in ("time", "process", "type", "f"):
        if name not in obj:
            raise ValueError(f"field '{name}' is missing")
    if not _is_int(obj["time"]):
        raise ValueError("field 'time' must be an integer (nanoseconds)")
    _check_range(obj["time"], "field 'time'")
    proc = obj["process"]
    if not (_is_int(proc) or isinstance(proc, str)):
        raise ValueError("field 'process' must be an integer or a string")
    typ = obj["type"]
    if typ not in TYPES:
        raise ValueError(f"field 'type' must be one of {', '.join(TYPES)} (got {typ!r}): unknown type")
    f = obj["f"]
    if not isinstance(f, str):
        raise ValueError("field 'f' must be a string")
    idx = obj.get("index")
    if idx is not None and not _is_int(idx):
        raise ValueError("field 'index' must be an integer")
    _check_range(idx, "field 'index'")
    try:
        value = _check_value(f, typ, obj.get("value"))
    except ValueError:
        if f in CLIENT_OPS or f in ("effects", "start-fault", "stop-fault"):
            raise
        value = None
    return AnyOp(time=obj["time"], process=proc, type=typ, f=f, value=value, index=idx)


# --- ids as numbers: NUL-free UTF-8 packed into 64-bit words, hashed, compared word by word -------

MAX_ID_WORDS = 32  # ids longer than 256 bytes (or holding a NUL) are deduplicated as Python strings
_U64 = np.uint64


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer (a bijection of uint64)."""
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


_WEIGHTS = _mix((np.arange(MAX_ID_WORDS, dtype=_U64) + _U64(1)) * _U64(0x9E3779B97F4A7C15))


def _starts(lens: np.ndarray) -> np.ndarray:
    return np.cumsum(lens) - lens


_LOW_BYTES = np.array([(1 << (8 * i)) - 1 for i in range(8)] + [(1 << 64) - 1], dtype=_U64)


def _words(strs: list[str]) -> np.ndarray | None:
    """Each string's UTF-8 bytes, zero-padded into a row of little-endian uint64 words; None when a
    string holds a NUL (the padding would be ambiguous) or is too long."""
    k = len(strs)
    blob = "\0".join(strs)
    raw = blob.encode("ascii") if blob.isascii() else blob.encode("utf-8", "surrogatepass")
    seps = np.flatnonzero(np.frombuffer(raw, np.uint8) == 0)
    if len(seps) != max(k - 1, 0):
        return None
    starts = np.empty(k, dtype=np.int64)
    starts[:1] = 0
    starts[1:] = seps + 1
    lens = np.empty(k, dtype=np.int64)
    lens[:-1] = seps - starts[:-1]
    lens[-1:] = len(raw) - starts[-1:]
    return _pack(raw, starts, lens)


def _pack(raw: bytes, starts: np.ndarray, lens: np.ndarray) -> np.ndarray | None:
    """The byte strings raw[start:start + len] (NUL-free) as zero-padded rows of uint64 words."""
    width = max(1, -(-int(lens.max()) // 8)) if len(lens) else 1
    if width > MAX_ID_WORDS:
        return None
    # the 8 bytes at every offset of the blob, as one unaligned uint64 view (padded: no read overruns)
    padded = raw + bytes(8 * width)
    at = np.ndarray((len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))
    out = np.empty((len(lens), width), dtype=_U64)
    for j in range(width):
        out[:, j] = at[starts + 8 * j] & _LOW_BYTES[np.clip(lens - 8 * j, 0, 8)]
    return out


_OUTSIDE = np.zeros(256, dtype=bool)  # bytes a plain object of id -> count has outside its strings
_OUTSIDE[np.frombuffer(b"{}:, \t\r\n0123456789", np.uint8)] = True
_POW10 = 10 ** np.arange(19, dtype=np.int64)


def _plain_counts(raw: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """Ids (packed words) and counts of an effects read's `counts`, straight from its raw JSON (valid
    JSON: msgspec has parsed it); None unless it is a plain object of ids without escapes mapping to
    non-negative integers (then it is decoded the ordinary way). By canon.c when it is built."""
    if not native.available():
        return _plain_counts_numpy(raw)
    got = native.counts(raw)
    if got is None:
        return None
    at, lens, counts = got
    words = _pack(raw, at, lens)
    return None if words is None else (words, counts)


def _plain_counts_numpy(raw: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """`_plain_counts` with numpy."""
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
    counts = np.add.reduceat(digits, _starts(run_end - run_start)) if n else np.zeros(0, dtype=np.int64)
    words = _pack(raw, opens + 1, closes - opens - 1)
    return None if words is None else (words, counts)


def _hash_words(w: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row, the same whatever the padding (zero words add nothing)."""
    h = np.zeros(len(w), dtype=_U64)
    for j in range(w.shape[1]):
        col = w[:, j]
        h += np.where(col != 0, _mix(col ^ _WEIGHTS[j]), _U64(0))
    return _mix(h)


def _pad(w: np.ndarray, width: int) -> np.ndarray:
    if w.shape[1] == width:
        return w
    out = np.zeros((len(w), width), dtype=_U64)
    out[:, : w.shape[1]] = w
    return out


def _hash_groupings(h: np.ndarray):
    """(order, the keys in that order) that put equal hashes together: first by the hashes' top bits
    (one sort of the hash with its low bits replaced by the position: fast), then, should two ids
    share those bits (likely in a big chunk: about n**2 / 2**(65 - bits) pairs), by the whole hash."""
    n = len(h)
    bits = _U64(max(1, n.bit_length()))
    key = (h >> bits) << bits
    key |= np.arange(n, dtype=_U64)
    key.sort()
    yield (key & ((_U64(1) << bits) - _U64(1))).astype(np.int64), key >> bits
    order = np.argsort(h, kind="stable")
    yield order, h[order]


def _dedupe(words: np.ndarray | None, strs: list[str] | None) -> dict[str, Any]:
    """The distinct ids among occurrences (given as packed words, or as strings when they do not
    pack) and each occurrence's code among them.

    Normally: `words` (one row per distinct id, sorted by `hash`, hashes distinct) and `codes`.
    Ids that do not pack into words, or two different ids sharing a hash, fall back to Python
    strings: `exact` (the distinct ids) and `codes`.
    """
    if words is not None:
        n = len(words)
        h = _hash_words(words)
        for order, keys in _hash_groupings(h):
            first = np.ones(n, dtype=bool)
            np.not_equal(keys[1:], keys[:-1], out=first[1:])
            codes = np.empty(n, dtype=np.int64)
            codes[order] = np.cumsum(first) - 1
            reps = order[first]
            # every id equals its group's first: then distinct keys, so distinct and sorted hashes
            if np.array_equal(words, words[reps][codes]):
                return {"words": words[reps], "hash": h[reps], "codes": codes}
        strs = _unpack(words)
    assert strs is not None
    d = dict.fromkeys(strs)
    for i, k in enumerate(d):
        d[k] = i
    return {"exact": list(d), "codes": np.fromiter(map(d.__getitem__, strs), np.int64, len(strs))}


def _unpack(words: np.ndarray) -> list[str]:
    """The strings packed by `_words`."""
    if len(words) == 0:
        return []
    raw = np.ascontiguousarray(words, dtype="<u8").view(f"S{8 * words.shape[1]}").ravel().tolist()  # NULs stripped
    return [r.decode("utf-8", "surrogatepass") for r in raw]


class IdTable:
    """The history's message ids: one integer code per distinct id, shared by sends, polls and effects.

    Ids arrive chunk by chunk as packed words with their hashes. A hash already in the table is
    accepted as the same id only after its words are compared; should two different ids ever share
    a hash (or an id not pack into words), the table switches to an exact dict of strings.
    """

    def __init__(self) -> None:
        self.n = 0
        self._hashes = np.zeros(0, dtype=_U64)  # sorted
        self._hcodes = np.zeros(0, dtype=np.int64)  # code of each hash
        self._words = np.zeros((1 << 10, 1), dtype=_U64)  # row = code
        self._exact: dict[str, int] | None = None
        self._strs: list[str] = []  # exact mode: the ids by code

    def __len__(self) -> int:
        return self.n

    def _append(self, w: np.ndarray) -> None:
        k, width = w.shape
        if width > self._words.shape[1]:
            self._words = _pad(self._words, width)
        w = _pad(w, self._words.shape[1])
        if self.n + k > len(self._words):
            grown = np.empty((max(self.n + k, 2 * len(self._words)), self._words.shape[1]), dtype=_U64)
            grown[: self.n] = self._words[: self.n]
            self._words = grown
        self._words[self.n:self.n + k] = w
        self.n += k

    def add(self, part: dict[str, Any]) -> np.ndarray:
        """Global codes of a chunk's distinct ids (as made by `_dedupe`)."""
        if "exact" in part:
            return self._add_exact(part["exact"])
        words, hashes = part["words"], part["hash"]
        if self._exact is not None:
            return self._add_exact(_unpack(words))
        k = len(words)
        pos = np.searchsorted(self._hashes, hashes)
        found = pos < len(self._hashes)
        found[found] = self._hashes[pos[found]] == hashes[found]
        codes = np.empty(k, dtype=np.int64)
        old = self._hcodes[pos[found]]
        if len(old):
            width = max(words.shape[1], self._words.shape[1])
            if not np.array_equal(_pad(self._words[old], width), _pad(words[found], width)):
                return self._add_exact(_unpack(words))  # a hash shared by two ids: go exact
            codes[found] = old
        new = ~found
        m = int(new.sum())
        if m:
            fresh = np.arange(self.n, self.n + m, dtype=np.int64)
            codes[new] = fresh
            self._append(words if m == k else words[new])
            # merge the new hashes (sorted) into the table's: each goes to its search position
            at = pos[new] + np.arange(m)
            keep = np.ones(len(self._hashes) + m, dtype=bool)
            keep[at] = False
            hs, hc = np.empty(len(keep), dtype=_U64), np.empty(len(keep), dtype=np.int64)
            hs[at], hc[at] = hashes[new], fresh
            hs[keep], hc[keep] = self._hashes, self._hcodes
            self._hashes, self._hcodes = hs, hc
        return codes

    def _add_exact(self, strs: list[str]) -> np.ndarray:
        if self._exact is None:
            self._strs = _unpack(self._words[: self.n])
            self._exact = {s: i for i, s in enumerate(self._strs)}
        exact = self._exact
        out = np.empty(len(strs), dtype=np.int64)
        for i, s in enumerate(strs):
            c = exact.get(s)
            if c is None:
                c = exact[s] = len(self._strs)
                self._strs.append(s)
            out[i] = c
        self.n = len(self._strs)
        return out

    def strings(self, codes: Any) -> list[str]:
        """The ids with these codes, as Python strings."""
        codes = np.asarray(codes, dtype=np.int64)
        if self._exact is not None:
            return [self._strs[c] for c in codes.tolist()]
        return _unpack(self._words[codes])

    def string(self, code: int) -> str:
        return self.strings([code])[0]


class _Table:
    """Global codes of small sets of values (processes, operation names, partitions)."""

    def __init__(self) -> None:
        self.codes: dict[Any, int] = {}
        self.values: list[Any] = []

    def map(self, values: list[Any], none: bool = False) -> np.ndarray:
        """Global codes of a chunk's distinct `values` (None -> -1 when `none`)."""
        out = np.empty(len(values), dtype=np.int64)
        for i, v in enumerate(values):
            if none and v is None:
                out[i] = -1
                continue
            c = self.codes.get(v)
            if c is None:
                c = self.codes[v] = len(self.values)
                self.values.append(v)
            out[i] = c
        return out


# --- one chunk: bytes -> compact columns ----------------------------------------------------------


class _Suspect(Exception):
    """The typed decoder let through something the contract rejects: decode the chunk line by line."""


_NONE = type(None)
_TYPE_CODE = {t: i for i, t in enumerate(TYPES)}
# (Python 3.11 specialises `o.attr` in a list comprehension: ~3x faster here than map(attrgetter))


def _codes(values: list[Any]) -> tuple[np.ndarray, list[Any]]:
    """Codes (in first-seen order) and the distinct values of hashable `values`, in one pass."""
    n = len(values)
    d: dict[Any, int] = {}
    first = np.fromiter(map(d.setdefault, values, count()), np.int64, n)  # row of each value's first sight
    if len(d) == n:
        return np.arange(n, dtype=np.int64), list(d)
    dense = np.empty(n, dtype=np.int64)
    dense[np.fromiter(d.values(), np.int64, len(d))] = np.arange(len(d))
    return dense[first], list(d)


_F_CODE = {f: i for i, f in enumerate(KNOWN_OPS)}


def _f_codes(ops: list[Op]) -> tuple[np.ndarray, list[str]]:
    """Codes and distinct names of the operations (`_codes`, faster for the usual names)."""
    try:
        codes = np.fromiter([_F_CODE[o.f] for o in ops], np.int64, len(ops))
    except KeyError:  # an operation of another name
        return _codes([o.f for o in ops])
    present = np.flatnonzero(np.bincount(codes, minlength=len(_F_CODE)))
    dense = np.zeros(len(_F_CODE), dtype=np.int64)
    dense[present] = np.arange(len(present))
    names = list(_F_CODE)
    return dense[codes], [names[i] for i in present.tolist()]


def _int_codes(values: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """`_codes` of integers, with numpy: codes in first-seen order and the distinct values."""
    order, s = stable_argsort(values, with_sorted=True)
    new = np.ones(len(s), dtype=bool)
    np.not_equal(s[1:], s[:-1], out=new[1:])
    first = order[new]  # row where each distinct value first appears
    by_first = np.argsort(first)
    rank = np.empty(len(first), dtype=np.int64)
    rank[by_first] = np.arange(len(first))
    codes = np.empty(len(values), dtype=np.int64)
    codes[order] = rank[np.cumsum(new) - 1]
    return codes, s[new][by_first].tolist()


def _ints(values: list[Any]) -> np.ndarray:
    """int64 array of optional integers (None -> -1)."""
    try:
        return np.fromiter(values, np.int64, len(values))
    except TypeError:
        return np.fromiter([-1 if v is None else v for v in values], np.int64, len(values))


def _send_values(sv: list[Any], inv: np.ndarray) -> list[Value]:
    """Values of send operations, null completions as empty values (null is legal for them only)."""
    if not set(map(type, sv)) <= {Value, _NONE} or any(v is None for v in compress(sv, inv.tolist())):
        raise _Suspect
    return [_EMPTY if v is None else v for v in sv]


def _poll_lists(pv: list[Any], ok: np.ndarray) -> list[Any]:
    """Entries of poll completions (empty when a fail/info poll carries none); ok polls must have them."""
    try:
        lists = [v.messages for v in pv]
    except AttributeError:  # a null (or odd) value
        lists = [getattr(v, "messages", None) for v in pv]
    if None not in lists:
        return lists
    if None in compress(lists, ok.tolist()):
        raise _Suspect
    return [() if m is None else m for m in lists]


def _select(objs: list[Any], mask: np.ndarray) -> list[Any]:
    """The objects where mask is true (few of them: picked by row; many: filtered)."""
    rows = np.flatnonzero(mask)
    if 4 * len(rows) >= len(objs):
        return list(compress(objs, mask.tolist()))
    if len(rows) < 2:
        return [objs[r] for r in rows.tolist()]
    return list(itemgetter(*rows.tolist())(objs))


def _extract(ops: list[Op], chunk: bytes) -> dict[str, Any]:
    """Compact columns of one piece's operations (row numbers relative to the piece)."""
    n = len(ops)
    out: dict[str, Any] = {"n": n}
    out["time"] = np.fromiter([o.time for o in ops], np.int64, n)
    if n and ops[0].__class__ is Op:  # integer processes: the chunk gives them codes (see _join)
        try:
            out["proc"], out["procs"] = np.fromiter([o.process for o in ops], np.int64, n), None
        except OverflowError:
            out["proc"], out["procs"] = _codes([o.process for o in ops])
    else:
        out["proc"], out["procs"] = _codes([o.process for o in ops])
    out["type"] = types = np.fromiter([_TYPE_CODE[o.type] for o in ops], np.int8, n)
    out["f"], out["fnames"] = fc, fu = _f_codes(ops)
    out["index"] = None
    # cheap necessary conditions first: no "x" byte, no "index" key (unless spelled with escapes)
    if (b"x" in chunk and b"index" in chunk) or b"\\" in chunk:
        idx = [o.index for o in ops]
        if idx.count(None) != n:
            out["index"] = (np.fromiter((i is not None for i in idx), bool, n), _ints(idx))
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
        offsets = _ints([v.offset for v in sv])
    except AttributeError:  # not every value is an object
        sv = _send_values(sv, inv)
        offsets = _ints([v.offset for v in sv])
    inv_ids = [v.id for v in compress(sv, inv.tolist())]
    prods = [v.producer for v in sv]
    out["send"] = {
        "rows": sr, "offset": offsets,
        "producer": None if prods.count(None) == len(sv) else [None if p is None else str(p) for p in prods],
    }

    # poll (and final-read) completions: their entries (deliveries when an ok poll's)
    pm = mask(*ENTRY_OPS) & (types != 0)
    pr = np.flatnonzero(pm)
    # an ok poll must carry entries; a final-read without them is an operation of someone else's (ignored)
    lists = _poll_lists(_select(values, pm), (types[pr] == 1) & mask("poll")[pr])
    counts = np.fromiter(map(len, lists), np.int64, len(lists))
    flat = list(chain.from_iterable(lists))
    m_ids = [m.id for m in flat]
    total = len(flat)
    out["msg"] = {
        "rows": np.repeat(pr, counts), "seq": np.arange(total, dtype=np.int64) - np.repeat(_starts(counts), counts),
        "offset": _ints([m.offset for m in flat]),
        "redelivered": np.fromiter([m.redelivered for m in flat], bool, total),
    }
    pc, pu = _codes([v.partition for v in sv] + [m.partition for m in flat])
    out["send"]["part"], out["msg"]["part"], out["parts"] = pc[:len(sv)], pc[len(sv):], pu

    # effects reads and faults: few operations, kept as they are
    effects = []
    eff_ids: list[np.ndarray | list[str]] = []  # per read: packed ids, or the ids as strings
    for r in np.flatnonzero(mask("effects") & (types == 1)).tolist():
        v = values[r]
        if v.__class__ is not Value or v.counts is None:
            raise _Suspect
        ids, c = _effect_counts(v.counts)
        effects.append((r, c))
        eff_ids.append(ids)
    faults = []
    for r in np.flatnonzero(mask("start-fault", "stop-fault") & (types != 0)).tolist():
        v = values[r]
        if v.__class__ is not Value or v.fault is None:
            raise _Suspect
        faults.append((r, v.fault, v.nodes))
    out["effects"], out["faults"] = effects, faults

    # the ids of send invokes, poll entries and effects: packed (the chunk deduplicates them), or
    # strings when some id does not pack
    try:
        words = _words(inv_ids + m_ids)
    except TypeError:  # a send invoke without an id
        raise _Suspect from None
    if words is None or any(isinstance(e, list) for e in eff_ids):
        eff = list(chain.from_iterable(e if isinstance(e, list) else _unpack(e) for e in eff_ids))
        out["ids"] = (inv_ids, m_ids, eff)
    else:
        width = max([words.shape[1]] + [e.shape[1] for e in eff_ids])
        eff_w = np.concatenate([_pad(e, width) for e in eff_ids]) if eff_ids else np.zeros((0, 1), dtype=_U64)
        out["ids"] = (words[:len(inv_ids)], words[len(inv_ids):], eff_w)
    return out


def _effect_counts(counts: Any) -> tuple[np.ndarray | list[str], np.ndarray]:
    """The ids (packed, or as strings) and counts of an effects read (raw JSON or, from the slow path,
    a dict); raises _Suspect unless it is an object of ids to non-negative integers."""
    if isinstance(counts, msgspec.Raw):
        raw = bytes(counts)
        plain = _plain_counts(raw)
        if plain is not None:
            return plain
        try:
            counts = msgspec.json.decode(raw, type=dict[str, int])
        except msgspec.ValidationError:
            raise _Suspect from None
    c = np.fromiter(counts.values(), np.int64, len(counts))
    if len(c) and c.min() < 0:
        raise _Suspect
    ids = list(counts)
    words = _words(ids)
    return (ids if words is None else words), c


def _local_pairs(proc: np.ndarray, types: np.ndarray, fcode: np.ndarray, procs: list[Any]) -> dict[str, Any]:
    """Pairs of the chunk (a completion right after an invoke of its process), and what the parent needs
    to pair across chunks: each client process's first and last operation in the chunk, and whether it
    does something irregular inside the chunk (two invokes in a row, a completion after a completion).
    See `_pair` for the same on a whole history."""
    n = len(proc)
    pair = np.full(n, -1, dtype=np.int64)
    nemesis = next((i for i, x in enumerate(procs) if isinstance(x, str) and x == NEMESIS), -1)
    none = np.zeros(0, dtype=np.int64)
    if n == 0:
        return {"pair": pair, "bad_f": -1, "proc": none, "head": none, "head_inv": none.astype(bool),
                "tail": none, "tail_inv": none.astype(bool), "irregular": none.astype(bool)}
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
    return {"pair": pair, "bad_f": bad_f, "proc": p[starts], "head": rows[starts], "head_inv": inv[starts],
            "tail": rows[ends], "tail_inv": inv[ends], "irregular": irregular[client]}


def _compact(out: dict[str, Any]) -> None:
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

    for k in ("proc", "f"):
        out[k] = small(out[k])
    for d in (out["send"], out["msg"]):
        for k in ("rows", "part", "inv_id", "seq", "id", "offset"):
            if k in d:
                d[k] = small(d[k])
    pr = out["pairs"]
    for k in ("pair", "proc", "head", "tail"):
        pr[k] = small(pr[k])


def _plain(chunk: bytes, newlines: np.ndarray) -> bool:
    """No blank or indented line: then line i of the chunk is the i-th object the typed decoder finds
    (when there are as many objects as lines: two objects on one line are caught by the count)."""
    if chunk[:1] in (b"\n", b" ", b"\t", b"\r"):
        return False
    after = np.frombuffer(chunk, np.uint8)[newlines[newlines < len(chunk) - 1] + 1]
    return not bool(((after == 10) | (after == 32) | (after == 9) | (after == 13)).any())


def _fast(chunk: bytes, n_lines: int) -> dict[str, Any] | None:
    """The chunk's columns by the typed decoders, or None when the slow path must decide."""
    for decoder in _OP_DECODERS:
        try:
            ops = decoder.decode_lines(chunk)
        except msgspec.ValidationError:
            continue  # the next decoder accepts more shapes of values
        except msgspec.DecodeError:
            return None
        if len(ops) != n_lines:  # a line holding two objects would shift the numbering
            return None
        try:
            return _extract(ops, chunk)
        except (_Suspect, OverflowError):
            return None
    return None


def _lines(chunk: bytes) -> list[bytes]:
    return chunk.split(b"\n")


def _decode_piece(piece: bytes, is_last: bool) -> dict[str, Any]:
    """Decode a piece of whole lines: compact columns, or the first error (line relative to the piece)."""
    nl = np.flatnonzero(np.frombuffer(piece, np.uint8) == 10)
    newlines = len(nl)
    out = None
    if _plain(piece, nl):
        out = _fast(piece, newlines + (1 if piece and not piece.endswith(b"\n") else 0))
    if out is not None:
        out.update(newlines=newlines, lines=None, warnings=[], error=None)
        return out
    # slow path: one line at a time, exact errors
    lines = _lines(piece)
    ops, nums, warnings = [], [], []
    last_nonblank = max((i for i, raw in enumerate(lines) if raw.strip()), default=-1)
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            op = _check_line(raw)
        except ValueError as e:
            if is_last and i == last_nonblank and str(e).startswith("not valid JSON"):
                warnings.append((i, "last line is truncated; ignored"))
                continue
            return {"error": (i, str(e)), "newlines": newlines}
        ops.append(op)
        nums.append(i)
    try:
        out = _extract(ops, piece)
    except _Suspect:  # pragma: no cover - the slow path only yields values the extraction accepts
        raise AssertionError("the slow path let through a value the fast path rejects") from None
    out.update(newlines=newlines, lines=np.asarray(nums, dtype=np.int64), warnings=warnings, error=None)
    return out


# --- the canonical fast path: lines shaped exactly as the harness writes them, parsed with numpy --
#
# The harness writes every operation as compact JSON with its keys in one order:
#     {"time":N,"process":N,"type":"…","f":"…","value":{…}}
# For such lines of `send`, `poll` and `ack` (with their usual values), the columns are read
# straight from the bytes, a few numpy operations per field for all the lines of a block at once,
# without a Python object per operation. Every byte of such a line is accounted for: literals are
# compared exactly, numbers are plain digits (no sign, no leading zero, at most 16 of them) and
# strings are printable ASCII without escapes, so the line is valid JSON that the typed decoder
# reads to the same values. Any line that does not match exactly (another shape, key order or
# spacing, an escape, a non-ASCII id, a string process, the effects read, faults, an `index`, a
# blank line, ...) is left to the msgspec path (and its slow path and error messages), as a piece
# of its own between the matched runs. tests/test_history_reader.py checks that both paths agree.

BLOCK_BYTES = 4 << 20  # the fast path parses a chunk in blocks of about this many bytes
_CANON_MAX_RUNS = 16  # a block with more runs of other lines than this goes to msgspec whole
_CANON_MAX_ITEMS = 64  # ids of one ack read by the fast path; more: msgspec
_CANON_PAD = 512
_STR_W2 = 128  # strings longer than their first window get a second look this wide (longer: msgspec)
_CANON_F = ("send", "poll", "ack")  # codes 0, 1, 2: the first three of KNOWN_OPS
assert KNOWN_OPS[:3] == _CANON_F
_ALL_BYTES = _U64(0xFFFFFFFFFFFFFFFF)
_SHIFTS = np.array([8 * (8 - n) if 1 <= n <= 8 else 0 for n in range(17)], dtype=_U64)
_POW10U = 10 ** np.arange(17, dtype=_U64)


def _swar8(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The numbers written by the first n (1 to 8) bytes of each word, all ASCII digits (little
    endian: the first byte is the first digit), eight digits at a time in uint64 arithmetic."""
    x = (x - _U64(0x3030303030303030)) << _SHIFTS[n]  # right-align them (n = 0 or > 8: garbage)
    x = x * _U64(10) + (x >> _U64(8))
    return ((x & _U64(0x000000FF000000FF)) * _U64(100 + (1000000 << 32))
            + ((x >> _U64(16)) & _U64(0x000000FF000000FF)) * _U64(1 + (10000 << 32))) >> _U64(32)


_LITS: dict[bytes, list[tuple[int, np.uint64, np.uint64]]] = {}


def _lit_parts(s: bytes) -> list[tuple[int, np.uint64, np.uint64]]:
    """s as (offset, little-endian word, mask) for each 8 bytes."""
    parts = _LITS.get(s)
    if parts is None:
        parts = _LITS[s] = [(j, _U64(int.from_bytes(s[j:j + 8], "little")), _U64((1 << (8 * len(s[j:j + 8]))) - 1))
                            for j in range(0, len(s), 8)]
    return parts


_VOIDS: dict[int, np.dtype] = {}


def _void(w: int) -> np.dtype:
    d = _VOIDS.get(w)
    if d is None:
        d = _VOIDS[w] = np.dtype(f"V{w}")
    return d


class _Canon:
    """One chunk of lines, padded, and the views the fast path reads it through."""

    def __init__(self, pad: bytearray, n: int) -> None:
        """pad: n bytes of lines, then at least _CANON_PAD zero bytes."""
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

    def __init__(self, c: _Canon, p: np.ndarray, width: int) -> None:
        raw = c.view(width)[p]
        self.c, self.p, self.k = c, p, len(p)
        self.m = raw.view(np.uint8).reshape(self.k, width)
        self.w = raw.view("<u8").reshape(self.k, width // 8)

    def word(self, o: int) -> np.ndarray:
        """The 8 bytes at offset o as a little-endian word."""
        j, r = divmod(o, 8)
        if r == 0:
            return self.w[:, j]
        return (self.w[:, j] >> _U64(8 * r)) | (self.w[:, j + 1] << _U64(64 - 8 * r))

    def eq(self, o: int, s: bytes) -> np.ndarray:
        """Where the bytes at offset o are s."""
        ok = None
        for j, val, mask in _lit_parts(s):
            x = self.word(o + j)
            e = x == val if mask == _ALL_BYTES else (x & mask) == val
            ok = e if ok is None else ok & e
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


def _closes(c: _Canon, q: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Where the line ends at q with `}}`."""
    return (c.a[q] == 125) & (c.a[q + 1] == 125) & (q + 2 == ends)


def _entry_tail(c: _Canon, q: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def _canon_parse(c: _Canon, starts: np.ndarray, ends: np.ndarray) -> dict[str, Any]:
    """Parse the lines [starts, ends) (ends: their newlines) of a block; `good` marks the lines
    that match the canonical shapes exactly, the other columns are meaningful there only. By
    canon.c when it could be built (checkers/native.py), else by numpy: the same columns."""
    if native.available():
        return native.canon_parse(c.a, starts, ends)
    return _canon_parse_numpy(c, starts, ends)


def _canon_parse_numpy(c: _Canon, starts: np.ndarray, ends: np.ndarray) -> dict[str, Any]:
    """`_canon_parse` with numpy: a few operations per field for all the lines at once."""
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


def _pack_at(c: _Canon, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """`_pack` of strings inside a padded block."""
    width = max(1, -(-int(lens.max()) // 8)) if len(lens) else 1
    out = np.empty((len(lens), width), dtype=_U64)
    for j in range(width):
        out[:, j] = c.view(8)[starts + 8 * j].view("<u8") & _LOW_BYTES[np.clip(lens - 8 * j, 0, 8)]
    return out


def _canon_block(c: _Canon, b0: int, b1: int, ends: np.ndarray) -> list[tuple[int, int, dict[str, Any] | None]]:
    """The block [b0, b1) of whole lines (`ends`: its newlines) as consecutive byte ranges: runs of
    canonical lines with their columns (as `_decode_piece` makes them), and runs of other lines
    (None) for the msgspec path."""
    whole = [(b0, b1, None)]
    if not len(ends):
        return whole
    starts = np.empty(len(ends), dtype=np.int64)
    starts[0] = b0
    starts[1:] = ends[:-1] + 1
    r = _canon_parse(c, starts, ends)
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
    inv_words = _pack_at(c, s_at[s_inv], s_len[s_inv])
    m_words = _pack_at(c, m_at, m_len)
    inv_rows = s_rows[s_inv]
    tcode = r["tcode"].astype(np.int8)
    out: list[tuple[int, int, dict[str, Any] | None]] = []
    for a, b in pairwise(bounds):
        lo = int(starts[a])
        hi = int(ends[b - 1]) + 1
        if not good[a]:
            out.append((lo, hi, None))
            continue
        sa, sb = np.searchsorted(s_rows, (a, b)).tolist()
        ia, ib = np.searchsorted(inv_rows, (a, b)).tolist()
        ma, mb = np.searchsorted(m_rows, (a, b)).tolist()
        fc = r["fcode"][a:b]
        present = np.flatnonzero(np.bincount(fc, minlength=len(_CANON_F)))
        dense = np.zeros(len(_CANON_F), dtype=np.int64)
        dense[present] = np.arange(len(present))
        pc, pu = _int_codes(np.concatenate([s_part[sa:sb], m_part[ma:mb]]))
        ns = sb - sa
        out.append((lo, hi, {
            "n": b - a, "time": r["time"][a:b], "proc": r["proc"][a:b], "procs": None, "type": tcode[a:b],
            "f": dense[fc], "fnames": [_CANON_F[i] for i in present.tolist()], "index": None,
            "send": {"rows": s_rows[sa:sb] - a, "offset": s_off[sa:sb], "producer": None, "part": pc[:ns]},
            "msg": {"rows": m_rows[ma:mb] - a, "seq": m_seq[ma:mb], "offset": m_off[ma:mb],
                    "redelivered": m_red[ma:mb], "part": pc[ns:]},
            "parts": [None if v == -1 else v for v in pu], "effects": [], "faults": [],
            "ids": (inv_words[ia:ib], m_words[ma:mb], np.zeros((0, 1), dtype=_U64)),
            "newlines": b - a, "lines": None, "warnings": [], "error": None,
        }))
    if b1 > int(ends[-1]) + 1:  # a last line without a newline
        if out[-1][2] is None:
            out[-1] = (out[-1][0], b1, None)
        else:
            out.append((int(ends[-1]) + 1, b1, None))
    return out


def _blocks(data: bytes | bytearray, n: int, size: int, pos: int = 0):
    """Ranges of whole lines of about `size` bytes covering data[pos:n] (a longer line is a range)."""
    while pos < n:
        stop = pos + max(1, size)
        if stop >= n:
            stop = n
        else:
            cut = data.rfind(b"\n", pos, stop)
            if cut < 0:
                cut = data.find(b"\n", stop, n)
            stop = n if cut < 0 else cut + 1
        yield pos, stop
        pos = stop


def _decode_part(path: str, start: int, end: int, is_last: bool) -> dict[str, Any]:
    """Decode bytes [start, end) of the file: compact columns, or the first error (line relative).

    The bytes are read at once and taken in blocks (BLOCK_BYTES): the canonical lines of a block are
    parsed by the fast path (`_canon_block`), the other lines are decoded by msgspec in pieces of
    about PIECE_BYTES (see `_decode_piece`); the pieces' columns are then joined.
    """
    size = end - start
    buf = bytearray(size + _CANON_PAD)  # the chunk, then zeros: the fast path's windows stay inside
    with open(path, "rb") as fh:
        fh.seek(start)
        got = fh.readinto(memoryview(buf)[:size])
    if got != size:  # pragma: no cover - the file shrank under us
        del buf[got:size]
        size = got
    c = _Canon(buf, size)
    data = memoryview(buf)[:size]
    pieces = []
    line0 = 0
    for b0, b1 in _blocks(buf, size, BLOCK_BYTES):
        newlines = np.flatnonzero(c.a[b0:b1] == 10)
        newlines += b0
        for s0, s1, cols in _canon_block(c, b0, b1, newlines):
            if cols is not None:
                pieces.append((line0, cols))
                line0 += cols["newlines"]
                continue
            for a, b in _blocks(buf, s1, PIECE_BYTES, s0):
                piece, final = bytes(data[a:b]), b >= size
                part = _decode_piece(piece, is_last and final)
                if (part["error"] is not None and is_last and not final
                        and part["error"][1].startswith("not valid JSON") and not bytes(data[b:]).strip()):
                    # a bad last line followed by blank lines only is the file's truncated last line
                    part = _decode_piece(piece, True)
                    if part["error"] is None:
                        pieces.append((line0, part))
                        line0 += part["newlines"]
                        return _join(pieces, line0)
                if part["error"] is not None:
                    rel, msg = part["error"]
                    return {"error": (line0 + rel, msg)}
                pieces.append((line0, part))
                line0 += part["newlines"]
    return _join(pieces, line0)


def _join(pieces: list[tuple[int, dict[str, Any]]], newlines: int) -> dict[str, Any]:
    """One chunk's columns from its pieces' (rows, lines and codes made relative to the chunk)."""
    parts = [p for _, p in pieces]
    row0 = np.cumsum([0] + [p["n"] for p in parts]).tolist()
    out: dict[str, Any] = {"error": None, "newlines": newlines, "n": row0[-1], "warnings": []}

    def cat(arrays: list[np.ndarray], dtype: Any = np.int64) -> np.ndarray:
        return np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)

    def recode(values: str, *columns: Any, none: bool = False) -> list[Any]:
        """Codes of the pieces' columns in one table of values; the last item is the table."""
        table = _Table()
        maps = [table.map(p[values], none) for p in parts]
        return [cat([m[col(p)] for m, p in zip(maps, parts, strict=True)]) for col in columns] + [table.values]

    for first, p in pieces:
        out["warnings"] += [(first + rel, msg) for rel, msg in p["warnings"]]
    out["lines"] = None
    if any(p["lines"] is not None for p in parts):
        out["lines"] = cat([first + (np.arange(p["n"], dtype=np.int64) if p["lines"] is None else p["lines"])
                            for first, p in pieces])
    out["time"] = cat([p["time"] for p in parts])
    out["type"] = cat([p["type"] for p in parts], np.int8)
    if all(p["procs"] is None for p in parts):  # integer processes everywhere
        out["proc"], out["procs"] = _int_codes(cat([p["proc"] for p in parts]))
    else:
        for p in parts:
            if p["procs"] is None:
                p["proc"], p["procs"] = _int_codes(p["proc"])
        out["proc"], out["procs"] = recode("procs", lambda p: p["proc"])
    out["f"], out["fnames"] = recode("fnames", lambda p: p["f"])
    out["index"] = None
    if any(p["index"] is not None for p in parts):
        out["index"] = (cat([np.zeros(p["n"], bool) if p["index"] is None else p["index"][0] for p in parts], bool),
                        cat([np.full(p["n"], -1) if p["index"] is None else p["index"][1] for p in parts]))
    s_part, m_part, out["parts"] = recode("parts", lambda p: p["send"]["part"], lambda p: p["msg"]["part"],
                                          none=True)
    out["send"] = {"rows": cat([p["send"]["rows"] + r0 for p, r0 in zip(parts, row0, strict=False)]),
                   "offset": cat([p["send"]["offset"] for p in parts]), "part": s_part, "producer": None}
    if any(p["send"]["producer"] is not None for p in parts):
        out["send"]["producer"] = list(chain.from_iterable(
            p["send"]["producer"] or [None] * len(p["send"]["rows"]) for p in parts))
    out["msg"] = {"rows": cat([p["msg"]["rows"] + r0 for p, r0 in zip(parts, row0, strict=False)]),
                  "seq": cat([p["msg"]["seq"] for p in parts]), "offset": cat([p["msg"]["offset"] for p in parts]),
                  "redelivered": cat([p["msg"]["redelivered"] for p in parts], bool), "part": m_part}

    # ids: send invokes, then poll entries, then effects, of all pieces
    exact = any(isinstance(g, list) for p in parts for g in p["ids"])  # some id does not pack
    groups = [[p["ids"][j] for p in parts] for j in range(3)]
    if exact:
        strs = [g if isinstance(g, list) else _unpack(g) for grp in groups for g in grp]
        ids = _dedupe(None, list(chain.from_iterable(strs)))
    else:
        width = max((g.shape[1] for grp in groups for g in grp), default=1)
        ids = _dedupe(np.concatenate([_pad(g, width) for grp in groups for g in grp] or
                                     [np.zeros((0, 1), dtype=_U64)]), None)
    codes = ids.pop("codes")
    n_inv, n_msg = (sum(len(p["ids"][j]) for p in parts) for j in range(2))
    out["send"]["inv_id"] = codes[:n_inv]
    out["msg"]["id"] = codes[n_inv:n_inv + n_msg]
    out["ids"] = ids

    # effects and faults keep their rows
    effects, faults = [], []
    a = n_inv + n_msg
    for p, r0 in zip(parts, row0, strict=False):
        for r, counts in p["effects"]:
            c = codes[a:a + len(counts)]
            a += len(counts)
            if len(c) and np.bincount(c).max() > 1:  # an id given twice: the last one counts (as in a dict)
                by_id = np.sort((c << 32) | np.arange(len(c)))  # (a read has far fewer than 2**32 ids)
                last = np.r_[(by_id[1:] >> 32) != (by_id[:-1] >> 32), True]
                keep_rows = np.sort(((1 << 32) - 1) & by_id[last])
                c, counts = c[keep_rows], counts[keep_rows]
            effects.append((r + r0, c, counts))
        faults += [(r + r0, fault, nodes) for r, fault, nodes in p["faults"]]
    out["effects"], out["faults"] = effects, faults
    out["pairs"] = _local_pairs(out["proc"], out["type"], out["f"], out["procs"])
    _compact(out)
    return out


def _work(task: tuple[int, str, int, int, bool]) -> tuple[int, dict[str, Any]]:
    k, path, start, end, is_last = task
    return k, _decode_part(path, start, end, is_last)


def _bounds(path: Path, size: int) -> list[int]:
    """Chunk boundaries: about CHUNK_BYTES apart, each just after a newline."""
    bounds = [0]
    with open(path, "rb") as fh:
        while bounds[-1] < size:
            target = bounds[-1] + max(1, CHUNK_BYTES)
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


def _n_workers(size: int, n_tasks: int, threads: bool) -> int:
    if size < PARALLEL_MIN_BYTES or n_tasks < 2:
        return 1
    if not threads and ("fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1):
        return 1  # forking a process that runs other threads is not safe
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, n_tasks, MAX_WORKERS))


def _tasks(path: Path, size: int) -> list[tuple[int, str, int, int, bool]]:
    return [(k, str(path), a, b, b >= size) for k, (a, b) in enumerate(pairwise(_bounds(path, size)))]


def _mostly_canonical(path: Path, size: int) -> bool:
    """Whether the file is lines the C fast path takes: at least 9 in 10 of those in each of three
    samples (PROBE_BYTES at its start, middle and end).

    Then chunks are decoded by threads: canon.c and most numpy work run without the GIL, and
    threads share memory, so nothing is pickled, piped and copied back. Other lines go to msgspec,
    which holds the GIL: those files are decoded by processes.
    """
    if not native.available() or size < PARALLEL_MIN_BYTES:
        return False
    with open(path, "rb") as fh:
        for at in (0, size // 2, max(0, size - PROBE_BYTES)):
            fh.seek(at)
            sample = fh.read(PROBE_BYTES)
            first = 0 if at == 0 else sample.find(b"\n") + 1  # whole lines only
            cut = sample.rfind(b"\n")
            if (first <= 0 and at != 0) or cut < first:
                continue  # no whole line here (one long line: the effects read, say)
            a = np.frombuffer(sample[first:cut + 1] + bytes(native.LIT_PAD + 1), np.uint8)
            ends = np.flatnonzero(a[:cut + 1 - first] == 10)
            starts = np.r_[0, ends[:-1] + 1]
            if float(native.canon_parse(a, starts, ends)["good"].mean()) < 0.9:
                return False
    return True


def _decoded_parts(tasks: list[tuple[int, str, int, int, bool]], size: int, threads: bool = False):
    """Every chunk's columns as (chunk number, columns), the last chunk first (it often holds the
    biggest line, the final effects read), then as they come; big files are decoded by several
    threads (`threads`) or processes. Should a worker process die (killed for memory, say), the
    chunks it did not deliver are decoded in this process instead.
    """
    order = tasks[-1:] + tasks[:-1]
    workers = _n_workers(size, len(tasks), threads)
    if workers <= 1:
        for t in order:
            yield _work(t)
        return
    done: set[int] = set()
    if threads:
        pool: Executor = ThreadPoolExecutor(workers, thread_name_prefix="onceproof-read")
    else:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=gc.disable)
    try:
        futures = [pool.submit(_work, t) for t in order]
        try:
            for fut in as_completed(futures):
                k, part = fut.result()
                done.add(k)
                yield k, part
        except BrokenProcessPool:
            for t in order:
                if t[0] not in done:
                    yield _work(t)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _read_keys(path: str, spans: list[tuple[int, int, bool]], stamp: tuple[int, int]) -> tuple[list, list]:
    """Keys of send operations and of poll entries (the ones the reader keeps), in file order."""
    st = os.stat(path)
    if (st.st_size, st.st_mtime_ns) != stamp:
        raise HistoryError(f"{path}: the file changed since it was read (keys are read from it on demand)")
    dec = msgspec.json.Decoder()
    send: list[Any] = []
    msg: list[Any] = []
    with open(path, "rb") as fh:
        for start, end, _ in spans:
            fh.seek(start)
            for raw in _lines(fh.read(end - start)):
                if not raw.strip():
                    continue
                try:
                    obj = dec.decode(raw)
                except msgspec.DecodeError:  # the truncated last line, which the reader ignored too
                    continue
                f, typ, v = obj.get("f"), obj.get("type"), obj.get("value")
                if f == "send":
                    send.append(v.get("key") if isinstance(v, dict) else None)
                elif f in ENTRY_OPS and typ != "invoke" and isinstance(v, dict) and "messages" in v:
                    try:
                        _check_value(f, "ok", v)  # entries of fail/info polls are kept only when well-formed
                    except ValueError:
                        continue
                    msg += [m.get("key") for m in v["messages"]]
    return send, msg


# --- merging the chunks ---------------------------------------------------------------------------


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


class _Assembler:
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
        self.procs, self.fs, self.parts = _Table(), _Table(), _Table()
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

    def add_ids(self, p: dict[str, Any]) -> None:
        """Give a chunk's distinct ids their global codes (the chunk is added later, by `add`)."""
        if p["error"] is None:
            p["_gids"] = self.ids.add(p["ids"])

    def add(self, p: dict[str, Any]) -> None:
        """Add a chunk (after `add_ids`), in file order."""
        if p["error"] is not None:
            rel, msg = p["error"]
            raise HistoryError(f"{self.name}:{self.line0 + rel}: {msg}")
        n, r0 = p["n"], self.n
        ids = p.pop("_gids")
        start, end, _ = self.spans[len(self.lines)]
        self.done += end - start
        expect = 1.1 * self.size / self.done  # buffers grow to the expected end at once

        def put(name: str, x: np.ndarray) -> None:
            self.cols[name].append(x, expect)

        for rel, msg in p["warnings"]:
            self.warnings.append(f"{self.name}:{self.line0 + rel}: {msg}")
        self.lines.append((self.line0, n, p["lines"]))
        if p["index"] is not None:
            self.index.append((r0, n, p["index"]))
        procs = self.procs.map(p["procs"])
        put("time", p["time"])
        put("type", p["type"])
        put("proc", procs[p["proc"]])
        put("f", self.fs.map(p["fnames"])[p["f"]])
        parts = np.append(self.parts.map(p["parts"]), -1)  # code -1 (no partition) stays -1
        s, m = p["send"], p["msg"]
        put("s_row", np.add(s["rows"], r0, dtype=np.int64))
        sid = np.full(len(s["rows"]), -1, dtype=np.int64)
        sid[p["type"][s["rows"]] == 0] = ids[s["inv_id"]]
        put("s_id", sid)
        put("s_part", parts[s["part"]])
        put("s_offset", s["offset"])
        if s["producer"] is not None:
            self.producers.append((self.n_sends, s["producer"]))
        self.n_sends += len(s["rows"])
        put("m_op", np.add(m["rows"], r0, dtype=np.int64))
        put("m_seq", m["seq"])
        put("m_id", ids[m["id"]])
        put("m_part", parts[m["part"]])
        put("m_offset", m["offset"])
        put("m_red", m["redelivered"])
        for r, codes, counts in p["effects"]:
            self.effects.append((r + r0, ids[codes], counts))
        self.faults += [(r + r0, fault, nodes) for r, fault, nodes in p["faults"]]
        self._pairs(p["pairs"], procs, r0, put)
        self.n += n
        self.line0 += p["newlines"]

    def _pairs(self, pr: dict[str, Any], procs: np.ndarray, r0: int, put: Any) -> None:
        """Take the chunk's pairs; pair its first completions with the open invokes of earlier chunks."""
        pair = pr["pair"].astype(np.int64)
        pair[pair >= 0] += r0
        put("pair", pair)
        if pr["bad_f"] >= 0 and self.bad_f < 0:
            self.bad_f = pr["bad_f"] + r0
        k = len(self.procs.values)
        if k > len(self.open_row):
            self.open_row = np.concatenate([self.open_row, np.full(k - len(self.open_row), -1, dtype=np.int64)])
            self.irregular = np.concatenate([self.irregular, np.zeros(k - len(self.irregular), dtype=bool)])
        g = procs[pr["proc"]]
        opened = self.open_row[g]
        head_comp = ~pr["head_inv"]
        join = head_comp & (opened >= 0)
        if join.any():
            self.cross.append((opened[join], pr["head"][join].astype(np.int64) + r0))
        # a first completion with nothing open, or a first invoke while one is open: irregular
        self.irregular[g[(head_comp & (opened < 0)) | (~head_comp & (opened >= 0)) | pr["irregular"]]] = True
        self.open_row[g] = np.where(pr["tail_inv"], pr["tail"].astype(np.int64) + r0, -1)

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
                producers[first:first + len(prods)] = _objects(prods)
        msg = {"op": c["m_op"], "seq": c["m_seq"], "id": c["m_id"], "part": c["m_part"],
               "offset": c["m_offset"], "redelivered": c["m_red"]}
        msg["key"] = np.arange(len(msg["op"]), dtype=np.int64)  # position among entry keys, file order
        effects, faults = self.effects, self.faults

        given = None
        reordered = False
        if self.index:
            has = np.zeros(n, dtype=bool)
            given = line - 1
            for r0, k, (h, idx) in self.index:
                has[r0:r0 + k] = h
                given[r0:r0 + k] = np.where(h, idx, given[r0:r0 + k])
            if not bool(np.all(given[1:] >= given[:-1])):  # put the operations in index order
                reordered = True
                order = stable_argsort(given)
                inv = np.empty(n, dtype=np.int64)
                inv[order] = np.arange(n)
                line, time, tcode, proc, fcode, given = (a[order] for a in (line, time, tcode, proc, fcode, given))
                # process codes follow first appearance in history order, as they do without an index
                first = np.full(len(self.procs.values), n, dtype=np.int64)
                np.minimum.at(first, proc, np.arange(n))
                rank = np.argsort(np.argsort(first, kind="stable"), kind="stable")
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
        h.pair = _pair(h) if reordered else self._finish_pairs(h)
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
            _pair_slow(h, rows, pair)
            got = rows[pair[rows] >= 0]
            wrong = got[h.fcode[got] != h.fcode[pair[got]]]
            if len(wrong):
                first_bad = min(first_bad, int(wrong.min()))
        _raise_bad_f(h, pair, first_bad)
        return pair


# --- the columnar history ------------------------------------------------------------------------


# (plain classes, not dataclasses: generating dataclass methods costs import time on every run)


class SendCols:
    """One entry per send invoke, in history order."""

    __slots__ = (
        "complete_line",  # -1 when open
        "complete_time",  # -1 when open
        "id",  # id code (History.id_table)
        "invoke_line",
        "invoke_time",
        "offset",  # offset of the completion, -1 none
        "outcome",  # code into OUTCOMES: 0 open, 1 ok, 2 fail, 3 info
        "part",  # partition code of the completion (History.partitions), -1 none
        "proc",  # process code of the invoke
        "producer",  # `value.producer` of the invoke (str or None); None when no send has one
        "row",  # row of the invoke
    )

    def __init__(self, **cols: Any) -> None:
        for k, v in cols.items():
            setattr(self, k, v)


class MessageCols:
    """One entry per message entry of poll completions (or only of ok polls: the deliveries)."""

    __slots__ = (
        "id",  # id code
        "key",  # position among the keys of poll entries in file order
        "line",
        "offset",  # -1 none
        "op",  # row of the poll completion
        "part",  # partition code, -1 none
        "proc",
        "redelivered",
        "seq",  # position in the poll
        "time",
        "type",  # type code of the poll
    )

    def __init__(self, **cols: Any) -> None:
        for k, v in cols.items():
            setattr(self, k, v)

    def __len__(self) -> int:
        return len(self.op)

    def take(self, sel: np.ndarray) -> MessageCols:
        """The entries where `sel` (a boolean mask) is true."""
        if bool(sel.all()):
            return self
        return MessageCols(**{k: getattr(self, k)[sel] for k in self.__slots__})


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
        return _objects(self.id_table.strings(np.arange(self.n_ids)))

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
        send, msg = _read_keys(self.source, self._spans, self._stamp)
        return _objects(send), _objects(msg)

    @staticmethod
    def _obj(table: list[Any] | np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Values of codes (-1 -> None) as an object array."""
        return _objects([*table, None])[codes]

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


def stable_argsort(keys: np.ndarray, with_sorted: bool = False) -> Any:
    """np.argsort(keys, kind="stable") for int64 keys, as one sort of packed (key, position) pairs
    when they fit in 63 bits (much faster than an argsort); with `with_sorted`, (order, keys[order])."""
    n = len(keys)
    lo = int(keys.min()) if n else 0
    bits = max(1, n.bit_length())
    if n and (int(keys.max()) - lo).bit_length() + bits <= 63:
        packed = (keys - lo) << bits
        packed |= np.arange(n, dtype=np.int64)
        packed.sort()
        order = packed & ((1 << bits) - 1)
        if with_sorted:
            packed >>= bits
            packed += lo
            return order, packed
        return order
    order = np.argsort(keys, kind="stable")
    return (order, keys[order]) if with_sorted else order


def _pandas():
    import pandas as pd

    return pd


def _objects(values: list[Any]) -> np.ndarray:
    """An object array of `values` (lists stay elements; they are not turned into dimensions)."""
    return np.fromiter(values, dtype=object, count=len(values))


def _freeze(x: Any) -> Any:
    if isinstance(x, list):
        return tuple(_freeze(i) for i in x)
    if isinstance(x, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in x.items()))
    return x


# --- pairing --------------------------------------------------------------------------------------


def _pair(h: History) -> np.ndarray:
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
        slow = rows[irr]
        _pair_slow(h, slow, pair)
        got = slow[pair[slow] >= 0]
        wrong = got[h.fcode[got] != h.fcode[pair[got]]]
        if len(wrong):
            first_bad = min(first_bad, int(wrong.min()))
    _raise_bad_f(h, pair, first_bad)
    return pair


def _raise_bad_f(h: History, pair: np.ndarray, first_bad: int) -> None:
    """The error for the first pair (in history order) of two different operations, if any."""
    if first_bad < len(h):
        r = first_bad
        a, b = (r, int(pair[r])) if h.tcode[r] != 0 else (int(pair[r]), r)
        fa, fb = h.fnames[h.fcode[a]], h.fnames[h.fcode[b]]
        raise HistoryError(f"{h.source}:{h.line[a]}: completion of '{fa}' matches an open invoke of "
                           f"'{fb}' (line {h.line[b]}) of the same process")


def _pair_slow(h: History, rows: np.ndarray, pair: np.ndarray) -> None:
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


# --- entry points ---------------------------------------------------------------------------------


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
        if st.st_size >= PARALLEL_MIN_BYTES:
            _keep_freed_memory()
        threads = _mostly_canonical(p, st.st_size)  # (builds or loads canon.c before any fork)
        tasks = _tasks(p, st.st_size)
        asm = _Assembler(str(p), [t[2:] for t in tasks], (st.st_size, st.st_mtime_ns))
        parts = _decoded_parts(tasks, st.st_size, threads)
        # ids take their codes in a fixed order whatever the timing: the last chunk's first (it is
        # decoded first, so its many effects ids are merged early, not at the end), then file order
        id_order = [len(tasks) - 1, *range(len(tasks) - 1)]
        pending: dict[int, dict[str, Any]] = {}
        with_ids: set[int] = set()
        next_ids = next_add = 0
        try:
            for k, part in parts:
                pending[k] = part
                while next_ids < len(id_order) and id_order[next_ids] in pending:
                    asm.add_ids(pending[id_order[next_ids]])
                    with_ids.add(id_order[next_ids])
                    next_ids += 1
                while next_add in with_ids:
                    asm.add(pending.pop(next_add))
                    next_add += 1
        finally:
            parts.close()
        return asm.finish()
    finally:
        if was_enabled:
            gc.enable()
