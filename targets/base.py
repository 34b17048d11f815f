"""What a target (a system under test) provides, in the spirit of Jepsen: it knows its nodes and clients.

A target module defines NAME, PROFILES, FAULTS, NODES (default node count), READY_TIMEOUT, optionally
EXTRA_PORTS (names of more ports per node), and these functions, called by the harness in this order:
`setup_nodes(infos, profile)` before the first start (write configs, format storage), `node_argv(info,
profile)`, `ready(info)`, `prepare(infos, profile)` (create topics, streams, groups), then in workers
`producer(bootstrap, profile)` and `consumer(bootstrap, profile, name, work_s=...)` where `bootstrap` lists
the nodes' proxy addresses, and after the drain `read_effects(infos, profile)`.

A target module declares its profiles (configurations that *claim* a guarantee), how to start its
nodes, and the client operations the workloads call. Clients run inside worker processes; they never
retry on their own, and map every error to an outcome: `ok`, `fail` (definitely did not happen) or
`info` (unknown: timeouts, lost connections).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Profile:
    """A configuration that claims a guarantee, with the settings that make it (or fail to)."""

    name: str
    guarantee: str
    description: str
    settings: dict[str, Any] = field(default_factory=dict)
    expected_unsafe_under: tuple[str, ...] = ()  # faults it is known to fail under (known answers)


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
    `in_container` tells a target to use the container image's paths (say, Kafka's jars)."""

    name: str
    port: int
    proxy_port: int | None = None
    data_dir: Path | None = None
    extra_ports: dict[str, int] = field(default_factory=dict)  # e.g. a controller or replication port
    host: str = "127.0.0.1"
    bind: str = "127.0.0.1"
    proxy_host: str = "127.0.0.1"
    in_container: bool = False


class Producer(Protocol):
    def send(self, mid: str, key: Any, amount: int) -> Outcome: ...
    def close(self) -> None: ...


class Consumer(Protocol):
    def poll(self, max_messages: int, block_ms: int) -> tuple[Outcome, list[Delivery]]: ...
    def reclaim(self, max_messages: int) -> tuple[Outcome, list[Delivery]]: ...
    def process(self, batch: list[Delivery], record_ack: Any) -> None: ...
    def close(self) -> None: ...
