"""A run's nodes and their proxies: Toxiproxy first (so each node can advertise its proxy), then the target's
nodes, set up, started, ready and prepared; restarted by faults, healed at the end; and the addresses clients and
readers are given."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from harness.runtime import NodeSpec
from plugin.runtime import Node, Placement, Proxies, Runtime
from plugin.target import Deployment, NodeInfo, Profile, Target, node_names


def _ready(target: Target, info: NodeInfo, node: Node) -> bool:
    return target.ready(info)


class Cluster:
    """The target's `size` nodes in `run_dir`, each behind its own proxy, as `runtime` runs them. `options` are the
    values of the target's own run options (`Deployment.options`)."""

    def __init__(self, target: Target, profile: Profile, runtime: Runtime, run_dir: Path, size: int,
                 options: Mapping[str, Any], lossy: bool = False, synced_setup: bool = True) -> None:
        self.target, self.profile, self.runtime, self.dir = target, profile, runtime, run_dir
        self.size, self.options = size, dict(options)
        self.lossy, self.synced_setup = lossy, synced_setup
        self.toxiproxy: Proxies | None = None
        self.given_up: set[str] = set()  # nodes that could not start again after a power loss (left down)
        self.nodes: dict[str, Node] = {}
        self.infos: dict[str, NodeInfo] = {}
        self.proxies: dict[str, Any] = {}

    def names(self) -> list[str]:
        """The nodes' names (known before they start: the fault schedule picks among them)."""
        return node_names(self.target, self.size)

    @property
    def deployment(self) -> Deployment:
        return Deployment(list(self.infos.values()), self.profile, self.dir, self.options)

    def start(self) -> None:
        """Toxiproxy, then every node (on a lossy disk where the run's faults need one; set up, started, ready),
        then the target's `prepare`; with lossy disks, a checkpoint after it unless the run keeps setup unsynced
        (everything written before the load then counts as fsynced: the load is what is tested)."""
        self.toxiproxy = toxiproxy = self.runtime.toxiproxy(self.dir / "toxiproxy.log")
        toxiproxy.start()
        disks = self.runtime.lossy if self.lossy else None
        if self.lossy and disks is None:
            raise RuntimeError(f"the power-loss faults need lossy disks, which the {self.runtime.name} runtime cannot "
                               "give here (FUSE: see `onceproof doctor`)")
        for name in self.names():
            data = self.dir / "nodes" / name
            data.mkdir(parents=True, exist_ok=True)
            if disks is not None:
                disks.mount(name, data)
            extra = {p: self.runtime.free_port() for p in self.target.ports}
            where: Placement = self.runtime.place()
            info = NodeInfo(name, self.runtime.free_port(), data_dir=data, extra_ports=extra, host=where.host,
                            bind=where.bind, proxy_host=toxiproxy.client_host, in_container=where.in_container)
            self.proxies[name] = toxiproxy.create_proxy(name, f"{info.host}:{info.port}")
            info.proxy_port = self.proxies[name].port
            self.infos[name] = info
        d = self.deployment
        role = self.target.image.role
        self.target.setup_nodes(d, lambda argv, timeout: self.runtime.run_once(role, argv, timeout))
        for info in d.nodes:
            assert info.data_dir is not None
            spec = NodeSpec(name=info.name, argv=self.target.node_argv(d, info),
                            data_dir=info.data_dir, log_path=info.data_dir / f"{info.name}.log",
                            ports={"client": info.port, **info.extra_ports},
                            ready=functools.partial(_ready, self.target, info), image=role)
            node = self.runtime.node(spec, Placement(info.host, info.bind, info.in_container))
            node.start()
            self.nodes[info.name] = node
        for node in self.nodes.values():
            node.wait_ready(self.target.ready_timeout)
        self.target.prepare(d)
        if disks is not None and self.synced_setup:
            disks.checkpoint()

    def node(self, name: str) -> Node:
        return self.nodes[name]

    def proxy(self, name: str) -> Any:
        return self.proxies[name]

    def restart_node(self, name: str) -> None:
        node = self.nodes[name]
        if node.alive:
            node.stop()
        node.start()
        node.wait_ready(self.target.ready_timeout)

    def start_nodes(self, names: tuple[str, ...] | list[str]) -> None:
        """Start every dead node of `names` at once, then wait until each is ready."""
        started = [self.nodes[n] for n in names if not self.nodes[n].alive]
        for node in started:
            node.start()
        for node in started:
            node.wait_ready(self.target.ready_timeout)

    def heal(self) -> None:
        """Every proxy clean, every paused node resumed, every dead one started again (but those that could not
        start again after a power loss: the nemesis reports them)."""
        if self.toxiproxy is not None:
            self.toxiproxy.reset()
        for node in self.nodes.values():
            if node.paused:
                node.resume()
        self.start_nodes([n for n, node in self.nodes.items() if not node.alive and n not in self.given_up])

    @property
    def proxy_addresses(self) -> dict[str, str]:
        """Every node's proxy (host:port), by node name."""
        return {name: f"{n.proxy_host}:{n.proxy_port}" for name, n in self.infos.items()}

    @property
    def direct_addresses(self) -> dict[str, str]:
        """Every node's own address, past its proxy (for readers of what a node recorded, never for requests)."""
        return {name: f"{n.host}:{n.port}" for name, n in self.infos.items()}

    @property
    def client_bootstrap(self) -> list[str]:
        """The proxies clients talk to: every node's, or only the client-facing ones' where the nodes have
        roles (a service's, not its database's)."""
        roles = self.target.abilities.roles
        return [a for name, a in self.proxy_addresses.items() if roles is None or roles.client_facing(name)]

    def ask(self, ability: Callable[[Deployment], Any]) -> Any:
        """Call one of the target's abilities on the running deployment."""
        return ability(self.deployment)

    def cleanup(self, say: Callable[[str], None]) -> None:
        """What the nodes keep outside the run's directory, removed once they have stopped (the target's ability)."""
        tidy = self.target.abilities.cleanup
        if tidy is not None and self.infos:
            try:
                tidy(self.deployment)
            except Exception as e:
                say(f"  warning: the target's cleanup failed: {type(e).__name__}: {e}")
        if self.toxiproxy is not None:
            self.toxiproxy.stop()
