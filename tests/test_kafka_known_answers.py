"""Known answers against a real 3-node Kafka cluster through real Toxiproxy (short CI versions; the
long, many-seed certification is `onceproof suite run suites/certify.toml --only 'kafka-*'`)."""

from __future__ import annotations

import json
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


@pytest.fixture(params=["local", "docker"])
def runtime(request) -> str:
    """The known answers hold for local processes and for containers alike."""
    if request.param == "docker":
        from tests.conftest import docker_images

        docker_images("kafka")
    return request.param


def run(tmp_path: Path, profile: str, faults: str, *extra: str, runtime: str = "local", secs: int = 20) -> dict:
    rc = main(["run", "--target", "kafka", "--profile", profile, "--faults", faults, "--time", str(secs),
               "--seed", "1", "--store", str(tmp_path), "--runtime", runtime, *extra])
    results = json.loads((tmp_path / "latest" / "results.json").read_text())
    assert rc == {True: 0, False: 1, "unknown": 2}[results["valid"]]
    assert results["log"]["applicable"] is True  # Kafka histories carry partitions and offsets
    assert results["log"]["final_read"]["records"] > 0  # the whole input topic, read again from the beginning
    return results


def test_acks1_loses_acknowledged_writes_when_the_leader_is_killed(tmp_path, runtime):
    r = run(tmp_path, "acks1", "kill-leader", "--producers", "4", "--rate", "600", "--consumers", "4", "--work-ms", "1",
            runtime=runtime)
    assert r["valid"] is False
    assert r["delivery"]["counts"]["lost"] > 0
    assert r["log"]["final_read"]["absent_acknowledged"] > 0  # lost from the log itself, not only unread


def test_acks1_loses_acknowledged_writes_when_the_leader_is_cut_off_from_the_other_brokers(tmp_path):
    """Containers only: the leader keeps taking acks=1 writes from clients (its proxy still reaches it)
    while the others elect a new leader; at heal it truncates what it acknowledged alone."""
    from tests.conftest import docker_images

    docker_images("kafka")
    r = run(tmp_path, "acks1", "partition-isolate-leader", "--producers", "4", "--rate", "300",
            runtime="docker", secs=24)
    c = r["delivery"]["counts"]
    assert r["valid"] is False
    assert c["lost"] > 0
    assert r["log"]["counts"]["inconsistent_offsets"] > 0  # the truncated offsets were reused
    assert r["log"]["final_read"]["absent_acknowledged"] > 0
    assert {f["fault"] for f in r["faults"]} == {"partition-isolate-leader"}


def test_at_least_once_duplicates_but_never_loses_under_kill_consumer(tmp_path):
    """Each kill waits until its victim has received messages (a fresh replacement may not have joined
    yet), then a seeded moment more, so it lands between an effect and the commit."""
    r = run(tmp_path, "at-least-once", "kill-consumer", "--rate", "100", "--work-ms", "30")
    c = r["delivery"]["counts"]
    assert c["lost"] == 0 and c["lost_effects"] == 0
    assert c["duplicated"] > 0
    assert r["valid"] is True


def test_exactly_once_survives_leader_kill_pause_ack_loss_and_consumer_kill(tmp_path, runtime):
    r = run(tmp_path, "exactly-once", "kill-leader,pause-leader,ack-loss,kill-consumer", "--producers", "4",
            "--rate", "40", runtime=runtime)
    c = r["delivery"]["counts"]
    assert r["valid"] is True, c
    assert c["lost"] == 0 and c["lost_effects"] == 0 and c["duplicated_effects"] == 0
    assert {f["fault"] for f in r["faults"]} == {"kill-leader", "pause-leader", "ack-loss", "kill-consumer"}


def test_cost_puts_producer_performance_beside_the_harness(tmp_path):
    """`onceproof cost` runs Kafka's ProducerPerformance against the profile's own cluster at the offered rate,
    transactional where the profile is; the harness's producers share one batching client per worker."""
    assert main(["cost", "--target", "kafka", "--profiles", "exactly-once", "--time", "5", "--in-flight", "2",
                 "--store", str(tmp_path)]) in (0, 1)
    (row,) = json.loads((tmp_path / "cost.json").read_text())["profiles"]
    assert row["verdict"] is True and row["acked_per_s"] > 0
    n = row["native"]
    assert n["tool"] == "Kafka ProducerPerformance" and n["paced"], n
    assert n["acked_per_s"] > 100 and "--transaction-duration-ms" in n["command"]


lossy = pytest.mark.skipif(not __import__("harness.lossyfs").lossyfs.available()[0],
                           reason="no lossy disks here (FUSE): onceproof doctor says why")


@lossy
def test_acknowledged_records_are_lost_when_every_broker_loses_power(tmp_path):
    """acks=all waits for every in-sync replica, but Kafka's default leaves fsync to the OS: a power cut of every
    broker at once takes what no broker had flushed. Lost acknowledged records, or their offsets reused by later
    ones (the log checker's inconsistent offsets)."""
    r = run(tmp_path, "at-least-once", "power-loss-all", secs=10)
    c, log = r["delivery"]["counts"], r["log"]["counts"]
    assert r["valid"] is False and c["lost"] + log["inconsistent_offsets"] > 0, (c, log)


@lossy
def test_flushing_every_message_survives_every_broker_losing_power(tmp_path):
    r = run(tmp_path, "at-least-once-flush", "power-loss-all", secs=10)
    c = r["delivery"]["counts"]
    assert r["valid"] is True and c["lost"] == 0 and r["log"]["counts"]["inconsistent_offsets"] == 0, c
