"""Kafka 4.x KRaft nodes run from the Maven jars `onceproof setup kafka` fetches: each node's configuration,
its storage format, its JVM command line, readiness, and the few admin calls the harness needs (topics,
partition leaders, the active controller).

Every node is a combined broker+controller (`process.roles=broker,controller`) with a static quorum
(`controller.quorum.voters`), so a plain `StorageTool format` with one shared cluster id is enough. Each
node has three listeners (on 127.0.0.1 locally; on the container's address in containers):

| listener | port | advertised as | carries |
|---|---|---|---|
| PLAINTEXT | `info.port` | `127.0.0.1:<info.proxy_port>` (its Toxiproxy) | clients only |
| INTERNAL | `info.extra_ports["internal"]` | itself, no proxy | replication between brokers |
| CONTROLLER | `info.extra_ports["controller"]` | itself (the static voters) | the KRaft quorum, broker heartbeats |

Clients follow `advertised.listeners` after bootstrap, so each broker advertises its *own* proxy port and
every client byte passes that node's proxy. Replication and the quorum must not: with a single PLAINTEXT
listener as `inter.broker.listener.name`, followers would fetch from the leader's advertised address,
the proxy, and an `ack-loss` or `partition-client` fault on a node would also cut its replication and turn
a client fault into an ISR shrink. So client faults (toxics, a disabled proxy) hit client traffic only;
node faults (kill, pause) hit everything. A pairwise split of replication links is not possible this way
(one advertised address per listener per broker: research/kafka.md §6).

The proxies exist before the brokers start (their ports go into `advertised.listeners`), which is why the
proxy's listen port, not the broker's, is what a node advertises.

JVM start time: a broker JVM spends most of its start loading and verifying Kafka's classes. `onceproof
setup kafka` therefore runs a one-node broker once with `-XX:ArchiveClassesAtExit` (`build_cds_archive`),
and every later JVM maps that class-data-sharing archive (`-XX:SharedArchiveFile`), which about halves
the start. Measured on the 2-core machine (shared, load 3-7), JVM start to ready: three nodes started
together 6-7.5 s with the archive, 12.5-13.5 s without; one node about 2 s (4-7 s without); a node
restarted after SIGKILL 2.5-5 s. Three nodes wait for the slowest JVM plus the KRaft election (pre-votes
wait for a majority of JVMs) and the brokers' registration and unfencing. `StorageTool format` is another
JVM start per node (about 1 s with the archive); `format_all` runs them in parallel (about 3 s for three).
tests/test_kafka_cluster.py measures and prints these (`-s`).
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import os
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugin.runtime import NodeSpec, Runtime
from plugin.target import NodeInfo
from targets.kafka import jars

EXTRA_PORTS = ("controller", "internal")  # besides info.port: ports each node needs (info.extra_ports)
CONFIG_NAME = "server.properties"
LOG4J_NAME = "log4j2.properties"
LOG_DIR_NAME = "kraft-logs"  # log.dirs (and the metadata log) inside the node's data directory

HEAP = ("-Xms128m", "-Xmx512m")  # three nodes fit in 1.5 GB of heap; the harness's loads need far less
JVM_OPTS = (
    # Kafka's own defaults (kafka-run-class.sh), minus the GC log
    "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
    "-XX:+ExitOnOutOfMemoryError",  # a node out of memory dies visibly rather than limping on
)
STARTED_LINE = b"Kafka Server started"  # KafkaRaftServer, once the broker is RUNNING and serving
ADMIN_TIMEOUT = 10.0  # seconds, for one admin request

LOG4J2_PROPERTIES = """\
# Written by onceproof: everything to stdout, which the runtime appends to the node's log.
status = warn
name = onceproof-kafka
shutdownHook = disable
appender.out.type = Console
appender.out.name = STDOUT
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d{ISO8601}] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.request.additivity = false
logger.request.appenderRef.out.ref = STDOUT
"""


class KafkaClusterError(RuntimeError):
    """Formatting, a topic or an admin request failed; the message says what and how."""


# --- ports, ids, paths -----------------------------------------------------------------------------


def allocate_ports(infos: Iterable[NodeInfo], free_port: Callable[[], int]) -> None:
    """Give each node the extra ports it lacks (`EXTRA_PORTS`) from `free_port`."""
    for info in infos:
        for name in EXTRA_PORTS:
            if name not in info.extra_ports:
                info.extra_ports[name] = free_port()


def cluster_id() -> str:
    """A new cluster id: 16 random bytes, base64url without padding (22 characters), as Kafka's Uuid.
    Like Kafka's Uuid.randomUuid, never one starting with "-": StorageTool's argument parser would take
    `-t -abc...` for an option (1 id in 64 would fail to format)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def classpath() -> str:
    """The pinned Kafka jars (`<cache>/kafka-<version>/libs/*`); SetupError naming `onceproof setup kafka`
    when they are not fetched yet."""
    return jars.kafka_classpath()


