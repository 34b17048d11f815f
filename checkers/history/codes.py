"""Small integer codes for values: a chunk codes its processes, operation names and partitions, the
parent maps the chunks' codes into one table (`Table`), and numpy does the rest on integers."""

from __future__ import annotations

from itertools import count
from typing import Any

import numpy as np

from checkers.history.contract import KNOWN_OPS, AnyOp, Op


class Table:
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


def codes_of(values: list[Any]) -> tuple[np.ndarray, list[Any]]:
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


def op_codes(ops: list[Op] | list[AnyOp]) -> tuple[np.ndarray, list[str]]:
    """Codes and distinct names of the operations (`codes_of`, faster for the usual names)."""
    try:
        codes = np.fromiter([_F_CODE[o.f] for o in ops], np.int64, len(ops))
    except KeyError:  # an operation of another name
        return codes_of([o.f for o in ops])
    return known_codes(codes, KNOWN_OPS)


def known_codes(codes: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    """Codes into `names` made dense: codes into the names present, and those names."""
    present = np.flatnonzero(np.bincount(codes, minlength=len(names)))
    dense = np.zeros(len(names), dtype=np.int64)
    dense[present] = np.arange(len(present))
    return dense[codes], [names[i] for i in present.tolist()]


def int_codes(values: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """`codes_of` of integers, with numpy: codes in first-seen order and the distinct values."""
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


def ints(values: list[Any]) -> np.ndarray:
    """int64 array of optional integers (None -> -1)."""
    try:
        return np.fromiter(values, np.int64, len(values))
    except TypeError:
        return np.fromiter([-1 if v is None else v for v in values], np.int64, len(values))


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


