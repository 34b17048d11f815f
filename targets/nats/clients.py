"""JetStream clients for the queue workload (nats-py 2.16.0), with every retry the library would do on its
own turned off.

nats-py reconnects by itself and buffers publishes made while reconnecting, flushing them after it is
back: a publish that timed out could then land later, and a later one be sent twice without the history
knowing. So a connection here never reconnects and buffers nothing (`server.connect`); once it is closed,
the next operation opens a new one to the next node's proxy, and that connect is part of the operation it
serves (a connect that fails means nothing was sent: `fail`). `js.publish` is a single request with no
retry of its own; a retry is always the workload's, a new `send` with the same id.

Outcomes (after Jepsen's NATS client): no reply in time is `info` (the message may be stored; the
request may land later); "no responders" (no stream leader to take it), a closed connection, a refused
connect or an error reply from JetStream are `fail`: nothing was stored.

Deliveries record partition 0 and the stream sequence as the offset (a stream is one totally ordered
log), so the log checker sees a sequence reused for another message or one id stored twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from targets.nats import server
from workloads.effects import EffectStore
from workloads.queue import ClientSpec, Delivery, Outcome, RecordAck, Work, decode_message, encode_message

PUBLISH_TIMEOUT_S = 2.0
ACK_TIMEOUT_S = 2.0
T = TypeVar("T")


def classify_error(e: BaseException) -> Outcome:
    """`fail` only where nothing was taken: no responder (no leader to take the request), a connection
    closed before anything was written, a refused connect, or a JetStream error reply below 500 (a request
    it refused). A 5xx reply ("temporarily unavailable") may come after the entry was proposed, and
    anything else may have been applied: `info`."""
    import nats.errors
    import nats.js.errors

    definite = (nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError, nats.errors.ConnectionClosedError,
                nats.errors.OutboundBufferLimitError, nats.errors.NoServersError, ConnectionRefusedError)
    refused = isinstance(e, nats.js.errors.APIError) and isinstance(e.code, int) and e.code < 500
    return Outcome("fail" if isinstance(e, definite) or refused else "info", error=f"{type(e).__name__}: {e}")


class _Loop:
    """An asyncio loop on a thread of its own, so the connection answers the server's pings between
    operations; `run` waits for one coroutine, bounded."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="nats-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


