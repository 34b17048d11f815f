"""Every registered target keeps the Target contract beyond what mypy sees: names that match, faults and
workloads the harness knows, the abilities its faults need, a compose file, needs and tests of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

import targets
import workloads
from checkers.vocabulary import GUARANTEES
from harness.faults import FAULTS
from plugin.imaging import COMPOSE, compose_image
from plugin.needs import Debian, Fetched, Needs

ROOT = Path(__file__).resolve().parents[1]
NAMES = targets.names()


def test_the_registry_finds_each_folder():
    assert {"redis", "kafka", "nats"} <= set(NAMES)
    with pytest.raises(KeyError):
        targets.load("nope")


@pytest.mark.parametrize("name", NAMES)
def test_target_declarations(name):
    t = targets.load(name)
    assert t.name == name and (ROOT / "targets" / name / "__init__.py").is_file()
    assert t.profiles and all(k == p.name and p.guarantee in GUARANTEES for k, p in t.profiles.items())
    assert set(t.faults) <= set(FAULTS), set(t.faults) - set(FAULTS)
    for p in t.profiles.values():
        assert set(p.expected_unsafe_under) <= set(t.faults), p.name
    for f in t.faults:  # a leader or controller fault needs the ability that names that node
        if FAULTS[f].kind in ("leader", "controller"):
            assert getattr(t.abilities, FAULTS[f].kind) is not None, f
        if FAULTS[f].needs_partitions:
            assert max(t.node_counts) > 1, f
    assert set(t.clients) <= set(workloads.names()) and t.clients
    assert t.node_counts and all(n >= 1 for n in t.node_counts)
    assert t.ready_timeout > 0 and t.drain.quiet > 0 and t.drain.deadline > t.drain.quiet
    assert isinstance(t.needs, Needs)
    assert all(isinstance(d, Debian) for d in t.needs.debian) and all(isinstance(f, Fetched) for f in t.needs.fetched)
    assert t.needs.python, "the worker image must carry the client library"


@pytest.mark.parametrize("name", NAMES)
def test_target_has_its_compose_file_and_known_answers(name):
    t = targets.load(name)
    assert t.image.compose == f"{name}.yml" and (COMPOSE / t.image.compose).is_file()
    assert compose_image(t.image.role, t.image.compose)[1]
    assert (ROOT / "tests" / f"test_{name}_known_answers.py").is_file()


def test_the_payments_service_spends_its_bookkeeping_in_slices_a_pause_can_stop(monkeypatch):
    """One long sleep ends during a SIGSTOP, so the paused charge would finish at once after the resume; in
    short slices the rest of the work still takes its time (cache-marker's known answer under pause-long)."""
    from targets.payments import service

    slept: list[float] = []
    monkeypatch.setattr(service.time, "sleep", slept.append)
    service.work(0.012)
    assert slept[:2] == [service.WORK_SLICE_S] * 2 and sum(slept) == pytest.approx(0.012)
    assert max(slept) <= service.WORK_SLICE_S
