"""The local runtime: a node is a process on this machine with its own ports, data directory and log
file inside the run directory.

Every process leads its own session and process group (`start_new_session=True`): a terminal Ctrl-C does
not reach it directly, and stop/kill/pause/resume signal the whole group. Each one also gets
PR_SET_PDEATHSIG=SIGKILL, so it dies if the harness is SIGKILLed. The parent-death signal fires when the
*thread* that forked the child exits, so processes are always forked from the main thread or from one
long-lived spawner thread, never from a short-lived caller thread. It covers the direct child only: a
grandchild (say, of a shell wrapper) survives a SIGKILLed harness, although every orderly path
(stop, kill, teardown, a second Ctrl-C) kills the whole group.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import functools
import os
import queue
import random
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from harness import lossyfs
from harness.runtime import cleanup
from plugin.runtime import LossyDisks, NodeSpec, Partitions, Placement

if TYPE_CHECKING:
    from harness.toxiproxy import ToxiproxyServer

PR_SET_PDEATHSIG = 1
LOG_TAIL_LINES = 20
_POLL = 0.02


class NodeError(RuntimeError):
    """A node could not be started, or did not become ready."""


class NodeExitedError(NodeError):
    """The process exited while we waited for it to become ready."""


class NodeNotReadyError(NodeError, TimeoutError):
    """The process is running but `ready` did not turn true in time."""


# --- forking -----------------------------------------------------------------------------------------

_prctl: Any
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def _child_setup(parent_pid: int) -> Callable[[], None]:
    def setup() -> None:  # runs in the child between fork and exec
        if _prctl is not None:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the harness died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return setup


class _Spawner:
    """Runs `fn` on the main thread or on one daemon thread that lives as long as the process."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def call(self, fn: Callable[[], Any]) -> Any:
        if threading.current_thread() is threading.main_thread():
            return fn()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="onceproof-spawner", daemon=True)
                self._thread.start()
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue.put((fn, fut))
        return fut.result()

    def _loop(self) -> None:
        while True:
            fn, fut = self._queue.get()
            try:
                fut.set_result(fn())
            except BaseException as e:
                fut.set_exception(e)


_spawner = _Spawner()


def _describe_exit(rc: int | None) -> str:
    if rc is None:
        return "still running"
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit code {rc}"


