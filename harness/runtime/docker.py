"""The docker runtime: every node, the Toxiproxy server and every worker is a container on a network the
run creates, so each has its own network namespace (node-to-node partitions are real iptables rules)
and `kill` is a SIGKILL to a container, `pause` a `docker pause` (the cgroup freezer).

Addresses: the run's network gets a /24 of its own; nodes and Toxiproxy get fixed addresses in its lower
half (written into broker configs before any container starts, and kept across restarts), workers get
addresses docker hands out from the upper half. The harness reaches every container directly over the
bridge, so no port is published and the engine may run with `--iptables=false`.

Files: the run directory is bind-mounted at its own path in every container, so configs, data
directories and history shards have the same paths inside and out; the project's source is mounted
read-only at /opt/onceproof/src for workers. Each container's output is copied into its log file in the
run directory as it is written.

Cleanup: every object carries the label `onceproof=1`, the run's id and the harness's pid. Teardown (normal
exit, exception, Ctrl-C) removes the run's containers and network; `clean()` (`onceproof clean`) removes
what a crashed or SIGKILLed harness left, and each new docker run first removes objects whose harness
is gone.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import requests

from harness import lossyfs
from harness.runtime import cleanup
from harness.runtime.local import NodeError, NodeExitedError, NodeNotReadyError, SpecNode, unmount_disks
from harness.toxiproxy import APIConsumer, ToxiproxyError, ToxiproxyServer
from plugin.imaging import HARNESS_COMPOSE, WORKER, Image, compose_image, local_name
from plugin.runtime import LossyDisks, NodeSpec, Partitions, Placement

LABEL = "onceproof"
LABEL_RUN = "onceproof.run"
LABEL_PID = "onceproof.pid"
LABEL_BOOT = "onceproof.boot"
SRC_MOUNT = "/opt/onceproof/src"
PAUSE_ATTEMPTS = 3  # runc may fail to freeze a container under heavy disk I/O; pause tries this often
REPO = Path(__file__).resolve().parents[2]
_client: Any = None


class DockerUnavailable(RuntimeError):
    """No docker engine answers (or the docker SDK is missing)."""


def client() -> Any:
    """The docker SDK client (from the environment: DOCKER_HOST or the local socket)."""
    global _client
    if _client is None:
        try:
            import docker
        except ImportError as e:  # pragma: no cover - a dependency
            raise DockerUnavailable("the docker SDK is not installed (pip install docker)") from e
        try:
            c = docker.from_env(timeout=60)
            c.ping()
        except Exception as e:
            raise DockerUnavailable(
                f"no docker engine answers ({e}); start one (e.g. `dockerd --storage-driver=vfs "
                "--iptables=false &` as root) or use --runtime local") from e
        _client = c
    return _client


def image_for(role: str, compose: str | None) -> str:
    """The image for `role`: $ONCEPROOF_<ROLE>_IMAGE if set, else the local build (`onceproof images build`)
    when the engine has it, else the public image its compose file names."""
    env, public = compose_image(role, compose)
    if os.environ.get(env):
        return os.environ[env]
    try:
        client().images.get(local_name(role))
        return local_name(role)
    except Exception:
        return public


def available() -> bool:
    try:
        client()
        return True
    except DockerUnavailable:
        return False


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _owner_alive(labels: dict[str, str]) -> bool:
    """Whether the harness that made an object still runs (same boot, pid alive)."""
    pid = labels.get(LABEL_PID, "")
    if labels.get(LABEL_BOOT) != _boot_id() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def leftovers(only_orphans: bool = False) -> dict[str, list[str]]:
    """Containers and networks labelled by onceproof (only those whose harness is gone, if asked)."""
    c = client()
    out: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": []}
    for ct in c.containers.list(all=True, filters={"label": LABEL}):
        if not (only_orphans and _owner_alive(ct.labels)):
            out["containers"].append(ct.name)
    for net in c.networks.list(filters={"label": LABEL}):
        if not (only_orphans and _owner_alive(net.attrs.get("Labels") or {})):
            out["networks"].append(net.name)
    for vol in c.volumes.list(filters={"label": LABEL}):
        if not (only_orphans and _owner_alive(vol.attrs.get("Labels") or {})):
            out["volumes"].append(vol.name)
    return out


def clean(only_orphans: bool = False, say: Callable[[str], object] = lambda s: None) -> dict[str, list[str]]:
    """Remove every onceproof container, network and volume (or only orphans'); returns what it removed."""
    c = client()
    found = leftovers(only_orphans)
    for name in found["containers"]:
        with contextlib.suppress(Exception):
            c.containers.get(name).remove(force=True)
            say(f"removed container {name}")
    for name in found["networks"]:
        with contextlib.suppress(Exception):
            c.networks.get(name).remove()
            say(f"removed network {name}")
    for name in found["volumes"]:
        with contextlib.suppress(Exception):
            c.volumes.get(name).remove(force=True)
            say(f"removed volume {name}")
    return found


def _pick_subnet(c: Any) -> ipaddress.IPv4Network:
    """A /24 in 10.201.0.0/16 no docker network and no host route uses."""
    used = []
    for net in c.networks.list():
        for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
            with contextlib.suppress(ValueError, KeyError):
                used.append(ipaddress.ip_network(cfg["Subnet"]))
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, timeout=5).stdout
        for line in routes.splitlines():
            with contextlib.suppress(ValueError):
                used.append(ipaddress.ip_network(line.split()[0]))
    start = int.from_bytes(os.urandom(1), "big")
    for i in range(256):
        cand = ipaddress.IPv4Network(f"10.201.{(start + i) % 256}.0/24")
        if not any(cand.overlaps(u) for u in used if u.prefixlen > 0):
            return cand
    raise DockerUnavailable("no free /24 in 10.201.0.0/16 for the run's network")


