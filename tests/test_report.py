"""report.html and junit.xml, rendered from results produced by the real pipeline."""

from __future__ import annotations

import copy
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import pytest

from checkers.history import read_history
from checkers.suite import check_history
from harness.report import html as html_report
from harness.report import junit
from tests.histories import Builder

EVIL_ID = "<script>alert(1)</script>"
EVIL_PROC = '"><img src=x onerror=alert(2)>'


def faulty_history(path: Path) -> Path:
    """Faults (one never healed), loss in the middle, duplicates, an unexpected id and evil names."""
    b = Builder()
    b.send("p1", "m1", partition=0, offset=0)
    b.send("p1", "m2", partition=0, offset=1)
    b.poll("c1", [{"id": "m1", "key": None, "partition": 0, "offset": 0},
                  {"id": "m2", "key": None, "partition": 0, "offset": 1}])
    b.t += 2_000_000_000
    b.fault("start-fault", "partition", ["n1", "n2"])
    b.send("p1", EVIL_ID, partition=0, offset=2)       # acknowledged, never delivered
    b.send("p1", "m4", partition=0, offset=3)          # delivered: EVIL_ID was lost in the middle
    b.send("p2", "m5", outcome="info")                 # indeterminate
    b.t += 1_500_000_000
    b.fault("stop-fault", "partition", ["n1", "n2"])
    b.poll(EVIL_PROC, [{"id": "m4", "key": None, "partition": 0, "offset": 3},
                       {"id": "m1", "key": None, "partition": 0, "offset": 0},  # duplicate
                       {"id": "ghost", "key": None}])                           # unexpected
    b.t += 1_000_000_000
    b.fault("start-fault", "kill", ["n3"])
    b.send("p3", "m6", partition=0, offset=4)
    b.poll("c1", [{"id": "m6", "key": None, "partition": 0, "offset": 4}])
    return b.write(path)


def clean_history(path: Path) -> Path:
    b = Builder()
    for i in range(5):
        b.send("p1", f"m{i}")
    b.t += 1_000_000_000
    b.poll("c1", [f"m{i}" for i in range(5)])
    return b.write(path)


@pytest.fixture
def faulty(tmp_path) -> dict:
    return check_history(read_history(faulty_history(tmp_path / "history.jsonl")), "exactly-once")


@pytest.fixture
def clean(tmp_path) -> dict:
    return check_history(read_history(clean_history(tmp_path / "history.jsonl")), "at-least-once")


