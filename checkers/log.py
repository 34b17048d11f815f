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

The log is built from `ok` sends, from deliveries (entries of `ok` polls) and from
the entries of an `ok` `final-read` (onceproof's extension: a reader of every
partition from the beginning to the end offsets after the run) that carry both a
partition and an offset. With a final read, `final_read` also says which
acknowledged ids it did not find anywhere in the log. Consumer positions are tracked per
(process, partition), in history order, message by message; an `assign` or
`subscribe` operation of the process (any type: invoke or completion) starts a
fresh tracking epoch for all its partitions.

Everything is computed with numpy array operations on integer codes; Python loops only run
over the (capped) anomalies that go into the report.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from checkers.history import History, stable_argsort
from checkers.vocabulary import LOG_KINDS, check_guarantee, id_order

EXAMPLES = 5  # skipped offsets listed per skip
RESET_OPS = ("assign", "subscribe")
KINDS = LOG_KINDS
_OK = 1  # outcome code of an ok send


def _empty(applicable: bool) -> dict:
    out: dict[str, Any] = {"applicable": applicable, "valid": True, "counts": dict.fromkeys(KINDS, 0)}
    for k in KINDS:
        out[k] = []
    out["final_read"] = None
    return out


def _partition_ranks(uniques: list[Any]) -> np.ndarray:
    """Rank of each distinct partition in a deterministic order: integers first (numeric), then strings."""
    keys = [(1, 0, p) if isinstance(p, str) else (0, int(p), "") for p in uniques]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    rank = np.empty(len(keys), dtype=np.int64)
    rank[order] = np.arange(len(keys), dtype=np.int64)
    return rank


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
    check_guarantee(guarantee)
    limit = max(0, int(limit))

    # --- the log: (partition, offset, id) from ok sends and deliveries -------------------------
    s = h.send_cols
    s_ok = (s.part >= 0) & (s.offset >= 0) & (s.outcome == _OK)
    d = h.delivery_cols
    d_ok = (d.part >= 0) & (d.offset >= 0)
    fr = h.final_read_cols
    f_ok = (fr.part >= 0) & (fr.offset >= 0)

    if not s_ok.any() and not d_ok.any() and not f_ok.any():
        return _empty(False)

    n_s, n_d = int(s_ok.sum()), int(d_ok.sum())
    off = np.concatenate([s.offset[s_ok], d.offset[d_ok], fr.offset[f_ok]])
    ids = np.concatenate([s.id[s_ok], d.id[d_ok], fr.id[f_ok]])  # id codes
    p_uniques = h.partitions
    prank = _partition_ranks(p_uniques)
    part_of_rank = [p_uniques[i] for i in np.argsort(prank).tolist()]
    pr = prank[np.concatenate([s.part[s_ok], d.part[d_ok], fr.part[f_ok]])]

    # one int64 key per position, ordered by (partition rank, offset); offsets are replaced by
    # their rank when the range is too wide for the product to fit
    lo_off, hi_off = int(off.min()), int(off.max())
    span = hi_off - lo_off + 1
    if len(p_uniques) * span < 2**62:
        offk = off - lo_off
        off_of = lambda k: k + lo_off  # noqa: E731
    else:
        uoff, offk = np.unique(off, return_inverse=True)
        span = len(uoff)
        off_of = lambda k: uoff[k]  # noqa: E731
    pos = pr * span + offk

    # the distinct (position, id) pairs, sorted: one sort of packed keys when they fit in 63 bits
    id_bits = max(1, h.n_ids.bit_length())
    if int(pos.max()).bit_length() + id_bits <= 63:
        key = (pos << id_bits) | ids
        key.sort()
        u = key[_group_starts(key)]
        u_pos, u_id = u >> id_bits, u & ((1 << id_bits) - 1)
    else:  # pragma: no cover - astronomically many positions and ids
        order = np.lexsort((ids, pos))
        ps, ids_o = pos[order], ids[order]
        keep = _group_starts(ps) | np.r_[True, ids_o[1:] != ids_o[:-1]]
        u_pos, u_id = ps[keep], ids_o[keep]
    starts = np.flatnonzero(_group_starts(u_pos))
    ends = np.append(starts[1:], len(u_pos))
    known_pos = u_pos[starts]  # every position known to exist in the log, sorted
    known_pr, known_off = known_pos // span, off_of(known_pos % span)

    # inconsistent offsets: positions holding two or more ids
    bad_pos = np.flatnonzero(ends - starts > 1)
    inconsistent = []
    for k in bad_pos[:limit].tolist():
        inconsistent.append({"partition": part_of_rank[known_pr[k]], "offset": int(known_off[k]),
                             "ids": sorted(h.id_table.strings(u_id[starts[k]:ends[k]]), key=id_order)})

    # log duplicates: ids at more than one position
    per_id = np.bincount(u_id, minlength=h.n_ids)
    dup_codes = np.flatnonzero(per_id > 1)
    duplicates = []
    if len(dup_codes):
        names = h.id_table.strings(dup_codes)
        shown = dup_codes[sorted(range(len(names)), key=lambda i: id_order(names[i]))[:limit]]
        name_of = dict(zip(dup_codes.tolist(), names, strict=True))
        mark = np.zeros(h.n_ids, dtype=bool)
        mark[shown] = True
        sel = np.flatnonzero(mark[u_id])
        sel = sel[stable_argsort(u_id[sel])]  # by id, then position
        sel_codes = u_id[sel]
        for c in shown.tolist():
            a, b = np.searchsorted(sel_codes, c, side="left"), np.searchsorted(sel_codes, c, side="right")
            positions = [[part_of_rank[p // span], int(off_of(p % span))] for p in u_pos[sel[a:b]].tolist()]
            duplicates.append({"id": name_of[c], "positions": positions})

    # --- consumer tracking: successive deliveries per (process, epoch, partition) --------------
    nonmonotonic: list[dict] = []
    skips: list[dict] = []
    n_nonmono = n_skips = 0
    if d_ok.any():
        op = d.op[d_ok]
        proc = d.proc[d_ok]
        d_offv, d_pr, d_pos = off[n_s:n_s + n_d], pr[n_s:n_s + n_d], pos[n_s:n_s + n_d]

        # epoch: number of assign/subscribe ops of the same process before the poll
        reset = np.flatnonzero(h.f_mask(*RESET_OPS))
        skey = proc
        if len(reset):
            n_ops = len(h) + 1
            reset_key = np.sort(h.proc[reset] * n_ops + reset)
            epoch = np.searchsorted(reset_key, proc * n_ops + op)
            skey = proc * (len(reset_key) + 1) + epoch
        gkey = skey * len(p_uniques) + d_pr

        # deliveries are in history order (poll row, then position in the poll): a stable sort
        # by stream keeps that order within each (process, epoch, partition)
        dorder, g = stable_argsort(gkey, with_sorted=True)
        same = g[1:] == g[:-1]
        cur, prev = dorder[1:][same], dorder[:-1][same]
        o = d_offv[dorder]
        o_cur, o_prev = o[1:][same], o[:-1][same]

        nm = o_cur <= o_prev
        jump = np.flatnonzero(o_cur > o_prev + 1)
        first_between = np.searchsorted(known_pos, d_pos[prev[jump]], side="right")
        skipped = np.searchsorted(known_pos, d_pos[cur[jump]], side="left") - first_between
        sk = jump[skipped > 0]
        sk_first = first_between[skipped > 0]
        sk_n = skipped[skipped > 0]

        procs = h.processes
        lines = d.line[d_ok]

        def event(i: int, j: int) -> dict:
            return {"process": procs[proc[i]], "partition": part_of_rank[d_pr[i]],
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
            "nonmonotonic": nonmonotonic, "skips": skips, "final_read": _final_read(h, limit)}


def _final_read(h: History, limit: int) -> dict | None:
    """What the final read found: its records, and the acknowledged ids it did not find at any offset
    (truncated or never written: lost from the log itself, whatever the consumers saw). Reported, never
    a verdict: whether a message was lost is the delivery checker's call. None without a final read (or
    with an empty one: a `final-read` of another shape is someone else's operation, ignored)."""
    fr, s = h.final_read_cols, h.send_cols
    if not len(fr.id):
        return None
    acked = np.zeros(h.n_ids, dtype=bool)
    acked[s.id[(s.outcome == _OK) & (s.id >= 0)]] = True
    found = np.zeros(h.n_ids, dtype=bool)
    found[fr.id] = True
    absent = np.flatnonzero(acked & ~found)
    return {"records": len(fr.id), "absent_acknowledged": len(absent),
            "absent_ids": sorted(h.id_table.strings(absent))[:limit]}
