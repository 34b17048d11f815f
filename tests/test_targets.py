"""Every registered target keeps the Target contract beyond what mypy sees: names that match, faults and
workloads the harness knows, the abilities its faults need, a compose file, needs and tests of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

import targets
import workloads
from checkers.vocabulary import GUARANTEES
from harness.faults import FAULTS
from plugin.check import PluginError, check_clients, check_target
from plugin.imaging import COMPOSE, compose_image
from plugin.needs import Debian, Fetched, Needs
from plugin.target import Target

ROOT = Path(__file__).resolve().parents[1]
NAMES = targets.names()


def test_the_registry_finds_each_folder():
    assert {"redis", "kafka", "nats"} <= set(NAMES)
    with pytest.raises(KeyError):
        targets.load("nope")


def spool() -> Target:
    """The fourth queue target written from docs/adding-a-target.md alone (tests/fixtures/spool), loaded as the
    registry loads a target: checked against the protocol and the queue workload's client protocol."""
    from tests.fixtures import spool

    t = check_target(spool.TARGET, "tests/fixtures/spool/")
    check_clients(t.name, workloads.load("queue"), t.clients["queue"])
    return t


@pytest.mark.parametrize("name", [*NAMES, "spool"])
def test_target_declarations(name):
    t = spool() if name == "spool" else targets.load(name)
    assert t.name == name
    if name != "spool":
        assert (ROOT / "targets" / name / "__init__.py").is_file()
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


def test_a_target_missing_a_member_is_refused_when_loaded_naming_it(tmp_path, monkeypatch):
    """Also when TARGET has no annotation, which mypy does not check: before anything starts."""
    pkg = tmp_path / "targets_extra" / "halfdone"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "from plugin.target import TargetBase\n"
        "class Halfdone(TargetBase):\n"
        "    name = 'halfdone'\n"
        "    profiles = {}\n"
        "TARGET = Halfdone()\n")
    monkeypatch.syspath_prepend(str(tmp_path / "targets_extra"))
    import importlib

    module = importlib.import_module("halfdone")
    with pytest.raises(PluginError, match=r"TARGET lacks clients, faults, image, needs, node_argv, node_counts, "
                                          r"read_effects, ready"):
        check_target(module.TARGET, "targets/halfdone/")


def test_clients_lacking_a_member_of_the_workload_s_protocol_are_refused():
    class NoConsumer:
        batch = 10
        shared_producer = None

        def producer(self, c):
            raise AssertionError

    with pytest.raises(PluginError, match="the clients it supplies for the queue workload lack consumer"):
        check_clients("halfdone", workloads.load("queue"), NoConsumer())
