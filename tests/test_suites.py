"""Suite files, sharding, merging, junit and the comparison page, on hand-made results (no broker)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import targets
from harness.cli import main
from harness.compare import collect, render, seed_notes
from harness.suites import results as sr
from harness.suites.run import outcome
from harness.suites.spec import Condition, SuiteError, load_suite, parse_seeds, parse_shard, shard, with_seeds

GOOD = """name = "t"
[defaults]
time = 5
[[case]]
name = "a"
target = "redis"
profile = "exactly-once"
faults = ["ack-loss", "kill-consumer"]
seeds = [1, 2, 3]
expect = "valid"
[[case]]
target = "redis"
profile = "at-least-once-debian-defaults"
faults = ["kill"]
rate = 300
expect = {verdict = "invalid", "lost+lost_effects" = ">0"}
"""


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_a_good_suite_expands_to_one_run_per_seed(tmp_path):
    s = load_suite(write(tmp_path, GOOD))
    items = s.items()
    assert [it.key for it in items] == ["a[seed 1]", "a[seed 2]", "a[seed 3]",
                                        "redis-at-least-once-debian-defaults-kill[seed 1]"]
    a, b = s.cases
    assert a.options == {"time": 5.0} and b.options == {"time": 5.0, "rate": 300.0}
    assert a.line == 4 and b.line == 11
    cfg = b.config(1, "st")
    assert (cfg.target, cfg.profile, cfg.faults, cfg.rate, cfg.time) == ("redis", "at-least-once-debian-defaults",
                                                                         ["kill"], 300.0, 5.0)
    assert b.expect.unmet("invalid", {"lost": 0, "lost_effects": 3}) == []
    assert b.expect.unmet("valid", {"lost": 0, "lost_effects": 0}) == [
        "verdict valid, expected invalid", "lost+lost_effects was 0, expected > 0"]


@pytest.mark.parametrize("spec,counts,ok", [(">0", 1, True), (">0", 0, False), ("0", 0, True), ("<=2", 3, False),
                                            (">=2", 2, True), ("==1", 1, True), ("<5", 4, True)])
def test_count_conditions(tmp_path, spec, counts, ok):
    s = load_suite(write(tmp_path, f'[[case]]\ntarget="redis"\nprofile="exactly-once"\n'
                                   f'expect={{verdict="valid", lost="{spec}"}}\n'))
    (cond,) = s.cases[0].expect.conditions
    assert isinstance(cond, Condition) and cond.holds({"lost": counts}) is ok


CASE = '[[case]]\ntarget = "redis"\nprofile = "exactly-once"\nexpect = "valid"\n'
BAD = {
    "toml syntax": ("[[case]\ntarget='redis'\n", "line 1"),
    "unknown top-level key": ("cases = 1\n" + CASE, "unknown top-level key 'cases'"),
    "unknown defaults key": ("[defaults]\ntime = 5\nbogus = 1\n" + CASE, ":3: [defaults]: unknown key 'bogus'"),
    "unknown case key": (CASE + "colour = 'red'\n", ":5: case 1: unknown key 'colour'; valid keys: name, kind, target"),
    "missing expect": ('[[case]]\ntarget = "redis"\nprofile = "exactly-once"\n', ":1: case 1: missing key 'expect'"),
    "unknown target": ('[[case]]\ntarget = "rabbit"\nprofile = "x"\nexpect = "valid"\n',
                       f":2: case 1: unknown target 'rabbit'; valid targets: {', '.join(targets.names())}"),
    "unknown profile": (CASE + "\n" + CASE.replace("exactly-once", "nope"),
                        ":8: case 2: unknown profile 'nope' for target redis; valid profiles:"),
    "unknown fault": (CASE + 'faults = ["kill", "zap"]\n', ":5: case 1: unknown fault 'zap' for target redis"),
    "partition on local": ('[[case]]\ntarget = "nats"\nprofile = "exactly-once"\nexpect = "valid"\n'
                           'faults = ["partition-halves"]\n', ":1: case 1: partition-halves needs --runtime docker"),
    "bad verdict": (CASE.replace('"valid"', '"pass"'), ":4: case 1: expect's verdict must be one of"),
    "unknown count": (CASE.replace('"valid"', '{verdict = "valid", lots = ">0"}'),
                      ":4: case 1: expect: unknown count 'lots'"),
    "bad condition": (CASE.replace('"valid"', '{verdict = "valid", lost = "many"}'),
                      ":4: case 1: expect: lost must be a number or a comparison"),
    "bad option type": (CASE + 'time = "x"\n', ":5: case 1: time must be a number (got 'x')"),
    "bad option value": (CASE + "time = -1\n", ":5: case 1: --time must be positive"),
    "seed twice": (CASE + "seeds = [1, 1]\n", ":5: case 1: a seed is listed twice"),
    "seed and seeds": (CASE + "seed = 1\nseeds = [2]\n", "give seed or seeds, not both"),
    "duplicate name": (CASE + "name = 'x'\n" + CASE + "name = 'x'\n", "two cases are named 'x'"),
    "no case": ("[defaults]\ntime = 5\n", "no [[case]] tables"),
    "unknown kind": (CASE + 'kind = "bench"\n', ":5: case 1: kind must be one of 'run', 'cost'"),
    "cost with faults": ('[[case]]\nkind = "cost"\ntarget = "redis"\nfaults = ["kill"]\n',
                         ":4: case 1: a cost case runs without faults"),
    "cost unknown profile": ('[[case]]\nkind = "cost"\ntarget = "redis"\nprofiles = ["x"]\n',
                             ":4: case 1: unknown profile 'x' for target redis"),
    "case not a table": ('case = ["x"]\n', "case 1 must be a table"),
    "counts on a cost case": ('[[case]]\nkind = "cost"\ntarget = "redis"\nexpect = {verdict = "valid", lost = "0"}\n',
                              ":4: case 1: a cost case has a verdict only"),
    "profiles on a run": (CASE + 'profiles = ["exactly-once"]\n', ":5: case 1: profiles belongs to kind = \"cost\""),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_each_kind_of_mistake_exits_2_naming_the_file_and_line(tmp_path, kind, capsys):
    text, want = BAD[kind]
    path = write(tmp_path, text)
    rc = main(["suite", "run", str(path), "--store", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"{path}" in err and want in err, err
    assert not (tmp_path / "out").exists()  # nothing started, nothing written


def test_a_missing_file_and_a_bad_shard_exit_2(tmp_path, capsys):
    assert main(["suite", "run", str(tmp_path / "none.toml")]) == 2
    assert "none.toml: No such file" in capsys.readouterr().err
    path = write(tmp_path, GOOD)
    for bad in ("0/2", "3/2", "x", "1/0"):
        assert main(["suite", "run", str(path), "--shard", bad, "--store", str(tmp_path / "o")]) == 2
        assert "--shard must be K/N" in capsys.readouterr().err
    assert main(["suite", "run", str(path), "--only", "zzz*", "--store", str(tmp_path / "o")]) == 2
    assert "matches no case" in capsys.readouterr().err
    with pytest.raises(SuiteError):
        parse_shard("2/1")


def test_a_cost_case_is_one_item_whatever_the_seeds(tmp_path):
    s = load_suite(write(tmp_path, GOOD + '[[case]]\nkind = "cost"\ntarget = "redis"\nfind-rate = true\n'))
    cost = s.cases[-1]
    assert (cost.kind, cost.name, cost.find_rate, cost.seeds) == ("cost", "redis-cost", True, (1,))
    assert cost.profiles == tuple(targets.load("redis").profiles)
    assert str(cost.expect) == "valid"
    assert [it.key for it in with_seeds(s, (1, 2)).items()][-1] == "redis-cost[seed 1]"


def test_seeds_override_every_cases_seeds(tmp_path, capsys):
    path = write(tmp_path, GOOD)
    assert parse_seeds("1-3,7") == (1, 2, 3, 7)
    assert [it.key for it in with_seeds(load_suite(path), (4, 5)).items()][:2] == ["a[seed 4]", "a[seed 5]"]
    for bad in ("3-1", "x", "1,1", "1-"):
        assert main(["suite", "run", str(path), "--seeds", bad, "--store", str(tmp_path / "o")]) == 2
        assert "--seeds" in capsys.readouterr().err


def test_shards_partition_the_suite_deterministically(tmp_path):
    items = load_suite(write(tmp_path, GOOD)).items()
    for n in (1, 2, 3, 5):
        parts = [shard(items, k, n) for k in range(1, n + 1)]
        assert sorted(it.index for p in parts for it in p) == [it.index for it in items]
        assert parts == [shard(items, k, n) for k in range(1, n + 1)]


# --- results, merge, junit, the comparison (hand-made runs) ---------------------------------------------


def fake_run(root: Path, target: str, profile: str, faults: list[str], seed: int, valid, counts: dict,
             windows: list | None = None) -> Path:
    d = root / f"{target}-{profile}-queue" / f"2026120{seed}T000000"
    d.mkdir(parents=True)
    full = {"attempted": 10, "acknowledged": 10, "delivered": 10, "lost": 0, "duplicated": 0, "lost_effects": 0,
            "duplicated_effects": 0, **counts}
    results = {"valid": valid, "guarantee": "exactly-once", "reasons": [],
               "delivery": {"counts": full, "holds": {}},
               "run": {"dir": str(d), "config": {"target": target, "profile": profile, "faults": faults,
                                                 "seed": seed, "time": 5.0}}}
    (d / "results.json").write_text(json.dumps(results))
    (d / "report.html").write_text(f"<html><body><h1>{target} {profile} seed {seed}</h1></body></html>")
    w = windows if windows is not None else [{"fault": f, "nodes": ["x"], "start": 1.0 + seed, "duration": 2.0}
                                             for f in faults]
    (d / "schedule.json").write_text(json.dumps({"seed": seed, "windows": w}))
    return d


def suite_doc(tmp_path: Path, out: Path, flip: str | None = None) -> dict:
    """A suite's document as run_suite writes it, from fake runs (one per item)."""
    text = GOOD if flip is None else GOOD.replace('expect = "valid"', f'expect = "{flip}"')
    s = load_suite(write(tmp_path, text, f"suite-{flip}.toml"))
    runs = []
    for it in s.items():
        valid = it.case.profile == "exactly-once"
        d = fake_run(out / "runs", it.case.target, it.case.profile, list(it.case.faults), it.seed, valid,
                     {} if valid else {"lost": 4})
        results = json.loads((d / "results.json").read_text())
        runs.append(outcome(it, out, results, d, 12.0))
    return {"format": sr.FORMAT, "suite": s.name, "file": str(s.path), "digest": sr.digest(GOOD),
            "all_runs": [it.key for it in s.items()], "shard": None, "runs": runs, "missing": []}


