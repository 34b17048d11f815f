"""Run options are data: each is declared once (RunConfig's fields, Workload.options, Target.options), and the
command line, suite files and the pytest plugin accept exactly the declared set, with the declared kinds."""

from __future__ import annotations

import argparse

import pytest

import targets
import workloads
from harness.cli import build_parser
from harness.config import CASE, ConfigError, RunConfig, declared, run_options
from harness.options import gather
from harness.pytest_plugin import accepted
from harness.suites import spec
from plugin.options import Option


def _run_flags() -> set[str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    run = sub.choices["run"]
    return {a.dest for a in run._actions if a.option_strings and a.dest != "help"}


def test_the_command_line_the_suite_file_and_the_pytest_plugin_accept_the_same_options():
    options = set(declared())
    assert _run_flags() == options
    assert set(spec.OPTIONS) == set(accepted()) == options - set(CASE)
    assert set(CASE) <= set(spec.CASE_KEYS) | {"store"}  # a case names its target, profile, faults and seeds


def test_each_option_is_declared_once_and_by_whom():
    d = declared()
    assert d["time"].owner == "harness" and d["batch"].owner == "workload" and d["batch"].by == ("queue",)
    owners = {w.name: {o.name for o in w.options} for w in map(workloads.load, workloads.names())}
    owners |= {t.name: {o.name for o in t.options} for t in map(targets.load, targets.names())}
    for name, declared_by in owners.items():
        assert not declared_by & {k for k, v in d.items() if v.owner == "harness"}, name
    assert {o.name for t in map(targets.load, targets.names()) for o in t.options} == {
        k for k, v in d.items() if v.owner == "target"}


def test_an_option_declared_twice_differently_is_refused(monkeypatch):
    import workloads.queue as queue

    monkeypatch.setattr(queue.Queue, "options", (*queue.Queue.options, Option("time", float, 5.0, "again")))
    with pytest.raises(ValueError, match="'time' is declared twice"):
        gather([Option("time", float, 20.0, "seconds")])


def test_options_are_checked_against_their_declared_kind_and_bounds():
    cfg = RunConfig()
    with pytest.raises(ConfigError, match="batch must be an integer"):
        cfg.set("batch", "ten")
    with pytest.raises(ConfigError, match="unknown option 'bach'"):
        cfg.set("bach", 10)
    cfg.set("faults", "ack-loss,none")
    assert cfg.faults == ["ack-loss"]
    cfg.set("batch", 5000)
    with pytest.raises(ConfigError, match="--batch must be between 1 and 1000"):
        cfg.validate()


def test_a_target_s_option_is_refused_for_other_targets_naming_who_takes_it():
    cfg = RunConfig(target="redis")
    cfg.set("service_cmd", "python -m shop")
    with pytest.raises(ConfigError, match=r"--service-cmd is not an option of target redis \(targets that take it: "
                                          r"http\)"):
        cfg.validate()


def test_workload_options_and_their_defaults_from_the_target_s_clients():
    cfg = RunConfig(target="kafka", faults=[])
    cfg.validate()
    assert cfg.value("batch") == 100 and cfg.value("work_ms") == 5.0  # Kafka's clients decide the batch
    assert cfg.resolved()["batch"] == 100
    assert run_options()["work_ms"].option.help.startswith("a consumer's processing time")


def test_an_option_that_says_which_system_ran_names_it_in_results_and_comparisons(tmp_path):
    from harness.compare import entry_from_results

    cfg = RunConfig(target="nats", faults=[])
    cfg.set("server_version", "2.12.1")
    cfg.validate()
    resolved = cfg.resolved()
    assert resolved["system"] == "nats 2.12.1" and resolved["server_version"] == "2.12.1"
    entry = entry_from_results({"run": {"config": resolved}, "valid": True}, tmp_path)
    assert entry.row == ("nats 2.12.1", cfg.profile)
    assert RunConfig(target="redis").system() == "redis"
