"""Faults: each knows how to start and how to heal (Jepsen's nemesis protocol).

Network faults act on the Toxiproxy proxy in front of a node's client port; partitions cut node-to-node
traffic (a runtime ability: iptables rules in each node's own network namespace with containers; local
nodes share the loopback interface); process faults act on the node's process (or container) with real
signals; worker faults SIGKILL a producer or consumer and start a fresh one (new process ids) at heal.
`leader` and `controller` faults hit the node the target names through its ability of that name when
the fault starts. Every start and heal is written to the history as a nemesis operation by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from harness.schedule import Window
from plugin.target import has_role

if TYPE_CHECKING:
    from plugin.runtime import Node, Proxies


class FaultContext(Protocol):
    """What a fault needs from the run: nodes, proxies, workers."""

    toxiproxy: Proxies | None

    def node(self, name: str) -> Node: ...
    def proxy(self, node: str) -> Any: ...
    def restart_node(self, name: str) -> None: ...
    def start_nodes(self, names: tuple[str, ...]) -> None:
        """Start the (dead) nodes all at once, then wait until each is ready: a cluster that lost power comes back
        together (one node of a quorum alone never gets ready)."""
        ...
    def kill_worker(self, slot: str) -> None: ...
    def replace_worker(self, slot: str) -> None: ...
    def node_names(self) -> list[str]: ...
    def partition(self, grudge: dict[str, list[str]]) -> None: ...
    def heal_partition(self) -> None: ...
    def lose_unsynced(self, node: str) -> dict[str, int]:
        """The power loss of a (dead) node's disk: what was never fsynced is gone; {files, bytes} it erased."""
        ...


Action = Callable[[FaultContext, "Window"], Any]


@dataclass(frozen=True)
class Fault:
    """`kind` says what it may hit: "network"/"process" a node, "leader"/"controller" the node that holds
    that role when the fault starts (the target's ability of the same name finds it), "cluster" every
    node, "majority" a majority of the nodes (seeded), "consumer"/"producer" a worker. `start` and `heal` get
    the window with its nodes resolved (a leader becomes the node's name); what `start` returns (a dict, or
    None) goes into the history with the fault. `duration` overrides the schedule's window length
    (seconds, low and high) for faults that need time to matter: a partition changes nothing until the
    cluster notices the cut-off node. `needs_partitions`: only runtimes that can cut node-to-node traffic;
    `needs_lossy_disk`: the nodes' data directories on lossy disks (the power-loss faults)."""

    name: str
    kind: str
    start: Action
    heal: Action
    describe: str
    duration: tuple[float, float] | None = None
    needs_partitions: bool = False
    needs_lossy_disk: bool = False


def _proxies(ctx: FaultContext) -> Proxies:
    if ctx.toxiproxy is None:
        raise RuntimeError("no Toxiproxy server runs yet")
    return ctx.toxiproxy


def _toxic(type_: str, stream: str, attributes: dict[str, Any]) -> tuple[Action, Action]:
    def start(ctx: FaultContext, w: Window) -> None:
        for n in w.nodes:
            _proxies(ctx).add_toxic(ctx.proxy(n), f"onceproof-{w.fault}", type_, stream=stream,
                                    attributes=attributes)

    def heal(ctx: FaultContext, w: Window) -> None:
        for n in w.nodes:
            _proxies(ctx).remove_toxic(ctx.proxy(n), f"onceproof-{w.fault}")
    return start, heal


def _each_node(action: str) -> Callable[[FaultContext, Window], None]:
    def run(ctx: FaultContext, w: Window) -> None:
        for n in w.nodes:
            getattr(ctx.node(n), action)()
    return run


def _restart_nodes(ctx: FaultContext, w: Window) -> None:
    for n in w.nodes:
        ctx.restart_node(n)


def _proxy(enabled: bool) -> Action:
    def run(ctx: FaultContext, w: Window) -> None:
        for n in w.nodes:
            (_proxies(ctx).enable if enabled else _proxies(ctx).disable)(ctx.proxy(n))
    return run


def _kill_workers(ctx: FaultContext, w: Window) -> None:
    for slot in w.nodes:
        ctx.kill_worker(slot)


def _replace_workers(ctx: FaultContext, w: Window) -> None:
    for slot in w.nodes:
        ctx.replace_worker(slot)


def _noop(ctx: FaultContext, w: Window) -> None:
    return None


def _power_back(ctx: FaultContext, w: Window) -> None:
    ctx.start_nodes(w.nodes)


def _power_loss(ctx: FaultContext, w: Window) -> dict[str, Any]:
    """Every chosen node SIGKILLed first (each reaped: what it had open is closed), then each disk's unsynced
    writes dropped: a coordinated power failure, as Jepsen does it with LazyFS (kill, then clear-cache)."""
    for n in w.nodes:
        ctx.node(n).kill()
    return {"dropped": {n: ctx.lose_unsynced(n) for n in w.nodes}}


# --- partitions: grudges (node -> the nodes it drops packets from), as in Jepsen's nemesis -------------


