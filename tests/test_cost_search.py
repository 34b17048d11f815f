"""The cost command's pure parts: the sustainable-rate search, the table's native columns, and the native
tools' output parsers (on their real output formats)."""

from __future__ import annotations

from pathlib import Path

from harness.cost import Measure, find_sustainable, table
from plugin.target import BenchLoad
from targets.nats import bench as nats_bench
from targets.redis import bench as redis_bench


def _m(rate: float, kept: bool) -> Measure:
    return Measure("p", "exactly-once", rate, rate if kept else rate / 2, rate, 1.0, 2.0, 3.0, 4.0, 3.0, True, kept,
                   "run", "" if kept else "fell behind")


def _search(limit: float, start: float) -> tuple[float | None, list[float]]:
    tried: list[float] = []

    def at(rate: float) -> Measure:
        tried.append(rate)
        return _m(rate, rate <= limit)

    return find_sustainable(at(start), at), tried


def test_doubles_then_bisects_to_within_a_quarter():
    found, tried = _search(limit=650, start=200)
    assert tried[:3] == [200, 400, 800]  # doubling until 800 does not keep pace
    assert tried[3:] == [600, 700]  # two bisections between 400 and 800
    assert found == 600


def test_halves_when_the_first_rate_does_not_keep_pace():
    found, tried = _search(limit=130, start=400)
    assert tried[:3] == [400, 200, 100]
    assert tried[3:] == [150, 125]
    assert found == 125


def test_none_when_even_the_lowest_rate_falls_behind():
    found, tried = _search(limit=1, start=200)
    assert found is None and len(tried) == 7  # the start and six halvings


def test_the_table_puts_the_native_figure_beside_the_harness_and_says_how_it_ran():
    row = {"profile": "exactly-once", "guarantee": "exactly-once", "rate": 200.0, "acked_per_s": 200.0,
           "throughput_ratio": 1.0, "send_p50_ms": 1.0, "send_p99_ms": 2.0, "send_p50_ratio": 1.0, "e2e_p50_ms": 3.0,
           "e2e_p99_ms": 4.0, "e2e_steady_p50_ms": 3.0, "e2e_p50_ratio": 1.0, "sustainable_rate": None,
           "kept_up": True, "why_not": "",
           "native": {"tool": "nats bench", "command": "bench js pub sync", "acked_per_s": 199.0, "send_p50_ms": 0.76,
                      "send_p99_ms": 1.48, "paced": True, "note": "2 clients"}}
    missing = {**row, "profile": "r1-memory", "native": {"error": "RuntimeError: no natscli"}}
    doc = {"target": "nats", "producers": 2, "in_flight": 1, "consumers": 4, "work_ms": 0.5, "time": 8.0,
           "cheapest": "exactly-once", "profiles": [row, missing]}
    text = table(doc)
    header, first, second = text.splitlines()[1:4]
    assert "native/s" in header and "native p99" in header
    assert first.split()[-5:] == ["199", "0.8", "ms", "1.5", "ms"]
    assert second.split()[-3:] == ["—", "—", "—"]
    assert "native exactly-once: nats bench (paced at the offered rate; 2 clients): bench js pub sync" in text
    assert "native r1-memory: none (RuntimeError: no natscli)" in text


NATS_OUT = (  # natscli 0.5.0's summary (one latency line, split here)
    "\n NATS JetStream synchronous publisher aggregated stats: 1,199 msgs/sec ~ 20 KiB/sec\n"
    " message rates min 24 | avg 24 | max 24 | stddev 0 msgs\n"
    " latencies per operation min 46.00us | avg 357.23us | max 1,502.93us | stddev 385.71us | P50 343.98us"
    " | P90 546.79us | P99 1.25ms | P99.9: 1,450.80us\n")


def test_nats_bench_summary_in_its_own_units():
    assert nats_bench.parse(NATS_OUT) == (1199.0, 0.344, 1.25)


def test_redis_benchmark_csv_and_its_command(tmp_path: Path):
    out = ('"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms",'
           '"max_latency_ms"\n"XADD onceproof:bench * id 0123","117647.05","0.040","0.008","0.039","0.063","0.111",'
           '"0.215"\n')
    m = redis_bench.CSV.search(out)
    assert m and tuple(map(float, m.groups())) == (117647.05, 0.039, 0.111)
    load = BenchLoad(rate=200, seconds=10, connections=8, work_dir=tmp_path)
    plain = redis_bench.command(6379, load, 1000, None)
    assert plain[plain.index("-c") + 1] == "8" and "XADD" in plain and "EVAL" not in plain
    script = redis_bench.command(6379, load, 1000, "return 1")
    assert script[script.index("EVAL") + 1] == "return 1"


def test_the_comparison_page_shows_the_native_tool_beside_each_profile():
    from harness.compare import cost_html

    row = {"profile": "acks1", "guarantee": "at-least-once", "acked_per_s": 200.0, "send_p50_ms": 5.0,
           "send_p99_ms": 9.0, "e2e_p50_ms": 10.0, "e2e_p99_ms": 20.0, "kept_up": True,
           "native": {"tool": "Kafka ProducerPerformance", "command": "java <x> & y", "acked_per_s": 199.5,
                      "send_p50_ms": 6.0, "send_p99_ms": 11.0, "paced": True, "note": "one producer"}}
    page = cost_html([{"target": "kafka", "producers": 2, "in_flight": 4, "consumers": 4, "time": 30.0,
                       "rate": 200.0, "cheapest": "acks1", "profiles": [row, {**row, "profile": "unclean",
                                                                               "native": {"error": "boom"}}]}])
    assert "Kafka ProducerPerformance</td><td>200</td><td>6.00 ms</td><td>11.00 ms</td>" in page
    assert "java &lt;x&gt; &amp; y" in page  # the command, escaped, on hover
    assert '<td title="boom">none</td>' in page