def _proc_state(pid: int) -> str | None:
    """The state letter of /proc/<pid>/stat (R, S, T, Z, ...), or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2 :][:1].decode() or None


# --- nodes -------------------------------------------------------------------------------------------


class SpecNode:
    """What every node made from a `NodeSpec` offers, whatever runs it (a process, a container): its
    name, ports, data directory and log, and the log's tail since the latest start."""

    spec: NodeSpec
    _log_offset: int

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def ports(self) -> dict[str, int]:
        return self.spec.ports

    @property
    def log_path(self) -> Path:
        return self.spec.log_path

    @property
    def data_dir(self) -> Path:
        return self.spec.data_dir

    def log_tail(self, lines: int = LOG_TAIL_LINES, *, since_start: bool = True) -> list[str]:
        """The last `lines` lines of the log (by default only what the latest process wrote)."""
        try:
            with open(self.spec.log_path, "rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                lo = self._log_offset if since_start else 0
                fh.seek(max(lo, size - 64 * 1024))
                data = fh.read()
        except OSError:
            return []
        return data.decode(errors="replace").splitlines()[-lines:]

    def _log_excerpt(self) -> str:
        tail = self.log_tail()
        if not tail:
            return f"; its log {self.spec.log_path} is empty"
        body = "\n".join(f"    {line}" for line in tail)
        return f"; last lines of {self.spec.log_path}:\n{body}"


class LocalNode(SpecNode):
    """One process (and its process group) described by a `NodeSpec`; restartable."""

    def __init__(self, spec: NodeSpec, *, on_start: Callable[[LocalNode], None] | None = None) -> None:
        self.spec = spec
        self._on_start = on_start
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False
        self._log_offset = 0
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        state = "paused" if self._paused else ("alive" if self.alive else "stopped")
        return f"<LocalNode {self.name} pid={self.pid} {state}>"


    @property
    def pid(self) -> int | None:
        """The pid (= process group id) of the latest process, like Popen.pid; None before the first start."""
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        """The latest process's exit status once reaped (negative: killed by that signal)."""
        return self._proc.returncode if self._proc is not None else None

    @property
    def alive(self) -> bool:
        """Started and not exited (a paused process is alive). Reaps the process if it has exited."""
        with self._lock:
            if self._proc is None or self._proc.returncode is not None:
                return False
            if self._exited():
                self._finish()
                return False
            return True

    @property
    def paused(self) -> bool:
        return self._paused and self.alive

    # -- lifecycle

    def start(self) -> LocalNode:
        """Start the process; returns at once (see `wait_ready`). Its output is appended to the log."""
        with self._lock:
            if self.alive:
                raise NodeError(f"node {self.name} is already running (pid {self.pid})")
            spec = self.spec
            spec.data_dir.mkdir(parents=True, exist_ok=True)
            spec.log_path.parent.mkdir(parents=True, exist_ok=True)
            env = None if spec.env is None else {**os.environ, **{k: str(v) for k, v in spec.env.items()}}
            with open(spec.log_path, "ab") as log:
                self._log_offset = log.tell()
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
                log.write(f"--- onceproof {stamp}: starting {spec.name}: {shlex.join(spec.argv)}\n".encode())
                log.flush()

                def popen() -> subprocess.Popen[bytes]:
                    return subprocess.Popen(
                        spec.argv,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        cwd=spec.data_dir,
                        env=env,
                        start_new_session=True,
                        preexec_fn=_child_setup(os.getpid()),
                        close_fds=True,
                    )

                try:
                    proc = _spawner.call(popen)
                except OSError as e:
                    raise NodeError(f"node {spec.name}: cannot start {spec.argv[0]!r}: {e}") from e
            self._proc = proc
            self._paused = False
            cleanup.track_group(proc.pid)
        if self._on_start is not None:
            self._on_start(self)
        return self

    def wait_ready(self, timeout: float = 30.0) -> LocalNode:
        """Poll `spec.ready(node)` until true. Raises NodeExitedError at once if the process exits, and
        NodeNotReadyError after `timeout` seconds; both include the last lines of the log."""
        if self._proc is None:
            raise NodeError(f"node {self.name} was never started")
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while True:
            if not self.alive:
                raise NodeExitedError(
                    f"node {self.name} (pid {self.pid}) {_describe_exit(self.returncode)} before it was "
                    f"ready{self._log_excerpt()}"
                )
            if self.spec.ready is None:
                return self
            try:
                if self.spec.ready(self):
                    return self
            except Exception as e:  # not listening yet, etc.
                last_error = e
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                why = f" (last check: {last_error!r})" if last_error is not None else ""
                raise NodeNotReadyError(
                    f"node {self.name} (pid {self.pid}) not ready after {timeout:g}s{why}"
                    f"{self._log_excerpt()}"
                )
            time.sleep(min(0.05, remaining))

    def stop(self, timeout: float = 10.0) -> int | None:
        """Send `stop_signal` to the group (resuming it if paused), wait up to `timeout` s for the process to
        exit, then SIGKILL the group and reap. Returns the exit status (None if never started)."""
        with self._lock:
            if not self._running():
                return self.returncode
            self._begin_stop()
            self._wait_exited(time.monotonic() + timeout)
            return self._finish()

    def kill(self) -> int | None:
        """SIGKILL the group (paused or not) and reap. Returns the exit status (None if never started)."""
        with self._lock:
            if not self._running():
                return self.returncode
            return self._finish()

    def restart(self, timeout: float = 10.0) -> LocalNode:
        """`stop(timeout)` then `start()`: a new process with a new pid (wait_ready is up to the caller)."""
        with self._lock:
            self.stop(timeout)
            return self.start()

    def pause(self) -> None:
        """SIGSTOP the group; returns once the process is stopped (bounded: 2 s)."""
        with self._lock:
            self._require_running("pause")
            self._signal_group(signal.SIGSTOP)
            self._paused = True
            deadline = time.monotonic() + 2.0
            assert self._proc is not None
            while _proc_state(self._proc.pid) not in ("T", "t", "Z", None) and time.monotonic() < deadline:
                time.sleep(0.005)

    def resume(self) -> None:
        """SIGCONT the group."""
        with self._lock:
            self._require_running("resume")
            self._signal_group(signal.SIGCONT)
            self._paused = False

    def send_signal(self, sig: int) -> None:
        """Send any signal to the process group."""
        with self._lock:
            self._require_running("signal")
            self._signal_group(sig)

    def wait(self, timeout: float) -> int | None:
        """Wait up to `timeout` s for the process to exit by itself; returns its status or None."""
        with self._lock:
            if not self._running():
                return self.returncode
            if self._wait_exited(time.monotonic() + timeout):
                return self._finish()
            return None

    # -- internals (callers hold self._lock)

    def _running(self) -> bool:
        """Started and not yet reaped (it may have exited: a zombie still holds its pid and group)."""
        return self._proc is not None and self._proc.returncode is None

    def _require_running(self, what: str) -> None:
        if not self.alive:
            raise NodeError(f"cannot {what} node {self.name}: not running")

    def _signal_group(self, sig: int) -> None:
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    def _exited(self) -> bool:
        """Has the leader exited? Does not reap, so its pid (and group id) stays reserved."""
        assert self._proc is not None
        if self._proc.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # reaped behind our back
            return True
        return info is not None

    def _wait_exited(self, deadline: float) -> bool:
        while not self._exited():
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)
        return True

    def _begin_stop(self) -> None:
        if self._paused:
            self._signal_group(signal.SIGCONT)
            self._paused = False
        self._signal_group(self.spec.stop_signal)
        self._signal_group(signal.SIGCONT)  # in case it was stopped by someone else

    def _finish(self) -> int | None:
        """SIGKILL the whole group (stragglers too: the unreaped leader still holds the group id), reap."""
        proc = self._proc
        assert proc is not None
        if proc.returncode is None:
            self._signal_group(signal.SIGKILL)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # uninterruptible sleep; leave it tracked for hard_kill_all
                print(f"onceproof: node {self.name} pid {proc.pid} survives SIGKILL", file=sys.stderr)
                return None
            cleanup.untrack_group(proc.pid)
            _await_group_gone(proc.pid)
            with contextlib.suppress(OSError), open(self.spec.log_path, "ab") as log:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
                rc = _describe_exit(proc.returncode)
                log.write(f"--- onceproof {stamp}: {self.name} pid {proc.pid} {rc}\n".encode())
        self._paused = False
        return proc.returncode


