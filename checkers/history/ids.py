"""Message ids as numbers: NUL-free UTF-8 packed into 64-bit words, hashed, compared word by word.

Ids are most of a history's bytes; keeping them out of Python strings is most of the reader's speed.
A chunk deduplicates its ids with numpy (equal hashes are checked word by word), so only small tables
travel to the parent; `IdTable` gives every id of the history one integer code.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

MAX_ID_WORDS = 32  # ids longer than 256 bytes (or holding a NUL) are deduplicated as Python strings
U64 = np.uint64


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer (a bijection of uint64)."""
    z = (z ^ (z >> U64(30))) * U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> U64(27))) * U64(0x94D049BB133111EB)
    return z ^ (z >> U64(31))


_WEIGHTS = _mix((np.arange(MAX_ID_WORDS, dtype=U64) + U64(1)) * U64(0x9E3779B97F4A7C15))


def starts_of(lens: np.ndarray) -> np.ndarray:
    return np.cumsum(lens) - lens


LOW_BYTES = np.array([(1 << (8 * i)) - 1 for i in range(8)] + [(1 << 64) - 1], dtype=U64)


def pack_strings(strs: list[str]) -> np.ndarray | None:
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
    return pack(raw, starts, lens)


def pack(raw: bytes, starts: np.ndarray, lens: np.ndarray) -> np.ndarray | None:
    """The byte strings raw[start:start + len] (NUL-free) as zero-padded rows of uint64 words."""
    width = max(1, -(-int(lens.max()) // 8)) if len(lens) else 1
    if width > MAX_ID_WORDS:
        return None
    # the 8 bytes at every offset of the blob, as one unaligned uint64 view (padded: no read overruns)
    padded = raw + bytes(8 * width)
    return gather(np.ndarray((len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,)), starts, lens)


def gather(at: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """The strings at `starts` with `lens` as zero-padded rows of uint64 words; `at` is the 8 bytes at
    every offset of a buffer with enough zeros after its last string, as one unaligned uint64 view."""
    width = max(1, -(-int(lens.max()) // 8)) if len(lens) else 1
    out = np.empty((len(lens), width), dtype=U64)
    for j in range(width):
        out[:, j] = at[starts + 8 * j] & LOW_BYTES[np.clip(lens - 8 * j, 0, 8)]
    return out


def hash_words(w: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row, the same whatever the padding (zero words add nothing)."""
    h = np.zeros(len(w), dtype=U64)
    for j in range(w.shape[1]):
        col = w[:, j]
        h += np.where(col != 0, _mix(col ^ _WEIGHTS[j]), U64(0))
    return _mix(h)


def pad(w: np.ndarray, width: int) -> np.ndarray:
    if w.shape[1] == width:
        return w
    out = np.zeros((len(w), width), dtype=U64)
    out[:, : w.shape[1]] = w
    return out


def _hash_groupings(h: np.ndarray):
    """(order, the keys in that order) that put equal hashes together: first by the hashes' top bits
    (one sort of the hash with its low bits replaced by the position: fast), then, should two ids
    share those bits (likely in a big chunk: about n**2 / 2**(65 - bits) pairs), by the whole hash."""
    n = len(h)
    bits = U64(max(1, n.bit_length()))
    key = (h >> bits) << bits
    key |= np.arange(n, dtype=U64)
    key.sort()
    yield (key & ((U64(1) << bits) - U64(1))).astype(np.int64), key >> bits
    order = np.argsort(h, kind="stable")
    yield order, h[order]


class DistinctIds(msgspec.Struct, kw_only=True, gc=False):
    """The distinct ids of a chunk (made by `dedupe`).

    Normally `words` (one row per distinct id, sorted by `hash`, hashes distinct). Ids that do not
    pack into words, or two different ids sharing a hash, fall back to Python strings: `exact`.
    """

    words: np.ndarray | None = None
    hash: np.ndarray | None = None
    exact: list[str] | None = None


def dedupe(words: np.ndarray | None, strs: list[str] | None) -> tuple[DistinctIds, np.ndarray]:
    """The distinct ids among occurrences (given as packed words, or as strings when they do not pack),
    and each occurrence's code among them."""
    if words is not None:
        n = len(words)
        h = hash_words(words)
        for order, keys in _hash_groupings(h):
            first = np.ones(n, dtype=bool)
            np.not_equal(keys[1:], keys[:-1], out=first[1:])
            codes = np.empty(n, dtype=np.int64)
            codes[order] = np.cumsum(first) - 1
            reps = order[first]
            # every id equals its group's first: then distinct keys, so distinct and sorted hashes
            if np.array_equal(words, words[reps][codes]):
                return DistinctIds(words=words[reps], hash=h[reps]), codes
        strs = unpack(words)
    assert strs is not None
    d = dict.fromkeys(strs)
    for i, k in enumerate(d):
        d[k] = i
    return DistinctIds(exact=list(d)), np.fromiter(map(d.__getitem__, strs), np.int64, len(strs))


def unpack(words: np.ndarray) -> list[str]:
    """The strings packed by `pack_strings`."""
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
        self._hashes = np.zeros(0, dtype=U64)  # sorted
        self._hcodes = np.zeros(0, dtype=np.int64)  # code of each hash
        self._words = np.zeros((1 << 10, 1), dtype=U64)  # row = code
        self._exact: dict[str, int] | None = None
        self._strs: list[str] = []  # exact mode: the ids by code

    def __len__(self) -> int:
        return self.n

    def _append(self, w: np.ndarray) -> None:
        k, width = w.shape
        if width > self._words.shape[1]:
            self._words = pad(self._words, width)
        w = pad(w, self._words.shape[1])
        if self.n + k > len(self._words):
            grown = np.empty((max(self.n + k, 2 * len(self._words)), self._words.shape[1]), dtype=U64)
            grown[: self.n] = self._words[: self.n]
            self._words = grown
        self._words[self.n:self.n + k] = w
        self.n += k

    def add(self, part: DistinctIds) -> np.ndarray:
        """Global codes of a chunk's distinct ids."""
        if part.exact is not None:
            return self._add_exact(part.exact)
        words, hashes = part.words, part.hash
        assert words is not None and hashes is not None
        if self._exact is not None:
            return self._add_exact(unpack(words))
        k = len(words)
        pos = np.searchsorted(self._hashes, hashes)
        found = pos < len(self._hashes)
        found[found] = self._hashes[pos[found]] == hashes[found]
        codes = np.empty(k, dtype=np.int64)
        old = self._hcodes[pos[found]]
        if len(old):
            width = max(words.shape[1], self._words.shape[1])
            if not np.array_equal(pad(self._words[old], width), pad(words[found], width)):
                return self._add_exact(unpack(words))  # a hash shared by two ids: go exact
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
            hs, hc = np.empty(len(keep), dtype=U64), np.empty(len(keep), dtype=np.int64)
            hs[at], hc[at] = hashes[new], fresh
            hs[keep], hc[keep] = self._hashes, self._hcodes
            self._hashes, self._hcodes = hs, hc
        return codes

    def _add_exact(self, strs: list[str]) -> np.ndarray:
        if self._exact is None:
            self._strs = unpack(self._words[: self.n])
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
        return unpack(self._words[codes])

    def string(self, code: int) -> str:
        return self.strings([code])[0]


