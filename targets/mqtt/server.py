"""A mosquitto node (Debian's 2.0.11): its configuration, command line and readiness.

One node: mosquitto has no clustering (a bridge is not replication). Its client port is behind Toxiproxy, the
only way in for clients. Persistence is mosquitto's only durability: with `persistence true` it keeps queued
messages and sessions in memory and writes a snapshot (`mosquitto.db`) every `autosave_interval` seconds (or,
with `autosave_on_changes`, every that many changes) and at a clean shutdown; nothing is written per message,
so a SIGKILL loses what changed since the last snapshot. Debian's own configuration turns persistence on and
leaves the interval at its default, 1800 s.
"""

from __future__ import annotations

import socket
from pathlib import Path

from plugin.target import Deployment, NodeInfo, Profile

TOPIC = "onceproof/in"
GROUP = "onceproof"  # the consumers' shared subscription: each message goes to one of them
SHARED = f"$share/{GROUP}/{TOPIC}"
CONFIG_NAME = "mosquitto.conf"
INFLIGHT = 10  # QoS 1/2 messages the broker sends a consumer unacknowledged: the queue workload's default batch
EFFECTS_FILE = "mqtt-effects.sqlite"  # the consumers' effect store in the run's directory (workloads.effects)


def config_path(node: NodeInfo) -> Path:
    assert node.data_dir is not None
    return Path(node.data_dir) / CONFIG_NAME


def config_text(node: NodeInfo, profile: Profile) -> str:
    """The node's mosquitto.conf: a listener on its own address and port, anonymous clients, and the profile's
    persistence (`autosave`: seconds between snapshots, or changes with `on_changes`; None: no persistence) and
    queue limit for a session's messages (`max_queued`; mosquitto's default, 1000, drops new messages beyond
    it silently). A consumer gets at most `INFLIGHT` unacknowledged messages at a time (mosquitto's default: 20)."""
    assert node.data_dir is not None
    s = profile.settings
    lines = [f"# Written by onceproof for {node.name} (profile {profile.name})",
             f"listener {node.port} {node.bind}",
             "allow_anonymous true",
             "user root",  # as root, mosquitto would become user mosquitto, who cannot write the run directory
             "log_dest stdout",
             "log_type error",
             "log_type warning",
             "log_type notice",
             f"max_queued_messages {s.get('max_queued', 0)}",
             f"max_inflight_messages {INFLIGHT}"]
    if s.get("autosave") is None:
        lines.append("persistence false")
    else:
        lines += ["persistence true", f"persistence_location {node.data_dir}/",
                  f"autosave_interval {s['autosave']}",
                  f"autosave_on_changes {'true' if s.get('on_changes') else 'false'}"]
    return "\n".join(lines) + "\n"


def write_configs(d: Deployment) -> None:
    for node in d.nodes:
        config_path(node).write_text(config_text(node, d.profile))


def argv(node: NodeInfo) -> list[str]:
    return ["mosquitto", "-c", str(config_path(node))]


def ready(node: NodeInfo) -> bool:
    """The node accepts a connection on its port (mosquitto listens once its snapshot is loaded)."""
    try:
        with socket.create_connection((node.host, node.port), timeout=1.0):
            return True
    except OSError:
        return False
