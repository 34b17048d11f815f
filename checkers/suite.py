"""Run every checker over one history and combine their verdicts into results.json's shape.

On big histories the log and perf checkers run in threads beside the delivery checker: they
spend their time in numpy, which lets go of the GIL, so they use the machine's other cores.
"""

from __future__ import annotations

import gc
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from checkers.delivery import check_delivery
from checkers.history import History
from checkers.idempotency import Requests, check_idempotency, is_api
from checkers.log import check_log
from checkers.order import check_order
from checkers.perf import check_perf
from checkers.power import power_losses, vacuous
from checkers.redelivery import check_redelivery
from checkers.vocabulary import GUARANTEES, check_guarantee

CONTRACT = "history-v1"
PARALLEL_MIN_OPS = 500_000  # smaller histories are checked in one thread


def combine(*valids: bool | str) -> bool | str:
    """False beats unknown beats true: one definite violation is enough to fail a run."""
    if any(v is False for v in valids):
        return False
    if any(v == "unknown" for v in valids):
        return "unknown"
    return True


def blind_spots(h: History, delivery: dict[str, Any], log: dict[str, Any], api: bool = False) -> list[str]:
    """What the checkers could not look at in this history, said rather than passed over in silence."""
    out = []
    if len(h) == 0:
        return out
    order = np.argsort(h.line, kind="stable")
    back = int(np.count_nonzero(np.diff(h.time[order]) < 0))
    if back:
        out.append(f"times out of order: {back} line(s) earlier than the line before them (the checkers go by "
                   "time; check the clock the history was written with)")
    if not log.get("applicable", True) and not api:  # API requests have no positions to look for
        out.append("no send or delivery carries a partition and offset: the log checker could not look for "
                   "overwritten positions, reordering or skips")
    if not delivery.get("effects_checked"):
        out.append("no effects read: duplicated and lost effects (double charges) were not checked")
    return out


def check_history(h: History, guarantee: str = "exactly-once", explain_limit: int = 1000,
                  claims_order: bool = False) -> dict[str, Any]:
    """results.json for `h` under the claimed `guarantee` (and, with `claims_order`, the claim that each
    producer's messages arrive in the order they were sent)."""
    check_guarantee(guarantee)
    reqs = Requests(h) if is_api(h) else None
    was_enabled = gc.isenabled()
    gc.disable()  # the checkers make few objects but the history holds many: no point rescanning them
    try:
        if len(h) >= PARALLEL_MIN_OPS:
            with ThreadPoolExecutor(2) as pool:
                # what the checkers share, made once before they start (two at once: numpy's big
                # gathers run without the GIL)
                sends = pool.submit(lambda: h.send_cols)
                h.delivery_cols, h.fault_windows, h.nemesis_code  # noqa: B018
                sends.result()
                log_f = pool.submit(check_log, h, guarantee, limit=explain_limit)
                perf_f = pool.submit(check_perf, h)
                delivery = check_delivery(h, guarantee, explain_limit=explain_limit, details=reqs)
                log, perf = log_f.result(), perf_f.result()
        else:
            delivery = check_delivery(h, guarantee, explain_limit=explain_limit, details=reqs)
            log = check_log(h, guarantee, limit=explain_limit)
            perf = check_perf(h)
    finally:
        if was_enabled:
            gc.enable()
    idem = check_idempotency(h, guarantee, reqs, limit=explain_limit)
    order = check_order(h, claims_order, limit=explain_limit)
    redelivery = check_redelivery(h, limit=explain_limit)
    losses = power_losses(h)
    blind = blind_spots(h, delivery, log, api=reqs is not None)
    blind += vacuous(losses, int(h.time.min()) if len(h) else 0)
    erased = {p["line"]: p["dropped"] for p in losses}  # by the line of the fault's start
    valid = combine(delivery["valid"], log["valid"], idem["valid"], order["valid"])
    reasons = []
    if len(h) == 0:
        valid = "unknown"
        reasons.append("the history is empty")
    elif delivery.get("reason"):
        reasons.append(delivery["reason"])
    return {
        "valid": valid,
        "guarantee": guarantee,
        "contract": CONTRACT,
        "history": h.source,
        "operations": len(h),
        "reasons": reasons,
        "warnings": [*h.warnings, *delivery.get("warnings", []), *blind],
        # which guarantees the history satisfies, by every checker that judges guarantees
        "holds": {g: bool(delivery["holds"][g] and idem["holds"][g]) for g in GUARANTEES},
        "faults": [
            {"fault": fault, "nodes": nodes, "start": start, "stop": stop, "unhealed": unhealed,
             **({"dropped": erased[line]} if line in erased else {})}
            for fault, nodes, start, stop, line, unhealed in h.fault_windows
        ],
        "delivery": delivery,
        "log": log,
        "idempotency": idem,
        "order": order,
        "redelivery": redelivery,
        "perf": perf,
    }
