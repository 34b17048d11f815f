"""Apache Kafka 4.x (KRaft, combined broker+controller nodes from Maven jars) as a queue.

Facts behind the profiles: ../shared/research/kafka.md §1, §3–§6, and jepsen.md §1, §4. Three nodes by
default, each advertising its own Toxiproxy port so every client byte passes a proxy; replication and
the controller quorum use their own listeners, so client-side faults hit client traffic only.
"""

from __future__ import annotations

import json
from typing import Any

from targets.base import NodeInfo, Profile
from targets.kafka import cluster
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

NAME = "kafka"
NODES = 3
NODE_COUNTS = (1, 3)
READY_TIMEOUT = 90.0
DRAIN_QUIET = 10.0  # a killed member's partitions return only after its session times out (6 s)
DRAIN_DEADLINE = 180.0
PARTITIONS = 6

_BROKER_SAFE = {"min.insync.replicas": 2, "unclean.leader.election.enable": "false"}

PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("acks1", "at-least-once",
            "acks=1, no idempotence: the leader acknowledges before any follower has the record, so a "
            "leader failover loses acknowledged writes.",
            {"acks": 1, "idempotence": False, "producer_retries": 3, "broker": dict(_BROKER_SAFE)},
            expected_unsafe_under=("kill-leader",)),
    Profile("unclean", "at-least-once",
            "unclean.leader.election.enable=true, min.insync.replicas=1, acks=1: an out-of-sync replica may "
            "become leader and truncate acknowledged writes. Known unsafe.",
            {"acks": 1, "idempotence": False, "producer_retries": 3,
             "broker": {"min.insync.replicas": 1, "unclean.leader.election.enable": "true"}},
            expected_unsafe_under=("kill-leader",)),
    Profile("at-least-once", "at-least-once",
            "acks=all, min.insync.replicas=2, no idempotence, the harness retries unknown sends; consumers "
            "commit after processing.",
            {"acks": "all", "idempotence": False, "producer_retries": 3, "broker": dict(_BROKER_SAFE)}),
    Profile("idempotent", "at-least-once",
            "enable_idempotence (acks=all, sequence numbers dedup the client's own retries), "
            "min.insync.replicas=2; consumers commit after processing.",
            {"acks": "all", "idempotence": True, "producer_retries": 0, "broker": dict(_BROKER_SAFE)}),
    Profile("exactly-once", "exactly-once",
            "consume-transform-produce: read the input with read_committed, produce the output and the "
            "consumed offsets in one transaction; idempotent producers; min.insync.replicas=2. The verdict "
            "is on the output topic (the effect store) and the input->output mapping.",
            {"acks": "all", "idempotence": True, "producer_retries": 0, "transactional": True,
             "broker": dict(_BROKER_SAFE)}),
)}

FAULTS = ("ack-loss", "latency", "reset", "partition-client", "kill", "pause", "restart", "rolling-restart",
          "kill-leader", "pause-leader", "kill-controller", "pause-controller", "kill-consumer",
          "kill-producer", "partition-isolate-one", "partition-halves", "partition-majorities-ring",
          "partition-isolate-leader")

EXTRA_PORTS = ("controller", "internal")


CONTAINER_CLASSPATH = "/opt/kafka/libs/*"  # where the kafka image (ours or apache/kafka) keeps the jars


def _classpath(info: NodeInfo) -> str:
    return CONTAINER_CLASSPATH if info.in_container else cluster.classpath()


def setup_nodes(infos: list[NodeInfo], profile: Profile, run: cluster.Runner | None = None) -> None:
    """Write each node's server.properties and format its storage with one cluster id (`run` runs the
    format command where the nodes run: in a container of the node's image for the docker runtime)."""
    configs = [cluster.write_config(info, i, infos, _broker_settings(profile, len(infos)))
               for i, info in enumerate(infos, 1)]
    cluster.format_all(infos, configs, cluster.cluster_id(), _classpath(infos[0]), cds=not infos[0].in_container,
                       run=run)


def _broker_settings(profile: Profile, n: int) -> dict[str, Any]:
    b = dict(profile.settings["broker"])
    if n < 3:
        b["min.insync.replicas"] = 1
    return b


def node_argv(info: NodeInfo, profile: Profile) -> list[str]:
    # in a container: the image's own class-data archive, if it has one (the JVM ignores a missing one)
    return cluster.node_argv(info, cluster.config_path(info), _classpath(info))


def ready(info: NodeInfo) -> bool:
    return cluster.ready(info)


def bootstrap(infos: list[NodeInfo]) -> list[str]:
    return [f"{i.proxy_host}:{i.proxy_port}" for i in infos]


def prepare(infos: list[NodeInfo], profile: Profile) -> None:
    rf = min(3, len(infos))
    isr = _broker_settings(profile, len(infos))["min.insync.replicas"]
    for topic in (INPUT, OUTPUT):
        cluster.create_topic(bootstrap(infos), topic, PARTITIONS, rf, isr)


def leader_node(infos: list[NodeInfo], partition: int = 0) -> str:
    """The node currently leading `partition` of the input topic, from metadata."""
    leaders = cluster.partition_leaders(bootstrap(infos), INPUT)
    return infos[leaders[partition] - 1].name


def controller_node(infos: list[NodeInfo]) -> str:
    return infos[cluster.controller_id(bootstrap(infos)) - 1].name


def backlog(infos: list[NodeInfo], profile: Profile) -> int:
    """Input messages the consumer group has not yet committed: the drain is done when this is 0."""
    return group_backlog(bootstrap(infos))


def final_read(infos: list[NodeInfo], profile: Profile) -> list[dict[str, Any]]:
    """The input topic as a fresh reader assigned every partition sees it, from the beginning to the end
    offsets (read_committed for the transactional profile): the log's final state, for the log
    checker. Not deliveries (the group drain made those); recorded as the `final-read` operation."""
    committed = bool(profile.settings.get("transactional"))
    out = []
    for r in read_topic(bootstrap(infos), INPUT, committed_only=committed):
        try:
            mid = json.loads(r.value)["id"]
        except (ValueError, KeyError, TypeError):
            continue
        out.append({"id": mid, "key": None if r.key is None else r.key.decode(errors="replace"),
                    "partition": r.partition, "offset": r.offset})
    return out


def read_effects(infos: list[NodeInfo], profile: Profile) -> dict[str, int]:
    """Times each input id appears in the output topic (committed records only for transactions)."""
    counts: dict[str, int] = {}
    committed = bool(profile.settings.get("transactional"))
    if committed:  # a killed transformer's open transaction holds the LSO back until it times out
        wait_for_open_transactions(bootstrap(infos), OUTPUT, timeout_s=TRANSACTION_TIMEOUT_S + 20)
    for r in read_topic(bootstrap(infos), OUTPUT, committed_only=committed):
        try:
            mid = json.loads(r.value)["id"]
        except (ValueError, KeyError, TypeError):
            continue
        counts[mid] = counts.get(mid, 0) + 1
    return counts


def producer(bootstrap_: list[str], profile: Profile) -> KafkaQueueProducer:
    return KafkaQueueProducer(bootstrap_, profile)


def consumer(bootstrap_: list[str], profile: Profile, name: str, work_s: float = 0.005,
             on_assign: Any = None, slot: str = "") -> KafkaQueueConsumer:
    return KafkaQueueConsumer(bootstrap_, profile, name, work_s=work_s, on_assign=on_assign, slot=slot or name)
