"""`onceproof import` and `check --from`: Jepsen histories (hand-made EDN in Jepsen's shapes) as history-v1."""

from __future__ import annotations

import json
from pathlib import Path

from harness.cli import main

QUEUE = """\
{:type :invoke, :f :enqueue, :value 1, :process 0, :time 1000, :index 0}
{:type :ok, :f :enqueue, :value 1, :process 0, :time 2000, :index 1}
{:type :invoke, :f :enqueue, :value 2, :process 1, :time 2100, :index 2}
{:type :ok, :f :enqueue, :value 2, :process 1, :time 2200, :index 3}
{:type :invoke, :f :enqueue, :value 3, :process 0, :time 2300, :index 4}
{:type :info, :f :enqueue, :value 3, :process 0, :time 2400, :index 5, :error :timeout}
{:type :info, :f :start, :process :nemesis, :time 2500, :value ["n1" "n2"]}
{:type :invoke, :f :dequeue, :value nil, :process 2, :time 3000, :index 6}
{:type :ok, :f :dequeue, :value 1, :process 2, :time 3100, :index 7}
{:type :info, :f :stop, :process :nemesis, :time 3200, :value nil}
{:type :invoke, :f :dequeue, :value nil, :process 2, :time 3300, :index 8}
{:type :fail, :f :dequeue, :value nil, :process 2, :time 3400, :index 9}
{:type :invoke, :f :drain, :value nil, :process 3, :time 4000, :index 10}
{:type :ok, :f :drain, :value [3 9], :process 3, :time 4100, :index 11}
"""

KAFKA = """\
{:type :invoke, :f :send, :value [[:send 5 1]], :process 0, :time 100}
{:type :ok, :f :send, :value [[:send 5 [0 1]]], :process 0, :time 200}
{:type :invoke, :f :txn, :value [[:send 5 2] [:send 6 1]], :process 1, :time 300}
{:type :ok, :f :txn, :value [[:send 5 [1 2]] [:send 6 [0 1]]], :process 1, :time 400}
{:type :invoke, :f :txn, :value [[:send 6 2] [:poll]], :process 2, :time 500}
{:type :fail, :f :txn, :value [[:send 6 2] [:poll {5 [[0 1]]}]], :process 2, :time 600}
{:type :invoke, :f :assign, :value [5 6], :process 3, :time 650}
{:type :ok, :f :assign, :value [5 6], :process 3, :time 660}
{:type :invoke, :f :poll, :value [[:poll]], :process 3, :time 700}
{:type :ok, :f :poll, :value [[:poll {5 [[0 1] [1 2]], 6 [[0 1]]}]], :process 3, :time 800}
"""


def imported(tmp_path: Path, text: str) -> tuple[list[dict], Path]:
    src = tmp_path / "history.edn"
    src.write_text(text)
    out = tmp_path / "h.jsonl"
    assert main(["import", "jepsen-edn", str(src), "--out", str(out)]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()], out


def test_a_queue_history_keeps_jepsens_verdict(tmp_path):
    ops, out = imported(tmp_path, QUEUE)
    assert [o["f"] for o in ops if o["process"] == "nemesis"] == ["start-fault", "stop-fault"]
    assert main(["check", str(out), "--out", str(tmp_path / "r")]) == 1
    d = json.loads((tmp_path / "r" / "results.json").read_text())["delivery"]
    assert d["lost"] == ["2"]  # acknowledged, never dequeued: Jepsen's total-queue calls it lost too
    assert d["unexpected"] == ["9"]  # dequeued, never enqueued
    assert d["counts"]["recovered"] == 1  # 3: unknown enqueue, then drained


