"""The pages beside report.html: the comparison, suite.html and the cost tables, rendered through the same
templates, stylesheet and escaping as the report (harness/report/pages.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from checkers.history import read_history
from checkers.suite import check_history
from harness.compare import collect, collect_costs, cost_html, render
from harness.cost import native_cells, table
from harness.report import html as html_report
from harness.suites import results as sr
from tests.test_report import EVIL_ID, EVIL_PROC, external_resources, faulty_history

ESCAPED_ID = "&lt;script&gt;alert(1)&lt;/script&gt;"
NATIVE = {"tool": "Kafka ProducerPerformance", "command": "java <x> & y", "acked_per_s": 199.5, "send_p50_ms": 6.0,
          "send_p99_ms": 11.0, "paced": True, "note": "one producer"}


def cost_doc(profile: str = "acks1", native: dict | None = None, why_not: str = "") -> dict:
    row = {"profile": profile, "guarantee": "at-least-once", "rate": 200.0, "acked_per_s": 200.0,
           "delivered_per_s": 199.0, "send_p50_ms": 5.0, "send_p99_ms": 9.0, "e2e_p50_ms": 10.0, "e2e_p99_ms": 20.0,
           "e2e_steady_p50_ms": 9.5, "verdict": True, "kept_up": not why_not, "run_dir": "x", "why_not": why_not,
           "sustainable_rate": None, "throughput_ratio": 1.0, "send_p50_ratio": 1.0, "e2e_p50_ratio": 1.0,
           "native": native}
    return {"target": "kafka", "producers": 2, "in_flight": 4, "consumers": 4, "time": 30.0, "rate": 200.0,
            "work_ms": 0.5, "runtime": "local", "cheapest": profile, "profiles": [row]}


def fake_run(root: Path, profile: str, faults: list[str], lost: int) -> Path:
    """A run directory as `onceproof run` leaves it (results.json, report.html), of the redis target."""
    d = root / f"redis-{profile}-queue" / "20261201T000000"
    d.mkdir(parents=True)
    counts = {"attempted": 10, "acknowledged": 10, "delivered": 10 - lost, "lost": lost, "duplicated": 0}
    results = {"valid": not lost, "guarantee": "exactly-once", "reasons": [], "delivery": {"counts": counts},
               "run": {"config": {"target": "redis", "profile": profile, "faults": faults, "seed": 1, "time": 5.0}}}
    (d / "results.json").write_text(json.dumps(results))
    (d / "report.html").write_text("<html></html>")
    return d


def hostile_suite(tmp_path: Path) -> Path:
    """suite.json, junit.xml and suite.html of a suite whose name, faults, claims, expectations and errors are
    all markup."""
    out = tmp_path / "suite"
    d = fake_run(out / "runs", "exactly-once", [EVIL_ID], 1)
    run = {"index": 0, "case": EVIL_ID, "seed": 1, "target": "redis", "profile": "exactly-once", "guarantee": EVIL_PROC,
           "faults": [EVIL_ID], "options": {}, "expect_text": EVIL_ID, "verdict": "invalid", "met": False,
           "unmet": [EVIL_ID], "counts": {"lost": 1}, "reasons": [EVIL_ID], "error": None,
           "run_dir": str(d.relative_to(out)), "duration_s": 5.0}
    broken = {**run, "index": 1, "seed": 2, "verdict": "error", "error": EVIL_ID, "counts": {}, "run_dir": None}
    sr.write_all({"format": sr.FORMAT, "suite": EVIL_ID, "runs": [run, broken], "missing": [EVIL_ID]}, out)
    return out


def test_hostile_text_is_escaped_on_the_comparison_and_suite_pages(tmp_path):
    store = tmp_path / "store"
    fake_run(store, EVIL_PROC, [EVIL_ID], 1)
    page = render(collect([store]), tmp_path)
    assert EVIL_ID not in page and EVIL_PROC not in page and "<script" not in page.lower() and "<img" not in page
    assert ESCAPED_ID in page and "&gt;&lt;img src=x onerror=alert(2)&gt;" in page

    suite = hostile_suite(tmp_path)
    page = (suite / "suite.html").read_text()
    assert EVIL_ID not in page and EVIL_PROC not in page and "<script" not in page.lower() and "<img" not in page
    # the title and heading, a column, an expectation, an unmet condition, a harness error
    assert page.count(ESCAPED_ID) >= 6 and "&gt;&lt;img src=x onerror=alert(2)&gt;" in page

    page = cost_html([cost_doc(EVIL_ID, {"error": EVIL_PROC}, why_not=EVIL_ID)])
    assert EVIL_ID not in page and EVIL_PROC not in page and page.count(ESCAPED_ID) == 3  # cheapest, profile, why


def test_every_page_has_the_one_shell_and_stylesheet(tmp_path):
    store = tmp_path / "store"
    fake_run(store, "exactly-once", ["kill"], 0)
    (store / "cost.json").write_text(json.dumps(cost_doc(native=NATIVE)))
    results = check_history(read_history(faulty_history(tmp_path / "history.jsonl")), "exactly-once")
    pages = {"report": html_report.render(results),
             "comparison": render(collect([store]), tmp_path, costs=collect_costs([store])),
             "suite": (hostile_suite(tmp_path) / "suite.html").read_text()}
    styles = set()
    for name, page in pages.items():
        assert page.startswith("<!DOCTYPE html>"), name
        assert ("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
                "img-src data:\">") in page, name
        assert '<meta name="viewport"' in page and "<main" in page and page.endswith("</html>\n"), name
        # the matrix links each run's report.html, relative to the page: nothing else could make a browser fetch
        assert [r for r in external_resources(page) if r != "a[href]"] == [], name
        assert "http://" not in page and "https://" not in page, name
        styles.add(re.search(r"<style>(.*?)</style>", page, re.S).group(1))
    assert len(styles) == 1 and ".verdict" in styles.pop()


def test_the_native_cells_are_the_same_in_cost_txt_and_on_the_comparison_page():
    assert native_cells(None).tool == "" and native_cells(None).figures is None
    none = native_cells({"skipped": "no tool named"})
    assert (none.tool, none.how, none.figures) == ("none", "no tool named", None)
    ran = native_cells(NATIVE)
    assert ran.tool == "Kafka ProducerPerformance" and ran.figures == (199.5, 6.0, 11.0)
    assert ran.how == "paced at the offered rate; one producer: java <x> & y"
    assert native_cells({**NATIVE, "paced": False}).tool == "Kafka ProducerPerformance (unpaced)"
    text = table(cost_doc(native=NATIVE))
    assert re.split(r"\s{2,}", text.splitlines()[2])[-3:] == ["200", "6.0 ms", "11.0 ms"]
    assert "native acks1: Kafka ProducerPerformance (paced at the offered rate; one producer): java <x> & y" in text
    assert re.split(r"\s{2,}", table(cost_doc(native={"error": "boom"})).splitlines()[2])[-3:] == ["—", "—", "—"]
    page = cost_html([cost_doc(native=NATIVE)])
    assert 'title="paced at the offered rate; one producer: java &lt;x&gt; &amp; y">Kafka ProducerPerformance</td>' \
           "<td>200</td><td>6.00 ms</td><td>11.00 ms</td>" in page
    assert "<td></td><td></td><td></td><td></td><td></td></tr>" in cost_html([cost_doc(native=None)])
