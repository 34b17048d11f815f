"""Log-level checks on partitioned, offset-addressed systems (Kafka and friends).

These follow the definitions of Jepsen's Kafka queue checker
(`jepsen.tests.kafka`), restricted to what a contract-v1 history records:

- **inconsistent offsets**: one (partition, offset) position holds two or more
  different ids;
- **log duplicates**: one id sits at more than one (partition, offset) position.
  This is duplication *in the log* (the system wrote it twice), not a consumer
  seeing the same record again;
- **nonmonotonic polls**: a consumer's next delivered offset on a partition is at
  or before the previous one;
- **skipping polls**: a consumer's next delivered offset on a partition jumps over
  offsets that are known to exist in the log.

The log is built from `ok` sends and from deliveries (entries of `ok` polls) that
carry both a partition and an offset. Consumer positions are tracked per
(process, partition), in history order, message by message; an `assign` or
`subscribe` operation of the process (any type: invoke or completion) starts a
fresh tracking epoch for all its partitions.

Everything is computed with numpy/pandas array operations; Python loops only run
over the (capped) anomalies that go into the report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from checkers.history import History

GUARANTEES = ("at-most-once", "at-least-once", "exactly-once")
EXAMPLES = 5  # skipped offsets listed per skip
RESET_OPS = ("assign", "subscribe")
KINDS = ("inconsistent_offsets", "duplicates", "nonmonotonic", "skips")


def _empty(applicable: bool) -> dict:
    out: dict[str, Any] = {"applicable": applicable, "valid": True, "counts": dict.fromkeys(KINDS, 0)}
    for k in KINDS:
        out[k] = []
    return out


def _py(x: Any) -> Any:
    """A plain Python value for JSON (numpy scalars become int/str/bool)."""
    return x.item() if isinstance(x, np.generic) else x


def _partition_ranks(uniques: np.ndarray) -> np.ndarray:
    """Rank of each distinct partition in a deterministic order: integers first (numeric), then strings."""
    keys = [(1, 0, p) if isinstance(p, str) else (0, int(p), "") for p in uniques.tolist()]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    rank = np.empty(len(keys), dtype=np.int64)
    rank[order] = np.arange(len(keys), dtype=np.int64)
    return rank


def _known(part: np.ndarray, off: np.ndarray) -> np.ndarray:
    """Mask of entries with a known partition (not None) and offset (>= 0)."""
    return np.not_equal(part, None) & (off >= 0)


def _group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Mask of the first element of each run of equal keys."""
    new = np.ones(len(sorted_keys), dtype=bool)
    new[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return new


def check_log(h: History, guarantee: str = "exactly-once", limit: int = 1000) -> dict:
    """Check the partitioned log recorded by a history.

    Returns a JSON-serialisable dict::

        {"applicable": bool, "valid": bool,
         "counts": {"inconsistent_offsets": n, "duplicates": n, "nonmonotonic": n, "skips": n},
         "inconsistent_offsets": [{"partition", "offset", "ids"}],
         "duplicates": [{"id", "positions": [[partition, offset], ...]}],
         "nonmonotonic": [{"process", "partition", "prev_offset", "offset", "line", "within_poll"}],
         "skips": [{"process", "partition", "prev_offset", "offset", "line", "within_poll",
                    "skipped", "examples"}]}

    `applicable` is False when no `ok` send and no delivery carries both a
    partition and an offset; then `valid` is True and everything else is empty.
    Lists hold at most `limit` entries; `counts` are always complete. Positions
    are sorted by partition (integers before strings) then offset, duplicates by
    id, polls in history order.

    `valid` is False when some position holds two ids (inconsistent offsets), and,
    for `at-most-once` and `exactly-once`, when some id sits at two positions (a
    duplicate in the log is delivered twice to any reader of the whole log).

    Nonmonotonic and skipping polls are reported but never fail `valid`:

    - a consumer may legally rewind: after a rebalance, a crash or a failed commit
      it resumes from its last committed offset, and the history does not record
      every rebalance (only explicit assign/subscribe operations reset tracking);
    - a skip only matters if the skipped messages are never delivered, and whether
      acknowledged messages were lost is judged by the delivery checker.

    `within_poll` tells whether the two offsets came from the same poll (True) or
    from two successive polls of the process (False). `line` is the line of the
    poll holding the later offset. A skip's `skipped` counts the offsets strictly
    between `prev_offset` and `offset` known to exist in the log (gaps with no
    known offset, such as transaction markers, are not skips); `examples` lists
    the first few of them.
    """
    if guarantee not in GUARANTEES:
        raise ValueError(f"unknown guarantee {guarantee!r}; expected one of {', '.join(GUARANTEES)}")
    limit = max(0, int(limit))

    # --- the log: (partition, offset, id) from ok sends and deliveries -------------------------
    s = h.sends
    s_part = s["partition"].to_numpy(dtype=object)
    s_off = s["offset"].to_numpy().astype(np.int64, copy=False)
    s_ok = _known(s_part, s_off) & (s["outcome"].to_numpy(dtype=object) == "ok")

    d = h.deliveries
    d_part = d["partition"].to_numpy(dtype=object)
    d_off = d["offset"].to_numpy().astype(np.int64, copy=False)
    d_ok = _known(d_part, d_off)

    if not s_ok.any() and not d_ok.any():
        return _empty(False)

    n_s = int(s_ok.sum())
    off = np.concatenate([s_off[s_ok], d_off[d_ok]])
    ids = np.concatenate([s["id"].to_numpy(dtype=object)[s_ok], d["id"].to_numpy(dtype=object)[d_ok]])
    pcode, p_uniques = pd.factorize(np.concatenate([s_part[s_ok], d_part[d_ok]]))
    p_uniques = np.asarray(p_uniques, dtype=object)
    prank = _partition_ranks(p_uniques)
    part_of_rank = p_uniques[np.argsort(prank)]
    pr = prank[pcode]

    # one int64 key per position, ordered by (partition rank, offset); offsets are replaced by
    # their rank when the range is too wide for the product to fit
    lo_off, hi_off = int(off.min()), int(off.max())
    span = hi_off - lo_off + 1
    if len(p_uniques) * span < 2**62:
        offk = off - lo_off
    else:
        _, offk = np.unique(off, return_inverse=True)
        span = int(offk.max()) + 1
    pos = pr * span + offk

    order = np.argsort(pos, kind="stable")
    pos_s, ids_s = pos[order], ids[order]
    new = _group_starts(pos_s)
    starts = np.flatnonzero(new)
    group = np.cumsum(new) - 1  # position index of each sorted entry
    known_pos, known_off = pos_s[starts], off[order[starts]]
    known_pr = pr[order[starts]]
    n_pos = len(starts)
    ends = np.append(starts[1:], len(pos_s))

    # inconsistent offsets: positions where two neighbouring entries (in sorted order) differ in id
    differs = np.flatnonzero((ids_s[1:] != ids_s[:-1]) & ~new[1:]) + 1
    bad = np.zeros(n_pos, dtype=bool)
    bad[group[differs]] = True
    bad_pos = np.flatnonzero(bad)
    inconsistent = []
    for k in bad_pos[:limit].tolist():
        inconsistent.append({"partition": _py(part_of_rank[known_pr[k]]), "offset": int(known_off[k]),
                             "ids": sorted(set(ids_s[starts[k]:ends[k]].tolist()))})

    # distinct (position, id) pairs: one per consistent position, deduplicated at the bad ones
    t_pos = np.flatnonzero(~bad)
    t_id = ids_s[starts[t_pos]]
    if len(bad_pos):
        in_bad = np.flatnonzero(bad[group])
        bcode, _ = pd.factorize(ids_s[in_bad])
        bkey = group[in_bad] * (int(bcode.max()) + 1) + bcode
        _, first = np.unique(bkey, return_index=True)
        t_pos = np.concatenate([t_pos, group[in_bad[first]]])
        t_id = np.concatenate([t_id, ids_s[in_bad[first]]])

    # log duplicates: ids at more than one position
    icode, i_uniques = pd.factorize(t_id)
    per_id = np.bincount(icode, minlength=len(i_uniques))
    dup_codes = np.flatnonzero(per_id > 1)
    duplicates = []
    if len(dup_codes):
        dup_ids = np.asarray(i_uniques, dtype=object)[dup_codes]
        shown = dup_codes[np.argsort(dup_ids.astype(str), kind="stable")[:limit]]
        sel = np.flatnonzero(np.isin(icode, shown))
        sel = sel[np.lexsort((t_pos[sel], icode[sel]))]
        sel_codes = icode[sel]
        for c in shown.tolist():
            a, b = np.searchsorted(sel_codes, c, side="left"), np.searchsorted(sel_codes, c, side="right")
            positions = [[_py(part_of_rank[known_pr[k]]), int(known_off[k])]
                         for k in t_pos[sel[a:b]].tolist()]
            duplicates.append({"id": _py(i_uniques[c]), "positions": positions})

    # --- consumer tracking: successive deliveries per (process, epoch, partition) --------------
    nonmonotonic: list[dict] = []
    skips: list[dict] = []
    n_nonmono = n_skips = 0
    if d_ok.any():
        op = d["op"].to_numpy().astype(np.int64, copy=False)[d_ok]
        proc = d["proc"].to_numpy().astype(np.int64, copy=False)[d_ok]
        d_offv, d_pr, d_pos = off[n_s:], pr[n_s:], pos[n_s:]

        # epoch: number of assign/subscribe ops of the same process before the poll
        ops = h.ops
        n_ops = len(ops) + 1
        reset = np.flatnonzero(ops["f"].isin(RESET_OPS).to_numpy())
        reset_key = np.sort(ops["proc"].to_numpy().astype(np.int64)[reset] * n_ops + reset)
        epoch = np.searchsorted(reset_key, proc * n_ops + op)
        stream, _ = pd.factorize(proc * (len(reset_key) + 1) + epoch)
        gkey = stream.astype(np.int64) * len(p_uniques) + d_pr

        # deliveries are in history order (poll row, then position in the poll): a stable sort
        # by stream keeps that order within each (process, epoch, partition)
        dorder = np.argsort(gkey, kind="stable")
        g = gkey[dorder]
        cur = dorder[1:][g[1:] == g[:-1]]
        prev = dorder[:-1][g[1:] == g[:-1]]
        o_cur, o_prev = d_offv[cur], d_offv[prev]

        nm = o_cur <= o_prev
        jump = np.flatnonzero(o_cur > o_prev + 1)
        first_between = np.searchsorted(known_pos, d_pos[prev[jump]], side="right")
        skipped = np.searchsorted(known_pos, d_pos[cur[jump]], side="left") - first_between
        sk = jump[skipped > 0]
        sk_first = first_between[skipped > 0]
        sk_n = skipped[skipped > 0]

        procs = d["process"].to_numpy(dtype=object)[d_ok]
        lines = d["line"].to_numpy()[d_ok]

        def event(i: int, j: int) -> dict:
            return {"process": _py(procs[i]), "partition": _py(part_of_rank[d_pr[i]]),
                    "prev_offset": int(d_offv[j]), "offset": int(d_offv[i]), "line": int(lines[i]),
                    "within_poll": bool(op[i] == op[j])}

        nm_at = np.flatnonzero(nm)
        n_nonmono = len(nm_at)
        for k in nm_at[np.argsort(cur[nm_at], kind="stable")[:limit]].tolist():
            nonmonotonic.append(event(int(cur[k]), int(prev[k])))

        n_skips = len(sk)
        for k in np.argsort(cur[sk], kind="stable")[:limit].tolist():
            ev = event(int(cur[sk[k]]), int(prev[sk[k]]))
            a, n = int(sk_first[k]), int(sk_n[k])
            ev["skipped"] = n
            ev["examples"] = [int(x) for x in known_off[a:a + min(EXAMPLES, n)].tolist()]
            skips.append(ev)

    counts = {"inconsistent_offsets": len(bad_pos), "duplicates": len(dup_codes),
              "nonmonotonic": n_nonmono, "skips": n_skips}
    valid = counts["inconsistent_offsets"] == 0
    if guarantee in ("at-most-once", "exactly-once"):
        valid = valid and counts["duplicates"] == 0
    return {"applicable": True, "valid": bool(valid), "counts": {k: int(v) for k, v in counts.items()},
            "inconsistent_offsets": inconsistent, "duplicates": duplicates,
            "nonmonotonic": nonmonotonic, "skips": skips}
