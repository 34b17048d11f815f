"""Apache Kafka 4.x (KRaft, combined broker+controller nodes from Maven jars) as a queue.

Facts behind the profiles: ../shared/research/kafka.md §1, §3–§6, and jepsen.md §1, §4. Three nodes by
default, each advertising its own Toxiproxy port so every client byte passes a proxy; replication and
the controller quorum use their own listeners, so client-side faults hit client traffic only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from plugin.needs import Needs
from plugin.target import (
    Abilities,
    BenchFigure,
    BenchLoad,
    Deployment,
    Drain,
    NodeInfo,
    Profile,
    Runner,
    Target,
    TargetBase,
)
from targets.kafka import bench, cluster, install
from targets.kafka.clients import (
    INPUT,
    OUTPUT,
    TRANSACTION_TIMEOUT_S,
    KafkaQueueConsumer,
    KafkaQueueProducer,
    group_backlog,
    read_topic,
    wait_for_open_transactions,
)
from targets.kafka.image import CONTAINER_CLASSPATH, IMAGE
from workloads.queue import ClientSpec, QueueClients

PARTITIONS = 6

_BROKER_SAFE = {"min.insync.replicas": 2, "unclean.leader.election.enable": "false"}

PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("acks1", "at-least-once",
            "acks=1, no idempotence: the leader acknowledges before any follower has the record, so a "
            "leader failover loses acknowledged writes.",
            {"acks": 1, "idempotence": False, "broker": dict(_BROKER_SAFE)},
            expected_unsafe_under=("kill-leader",), producer_retries=3),
    Profile("unclean", "at-least-once",
            "unclean.leader.election.enable=true, min.insync.replicas=1, acks=1: an out-of-sync replica may "
            "become leader and truncate acknowledged writes. Known unsafe.",
            {"acks": 1, "idempotence": False,
             "broker": {"min.insync.replicas": 1, "unclean.leader.election.enable": "true"}},
            expected_unsafe_under=("kill-leader",), producer_retries=3),
    Profile("at-least-once", "at-least-once",
            "acks=all, min.insync.replicas=2, no idempotence, the harness retries unknown sends; consumers "
            "commit after processing.",
            {"acks": "all", "idempotence": False, "broker": dict(_BROKER_SAFE)}, producer_retries=3),
    Profile("at-least-once-flush", "at-least-once",
            "The at-least-once profile with every broker fsyncing each message before it acknowledges it "
            "(log.flush.interval.messages=1): what durability costs beside replication. Kafka's default leaves "
            "flushing to the OS and relies on replicas, which a power loss of every broker defeats.",
            {"acks": "all", "idempotence": False, "broker": {**_BROKER_SAFE, "log.flush.interval.messages": 1}},
            producer_retries=3),
    Profile("idempotent", "at-least-once",
            "enable_idempotence (acks=all, sequence numbers dedup the client's own retries), "
            "min.insync.replicas=2; consumers commit after processing.",
            {"acks": "all", "idempotence": True, "broker": dict(_BROKER_SAFE)}),
    Profile("exactly-once", "exactly-once",
            "consume-transform-produce: read the input with read_committed, produce the output and the "
            "consumed offsets in one transaction; idempotent producers; min.insync.replicas=2. The verdict "
            "is on the output topic (the effect store) and the input->output mapping.",
            {"acks": "all", "idempotence": True, "transactional": True, "broker": dict(_BROKER_SAFE)}),
)}

FAULTS = ("ack-loss", "latency", "reset", "partition-client", "kill", "pause", "restart", "rolling-restart",
          "kill-leader", "pause-leader", "kill-controller", "pause-controller", "kill-consumer", "kill-producer",
          "partition-isolate-one", "partition-halves", "partition-majorities-ring", "partition-isolate-leader",
          "power-loss", "power-loss-leader", "power-loss-majority", "power-loss-all")


def _classpath(info: NodeInfo) -> str:
    return CONTAINER_CLASSPATH if info.in_container else cluster.classpath()


def setup_nodes(d: Deployment, run: Runner) -> None:
    """Write each node's server.properties and format its storage with one cluster id (`run` runs the
    format command where the nodes run: in a container of the node's image for the docker runtime)."""
    infos = d.nodes
    configs = [cluster.write_config(info, i, infos, _broker_settings(d.profile, len(infos)))
               for i, info in enumerate(infos, 1)]
    cluster.format_all(infos, configs, cluster.cluster_id(), _classpath(infos[0]), cds=not infos[0].in_container,
                       run=run)


def _broker_settings(profile: Profile, n: int) -> dict[str, Any]:
    b = dict(profile.settings["broker"])
    if n < 3:
        b["min.insync.replicas"] = 1
    return b


def prepare(d: Deployment) -> None:
    rf = min(3, len(d.nodes))
    isr = _broker_settings(d.profile, len(d.nodes))["min.insync.replicas"]
    for topic in (INPUT, OUTPUT):
        cluster.create_topic(d.bootstrap, topic, PARTITIONS, rf, isr)