def _data_dir(info: NodeInfo) -> Path:
    if info.data_dir is None:
        raise ValueError(f"node {info.name}: no data_dir")
    return Path(info.data_dir)


def config_path(info: NodeInfo) -> Path:
    return _data_dir(info) / CONFIG_NAME


def log_path(info: NodeInfo) -> Path:
    """Where the runtime writes the node's output: `<data_dir>/<name>.log` (the harness's layout)."""
    return _data_dir(info) / f"{info.name}.log"


# --- configuration ---------------------------------------------------------------------------------


def broker_defaults(n: int) -> dict[str, Any]:
    """The server.properties every node gets for an `n`-node cluster, before the profile's settings."""
    rf, isr = min(3, n), min(2, n)
    return {
        "default.replication.factor": rf,
        "min.insync.replicas": isr,
        "unclean.leader.election.enable": "false",
        "auto.create.topics.enable": "false",
        "num.partitions": 1,
        "offsets.topic.replication.factor": rf,
        "offsets.topic.num.partitions": 10,  # default 50: slows the first group join on 2 cores
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": isr,
        "transaction.state.log.num.partitions": 10,
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": isr,
        "group.initial.rebalance.delay.ms": 0,
        # the controller fences a broker that missed heartbeats this long (default 9 s): a killed
        # leader's partitions move after about 6 s
        "broker.heartbeat.interval.ms": 1000,
        "broker.session.timeout.ms": 6000,
        # small machine: fewer threads, a smaller log-cleaner buffer (default 128 MB) for a 512 MB heap
        "num.network.threads": 2,
        "num.io.threads": 4,
        "log.cleaner.dedupe.buffer.size": 32 * 1024 * 1024,
    }


def _prop(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_config(node: NodeInfo, index: int, nodes: list[NodeInfo], settings: Mapping[str, Any]) -> Path:
    """Write `<data_dir>/server.properties` (and the log4j2 configuration) for `node`, the `index`-th
    (1-based: its node.id) of `nodes`; `settings` are server.properties entries applied over
    `broker_defaults(len(nodes))`. Every node's controller and internal ports must be set
    (`info.extra_ports`, see `allocate_ports`) and its proxy port known. Returns the config's path."""
    for n in nodes:
        missing = [p for p in EXTRA_PORTS if p not in n.extra_ports]
        if missing:
            raise ValueError(f"node {n.name}: no {' or '.join(missing)} port (see allocate_ports)")
    if node.proxy_port is None:
        raise ValueError(f"node {node.name}: no proxy port; create its proxy before writing its config")
    data = _data_dir(node)
    data.mkdir(parents=True, exist_ok=True)
    cport, iport = node.extra_ports["controller"], node.extra_ports["internal"]
    voters = ",".join(f"{i}@{n.host}:{n.extra_ports['controller']}" for i, n in enumerate(nodes, 1))
    b = node.bind
    props: dict[str, Any] = {
        "process.roles": "broker,controller",
        "node.id": index,
        "controller.quorum.voters": voters,
        "controller.listener.names": "CONTROLLER",
        "listeners": f"PLAINTEXT://{b}:{node.port},INTERNAL://{b}:{iport},CONTROLLER://{b}:{cport}",
        # clients: this node's own proxy; replication: direct (see the module docstring)
        "advertised.listeners": f"PLAINTEXT://{node.proxy_host}:{node.proxy_port},INTERNAL://{node.host}:{iport}",
        "inter.broker.listener.name": "INTERNAL",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data / LOG_DIR_NAME),
        **broker_defaults(len(nodes)),
        **dict(settings),
    }
    path = data / CONFIG_NAME
    lines = [f"# Written by onceproof for {node.name} (node.id {index} of {len(nodes)})"]
    lines += [f"{k}={_prop(v)}" for k, v in props.items()]
    path.write_text("\n".join(lines) + "\n")
    (data / LOG4J_NAME).write_text(LOG4J2_PROPERTIES)
    return path