class _Connection:
    """One connection at a time to one node's proxy: the client's own node first (`first`), then, after
    a connection is lost, the next one, so a killed node does not hold its clients."""

    def __init__(self, bootstrap: list[str], first: int) -> None:
        self.urls = [f"nats://{a}" for a in bootstrap]
        self.next = first % len(self.urls)
        self.loop = _Loop()
        self.nc: Any = None

    def js(self) -> Any:
        """The JetStream context of an open connection, opening one if needed (raises if it cannot; a
        connection that opened but could not be set up is closed again, so the next call starts afresh)."""
        if self.nc is None or self.nc.is_closed:
            url = self.urls[self.next]
            self.next = (self.next + 1) % len(self.urls)
            self.nc = None
            fut = asyncio.run_coroutine_threadsafe(server.connect(url), self.loop.loop)
            try:
                self.nc = fut.result(5.0)
                self.opened()
            except BaseException:
                self._discard(fut)
                raise
        return self.nc.jetstream(timeout=PUBLISH_TIMEOUT_S)

    def _discard(self, fut: concurrent.futures.Future[Any]) -> None:
        """Close whatever connection `fut` opened or will open (a connect that finishes after its timeout
        must not stay open, unreferenced)."""
        self.nc = None

        def close(done: concurrent.futures.Future[Any]) -> None:
            if not done.cancelled() and done.exception() is None:
                asyncio.run_coroutine_threadsafe(done.result().close(), self.loop.loop)

        fut.add_done_callback(close)

    def opened(self) -> None:
        """Called after each new connection (consumers bind their subscription here)."""

    def close(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            with contextlib.suppress(Exception):  # closing a dead connection: nothing to save
                self.loop.run(self.nc.close(), timeout=5.0)
        self.loop.close()


class NatsProducer:
    """Publishes each message with a JetStream publish; with `dedup`, the message id goes in the
    `Nats-Msg-Id` header, which the stream deduplicates within its duplicate window."""

    def __init__(self, c: ClientSpec, index: int) -> None:
        self.conn = _Connection(c.bootstrap, index)
        self.dedup = bool(c.profile.settings.get("dedup"))

    def send(self, mid: str, key: Any, amount: int) -> Outcome:
        try:
            js = self.conn.js()
        except Exception as e:  # never connected: nothing was sent
            return Outcome("fail", error=f"connect: {type(e).__name__}: {e}")
        payload = encode_message(mid, key, amount)
        headers = {"Nats-Msg-Id": mid} if self.dedup else None
        try:
            ack = self.conn.loop.run(js.publish(server.SUBJECT, payload, timeout=PUBLISH_TIMEOUT_S, headers=headers),
                                     timeout=PUBLISH_TIMEOUT_S + 3)
        except Exception as e:
            return classify_error(e)
        if not ack.seq or ack.seq <= 0:
            # 2.9 answers a retry whose first copy is proposed but not yet committed with
            # {"seq": 0, "duplicate": true}: in flight, not stored (fixed upstream in nats-server#5827)
            return Outcome("info", error=f"duplicate reply without a sequence (seq {ack.seq}): first copy in flight")
        value: dict[str, Any] = {"id": mid, "key": key, "partition": 0, "offset": ack.seq}
        if ack.duplicate is True:
            value["dedup"] = True  # the stream already had this id: no new message
        return Outcome("ok", value)

    def close(self) -> None:
        self.conn.close()


class _ConsumerConnection(_Connection):
    def __init__(self, bootstrap: list[str], first: int) -> None:
        super().__init__(bootstrap, first)
        self.sub: Any = None

    def opened(self) -> None:
        self.sub = None
        js = self.nc.jetstream(timeout=PUBLISH_TIMEOUT_S)
        self.sub = self.loop.run(js.pull_subscribe_bind(durable=server.CONSUMER, stream=server.STREAM), timeout=5.0)


class NatsConsumer:
    """A pull consumer bound to the stream's durable consumer; acknowledges each message with AckSync (the
    "double ack": the server confirms it). `ack` decides the order: before the effect (at-most-once), after
    it, or after an idempotent effect (exactly-once)."""

    def __init__(self, c: ClientSpec, index: int) -> None:
        self.conn = _ConsumerConnection(c.bootstrap, index)
        self.ack = c.profile.settings["ack"]
        self.work_s = c.work_s
        self.effects = EffectStore(c.state_dir, server.EFFECTS_FILE)

    def poll(self, max_messages: int, block_ms: int) -> tuple[Outcome, list[Delivery]]:
        import nats.errors

        try:
            self.conn.js()
        except Exception as e:
            return Outcome("fail", error=f"connect: {type(e).__name__}: {e}"), []
        timeout = max(block_ms, 10) / 1000
        try:
            msgs = self.conn.loop.run(self.conn.sub.fetch(max_messages, timeout=timeout), timeout=timeout + 3)
        except (TimeoutError, nats.errors.TimeoutError):  # nothing to fetch (what came late comes next time)
            return Outcome("ok"), []
        except Exception as e:
            return classify_error(e), []
        return Outcome("ok"), [self._delivery(m) for m in msgs]

    @staticmethod
    def _delivery(m: Any) -> Delivery:
        mid, key, amount = decode_message(m.data, f"seq {m.metadata.sequence.stream}")
        return Delivery(id=mid, key=key, amount=amount, handle=m, redelivered=m.metadata.num_delivered > 1,
                        partition=0, offset=m.metadata.sequence.stream)

    def reclaim(self, max_messages: int) -> tuple[Outcome, list[Delivery]]:
        """JetStream redelivers what a dead consumer left unacknowledged after AckWait: nothing to claim."""
        return self.poll(max_messages, 10)

    def _ack(self, d: Delivery, record_ack: RecordAck) -> bool:
        inv = record_ack("invoke", {"ids": [d.id]})
        try:
            self.conn.loop.run(d.handle.ack_sync(timeout=ACK_TIMEOUT_S), timeout=ACK_TIMEOUT_S + 3)
        except Exception as e:
            record_ack(classify_error(e).type, {"ids": [d.id]}, invoke=inv)
            return False
        record_ack("ok", {"ids": [d.id]}, invoke=inv)
        return True

    def process(self, batch: list[Delivery], record_ack: RecordAck, work: Work) -> None:
        """The batch, as an application processing a fetched batch would: at-most-once acknowledges every
        message first and applies the effect only of those the server confirmed (an unknown ack may have
        landed: applying then could apply twice); the others apply every effect (idempotently for
        exactly-once), then acknowledge each message."""
        if self.ack == "before-effect":
            confirmed = [d for d in batch if self._ack(d, record_ack)]
            for d in confirmed:
                work(self.work_s)
                self.effects.apply(d.id, str(d.key), d.amount)
            return
        for d in batch:
            work(self.work_s)
            if self.ack == "idempotent":
                self.effects.apply_once(d.id, str(d.key), d.amount)
            else:
                self.effects.apply(d.id, str(d.key), d.amount)
        for d in batch:
            self._ack(d, record_ack)

    def close(self) -> None:
        self.effects.close()
        self.conn.close()
