"""Known answers against a real mosquitto broker (Debian's 2.0.11) through real Toxiproxy: QoS 1 under the faults
it survives, QoS 0 losing to a consumer kill, QoS 2 not giving exactly-once end to end, and Debian's default
persistence losing acknowledged messages to a kill. Short CI versions; the many-seed certification is
`onceproof suite run suites/certify.toml --only 'mqtt-*'`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from tests.conftest import require_setup

pytestmark = pytest.mark.integration

# consumers at 20 ms per message take about what two producers send at 100 msg/s
BUSY = ["--rate", "100", "--work-ms", "20"]


@pytest.fixture(scope="module", autouse=True)
def _mosquitto_installed():
    require_setup("mqtt")


def run(tmp_path: Path, profile: str, faults: str, *extra: str, secs: int = 12) -> dict:
    rc = main(["run", "--target", "mqtt", "--profile", profile, "--faults", faults, "--time", str(secs),
               "--seed", "1", "--store", str(tmp_path), *BUSY, *extra])
    results = json.loads((tmp_path / "latest" / "results.json").read_text())
    assert rc == {True: 0, False: 1, "unknown": 2}[results["valid"]]
    assert {f["fault"] for f in results["faults"]} == set(faults.split(","))
    return results


def test_qos1_loses_nothing_under_ack_loss_consumer_kills_and_a_restart(tmp_path):
    r = run(tmp_path, "qos1", "ack-loss,kill-consumer,restart", secs=15)
    c = r["delivery"]["counts"]
    assert r["valid"] is True, c
    assert c["lost"] == 0 and c["lost_effects"] == 0


def test_qos0_loses_what_a_killed_consumer_was_sent(tmp_path):
    r = run(tmp_path, "qos0", "kill-consumer")
    c = r["delivery"]["counts"]
    assert r["valid"] is True and c["lost_effects"] > 0 and c["duplicated_effects"] == 0, c


def test_qos2_is_not_exactly_once_end_to_end(tmp_path):
    """A consumer killed and replaced resumes its session, yet QoS 2 messages the broker had handed to the old
    client are gone (paho keeps a QoS 2 message in memory from its PUBREC to the broker's PUBREL)."""
    r = run(tmp_path, "qos2", "kill-consumer")
    assert r["valid"] is False and r["delivery"]["counts"]["lost"] > 0, r["delivery"]["counts"]


def test_debian_defaults_lose_acknowledged_messages_to_a_kill(tmp_path):
    """A snapshot every 1800 s: a SIGKILL takes every message and session the broker held."""
    r = run(tmp_path, "debian-defaults", "kill")
    assert r["valid"] is False and r["delivery"]["counts"]["lost"] > 0, r["delivery"]["counts"]
