"""Kafka clients for the queue workload (kafka-python 3.0.12), with Jepsen's error mapping.

Producers send to the input topic; consumers apply each message's effect by producing it to the output
topic, and commit their offsets after processing (at-least-once), or, in the transactional profile,
read the input with read_committed and produce the output and the consumed offsets in one transaction
(consume-transform-produce). The effect store is the output topic, read back at the end.

Errors: a timeout, a network error or NOT_LEADER_OR_FOLLOWER (KAFKA-13574) on a produce is `info`; only
errors that prove the write was refused (NOT_ENOUGH_REPLICAS before the append, an unknown topic, a
record too large) are `fail`. The client never retries a send behind the harness's back, except the
idempotent producer's own retries, which the broker deduplicates by sequence number.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from plugin.target import Profile
from workloads.queue import Delivery, Outcome, RecordAck, Work

INPUT = "onceproof-in"
OUTPUT = "onceproof-out"
GROUP = "onceproof"
TRANSACTION_TIMEOUT_S = 10  # how long a killed transformer's open transaction holds read_committed readers
TXN_STEP_TIMEOUT_S = 20  # longest wait for AddOffsetsToTxn/TxnOffsetCommit or EndTxn before the outcome is unknown
OUTPUT_WAIT_S = 25  # a transformer's wait for its output records (the transactional delivery timeout is 20 s)

logging.getLogger("kafka").setLevel(logging.CRITICAL)  # the client logs every reconnect at ERROR


def _definite_failure(e: BaseException) -> bool:
    import kafka.errors as E

    definite = (E.NotEnoughReplicasError, E.UnknownTopicOrPartitionError, E.MessageSizeTooLargeError,
                E.RecordListTooLargeError if hasattr(E, "RecordListTooLargeError") else E.MessageSizeTooLargeError,
                E.InvalidTopicError, E.TopicAuthorizationFailedError)
    return isinstance(e, definite)


def classify_error(e: BaseException) -> Outcome:
    kind = "fail" if _definite_failure(e) else "info"
    return Outcome(kind, error=f"{type(e).__name__}: {e}")


def producer_config(profile: Profile, bootstrap: list[str]) -> dict[str, Any]:
    s = profile.settings
    cfg: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "acks": s["acks"],
        "enable_idempotence": bool(s.get("idempotence")),
        "linger_ms": 0,
        "request_timeout_ms": 4000,
        "max_block_ms": 8000,
        "metadata_max_age_ms": 5000,
        "reconnect_backoff_ms": 100,
        "reconnect_backoff_max_ms": 1000,
        "key_serializer": lambda k: None if k is None else str(k).encode(),
        "value_serializer": lambda v: json.dumps(v).encode(),
    }
    if cfg["enable_idempotence"]:
        # the idempotent producer's own retries are deduplicated by the broker (sequence numbers)
        cfg.update(retries=2**31 - 1, max_in_flight_requests_per_connection=1, delivery_timeout_ms=30000)
    else:
        cfg.update(retries=0, max_in_flight_requests_per_connection=1, delivery_timeout_ms=8000)
    return cfg


class KafkaQueueProducer:
    def __init__(self, bootstrap: list[str], profile: Profile):
        from kafka import KafkaProducer

        self.cfg = producer_config(profile, bootstrap)
        self.p = KafkaProducer(**self.cfg)
        self.wait_s = self.cfg["delivery_timeout_ms"] / 1000 + 5

    def send(self, mid: str, key: Any, amount: int) -> Outcome:
        try:
            md = self.p.send(INPUT, key=key, value={"id": mid, "amount": amount}).get(timeout=self.wait_s)
        except Exception as e:
            return classify_error(e)
        return Outcome("ok", {"id": mid, "key": key, "partition": md.partition, "offset": md.offset})

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.p.close(timeout=5)


def _deliveries(records: dict) -> list[Delivery]:
    out = []
    for tp, recs in records.items():
        for r in recs:
            try:
                v = json.loads(r.value)
                mid, amount = v["id"], int(v.get("amount", 1))
            except (ValueError, KeyError, TypeError):
                continue
            key = r.key.decode() if r.key is not None else None
            out.append(Delivery(id=mid, key=key, amount=amount, handle=(tp, r.offset), partition=tp.partition,
                                offset=r.offset))
    out.sort(key=lambda d: (d.partition, d.offset))
    return out


class KafkaQueueConsumer:
    """A group member (subscribe) that processes, then commits; `transactional` for consume-transform-produce."""

    def __init__(self, bootstrap: list[str], profile: Profile, name: str, work_s: float = 0.005,
                 on_assign: Any = None, slot: str = ""):
        self.bootstrap = bootstrap
        # one transactional id per slot: a replacement after a kill fences its dead predecessor at once
        # and aborts the transaction it left open, instead of waiting for the transaction timeout
        self.txn_id = f"onceproof-{slot or name}"
        self.profile = profile
        self.name = name
        self.work_s = work_s
        self.on_assign = on_assign
        self.transactional = profile.settings.get("transactional", False)
        try:
            self._open()
        except Exception:  # a group member left behind would hold its partitions until its session ends
            self.close()
            raise

    def _open(self) -> None:
        from kafka import KafkaConsumer, KafkaProducer
        from kafka.consumer.subscription_state import ConsumerRebalanceListener

        consumer = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                pass

            def on_partitions_assigned(self, assigned):
                if consumer.on_assign:
                    consumer.on_assign(sorted(tp.partition for tp in assigned))

        self.c = KafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=GROUP, client_id=self.name, enable_auto_commit=False,
            auto_offset_reset="earliest", isolation_level="read_committed" if self.transactional else
            "read_uncommitted", session_timeout_ms=6000, heartbeat_interval_ms=1500, request_timeout_ms=8000,
            max_poll_interval_ms=60000, metadata_max_age_ms=5000, reconnect_backoff_ms=100,
            reconnect_backoff_max_ms=1000)
        self.c.subscribe([INPUT], listener=Listener())
        out = {"bootstrap_servers": self.bootstrap, "acks": "all", "linger_ms": 0, "request_timeout_ms": 4000,
               "max_block_ms": 8000, "metadata_max_age_ms": 5000,
               "key_serializer": lambda k: None if k is None else str(k).encode(),
               "value_serializer": lambda v: json.dumps(v).encode()}
        if self.transactional:
            out.update(transactional_id=self.txn_id, enable_idempotence=True,
                       transaction_timeout_ms=TRANSACTION_TIMEOUT_S * 1000, delivery_timeout_ms=20000)
        else:
            out.update(enable_idempotence=False, retries=0, delivery_timeout_ms=8000)
        self.p = KafkaProducer(**out)
        if self.transactional:
            self.p.init_transactions()

    def reset(self) -> None:
        """After an unknown outcome: new clients, which resume from the group's committed offsets (and, for
        transactions, fence the old producer and abort its open transaction — never an explicit abort
        after a commit timeout: KAFKA-17754)."""
        self.close()
        self._open()

    def poll(self, max_messages: int, block_ms: int) -> tuple[Outcome, list[Delivery]]:
        try:
            records = self.c.poll(timeout_ms=block_ms, max_records=max_messages)
        except Exception as e:
            return classify_error(e), []
        return Outcome("ok"), _deliveries(records)

    def reclaim(self, max_messages: int, min_idle_ms: int | None = None) -> tuple[Outcome, list[Delivery]]:
        """Kafka's group coordinator reassigns a dead member's partitions itself: nothing to claim."""
        return self.poll(max_messages, 10)

    def _offsets(self, batch: list[Delivery]) -> dict:
        from kafka.structs import OffsetAndMetadata

        offsets: dict = {}
        for d in batch:
            tp, off = d.handle
            if tp not in offsets or offsets[tp].offset < off + 1:
                offsets[tp] = OffsetAndMetadata(off + 1, "", -1)
        return offsets

    def _rewind(self, batch: list[Delivery]) -> None:
        """Seek back to the batch's first offsets, so its messages come again (no rejoin, no rebalance)."""
        first: dict = {}
        for d in batch:
            tp, off = d.handle
            first[tp] = min(first.get(tp, off), off)
        for tp, off in first.items():
            with contextlib.suppress(Exception):
                self.c.seek(tp, off)

    def _recover(self, batch: list[Delivery]) -> None:
        if self.transactional:
            self.reset()  # fence the old transactional producer; resume from committed offsets
        else:
            self._rewind(batch)

    def process(self, batch: list[Delivery], record_ack: RecordAck, work: Work) -> None:
        if not batch:
            return
        ids = [d.id for d in batch]
        try:
            if self.transactional:
                self.p.begin_transaction()
            futures = []
            for d in batch:
                work(self.work_s)
                futures.append(self.p.send(OUTPUT, key=d.key, value={"id": d.id, "amount": d.amount}))
            # Every output record written before the commit, as Java's commitTransaction checks.
            # kafka-python 3.0 does not: an expired batch (a leader kill) fails its futures with a
            # timeout but leaves the transaction committable, so the commit goes through with the
            # consumer offsets and without the records. One known-answer run recorded such an `ok`
            # ack for 10 messages that never reached the output topic (lost_effects 10).
            for f in futures:
                f.get(timeout=OUTPUT_WAIT_S if self.transactional else 15)
        except Exception:
            self._recover(batch)
            raise
        inv = record_ack("invoke", {"ids": ids})
        try:
            if self.transactional:
                self._commit_transaction(batch)
            else:
                self.c.commit(self._offsets(batch))
        except Exception as e:
            record_ack(classify_error(e).type, {"ids": ids}, invoke=inv)
            self._recover(batch)
            raise
        record_ack("ok", {"ids": ids}, invoke=inv)

    def _commit_transaction(self, batch: list[Delivery]) -> None:
        """send_offsets_to_transaction + commit_transaction, each bounded.

        kafka-python 3.0's own calls wait without a limit; after a leader kill or a lost EndTxn
        response one was seen to block a transformer for the rest of a run (its partitions held, its
        group unable to rebalance). A timeout here is an unknown outcome: the caller records `info`
        and resets, and the fresh producer's InitProducerId completes or aborts the transaction."""
        from kafka.errors import KafkaTimeoutError

        tm = self.p._transaction_manager  # the public calls below, with a deadline (pinned kafka-python)
        steps = (("send_offsets_to_transaction",
                  lambda: tm.send_offsets_to_transaction(self._offsets(batch), self.c.group_metadata())),
                 ("commit_transaction", tm.begin_commit))
        for what, start in steps:
            result = start()
            self.p._sender.wakeup()
            if not result.wait(timeout_ms=TXN_STEP_TIMEOUT_S * 1000):
                raise KafkaTimeoutError(f"{what} did not complete within {TXN_STEP_TIMEOUT_S} s")

    def close(self) -> None:
        consumer, producer = getattr(self, "c", None), getattr(self, "p", None)  # either may never have been made
        if consumer is not None:
            with contextlib.suppress(Exception):
                consumer.close()
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.close(timeout=5)