def test_junit_fails_exactly_the_case_whose_expectation_was_not_met(tmp_path):
    out = tmp_path / "out"
    doc = suite_doc(tmp_path, out)
    doc["runs"][1]["met"] = False
    doc["runs"][1]["unmet"] = ["verdict valid, expected invalid"]
    paths = sr.write_all(doc, out)
    tree = ET.parse(paths["junit"]).getroot()
    assert tree.get("tests") == "4" and tree.get("failures") == "1" and tree.get("errors") == "0"
    failed = [tc.get("name") for tc in tree if tc.find("failure") is not None]
    assert failed == ["a[seed 2]"]
    fail = tree[1].find("failure")
    assert fail.get("message") == "verdict valid, expected invalid"
    assert "report.html" in fail.text and "counts: attempted 10" in fail.text
    assert json.loads(paths["json"].read_text())["summary"] == {"runs": 4, "met": 3, "unmet": 1, "missing": 0}


def test_merged_shards_equal_the_whole_and_missing_runs_are_named(tmp_path):
    whole = suite_doc(tmp_path, tmp_path / "whole")
    shards = []
    for k in (1, 2):
        d = tmp_path / f"shard{k}"
        d.mkdir()
        doc = dict(whole, shard=f"{k}/2", runs=[r for r in whole["runs"] if r["index"] % 2 == k - 1])
        for r in doc["runs"]:  # each shard's runs live in its own directory
            r["run_dir"] = str(Path("..") / "whole" / r["run_dir"])
        sr.write_all(doc, d)
        shards.append(d)
    out = tmp_path / "merged"
    assert main(["suite", "merge", *map(str, shards), "--out", str(out)]) == 0
    merged = json.loads((out / "suite.json").read_text())
    key = [(r["case"], r["seed"], r["verdict"], r["met"]) for r in merged["runs"]]
    assert key == [(r["case"], r["seed"], r["verdict"], r["met"]) for r in whole["runs"]]
    assert all((out / r["run_dir"] / "report.html").exists() for r in merged["runs"])
    # one shard only: the rest is missing, and that is not a pass
    assert main(["suite", "merge", str(shards[0]), "--out", str(tmp_path / "half")]) == 1
    half = json.loads((tmp_path / "half" / "suite.json").read_text())
    assert half["missing"] == ["a[seed 2]", "redis-at-least-once-debian-defaults-kill[seed 1]"]
    junit = ET.parse(tmp_path / "half" / "junit.xml").getroot()
    assert junit.get("errors") == "2"


