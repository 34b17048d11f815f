"""Known answers against a real 3-node NATS JetStream cluster (Debian's nats-server) through real
Toxiproxy: each profile under the faults it claims to survive, each unsafe one under the fault that breaks
it. Short CI versions; the many-seed certification is `onceproof suite run suites/certify.toml --only 'nats-*'`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main

pytestmark = pytest.mark.integration

# consumers at 20 ms per message take about what two producers send at 100 msg/s: batches are full, so a
# consumer kill lands between the effects of a batch and its acknowledgements
BUSY = ["--rate", "100", "--work-ms", "20"]


@pytest.fixture(scope="module", autouse=True)
def _nats_installed():
    from harness import setup

    try:
        setup.install(["nats"], progress=lambda *a: None)
    except Exception as e:  # no apt: say why instead of failing obscurely
        pytest.skip(f"NATS cannot be set up here: {e}")


def run(tmp_path: Path, profile: str, faults: str, *extra: str, secs: int = 12, runtime: str = "local") -> dict:
    rc = main(["run", "--target", "nats", "--profile", profile, "--faults", faults, "--time", str(secs),
               "--seed", "1", "--store", str(tmp_path), "--runtime", runtime, *extra])
    results = json.loads((tmp_path / "latest" / "results.json").read_text())
    assert rc == {True: 0, False: 1, "unknown": 2}[results["valid"]]
    assert results["log"]["applicable"] is True  # sends and deliveries carry the stream sequence
    assert {f["fault"] for f in results["faults"]} == set(faults.split(","))
    return results


def test_at_most_once_loses_effects_but_never_duplicates_under_kill_consumer(tmp_path):
    r = run(tmp_path, "at-most-once", "kill-consumer", *BUSY)
    c = r["delivery"]["counts"]
    assert c["lost_effects"] > 0 and c["duplicated_effects"] == 0
    assert r["valid"] is True and r["delivery"]["holds"]["at-least-once"] is False


def test_at_least_once_duplicates_but_never_loses_under_kill_consumer(tmp_path):
    r = run(tmp_path, "at-least-once", "kill-consumer", *BUSY)
    c = r["delivery"]["counts"]
    assert c["duplicated"] > 0 and c["duplicated_effects"] > 0
    assert c["lost"] == 0 and c["lost_effects"] == 0
    assert r["valid"] is True


def test_exactly_once_survives_ack_loss_kills_and_a_leader_kill(tmp_path):
    r = run(tmp_path, "exactly-once", "ack-loss,kill-consumer,kill-producer,kill-leader", *BUSY, secs=20)
    c = r["delivery"]["counts"]
    assert r["valid"] is True, c
    assert c["lost"] == 0 and c["lost_effects"] == 0 and c["duplicated_effects"] == 0
    assert r["log"]["counts"]["duplicates"] == 0  # retries with the same Nats-Msg-Id were deduplicated
    assert r["log"]["final_read"]["absent_acknowledged"] == 0


def test_r1_memory_stream_loses_acknowledged_messages_when_its_node_is_killed(tmp_path):
    """Consumers slower than producers: the stream holds a backlog when its one node dies, restarts empty
    and numbers new messages from 1 again."""
    r = run(tmp_path, "r1-memory", "kill-leader", "--rate", "200", "--work-ms", "20")
    assert r["valid"] is False
    assert r["delivery"]["counts"]["lost"] > 0
    assert r["log"]["counts"]["inconsistent_offsets"] > 0  # sequences reused for other messages
    assert r["log"]["final_read"]["absent_acknowledged"] > 0


def test_a_short_dedup_window_lets_a_retry_through_twice(tmp_path):
    """A publish whose reply is lost times out (2 s) and is retried with the same Nats-Msg-Id after the
    1 s window: the stream stores it again, and the plain double-ack consumer applies it twice."""
    r = run(tmp_path, "short-dedup-window", "ack-loss", "--rate", "200", secs=16)
    c = r["delivery"]["counts"]
    assert r["valid"] is False
    assert c["duplicated_effects"] > 0 and r["log"]["counts"]["duplicates"] > 0
    assert c["lost"] == 0


def test_exactly_once_survives_leader_kills_and_pauses_in_containers(tmp_path):
    """Containers: the leader's container SIGKILLed and frozen (docker pause), a consumer's container killed.
    (Under partitions the same profile is not always valid on 2.9.10: see docs/targets/nats.md.)"""
    from tests.conftest import docker_images

    docker_images("nats")
    r = run(tmp_path, "exactly-once", "kill-leader,pause-leader,kill-consumer", *BUSY, secs=20, runtime="docker")
    c = r["delivery"]["counts"]
    assert r["valid"] is True, c
    assert c["lost"] == 0 and c["lost_effects"] == 0 and c["duplicated_effects"] == 0


def test_cost_puts_nats_bench_beside_the_harness(tmp_path):
    """`onceproof cost` runs natscli's `nats bench` (built by setup) against the profile's own nodes, paced at
    the offered rate, with the profile's storage and replicas."""
    assert main(["cost", "--target", "nats", "--profiles", "r1-memory", "--time", "4", "--store", str(tmp_path)]) == 0
    (row,) = json.loads((tmp_path / "cost.json").read_text())["profiles"]
    n = row["native"]
    assert n["tool"].startswith("nats bench") and n["paced"], n
    assert 150 <= n["acked_per_s"] <= 250 and n["send_p50_ms"] > 0
    assert "--storage memory --replicas 1" in n["command"]


lossy = pytest.mark.skipif(not __import__("harness.lossyfs").lossyfs.available()[0],
                           reason="no lossy disks here (FUSE): onceproof doctor says why")


@lossy
def test_the_default_two_minute_sync_loses_acknowledged_messages_when_every_node_loses_power(tmp_path):
    """nats-server 2.12.1, the version Jepsen analysed: a publish is acknowledged once the stream's raft group
    has it in memory, and the files are fsynced every two minutes, so a power cut of every node takes what the
    last seconds acknowledged (Jepsen: 131,418 of 930,005 in one run). The consumers are slower than the
    producers (--work-ms 40), so acknowledged messages wait in the stream when power fails; a message already
    delivered is not lost to a consumer even if the stream forgets it."""
    r = run(tmp_path, "at-least-once", "power-loss-all", "--server-version", "2.12.1", "--work-ms", "40", secs=10)
    c = r["delivery"]["counts"]
    assert r["valid"] is False and c["lost"] > 0, c


@lossy
def test_sync_interval_always_survives_a_majority_losing_power(tmp_path):
    r = run(tmp_path, "at-least-once-sync-always", "power-loss-majority", "--server-version", "2.12.1",
            "--work-ms", "40", secs=10)
    c = r["delivery"]["counts"]
    assert r["valid"] is True and c["lost"] == 0 and c["lost_effects"] == 0, c