def read_topic(bootstrap: list[str], topic: str, committed_only: bool, timeout_s: float = 60) -> list[Any]:
    """Every record of `topic` from the beginning to the end offsets (read_committed if asked)."""
    import time

    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                      isolation_level="read_committed" if committed_only else "read_uncommitted",
                      request_timeout_ms=10000)
    try:
        parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while any(c.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} to its end offsets took more than {timeout_s:.0f}s")
            for recs in c.poll(timeout_ms=500, max_records=5000).values():
                out.extend(recs)
        return out
    finally:
        c.close()


def wait_for_open_transactions(bootstrap: list[str], topic: str, timeout_s: float) -> bool:
    """Wait until no transaction is open on `topic` (last stable offset == high watermark everywhere)."""
    import time

    from kafka import KafkaConsumer, TopicPartition

    readers = [KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             isolation_level=level, request_timeout_ms=10000)
               for level in ("read_committed", "read_uncommitted")]
    try:
        parts = readers[0].partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            stable, high = (r.end_offsets(tps) for r in readers)
            if stable == high:
                return True
            time.sleep(0.5)
        return False
    finally:
        for r in readers:
            with contextlib.suppress(Exception):
                r.close()


def group_backlog(bootstrap: list[str], topic: str = INPUT, group: str = GROUP) -> int:
    """Messages of `topic` the group has not committed yet (end offset - committed offset, summed)."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                      request_timeout_ms=10000)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
        end = c.end_offsets(tps)
        return sum(max(0, end[tp] - (c.committed(tp) or 0)) for tp in tps)
    finally:
        with contextlib.suppress(Exception):
            c.close()