def grudge(kind: str, nodes: list[str], pivot: str) -> dict[str, list[str]]:
    """The grudge of a partition over `nodes` (in their order), turned around `pivot` (the node the schedule
    picked, or the leader): `isolate-one`/`isolate-leader` cut the pivot off from the rest; `halves` splits
    the ring starting at the pivot into a smaller and a larger half; `majorities-ring` lets each node hear
    itself and the next ⌊n/2⌋ nodes of the ring (every node sees a majority, no two the same one)."""
    n = len(nodes)
    i = nodes.index(pivot)
    ring = nodes[i:] + nodes[:i]
    if kind in ("isolate-one", "isolate-leader"):
        return {pivot: ring[1:], **{o: [pivot] for o in ring[1:]}}
    if kind == "halves":
        a, b = ring[:n // 2], ring[n // 2:]
        return {**{x: list(b) for x in a}, **{y: list(a) for y in b}}
    if kind == "majorities-ring":
        out = {}
        for j, x in enumerate(ring):
            heard = {ring[(j + k) % n] for k in range(n // 2 + 1)}
            out[x] = [y for y in ring if y not in heard]
        return out
    raise ValueError(f"unknown partition {kind!r}")


def _partition(kind: str) -> tuple[Action, Action]:
    def start(ctx: FaultContext, w: Window) -> None:
        ctx.partition(grudge(kind, ctx.node_names(), w.nodes[0]))

    def heal(ctx: FaultContext, w: Window) -> None:
        ctx.heal_partition()
    return start, heal


PARTITION_DURATION = (8.0, 12.0)  # longer than the targets' failure detectors (6 s at most) take to notice


LONG_PAUSE = (6.0, 8.0)

FAULTS: dict[str, Fault] = {f.name: f for f in (
    Fault("ack-loss", "network", *_toxic("timeout", "downstream", {"timeout": 0}),
          "requests reach the node, responses are dropped; healing closes those connections"),
    Fault("latency", "network", *_toxic("latency", "downstream", {"latency": 300, "jitter": 100}),
          "300 ms ± 100 ms added to every response"),
    Fault("reset", "network", *_toxic("reset_peer", "upstream", {"timeout": 0}),
          "connections are reset (RST) as soon as they carry data"),
    Fault("partition-client", "network", _proxy(False), _proxy(True),
          "the client proxy is down: connections drop and new ones are refused"),
    Fault("kill", "process", _each_node("kill"), _restart_nodes,
          "SIGKILL the node; started again at heal"),
    Fault("pause", "process", _each_node("pause"), _each_node("resume"), "SIGSTOP the node; SIGCONT at heal"),
    Fault("pause-long", "process", _each_node("pause"), _each_node("resume"),
          "SIGSTOP the node for 6-8 s, longer than a lock or marker a service keeps for a few seconds; SIGCONT "
          "at heal", LONG_PAUSE),
    Fault("restart", "process", _restart_nodes, _noop, "SIGTERM the node and start it again at once"),
    Fault("rolling-restart", "cluster", _restart_nodes, _noop,
          "SIGTERM and restart every node in turn, each waited until ready"),
    Fault("kill-leader", "leader", _each_node("kill"), _restart_nodes,
          "SIGKILL the node leading the target's data (its leader ability); started again at heal"),
    Fault("pause-leader", "leader", _each_node("pause"), _each_node("resume"),
          "SIGSTOP the node leading the target's data; SIGCONT at heal"),
    Fault("kill-controller", "controller", _each_node("kill"), _restart_nodes,
          "SIGKILL the node leading the cluster's metadata (its controller ability); started again at heal"),
    Fault("pause-controller", "controller", _each_node("pause"), _each_node("resume"),
          "SIGSTOP the node leading the cluster's metadata; SIGCONT at heal"),
    Fault("partition-isolate-one", "network", *_partition("isolate-one"),
          "one node cannot exchange packets with the others (iptables in each node's namespace)",
          PARTITION_DURATION, True),
    Fault("partition-halves", "network", *_partition("halves"),
          "the nodes split into a smaller and a larger half that cannot reach each other",
          PARTITION_DURATION, True),
    Fault("partition-majorities-ring", "network", *_partition("majorities-ring"),
          "each node hears only itself and the next ⌊n/2⌋ nodes of a ring", PARTITION_DURATION, True),
    Fault("partition-isolate-leader", "leader", *_partition("isolate-leader"),
          "the node leading the target's data is cut off from the other nodes; clients still reach it through "
          "its proxy", PARTITION_DURATION, True),
    Fault("power-loss", "process", _power_loss, _power_back,
          "power failure of one node: SIGKILL, then its disk forgets every write never fsynced; started again at "
          "heal", needs_lossy_disk=True),
    Fault("power-loss-leader", "leader", _power_loss, _power_back,
          "power failure of the node leading the target's data", needs_lossy_disk=True),
    Fault("power-loss-majority", "majority", _power_loss, _power_back,
          "power failure of a majority of the nodes at once (all SIGKILLed first, then every disk drops)",
          needs_lossy_disk=True),
    Fault("power-loss-all", "cluster", _power_loss, _power_back,
          "power failure of every node at once: a datacenter power cut", needs_lossy_disk=True),
    Fault("kill-consumer", "consumer", _kill_workers, _replace_workers,
          "SIGKILL a consumer process; a fresh one replaces it at heal"),
    Fault("kill-producer", "producer", _kill_workers, _replace_workers,
          "SIGKILL a producer process; a fresh one replaces it at heal"),
)}


# --- a fault aimed at some nodes: `kill@db` --------------------------------------------------------------

SELECTABLE = ("network", "process")  # the kinds whose node is drawn from the run's nodes


def split_fault(name: str) -> tuple[str, str | None]:
    """`kill@db` -> ("kill", "db"): a fault and the role its nodes must have (None: any node of the run)."""
    base, at, role = name.partition("@")
    return base, (role if at else None)


def fault_of(name: str) -> Fault:
    """The fault a (possibly aimed) name stands for."""
    return FAULTS[split_fault(name)[0]]


def candidates(name: str, nodes: list[str]) -> list[str]:
    """The nodes a network or process fault may hit: all of them, or those with the role it names."""
    role = split_fault(name)[1]
    return nodes if role is None else [n for n in nodes if has_role(n, role)]
