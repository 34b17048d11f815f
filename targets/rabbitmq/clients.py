"""RabbitMQ clients for the queue workload (pika, BlockingConnection), with nothing retried or reconnected behind the
history's back.

pika never reconnects by itself; here a lost connection is dropped, and the next operation opens a new one to the
next node's proxy (a connect that fails means nothing was sent: `fail`). A blocking call that waits on the broker
(the publish's confirm, the round trip after acks) is bounded by a watchdog that shuts the socket down when the
deadline passes: pika then sees the connection end and raises, and the outcome is `info` (pika's own timers do not
run inside a blocking publish, and a quorum queue without a leader keeps a confirm back for as long as it has
none). Heartbeats (10 s) find a dead peer the watchdog does not cover.

Outcomes: a publisher confirm (Basic.Ack) is `ok`; a Basic.Nack (the broker did not take it) or an unroutable
return is `fail`; no confirm in time, a closed channel or a lost connection is `info`. AMQP's Basic.Ack from a
consumer has no answer, so acknowledgements are followed by one synchronous call on the channel (Basic.Qos, the
same prefetch again): its answer shows the channel processed every ack before it (`ok`); an ack that could not be
written because its channel is gone is `fail` (the broker requeued the message when the channel closed).

Each delivery records RabbitMQ's `redelivered` flag: a delivery without it promises the message was never
delivered before (the reliability guide), a promise the history can check.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections import deque
from typing import Any

from targets.rabbitmq import server
from workloads.effects import EffectStore
from workloads.queue import ClientSpec, Delivery, Outcome, RecordAck, Work, decode_message, encode_message

CONFIRM_TIMEOUT_S = 5.0  # a publish's confirm, an ack's round trip
CONNECT_TIMEOUT_S = 5.0
HEARTBEAT_S = 10
PREFETCH = 10  # unacknowledged deliveries a consumer holds (ignored by the broker with automatic acks)


def index(name: str) -> int:
    """A client's number (p2 -> 2): which node's proxy it tries first."""
    digits = re.sub(r"\D", "", name)
    return int(digits) if digits else 0


class _Watchdog:
    """Shuts a socket down if the block it guards outlasts `seconds`; `fired` says whether it did."""

    def __init__(self, sock: socket.socket | None, seconds: float) -> None:
        self.sock, self.fired = sock, False
        self.timer = threading.Timer(seconds, self._fire)
        self.timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Watchdog:
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.timer.cancel()


class _Connection:
    """One connection and channel at a time, to one node's proxy: the client's own node first, then, after a
    connection is lost, the next one. `generation` counts the channels opened, so a delivery tag of a channel
    that is gone is never acknowledged on a newer one."""

    def __init__(self, bootstrap: list[str], first: int) -> None:
        self.addresses = [(h, int(p)) for h, p in (a.rsplit(":", 1) for a in bootstrap)]
        self.next = first % len(self.addresses)
        self.conn: Any = None
        self.ch: Any = None
        self.generation = 0

    def channel(self) -> Any:
        """The open channel, opening a connection and a channel if needed (raises if it cannot)."""
        if self.ch is not None and self.ch.is_open and self.conn.is_open:
            return self.ch
        self.lost()
        import pika

        host, port = self.addresses[self.next]
        self.next = (self.next + 1) % len(self.addresses)
        params = pika.ConnectionParameters(host, port, heartbeat=HEARTBEAT_S, connection_attempts=1,
                                           socket_timeout=CONNECT_TIMEOUT_S, stack_timeout=CONNECT_TIMEOUT_S,
                                           blocked_connection_timeout=CONFIRM_TIMEOUT_S)
        self.conn = pika.BlockingConnection(params)
        try:
            self.ch = self.conn.channel()
            self.generation += 1
            self.opened(self.ch)
        except BaseException:
            self.lost()
            raise
        return self.ch

    def opened(self, ch: Any) -> None:
        """Called on each new channel (confirm mode, a consumer's subscription)."""

    def watchdog(self) -> _Watchdog:
        """A watchdog for one blocking call on this connection (pika's socket, reached through its internals:
        the one way to end a blocking call from outside)."""
        sock = getattr(getattr(getattr(self.conn, "_impl", None), "_transport", None), "_sock", None)
        return _Watchdog(sock, CONFIRM_TIMEOUT_S)

    def lost(self) -> None:
        """Forget the connection (closing it if it still is open): the next call opens a new one."""
        conn, self.conn, self.ch = self.conn, None, None
        if conn is not None and conn.is_open:
            with contextlib.suppress(Exception):  # closing a dying connection: nothing to save
                conn.close()

    def close(self) -> None:
        self.lost()


def _error(e: BaseException, watchdog: _Watchdog | None = None) -> str:
    if watchdog is not None and watchdog.fired:
        return f"no answer in {CONFIRM_TIMEOUT_S:.0f} s (connection closed): {type(e).__name__}: {e}"
    return f"{type(e).__name__}: {e}"


class RabbitProducer:
    """Publishes each message persistent (delivery mode 2), mandatory, on a channel in confirm mode, and waits for
    its confirm."""

    def __init__(self, c: ClientSpec) -> None:
        self.conn = _Connection(c.bootstrap, index(c.name))
        self.conn.opened = lambda ch: ch.confirm_delivery()  # type: ignore[method-assign]

    def send(self, mid: str, key: Any, amount: int) -> Outcome:
        import pika
        import pika.exceptions as px

        try:
            ch = self.conn.channel()
        except Exception as e:  # never connected: nothing was sent
            self.conn.lost()
            return Outcome("fail", error=f"connect: {type(e).__name__}: {e}")
        body = encode_message(mid, key, amount)
        props = pika.BasicProperties(delivery_mode=2, message_id=mid, content_type="application/json")
        with self.conn.watchdog() as dog:
            try:
                ch.basic_publish("", server.QUEUE, body, props, mandatory=True)
            except (px.NackError, px.UnroutableError) as e:  # the broker answered: it did not take it
                return Outcome("fail", error=_error(e))
            except Exception as e:
                self.conn.lost()
                return Outcome("info", error=_error(e, dog))
        return Outcome("ok", {"id": mid, "key": key})

    def close(self) -> None:
        self.conn.close()


class _ConsumerConnection(_Connection):
    def __init__(self, bootstrap: list[str], first: int, auto_ack: bool) -> None:
        super().__init__(bootstrap, first)
        self.auto_ack = auto_ack
        self.buffer: deque[tuple[int, Any, bytes]] = deque()

    def opened(self, ch: Any) -> None:
        self.buffer.clear()  # deliveries of a closed channel: the broker requeued them
        generation = self.generation
        ch.basic_qos(prefetch_count=PREFETCH)
        ch.basic_consume(server.QUEUE, lambda _ch, method, _props, body: self.buffer.append((generation, method, body)),
                         auto_ack=self.auto_ack)


class RabbitConsumer:
    """A consumer subscribed to the queue (Basic.Consume; pika buffers what the broker pushes). `ack` decides the
    profile's order: `auto` (the broker counts a message acknowledged once sent: at-most-once), or Basic.Ack after
    the effect (`after-effect`) or after an idempotent effect (`idempotent`)."""

    def __init__(self, c: ClientSpec) -> None:
        self.ack = c.profile.settings["ack"]
        self.conn = _ConsumerConnection(c.bootstrap, index(c.name), auto_ack=self.ack == "auto")
        self.work_s = c.work_s
        self.effects = EffectStore(c.state_dir, server.EFFECTS_FILE)

    def poll(self, max_messages: int, block_ms: int) -> tuple[Outcome, list[Delivery]]:
        try:
            self.conn.channel()
        except Exception as e:
            self.conn.lost()
            return Outcome("fail", error=f"connect: {type(e).__name__}: {e}"), []
        if not self.conn.buffer:
            try:
                self.conn.conn.process_data_events(time_limit=max(block_ms, 10) / 1000)
            except Exception as e:  # what was buffered belongs to a lost channel: requeued, not delivered
                self.conn.lost()
                return Outcome("info", error=_error(e)), []
        out: list[Delivery] = []
        while self.conn.buffer and len(out) < max_messages:
            generation, method, body = self.conn.buffer.popleft()
            out.append(self._delivery(generation, method, body))
        return Outcome("ok"), out

    @staticmethod
    def _delivery(generation: int, method: Any, body: bytes) -> Delivery:
        mid, key, amount = decode_message(body, f"tag {method.delivery_tag}")
        return Delivery(id=mid, key=key, amount=amount, handle=(generation, method.delivery_tag),
                        redelivered=bool(method.redelivered))

    def reclaim(self, max_messages: int) -> tuple[Outcome, list[Delivery]]:
        """RabbitMQ requeues what a dead consumer's channel held unacknowledged: nothing to claim."""
        return Outcome("ok"), []

    def _ack_all(self, batch: list[Delivery], record_ack: RecordAck) -> None:
        ids = [d.id for d in batch]
        inv = record_ack("invoke", {"ids": ids})
        ch = self.conn.ch
        if ch is None or not ch.is_open or any(d.handle[0] != self.conn.generation for d in batch):
            record_ack("fail", {"ids": ids}, invoke=inv)  # their channel is gone: requeued, never acknowledged
            return
        with self.conn.watchdog():
            try:
                for d in batch:
                    ch.basic_ack(d.handle[1])
                ch.basic_qos(prefetch_count=PREFETCH)  # a round trip: the channel has processed the acks
            except Exception:  # written or not, processed or not: unknown
                self.conn.lost()
                record_ack("info", {"ids": ids}, invoke=inv)
                return
        record_ack("ok", {"ids": ids}, invoke=inv)

    def process(self, batch: list[Delivery], record_ack: RecordAck, work: Work) -> None:
        """The batch as an application processes a delivered batch: each effect (idempotently for exactly-once),
        then one acknowledgement of the batch; with automatic acks, only the effects."""
        for d in batch:
            work(self.work_s)
            if self.ack == "idempotent":
                self.effects.apply_once(d.id, str(d.key), d.amount)
            else:
                self.effects.apply(d.id, str(d.key), d.amount)
        if self.ack != "auto" and batch:
            self._ack_all(batch, record_ack)

    def close(self) -> None:
        self.effects.close()
        self.conn.close()