def test_merge_refuses_shards_of_different_suites_and_runs_twice(tmp_path, capsys):
    a = tmp_path / "a"
    doc = suite_doc(tmp_path, a)
    sr.write_all(doc, a)
    b = tmp_path / "b"
    sr.write_all(dict(doc, digest="other"), b)
    assert main(["suite", "merge", str(a), str(b), "--out", str(tmp_path / "m")]) == 2
    assert "from another suite file" in capsys.readouterr().err
    assert main(["suite", "merge", str(a), str(a), "--out", str(tmp_path / "m")]) == 2
    assert "also in another shard" in capsys.readouterr().err
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "suite.json").write_text("{")
    assert main(["suite", "merge", str(tmp_path / "junk"), "--out", str(tmp_path / "m")]) == 2
    assert "junk/suite.json: not JSON" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_compare_places_runs_by_system_profile_and_faults(tmp_path, capsys):
    store = tmp_path / "store"
    for t in ("redis", "kafka", "nats"):
        fake_run(store, t, "exactly-once", ["kill-consumer"], 1, True, {})
    fake_run(store, "kafka", "acks1", ["kill-leader"], 1, False, {"lost": 7})
    (store / "latest").symlink_to("kafka-acks1-queue/20261201T000000")  # not counted twice
    out = tmp_path / "cmp"
    assert main(["compare", str(store), "--out", str(out)]) == 0
    page = (out / "compare.html").read_text()
    assert page.count('class="run') == 4
    assert "lost 7" in page and "INVALID" in page
    assert 'href="../store/kafka-acks1-queue/20261201T000000/report.html"' in page
    notes = seed_notes(collect([store]))
    assert "kill-consumer: seed 1: the same schedule in all 3 rows" in notes
    suite_out = store / "suites" / "t"
    sr.write_all(suite_doc(tmp_path, suite_out), suite_out)  # a suite inside the store: its runs counted once
    assert len(collect([store, suite_out])) == len(collect([suite_out, store])) == 8
    assert main(["compare", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "holds no run" in capsys.readouterr().err


def test_compare_says_when_a_seed_gave_different_schedules(tmp_path):
    store = tmp_path / "store"
    fake_run(store, "redis", "exactly-once", ["kill"], 1, True, {})
    fake_run(store, "nats", "exactly-once", ["kill"], 1, True, {},
             windows=[{"fault": "kill", "nodes": ["n"], "start": 9.0, "duration": 1.0}])
    assert "seed 1: 2 different schedules over 2 rows" in seed_notes(collect([store]))[0]


def test_the_suite_page_marks_unmet_expectations(tmp_path):
    out = tmp_path / "out"
    doc = suite_doc(tmp_path, out)
    doc["runs"][0].update(met=False, unmet=["verdict valid, expected invalid"])
    paths = sr.write_all(doc, out)
    page = paths["html"].read_text()
    assert "1 run not as expected" in page
    assert page.count("run miss") == 1 and "✗ expected valid" in page
    assert render(collect([out]), out).count("report</a>") == 4


def test_compare_shows_cost_tables_found_beside_the_runs(tmp_path):
    store = tmp_path / "store"
    fake_run(store, "redis", "exactly-once", [], 1, True, {})
    row = {"profile": "exactly-once", "guarantee": "exactly-once", "rate": 200.0, "acked_per_s": 199.0,
           "delivered_per_s": 199.0, "send_p50_ms": 0.7, "send_p99_ms": 1.8, "e2e_p50_ms": 1.8, "e2e_p99_ms": 12.0,
           "e2e_steady_p50_ms": 1.7,
           "verdict": True, "kept_up": True, "run_dir": "x", "why_not": "", "sustainable_rate": None,
           "throughput_ratio": 1.0, "send_p50_ratio": 2.77, "e2e_p50_ratio": 2.17}
    behind = {**row, "profile": "slow", "kept_up": False, "why_not": "end-to-end p50 5000 ms > 1000 ms",
              "throughput_ratio": None, "send_p50_ratio": None, "e2e_p50_ratio": None}
    doc = {"target": "redis", "rate": 200.0, "time": 10.0, "producers": 2, "consumers": 4, "in_flight": 4,
           "work_ms": 0.5, "runtime": "local", "cheapest": "exactly-once", "profiles": [row, behind]}
    (store / "cost.json").write_text(json.dumps(doc))
    out = tmp_path / "cmp"
    assert main(["compare", str(store), "--out", str(out)]) == 0
    page = (out / "compare.html").read_text()
    assert "The cost of each guarantee" in page and "2.77×" in page
    assert "did not keep pace: end-to-end p50 5000 ms" in page