def read_config(path: str | os.PathLike[str]) -> dict[str, str]:
    """A server.properties as a dict (the simple `key=value` lines `write_config` writes)."""
    out = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


# --- processes -------------------------------------------------------------------------------------


def _log4j_opt(config: Path) -> str:
    return f"-Dlog4j2.configurationFile={config.parent / LOG4J_NAME}"


def _cds_opts(cds: bool) -> list[str]:
    """Map the class-data-sharing archive `onceproof setup kafka` built, when there is one. -Xshare:auto
    (the default) falls back to the jars if the archive does not fit this JVM or classpath."""
    if not cds:
        return []
    archive = jars.kafka_cds_archive()
    return [f"-XX:SharedArchiveFile={archive}"] if archive is not None else []


def _run_local(argv: list[str], timeout: float) -> tuple[int, str]:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    return r.returncode, (r.stdout + r.stderr).strip()


Runner = Callable[[list[str], float], tuple[int, str]]  # runs a command where the node runs: (exit code, output)


def format_storage(node: NodeInfo, config: str | os.PathLike[str], cid: str, cp: str,
                   timeout: float = 120.0, cds: bool = True, run: Runner | None = None) -> str:
    """`kafka.tools.StorageTool format -t <cid> -c <config>` (static voters: no --standalone or
    --initial-controllers needed), run by `run` (default: a local process). Returns its output;
    KafkaClusterError with the output on failure."""
    config = Path(config)
    argv = ["java", "-Xmx256m", *_cds_opts(cds), _log4j_opt(config), "-cp", cp, "kafka.tools.StorageTool",
            "format", "-t", cid, "-c", str(config)]
    try:
        rc, out = (run or _run_local)(argv, timeout)
    except subprocess.TimeoutExpired as e:
        raise KafkaClusterError(f"node {node.name}: formatting its storage took over {timeout:g}s") from e
    if rc != 0:
        raise KafkaClusterError(f"node {node.name}: `StorageTool format` exited {rc}:\n{out[-3000:]}")
    return out


