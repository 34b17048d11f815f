"""rabbitmq-server nodes (Debian's 3.10.8): each node's environment, configuration, command line and readiness,
the cluster joined at prepare, and the few admin calls the harness makes (declare the queue, find its leader,
its backlog) through `rabbitmqctl`, run here against the nodes directly, one call at a time, each bounded.

A node is `<name>@localhost` (short names), with its own AMQP port (behind its own Toxiproxy proxy: the only
way in for clients), its own Erlang distribution port (node to node, never proxied, so client faults hit
client traffic only), its data in its directory (`RABBITMQ_MNESIA_BASE`, which holds the quorum queue's
raft log too) and the run's Erlang cookie in `$HOME/.erlang.cookie` (HOME is the node's directory). The
nodes of a run find each other through one epmd on a port of the run's own (`ERL_EPMD_PORT`, the first
node's `epmd` port): the first node to boot starts it as a daemon, outside the nodes' process groups, so
the target's `cleanup` stops it once the nodes have stopped.

The scripts in /usr/lib/rabbitmq/bin run as the caller (root here); /usr/sbin's wrappers would switch to the
`rabbitmq` user, who cannot write the run's directory.

Facts measured on this machine (2 cores, 3.10.8 on Erlang 25.2.3): three nodes started at once take about
12 s to listen; `rabbitmqctl` answers in 0.4-0.5 s; joining a node (stop_app, join_cluster, start_app)
about 2.5 s.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from plugin.needs import SetupError
from plugin.target import Deployment, NodeInfo, Profile

BIN = Path("/usr/lib/rabbitmq/bin")
# the script where it really is (Debian's bin/ holds links): it finds RabbitMQ's files next to itself
SERVER = os.path.realpath(BIN / "rabbitmq-server")
CTL = str(BIN / "rabbitmqctl")
QUEUE = "onceproof"
POLICY = "onceproof-ha"
PORTS = ("dist", "epmd")  # besides the AMQP port
COOKIE = "ONCEPROOF-RUN-COOKIE"  # every run's nodes are their own cluster: distinct ports, distinct epmd
EFFECTS_FILE = "rabbitmq-effects.sqlite"  # the consumers' effect store in the run's directory (workloads.effects)
CTL_TIMEOUT_S = 30.0
PREPARE_TIMEOUT_S = 90.0
EPMD_STOP_S = 10.0


def erlang_name(node: NodeInfo) -> str:
    return f"{node.name}@localhost"


def epmd_port(d: Deployment) -> int:
    """The run's epmd: the first node's `epmd` port, the same for every node and for rabbitmqctl."""
    return d.nodes[0].extra_ports["epmd"]


def node_env(d: Deployment, node: NodeInfo) -> dict[str, str]:
    """Everything that makes a node its own: name, ports, directories, its configuration file."""
    assert node.data_dir is not None
    data = Path(node.data_dir)
    return {"HOME": str(data),
            "ERL_EPMD_PORT": str(epmd_port(d)),
            "ERL_EPMD_ADDRESS": node.bind,  # the epmd the first node starts listens where the nodes do
            # the distribution listener too (Erlang's default is every interface)
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": f"-kernel inet_dist_use_interface {{{node.bind.replace('.', ',')}}}",
            "RABBITMQ_NODENAME": erlang_name(node),
            "RABBITMQ_DIST_PORT": str(node.extra_ports["dist"]),
            "RABBITMQ_MNESIA_BASE": str(data / "mnesia"),
            "RABBITMQ_LOG_BASE": str(data / "log"),
            "RABBITMQ_LOGS": "-",  # to standard output: the node's log in the run's directory
            "RABBITMQ_CONFIG_FILE": str(data / "rabbitmq"),  # .conf is added
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(data / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(data / "rabbitmq.pid"),
            "RABBITMQ_CONF_ENV_FILE": str(data / "rabbitmq-env.conf")}  # not /etc's


def argv(d: Deployment, node: NodeInfo) -> list[str]:
    return ["env", *(f"{k}={v}" for k, v in node_env(d, node).items()), SERVER]


def config_text(node: NodeInfo, profile: Profile) -> str:
    """The node's rabbitmq.conf: AMQP on its own address and port, guest allowed from the proxy, and the
    profile's partition handling (`ignore`, RabbitMQ's default, unless the profile says otherwise)."""
    return "\n".join([f"# Written by onceproof for {node.name}",
                      f"listeners.tcp.default = {node.bind}:{node.port}",
                      "loopback_users = none",
                      f"cluster_partition_handling = {profile.settings.get('partition_handling', 'ignore')}",
                      ""])


def write_configs(d: Deployment) -> None:
    for node in d.nodes:
        assert node.data_dir is not None
        data = Path(node.data_dir)
        (data / "rabbitmq.conf").write_text(config_text(node, d.profile))
        (data / "enabled_plugins").write_text("[].\n")
        (data / "rabbitmq-env.conf").write_text("# onceproof: every setting is in the node's environment\n")
        cookie = data / ".erlang.cookie"
        if cookie.exists():
            cookie.chmod(0o600)
        cookie.write_text(COOKIE)
        cookie.chmod(0o400)  # Erlang refuses a cookie others can read


def ready(node: NodeInfo) -> bool:
    """The node speaks AMQP: it answers the protocol header with a method frame (Connection.Start), which it
    does only once it has booted."""
    try:
        with socket.create_connection((node.host, node.port), timeout=1.0) as s:
            s.settimeout(2.0)
            s.sendall(b"AMQP\x00\x00\x09\x01")
            return s.recv(1) == b"\x01"
    except OSError:
        return False


def ctl(d: Deployment, node: NodeInfo, *args: str, timeout: float = CTL_TIMEOUT_S) -> str:
    """One rabbitmqctl call against `node`; its output, or RuntimeError with what it said."""
    env = {**os.environ, **{k: v for k, v in node_env(d, d.nodes[0]).items() if k in ("HOME", "ERL_EPMD_PORT")}}
    try:
        r = subprocess.run([CTL, "-q", "-n", erlang_name(node), *args], capture_output=True, text=True,
                           timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {node.name}: no answer in {timeout:.0f} s") from e
    if r.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {node.name}: exit {r.returncode}: "
                           f"{(r.stderr or r.stdout).strip()[-400:]}")
    return r.stdout


def _live(d: Deployment) -> NodeInfo:
    """A node that answers rabbitmqctl (the first that does): admin calls go to any running node."""
    last: Exception | None = None
    for node in d.nodes:
        if not ready(node):
            continue
        try:
            ctl(d, node, "ping", timeout=10.0)
            return node
        except RuntimeError as e:
            last = e
    raise RuntimeError(f"no RabbitMQ node answers: {last}")


def _queue_arguments(profile: Profile, size: int) -> dict[str, Any]:
    if profile.settings["queue"] == "quorum":
        return {"x-queue-type": "quorum", "x-quorum-initial-group-size": size}
    return {"x-queue-type": "classic"}


def prepare(d: Deployment) -> None:
    """Join every other node to the first (each node boots alone: peer discovery at boot races when nodes
    start at once), apply the mirroring policy where the profile has one, declare the durable queue, and wait
    until it has a member on every node."""
    first, others = d.nodes[0], d.nodes[1:]
    for node in others:
        ctl(d, node, "stop_app")
        ctl(d, node, "join_cluster", erlang_name(first))
        ctl(d, node, "start_app")
    mirror = d.profile.settings.get("mirror")
    if mirror:
        ctl(d, first, "set_policy", "--apply-to", "queues", POLICY, f"^{QUEUE}$", json.dumps(mirror))
    import pika

    conn = pika.BlockingConnection(pika.ConnectionParameters(first.host, first.port, connection_attempts=3,
                                                             retry_delay=1.0, socket_timeout=5.0))
    try:
        conn.channel().queue_declare(QUEUE, durable=True, arguments=_queue_arguments(d.profile, len(d.nodes)))
    finally:
        conn.close()
    deadline = time.monotonic() + PREPARE_TIMEOUT_S
    while True:
        members = queue_members(d)
        if len(members) >= len(d.nodes):
            return
        if time.monotonic() > deadline:
            raise SetupError(f"queue {QUEUE} has members on {members} only after {PREPARE_TIMEOUT_S:.0f} s "
                             f"(want {len(d.nodes)} nodes)")
        time.sleep(0.5)


def _queue_info(d: Deployment, *items: str) -> dict[str, Any]:
    out = ctl(d, _live(d), "list_queues", "--formatter", "json", "name", *items)
    for row in json.loads(out or "[]"):
        if row.get("name") == QUEUE:
            return dict(row)
    raise RuntimeError(f"queue {QUEUE} not found")


def queue_members(d: Deployment) -> list[str]:
    """The nodes holding a replica of the queue: a quorum queue's members, or a classic queue's leader and
    its mirrors."""
    if d.profile.settings["queue"] == "quorum":
        return list(_queue_info(d, "members").get("members") or [])
    if not d.profile.settings.get("mirror"):
        return [node.name for node in d.nodes]  # an unmirrored classic queue lives on one node: nothing to wait for
    nodes = _classic_nodes(d)
    return [nodes["leader"], *nodes["mirrors"]]


def _classic_nodes(d: Deployment) -> dict[str, Any]:
    """A classic queue's leader (its process's node) and its mirrors' nodes, as Erlang node names."""
    expr = ("{ok, Q} = rabbit_amqqueue:lookup(rabbit_misc:r(<<\"/\">>, queue, <<\"" + QUEUE + "\">>)), "
            "io:format(\"~s ~s~n\", [node(amqqueue:get_pid(Q)), "
            "lists:join(\",\", [atom_to_list(node(P)) || P <- amqqueue:get_slave_pids(Q)])]).")
    out = ctl(d, _live(d), "eval", expr).split()
    return {"leader": out[0], "mirrors": out[1].split(",") if len(out) > 1 and out[1] else []}


