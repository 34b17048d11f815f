"""Known answers of the payments target on real processes: PostgreSQL 15, the reference service, the
provider and Toxiproxy, with faults aimed at one hop or node (`ack-loss@provider`, `kill@service`, ...)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from tests.conftest import require_setup

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def _payments_installed():
    require_setup("payments")


def run(tmp_path: Path, profile: str, faults: str, *extra: str, secs: int = 15, seed: int = 1) -> dict:
    rc = main(["run", "--target", "payments", "--profile", profile, "--faults", faults, "--time", str(secs),
               "--rate", "50", "--seed", str(seed), "--store", str(tmp_path), *extra])
    results = json.loads((tmp_path / "latest" / "results.json").read_text())
    assert rc == {True: 0, False: 1, "unknown": 2}[results["valid"]], results.get("reasons")
    assert {f["fault"] for f in results["faults"]} == set(faults.split(","))
    return results


def counts(r: dict) -> dict:
    return r["delivery"]["counts"]


def test_idempotency_key_survives_lost_responses_on_both_hops_kills_pauses_and_a_database_restart(tmp_path):
    r = run(tmp_path, "idempotency-key", "ack-loss@service,ack-loss@provider,kill@service,pause@service,restart@db",
            secs=25)
    c = counts(r)
    assert r["valid"] is True, c
    assert c["duplicated_effects"] == 0 and c["lost_effects"] == 0 and c["acknowledged"] > 100
    history = (tmp_path / "latest" / "history.jsonl").read_text()
    assert history.count('"type":"info","f":"send"') > 10  # outcomes the faults made unknown, resolved by retries
    assert r["idempotency"]["counts"]["reused"] > 10 and r["idempotency"]["valid"] is True
    # the provider's executions reach the history near their time also while its answers are lost: the reader
    # goes past the proxy (a poll every 0.2 s)
    # (every execution before the load's end: the drain's reader starts later)
    ops = [json.loads(line) for line in history.splitlines()]
    end = max(f["stop"] for f in r["faults"])
    lost = [(f["start"], f["stop"]) for f in r["faults"] if f["fault"] == "ack-loss@provider"]
    seen = [(op["time"] - m["executed_at"], m["executed_at"]) for op in ops if op["f"] == "poll"
            and op["type"] == "ok" for m in op["value"]["messages"] if m["executed_at"] < end]
    assert len(seen) > 100 and max(lag for lag, _ in seen) < 0.5e9, max(seen)
    assert any(a <= t <= b for _, t in seen for a, b in lost)


def test_no_key_charges_twice_when_a_response_is_lost(tmp_path):
    r = run(tmp_path, "no-key", "ack-loss@service")
    c = counts(r)
    assert c["duplicated_effects"] > 0 and c["lost_effects"] == 0
    assert r["valid"] is True  # it claims at-least-once: charged, perhaps twice


def test_cache_marker_charges_twice_across_two_service_processes(tmp_path):
    r = run(tmp_path, "cache-marker", "ack-loss@service", "--nodes", "2")
    assert counts(r)["duplicated_effects"] > 0 and r["valid"] is False


def test_provider_in_txn_charges_twice_when_killed_between_the_charge_and_the_commit(tmp_path):
    r = run(tmp_path, "provider-in-txn", "kill@service", secs=20)
    assert counts(r)["duplicated_effects"] > 0 and r["valid"] is False


def test_a_fault_aimed_at_a_role_no_node_has_is_refused(tmp_path, capsys):
    assert main(["run", "--target", "payments", "--faults", "kill@broker", "--store", str(tmp_path)]) == 2
    assert "no node of payments has the role 'broker'" in capsys.readouterr().err


def test_cache_marker_charges_twice_after_a_pause_longer_than_its_marker(tmp_path):
    # each pause catches a charge between its marker and its cached answer (the profile's 250 ms of sliced
    # bookkeeping), whose retry charges again after the resume: 4 double charges in each of 6 runs of seed 1
    r = run(tmp_path, "cache-marker", "pause-long@service", secs=20)
    assert counts(r)["duplicated_effects"] > 0 and r["valid"] is False


def test_idempotency_key_holds_across_two_processes_and_a_pause_longer_than_a_marker_would_live(tmp_path):
    r = run(tmp_path, "idempotency-key", "pause-long@service,ack-loss@service", "--nodes", "2", secs=20)
    c = counts(r)
    assert r["valid"] is True and c["duplicated_effects"] == 0 and c["lost_effects"] == 0, c


def test_the_docker_runtime_is_refused_until_there_is_an_image(tmp_path, capsys):
    assert main(["run", "--target", "payments", "--runtime", "docker", "--store", str(tmp_path)]) == 2
    assert "runs with --runtime local only" in capsys.readouterr().err


def test_a_claim_committed_before_the_provider_call_survives_database_kills(tmp_path):
    r = run(tmp_path, "claim-first", "kill@db")
    c = counts(r)
    assert r["valid"] is True and c["duplicated_effects"] == 0, c


def test_a_claim_committed_asynchronously_is_forgotten_by_a_database_crash_and_the_retry_charges_again(tmp_path):
    """synchronous_commit=off: the commit returns before its WAL is flushed, and a SIGKILLed PostgreSQL forgets
    the claims of its last fraction of a second (the docs: up to three times wal_writer_delay, 600 ms)."""
    r = run(tmp_path, "claim-first-async-commit", "kill@db")
    assert r["valid"] is False and counts(r)["duplicated_effects"] > 0, counts(r)


lossy = pytest.mark.skipif(not __import__("harness.lossyfs").lossyfs.available()[0],
                           reason="no lossy disks here (FUSE): onceproof doctor says why")


@lossy
def test_a_provider_that_answers_before_its_record_is_on_disk_forgets_charges_in_a_power_loss(tmp_path):
    r = run(tmp_path, "provider-unsynced", "power-loss@provider")
    assert r["valid"] is False and counts(r)["lost_effects"] > 0, counts(r)


@lossy
def test_the_reference_survives_the_provider_losing_power(tmp_path):
    r = run(tmp_path, "idempotency-key", "power-loss@provider")
    c = counts(r)
    assert r["valid"] is True and c["lost_effects"] == 0 and c["duplicated_effects"] == 0, c