def test_kafka_micro_ops_become_sends_and_polls_with_their_offsets(tmp_path):
    ops, out = imported(tmp_path, KAFKA)
    sends = [o for o in ops if o["f"] == "send" and o["type"] == "ok"]
    assert [(s["value"]["id"], s["value"]["offset"]) for s in sends] == [("5:1", 0), ("5:2", 1), ("6:1", 0)]
    failed = [o for o in ops if o["f"] == "send" and o["type"] == "fail"]
    assert [o["process"] for o in failed] == [2]  # the aborted transaction's send
    polls = [o for o in ops if o["f"] == "poll" and o["type"] == "ok"]
    assert len(polls) == 1  # the aborted transaction's poll delivered nothing
    assert {m["id"] for m in polls[0]["value"]["messages"]} == {"5:1", "5:2", "6:1"}
    assert [o["f"] for o in ops if o["process"] == 3][:2] == ["assign", "assign"]
    for p in {o["process"] for o in ops}:  # one operation at a time per process
        mine = [o["type"] for o in ops if o["process"] == p]
        assert all(a == "invoke" and b != "invoke" for a, b in zip(mine[::2], mine[1::2], strict=True))
    assert main(["check", str(out), "--out", str(tmp_path / "r")]) == 0


def test_check_from_imports_then_checks(tmp_path):
    src = tmp_path / "history.edn"
    src.write_text(KAFKA)
    assert main(["check", "--from", "jepsen-edn", str(src), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "history.jsonl").exists() and (tmp_path / "r" / "results.json").exists()


def test_a_line_that_is_not_a_jepsen_operation_names_file_and_line(tmp_path, capsys):
    src = tmp_path / "history.edn"
    src.write_text(KAFKA + "{:type :ok, :f :poll, :process 3}\n")
    out = tmp_path / "h.jsonl"
    assert main(["import", "jepsen-edn", str(src), "--out", str(out)]) == 2
    assert f"{src}:11: field :time is missing" in capsys.readouterr().err
    assert not out.exists()  # nothing half-written


FIXTURE = Path(__file__).resolve().parent / "fixtures" / "kafka-verifiable"


def test_kafka_verifiable_logs_from_a_leader_kill_lose_exactly_the_ids_an_independent_count_loses(tmp_path):
    """Real logs (tests/fixtures/kafka-verifiable/record.py: acks=1, slow replication, the leader of partition 0
    SIGKILLed mid-run): the checker's lost ids are the acknowledged values the consumer never read."""
    import gzip

    producer, consumer = tmp_path / "producer.log", tmp_path / "consumer.log"
    for f in (producer, consumer):  # kept compressed: as the tools wrote them, 0.9 MB
        f.write_bytes(gzip.decompress((FIXTURE / (f.name + ".gz")).read_bytes()))
    acked, consumed = set(), set()
    for line in producer.read_text().splitlines():
        if line.startswith("{") and (e := json.loads(line))["name"] == "producer_send_success":
            acked.add(e["value"])
    for line in consumer.read_text().splitlines():
        if line.startswith("{") and (e := json.loads(line))["name"] == "record_data":
            consumed.add(e["value"])
    rc = main(["check", "--from", "kafka-verifiable", str(consumer), str(producer), "--out", str(tmp_path / "r"),
               "--guarantee", "at-least-once"])
    r = json.loads((tmp_path / "r" / "results.json").read_text())
    assert len(acked - consumed) == 109  # this recording lost 109 acknowledged records
    assert set(r["delivery"]["lost"]) == acked - consumed and rc == 1
    # the producer is named on each send (one process per send), so each loss with later records of the same
    # producer delivered is lost in the middle; the assignments reset the consumer's tracking
    assert r["delivery"]["counts"]["lost_middle"] == 109
    assert r["log"]["counts"]["inconsistent_offsets"] == 109 and r["log"]["counts"]["nonmonotonic"] == 0
    assert r["log"]["applicable"] is True


def test_kafka_verifiable_send_errors_that_mean_not_written_are_fail(tmp_path):
    from checkers.importers.kafka_verifiable import outcome

    assert outcome("org.apache.kafka.common.errors.NotLeaderOrFollowerException") == "fail"
    assert outcome("org.apache.kafka.common.errors.TimeoutException") == "info"
    assert outcome("org.apache.kafka.common.errors.NotEnoughReplicasAfterAppendException") == "info"


def test_a_consumer_log_without_verbose_records_is_refused(tmp_path, capsys):
    log = tmp_path / "consumer.log"
    log.write_text('{"timestamp":1,"name":"records_consumed","count":2,"partitions":[]}\n')
    assert main(["import", "kafka-verifiable", str(log), "--out", str(tmp_path / "h.jsonl")]) == 2
    assert "--verbose" in capsys.readouterr().err
