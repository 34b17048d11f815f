"""The Target protocol: everything the harness needs from one system under test, in the spirit of
Jepsen's `DB` and `Client` protocols. Each target is a package `targets/<name>/` whose `TARGET` object
satisfies `Target` (tests/test_targets.py checks every registered one, and mypy checks the declarations).

The harness calls a target in this order: `setup_nodes` before the first start (write configs, format
storage; `run` runs a command where the nodes run: a local process or a container of the target's
image), `node_argv` and `ready` for each node (again at every restart), `prepare` (create streams,
topics, groups), then in worker processes `producer` and `consumer` (the `queue` workload's clients),
and after the drain `read_effects`. Optional abilities are named in `Abilities`: a target that has one
sets it, and the harness asks for it by name (`target.abilities.backlog`), never by probing.

Clients run inside worker processes; they never retry on their own, and map every error to an outcome:
`ok`, `fail` (definitely did not happen) or `info` (unknown: timeouts, lost connections).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

from checkers.vocabulary import GUARANTEES
from plugin.imaging import Image, ImageBuild, Layout
from plugin.needs import Needs


@dataclass(frozen=True)
class Profile:
    """A configuration that claims a guarantee, with the settings that make it (or fail to)."""

    name: str
    guarantee: str
    description: str
    settings: dict[str, Any] = field(default_factory=dict)
    expected_unsafe_under: tuple[str, ...] = ()  # faults it is known to fail under (known answers)

    def __post_init__(self) -> None:
        if self.guarantee not in GUARANTEES:
            raise ValueError(f"profile {self.name}: unknown guarantee {self.guarantee!r}; valid: "
                             f"{', '.join(GUARANTEES)}")


@dataclass
class Outcome:
    """The outcome of one client operation, as it goes into the history."""

    type: str  # ok / fail / info
    value: Any = None
    error: str | None = None


@dataclass
class Delivery:
    """One message handed to a consumer."""

    id: str
    key: Any
    amount: int
    handle: Any  # what the target needs to acknowledge it (a stream entry id, an offset, ...)
    redelivered: bool = False
    partition: Any = None
    offset: int | None = None

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "partition": self.partition, "offset": self.offset,
                "redelivered": self.redelivered}


@dataclass
class NodeInfo:
    """Where a node listens: its own port and the proxy port clients must use.

    `host` is the node's address as the harness and the other nodes reach it, `bind` the address it
    listens on, `proxy_host` the address of its Toxiproxy proxy (the only way in for clients). Locally all
    three are 127.0.0.1; in containers the node has an address of its own and listens on every interface.
    `in_container` tells a target to use the container image's paths (say, where the jars are)."""

    name: str
    port: int
    proxy_port: int | None = None
    data_dir: Path | None = None
    extra_ports: dict[str, int] = field(default_factory=dict)  # the target's `ports`, e.g. a cluster port
    host: str = "127.0.0.1"
    bind: str = "127.0.0.1"
    proxy_host: str = "127.0.0.1"
    in_container: bool = False


@dataclass
class Deployment:
    """One run's nodes, the profile they run and the run's directory: what every harness-side call gets."""

    nodes: list[NodeInfo]
    profile: Profile
    run_dir: Path
    options: Mapping[str, str] = field(default_factory=dict)  # the run options a target reads (Abilities.options)

    @property
    def bootstrap(self) -> list[str]:
        """The nodes' proxy addresses (host:port), in node order: the only way in for clients."""
        return [f"{n.proxy_host}:{n.proxy_port}" for n in self.nodes]

    def node(self, name: str) -> NodeInfo:
        return next(n for n in self.nodes if n.name == name)


@dataclass(frozen=True)
class ClientSpec:
    """What a client in a worker process gets: `bootstrap` (the proxies, the only way in), `name` (p0, c1:
    its name in the history), `slot` (the place it fills: a replacement after a kill takes the same slot),
    `state_dir` (the run's directory, shared by every worker and the harness: client-side stores live
    there), `work_s` (a consumer's processing time per message) and `on_assign` (called with a consumer's
    new assignment after a rebalance, which the history records)."""

    bootstrap: list[str]
    profile: Profile
    name: str
    slot: str
    state_dir: Path
    work_s: float = 0.005
    on_assign: Callable[[list[Any]], None] | None = None


class Producer(Protocol):
    def send(self, mid: str, key: Any, amount: int) -> Outcome: ...
    def close(self) -> None: ...


RecordAck = Callable[..., Any]  # record_ack(type, value, invoke=None): writes an `ack` operation
Work = Callable[[float], None]  # work(seconds): processing time, where a consumer kill usually lands


class Consumer(Protocol):
    def poll(self, max_messages: int, block_ms: int) -> tuple[Outcome, list[Delivery]]: ...
    def reclaim(self, max_messages: int) -> tuple[Outcome, list[Delivery]]: ...
    def process(self, batch: list[Delivery], record_ack: RecordAck, work: Work) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class BenchLoad:
    """What a native benchmark tool is given: the cost run's own load. `rate` 0 means as fast as it can;
    `connections` is the harness's sends in flight (producers x in flight); `work_dir` is for its files."""

    rate: float
    seconds: float
    connections: int
    work_dir: Path
    record_size: int = 100


@dataclass(frozen=True)
class BenchFigure:
    """A native tool's result, in the cost table's units. `paced` says whether the tool held `rate` (its
    latencies then compare with the harness's send latency) or ran as fast as it could."""

    tool: str
    command: str
    acked_per_s: float
    send_p50_ms: float | None
    send_p99_ms: float | None
    paced: bool
    note: str = ""


