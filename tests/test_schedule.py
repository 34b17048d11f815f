"""Schedules are reproducible from the seed and stay inside the load phase."""

from itertools import pairwise

from harness.schedule import make_schedule

CANDIDATES = {"kill": ["redis-1"], "ack-loss": ["redis-1"], "kill-consumer": ["consumer-0", "consumer-1"]}


def test_same_seed_same_schedule_and_different_seed_differs():
    a = make_schedule(["kill", "ack-loss", "kill-consumer"], 30, 7, CANDIDATES)
    b = make_schedule(["kill", "ack-loss", "kill-consumer"], 30, 7, CANDIDATES)
    c = make_schedule(["kill", "ack-loss", "kill-consumer"], 30, 8, CANDIDATES)
    assert a == b and a != c


def test_windows_do_not_overlap_and_fit_the_load_phase():
    w = make_schedule(["kill", "ack-loss", "kill-consumer"], 30, 1, CANDIDATES)
    assert {x.fault for x in w[:3]} == {"kill", "ack-loss", "kill-consumer"}
    for x, y in pairwise(w):
        assert x.stop <= y.start
    assert w[0].start >= 2.0 and w[-1].stop <= 29.0
    assert all(len(x.nodes) == 1 for x in w)


def test_no_faults_no_windows():
    assert make_schedule([], 30, 1, {}) == []


def test_a_short_run_still_gets_every_fault_once():
    faults = ["kill", "ack-loss", "kill-consumer", "restart", "pause", "latency"]
    c = {f: ["n1"] for f in faults}
    for seed in range(20):
        w = make_schedule(faults, 12, seed, c)
        assert {x.fault for x in w} == set(faults)
        assert w[-1].stop <= 11.0 + 1e-6


def test_faults_with_their_own_durations_get_windows_of_that_length():
    from harness.faults import FAULTS, PARTITION_DURATION

    faults = ["partition-halves", "kill"]
    cands = {"partition-halves": ["n1", "n2", "n3"], "kill": ["n1", "n2", "n3"]}
    ws = make_schedule(faults, 60, 3, cands, durations={"partition-halves": FAULTS["partition-halves"].duration})
    parts = [w for w in ws if w.fault == "partition-halves"]
    assert parts and all(PARTITION_DURATION[0] <= w.duration <= PARTITION_DURATION[1] for w in parts)
    assert all(w.duration <= 3.0 for w in ws if w.fault == "kill")
    assert all(a.stop <= b.start for a, b in pairwise(ws))  # still no overlaps
