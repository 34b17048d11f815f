"""NATS JetStream (Debian's nats-server 2.9.10) as a queue: a 3-node JetStream cluster, one stream, one
durable pull consumer shared by the consumer processes, and clients from nats-py behind Toxiproxy (one
proxy per node).

Facts behind the profiles: ../shared/research/brokers.md §1.2 and patterns.md §7. JetStream promises
at-least-once delivery: a message delivered and not acknowledged within AckWait is delivered again. A
publish is acknowledged once the stream's raft group has it (not fsynced: 2.9.10 syncs its files every two
minutes and has no option to sync sooner, so SIGKILL, which leaves the page cache alone, loses nothing
that a power failure would). Exactly-once, as the NATS documentation puts it, combines publisher dedup
(the `Nats-Msg-Id` header, remembered for the stream's duplicate window, 2 minutes by default) with the
consumer's "double ack" (AckSync); the dedup is a time window, not a guarantee, and the double ack cannot
undo an effect applied before a crash, so the exactly-once profile also applies its effect idempotently
in a real store (`workloads/effects.py`, which says why that step is atomic).

The effect store is a SQLite database in the run's directory (per-id application counts and per-account
balances), outside the system under test, as an application's database would be; the harness reads it
back at the end as the `effects` operation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar

from plugin.imaging import PATH, Image, Layout, find_binary
from plugin.needs import Debian, Needs
from plugin.options import Option
from plugin.target import Abilities, Deployment, Drain, NodeInfo, Profile, Runner, Target, TargetBase
from targets.nats import bench, server, versions
from targets.nats.clients import NatsConsumer, NatsProducer
from workloads.effects import EffectStore, read_counts
from workloads.queue import ClientSpec, QueueClients, QueueClientsBase

_R3_FILE = {"storage": "file", "replicas": 3}

PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("at-most-once", "at-most-once",
            "AckSync before processing, and the effect only once the server confirmed the ack; no producer "
            "retries. A consumer killed between the ack and the effect loses the effect, never applies it twice.",
            {**_R3_FILE, "ack": "before-effect"}),
    Profile("at-least-once", "at-least-once",
            "The effect, then AckSync; producers retry unknown outcomes with the same id (no dedup header). "
            "A consumer killed between the effect and the ack gets its messages redelivered after AckWait: "
            "applied twice.",
            {**_R3_FILE, "ack": "after-effect"}, producer_retries=3),
    Profile("exactly-once", "exactly-once",
            "Producer dedup by Nats-Msg-Id within the stream's duplicate window (2 min), retries with the same "
            "id; the consumer applies the effect idempotently (dedup record and effect in one SQLite "
            "transaction), then acknowledges with AckSync.",
            {**_R3_FILE, "ack": "idempotent", "dedup": True, "duplicate_window": 120.0}, producer_retries=3),
    Profile("at-least-once-sync-always", "at-least-once",
            "The at-least-once clients with `sync_interval: always`: every node fsyncs each write before it is "
            "acknowledged (2.10 and newer; --server-version). The safe contrast to the default two-minute sync "
            "under power losses.",
            {**_R3_FILE, "ack": "after-effect", "sync_interval": "always"}, producer_retries=3),
    Profile("r1-memory", "at-least-once",
            "The at-least-once clients on an R1 stream with memory storage: a plausible production mistake "
            "(fast, and fine until the one node holding the stream restarts, which empties it and starts its "
            "sequence numbers again at 1).",
            {"storage": "memory", "replicas": 1, "ack": "after-effect"},
            expected_unsafe_under=("kill-leader",), producer_retries=3),
    Profile("short-dedup-window", "exactly-once",
            "The documented exactly-once recipe alone, Nats-Msg-Id dedup plus AckSync after the effect, with a "
            "1 s duplicate window: a retry of a publish whose reply was lost arrives after the window (the "
            "publish timeout is 2 s) and is stored again, so the message is delivered and applied twice. The "
            "window is a time limit, not a guarantee.",
            {**_R3_FILE, "ack": "after-effect", "dedup": True, "duplicate_window": 1.0},
            expected_unsafe_under=("ack-loss", "kill-consumer"), producer_retries=3),
)}

FAULTS = ("ack-loss", "latency", "reset", "partition-client", "kill", "pause", "restart", "rolling-restart",
          "kill-leader", "pause-leader", "kill-controller", "pause-controller", "kill-consumer", "kill-producer",
          "partition-isolate-one", "partition-halves", "partition-majorities-ring", "partition-isolate-leader",
          "power-loss", "power-loss-leader", "power-loss-majority", "power-loss-all")


def image_layout() -> Layout:
    """nats-server at /nats-server, as in the public `nats` image."""
    binary = find_binary("nats-server", "onceproof setup nats", places=("/usr/sbin/nats-server",))
    return Layout(moved=[(binary, server.BINARY_IN_IMAGE)], elf=[binary],
                  changes=[f"ENV PATH={PATH}", f'ENTRYPOINT ["{server.BINARY_IN_IMAGE}"]'])


def _index(name: str) -> int:
    """A client's number (p2 -> 2): which node's proxy it tries first."""
    digits = re.sub(r"\D", "", name)
    return int(digits) if digits else 0


def final_read(d: Deployment) -> list[dict]:
    """The stream as a fresh reader sees it after the drain: (partition 0, stream sequence) of every
    message it still holds, for the log checker."""
    return [{"id": str(v.get("id")), "key": v.get("key"), "partition": 0, "offset": seq}
            for seq, v in server.final_read(d)]


STREAM_REPLICAS = Option("stream_replicas", int, 0, "the stream's replicas, at most the nodes (default: the "
                         "profile's: 3, or 1 for r1-memory); 5 with --nodes 5 is Jepsen's NATS setup", "N", low=0,
                         high=5)


class NatsQueue(QueueClientsBase):
    """The queue workload's clients: nats-py, each starting at the node of its own number (p2: the third)."""

    batch = 10  # a batch's processing must stay well inside AckWait

    def producer(self, c: ClientSpec) -> NatsProducer:
        return NatsProducer(c, _index(c.name))

    def consumer(self, c: ClientSpec) -> NatsConsumer:
        return NatsConsumer(c, _index(c.name))


