"""The idempotency checker and the explanations of API histories, on hand-built histories: a key reused with
another payload must get a 4xx; a loss is explained by the faults during its requests, not after the answer."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

from checkers.history import read_history
from checkers.suite import check_history
from harness.report import html, junit
from tests.histories import Builder


class Api(Builder):
    """Payments as the payments workload records them: requests with keys, the provider's charges as polls."""

    def __init__(self) -> None:
        super().__init__()
        self.charges = 0

    def request(self, process: int, pid: str, key: str, amount: int, status: int | None, charge: str | None = None,
                **markers: object) -> None:
        self.op(process, "invoke", "send", {"id": pid, "key": "acct1", "producer": "p0", "idempotency_key": key,
                                            "amount": amount, **markers})
        if status is None:
            self.op(process, "info", "send", {"status": None}, error="TimeoutError: timed out")
        elif 200 <= status < 300:
            self.op(process, "ok", "send", {"id": pid, "key": "acct1", "status": status,
                                            **({"charge_id": charge} if charge else {})})
        else:
            self.op(process, "fail", "send", {"status": status}, error=f"HTTP {status}")

    def charge(self, pid: str, key: str, amount: int) -> str:
        self.charges += 1
        cid = f"ch_{self.charges}"
        self.op("reader", "invoke", "poll", {"consumer": "provider-reader"})
        self.op("reader", "ok", "poll", {"messages": [{"id": pid, "key": "acct1", "charge_id": cid,
                                                       "idempotency_key": key, "amount": amount}]})
        return cid

    def effects(self, counts: dict[str, int]) -> None:  # type: ignore[override]
        super().effects("harness", counts)


def check(b: Builder, tmp_path: Path, guarantee: str = "exactly-once") -> dict:
    return check_history(read_history(b.write(tmp_path / "history.jsonl")), guarantee)


def text(page: str) -> str:
    """The page's words, as a reader sees them."""
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)).replace(" .", ".").replace(" ,", ","))


def paid(b: Api, pid: str, key: str, amount: int) -> str:
    cid = b.charge(pid, key, amount)
    b.request(0, pid, key, amount, 201, cid)
    return cid


def test_a_key_reused_with_another_amount_and_answered_with_the_first_charge_is_an_anomaly(tmp_path):
    b = Api()
    cid = paid(b, "p2-0", "key-p2-0", 101)
    b.request(0, "p2-0", "key-p2-0", 102, 201, cid, reuse=True)  # the fingerprint covered only the id
    b.fault("start-fault", "ack-loss@service")
    b.fault("stop-fault", "ack-loss@service")
    b.effects({"p2-0": 1})
    r = check(b, tmp_path)
    idem = r["idempotency"]
    assert idem["applicable"] and idem["counts"] == {"requests": 2, "keys": 1, "reused": 1, "key_reuse_accepted": 1}
    assert r["valid"] is False and idem["valid"] is False
    assert r["delivery"]["valid"] is True  # no effect differs: only the answer shows it
    e = idem["key_reuse_accepted"][0]
    assert e["key"] == "key-p2-0" and e["differs_in"] == ["amount"]
    assert e["first"]["payload"]["amount"] == 101 and e["request"]["payload"]["amount"] == 102
    assert e["answer_names"]["payment"] == "p2-0" and e["answer_names"]["of_this_payload"] is False
    assert e["faults"] == []  # the fault came after the answer
    words = text(html.render(r))
    assert ("Key key-p2-0 was first used for payment p2-0 (line 3, answered 201 with charge ch_1), then sent again "
            "with another payload (amount 101 → 102)") in words
    assert ("answered 201 with charge ch_1. That charge was executed for payment p2-0 (key 'acct1', amount 101): the "
            "answer replayed it, so the client was told a charge of its payload happened that never did. No fault "
            "overlapped the request.") in words
    assert "idempotency: INVALID" in words
    assert 'classname="onceproof.idempotency"' in junit.render(r) and "key_reuse_accepted 1" in junit.render(r)


def test_claims_of_less_than_exactly_once_report_an_accepted_reuse_without_failing(tmp_path):
    b = Api()
    paid(b, "p2-0", "key-p2-0", 101)
    cid = b.charge("p2-0", "key-p2-0", 102)  # a service that ignores keys charges the new payload
    b.request(0, "p2-0", "key-p2-0", 102, 201, cid, reuse=True)
    b.effects({"p2-0": 2})
    r = check(b, tmp_path, "at-least-once")
    assert r["valid"] is True and r["idempotency"]["counts"]["key_reuse_accepted"] == 1
    assert r["idempotency"]["holds"] == {"at-most-once": True, "at-least-once": True, "exactly-once": False}
    e = r["idempotency"]["key_reuse_accepted"][0]
    assert e["answer_names"]["of_this_payload"] is True
    assert "That charge was executed for this payload" in text(html.render(r))