class DockerNode(SpecNode):
    """One container described by a `NodeSpec` (its argv is the container's command), restartable: a
    killed or stopped container is started again as the same container, with the same address."""

    def __init__(self, runtime: DockerRuntime, spec: NodeSpec, image: str, ip: str | None) -> None:
        self.runtime = runtime
        self.spec = spec
        self.image = image
        self.ip = ip
        self.container: Any = None
        self._log_offset = 0
        self._follower: threading.Thread | None = None
        self._lock = threading.RLock()
        self._last_status = "created"

    def __repr__(self) -> str:
        return f"<DockerNode {self.name} {self.container_name} {self.status}>"

    @property
    def container_name(self) -> str:
        return f"onceproof-{self.runtime.run_id}-{self.spec.name}"

    @property
    def pid(self) -> int | None:
        """The container's main process as the host sees it (None when not running)."""
        st = self._state()
        return st.get("Pid") or None if st else None

    @property
    def status(self) -> str:
        st = self._state()
        return "absent" if st is None else ("paused" if st.get("Paused") else st.get("Status", "?"))

    @property
    def returncode(self) -> int | None:
        st = self._state()
        if st is None or st.get("Running"):
            return None
        return st.get("ExitCode")

    @property
    def alive(self) -> bool:
        st = self._state()
        return bool(st and st.get("Running"))

    @property
    def paused(self) -> bool:
        st = self._state()
        return bool(st and st.get("Running") and st.get("Paused"))

    def _state(self) -> dict[str, Any] | None:
        if self.container is None:
            return None
        try:
            self.container.reload()
        except Exception:
            return None
        return self.container.attrs.get("State") or {}

    # -- lifecycle

    def _create(self) -> None:
        c = client()
        spec = self.spec
        net = self.runtime.network
        endpoint = c.api.create_endpoint_config(ipv4_address=self.ip) if self.ip else c.api.create_endpoint_config()
        mounts = {str(self.runtime.run_dir): {"bind": str(self.runtime.run_dir), "mode": "rw"},
                  str(REPO): {"bind": SRC_MOUNT, "mode": "ro"}}
        host_config = c.api.create_host_config(binds=mounts, init=False, network_mode=net.name,
                                               log_config={"type": "json-file", "config": {}})
        # argv runs as given, whatever the image's own entrypoint: one command line for any image
        res = c.api.create_container(
            self.image, entrypoint=spec.argv[:1], command=spec.argv[1:], name=self.container_name, user="0",
            working_dir=str(spec.data_dir), environment={k: str(v) for k, v in (spec.env or {}).items()},
            labels=self.runtime.labels, host_config=host_config, stop_signal=signal.Signals(spec.stop_signal).name,
            networking_config=c.api.create_networking_config({net.name: endpoint}))
        self.container = c.containers.get(res["Id"])

    def start(self) -> DockerNode:
        """Start the container (created on first start); returns at once (see `wait_ready`)."""
        with self._lock:
            if self.alive:
                raise NodeError(f"node {self.name} is already running")
            self.spec.data_dir.mkdir(parents=True, exist_ok=True)
            self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.spec.log_path, "ab") as log:
                self._log_offset = log.tell()
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
                log.write(f"--- onceproof {stamp}: starting {self.name} in container {self.container_name} "
                          f"({self.image}): {' '.join(self.spec.argv)}\n".encode())
            try:
                with cleanup.critical():  # a half-made container would outlive the run
                    if self.container is None:
                        self._create()
                    since = int(time.time())
                    self.container.start()
            except DockerUnavailable:
                raise
            except Exception as e:
                raise NodeError(f"node {self.name}: cannot start container {self.container_name}: {e}") from e
            self._follow(since)
        return self

    def _follow(self, since: int) -> None:
        """Copy the container's output into the node's log from now until it stops."""
        container, path = self.container, self.spec.log_path

        def run() -> None:
            with contextlib.suppress(Exception), open(path, "ab") as log:
                for chunk in container.logs(stream=True, follow=True, since=since, stdout=True, stderr=True):
                    log.write(chunk)
                    log.flush()

        if self._follower is not None:
            self._follower.join(timeout=2)
        self._follower = threading.Thread(target=run, name=f"logs-{self.name}", daemon=True)
        self._follower.start()

    def wait_ready(self, timeout: float = 30.0) -> DockerNode:
        if self.container is None:
            raise NodeError(f"node {self.name} was never started")
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while True:
            if not self.alive:
                raise NodeExitedError(f"node {self.name} (container {self.container_name}) exited with "
                                      f"{self.returncode} before it was ready{self._log_excerpt()}")
            if self.spec.ready is None:
                return self
            try:
                if self.spec.ready(self):
                    return self
            except Exception as e:
                last_error = e
            if time.monotonic() >= deadline:
                why = f" (last check: {last_error!r})" if last_error is not None else ""
                raise NodeNotReadyError(f"node {self.name} (container {self.container_name}) not ready after "
                                        f"{timeout:g}s{why}{self._log_excerpt()}")
            time.sleep(0.05)

    def _mark(self, what: str) -> None:
        with contextlib.suppress(OSError), open(self.spec.log_path, "ab") as log:
            log.write(f"--- onceproof {time.strftime('%Y-%m-%dT%H:%M:%S')}: {self.name} {what}\n".encode())

    def stop(self, timeout: float = 10.0) -> int | None:
        """The stop signal, SIGKILL after `timeout` s (a paused container is resumed first)."""
        with self._lock:
            if self.container is None:
                return None
            with contextlib.suppress(Exception):
                if self.paused:
                    self.container.unpause()
                self.container.stop(timeout=max(1, round(timeout)))
            self._wait_stopped(timeout + 10)
            rc = self.returncode
            self._mark(f"stopped (exit code {rc})")
            return rc

    def kill(self) -> int | None:
        """SIGKILL the container (paused or not) and wait until docker sees it stopped."""
        with self._lock:
            if self.container is None:
                return None
            with contextlib.suppress(Exception):
                self.container.kill(signal="SIGKILL")
            self._wait_stopped(20)
            self._mark("killed by SIGKILL")
            return self.returncode

    def _wait_stopped(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.alive and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self, timeout: float = 10.0) -> DockerNode:
        with self._lock:
            self.stop(timeout)
            return self.start()

    def pause(self) -> None:
        """`docker pause`: every process of the container frozen by the cgroup freezer."""
        with self._lock:
            if not self.alive:
                raise NodeError(f"cannot pause node {self.name}: not running")
            for attempt in range(PAUSE_ATTEMPTS):
                try:
                    self.container.pause()
                    return
                except Exception as e:  # docker.errors.APIError
                    # runc gives up when a process does not freeze in time (one in uninterruptible disk
                    # I/O: seen with a broker under load on vfs); the freezer is thawed again, so retry
                    if "unable to freeze" not in str(e) or attempt == PAUSE_ATTEMPTS - 1:
                        raise
                    time.sleep(0.2)

    def resume(self) -> None:
        with self._lock:
            if not self.alive:
                raise NodeError(f"cannot resume node {self.name}: not running")
            if self.paused:
                self.container.unpause()

    def send_signal(self, sig: int) -> None:
        with self._lock:
            self.container.kill(signal=signal.Signals(sig).name)

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while self.alive:
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
        return self.returncode

    def remove(self) -> None:
        with self._lock:
            if self.container is not None:
                with contextlib.suppress(Exception):
                    self.container.remove(force=True)
                if self._follower is not None:
                    self._follower.join(timeout=2)


