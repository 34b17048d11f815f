"""Known answers against a real 3-node Kafka cluster through real Toxiproxy (short CI versions; the
long, many-seed certification is benchmarks/kafka_certify.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def _kafka_installed():
    from harness import setup

    try:
        setup.install(["kafka"], progress=lambda *a: None)
    except Exception as e:  # no java / maven / network: say why instead of failing obscurely
        pytest.skip(f"Kafka cannot be set up here: {e}")


def run(tmp_path: Path, profile: str, faults: str, *extra: str) -> dict:
    rc = main(["run", "--target", "kafka", "--profile", profile, "--faults", faults, "--time", "20",
               "--seed", "1", "--store", str(tmp_path), *extra])
    results = json.loads((tmp_path / "latest" / "results.json").read_text())
    assert rc == {True: 0, False: 1, "unknown": 2}[results["valid"]]
    assert results["log"]["applicable"] is True  # Kafka histories carry partitions and offsets
    return results


def test_acks1_loses_acknowledged_writes_when_the_leader_is_killed(tmp_path):
    r = run(tmp_path, "acks1", "kill-leader", "--producers", "4", "--rate", "600")
    assert r["valid"] is False
    assert r["delivery"]["counts"]["lost"] > 0


@pytest.mark.skipif(not os.environ.get("ONCEPROOF_FLAKY"),
                    reason="timing-dependent: a consumer kill must land between the effect and the commit, and "
                           "with replacements joining slowly it sometimes never does (seen: 0 duplicates in one "
                           "20 s run, 4–7 in others). Run with ONCEPROOF_FLAKY=1, or benchmarks/kafka_certify.py")
def test_at_least_once_duplicates_but_never_loses_under_kill_consumer(tmp_path):
    r = run(tmp_path, "at-least-once", "kill-consumer", "--rate", "100", "--work-ms", "30")
    c = r["delivery"]["counts"]
    assert c["lost"] == 0 and c["lost_effects"] == 0
    assert c["duplicated"] > 0
    assert r["valid"] is True


def test_exactly_once_survives_leader_kill_pause_ack_loss_and_consumer_kill(tmp_path):
    r = run(tmp_path, "exactly-once", "kill-leader,pause-leader,ack-loss,kill-consumer", "--producers", "4",
            "--rate", "40")
    c = r["delivery"]["counts"]
    assert r["valid"] is True, c
    assert c["lost"] == 0 and c["lost_effects"] == 0 and c["duplicated_effects"] == 0
    assert {f["fault"] for f in r["faults"]} == {"kill-leader", "pause-leader", "ack-loss", "kill-consumer"}
