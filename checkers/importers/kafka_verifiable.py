"""Kafka's verifiable clients (`org.apache.kafka.tools.VerifiableProducer` and `VerifiableConsumer
--verbose`, the clients of Kafka's own system tests): their JSON event logs, one event per line, as one
history. Pass the producer's and the consumer's logs together, in any order; which is which is read from
the events.

The mapping, and why:
- Time: each event's `timestamp` (ms since the epoch) less the earliest of all the files, in ns. Events in
  the same millisecond keep their files' order.
- The producer logs only completions, so each send gets its invoke at its own completion time (zero-length
  operations: the log knows no more), and its own process (`vp<file>-<value>`, one send at a time as the
  contract wants), with `value.producer` naming the producer, so *lost in the middle* is judged per producer.
- The message id is the record's `value` (the producer's counter, unique per run); the key is the record's
  key; the partition is `<topic>-<partition>` and the offset the broker's.
- `producer_send_success` is `ok` with partition and offset. `producer_send_error` is `fail` when the
  exception means the broker did not append the record (with retries=0, as the system tests run it, nothing
  retries behind the tool's back): NOT_FAIL below. Everything else (timeouts, disconnects,
  NotEnoughReplicasAfterAppend, ...) is `info`: the record may be in the log.
- The consumer (`--verbose`): each run of `record_data` events is one poll whose messages are those records;
  `partitions_assigned` is an `assign`, so the log checker restarts the consumer's tracking after each
  rebalance. A consumer log without `record_data` (no `--verbose`) names no ids: an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

NAME = "kafka-verifiable"
DESCRIPTION = "event logs of Kafka's VerifiableProducer and VerifiableConsumer --verbose"
# exceptions of a failed send after which the record is certainly not in the log (rejected before append)
NOT_FAIL = ("NotLeaderOrFollowerException", "NotLeaderForPartitionException", "NotEnoughReplicasException",
            "RecordTooLargeException", "RecordBatchTooLargeException", "InvalidTopicException",
            "UnknownTopicOrPartitionException", "TopicAuthorizationException", "SerializationException",
            "InvalidRecordException", "InvalidRequiredAcksException", "ClusterAuthorizationException")
PRODUCER_EVENTS = ("producer_send_success", "producer_send_error")
CONSUMER_EVENTS = ("record_data", "records_consumed", "partitions_assigned", "partitions_revoked")


def _events(path: Path) -> list[tuple[int, int, dict[str, Any]]]:
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            text = line.strip()
            if not text.startswith("{"):
                continue  # the tools also print log lines of their own
            try:
                e = json.loads(text)
            except ValueError as err:
                raise ValueError(f"{path}:{n}: not a JSON event ({err})") from err
            if not isinstance(e, dict) or "name" not in e:
                continue
            if not isinstance(e.get("timestamp"), int):
                raise ValueError(f"{path}:{n}: event {e.get('name')!r} has no integer timestamp")
            out.append((e["timestamp"], n, e))
    return out


def outcome(exception: str) -> str:
    """fail when the exception means the record was not appended, else info."""
    return "fail" if exception.rsplit(".", 1)[-1] in NOT_FAIL else "info"


def convert(paths: list[Path]) -> Iterator[dict[str, Any]]:
    files = [(i, Path(p), _events(Path(p))) for i, p in enumerate(paths)]
    stamps = [ts for _, _, evs in files for ts, _, _ in evs]
    if not stamps:
        raise ValueError(f"no verifiable-client events in {', '.join(map(str, paths))}")
    t0 = min(stamps)
    ops: list[tuple[int, int, int, dict[str, Any]]] = []  # (time, file, order, op)
    for i, path, evs in files:
        names = {e["name"] for _, _, e in evs}
        if names & set(PRODUCER_EVENTS):
            ops += [(t, i, k, op) for k, (t, op) in enumerate(_producer(i, evs, t0))]
        elif names & set(CONSUMER_EVENTS):
            if "record_data" not in names and "records_consumed" in names:
                raise ValueError(f"{path}: a consumer log without record_data events: run VerifiableConsumer with "
                                 "--verbose, so the log names the records it consumed")
            ops += [(t, i, k, op) for k, (t, op) in enumerate(_consumer(i, evs, t0))]
        else:
            raise ValueError(f"{path}: neither a VerifiableProducer nor a VerifiableConsumer log")
    ops.sort(key=lambda x: (x[0], x[1], x[2]))
    for _, _, _, op in ops:
        yield op


def _ns(ts: int, t0: int) -> int:
    return (ts - t0) * 1_000_000


def _part(e: dict[str, Any]) -> str:
    return f"{e.get('topic')}-{e.get('partition')}"


def _producer(i: int, evs: list[tuple[int, int, dict[str, Any]]], t0: int) -> Iterator[tuple[int, dict[str, Any]]]:
    producer = f"vp{i}"
    for ts, _, e in evs:
        if e["name"] not in PRODUCER_EVENTS:
            continue
        t, mid = _ns(ts, t0), str(e.get("value"))
        proc = f"{producer}-{mid}"
        yield t, {"time": t, "process": proc, "type": "invoke", "f": "send",
                  "value": {"id": mid, "key": e.get("key"), "producer": producer}}
        if e["name"] == "producer_send_success":
            yield t, {"time": t, "process": proc, "type": "ok", "f": "send",
                      "value": {"id": mid, "key": e.get("key"), "partition": _part(e), "offset": e.get("offset")}}
        else:
            exc = str(e.get("exception", ""))
            yield t, {"time": t, "process": proc, "type": outcome(exc), "f": "send", "value": None,
                      "error": f"{exc.rsplit('.', 1)[-1]}: {e.get('message', '')}"}


def _consumer(i: int, evs: list[tuple[int, int, dict[str, Any]]], t0: int) -> Iterator[tuple[int, dict[str, Any]]]:
    proc = f"vc{i}"
    batch: list[tuple[int, dict[str, Any]]] = []

    def flush() -> Iterator[tuple[int, dict[str, Any]]]:
        if batch:
            first, last = _ns(batch[0][0], t0), _ns(batch[-1][0], t0)
            yield first, {"time": first, "process": proc, "type": "invoke", "f": "poll", "value": None}
            yield last, {"time": last, "process": proc, "type": "ok", "f": "poll", "value": {"messages": [
                {"id": str(e.get("value")), "key": e.get("key"), "partition": _part(e), "offset": e.get("offset")}
                for _, e in batch]}}
            batch.clear()

    for ts, _, e in evs:
        if e["name"] == "record_data":
            batch.append((ts, e))
            continue
        yield from flush()
        if e["name"] == "partitions_assigned":
            t = _ns(ts, t0)
            parts = [f"{p.get('topic')}-{p.get('partition')}" for p in e.get("partitions") or []]
            yield t, {"time": t, "process": proc, "type": "invoke", "f": "assign", "value": None}
            yield t, {"time": t, "process": proc, "type": "ok", "f": "assign", "value": {"partitions": parts}}
    yield from flush()
