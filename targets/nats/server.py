"""nats-server nodes with JetStream (Debian's 2.9.10, or a version `versions` builds): each node's configuration,
command line and readiness, and the
few admin calls the harness makes (create the stream and its consumer, find the stream's leader and the
meta leader, the consumer's backlog, the stream read again after the drain).

Each node listens on three ports: the client port (behind its own Toxiproxy proxy: the only way in for
clients), the cluster port (routes between nodes, never proxied, so client faults hit client traffic
only) and the HTTP monitoring port (readiness, /jsz). `no_advertise` keeps the servers from telling
clients each other's direct addresses. Harness-side admin calls go to the nodes directly, one at a time,
each bounded.

Facts measured on this machine (2 cores, nats-server 2.9.10, nats-py 2.16.0): three nodes have a meta
leader 0.2-1 s after they start; a new stream leader takes 4-8 s after the old one is SIGKILLed (twice in
41 kills much longer: the raft group stalled until the killed node came back); `/healthz` answers 503
while any local stream replica is behind, which under write load happens on every node several percent
of the time, so readiness is `/healthz?js-server-only=true` (the node knows the meta leader and is
current with it), not the full check.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from plugin.needs import SetupError
from plugin.target import Deployment, NodeInfo, Profile
from targets.nats import versions

STREAM = "onceproof"
SUBJECT = "onceproof.in"
CONSUMER = "onceproof"  # the durable pull consumer every consumer process binds to
CONFIG_NAME = "nats-server.conf"
EFFECTS_FILE = "nats-effects.sqlite"  # the consumers' effect store in the run's directory (workloads.effects)
CLUSTER_NAME = "onceproof"
PORTS = ("cluster", "monitor")  # besides the client port
BINARY_IN_IMAGE = "/nats-server"  # as in the public `nats` image
ACK_WAIT_S = 5.0  # a message delivered but not acknowledged this long is delivered again
ADMIN_TIMEOUT_S = 3.0
PREPARE_TIMEOUT_S = 60.0
GET_IN_FLIGHT = 16  # message gets in flight during the final read (more fill JetStream's API queue: 503)

T = TypeVar("T")


def binary(node: NodeInfo, version: str = versions.DEBIAN) -> str:
    if node.in_container:
        if version != versions.DEBIAN:
            raise SetupError(f"--server-version {version} runs with --runtime local only (the nats image carries "
                             f"Debian's {versions.DEBIAN})")
        return BINARY_IN_IMAGE
    return versions.binary(version)


def config_path(node: NodeInfo) -> Path:
    assert node.data_dir is not None
    return Path(node.data_dir) / CONFIG_NAME


def config_text(node: NodeInfo, nodes: list[NodeInfo], sync_interval: str | None = None) -> str:
    """The node's configuration: JetStream with its store in the node's directory (and the profile's
    `sync_interval`, on the versions that have it) and, with more than one node, a cluster whose routes name
    every node's cluster port."""
    assert node.data_dir is not None
    b = node.bind
    lines = [f"# Written by onceproof for {node.name} ({len(nodes)} node{'s' if len(nodes) > 1 else ''})",
             f"server_name: {node.name}",
             f"listen: {b}:{node.port}",
             f"http: {b}:{node.extra_ports['monitor']}",
             "jetstream {",
             f'  store_dir: "{Path(node.data_dir) / "jetstream"}"',
             "  max_memory_store: 256MB",
             "  max_file_store: 4GB",
             *([f"  sync_interval: {sync_interval}"] if sync_interval else []),
             "}"]
    if len(nodes) > 1:
        routes = ", ".join(f"nats-route://{n.host}:{n.extra_ports['cluster']}" for n in nodes)
        lines += ["cluster {",
                  f"  name: {CLUSTER_NAME}",
                  f"  listen: {b}:{node.extra_ports['cluster']}",
                  "  no_advertise: true",
                  f"  routes: [ {routes} ]",
                  "}"]
    return "\n".join(lines) + "\n"