def leader_node(d: Deployment, partition: int = 0) -> str:
    """The node currently leading `partition` of the input topic, from metadata."""
    leaders = cluster.partition_leaders(d.bootstrap, INPUT)
    return d.nodes[leaders[partition] - 1].name


def controller_node(d: Deployment) -> str:
    """The active KRaft controller (DescribeQuorum)."""
    return d.nodes[cluster.controller_id(d.bootstrap) - 1].name


def backlog(d: Deployment) -> int:
    """Input messages the consumer group has not yet committed: the drain is done when this is 0."""
    return group_backlog(d.bootstrap)


def final_read(d: Deployment) -> list[dict[str, Any]]:
    """The input topic as a fresh reader assigned every partition sees it, from the beginning to the end
    offsets (read_committed for the transactional profile): the log's final state, for the log
    checker. Not deliveries (the group drain made those); recorded as the `final-read` operation."""
    committed = bool(d.profile.settings.get("transactional"))
    out = []
    for r in read_topic(d.bootstrap, INPUT, committed_only=committed):
        try:
            mid = json.loads(r.value)["id"]
        except (ValueError, KeyError, TypeError):
            continue
        out.append({"id": mid, "key": None if r.key is None else r.key.decode(errors="replace"),
                    "partition": r.partition, "offset": r.offset})
    return out


def read_effects(d: Deployment) -> dict[str, int]:
    """Times each input id appears in the output topic (committed records only for transactions)."""
    counts: dict[str, int] = {}
    committed = bool(d.profile.settings.get("transactional"))
    if committed:  # a killed transformer's open transaction holds the LSO back until it times out
        wait_for_open_transactions(d.bootstrap, OUTPUT, timeout_s=TRANSACTION_TIMEOUT_S + 20)
    for r in read_topic(d.bootstrap, OUTPUT, committed_only=committed):
        try:
            mid = json.loads(r.value)["id"]
        except (ValueError, KeyError, TypeError):
            continue
        counts[mid] = counts.get(mid, 0) + 1
    return counts


def create_perf_topic(d: Deployment) -> None:
    """ProducerPerformance's topic, apart from the harness's and made as they are."""
    rf = min(3, len(d.nodes))
    cluster.create_topic(d.bootstrap, bench.PERF_TOPIC, PARTITIONS, rf,
                         _broker_settings(d.profile, len(d.nodes))["min.insync.replicas"])


def _native_bench(d: Deployment, load: BenchLoad) -> BenchFigure:
    create_perf_topic(d)
    return bench.kafka_producer_performance(d, load)


class KafkaQueue:
    """The queue workload's clients: kafka-python, no retries of its own (retries=0), one producer per logical
    process or one shared by a worker's logical processes."""

    # a commit (a transaction: AddPartitions, produce, offsets, EndTxn) per poll: at 10 messages per poll the
    # exactly-once consumers took ~120 msg/s of the default 200 (end-to-end p50 9 s); at 100, all of it
    batch = 100

    def producer(self, c: ClientSpec) -> KafkaQueueProducer:
        return KafkaQueueProducer(c.bootstrap, c.profile)

    def consumer(self, c: ClientSpec) -> KafkaQueueConsumer:
        return KafkaQueueConsumer(c.bootstrap, c.profile, c.name, work_s=c.work_s, on_assign=c.on_assign,
                                  slot=c.slot)

    @staticmethod
    def shared_producer(c: ClientSpec) -> KafkaQueueProducer:
        """KafkaProducer is thread-safe: the sends of a worker's logical processes share its record accumulator,
        so what arrives while a request is in flight goes out in the next batch."""
        return KafkaQueueProducer(c.bootstrap, c.profile)


QUEUE: QueueClients = KafkaQueue()  # mypy checks it against the workload's protocol


class Kafka(TargetBase):
    """Three combined broker+controller nodes by default (or one), KRaft, from the cached Maven jars."""

    name = "kafka"
    profiles = PROFILES
    faults = FAULTS
    clients: ClassVar[Mapping[str, object]] = {"queue": QUEUE}
    node_counts = (3, 1)
    ports = cluster.EXTRA_PORTS
    ready_timeout = 90.0
    drain = Drain(quiet=10.0, deadline=180.0)  # a killed member's partitions return after its session (6 s)
    needs = Needs(debian=install.DEBIAN, fetched=install.FETCHED, python=("kafka",))
    image = IMAGE
    abilities = Abilities(backlog=backlog, final_read=final_read, leader=leader_node, controller=controller_node,
                          native_bench=_native_bench)

    def setup_nodes(self, d: Deployment, run: Runner) -> None:
        setup_nodes(d, run)

    def node_argv(self, d: Deployment, node: NodeInfo) -> list[str]:
        # in a container: the image's own class-data archive, if it has one (the JVM ignores a missing one)
        return cluster.node_argv(node, cluster.config_path(node), _classpath(node))

    def ready(self, node: NodeInfo) -> bool:
        return cluster.ready(node)

    def prepare(self, d: Deployment) -> None:
        prepare(d)

    def read_effects(self, d: Deployment) -> dict[str, int]:
        return read_effects(d)


TARGET: Target = Kafka()  # mypy checks that it satisfies the protocol
