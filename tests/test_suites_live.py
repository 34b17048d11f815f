"""Suites on real brokers: the smoke suite with one expectation deliberately wrong, shards merged against the
whole, Ctrl-C in the middle of a suite, and the comparison page of Redis, Kafka and NATS in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

from harness.cli import main
from tests.test_redis_known_answers import _ours
from tests.test_report import _chromium

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]

TINY = """name = "tiny"
[defaults]
time = 5
[[case]]
name = "eos"
target = "redis"
profile = "exactly-once"
faults = ["ack-loss", "kill-consumer"]
seeds = [1, 2]
expect = {verdict = "valid", lost = "0", duplicated_effects = "0"}
[[case]]
name = "calm"
target = "redis"
profile = "at-most-once"
faults = []
time = 3
expect = {verdict = "valid", lost = "0", lost_effects = "0"}
"""


def _key(doc: dict) -> list[tuple]:
    return [(r["case"], r["seed"], r["verdict"], r["met"]) for r in doc["runs"]]


def test_shards_merged_hold_the_same_cases_and_verdicts_as_the_whole_suite(tmp_path):
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY)
    assert main(["suite", "run", str(suite), "--store", str(tmp_path / "whole")]) == 0
    for k in (1, 2):
        assert main(["suite", "run", str(suite), "--shard", f"{k}/2", "--store", str(tmp_path / f"s{k}")]) == 0
    assert main(["suite", "merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(tmp_path / "m")]) == 0
    whole = json.loads((tmp_path / "whole" / "suite.json").read_text())
    merged = json.loads((tmp_path / "m" / "suite.json").read_text())
    assert _key(merged) == _key(whole) == [("eos", 1, "valid", True), ("eos", 2, "valid", True),
                                           ("calm", 1, "valid", True)]
    assert [len(json.loads((tmp_path / f"s{k}" / "suite.json").read_text())["runs"]) for k in (1, 2)] == [2, 1]
    assert all((tmp_path / "m" / r["run_dir"] / "report.html").exists() for r in merged["runs"])


def test_ctrl_c_in_a_suite_stops_everything_and_keeps_the_finished_runs(tmp_path):
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY.replace("time = 5", "time = 30").replace("seeds = [1, 2]", "seeds = [1]")
                     .replace("time = 3", "time = 2"))
    # the calm case first: it finishes, then the long one is interrupted while it runs
    text = suite.read_text()
    head, eos, calm = text.split("[[case]]")
    suite.write_text(head + "[[case]]" + calm + "[[case]]" + eos)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "suite", "run", str(suite), "--store", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("[suite 2/2") or time.monotonic() > deadline:
            break
    log = out / "logs" / "eos-seed1.log"
    while time.monotonic() < deadline and "[load" not in (log.read_text() if log.exists() else ""):
        time.sleep(0.2)
    time.sleep(1)
    os.kill(proc.pid, signal.SIGINT)
    rest, _ = proc.communicate(timeout=90)
    assert proc.returncode == 130, "".join(lines) + rest
    time.sleep(0.5)
    assert _ours(str(out)) == []
    doc = json.loads((out / "suite.json").read_text())
    assert doc["interrupted"] is True
    assert _key(doc) == [("calm", 1, "valid", True)]
    run_dirs = sorted(p for p in (out / "runs").glob("*/2*") if p.is_dir())
    assert len(run_dirs) == 2 and all((d / "history.jsonl").exists() for d in run_dirs)


@pytest.fixture(scope="module")
def smoke_flipped(tmp_path_factory) -> tuple[Path, int]:
    """suites/smoke.toml with the Redis exactly-once case's expectation turned into a wrong one."""
    from harness import setup
    from harness.suites.spec import load_suite

    try:
        setup.install(sorted({c.target for c in load_suite(ROOT / "suites" / "smoke.toml").cases}),
                      progress=lambda *a: None)
    except Exception as e:
        pytest.skip(f"the smoke suite's systems cannot be set up here: {e}")
    tmp = tmp_path_factory.mktemp("smoke")
    text = (ROOT / "suites" / "smoke.toml").read_text()
    wrong, n = re.subn(r'(name = "redis-exactly-once"(?:\n[^\[].*)*?\nexpect = \{verdict = )"valid"', r'\1"invalid"',
                       text)
    assert n == 1
    (tmp / "smoke.toml").write_text(wrong)
    rc = main(["suite", "run", str(tmp / "smoke.toml"), "--store", str(tmp / "out")])
    return tmp / "out", rc


def test_the_smoke_suite_fails_exactly_the_case_whose_expectation_is_wrong(smoke_flipped):
    out, rc = smoke_flipped
    assert rc == 1
    junit = ET.parse(out / "junit.xml").getroot()
    failed = [tc.get("name") for tc in junit if tc.find("failure") is not None or tc.find("error") is not None]
    assert failed == ["redis-exactly-once[seed 1]"], (out / "junit.xml").read_text()
    fail = junit[0].find("failure")
    assert fail is not None and "verdict valid, expected invalid" in fail.get("message", "")
    assert "report.html" in (fail.text or "")
    doc = json.loads((out / "suite.json").read_text())
    assert doc["summary"] == {"runs": 5, "met": 4, "unmet": 1, "missing": 0}
    assert {r["target"] for r in doc["runs"]} == {"redis", "nats", "kafka"}


@pytest.mark.browser
def test_compare_page_of_redis_kafka_and_nats_links_every_cell_to_its_report(smoke_flipped, tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium binary found")
    out, _ = smoke_flipped
    cmp_dir = tmp_path / "cmp"
    assert main(["compare", str(out), "--out", str(cmp_dir)]) == 0
    page = cmp_dir / "compare.html"

    def dom(url: str) -> str:
        profile = tmp_path / "profile"
        profile.mkdir(exist_ok=True)
        proc = subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--dump-dom", url], capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    rendered = dom(page.resolve().as_uri())
    for row in ("redis / exactly-once", "redis / at-least-once-debian-defaults", "nats / exactly-once",
                "nats / r1-memory", "kafka / exactly-once"):
        assert row in rendered
    hrefs = re.findall(r'<a href="([^"]+)">report</a>', rendered)
    assert len(hrefs) == 5
    for href in hrefs:  # every link, followed as the browser would, is that run's report
        url = urljoin(page.resolve().as_uri(), href)
        target = Path(unquote(urlparse(url).path))
        assert target.name == "report.html" and target.exists()
        assert json.loads((target.parent / "results.json").read_text())["run"]["config"]["seed"] == 1
    assert "VALID" in dom(urljoin(page.resolve().as_uri(), hrefs[0])).upper()
