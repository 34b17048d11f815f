"""MQTT (Debian's mosquitto 2.0.11) as a queue: one broker, a shared subscription the consumers split, persistent
sessions and manual acks, paho-mqtt clients behind Toxiproxy.

Facts behind the profiles: ../shared/research/brokers.md §1.4. MQTT's QoS levels are per hop (publisher to
broker, broker to subscriber), each kept by session state; QoS 2's "exactly once" is the 4-step handshake of one
hop, not an end-to-end promise about effects. Mosquitto keeps queued messages and sessions in memory and writes
them to disk only as a periodic snapshot (Debian's configuration: persistence on, a snapshot every 1800 s), so
a SIGKILL loses what arrived since the last one; it has no clustering.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from plugin.imaging import Image, Layout
from plugin.needs import Debian, Needs
from plugin.target import Deployment, Drain, NodeInfo, Profile, Runner, Target, TargetBase
from targets.mqtt import server
from targets.mqtt.clients import MqttConsumer, MqttProducer
from workloads.effects import EffectStore, read_counts
from workloads.queue import ClientSpec, QueueClients, QueueClientsBase

# a snapshot after every change: the most mosquitto 2.0 can do (no write per message; 2.1 adds SQLite)
_EVERY_CHANGE = {"autosave": 1, "on_changes": True}

PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("qos0", "at-most-once",
            "QoS 0 both hops (fire and forget): a message in flight to a consumer that dies is gone; no retries.",
            {"qos": 0, **_EVERY_CHANGE}),
    Profile("qos1", "at-least-once",
            "QoS 1 both hops, persistent sessions, manual PUBACK after the effect; producers retry unknown "
            "outcomes; a snapshot after every change (written after the PUBACK: a broker kill may still lose the "
            "last few).",
            {"qos": 1, **_EVERY_CHANGE}, producer_retries=3),
    Profile("qos2", "exactly-once",
            "QoS 2 both hops, as MQTT users read its \"exactly once\": persistent sessions, the effect before the "
            "PUBCOMP, producers retry unknown outcomes (a retry is a new PUBLISH: the broker cannot know it), a "
            "snapshot after every change. QoS 2 is one hop's handshake, not exactly-once effects.",
            {"qos": 2, **_EVERY_CHANGE}, expected_unsafe_under=("ack-loss", "kill-consumer"), producer_retries=3),
    Profile("debian-defaults", "at-least-once",
            "The qos1 clients on Debian's configuration: persistence on with the default snapshot interval "
            "(1800 s) and the default limit of 1000 queued messages per session: a kill loses every message "
            "queued since the broker started.",
            {"qos": 1, "autosave": 1800, "max_queued": 1000}, expected_unsafe_under=("kill",), producer_retries=3),
)}

FAULTS = ("ack-loss", "latency", "reset", "partition-client", "kill", "pause", "restart", "kill-consumer",
          "kill-producer")


def no_layout() -> Layout:
    raise NotImplementedError("the mqtt target runs as local processes only (no image yet)")


class MqttQueue(QueueClientsBase):
    """The queue workload's clients: paho-mqtt, every client to the one broker's proxy."""

    def producer(self, c: ClientSpec) -> MqttProducer:
        return MqttProducer(c)

    def consumer(self, c: ClientSpec) -> MqttConsumer:
        return MqttConsumer(c)


QUEUE: QueueClients = MqttQueue()  # mypy checks it against the workload's protocol


class Mqtt(TargetBase):
    """One mosquitto broker; consumers split a topic with a shared subscription."""

    name = "mqtt"
    profiles = PROFILES
    faults = FAULTS
    clients: ClassVar[Mapping[str, object]] = {"queue": QUEUE}
    node_counts = (1,)
    drain = Drain(quiet=3.0, deadline=60.0)
    needs = Needs(debian=(Debian("mosquitto", "mosquitto", ("-h",)),), python=("paho",))
    image = Image("mqtt", "mqtt.yml", no_layout, local_only=True)

    def setup_nodes(self, d: Deployment, run: Runner) -> None:
        """The broker's configuration, and the (empty) effect store in the run's directory."""
        server.write_configs(d)
        EffectStore(d.run_dir, server.EFFECTS_FILE, create=True).close()

    def node_argv(self, d: Deployment, node: NodeInfo) -> list[str]:
        return server.argv(node)

    def ready(self, node: NodeInfo) -> bool:
        return server.ready(node)

    def read_effects(self, d: Deployment) -> dict[str, int]:
        return read_counts(d.run_dir, server.EFFECTS_FILE)


TARGET: Target = Mqtt()  # mypy checks that it satisfies the protocol