def write_configs(d: Deployment) -> None:
    """Each node's configuration; a profile that sets `sync_interval` needs a version that has it."""
    version = versions.version_of(dict(d.options))
    versions.check(version)
    sync = d.profile.settings.get("sync_interval")
    if sync and not versions.has_sync_interval(version):
        raise SetupError(f"profile {d.profile.name} sets sync_interval, which nats-server {version} does not have: "
                         f"run it with --server-version {' or '.join(versions.BUILT)}")
    for node in d.nodes:
        config_path(node).parent.mkdir(parents=True, exist_ok=True)
        config_path(node).write_text(config_text(node, d.nodes, sync))


def argv(node: NodeInfo, version: str = versions.DEBIAN) -> list[str]:
    return [binary(node, version), "-c", str(config_path(node))]


def http_get(node: NodeInfo, path: str, timeout: float = 1.0) -> tuple[int, str]:
    """(status, body) of a GET on the node's monitoring port (direct, not through a proxy)."""
    url = f"http://{node.host}:{node.extra_ports['monitor']}{path}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never an HTTP proxy
    try:
        with opener.open(url, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def ready(node: NodeInfo) -> bool:
    """Serving clients, with JetStream in contact and current with the meta leader."""
    try:
        return http_get(node, "/healthz?js-server-only=true")[0] == 200
    except OSError:
        return False


# --- admin, from the harness: nats-py on a private event loop, direct to one node at a time -----------


async def _quiet(e: Exception) -> None:
    return None


async def connect(url: str, timeout: float = 1.0) -> Any:
    """A connection that never reconnects, buffers or retries on its own (nats-py's defaults do all
    three): one attempt at `url`, closed for good when it drops (the caller connects again, visibly)."""
    import nats

    return await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=1, reconnect_time_wait=0,
                              connect_timeout=timeout, pending_size=0, dont_randomize=True, ping_interval=1,
                              max_outstanding_pings=2, error_cb=_quiet, disconnected_cb=None, closed_cb=None)


def _admin(d: Deployment, call: Callable[[Any], Awaitable[T]], timeout: float = ADMIN_TIMEOUT_S) -> T:
    """`call(js)` on the first node that answers in time (directly, not through its proxy)."""
    errors = []
    for node in d.nodes:
        async def once(node: NodeInfo = node) -> T:
            nc = await connect(f"nats://{node.host}:{node.port}", timeout=min(1.0, timeout))
            try:
                return await asyncio.wait_for(call(nc.jetstream(timeout=timeout)), timeout)
            finally:
                await nc.close()

        try:
            return asyncio.run(once())
        except Exception as e:
            errors.append(f"{node.name}: {type(e).__name__}: {e}")
    raise RuntimeError("no node answered: " + "; ".join(errors))


def stream_config(profile: Profile, n: int, replicas: int = 0) -> Any:
    """The stream: the profile's replicas (or `replicas`, a run's --stream-replicas), at most the nodes."""
    from nats.js.api import DiscardPolicy, StorageType, StreamConfig

    s = profile.settings
    return StreamConfig(name=STREAM, subjects=[SUBJECT], num_replicas=min(replicas or s["replicas"], n),
                        storage=StorageType.MEMORY if s["storage"] == "memory" else StorageType.FILE,
                        duplicate_window=s.get("duplicate_window", 120.0), discard=DiscardPolicy.OLD)


def consumer_config() -> Any:
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    return ConsumerConfig(durable_name=CONSUMER, ack_policy=AckPolicy.EXPLICIT,
                          ack_wait=ACK_WAIT_S, max_deliver=-1, max_ack_pending=1000, filter_subject=SUBJECT,
                          deliver_policy=DeliverPolicy.ALL)


