"""The shard tail's small questions, on hand-written shards."""

from __future__ import annotations

from harness.progress import ShardTail


def _write(path, *lines: str) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def test_a_consumer_counts_as_busy_only_after_a_poll_returned_messages(tmp_path):
    shard = tmp_path / "consumer-3.jsonl"
    tail = ShardTail(tmp_path)
    tail.poll()
    assert not tail.delivered_in(shard)  # not even started
    _write(shard,
           '{"process":3,"type":"invoke","f":"poll","value":{"consumer":"c3"},"time":1}',
           '{"process":3,"type":"ok","f":"poll","value":{"messages":[]},"time":2}')
    tail.poll()
    assert not tail.delivered_in(shard)
    with open(shard, "a") as fh:
        fh.write('{"process":3,"type":"info","f":"poll","value":null,"time":3,"error":"timeout"}\n'
                 '{"process":3,"type":"ok","f":"poll","value":{"messages":[{"id":"p0-1"}]},"time":4}\n')
    tail.poll()
    assert tail.delivered_in(shard)


def test_the_tail_counts_sends_acks_and_deliveries_once(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    _write(shards / "producer-0.jsonl",
           '{"process":0,"type":"invoke","f":"send","value":{"id":"p0-1"},"time":1}',
           '{"process":0,"type":"ok","f":"send","value":{"id":"p0-1"},"time":2}')
    tail = ShardTail(shards)
    assert tail.poll() == 0 and (tail.sent, tail.acked) == (1, 1)
    with open(shards / "consumer-1.jsonl", "w") as fh:
        fh.write('{"process":1,"type":"ok","f":"poll","value":{"messages":[{"id":"p0-1"}]},"time":3}\n'
                 '{"process":1,"type":"ok","f":"poll"')  # a partial line waits for its end
    assert tail.poll() == 1
    assert tail.poll() == 0 and tail.delivered == 1