def format_all(nodes: list[NodeInfo], configs: list[Path], cid: str, cp: str, timeout: float = 120.0,
               cds: bool = True, run: Runner | None = None) -> None:
    """`format_storage` for every node at once (each is a JVM start of a second or two)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(nodes) or 1) as pool:
        futures = [pool.submit(format_storage, n, c, cid, cp, timeout, cds, run)
                   for n, c in zip(nodes, configs, strict=True)]
        for f in futures:
            f.result()


IMAGE_CDS_ARCHIVE = "/opt/kafka/onceproof.jsa"  # in images `onceproof images build` makes; ignored if absent


def node_argv(node: NodeInfo, config: str | os.PathLike[str], cp: str, cds: bool = True) -> list[str]:
    """The broker's command line: `java <heap> <gc> [-XX:SharedArchiveFile=...]
    -Dlog4j2.configurationFile=... -cp <cp> kafka.Kafka <config>`; it logs to stdout only (the runtime
    appends that to the node's log)."""
    config = Path(config)
    share = [f"-XX:SharedArchiveFile={IMAGE_CDS_ARCHIVE}"] if node.in_container and cds else _cds_opts(cds)
    return ["java", *HEAP, *JVM_OPTS, *share, _log4j_opt(config), "-cp", cp, "kafka.Kafka", str(config)]


def exercise(bootstrap: list[str], topic_timeout: float = 30.0) -> None:
    """Create a topic and produce one record, so the request path's classes load (for a CDS archive)."""
    create_topic(bootstrap, "onceproof-cds", 1, 1, 1, timeout=topic_timeout)
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_block_ms=30000)
    try:
        producer.send("onceproof-cds", b"x").get(timeout=30)
    finally:
        producer.close(timeout=5)


def build_cds_archive(cp: str, archive: Path, runtime: Runtime, timeout: float = 180.0) -> None:
    """Run a one-node broker with `runtime` (local processes, in its run directory) with
    `-XX:ArchiveClassesAtExit=<archive>`: start it, create a topic, produce a record (so the request path's
    classes are in too), stop it with SIGTERM; the JVM writes the archive as it exits. Bounded by `timeout` for
    the start and 60 s for the exit; raises on failure. Tears the runtime down."""
    work = runtime.run_dir
    info = NodeInfo("kafka-cds", runtime.free_port(), data_dir=work / "kafka-cds")
    info.proxy_port = info.port  # no proxy here: it advertises its own port
    allocate_ports([info], runtime.free_port)
    config = write_config(info, 1, [info], {})
    format_storage(info, config, cluster_id(), cp, cds=False)
    argv = node_argv(info, config, cp, cds=False)
    argv.insert(1, f"-XX:ArchiveClassesAtExit={archive}")
    try:
        node = runtime.node(NodeSpec(name=info.name, argv=argv, data_dir=work / info.name, log_path=log_path(info),
                                     ready=lambda _n: ready(info)), runtime.place())
        node.start().wait_ready(timeout)
        exercise([f"127.0.0.1:{info.port}"], topic_timeout=30)
        node.stop(timeout=60.0)
    finally:
        runtime.teardown()
    if not (archive.is_file() and archive.stat().st_size > 0):
        tail = "\n".join(node.log_tail(15))
        raise KafkaClusterError(f"the JVM wrote no class-data archive to {archive}; its log ends:\n{tail}")


# --- the wire: Metadata and DescribeQuorum without a client library ----------------------------------
# Readiness, leader and controller lookups ask one chosen broker through one chosen port (its proxy) and
# nothing else, each bounded by a socket timeout, then the next address; a client library would wander to
# other brokers after bootstrap, and kafka-python waits out its request timeout on a paused broker.

METADATA_KEY, METADATA_VERSION = 3, 8  # v8: the newest before flexible encoding; Kafka 4.x serves v4-v13
DESCRIBE_QUORUM_KEY, DESCRIBE_QUORUM_VERSION = 55, 0  # flexible from v0; brokers forward it to the controller
CLUSTER_METADATA = "__cluster_metadata"


@dataclass
class Partition:
    partition: int
    leader: int  # -1: none
    replicas: list[int]
    isr: list[int]
    error: int = 0


@dataclass
class Metadata:
    brokers: dict[int, tuple[str, int]]  # node id -> advertised (host, port): alive, unfenced brokers
    cluster_id: str | None
    controller_id: int  # in KRaft a *random* live broker, not the active controller: see controller_id()
    topics: dict[str, list[Partition]]
    topic_errors: dict[str, int]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> Any:
        v = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def array(self, item: Callable[[], Any]) -> list[Any]:
        n = self.take(">i")
        return [item() for _ in range(max(n, 0))]

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            b = self.data[self.pos]
            self.pos += 1
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7

    def compact_string(self) -> str | None:
        n = self.uvarint() - 1
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def tagged_fields(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self.pos += self.uvarint()  # size, then skip the value


def _string(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the broker (or its proxy)")
        buf += chunk
    return bytes(buf)


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _compact_string(s: str) -> bytes:
    b = s.encode()
    return _uvarint(len(b) + 1) + b


def _request(host: str, port: int, api_key: int, version: int, body: bytes, flexible: bool,
             timeout: float) -> _Reader:
    """Send one request on a new connection and return a reader positioned after the response header.
    OSError (timeouts and closed connections included) when no whole answer comes within `timeout`."""
    correlation = int(time.monotonic_ns() & 0x7FFFFFFF)
    header = struct.pack(">hhi", api_key, version, correlation) + _string("onceproof")
    if flexible:
        header += _uvarint(0)  # request header v2: no tagged fields
    request = header + body
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", _recv_exactly(s, 4))[0]
        r = _Reader(_recv_exactly(s, size))
    if r.take(">i") != correlation:
        raise ConnectionError(f"response to api {api_key} with the wrong correlation id")
    if flexible:
        r.tagged_fields()  # response header v1
    return r


def metadata(port: int, topics: list[str] | None = None, timeout: float = 2.0, host: str = "127.0.0.1") -> Metadata:
    """One Metadata request (v8) to host:port; `topics` None asks for none (brokers only). Raises OSError
    (including timeouts and closed connections) when no answer comes within `timeout` seconds."""
    names = [] if topics is None else topics
    body = struct.pack(">i", len(names)) + b"".join(_string(t) for t in names)
    body += struct.pack(">???", False, False, False)  # auto-create, cluster ops, topic ops
    r = _request(host, port, METADATA_KEY, METADATA_VERSION, body, False, timeout)
    r.take(">i")  # throttle_time_ms
    brokers = {}
    for node_id, host_, port_, _rack in r.array(lambda: (r.take(">i"), r.string(), r.take(">i"), r.string())):
        brokers[node_id] = (host_, port_)
    cid = r.string()
    controller = r.take(">i")
    out: dict[str, list[Partition]] = {}
    errors: dict[str, int] = {}

    def partition() -> Partition:
        err, index, leader, _epoch = r.take(">hiii")
        replicas = r.array(lambda: r.take(">i"))
        isr = r.array(lambda: r.take(">i"))
        r.array(lambda: r.take(">i"))  # offline replicas
        return Partition(index, leader, replicas, isr, err)

    def topic() -> None:
        err = r.take(">h")
        name = r.string() or ""  # a topic always has a name
        r.take(">?")  # is_internal
        parts = r.array(partition)
        r.take(">i")  # topic authorized operations
        errors[name] = err
        out[name] = sorted(parts, key=lambda p: p.partition)

    r.array(topic)
    return Metadata(brokers, cid, controller, out, errors)


def quorum_leader(port: int, timeout: float = 2.0, host: str = "127.0.0.1") -> int:
    """The metadata quorum's leader (the active controller) by DescribeQuorum v0 to host:port, which a
    broker forwards to the controllers; -1 while there is none. OSError when there is no answer in time,
    KafkaClusterError on an error code."""
    body = _uvarint(2) + _compact_string(CLUSTER_METADATA)  # one topic
    body += _uvarint(2) + struct.pack(">i", 0) + _uvarint(0)  # one partition, 0; its tagged fields
    body += _uvarint(0) + _uvarint(0)  # the topic's and the request's tagged fields
    r = _request(host, port, DESCRIBE_QUORUM_KEY, DESCRIBE_QUORUM_VERSION, body, True, timeout)
    if err := r.take(">h"):
        raise KafkaClusterError(f"DescribeQuorum via {host}:{port}: error code {err}")
    for _ in range(r.uvarint() - 1):  # topics
        r.compact_string()
        for _ in range(r.uvarint() - 1):  # partitions: only the first fields matter
            index, err, leader = r.take(">ihi")
            if err:
                raise KafkaClusterError(f"DescribeQuorum via {host}:{port}: partition error code {err}")
            if index == 0:
                return leader
    raise KafkaClusterError(f"DescribeQuorum via {host}:{port}: no {CLUSTER_METADATA} partition 0 in the answer")


def _proxy_ports(bootstrap: Iterable[str]) -> list[tuple[str, int]]:
    out = []
    for b in bootstrap:
        host, _, port = b.rpartition(":")
        out.append((host or "127.0.0.1", int(port)))
    return out


def _first_metadata(bootstrap: Iterable[str], topics: list[str] | None, timeout: float) -> Metadata:
    """Metadata from the first address of `bootstrap` that answers."""
    errors = []
    for host, port in _proxy_ports(bootstrap):
        try:
            return metadata(port, topics, timeout=timeout, host=host)
        except (OSError, struct.error, IndexError) as e:
            errors.append(f"{host}:{port}: {e!r}")
    raise KafkaClusterError("no broker answered a metadata request: " + "; ".join(errors))


# --- readiness -------------------------------------------------------------------------------------


class _LogWatch:
    """Reads a node's log incrementally: has the started line been written since the latest process
    started? The local runtime marks each start and exit with a `--- onceproof ...` line."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[Path, tuple[int, bool]] = {}  # path -> (bytes scanned, started)

    def started(self, path: Path) -> bool:
        with self._lock:
            offset, started = self._state.get(path, (0, False))
            try:
                with open(path, "rb") as fh:
                    size = fh.seek(0, os.SEEK_END)
                    if size < offset:  # a new file at the same path
                        offset, started = 0, False
                    fh.seek(offset)
                    data = fh.read(size - offset)
            except FileNotFoundError:
                self._state.pop(path, None)
                return False
            end = data.rfind(b"\n") + 1  # whole lines only; the rest is read next time
            for line in data[:end].splitlines():
                if line.startswith(b"--- onceproof "):
                    started = False
                elif STARTED_LINE in line:
                    started = True
            self._state[path] = (offset + end, started)
            return started


_watch = _LogWatch()


def ready(node: Any, *, log: str | os.PathLike[str] | None = None, port: int | None = None,
          timeout: float = 1.0) -> bool:
    """Ready = the node's log says `Kafka Server started` since its latest start, and a Metadata request
    through its proxy (`port`: default the PLAINTEXT port it advertises) answers with this node among the
    live, unfenced brokers. `node` is a NodeInfo or a LocalNode (anything with name and data_dir); the
    log defaults to `log_path(node)` (a LocalNode's own log_path when it has one).

    Note: through the proxy means a node whose proxy is disabled or black-holed is not ready; heal a
    node's proxy faults before waiting for it, or pass `port=info.port` to ask the broker directly."""
    path = Path(log) if log is not None else Path(getattr(node, "log_path", None) or log_path(node))
    if not _watch.started(path):
        return False
    cfg = read_config(_data_dir(node) / CONFIG_NAME)
    node_id = int(cfg["node.id"])
    advertised = dict(e.split("://", 1) for e in cfg["advertised.listeners"].split(","))
    host, _, proxy_port = advertised["PLAINTEXT"].rpartition(":")
    if port is None:
        port = int(proxy_port)
    else:
        host = getattr(node, "host", None) or "127.0.0.1"
    try:
        md = metadata(port, timeout=timeout, host=host)
    except (OSError, struct.error, IndexError):
        return False
    return node_id in md.brokers


# --- admin -----------------------------------------------------------------------------------------


def _admin(bootstrap: list[str], timeout: float = ADMIN_TIMEOUT):
    from kafka import KafkaAdminClient

    ms = int(timeout * 1000)
    return KafkaAdminClient(bootstrap_servers=list(bootstrap), client_id="onceproof-admin",
                            request_timeout_ms=ms, bootstrap_timeout_ms=ms,
                            reconnect_backoff_ms=100, reconnect_backoff_max_ms=1000)


def create_topic(bootstrap: list[str], name: str, partitions: int, rf: int, min_isr: int,
                 configs: Mapping[str, Any] | None = None, timeout: float = 60.0) -> dict[int, Partition]:
    """Create `name` through the proxies (an existing topic with as many partitions is accepted), then
    wait until every broker in `bootstrap` knows it with a leader and at least `min_isr` in-sync replicas
    for every partition, so the first acks=all send succeeds. Returns partition -> Partition."""
    from kafka.errors import TopicAlreadyExistsError

    deadline = time.monotonic() + timeout
    topic_configs = {"min.insync.replicas": str(min_isr), **{k: _prop(v) for k, v in (configs or {}).items()}}
    admin = _admin(bootstrap)
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics({name: {"num_partitions": partitions, "replication_factor": rf,
                                        "configs": topic_configs}}, timeout_ms=int(timeout * 1000))
    finally:
        admin.close()
    last = "no answer yet"
    while True:
        result: dict[int, Partition] | None = None
        for host, port in _proxy_ports(bootstrap):
            try:
                md = metadata(port, [name], timeout=2.0, host=host)
            except (OSError, struct.error, IndexError) as e:
                last, result = f"{host}:{port}: {e!r}", None
                break
            parts = md.topics.get(name, [])
            bad = [p for p in parts if p.error or p.leader < 0 or len(p.isr) < min_isr]
            if md.topic_errors.get(name) or len(parts) != partitions or bad:
                last, result = (f"{host}:{port}: topic error {md.topic_errors.get(name)}, {len(parts)} of "
                                f"{partitions} partitions, not ready: {bad}"), None
                break
            result = {p.partition: p for p in parts}
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise KafkaClusterError(f"topic {name} not ready on every broker after {timeout:g}s ({last})")
        time.sleep(0.1)


def partition_leaders(bootstrap: list[str], topic: str, timeout: float = 2.0) -> dict[int, int]:
    """Partition -> leader node id (-1: none) of `topic`, from the metadata of the first broker in
    `bootstrap` that answers (through its proxy)."""
    md = _first_metadata(bootstrap, [topic], timeout)
    err = md.topic_errors.get(topic)
    if err:
        raise KafkaClusterError(f"metadata for topic {topic}: error code {err}")
    return {p.partition: p.leader for p in md.topics.get(topic, [])}


def controller_id(bootstrap: list[str], timeout: float = 2.0) -> int:
    """The node id of the active KRaft controller (the metadata quorum's leader) from DescribeQuorum,
    asked of the first address in `bootstrap` that answers (-1 while the quorum has no leader). Not
    Metadata's controller_id: in KRaft that is a random live broker, since clients cannot reach the
    controllers."""
    errors = []
    for host, port in _proxy_ports(bootstrap):
        try:
            return quorum_leader(port, timeout=timeout, host=host)
        except (OSError, struct.error, IndexError, KafkaClusterError) as e:
            errors.append(f"{host}:{port}: {e!r}")
    raise KafkaClusterError("no broker answered DescribeQuorum: " + "; ".join(errors))
