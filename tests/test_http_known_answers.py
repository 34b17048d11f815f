"""`--target http --service-cmd`: a service written outside the project from docs/payments-contract.md alone
(tests/fixtures/tiny_payments.py) is certified, and a bug planted in it is caught."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from tests.conftest import require_setup

pytestmark = pytest.mark.integration
TINY = Path(__file__).resolve().parent / "fixtures" / "tiny_payments.py"


@pytest.fixture(scope="module", autouse=True)
def _installed():
    require_setup("http")


def certify(tmp_path: Path, cmd: str, faults: str) -> tuple[int, dict]:
    rc = main(["run", "--target", "http", "--service-cmd", cmd, "--faults", faults, "--time", "15", "--rate", "50",
               "--store", str(tmp_path)])
    return rc, json.loads((tmp_path / "latest" / "results.json").read_text())


def test_a_correct_service_of_our_users_passes(tmp_path):
    rc, r = certify(tmp_path, f"{sys.executable} {TINY}", "ack-loss@service,ack-loss@provider,kill@service")
    c = r["delivery"]["counts"]
    assert rc == 0 and r["valid"] is True, c
    assert c["duplicated_effects"] == 0 and c["acknowledged"] > 100
    assert r["idempotency"]["counts"]["reused"] > 10 and r["idempotency"]["counts"]["key_reuse_accepted"] == 0


def test_the_planted_bug_is_caught(tmp_path):
    rc, r = certify(tmp_path, f"BUG=1 {sys.executable} {TINY}", "ack-loss@service")
    assert rc == 1 and r["valid"] is False and r["delivery"]["counts"]["duplicated_effects"] > 0


def test_a_fingerprint_of_the_payment_id_alone_is_caught_by_its_answers(tmp_path, monkeypatch):
    # the same key and id with another amount gets the first charge back with a 201: no effect differs, the
    # answers show it. The command names the service by a path relative to where onceproof was started.
    monkeypatch.chdir(TINY.parent)
    rc, r = certify(tmp_path, f"BUG=id-only {sys.executable} {TINY.name}", "ack-loss@service")
    idem, c = r["idempotency"], r["delivery"]["counts"]
    assert rc == 1 and r["valid"] is False and idem["valid"] is False, idem["counts"]
    assert idem["counts"]["key_reuse_accepted"] > 10 and r["delivery"]["valid"] is True, c
    e = idem["key_reuse_accepted"][0]
    assert e["differs_in"] == ["amount"] and e["answer_names"]["of_this_payload"] is False
    assert e["answer_names"]["payment"] == e["first"]["id"] == e["request"]["id"]


def test_the_http_target_needs_a_service_command(tmp_path, capsys):
    assert main(["run", "--target", "http", "--time", "3", "--store", str(tmp_path)]) != 0
    assert "--service-cmd" in capsys.readouterr().err


def test_service_cmd_belongs_to_the_http_target(tmp_path, capsys):
    assert main(["run", "--target", "redis", "--service-cmd", "x", "--store", str(tmp_path)]) == 2
    assert "--service-cmd is not an option of target redis (targets that take it: http)" in capsys.readouterr().err


def _free_port() -> int:
    """A free port below Linux's ephemeral range (32768-60999), so that no port the harness asks the system for
    (bind to port 0) can be the same one before the user's service or the provider binds it."""
    import random
    import socket

    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000")


def _own_service(bug: bool) -> tuple[subprocess.Popen, int, int]:
    """The user's service, started by the user before the run (and listening before it starts): it charges
    through the provider at a port it was told, which the run then gives its provider (--provider-port)."""
    import socket
    import time

    port, provider = _free_port(), _free_port()
    env = {**os.environ, "PORT": str(port), "PROVIDER_URL": f"http://127.0.0.1:{provider}", "STORE": "memory",
           "BUG": "1" if bug else "0"}
    proc = subprocess.Popen([sys.executable, str(TINY)], env=env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    return proc, port, provider


@pytest.mark.parametrize("bug", [False, True], ids=["correct", "planted-bug"])
def test_a_service_the_harness_does_not_start_is_certified_through_network_faults(tmp_path, bug):
    proc, port, provider = _own_service(bug)
    try:
        rc = main(["run", "--target", "http", "--service-url", f"http://127.0.0.1:{port}", "--provider-port",
                   str(provider), "--faults", "ack-loss@service,ack-loss@provider", "--time", "12", "--rate", "50",
                   "--store", str(tmp_path)])
    finally:
        proc.kill()
        proc.wait()
    r = json.loads((tmp_path / "latest" / "results.json").read_text())
    c = r["delivery"]["counts"]
    if bug:
        assert rc == 1 and c["duplicated_effects"] > 0
    else:
        assert rc == 0 and r["valid"] is True and c["acknowledged"] > 50, c


def test_service_url_needs_the_provider_port(tmp_path, capsys):
    assert main(["run", "--target", "http", "--service-url", "http://127.0.0.1:9", "--time", "3",
                 "--store", str(tmp_path)]) != 0
    assert "--service-url needs --provider-port" in capsys.readouterr().err