def _short(d: Deployment, erlang: str) -> str:
    for node in d.nodes:
        if erlang_name(node) == erlang:
            return node.name
    raise RuntimeError(f"{erlang}: not a node of this run")


def leader(d: Deployment) -> str:
    """The node that leads the queue: the quorum queue's raft leader, or the classic queue's master."""
    if d.profile.settings["queue"] == "quorum":
        found = _queue_info(d, "leader").get("leader")
        if not found:
            raise RuntimeError(f"queue {QUEUE} has no leader now")
        return _short(d, str(found))
    return _short(d, _classic_nodes(d)["leader"])


def backlog(d: Deployment) -> int:
    """Messages still in the queue, ready or delivered and not yet acknowledged."""
    return int(_queue_info(d, "messages").get("messages") or 0)


def cleanup(d: Deployment) -> None:
    """Stop the run's epmd (started by the first node to boot, as a daemon of its own) once the nodes are down.
    epmd refuses while a node is still registered (a node killed a moment ago may be), so it is asked again for a
    few seconds."""
    env = {**os.environ, "ERL_EPMD_PORT": str(epmd_port(d))}
    deadline = time.monotonic() + EPMD_STOP_S
    while True:
        try:
            r = subprocess.run(["epmd", "-kill"], env=env, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return
        if "living nodes" not in r.stdout + r.stderr or time.monotonic() > deadline:
            return  # stopped, or none was running
        time.sleep(0.2)
