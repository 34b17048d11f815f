"""Known answers against a real 3-node RabbitMQ cluster (Debian's rabbitmq-server 3.10.8) through real Toxiproxy:
each profile under the faults it claims to survive, the unsafe ones under the faults that break them. Short CI
versions; the many-seed certification is `onceproof suite run suites/certify.toml --only 'rabbitmq-*'`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from tests.conftest import require_setup

pytestmark = pytest.mark.integration

# consumers at 20 ms per message take about what two producers send at 100 msg/s: batches are full, so a
# consumer kill lands between the effects of a batch and its acknowledgement
BUSY = ["--rate", "100", "--work-ms", "20"]


@pytest.fixture(scope="module", autouse=True)
def _rabbitmq_installed():
    require_setup("rabbitmq")


def run(tmp_path: Path, profile: str, faults: str, *extra: str, secs: int = 12) -> dict:
    rc = main(["run", "--target", "rabbitmq", "--profile", profile, "--faults", faults, "--time", str(secs),
               "--seed", "1", "--store", str(tmp_path), *extra])
    results = json.loads((tmp_path / "latest" / "results.json").read_text())
    assert rc == {True: 0, False: 1, "unknown": 2}[results["valid"]]
    assert {f["fault"] for f in results["faults"]} == set(faults.split(","))
    return results


def test_autoack_loses_what_a_killed_consumer_held(tmp_path):
    """Automatic acks: the broker forgets a message once it is sent, so the deliveries a killed consumer had
    buffered or in hand are gone (at-most-once holds, at-least-once does not)."""
    r = run(tmp_path, "autoack", "kill-consumer", *BUSY)
    c = r["delivery"]["counts"]
    assert c["lost_effects"] > 0 and c["duplicated_effects"] == 0, c
    assert r["valid"] is True and r["delivery"]["holds"]["at-least-once"] is False


def test_quorum_never_loses_under_ack_loss_consumer_kills_and_a_leader_kill(tmp_path):
    r = run(tmp_path, "quorum", "ack-loss,kill-consumer,kill-leader", *BUSY)
    c = r["delivery"]["counts"]
    assert r["valid"] is True, c
    assert c["lost"] == 0 and c["lost_effects"] == 0
    assert r["redelivery"]["counts"]["unflagged_redeliveries"] == 0, r["redelivery"]["unflagged"][:3]


def test_quorum_idempotent_applies_every_effect_once_under_the_same_faults(tmp_path):
    r = run(tmp_path, "quorum-idempotent", "ack-loss,kill-consumer,kill-leader,pause-leader", *BUSY)
    c = r["delivery"]["counts"]
    assert r["valid"] is True, c
    assert c["lost"] == 0 and c["lost_effects"] == 0 and c["duplicated_effects"] == 0


def test_classic_mirrored_loses_confirmed_messages_when_an_unsynchronised_mirror_is_promoted(tmp_path):
    """Consumers slower than producers keep a backlog in the queue. A rolling restart leaves every mirror
    unsynchronised (a restarted mirror lacks what the queue held when it came back, and mirrors sync by hand by
    default); the leader's kill then promotes one of them (`ha-promote-on-failure: always`), and the confirmed
    messages only the old leader had are gone. No partition needed."""
    r = run(tmp_path, "classic-mirrored", "rolling-restart,kill-leader", "--rate", "200", "--work-ms", "20", secs=7)
    c = r["delivery"]["counts"]
    assert r["valid"] is False and c["lost"] > 0, c
