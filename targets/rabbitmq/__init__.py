"""RabbitMQ (Debian's rabbitmq-server 3.10.8) as a queue: a 3-node cluster joined at prepare, one durable queue
(quorum, or classic and mirrored), publisher confirms and consumer acks recorded exactly, pika clients behind
Toxiproxy (one proxy per node).

Facts behind the profiles: ../shared/research/brokers.md §1.3. At-least-once takes a durable queue, persistent
messages, publisher confirms and manual acks; a confirm from a quorum queue means a majority of its members
have the message. Consumers' unacknowledged deliveries are requeued when their channel closes (and come back
marked `redelivered`). Classic mirrored queues with `ha-promote-on-failure: always` and the default partition
handling (`ignore`) are the configuration known to lose confirmed messages (Jepsen 2014, Vanlightly 2018): a
mirror that is not synchronised may be promoted. Exactly-once effects take an idempotent consumer: the
quorum-idempotent profile applies each effect with its dedup record in one SQLite transaction
(`workloads/effects.py`, which says why that step is atomic).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from plugin.imaging import Image, Layout
from plugin.needs import Debian, Needs
from plugin.target import Abilities, Deployment, Drain, NodeInfo, Profile, Runner, Target, TargetBase
from targets.rabbitmq import server
from targets.rabbitmq.clients import RabbitConsumer, RabbitProducer
from workloads.effects import EffectStore, read_counts
from workloads.queue import ClientSpec, QueueClients, QueueClientsBase

_QUORUM = {"queue": "quorum", "partition_handling": "pause_minority"}

PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("quorum", "at-least-once",
            "A durable quorum queue (three members), persistent messages, publisher confirms, a manual ack after "
            "the effect; producers retry unknown outcomes with the same id. Partition handling pause_minority, "
            "as RabbitMQ advises.",
            {**_QUORUM, "ack": "after-effect"}, producer_retries=3),
    Profile("quorum-idempotent", "exactly-once",
            "quorum, with an idempotent consumer: the dedup record and the effect in one SQLite transaction, then "
            "the ack. A message published twice (a retry after a lost confirm) or delivered twice (a requeue "
            "after a lost channel) is applied once.",
            {**_QUORUM, "ack": "idempotent"}, producer_retries=3),
    Profile("autoack", "at-most-once",
            "quorum's queue and producers without retries, and automatic acks: the broker counts a message "
            "acknowledged once it is sent, so what a consumer holds when it dies is gone.",
            {**_QUORUM, "ack": "auto"}, expected_unsafe_under=("kill-consumer",)),
    Profile("classic-mirrored", "at-least-once",
            "A durable classic queue mirrored on every node (`ha-mode: all`) with `ha-promote-on-failure: always` "
            "and the default partition handling (`ignore`): an unsynchronised mirror may be promoted and the "
            "messages only the old leader had are gone. Confirms, manual acks after the effect, producer retries.",
            {"queue": "classic", "partition_handling": "ignore", "ack": "after-effect",
             "mirror": {"ha-mode": "all", "ha-promote-on-failure": "always"}},
            expected_unsafe_under=("rolling-restart", "kill-leader"), producer_retries=3),
)}

FAULTS = ("ack-loss", "latency", "reset", "partition-client", "kill", "pause", "restart", "rolling-restart",
          "kill-leader", "pause-leader", "kill-consumer", "kill-producer", "partition-isolate-one", "partition-halves",
          "partition-isolate-leader")


def no_layout() -> Layout:
    raise NotImplementedError("the rabbitmq target runs as local processes only (no image yet)")


class RabbitQueue(QueueClientsBase):
    """The queue workload's clients: pika, each starting at the node of its own number (p2: the third)."""

    batch = 10  # the prefetch: a consumer holds at most this many unacknowledged deliveries

    def producer(self, c: ClientSpec) -> RabbitProducer:
        return RabbitProducer(c)

    def consumer(self, c: ClientSpec) -> RabbitConsumer:
        return RabbitConsumer(c)


QUEUE: QueueClients = RabbitQueue()  # mypy checks it against the workload's protocol


class RabbitMQ(TargetBase):
    """Three rabbitmq-server nodes (or one) in one cluster, one durable queue every consumer subscribes to."""

    name = "rabbitmq"
    profiles = PROFILES
    faults = FAULTS
    clients: ClassVar[Mapping[str, object]] = {"queue": QUEUE}
    node_counts = (3, 1)
    ports = server.PORTS
    ready_timeout = 90.0  # three Erlang VMs booting at once on two cores: about 12 s, far more under load
    drain = Drain(quiet=3.0, deadline=120.0)  # a requeued message comes again at once: quiet, then no backlog
    needs = Needs(debian=(Debian("rabbitmq-server", "rabbitmq-server"),), python=("pika",))
    image = Image("rabbitmq", "rabbitmq.yml", no_layout, local_only=True)
    abilities = Abilities(backlog=server.backlog, leader=server.leader, cleanup=server.cleanup)

    def setup_nodes(self, d: Deployment, run: Runner) -> None:
        """Each node's configuration and cookie, and the (empty) effect store in the run's directory."""
        server.write_configs(d)
        EffectStore(d.run_dir, server.EFFECTS_FILE, create=True).close()

    def node_argv(self, d: Deployment, node: NodeInfo) -> list[str]:
        return server.argv(d, node)

    def ready(self, node: NodeInfo) -> bool:
        return server.ready(node)

    def prepare(self, d: Deployment) -> None:
        server.prepare(d)

    def read_effects(self, d: Deployment) -> dict[str, int]:
        return read_counts(d.run_dir, server.EFFECTS_FILE)


TARGET: Target = RabbitMQ()  # mypy checks that it satisfies the protocol
