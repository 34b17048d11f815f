"""Seeded fault schedules: the same seed, faults and duration always give the same windows.

A schedule is a list of non-overlapping windows (fault, nodes, start, duration) inside the load
phase, with quiet gaps between them, so every system compared on one seed sees the same faults at
the same moments. Each fault in the list appears before any repeats.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Window:
    fault: str
    nodes: tuple[str, ...]
    start: float  # seconds after the load phase starts
    duration: float

    @property
    def stop(self) -> float:
        return self.start + self.duration

    def to_json(self) -> dict:
        d = asdict(self)
        d["nodes"] = list(self.nodes)
        return d


def make_schedule(faults: Sequence[str], time_s: float, seed: int, candidates: Mapping[str, Sequence[str]],
                  first_at: float = 2.0, duration: tuple[float, float] = (1.0, 3.0),
                  gap: tuple[float, float] = (1.0, 2.5), tail: float = 1.0,
                  durations: Mapping[str, tuple[float, float]] | None = None) -> list[Window]:
    """Windows for `faults` within [first_at, time_s - tail]; `candidates[fault]` lists nodes it may hit;
    `durations` gives some faults windows of their own length (not shrunk)."""
    durations = durations or {}
    rng = random.Random(f"onceproof-schedule-{seed}")
    windows: list[Window] = []
    if not faults:
        return windows
    # shrink windows and gaps when a short run could not otherwise give every fault one window
    room = time_s - tail - first_at
    need = len(faults) * (duration[1] + gap[1])
    if need > room > 0:
        k = room / need
        duration = (duration[0] * k, duration[1] * k)
        gap = (gap[0] * k, gap[1] * k)
    order: list[str] = []
    t = first_at
    while True:
        if not order:
            order = list(faults)
            rng.shuffle(order)
        fault = order.pop()
        d = round(rng.uniform(*durations.get(fault, duration)), 3)
        if t + d > time_s - tail + 1e-9:
            break
        nodes = tuple(sorted(rng.sample(list(candidates[fault]), 1))) if candidates.get(fault) else ()
        windows.append(Window(fault, nodes, round(t, 3), d))
        t += d + rng.uniform(*gap)
    return windows
