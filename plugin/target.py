"""The Target protocol: everything the harness needs from one system under test, in the spirit of Jepsen's `DB`
protocol. Each target is a package `targets/<name>/` whose `TARGET` object satisfies `Target`; it is checked
against the protocol when it is loaded (`plugin.check`, before anything starts), and mypy checks the annotated
declarations. `TargetBase` gives the members most targets leave at their defaults.

The harness calls a target in this order: `setup_nodes` before the first start (write configs, format
storage; `run` runs a command where the nodes run: a local process or a container of the target's
image), `node_argv` and `ready` for each node (again at every restart), `prepare` (create streams,
topics, groups), and after the drain `read_effects`. What clients do is the workload's (Jepsen's `Client`):
a target serves a workload by supplying the clients that workload's protocol asks for (`clients`, by workload
name); worker processes make them. Optional abilities are named in `Abilities`: a target that has one sets
it, and the harness asks for it by name (`target.abilities.backlog`), never by probing.

Clients run inside worker processes; they never retry on their own, and map every error to an outcome:
`ok`, `fail` (definitely did not happen) or `info` (unknown: timeouts, lost connections).
The rules, in words: docs/adding-a-target.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

from checkers.vocabulary import GUARANTEES
from plugin.imaging import Image, ImageBuild, Layout
from plugin.needs import Needs
from plugin.options import Option


@dataclass(frozen=True)
class Profile:
    """A configuration that claims a guarantee, with the settings that make it (or fail to).

    `settings` are the target's own: only the target's code reads them (node configuration, client options).
    What a workload reads from a profile is a member here: `producer_retries`, how many times the queue
    workload's producers send a message again after an outcome that was not `ok` (each attempt its own `send`
    in the history; 0 for profiles that rely on never sending twice). `expected_unsafe_under` names the faults
    it is known to fail under (its known answers)."""

    name: str
    guarantee: str
    description: str
    settings: dict[str, Any] = field(default_factory=dict)
    expected_unsafe_under: tuple[str, ...] = ()
    producer_retries: int = 0
    claims_order: bool = False  # a claim beside the guarantee: each producer's messages arrive in send order

    def __post_init__(self) -> None:
        if self.guarantee not in GUARANTEES:
            raise ValueError(f"profile {self.name}: unknown guarantee {self.guarantee!r}; valid: "
                             f"{', '.join(GUARANTEES)}")


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
    options: Mapping[str, Any] = field(default_factory=dict)  # the values of the target's own options (Target.options)

    @property
    def bootstrap(self) -> list[str]:
        """The nodes' proxy addresses (host:port), in node order: the only way in for clients."""
        return [f"{n.proxy_host}:{n.proxy_port}" for n in self.nodes]

    def node(self, name: str) -> NodeInfo:
        return next(n for n in self.nodes if n.name == name)


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
    - `native_bench`: the system's own benchmark tool run against the deployment at a cost run's load
      (`onceproof cost`), so its figure stands beside the harness's;
    - `roles`: the nodes are of different kinds (`NodeRoles`), named by the target;
    - `default_faults`: the faults of a run that names none (else the harness's defaults the target has);
    - `cleanup`: remove what the nodes keep outside the run's directory, once they have stopped (teardown,
      also after Ctrl-C).
    """

    backlog: Callable[[Deployment], int] | None = None
    final_read: Callable[[Deployment], list[dict[str, Any]]] | None = None
    leader: Callable[[Deployment], str] | None = None
    controller: Callable[[Deployment], str] | None = None
    native_bench: Callable[[Deployment, BenchLoad], BenchFigure] | None = None
    roles: NodeRoles | None = None
    default_faults: tuple[str, ...] = ()
    cleanup: Callable[[Deployment], None] | None = None

    def declared(self) -> tuple[str, ...]:
        """The names of the abilities this target has."""
        return tuple(f.name for f in fields(self) if getattr(self, f.name))


class Target(Protocol):
    """A system under test. `node_counts` lists the cluster sizes it supports, the first the default;
    `ports` names the ports each node needs besides its client port (in `NodeInfo.extra_ports`); `faults` the
    faults it supports; `clients` the workloads it serves, each with the clients that workload's protocol
    asks for (the first is the default workload); `options` the run options only it reads (in
    `Deployment.options`; refused for other targets). The properties may be plain class attributes."""

    @property
    def name(self) -> str: ...
    @property
    def profiles(self) -> Mapping[str, Profile]: ...
    @property
    def faults(self) -> tuple[str, ...]: ...
    @property
    def clients(self) -> Mapping[str, Any]: ...
    @property
    def node_counts(self) -> tuple[int, ...]: ...
    @property
    def ports(self) -> tuple[str, ...]: ...
    @property
    def options(self) -> tuple[Option, ...]: ...
    @property
    def ready_timeout(self) -> float: ...
    @property
    def drain(self) -> Drain: ...
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
    def read_effects(self, d: Deployment) -> dict[str, int]: ...


class TargetBase:
    """The members most targets leave as they are: no ports besides the client port, no options of their own,
    30 s to get ready, the default drain, no abilities, nothing to set up before the first start or to prepare
    after. A target subclasses it and declares the rest (name, profiles, faults, clients, node_counts, needs,
    image, node_argv, ready, read_effects)."""

    ports: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    ready_timeout: float = 30.0
    drain: Drain = Drain()
    abilities: Abilities = Abilities()

    def setup_nodes(self, d: Deployment, run: Runner) -> None:
        """Nothing to write or format before the nodes first start."""

    def prepare(self, d: Deployment) -> None:
        """Nothing to create once the nodes are ready."""


def workloads_of(t: Target) -> tuple[str, ...]:
    """The workloads `t` serves, its default first."""
    return tuple(t.clients)


__all__ = ["Abilities", "BenchFigure", "BenchLoad", "Deployment", "Drain", "Image", "ImageBuild", "Layout", "Needs",
           "NodeInfo", "NodeRoles", "Option", "Profile", "Runner", "Target", "TargetBase", "has_role", "node_names",
           "workloads_of"]