def prepare(d: Deployment) -> None:
    """Create the stream and the durable consumer once (workers only bind to it: a worker creating it would
    silently update its settings), then wait until the stream has a leader and every replica is current."""
    deadline = time.monotonic() + PREPARE_TIMEOUT_S
    last = ""
    for step in ("stream", "consumer", "current"):
        while True:
            try:
                if step == "stream":
                    _admin(d, lambda js: js.add_stream(stream_config(d.profile, len(d.nodes),
                                                                     int(d.options.get("stream_replicas") or 0))))
                elif step == "consumer":
                    _admin(d, lambda js: js.add_consumer(STREAM, consumer_config()))
                elif _current(_admin(d, lambda js: js.stream_info(STREAM))):
                    break
                else:
                    last = "the stream's replicas are not current yet"
                    raise RuntimeError(last)
                break
            except Exception as e:  # no meta leader yet, no placement yet, a replica catching up
                last = str(e)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the stream was not ready after {PREPARE_TIMEOUT_S:.0f}s "
                                       f"({step}: {last})") from e
                time.sleep(0.2)


def _current(info: Any) -> bool:
    c = info.cluster
    if c is None:  # a single server
        return True
    return bool(c.leader) and all(r.current for r in c.replicas or ())


def leader(d: Deployment) -> str:
    """The node leading the stream (its raft group's leader; for an R1 stream, the node holding it)."""
    cluster = _admin(d, lambda js: js.stream_info(STREAM)).cluster
    name = cluster.leader if cluster is not None else d.nodes[0].name  # a single server leads everything
    if not name:
        raise RuntimeError(f"stream {STREAM} has no leader right now")
    return str(name)


def meta_leader(d: Deployment) -> str:
    """The JetStream meta leader (the cluster's metadata raft group), from /jsz on the first node that
    answers; a single server leads its own metadata."""
    if len(d.nodes) == 1:
        return d.nodes[0].name
    for node in d.nodes:
        try:
            status, body = http_get(node, "/jsz", timeout=ADMIN_TIMEOUT_S)
        except OSError:
            continue
        if status == 200:
            found = (json.loads(body).get("meta_cluster") or {}).get("leader")
            if found:
                return str(found)
    raise RuntimeError("no node named a JetStream meta leader")


def backlog(d: Deployment) -> int:
    """Messages not yet acknowledged: the drain is done when this is 0. Counted twice over and the larger
    count taken: the consumer's own (undelivered + delivered but unacknowledged), and the stream's last
    sequence (from the stream's leader) past the consumer's ack floor. After partitions a consumer was seen
    reporting nothing pending while the stream held 630 more messages; its own word alone would end the
    drain there."""

    async def both(js: Any) -> int:
        info = await js.consumer_info(STREAM, CONSUMER)
        last = (await js.stream_info(STREAM)).state.last_seq
        unacked = max(0, last - int(info.ack_floor.stream_seq or 0))
        return max(int(info.num_pending or 0) + int(info.num_ack_pending or 0), unacked)

    return _admin(d, both)


def final_read(d: Deployment, timeout_s: float = 120.0) -> list[tuple[int, dict[str, Any]]]:
    """Every message the stream holds, as (stream sequence, decoded payload): each sequence from the first
    to the last the stream reports, asked of the stream's leader one by one (a sequence it no longer holds
    is skipped), many at a time. No consumer is involved, so nothing about delivery state can hide a
    message."""

    async def read(js: Any) -> list[tuple[int, dict[str, Any]]]:
        import nats.js.errors

        state = (await js.stream_info(STREAM)).state
        gate = asyncio.Semaphore(GET_IN_FLIGHT)

        async def get(seq: int) -> tuple[int, dict[str, Any]] | None:
            async with gate:
                for attempt in range(50):
                    try:
                        m = await js.get_msg(STREAM, seq)
                        break
                    except nats.js.errors.NotFoundError:
                        return None
                    except nats.js.errors.ServiceUnavailableError:  # the API's queue is full: ask again
                        await asyncio.sleep(0.05 * (attempt + 1))
                else:
                    raise RuntimeError(f"sequence {seq}: JetStream stayed unavailable")
            try:
                v = json.loads(m.data)
            except ValueError:
                v = None
            return (seq, v) if isinstance(v, dict) else (seq, {"id": f"<undecodable seq {seq}>"})

        found = await asyncio.gather(*(get(s) for s in range(state.first_seq or 1, state.last_seq + 1)))
        return [f for f in found if f is not None]

    return _admin(d, read, timeout=timeout_s)