class _Verdict(HTMLParser):
    """Text of the element with id="verdict"."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.text: list[str] = []
        self.found = 0

    def handle_starttag(self, tag, attrs):
        if self.depth:
            self.depth += 1
        elif dict(attrs).get("id") == "verdict":
            self.depth, self.found = 1, self.found + 1

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.text.append(data)


def verdict_text(page: str) -> str:
    p = _Verdict()
    p.feed(page)
    assert p.found == 1, "exactly one #verdict element"
    return " ".join("".join(p.text).split())


class _Resources(HTMLParser):
    """Everything in a page that could make a browser fetch something."""

    FETCHING_TAGS: ClassVar[set[str]] = {
        "script", "link", "img", "iframe", "object", "embed", "audio", "video", "source", "image", "use",
        "base", "form", "frame",
    }
    FETCHING_ATTRS: ClassVar[set[str]] = {
        "src", "href", "xlink:href", "srcset", "action", "poster", "data", "background",
    }

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.in_style = False

    def handle_starttag(self, tag, attrs):
        if tag in self.FETCHING_TAGS:
            self.found.append(f"<{tag}>")
        self.found += [f"{tag}[{k}]" for k, _ in attrs if k in self.FETCHING_ATTRS]
        self.found += [f"{tag}[style url()]" for k, v in attrs if k == "style" and v and "url(" in v]
        self.in_style = tag == "style"

    def handle_endtag(self, tag):
        self.in_style = False

    def handle_data(self, data):
        if self.in_style and ("url(" in data or "@import" in data):
            self.found.append("style with url()/@import")


def external_resources(page: str) -> list[str]:
    p = _Resources()
    p.feed(page)
    return p.found


# --- html ----------------------------------------------------------------------------------------


def test_faulty_history_report(faulty):
    assert faulty["valid"] is False
    page = html_report.render(faulty)
    assert page.startswith("<!DOCTYPE html>")
    text = verdict_text(page)
    assert "INVALID" in text and "exactly-once" in text
    # the verdict comes first, before any other section
    assert page.index('id="verdict"') < page.index("<h2")
    # counts, guarantees, faults, anomalies, log and the plots are all there
    for needle in ("Counts", "Guarantees", "Fault windows", "Anomalous messages", "Throughput",
                   "Send latency", "End-to-end latency", "lost in the middle", "never healed", "ghost",
                   "Log (partitions and offsets)"):
        assert needle in page, needle
    assert page.count("<svg") == 3
    assert 'class="flabel"' in page and "partition [n1, n2]" in page and "kill [n3]" in page
    for cls in ("lost", "duplicated", "unexpected"):
        assert f'<span class="badge">{cls}</span>' in page


def test_history_text_is_escaped(faulty):
    assert EVIL_ID in faulty["delivery"]["lost"]
    page = html_report.render(faulty)
    assert EVIL_ID not in page and "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img" not in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "onerror=alert(2)>" not in page


def test_no_external_resources(faulty, clean):
    for results in (faulty, clean):
        page = html_report.render(results)
        assert external_resources(page) == []
        assert "http://" not in page and "https://" not in page
        assert "default-src 'none'" in page  # and the browser is told to load nothing


def test_clean_history_report(clean):
    assert clean["valid"] is True
    page = html_report.render(clean)
    assert verdict_text(page).startswith("VALID") and "at-least-once" in verdict_text(page)
    assert "None: every acknowledged message was delivered exactly once." in page
    assert "No faults were injected." in page
    assert "Not applicable" in page  # no partitions/offsets: the log checker does not apply


def test_unknown_and_partial_results(tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_text("")
    r = check_history(read_history(p))
    assert r["valid"] == "unknown"
    page = html_report.render(r)
    assert verdict_text(page).startswith("UNKNOWN")
    assert "the history is empty" in page
    # sections may be missing altogether
    for partial in ({}, {"valid": "unknown", "guarantee": "exactly-once"},
                    {"valid": False, "guarantee": "at-most-once", "delivery": {"valid": False, "counts": {"lost": 1}}},
                    {"valid": True, "guarantee": "exactly-once", "log": {"applicable": True, "valid": True}}):
        page = html_report.render(partial)
        assert verdict_text(page).split()[0] in ("VALID", "INVALID", "UNKNOWN")
    assert "&lt;script&gt;" in html_report.render({"valid": True, "guarantee": EVIL_ID})


def test_tables_are_capped(faulty):
    r = copy.deepcopy(faulty)
    n = html_report.MAX_ROWS + 250
    r["delivery"]["lost"] = [f"x{i:05d}" for i in range(n)]
    r["delivery"]["counts"]["lost"] = n
    page = html_report.render(r)
    assert f"x{html_report.MAX_ROWS - 5:05d}" in page
    assert f"x{n - 1:05d}" not in page
    assert "Showing the first 300 of" in page
    assert "not explained" in page


def test_log_anomalies_are_shown(tmp_path):
    b = Builder()
    b.send("p1", "a", partition=0, offset=7)
    b.send("p1", "b", partition=0, offset=7)  # two ids at one position
    b.poll("c1", [{"id": "a", "key": None, "partition": 0, "offset": 7},
                  {"id": "b", "key": None, "partition": 0, "offset": 7}])
    r = check_history(read_history(b.write(tmp_path / "h.jsonl")), "exactly-once")
    assert r["log"]["applicable"] and r["log"]["valid"] is False
    assert r["valid"] is False
    page = html_report.render(r)
    assert "Inconsistent offsets" in page
    assert "Log (partitions and offsets): INVALID" in page
    x = ET.fromstring(junit.render(r))
    fails = {tc.get("classname"): tc.find("failure") for tc in x.iter("testcase")}
    assert fails["onceproof.log"] is not None and fails["onceproof.delivery"] is None


# --- junit ---------------------------------------------------------------------------------------


def _suite(xml_text: str) -> ET.Element:
    root = ET.fromstring(xml_text)
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    assert len(suites) == 1
    assert suites[0].get("name") == "onceproof"
    return suites[0]


def test_junit_invalid(faulty):
    s = _suite(junit.render(faulty))
    cases = s.findall("testcase")
    assert [c.get("classname") for c in cases] == ["onceproof.delivery", "onceproof.log", "onceproof.perf"]
    assert all("exactly-once" in c.get("name") for c in cases)
    failures = [c for c in cases if c.find("failure") is not None]
    assert s.get("tests") == "3" and s.get("failures") == str(len(failures)) and s.get("errors") == "0"
    delivery = cases[0].find("failure")
    assert delivery is not None and "exactly-once violated" in delivery.get("message")
    assert EVIL_ID in delivery.text  # escaped by the XML writer, intact after parsing
    assert cases[2].find("failure") is None  # perf never fails


def test_junit_valid_and_unknown(clean, tmp_path):
    s = _suite(junit.render(clean))
    assert s.get("failures") == "0" and s.get("errors") == "0" and len(s.findall("testcase")) == 3
    log = next(c for c in s.findall("testcase") if c.get("classname") == "onceproof.log")
    assert log.find("skipped") is not None  # not applicable without offsets
    p = tmp_path / "empty.jsonl"
    p.write_text("")
    s = _suite(junit.render(check_history(read_history(p))))
    assert int(s.get("errors")) >= 1 and s.get("failures") == "0"
    s = _suite(junit.render({"valid": "unknown", "guarantee": "exactly-once", "reasons": ["no history"]}))
    assert s.get("errors") == "3"


def test_junit_survives_control_characters(faulty):
    r = copy.deepcopy(faulty)
    r["delivery"]["lost"] = ["a\x01b", "c\x00d & <e>"]
    r["guarantee"] = "exactly-once\x07"
    s = _suite(junit.render(r))
    text = s.find("testcase").find("failure").text
    assert "c\ufffdd & <e>" in text


def test_suite_junit_is_built_like_a_runs(tmp_path):
    run = {"index": 0, "case": "a\x01b", "seed": 1, "target": "redis", "profile": "exactly-once",
           "expect_text": "valid", "verdict": "invalid", "met": False, "unmet": [f"verdict invalid {EVIL_ID}"],
           "counts": {"attempted": 3, "lost": 1}, "reasons": ["c\x00d"], "run_dir": "runs/x", "duration_s": 2.0}
    broken = {**run, "index": 1, "seed": 2, "verdict": "error", "error": "boom", "run_dir": None}
    root = ET.fromstring(junit.render_suite({"suite": "s", "runs": [run, broken], "missing": ["m[seed 3]"]}, tmp_path))
    assert root.tag == "testsuite" and (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "2")
    failed, errored, missing = root.findall("testcase")
    assert failed.get("name") == "a\ufffdb[seed 1]" and failed.get("time") == "2.0"
    assert failed.find("failure").get("message") == f"verdict invalid {EVIL_ID}"
    assert "reason: c\ufffdd" in failed.find("failure").text
    out = failed.find("system-out").text
    assert "counts: attempted 3, lost 1" in out and str(tmp_path / "runs/x/report.html") in out
    assert "could not run this case: boom" in errored.find("error").get("message")
    assert "none (the run did not start)" in errored.find("error").text
    assert missing.get("classname") == "onceproof.missing" and missing.find("error") is not None


# --- a real browser ------------------------------------------------------------------------------


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.browser
def test_report_in_headless_chromium(faulty, tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium binary found")
    page = tmp_path / "report.html"
    page.write_text(html_report.render(faulty), encoding="utf-8")
    profile = tmp_path / "profile"
    profile.mkdir()
    proc = subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert "INVALID" in verdict_text(dom)
    assert "<svg" in dom
    assert "<script" not in dom.lower()  # the evil id stayed text