def _in_parallel(calls: list[Callable[[], Any]]) -> None:
    """Run the calls in threads of their own and wait for all of them."""
    threads = [threading.Thread(target=c) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


class DockerRuntime:
    """Nodes, Toxiproxy and workers as containers on one network: the Runtime protocol, with partitions.

    Images: a node's `NodeSpec.image` names a role; `images` are the target images this runtime may run
    (their compose files name the public defaults), the harness's own roles (Toxiproxy, the worker) are
    always known, and `pinned` maps roles to image names that win over everything (say, an image being
    built)."""

    name: ClassVar[str] = "docker"
    can_partition: ClassVar[bool] = True
    python = "python3"  # the worker image's

    def __init__(self, run_dir: str | os.PathLike[str], *, images: Iterable[Image] = (),
                 pinned: Mapping[str, str] | None = None, grace: float = 5.0) -> None:
        self.run_dir = Path(run_dir).resolve()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.grace = grace
        self.compose: dict[str, str | None] = {**HARNESS_COMPOSE, **{i.role: i.compose for i in images}}
        self.images = dict(pinned or {})
        self.run_id = uuid.uuid4().hex[:8]
        self.labels = {LABEL: "1", LABEL_RUN: self.run_id, LABEL_PID: str(os.getpid()), LABEL_BOOT: _boot_id()}
        self._nodes: dict[str, DockerNode] = {}
        self._workers: dict[str, DockerNode] = {}
        self._helpers: list[Any] = []  # host processes of the run: the lossy disks' daemons
        self._lossy: lossyfs.LossyDisks | None = None
        self._lock = threading.RLock()
        self._next_ip = 10
        self._partitioned: set[str] = set()
        c = client()
        clean(only_orphans=True)
        self.subnet = _pick_subnet(c)
        hosts = list(self.subnet.hosts())
        gateway = str(hosts[0])
        # nodes take fixed addresses from the lower half; docker gives workers the upper half
        upper = ipaddress.ip_network(f"{self.subnet.network_address + 128}/25")
        import docker.types

        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(
            subnet=str(self.subnet), iprange=str(upper), gateway=gateway)])
        cleanup.register(self.teardown)
        with cleanup.critical():
            self.network = c.networks.create(f"onceproof-{self.run_id}", driver="bridge", ipam=ipam,
                                             labels=self.labels, check_duplicate=True)
        self.gateway = gateway

    def __enter__(self) -> DockerRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    @staticmethod
    def free_port() -> int:
        """Ports are per container here; any fixed number works. Kept distinct for readable configs."""
        from harness.runtime.local import free_port

        return free_port()

    def allocate_ip(self) -> str:
        with self._lock:
            ip = str(self.subnet.network_address + self._next_ip)
            self._next_ip += 1
            if self._next_ip >= 128:
                raise DockerUnavailable("more than 118 fixed addresses in one run")
            return ip

    @property
    def nodes(self) -> dict[str, DockerNode]:
        return dict(self._nodes)

    @property
    def workers(self) -> dict[str, DockerNode]:
        return dict(self._workers)

    @property
    def partitions(self) -> Partitions | None:
        return self

    @property
    def lossy(self) -> LossyDisks | None:
        """Lossy disks for the nodes' data directories: the daemons run on the host and mount before a node's
        container is created, so the container sees the mount through the run directory's (recursive) bind
        mount with no device or capability of its own. None where FUSE does not work on the host."""
        if self._lossy is None and lossyfs.available()[0]:
            from harness.runtime.local import LocalNode

            def host_process(spec: NodeSpec) -> LocalNode:
                helper = LocalNode(spec)
                self._helpers.append(helper)
                return helper

            self._lossy = lossyfs.LossyDisks(self.run_dir, host_process)
        return self._lossy

    def place(self) -> Placement:
        """A fixed address of the run's network; the node listens on every interface of its container."""
        return Placement(self.allocate_ip(), "0.0.0.0", True)

    def image(self, role: str) -> str:
        """The image for `role` (see `image_for`), pulled if the engine lacks it."""
        if role not in self.images:
            if role not in self.compose:
                raise DockerUnavailable(f"no image for role {role!r}: this runtime knows "
                                        f"{', '.join(sorted(self.compose))}")
            name = image_for(role, self.compose[role])
            c = client()
            try:
                c.images.get(name)
            except Exception:
                try:
                    c.images.pull(name)
                except Exception as e:
                    raise DockerUnavailable(
                        f"image {name} for {role} is not here and cannot be pulled ({e}); build local images "
                        f"with `onceproof images build`, or name one in $ONCEPROOF_{role.upper()}_IMAGE") from e
            self.images[role] = name
        return self.images[role]

    def node(self, spec: NodeSpec, placement: Placement | None = None) -> DockerNode:
        """Register a node (not started), a container of `spec.image`'s image at `placement`'s address."""
        if not spec.image:
            raise ValueError(f"node {spec.name!r}: no image role in its spec")
        with self._lock:
            if spec.name in self._nodes:
                raise ValueError(f"node {spec.name!r} already exists")
            image = self.image(spec.image)
            node = DockerNode(self, spec, image, placement.host if placement else self.allocate_ip())
            self._nodes[spec.name] = node
            return node

    def toxiproxy(self, log_path: Path) -> DockerToxiproxy:
        """The run's Toxiproxy server as a container of the run's network (not started)."""
        return DockerToxiproxy(self, log_path=log_path)

    def spawn(self, name: str, argv: list[str], *, log_path: str | os.PathLike[str] | None = None,
              cwd: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None,
              stop_signal: int = signal.SIGTERM, ready: Callable[[Any], bool] | None = None) -> DockerNode:
        """Start a worker container now (image: the worker image); argv runs in it."""
        wdir = self.run_dir / "workers"
        spec = NodeSpec(name=name, argv=argv, data_dir=Path(cwd) if cwd is not None else wdir / name,
                        log_path=Path(log_path) if log_path is not None else wdir / f"{name}.log",
                        env=env, ready=ready, stop_signal=stop_signal)
        with self._lock:
            if name in self._workers and self._workers[name].alive:
                raise ValueError(f"worker {name!r} is already running")
            worker = DockerNode(self, spec, self.image(WORKER), None)
            self._workers[name] = worker
        return worker.start()

    def run_once(self, image: str, argv: list[str], timeout: float = 120.0) -> tuple[int, str]:
        """Run a command to completion in a fresh container of role `image`'s image on the run's network
        (say, formatting a node's storage); returns (exit code, output). The container is removed."""
        c = client()
        with cleanup.critical():
            ct = c.containers.create(self.image(image), entrypoint=argv[:1], command=argv[1:], user="0",
                                     labels=self.labels,
                                     network=self.network.name, working_dir=str(self.run_dir),
                                     volumes={str(self.run_dir): {"bind": str(self.run_dir), "mode": "rw"}})
        try:
            ct.start()
            try:
                rc = ct.wait(timeout=timeout)["StatusCode"]
            except Exception as e:
                raise subprocess.TimeoutExpired(argv, timeout) from e
            return rc, ct.logs().decode(errors="replace").strip()
        finally:
            with contextlib.suppress(Exception):
                ct.remove(force=True)

    # -- partitions

    def _netns(self, node: DockerNode, args: list[str]) -> None:
        pid = node.pid
        if not pid:
            raise NodeError(f"node {node.name} has no running container: no network namespace to change")
        r = subprocess.run(["nsenter", "-t", str(pid), "-n", *args], capture_output=True, text=True, timeout=10,
                           check=False)
        if r.returncode != 0:
            raise NodeError(f"{' '.join(args)} in {node.name}'s namespace failed: {(r.stderr or r.stdout).strip()}")

    def partition(self, grudge: dict[str, list[str]]) -> None:
        """Each node in `grudge` drops every packet from the nodes it names (iptables in its own network
        namespace). Grudges are symmetric by construction of the callers."""
        for name, others in grudge.items():
            node = self._nodes[name]
            for other in others:
                ip = self._nodes[other].ip
                self._netns(node, ["iptables", "-w", "-A", "INPUT", "-s", str(ip), "-j", "DROP",
                                   "-m", "comment", "--comment", "onceproof"])
            self._partitioned.add(name)

    def heal_partition(self) -> None:
        """Remove every rule `partition` added (a restarted container starts with none)."""
        errors = []
        for name in sorted(self._partitioned):
            node = self._nodes[name]
            if node.pid:
                try:
                    self._netns(node, ["iptables", "-w", "-F", "INPUT"])
                except NodeError as e:
                    errors.append(str(e))
        self._partitioned.clear()
        if errors:
            raise NodeError("; ".join(errors))

    def rules(self, name: str) -> str:
        """The iptables INPUT rules in a node's namespace (for tests and reports)."""
        node = self._nodes[name]
        r = subprocess.run(["nsenter", "-t", str(node.pid), "-n", "iptables", "-S", "INPUT"], capture_output=True,
                           text=True, timeout=10, check=False)
        return r.stdout

    # -- teardown

    def teardown(self, grace: float | None = None) -> None:
        """Stop workers, then nodes (stop signal, SIGKILL after `grace` s), copy nothing more, remove every
        container and the network. Idempotent; never raises an Exception."""
        grace = self.grace if grace is None else grace
        with cleanup.tearing_down():
            for batch in (list(self._workers.values()), list(self._nodes.values())):
                _in_parallel([functools.partial(self._stop_quietly, n, grace) for n in batch])
            # removals in parallel too: with the vfs driver each one deletes a full copy of its image
            _in_parallel([n.remove for n in [*self._workers.values(), *self._nodes.values()]])
            self._remove_all()
            unmount_disks(self._lossy)
        cleanup.unregister(self.teardown)

    def _remove_all(self, attempts: int = 5) -> None:
        """Remove every container and network of this run, by label, until none is left (a create that
        was under way when Ctrl-C arrived may complete after the first look)."""
        c = client()
        run_filter = {"label": f"{LABEL_RUN}={self.run_id}"}
        for i in range(attempts):
            left = 0
            with contextlib.suppress(Exception):
                for ct in c.containers.list(all=True, filters=run_filter):
                    left += 1
                    with contextlib.suppress(Exception):
                        ct.remove(force=True)
                for net in c.networks.list(filters=run_filter):
                    left += 1
                    with contextlib.suppress(Exception):
                        net.remove()
            if left == 0 and i > 0:
                return
            time.sleep(0.2 * (i + 1))

    @staticmethod
    def _stop_quietly(node: DockerNode, grace: float) -> None:
        try:
            if node.alive:
                if grace > 0:
                    node.stop(grace)
                else:
                    node.kill()
        except Exception as e:
            with contextlib.suppress(Exception):
                print(f"onceproof: teardown: stopping {node.name}: {e!r}", file=sys.stderr)