QUEUE: QueueClients = NatsQueue()  # mypy checks it against the workload's protocol


class Nats(TargetBase):
    """Three nats-server nodes with JetStream (or one), an R3 (or R1) stream, a durable pull consumer."""

    name = "nats"
    profiles = PROFILES
    faults = FAULTS
    clients: ClassVar[Mapping[str, object]] = {"queue": QUEUE}
    node_counts = (3, 1, 5)  # 5: Jepsen's NATS cluster (with --stream-replicas 5, its R5 stream)
    ports = server.PORTS
    drain = Drain(quiet=3.0, deadline=120.0)  # unacknowledged messages come again after AckWait (5 s)
    needs = Needs(debian=(Debian("nats-server", "nats-server", ("--version",)),), fetched=versions.FETCHED,
                  python=("nats",), optional=(bench.NATSCLI,))
    options = (versions.SERVER_VERSION, STREAM_REPLICAS)
    image = Image("nats", "nats.yml", image_layout)
    abilities = Abilities(backlog=server.backlog, final_read=final_read, leader=server.leader,
                          controller=server.meta_leader, native_bench=bench.nats_bench)

    def setup_nodes(self, d: Deployment, run: Runner) -> None:
        """Each node's configuration file, and the (empty) effect store in the run's directory."""
        server.write_configs(d)
        EffectStore(d.run_dir, server.EFFECTS_FILE, create=True).close()

    def node_argv(self, d: Deployment, node: NodeInfo) -> list[str]:
        return server.argv(node, versions.version_of(dict(d.options)))

    def ready(self, node: NodeInfo) -> bool:
        return server.ready(node)

    def prepare(self, d: Deployment) -> None:
        server.prepare(d)

    def read_effects(self, d: Deployment) -> dict[str, int]:
        return read_counts(d.run_dir, server.EFFECTS_FILE)


TARGET: Target = Nats()  # mypy checks that it satisfies the protocol