def _await_group_gone(pgid: int, timeout: float = 2.0) -> None:
    """Until every process of the group has exited (the leader is reaped first; its children die a moment
    later), so that what they had open is closed: a power loss right after a kill drops what they wrote last."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            return
        if all(_proc_state(int(p)) in ("Z", None) for p in _group_members(pgid)):
            return
        time.sleep(0.01)


def _group_members(pgid: int) -> list[str]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[2]) == pgid:
                    out.append(entry)
    return out


# --- the runtime -------------------------------------------------------------------------------------

_handed_out: set[int] = set()
_port_lock = threading.Lock()
_rng = random.SystemRandom()


def _ephemeral_low() -> int:
    """The first port the kernel hands out as an outgoing connection's source port."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


PORTS_FROM = 10000  # node ports come from here up to the ephemeral range


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on `host`, never the same one twice in a process. Free *now* only: bind
    it soon. Chosen below the kernel's ephemeral range (a port bind(0) gives is one an outgoing connection may take
    as its source port between now and the node's bind, as a broker starting 3 s later found in CI)."""
    high = _ephemeral_low() - 1
    with _port_lock:
        for _ in range(200):
            port = _rng.randint(PORTS_FROM, high) if high > PORTS_FROM else 0
            if port in _handed_out:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
                port = s.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise OSError("no free port found")