class DockerToxiproxy(ToxiproxyServer):
    """The run's Toxiproxy server as a container on the run's network (fixed address, API port 8474);
    proxies listen on every interface of that container, so workers in containers reach them."""

    API_PORT = 8474
    proxy_listen = "0.0.0.0:0"

    def __init__(self, runtime: DockerRuntime, log_path: str | os.PathLike[str], start_timeout: float = 30.0) -> None:
        super().__init__(log_path, start_timeout=start_timeout)
        self.runtime = runtime
        self.node: DockerNode | None = None

    def start(self) -> DockerToxiproxy:
        ip = self.runtime.allocate_ip()
        spec = NodeSpec(name="toxiproxy", argv=["/toxiproxy", "-host=0.0.0.0", f"-port={self.API_PORT}"],
                        data_dir=self.runtime.run_dir, log_path=self.log_path, env={"LOG_LEVEL": self.log_level},
                        image="toxiproxy")
        self.node = self.runtime.node(spec, Placement(ip, "0.0.0.0", True))
        self.host, self.port = ip, self.API_PORT
        self.node.start()
        ToxiproxyServer._active = self
        APIConsumer.host, APIConsumer.port = self.host, self.port
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if not self.node.alive:
                raise ToxiproxyError(f"the Toxiproxy container exited: {' | '.join(self.node.log_tail(10))}")
            try:
                requests.get(f"{self.url}/version", timeout=0.5, proxies={"http": "", "https": ""}).raise_for_status()
                return self
            except requests.RequestException:
                time.sleep(0.05)
        raise ToxiproxyError(f"Toxiproxy did not answer on {self.url} within {self.start_timeout}s: "
                             f"{' | '.join(self.node.log_tail(10))}")

    @property
    def pid(self) -> int | None:
        return self.node.pid if self.node is not None else None

    def stop(self, timeout: float = 5.0) -> None:
        if self.node is not None:
            self.node.stop(timeout)
        if ToxiproxyServer._active is self:
            ToxiproxyServer._active = None
