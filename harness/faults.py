"""Faults: each knows how to start and how to heal (Jepsen's nemesis protocol).

Network faults act on the Toxiproxy proxy in front of a node's client port; process faults act on
the node's process with real signals; worker faults SIGKILL a producer or consumer process and start
a fresh one (new process ids) at heal. Every start and heal is written to the history as a nemesis
operation by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from harness.schedule import Window


class FaultContext(Protocol):
    """What a fault needs from the run: nodes, proxies, workers."""

    toxiproxy: Any

    def node(self, name: str) -> Any: ...
    def proxy(self, node: str) -> Any: ...
    def restart_node(self, name: str) -> None: ...
    def kill_worker(self, slot: str) -> None: ...
    def replace_worker(self, slot: str) -> None: ...


@dataclass(frozen=True)
class Fault:
    """`kind` says what it may hit: "network"/"process" a broker node, "leader"/"controller" the node that
    holds that role when the fault starts, "cluster" every node in turn, "consumer"/"producer" a worker.
    `start` and `heal` get the window with its nodes resolved (a leader becomes the node's name)."""

    name: str
    kind: str
    start: Callable[[FaultContext, Window], Any]
    heal: Callable[[FaultContext, Window], Any]
    describe: str


def _toxic(type_: str, stream: str, attributes: dict[str, Any]):
    def start(ctx: FaultContext, w: Window) -> None:
        for n in w.nodes:
            ctx.toxiproxy.add_toxic(ctx.proxy(n), f"onceproof-{w.fault}", type_, stream=stream,
                                    attributes=attributes)

    def heal(ctx: FaultContext, w: Window) -> None:
        for n in w.nodes:
            ctx.toxiproxy.remove_toxic(ctx.proxy(n), f"onceproof-{w.fault}")
    return start, heal


def _each_node(action: str) -> Callable[[FaultContext, Window], None]:
    def run(ctx: FaultContext, w: Window) -> None:
        for n in w.nodes:
            getattr(ctx.node(n), action)()
    return run


def _restart_nodes(ctx: FaultContext, w: Window) -> None:
    for n in w.nodes:
        ctx.restart_node(n)


def _proxy(enabled: bool):
    def run(ctx: FaultContext, w: Window) -> None:
        for n in w.nodes:
            (ctx.toxiproxy.enable if enabled else ctx.toxiproxy.disable)(ctx.proxy(n))
    return run


def _kill_workers(ctx: FaultContext, w: Window) -> None:
    for slot in w.nodes:
        ctx.kill_worker(slot)


def _replace_workers(ctx: FaultContext, w: Window) -> None:
    for slot in w.nodes:
        ctx.replace_worker(slot)


def _noop(ctx: FaultContext, w: Window) -> None:
    return None


def _rolling_restart(ctx: FaultContext, w: Window) -> None:
    for n in w.nodes:
        ctx.restart_node(n)


FAULTS: dict[str, Fault] = {f.name: f for f in (
    Fault("ack-loss", "network", *_toxic("timeout", "downstream", {"timeout": 0}),
          "requests reach the broker, responses are dropped; healing closes those connections"),
    Fault("latency", "network", *_toxic("latency", "downstream", {"latency": 300, "jitter": 100}),
          "300 ms ± 100 ms added to every response"),
    Fault("reset", "network", *_toxic("reset_peer", "upstream", {"timeout": 0}),
          "connections are reset (RST) as soon as they carry data"),
    Fault("partition-client", "network", _proxy(False), _proxy(True),
          "the client proxy is down: connections drop and new ones are refused"),
    Fault("kill", "process", _each_node("kill"), _restart_nodes,
          "SIGKILL the broker; started again at heal"),
    Fault("pause", "process", _each_node("pause"), _each_node("resume"), "SIGSTOP the broker; SIGCONT at heal"),
    Fault("restart", "process", _restart_nodes, _noop, "SIGTERM the broker and start it again at once"),
    Fault("rolling-restart", "cluster", _rolling_restart, _noop,
          "SIGTERM and restart every broker in turn, each waited until ready"),
    Fault("kill-leader", "leader", _each_node("kill"), _restart_nodes,
          "SIGKILL the leader of partition 0 (from metadata); started again at heal"),
    Fault("pause-leader", "leader", _each_node("pause"), _each_node("resume"),
          "SIGSTOP the leader of partition 0; SIGCONT at heal"),
    Fault("kill-controller", "controller", _each_node("kill"), _restart_nodes,
          "SIGKILL the active controller; started again at heal"),
    Fault("pause-controller", "controller", _each_node("pause"), _each_node("resume"),
          "SIGSTOP the active controller; SIGCONT at heal"),
    Fault("kill-consumer", "consumer", _kill_workers, _replace_workers,
          "SIGKILL a consumer process; a fresh one replaces it at heal"),
    Fault("kill-producer", "producer", _kill_workers, _replace_workers,
          "SIGKILL a producer process; a fresh one replaces it at heal"),
)}