class LocalRuntime:
    """Starts nodes and worker processes under `run_dir` and tears them all down: explicitly, as a
    context manager, or at exit (it registers itself with `cleanup`). Every node listens on 127.0.0.1
    with ports of its own; nodes share the loopback interface, so node-to-node partitions are not
    possible here (`partitions` is None)."""

    name: ClassVar[str] = "local"
    can_partition: ClassVar[bool] = False
    free_port = staticmethod(free_port)

    def __init__(self, run_dir: str | os.PathLike[str], *, grace: float = 5.0) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.grace = grace
        self.python = sys.executable
        self._nodes: dict[str, LocalNode] = {}
        self._workers: dict[str, LocalNode] = {}
        self._helpers: dict[str, LocalNode] = {}
        self._lossy: lossyfs.LossyDisks | None = None
        self._lock = threading.RLock()
        cleanup.register(self.teardown)

    def __enter__(self) -> LocalRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    @property
    def partitions(self) -> Partitions | None:
        return None

    @property
    def lossy(self) -> LossyDisks | None:
        """Lossy disks for the nodes' data directories (daemons on this machine), where FUSE works here."""
        if self._lossy is None and lossyfs.available()[0]:
            self._lossy = lossyfs.LossyDisks(self.run_dir, self.host_process)
        return self._lossy

    def host_process(self, spec: NodeSpec) -> LocalNode:
        """A helper process of the run (a lossy disk's daemon), stopped after the nodes at teardown."""
        with self._lock:
            helper = LocalNode(spec, on_start=self._started)
            self._helpers[spec.name] = helper
            return helper

    @property
    def nodes(self) -> dict[str, LocalNode]:
        return dict(self._nodes)

    @property
    def workers(self) -> dict[str, LocalNode]:
        return dict(self._workers)

    def place(self) -> Placement:
        return Placement("127.0.0.1", "127.0.0.1", False)

    def node_dir(self, name: str) -> Path:
        """The conventional home of node `name`: data in `<it>/data`, log in `<it>/node.log`."""
        return self.run_dir / "nodes" / name

    def node(self, spec: NodeSpec, placement: Placement | None = None) -> LocalNode:
        """Register a node (not started: call `start()` and `wait_ready()`); its image role is ignored."""
        with self._lock:
            if spec.name in self._nodes:
                raise ValueError(f"node {spec.name!r} already exists")
            node = LocalNode(spec, on_start=self._started)
            self._nodes[spec.name] = node
            return node

    def run_once(self, image: str, argv: list[str], timeout: float = 120.0) -> tuple[int, str]:
        """Run a command to completion on this machine (`image` is ignored); (exit code, output)."""
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                           check=False)
        return r.returncode, (r.stdout + r.stderr).strip()

    def toxiproxy(self, log_path: Path) -> ToxiproxyServer:
        """The run's Toxiproxy server, a process on 127.0.0.1 (not started)."""
        from harness.toxiproxy import ToxiproxyServer

        return ToxiproxyServer(log_path=log_path)

    def spawn(
        self,
        name: str,
        argv: list[str],
        *,
        log_path: str | os.PathLike[str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        stop_signal: int = signal.SIGTERM,
        ready: Callable[[LocalNode], bool] | None = None,
    ) -> LocalNode:
        """Start a worker process (not a node) now. Log defaults to `<run_dir>/workers/<name>.log`, working
        directory to `<run_dir>/workers/<name>`. Workers are stopped before nodes at teardown."""
        wdir = self.run_dir / "workers"
        spec = NodeSpec(
            name=name,
            argv=argv,
            data_dir=Path(cwd) if cwd is not None else wdir / name,
            log_path=Path(log_path) if log_path is not None else wdir / f"{name}.log",
            env=env,
            ready=ready,
            stop_signal=stop_signal,
        )
        with self._lock:
            if name in self._workers and self._workers[name].alive:
                raise ValueError(f"worker {name!r} is already running")
            worker = LocalNode(spec, on_start=self._started)
            self._workers[name] = worker
        return worker.start()

    def _started(self, node: LocalNode) -> None:
        cleanup.register(self.teardown)  # again, in case it was torn down and is being reused

    def teardown(self, grace: float | None = None) -> None:
        """Stop everything this runtime started: workers first, then nodes, each batch in parallel —
        resume the paused, send the stop signal, SIGKILL what is left after `grace` s, reap. Idempotent;
        never raises an Exception (a KeyboardInterrupt meanwhile, possible only without
        `cleanup.install_handlers()`, SIGKILLs the rest and is re-raised)."""
        grace = self.grace if grace is None else grace
        interrupt: KeyboardInterrupt | None = None
        with cleanup.tearing_down():
            for batch in (list(self._workers.values()), list(self._nodes.values())):
                if interrupt is None:
                    try:
                        self._stop_batch(batch, grace)
                    except KeyboardInterrupt as e:
                        interrupt = e
                if interrupt is not None:
                    self._stop_batch(batch, 0.0)
            unmount_disks(self._lossy)
        cleanup.unregister(self.teardown)
        if interrupt is not None:
            raise interrupt

    @staticmethod
    def _stop_batch(batch: list[LocalNode], grace: float) -> None:
        def guarded(what: str, node: LocalNode, fn: Callable[[], object]) -> None:
            try:
                fn()
            except Exception as e:
                with contextlib.suppress(Exception):
                    print(f"onceproof: teardown: {what} {node.name}: {e!r}", file=sys.stderr)

        running = [n for n in batch if n._proc is not None and n._running()]
        if grace > 0:
            for n in running:
                guarded("stopping", n, n._begin_stop)
            deadline = time.monotonic() + grace
            for n in running:
                guarded("waiting for", n, functools.partial(n._wait_exited, deadline))
        for n in running:
            guarded("killing", n, n._finish)


def unmount_disks(disks: lossyfs.LossyDisks | None) -> None:
    """Teardown's last step, after every node is stopped: the lossy disks unmounted and their daemons gone."""
    if disks is not None:
        try:
            disks.unmount_all()
        except Exception as e:
            with contextlib.suppress(Exception):
                print(f"onceproof: teardown: unmounting the lossy disks: {e!r}", file=sys.stderr)