Runner = Callable[[list[str], float], tuple[int, str]]  # runs argv where the nodes run: (exit code, output)


@dataclass(frozen=True)
class Drain:
    """When the drain ends: `quiet` seconds without a delivery (and no backlog, where the target can
    tell), or `deadline` seconds in any case."""

    quiet: float = 3.0
    deadline: float = 60.0


@dataclass(frozen=True)
class NodeRoles:
    """A cluster of nodes of different kinds (a service, its database, a payment provider): their names for a
    cluster size (`--nodes`, one of `node_counts`), and which of them clients talk to. Only those nodes'
    proxies are the clients' bootstrap; the nodes reach the others themselves, through their proxies too, so
    a fault can be aimed at one hop (`ack-loss@provider`). A fault's `@role` matches a node named so or
    with that dash-separated part in its name."""

    names: Callable[[int], list[str]]
    client_facing: Callable[[str], bool]


def has_role(node: str, role: str) -> bool:
    """A node has a role when it is named so or a dash-separated part of its name is (payments-db: db)."""
    return node == role or role in node.split("-")


def node_names(t: Target, n: int) -> list[str]:
    """The names of a run's `n`-node cluster: the target's roles, or `<target>-1`..`<target>-n`."""
    roles = t.abilities.roles
    return roles.names(n) if roles is not None else [f"{t.name}-{i}" for i in range(1, n + 1)]


@dataclass(frozen=True)
class Abilities:
    """What a target can do beyond the protocol; None where it cannot.

    - `backlog`: messages still unconsumed; the drain ends only when it is 0 (quiet alone is not enough);
    - `final_read`: the whole log read again after the drain (entries with partition and offset), for the
      log checker only, recorded as the `final-read` operation;
    - `leader`: the node that leads the target's data when a `leader` fault starts (kill-leader, ...);
    - `controller`: the node that leads the cluster's metadata (kill-controller, ...);
    - `shared_producer`: a producer client that several logical processes of one worker may use at once
      (thread-safe), so that a batching client batches their sends as an application's thread pool does
      (`--in-flight`); without it each logical process has its own client;
    - `native_bench`: the system's own benchmark tool run against the deployment at a cost run's load
      (`onceproof cost`), so its figure stands beside the harness's;
    - `roles`: the nodes are of different kinds (`NodeRoles`), named by the target;
    - `options`: run options the target reads from `Deployment.options` (`service_cmd`: the user's own
      service as a node); the configuration refuses them for other targets;
    - `default_faults`: the faults of a run that names none (else the harness's defaults the target has);
    - `cleanup`: remove what the nodes keep outside the run's directory, once they have stopped (teardown,
      also after Ctrl-C).
    """

    backlog: Callable[[Deployment], int] | None = None
    final_read: Callable[[Deployment], list[dict[str, Any]]] | None = None
    leader: Callable[[Deployment], str] | None = None
    controller: Callable[[Deployment], str] | None = None
    shared_producer: Callable[[ClientSpec], Producer] | None = None
    native_bench: Callable[[Deployment, BenchLoad], BenchFigure] | None = None
    roles: NodeRoles | None = None
    options: tuple[str, ...] = ()
    default_faults: tuple[str, ...] = ()
    cleanup: Callable[[Deployment], None] | None = None

    def declared(self) -> tuple[str, ...]:
        """The names of the abilities this target has."""
        return tuple(f.name for f in fields(self) if getattr(self, f.name))


class Target(Protocol):
    """A system under test. `node_counts` lists the cluster sizes it supports, the first the default;
    `ports` names the ports each node needs besides its client port (in `NodeInfo.extra_ports`);
    `workloads` lists the workloads its clients serve; `faults` the faults it supports. The properties may
    be plain class attributes."""

    @property
    def name(self) -> str: ...
    @property
    def profiles(self) -> Mapping[str, Profile]: ...
    @property
    def faults(self) -> tuple[str, ...]: ...
    @property
    def workloads(self) -> tuple[str, ...]: ...
    @property
    def node_counts(self) -> tuple[int, ...]: ...
    @property
    def ports(self) -> tuple[str, ...]: ...
    @property
    def ready_timeout(self) -> float: ...
    @property
    def drain(self) -> Drain: ...
    @property
    def batch(self) -> int:
        """Messages a consumer takes per poll by default (`--batch`): where every poll's acknowledgement or
        transaction costs round trips, a larger batch lets the consumers keep pace with the default load."""
        ...
    @property
    def needs(self) -> Needs: ...
    @property
    def image(self) -> Image: ...
    @property
    def abilities(self) -> Abilities: ...


    def setup_nodes(self, d: Deployment, run: Runner) -> None: ...
    def node_argv(self, d: Deployment, node: NodeInfo) -> list[str]: ...
    def ready(self, node: NodeInfo) -> bool: ...
    def prepare(self, d: Deployment) -> None: ...
    def producer(self, c: ClientSpec) -> Producer: ...
    def consumer(self, c: ClientSpec) -> Consumer: ...
    def read_effects(self, d: Deployment) -> dict[str, int]: ...


__all__ = ["Abilities", "BenchFigure", "BenchLoad", "ClientSpec", "Consumer", "Delivery", "Deployment", "Drain",
           "Image", "ImageBuild", "Layout", "Needs", "NodeInfo", "NodeRoles", "Outcome", "Producer", "Profile",
           "RecordAck", "Runner", "Target", "Work", "has_role", "node_names"]
