"""MQTT clients for the queue workload (paho-mqtt 2.1.0, MQTT 3.1.1), with nothing resent or reconnected behind the
history's back.

paho's own network thread reconnects and, on a reconnect, resends unacknowledged QoS 1/2 publishes. Here the
network loop is driven by the calling thread (`loop()`), `reconnect_on_failure` is off, and a client whose
connection was lost or whose publish timed out is dropped: the next operation connects a new one (a connect
that fails means nothing was sent: `fail`). So a publish is never sent twice except by the workload's retry,
its own `send`.

Outcomes: a publish is `ok` once its handshake completed (QoS 0: written to the socket, all QoS 0 promises; QoS 1:
PUBACK; QoS 2: PUBCOMP), `info` on a timeout (5 s) or a lost connection. MQTT's consumer acknowledgements have no
answer (QoS 1: PUBACK; QoS 2: PUBCOMP, the end of the broker's handshake), so an ack is `ok` once written.

Consumers share the topic through a shared subscription (`$share/onceproof/onceproof/in`), each message to one
of them, with persistent sessions (`clean_session=False`) and manual acks. A consumer's client id is its name in
the workload (`c0`, `c1`): a replacement after a kill, and the drainer of the same number, resume its session,
and the broker sends again what it had sent that session without an acknowledgement (QoS 1, marked DUP: the
delivery's `redelivered`). QoS 2 ends differently: paho answers a QoS 2 PUBLISH with PUBREC on receipt and keeps
the message in memory until the broker's PUBREL; a consumer killed in between leaves the broker with nothing to
resend but the PUBREL, which the new client answers without the message (paho keeps sessions in memory only).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from targets.mqtt import server
from workloads.effects import EffectStore
from workloads.queue import ClientSpec, Delivery, Outcome, RecordAck, Work, decode_message, encode_message

TIMEOUT_S = 5.0
SUBSCRIBER_WAIT_S = 30.0
KEEPALIVE_S = 10


def client_id(slot: str) -> str:
    """A consumer's client id, from its slot's number: a replacement after a kill (the same slot) and the drainer
    of the same number (`drainer-0` after `consumer-0`) resume its session and get what it left unacknowledged."""
    return f"onceproof-c{re.sub(r'[^0-9]', '', slot) or '0'}"


class _Connection:
    """One paho client at a time, connected to the broker's proxy; dropped when its connection is lost."""

    def __init__(self, bootstrap: list[str], client_id: str, persistent: bool) -> None:
        host, port = bootstrap[0].rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.client_id, self.persistent = client_id, persistent
        self.client: Any = None

    def get(self) -> Any:
        """The connected client, connecting a new one if needed (raises if it cannot)."""
        if self.client is not None and self.client.is_connected():
            return self.client
        self.lost()
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             clean_session=not self.persistent, protocol=mqtt.MQTTv311, reconnect_on_failure=False,
                             manual_ack=True)
        connected: list[Any] = []
        client.on_connect = lambda _c, _u, _f, rc, _p: connected.append(rc)
        self.opening(client)
        client.connect(self.host, self.port, keepalive=KEEPALIVE_S)
        deadline = time.monotonic() + TIMEOUT_S
        while not connected:
            if client.loop(0.01) != mqtt.MQTT_ERR_SUCCESS or time.monotonic() > deadline:
                client.disconnect()
                raise ConnectionError(f"no CONNACK from {self.host}:{self.port}")
        if connected[0].is_failure:
            client.disconnect()
            raise ConnectionError(f"connect refused: {connected[0]}")
        self.client = client
        try:
            self.opened(client)
        except BaseException:
            self.lost()
            raise
        return client

    def opening(self, client: Any) -> None:
        """Called before connecting (callbacks)."""

    def opened(self, client: Any) -> None:
        """Called once connected (a consumer's subscription)."""

    def pump(self, seconds: float, until: Callable[[], bool] = lambda: False) -> bool:
        """Run the network loop until `until()` or for `seconds`; False if the connection was lost."""
        import paho.mqtt.client as mqtt

        deadline = time.monotonic() + seconds
        while not until():
            if self.client.loop(0.01) != mqtt.MQTT_ERR_SUCCESS:
                return False
            if time.monotonic() >= deadline:
                break
        return True

    def lost(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception):  # a dead connection: nothing to close cleanly
                client.disconnect()

    close = lost


def _subscribed_marker(state_dir: Path, client: str) -> Path:
    return Path(state_dir) / f"mqtt-subscribed-{client}"


def wait_for_a_subscriber(state_dir: Path, seconds: float = SUBSCRIBER_WAIT_S) -> None:
    """Until some consumer has subscribed (its marker in the run's directory), or `seconds`: a message published
    to a topic nobody subscribes to goes nowhere, and the first sends of a run must not (the consumers start just
    before the producers). Once subscribed, a persistent session keeps the group's subscription."""
    deadline = time.monotonic() + seconds
    while not any(Path(state_dir).glob("mqtt-subscribed-*")) and time.monotonic() < deadline:
        time.sleep(0.05)