def test_reuses_answered_4xx_and_keys_first_refused_are_no_anomaly(tmp_path):
    b = Api()
    paid(b, "p0-0", "key-p0-0", 100)
    b.request(0, "p0-0", "key-p0-0", 101, 422, reuse=True)
    b.request(0, "p0-0.reuse", "key-p0-0", 102, 422, reuse=True)
    b.request(1, "p1-0", "key-p1-0", 100, 402)  # refused: bound nothing, so another payload may use the key
    paid(b, "p1-0", "key-p1-0", 105)
    b.effects({"p0-0": 1, "p1-0": 1})
    r = check(b, tmp_path)
    assert r["valid"] is True
    assert r["idempotency"]["counts"] == {"requests": 5, "keys": 2, "reused": 2, "key_reuse_accepted": 0}
    assert not any("partition and offset" in w for w in r["warnings"])  # API requests have no positions
    assert "Idempotency keys: VALID" in text(html.render(r))


def test_a_lost_effect_whose_only_faults_start_after_the_answer_names_what_the_answer_replayed(tmp_path):
    b = Api()
    cid = paid(b, "p2-0", "key-p2-0", 101)
    b.request(0, "p2-0.reuse", "key-p2-0", 103, 201, cid, reuse=True)  # replayed the first answer
    for _ in range(30):  # later payments of the same producer: no "lost in the middle" for requests
        n = b.charges
        paid(b, f"p2-{n + 1}", f"key-p2-{n + 1}", 100)
    b.fault("start-fault", "ack-loss@provider", ["payments-provider"])
    b.fault("stop-fault", "ack-loss@provider", ["payments-provider"])
    b.fault("start-fault", "kill@service", ["payments-service-1"])
    b.fault("stop-fault", "kill@service", ["payments-service-1"])
    b.effects({"p2-0": 1, **{f"p2-{i}": 1 for i in range(2, 32)}})
    r = check(b, tmp_path)
    d = r["delivery"]
    assert d["lost_effects"] == ["p2-0.reuse"] and d["api"] is True and d["lost_middle"] == []
    e = d["explanations"]["p2-0.reuse"]
    assert e["faults"] == [] and "later_delivered" not in e
    (send,) = e["sends"]
    assert send["status"] == 201 and send["charge_id"] == cid and send["reuse"] is True
    assert send["idempotency_key"] == "key-p2-0"
    assert send["replays"]["payment"] == "p2-0" and send["replays"]["differs_in"] == ["amount", "id"]
    words = text(html.render(r))
    assert ("key key-p2-0 · amount 103 · answered 201 · charge ch_1 the key again, another payload replays charge "
            "ch_1, executed for payment p2-0 (key acct1, amount 101): no charge of this request's payload") in words
    assert "likely cause" not in words and "later message" not in words and "in the middle" not in words
    assert "Anomalous payments" in words


def test_a_loss_lists_the_faults_that_overlapped_its_requests(tmp_path):
    b = Api()
    b.fault("start-fault", "ack-loss@service", ["payments-service-1"])
    b.request(0, "p0-0", "key-p0-0", 100, None)
    b.request(1, "p0-0", "key-p0-0", 100, 201, "ch_9")  # names a charge nobody executed
    b.fault("stop-fault", "ack-loss@service", ["payments-service-1"])
    b.fault("start-fault", "kill@service", ["payments-service-1"])
    b.fault("stop-fault", "kill@service", ["payments-service-1"])
    b.effects({})
    r = check(b, tmp_path)
    e = r["delivery"]["explanations"]["p0-0"]
    assert [f["fault"] for f in e["faults"]] == ["ack-loss@service"]
    assert not any(f.get("likely_cause") for f in e["faults"])
    assert e["sends"][1]["replays"] == {"charge_id": "ch_9", "payment": None,
                                        "note": "no execution in the history carries this charge id"}


def test_queue_histories_are_not_judged_for_keys(tmp_path):
    b = Builder()
    b.send(0, "m1")
    b.poll(1, ["m1"])
    r = check(b, tmp_path)
    assert r["idempotency"]["applicable"] is False and r["valid"] is True and "api" not in r["delivery"]
    assert any("partition and offset" in w for w in r["warnings"])
    assert "idempotency" not in junit.render(r) and "Idempotency keys" not in html.render(r)
