"""targets/kafka/cluster.py: configuration (unit), and real KRaft clusters of 3 and 1 nodes from the Maven
jars behind real Toxiproxy (integration): ready, a topic, produce and consume through the proxies, the
leader of partition 0 SIGKILLed and a new one elected, the old one restarted; no java process left.

Run with `-s` to see the start times it measures."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness import setup
from harness.runtime import LocalRuntime, NodeSpec, free_port
from plugin import needs
from plugin.target import NodeInfo
from targets.kafka import cluster, install, jars

READY_TIMEOUT = 90.0  # a cold JVM on a busy 2-core machine
FAILOVER_TIMEOUT = 30.0  # broker.session.timeout.ms is 6 s


# --- unit ------------------------------------------------------------------------------------------


def infos(tmp_path: Path, n: int) -> list[NodeInfo]:
    out = []
    for i in range(1, n + 1):
        info = NodeInfo(f"kafka-{i}", 9000 + i, proxy_port=19000 + i, data_dir=tmp_path / f"kafka-{i}")
        out.append(info)
    ports = iter(range(29000, 29100))
    cluster.allocate_ports(out, lambda: next(ports))
    return out


def test_cluster_id_is_22_chars_of_base64url():
    ids = {cluster.cluster_id() for _ in range(1000)}
    assert len(ids) == 1000
    for cid in ids:
        assert len(cid) == 22 and set(cid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        assert not cid.startswith("-")  # StorageTool would read `-t -...` as an option


def test_config_advertises_the_proxy_and_replicates_directly(tmp_path):
    nodes = infos(tmp_path, 3)
    path = cluster.write_config(nodes[1], 2, nodes, {"min.insync.replicas": 1, "unclean.leader.election.enable":
                                                     True})
    assert path == cluster.config_path(nodes[1]) == tmp_path / "kafka-2" / "server.properties"
    cfg = cluster.read_config(path)
    n2 = nodes[1]
    c = [n.extra_ports["controller"] for n in nodes]
    assert cfg["node.id"] == "2" and cfg["process.roles"] == "broker,controller"
    assert cfg["controller.quorum.voters"] == f"1@127.0.0.1:{c[0]},2@127.0.0.1:{c[1]},3@127.0.0.1:{c[2]}"
    assert cfg["advertised.listeners"] == (f"PLAINTEXT://127.0.0.1:{n2.proxy_port},"
                                           f"INTERNAL://127.0.0.1:{n2.extra_ports['internal']}")
    assert cfg["listeners"].startswith(f"PLAINTEXT://127.0.0.1:{n2.port},")
    assert cfg["inter.broker.listener.name"] == "INTERNAL"
    assert cfg["min.insync.replicas"] == "1" and cfg["unclean.leader.election.enable"] == "true"  # settings win
    assert cfg["default.replication.factor"] == "3" and cfg["offsets.topic.replication.factor"] == "3"
    assert cfg["transaction.state.log.min.isr"] == "2" and cfg["auto.create.topics.enable"] == "false"
    assert cfg["group.initial.rebalance.delay.ms"] == "0"
    assert cfg["log.dirs"] == str(tmp_path / "kafka-2" / "kraft-logs")
    assert (tmp_path / "kafka-2" / "log4j2.properties").is_file()
    argv = cluster.node_argv(n2, path, "/x/libs/*")
    assert argv[0] == "java" and argv[-2:] == ["kafka.Kafka", str(path)]
    assert f"-Dlog4j2.configurationFile={tmp_path / 'kafka-2' / 'log4j2.properties'}" in argv


def test_one_node_config_uses_replication_factor_one(tmp_path):
    (node,) = infos(tmp_path, 1)
    cfg = cluster.read_config(cluster.write_config(node, 1, [node], {}))
    for key in ("default.replication.factor", "min.insync.replicas", "offsets.topic.replication.factor",
                "transaction.state.log.replication.factor", "transaction.state.log.min.isr"):
        assert cfg[key] == "1", key


def test_config_needs_every_port(tmp_path):
    nodes = infos(tmp_path, 2)
    del nodes[1].extra_ports["controller"]
    with pytest.raises(ValueError, match="kafka-2: no controller port"):
        cluster.write_config(nodes[0], 1, nodes, {})
    nodes = infos(tmp_path, 1)
    nodes[0].proxy_port = None
    with pytest.raises(ValueError, match="no proxy port"):
        cluster.write_config(nodes[0], 1, nodes, {})


def test_ready_needs_the_started_line_since_the_latest_start(tmp_path):
    (node,) = infos(tmp_path, 1)
    cluster.write_config(node, 1, [node], {})
    log = cluster.log_path(node)
    log.write_text("--- onceproof 2026: starting kafka-1: java\n[x] INFO [KafkaRaftServer nodeId=1] Kafka Server "
                   "started (kafka.server.KafkaRaftServer)\n")
    assert cluster._watch.started(log)
    assert not cluster.ready(node)  # nothing answers on the proxy port
    with open(log, "a") as fh:
        fh.write("--- onceproof 2026: kafka-1 pid 1 killed by SIGKILL\n--- onceproof 2026: starting kafka-1: j")
    assert not cluster._watch.started(log)


def test_classpath_names_the_setup_command(tmp_path, monkeypatch):
    monkeypatch.setenv("ONCEPROOF_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(needs.SetupError, match="onceproof setup kafka"):
        cluster.classpath()
    (req,) = [r for r in setup.requirements(["kafka"]) if r.name.startswith("kafka-")]
    assert not req.present and req.fix == "onceproof setup kafka"


def tools(progress) -> needs.SetupTools:
    """What setup hands an install step (harness.setup.local_runtime makes the runtime)."""
    return needs.SetupTools(progress, setup.local_runtime)


class FakeMaven:
    """Stands in for install.run's Maven: records the command and copies the pinned jars (empty files)."""

    def __init__(self, monkeypatch, cds_error: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.real = needs.run
        self.cds_error = cds_error
        monkeypatch.setattr(install, "run", self)
        monkeypatch.setattr(cluster, "build_cds_archive", self.build_cds)

    def __call__(self, cmd, env=None, timeout=None):
        cmd = list(cmd)
        if not cmd[0].endswith("mvn") or "-v" in cmd:
            return self.real(cmd, env, timeout)
        self.calls.append(cmd)
        libs = Path(next(a for a in cmd if a.startswith("-DoutputDirectory=")).split("=", 1)[1])
        libs.mkdir(parents=True)
        for _, artifact, version in jars.KAFKA_ARTIFACTS:
            (libs / f"{artifact}-{version}.jar").write_bytes(b"")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    def build_cds(self, cp, archive, runtime, timeout=180.0):
        assert cp == f"{jars.kafka_libs()}/*"
        if self.cds_error:
            raise cluster.KafkaClusterError(self.cds_error)
        archive.write_bytes(b"archive")


@pytest.mark.skipif(not shutil.which("mvn"), reason="needs mvn on PATH (apt-get install -y maven)")
def test_setup_kafka_fetches_once_into_the_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("ONCEPROOF_CACHE", str(cache))
    fake = FakeMaven(monkeypatch)
    said: list[str] = []
    libs = install.install_kafka(tools(said.append))
    assert libs == cache / f"kafka-{jars.KAFKA_VERSION}" / "libs"
    ((cmd,),) = [fake.calls]
    assert f"-Dmaven.repo.local={cache / 'm2'}" in cmd and "-DincludeScope=runtime" in cmd
    assert cmd[cmd.index("-f") + 1] == str(libs.parent / "pom.xml")
    pom = (libs.parent / "pom.xml").read_text()
    assert all(f"<artifactId>{a}</artifactId><version>{v}</version>" in pom for _, a, v in jars.KAFKA_ARTIFACTS)
    assert cluster.classpath() == f"{libs}/*" and jars.kafka_cds_archive() == jars.kafka_cds_path()
    assert any("Maven" in m for m in said)
    install.install_kafka(tools(lambda m: pytest.fail(f"fetched again: {m}")))
    assert len(fake.calls) == 1
    (req,) = [r for r in setup.requirements(["kafka"]) if r.name.startswith("kafka-")]
    assert req.present and "CDS archive" in req.detail


@pytest.mark.skipif(not shutil.which("mvn"), reason="needs mvn on PATH (apt-get install -y maven)")
def test_setup_kafka_goes_on_without_a_cds_archive(tmp_path, monkeypatch):
    monkeypatch.setenv("ONCEPROOF_CACHE", str(tmp_path / "cache"))
    FakeMaven(monkeypatch, cds_error="no JVM today")
    said: list[str] = []
    install.install_kafka(tools(said.append))
    assert jars.kafka_cds_archive() is None and any("no JVM today" in m for m in said)
    (req,) = [r for r in setup.requirements(["kafka"]) if r.name.startswith("kafka-")]
    assert req.present and "no CDS archive" in req.detail
    argv = cluster.node_argv(NodeInfo("k", 1, 2, tmp_path), tmp_path / "server.properties", "cp")
    assert not any(a.startswith("-XX:SharedArchiveFile") for a in argv)


def test_java_older_than_17_counts_as_missing(tmp_path, monkeypatch):
    java = tmp_path / "java"
    java.write_text('#!/bin/sh\necho \'openjdk version "11.0.2" 2019-01-15\' >&2\n')
    java.chmod(0o755)
    monkeypatch.setattr(needs.shutil, "which", lambda name, *a, **k: str(java) if name == "java" else None)
    req = setup.requirements(["kafka"])[0]
    assert req.name == "java" and not req.present and "needs 17" in req.detail
    assert req.fix == "apt-get install -y openjdk-17-jre-headless"


# --- integration -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kafka_cp() -> str:
    """The Kafka classpath, fetching the jars (and Toxiproxy) if need be; skip when that is impossible."""
    try:
        setup.install(["kafka"], progress=lambda m: print(m))
        return cluster.classpath()
    except needs.SetupError as e:
        pytest.skip(f"`onceproof setup kafka` has not been run and cannot run here: {e}")


def java_pids(marker: str) -> list[int]:
    """Processes whose command line mentions `marker` (this test's directory) and runs java."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"java") and any(marker.encode() in a for a in argv):
            out.append(int(d.name))
    return out


class Cluster:
    """n nodes with their proxies, configs and formatted storage, started with the local runtime."""

    def __init__(self, run_dir: Path, n: int, cp: str, settings: dict | None = None) -> None:
        from harness.toxiproxy import ToxiproxyServer

        self.run_dir = run_dir
        self.cp = cp
        self.toxiproxy = ToxiproxyServer(run_dir / "toxiproxy.log").start()
        self.runtime = LocalRuntime(run_dir)
        self.infos: list[NodeInfo] = []
        for i in range(1, n + 1):
            name = f"kafka-{i}"
            info = NodeInfo(name, free_port(), data_dir=self.runtime.node_dir(name))
            info.proxy_port = self.toxiproxy.create_proxy(name, f"127.0.0.1:{info.port}").port
            self.infos.append(info)
        cluster.allocate_ports(self.infos, free_port)
        configs = [cluster.write_config(info, i, self.infos, settings or {}) for i, info in
                   enumerate(self.infos, 1)]
        t = time.monotonic()
        cluster.format_all(self.infos, configs, cluster.cluster_id(), cp)
        self.format_s = time.monotonic() - t
        self.nodes = {}
        for info, config in zip(self.infos, configs, strict=True):
            spec = NodeSpec(name=info.name, argv=cluster.node_argv(info, config, cp), data_dir=info.data_dir,
                            log_path=cluster.log_path(info), ports={"client": info.port, **info.extra_ports},
                            ready=lambda n, i=info: cluster.ready(i))
            self.nodes[info.name] = self.runtime.node(spec)

    @property
    def bootstrap(self) -> list[str]:
        return [f"127.0.0.1:{i.proxy_port}" for i in self.infos]

    def start(self) -> float:
        t = time.monotonic()
        for node in self.nodes.values():
            node.start()
        for node in self.nodes.values():
            node.wait_ready(READY_TIMEOUT)
        return time.monotonic() - t

    def close(self) -> None:
        self.runtime.teardown()
        self.toxiproxy.stop()


@pytest.fixture
def make_cluster(tmp_path, kafka_cp):
    made: list[Cluster] = []

    def make(n: int, settings: dict | None = None) -> Cluster:
        c = Cluster(tmp_path / f"run{len(made)}", n, kafka_cp, settings)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
    deadline = time.monotonic() + 10
    while java_pids(str(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert java_pids(str(tmp_path)) == [], "a broker JVM outlived the teardown"


def producer(bootstrap: list[str]):
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0, request_timeout_ms=10000,
                         max_block_ms=20000, retries=5, retry_backoff_ms=200, metadata_max_age_ms=2000)


def consume(bootstrap: list[str], topic: str, want: int, timeout: float = 30.0) -> list[bytes]:
    from kafka import KafkaConsumer

    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
                      group_id=None, consumer_timeout_ms=1000, request_timeout_ms=10000)
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < want and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                got += [r.value for r in records]
    finally:
        c.close()
    return got


def wait_for(what: str, fn, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"{what} not within {timeout:g}s (last: {last!r})")


@pytest.mark.integration
def test_three_node_cluster_through_proxies_survives_a_leader_kill(make_cluster):
    c = make_cluster(3)
    ready_s = c.start()
    t0 = time.monotonic() - ready_s
    for info in c.infos:  # every broker advertises its own proxy
        md = cluster.metadata(info.proxy_port)
        assert {i: p for i, (_, p) in md.brokers.items()} == {i: n.proxy_port for i, n in enumerate(c.infos, 1)}
    t = time.monotonic()
    parts = cluster.create_topic(c.bootstrap, "t", 3, 3, 2)
    topic_s = time.monotonic() - t
    assert sorted(parts) == [0, 1, 2] and all(len(p.isr) == 3 for p in parts.values())
    p = producer(c.bootstrap)
    try:
        p.send("t", b"m0").get(timeout=30)
        first_s = time.monotonic() - t0
        for i in range(1, 20):
            p.send("t", f"m{i}".encode()).get(timeout=30)
    finally:
        p.close(timeout=5)
    print(f"\n3 nodes: format {c.format_s:.1f}s (parallel), JVM start to all ready {ready_s:.1f}s, "
          f"to the first acks=all message {first_s:.1f}s (creating the topic took {topic_s:.1f}s)")
    assert sorted(consume(c.bootstrap, "t", 20)) == sorted(f"m{i}".encode() for i in range(20))

    leaders = cluster.partition_leaders(c.bootstrap, "t")
    assert sorted(leaders) == [0, 1, 2] and set(leaders.values()) <= {1, 2, 3}
    controller = cluster.controller_id(c.bootstrap)
    assert controller in (1, 2, 3)

    old = leaders[0]
    victim = c.nodes[f"kafka-{old}"]
    victim.kill()
    t = time.monotonic()
    survivors = [b for i, b in enumerate(c.bootstrap, 1) if i != old]
    new = wait_for("a new leader of partition 0",
                   lambda: (lambda x: x if x not in (-1, old) else None)(cluster.partition_leaders(survivors, "t")[0]),
                   FAILOVER_TIMEOUT)
    print(f"leader of partition 0: {old} killed, {new} elected after {time.monotonic() - t:.1f}s")
    p = producer(survivors)
    try:
        p.send("t", b"after-kill", partition=0).get(timeout=30)  # min ISR 2 of the 2 left
    finally:
        p.close(timeout=5)
    if old == controller:
        new_controller = wait_for("a new controller", lambda: cluster.controller_id(survivors), FAILOVER_TIMEOUT)
        assert new_controller != old

    t = time.monotonic()
    victim.start()
    victim.wait_ready(READY_TIMEOUT)
    print(f"restarted node {old}: ready after {time.monotonic() - t:.1f}s")
    wait_for("the restarted node back in the ISR of partition 0",
             lambda: old in cluster.create_topic(c.bootstrap, "t", 3, 3, 2)[0].isr, FAILOVER_TIMEOUT + 30)
    assert len(consume(c.bootstrap, "t", 21)) == 21


@pytest.mark.integration
def test_one_node_cluster(make_cluster):
    c = make_cluster(1)
    ready_s = c.start()
    t0 = time.monotonic() - ready_s
    cluster.create_topic(c.bootstrap, "one", 2, 1, 1)
    p = producer(c.bootstrap)
    try:
        p.send("one", b"hello").get(timeout=30)
        first_s = time.monotonic() - t0
    finally:
        p.close(timeout=5)
    print(f"\n1 node: format {c.format_s:.1f}s, JVM start to ready {ready_s:.1f}s, to the first message "
          f"{first_s:.1f}s")
    assert consume(c.bootstrap, "one", 1) == [b"hello"]
    assert cluster.partition_leaders(c.bootstrap, "one") == {0: 1, 1: 1}
    assert cluster.controller_id(c.bootstrap) == 1
    node = c.nodes["kafka-1"]
    node.stop()  # SIGTERM: a controlled shutdown
    assert not cluster.ready(c.infos[0])
    with contextlib.suppress(Exception):
        cluster.metadata(c.infos[0].proxy_port, timeout=0.5)
    assert os.path.exists(cluster.log_path(c.infos[0]))