class MqttProducer:
    """Publishes each message at the profile's QoS and waits for its handshake to complete."""

    def __init__(self, c: ClientSpec) -> None:
        self.qos = int(c.profile.settings["qos"])
        self.conn = _Connection(c.bootstrap, "", persistent=False)  # the broker names it (clean session)
        self.state_dir: Path | None = c.state_dir

    def send(self, mid: str, key: Any, amount: int) -> Outcome:
        import paho.mqtt.client as mqtt

        if self.state_dir is not None:
            wait_for_a_subscriber(self.state_dir)
            self.state_dir = None

        try:
            client = self.conn.get()
        except Exception as e:  # never connected: nothing was sent
            self.conn.lost()
            return Outcome("fail", error=f"connect: {type(e).__name__}: {e}")
        body = encode_message(mid, key, amount)
        info = client.publish(server.TOPIC, body, qos=self.qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:  # not written: the connection is gone
            self.conn.lost()
            return Outcome("info", error=f"publish: {mqtt.error_string(info.rc)}")
        if not self.conn.pump(TIMEOUT_S, until=info.is_published):
            self.conn.lost()
            return Outcome("info", error="connection lost before the publish's handshake completed")
        if not info.is_published():
            self.conn.lost()  # never to be resent by this client
            return Outcome("info", error=f"no handshake in {TIMEOUT_S:.0f} s")
        return Outcome("ok", {"id": mid, "key": key})

    def close(self) -> None:
        self.conn.close()


class _ConsumerConnection(_Connection):
    def __init__(self, bootstrap: list[str], client_id: str, qos: int, state_dir: Path) -> None:
        super().__init__(bootstrap, client_id, persistent=True)
        self.qos, self.state_dir = qos, state_dir
        self.buffer: deque[Any] = deque()
        self.generation = 0

    def opening(self, client: Any) -> None:
        self.buffer.clear()  # messages of a lost connection: unacknowledged, the session has them
        self.generation += 1
        generation = self.generation
        client.on_message = lambda _c, _u, msg: self.buffer.append((generation, msg))

    def opened(self, client: Any) -> None:
        """Subscribe (again: a session the broker lost, say after a kill without a snapshot, has no subscription)."""
        done: list[Any] = []
        client.on_subscribe = lambda _c, _u, _mid, codes, _p: done.append(codes)
        client.subscribe(server.SHARED, qos=self.qos)
        if not self.pump(TIMEOUT_S, until=lambda: bool(done)) or not done:
            raise ConnectionError("no SUBACK")
        if any(getattr(c, "is_failure", False) for c in done[0]):
            raise ConnectionError(f"subscription refused: {done[0]}")
        _subscribed_marker(self.state_dir, self.client_id).touch()


class MqttConsumer:
    """A member of the shared subscription, with a persistent session and manual acks, at the profile's QoS;
    the effect, then the ack (`after-effect`), or, with QoS 0, only the effect (nothing to acknowledge)."""

    def __init__(self, c: ClientSpec) -> None:
        self.qos = int(c.profile.settings["qos"])
        self.conn = _ConsumerConnection(c.bootstrap, client_id(c.slot), self.qos, c.state_dir)
        self.work_s = c.work_s
        self.effects = EffectStore(c.state_dir, server.EFFECTS_FILE)

    def poll(self, max_messages: int, block_ms: int) -> tuple[Outcome, list[Delivery]]:
        try:
            self.conn.get()
        except Exception as e:
            self.conn.lost()
            return Outcome("fail", error=f"connect: {type(e).__name__}: {e}"), []
        buffered, client = self.conn.buffer, self.conn.client

        def settled() -> bool:
            # something to hand out, and no QoS 2 message half-received: paho answers PUBREC on receipt and hands
            # the message out only at the broker's PUBREL, and a client that stops in between loses it (its state
            # is in memory: the broker then sends only the PUBREL again). The broker sends at most INFLIGHT
            # unacknowledged, so this ends with every message it sent handed out. (paho has no public view of
            # its half-received messages.)
            return bool(buffered) and not client._in_messages

        if not settled() and not self.conn.pump(max(block_ms, 10) / 1000, until=settled):
            self.conn.lost()
            return Outcome("info", error="connection lost"), []
        out: list[Delivery] = []
        while self.conn.buffer and len(out) < max_messages:
            generation, msg = self.conn.buffer.popleft()
            out.append(self._delivery(generation, msg))
        return Outcome("ok"), out

    @staticmethod
    def _delivery(generation: int, msg: Any) -> Delivery:
        mid, key, amount = decode_message(msg.payload, f"mid {msg.mid}")
        return Delivery(id=mid, key=key, amount=amount, handle=(generation, msg.mid, msg.qos),
                        redelivered=bool(msg.dup))

    def reclaim(self, max_messages: int) -> tuple[Outcome, list[Delivery]]:
        """A session's unacknowledged messages come back when its client id reconnects: nothing to claim."""
        return Outcome("ok"), []

    def process(self, batch: list[Delivery], record_ack: RecordAck, work: Work) -> None:
        """Each effect, then one ack per message (QoS 1: PUBACK; QoS 2: PUBCOMP), written before the next poll."""
        for d in batch:
            work(self.work_s)
            self.effects.apply(d.id, str(d.key), d.amount)
        if self.qos == 0 or not batch:
            return
        import paho.mqtt.client as mqtt

        ids = [d.id for d in batch]
        inv = record_ack("invoke", {"ids": ids})
        client = self.conn.client
        if client is None or any(d.handle[0] != self.conn.generation for d in batch):
            record_ack("fail", {"ids": ids}, invoke=inv)  # their connection is gone: the session sends them again
            return
        rcs = [client.ack(d.handle[1], d.handle[2]) for d in batch]
        # written, not read: new messages enter the buffer only inside a poll, which hands them all out (the
        # broker sends at most `max_inflight_messages`, the batch, unacknowledged), so a consumer that stops
        # after a batch leaves none half-taken
        if any(rc != mqtt.MQTT_ERR_SUCCESS for rc in rcs) or client.loop_write() != mqtt.MQTT_ERR_SUCCESS:
            self.conn.lost()
            record_ack("info", {"ids": ids}, invoke=inv)
            return
        record_ack("ok", {"ids": ids}, invoke=inv)

    def close(self) -> None:
        self.effects.close()
        self.conn.close()
