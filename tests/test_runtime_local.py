"""The local runtime with real processes: sleep, small Python scripts and a real redis-server on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from harness.runtime import (
    LocalNode,
    LocalRuntime,
    NodeError,
    NodeExitedError,
    NodeNotReadyError,
    NodeSpec,
    cleanup,
    free_port,
)

REPO = Path(__file__).resolve().parent.parent
REDIS = shutil.which("redis-server")
needs_redis = pytest.mark.skipif(REDIS is None, reason="redis-server not installed")


# --- helpers -----------------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """A live process (zombies count as dead: they are gone, only not yet reaped by someone else)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :][:1] not in (b"Z", b"X")


def pid_gone(pid: int) -> bool:
    """No such process at all, not even a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return not Path(f"/proc/{pid}").exists()


def wait_until(pred, timeout: float, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def ping(port: int, timeout: float = 0.5) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64).startswith(b"+PONG")


def answers(port: int, timeout: float = 0.3) -> bool:
    try:
        return ping(port, timeout)
    except OSError:
        return False


def redis_spec(run_dir: Path, name: str = "redis") -> NodeSpec:
    port = free_port()
    home = run_dir / "nodes" / name
    return NodeSpec(
        name=name,
        argv=[REDIS or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
              "--save", "", "--appendonly", "no"],
        data_dir=home / "data",
        log_path=home / "node.log",
        ports={"redis": port},
        ready=lambda node: ping(node.ports["redis"]),
    )


def sleep_spec(run_dir: Path, name: str = "sleeper", seconds: int = 600) -> NodeSpec:
    return NodeSpec(name=name, argv=["sleep", str(seconds)], data_dir=run_dir / name,
                    log_path=run_dir / f"{name}.log")


def _kill_if_ours(pid: int | None, needle: str) -> None:
    """Test-failure hygiene: SIGKILL `pid` if it is still alive and still the process we think it is."""
    if pid is None or not pid_alive(pid):
        return
    with contextlib.suppress(OSError):
        if needle.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def rt(tmp_path):
    runtime = LocalRuntime(tmp_path / "run", grace=2.0)
    try:
        yield runtime
    finally:
        runtime.teardown(grace=0)


# --- nodes -------------------------------------------------------------------------------------------


@needs_redis
def test_redis_start_ready_stop(rt):
    node = rt.node(redis_spec(rt.run_dir))
    assert node.pid is None and not node.alive
    node.start().wait_ready(15)
    assert node.alive and pid_alive(node.pid)
    assert os.getpgid(node.pid) == node.pid  # its own process group...
    assert os.getsid(node.pid) == node.pid  # ...and session
    assert ping(node.ports["redis"])
    assert Path(os.readlink(f"/proc/{node.pid}/cwd")) == node.data_dir
    assert rt.nodes == {"redis": node}
    assert node.pid in cleanup.tracked_groups()
    pid = node.pid
    assert node.stop(timeout=10) == 0  # redis exits 0 on SIGTERM
    assert not node.alive and pid_gone(pid)  # reaped, not a zombie
    assert pid not in cleanup.tracked_groups()
    log = node.log_path.read_text()
    assert "Ready to accept connections" in log
    assert "starting redis" in log and "exit code 0" in log
    assert node.stop() == 0 and node.kill() == 0  # idempotent


def test_kill_and_reap(rt):
    node = rt.node(sleep_spec(rt.run_dir)).start()
    node.wait_ready(5)  # no `ready`: alive is enough
    pid = node.pid
    assert node.kill() == -signal.SIGKILL
    assert not node.alive and pid_gone(pid)
    assert "killed by SIGKILL" in node.log_path.read_text()


def test_process_that_exits_by_itself_is_reaped(rt):
    node = rt.node(NodeSpec("quick", ["true"], rt.run_dir / "q", rt.run_dir / "q.log")).start()
    pid = node.pid
    wait_until(lambda: not node.alive, 5, "true to exit")
    assert node.returncode == 0 and pid_gone(pid)


@needs_redis
def test_pause_stops_answers_and_resume_restores_them(rt):
    node = rt.node(redis_spec(rt.run_dir)).start().wait_ready(15)
    port = node.ports["redis"]
    node.pause()
    assert node.paused and node.alive
    assert Path(f"/proc/{node.pid}/stat").read_bytes().split(b") ")[1][:1] == b"T"
    assert not answers(port, timeout=0.5)
    node.resume()
    assert not node.paused
    wait_until(lambda: answers(port), 5, "redis to answer after resume")


@needs_redis
def test_kill_while_paused_reaps(rt):
    node = rt.node(redis_spec(rt.run_dir)).start().wait_ready(15)
    node.pause()
    pid = node.pid
    assert node.kill() == -signal.SIGKILL
    assert not node.paused and not node.alive and pid_gone(pid)


def test_stop_while_paused_is_graceful(rt, tmp_path):
    script = textwrap.dedent("""
        import pathlib, signal, sys, time
        def bye(*_):
            pathlib.Path("got-term").write_text("1")
            sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        pathlib.Path("ready").write_text("1")
        time.sleep(600)
    """)
    d = tmp_path / "graceful"
    node = rt.node(NodeSpec("graceful", [sys.executable, "-c", script], d, d / "log",
                            ready=lambda n: (n.data_dir / "ready").exists()))
    node.start().wait_ready(10)
    node.pause()
    assert node.stop(timeout=5) == 0  # SIGCONT follows the SIGTERM, so it handles it
    assert (d / "got-term").exists()


@needs_redis
def test_restart_gives_a_new_pid(rt):
    node = rt.node(redis_spec(rt.run_dir)).start().wait_ready(15)
    old = node.pid
    node.restart(timeout=10).wait_ready(15)
    assert node.pid != old and node.alive and pid_gone(old)
    assert ping(node.ports["redis"])
    assert node.log_path.read_text().count("starting redis") == 2
    with pytest.raises(NodeError, match="already running"):
        node.start()


def test_exit_during_wait_ready_fails_fast_with_log_lines(rt):
    script = "import sys; print('boom: bad config line 7', flush=True); sys.exit(3)"
    node = rt.node(NodeSpec("broken", [sys.executable, "-c", script], rt.run_dir / "b",
                            rt.run_dir / "b.log", ready=lambda n: False))
    node.start()
    t0 = time.monotonic()
    with pytest.raises(NodeExitedError) as err:
        node.wait_ready(30)
    assert time.monotonic() - t0 < 10
    msg = str(err.value)
    assert "broken" in msg and "exit code 3" in msg and "boom: bad config line 7" in msg
    assert node.returncode == 3


def test_log_lines_in_the_error_are_from_the_latest_start(rt):
    script = "import sys; print(sys.argv[1], flush=True); sys.exit(1)"
    spec = NodeSpec("twice", [sys.executable, "-c", script, "first-run"], rt.run_dir / "t",
                    rt.run_dir / "t.log", ready=lambda n: False)
    node = rt.node(spec)
    with pytest.raises(NodeExitedError, match="first-run"):
        node.start().wait_ready(10)
    spec.argv[-1] = "second-run"
    with pytest.raises(NodeExitedError) as err:
        node.start().wait_ready(10)
    assert "second-run" in str(err.value) and "first-run" not in str(err.value)


def test_not_ready_in_time(rt):
    node = rt.node(NodeSpec("slow", ["sleep", "600"], rt.run_dir / "s", rt.run_dir / "s.log",
                            ready=lambda n: (n.data_dir / "never").exists()))
    node.start()
    with pytest.raises(NodeNotReadyError, match=r"not ready after 0\.3s") as err:
        node.wait_ready(0.3)
    assert isinstance(err.value, TimeoutError)
    assert node.alive


def test_ready_file_env_and_cwd(rt):
    script = textwrap.dedent("""
        import os, pathlib, time
        time.sleep(0.2)
        pathlib.Path("ready").write_text(os.environ["ONCEPROOF_X"] + " " + os.environ.get("HOME", "?"))
        time.sleep(600)
    """)
    d = rt.run_dir / "py"
    node = rt.node(NodeSpec("py", [sys.executable, "-c", script], d, d / "log", env={"ONCEPROOF_X": "42"},
                            ready=lambda n: (n.data_dir / "ready").exists()))
    node.start().wait_ready(10)
    x, home = (d / "ready").read_text().split(" ")
    assert x == "42" and home == os.environ.get("HOME", "?")  # env is merged over ours


def test_start_failure_is_a_node_error(rt):
    node = rt.node(NodeSpec("nope", ["/nonexistent/bin/x"], rt.run_dir / "n", rt.run_dir / "n.log"))
    with pytest.raises(NodeError, match="cannot start"):
        node.start()
    assert not node.alive


def test_pause_of_a_stopped_node_is_an_error(rt):
    node = rt.node(sleep_spec(rt.run_dir))
    with pytest.raises(NodeError):
        node.pause()


def test_node_started_from_a_short_lived_thread_survives_the_thread(rt):
    # PR_SET_PDEATHSIG fires when the forking *thread* exits; the runtime forks on a long-lived thread
    node = rt.node(sleep_spec(rt.run_dir))
    t = threading.Thread(target=node.start)
    t.start()
    t.join(10)
    time.sleep(0.3)
    assert node.alive and pid_alive(node.pid)


def test_duplicate_node_name(rt):
    rt.node(sleep_spec(rt.run_dir))
    with pytest.raises(ValueError):
        rt.node(sleep_spec(rt.run_dir))


def test_free_ports_are_distinct_and_bindable():
    ports = {free_port() for _ in range(20)}
    assert len(ports) == 20
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports.pop()))


# --- teardown ----------------------------------------------------------------------------------------

STUBBORN = textwrap.dedent("""
    import pathlib, signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pathlib.Path("ready").write_text("1")
    time.sleep(600)
""")

# on SIGTERM, record whether redis still answers: workers must be stopped before nodes
CHECKS_REDIS_ON_TERM = textwrap.dedent("""
    import pathlib, signal, socket, sys, time
    port = int(sys.argv[1])
    def bye(*_):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\\r\\n")
                up = s.recv(64).startswith(b"+PONG")
        except OSError:
            up = False
        pathlib.Path("redis-at-term").write_text("up" if up else "down")
        sys.exit(0)
    signal.signal(signal.SIGTERM, bye)
    pathlib.Path("ready").write_text("1")
    time.sleep(600)
""")


@needs_redis
def test_teardown_leaves_no_process(tmp_path):
    run = tmp_path / "run"
    with LocalRuntime(run, grace=1.0) as rt:
        redis = rt.node(redis_spec(run)).start().wait_ready(15)
        paused = rt.node(sleep_spec(run, "paused")).start()
        paused.pause()
        file_ready = lambda n: (n.data_dir / "ready").exists()  # noqa: E731
        stubborn = rt.spawn("stubborn", [sys.executable, "-c", STUBBORN], ready=file_ready).wait_ready(10)
        checker = rt.spawn("checker", [sys.executable, "-c", CHECKS_REDIS_ON_TERM, str(redis.ports["redis"])],
                           ready=file_ready).wait_ready(10)
        shell = rt.spawn("shell", ["sh", "-c", "sleep 600 & echo $! > child.pid; wait"])
        wait_until(lambda: (shell.data_dir / "child.pid").exists(), 5, "the shell's child")
        grandchild = int((shell.data_dir / "child.pid").read_text())
        assert (run / "workers" / "stubborn.log").exists()
        assert set(rt.workers) == {"stubborn", "checker", "shell"}
        assert set(rt.nodes) == {"redis", "paused"}
        assert rt.teardown in cleanup.registered()
        pids = [redis.pid, paused.pid, stubborn.pid, checker.pid, shell.pid]
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 10
    for pid in pids:
        assert pid_gone(pid), pid  # dead and reaped
    wait_until(lambda: not pid_alive(grandchild), 5, "the grandchild to die with its group")
    assert stubborn.returncode == -signal.SIGKILL  # it ignored SIGTERM
    assert (checker.data_dir / "redis-at-term").read_text() == "up"
    assert redis.returncode == 0
    assert not any(pid in cleanup.tracked_groups() for pid in pids)
    assert rt.teardown not in cleanup.registered()
    rt.teardown()  # idempotent
    rt.teardown(grace=0)


def test_teardown_never_raises(tmp_path):
    rt = LocalRuntime(tmp_path / "run")
    node = rt.node(sleep_spec(tmp_path))
    node.start()
    os.kill(node.pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(node.pid), 5, "sleep to die")
    rt.teardown(grace=0.5)
    rt.teardown()
    assert node.returncode == -signal.SIGKILL


def test_runtime_reused_after_teardown_registers_again(tmp_path):
    rt = LocalRuntime(tmp_path / "run")
    rt.teardown()
    assert rt.teardown not in cleanup.registered()
    w = rt.spawn("again", ["sleep", "600"])
    assert rt.teardown in cleanup.registered()
    rt.teardown(grace=0)
    assert not w.alive


# --- the harness process: signals and parent death -------------------------------------------------

HARNESS = textwrap.dedent("""
    import json, os, socket, sys, time
    from pathlib import Path
    from harness.runtime import LocalRuntime, NodeSpec, free_port, install_handlers

    run_dir, mode = Path(sys.argv[1]), sys.argv[2]
    install_handlers()

    def ping(node):
        with socket.create_connection(("127.0.0.1", node.ports["redis"]), timeout=0.5) as s:
            s.sendall(b"PING\\r\\n")
            return s.recv(64).startswith(b"+PONG")

    rt = LocalRuntime(run_dir, grace=60.0 if mode == "stubborn" else 5.0)
    try:
        port = free_port()
        node = rt.node(NodeSpec(
            name="redis",
            argv=["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no"],
            data_dir=run_dir / "nodes" / "redis" / "data", log_path=run_dir / "nodes" / "redis" / "node.log",
            ports={"redis": port}, ready=ping))
        node.start().wait_ready(15)
        if mode == "stubborn":  # ignores SIGTERM: teardown would wait out the whole grace
            worker = rt.spawn("worker", [sys.executable, "-c", sys.argv[3]],
                              ready=lambda n: (n.data_dir / "ready").exists()).wait_ready(10)
        else:
            worker = rt.spawn("worker", ["sleep", "600"])
        pids = {"harness": os.getpid(), "node": node.pid, "worker": worker.pid}
        (run_dir / "pids.json.tmp").write_text(json.dumps(pids))
        os.replace(run_dir / "pids.json.tmp", run_dir / "pids.json")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.1)
    except KeyboardInterrupt:
        (run_dir / "interrupted").write_text("1")
        raise SystemExit(3)
    finally:
        rt.teardown()
        (run_dir / "torn-down").write_text("1")
""")


def _start_harness(tmp_path: Path, mode: str) -> tuple[subprocess.Popen, dict[str, int], Path]:
    run = tmp_path / "run"
    run.mkdir()
    script = tmp_path / "harness_script.py"
    script.write_text(HARNESS)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, str(script), str(run), mode]
    if mode == "stubborn":
        argv.append(STUBBORN)
    stderr = open(tmp_path / "harness.stderr", "wb")  # noqa: SIM115
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
    stderr.close()
    try:
        wait_until(lambda: (run / "pids.json").exists() or proc.poll() is not None, 30, "the harness")
    except BaseException:
        proc.kill()
        proc.wait(10)
        raise
    if proc.poll() is not None:
        raise AssertionError(f"harness exited {proc.returncode}:\n{(tmp_path / 'harness.stderr').read_text()}")
    return proc, json.loads((run / "pids.json").read_text()), run


@contextlib.contextmanager
def _harness(tmp_path: Path, mode: str):
    proc, pids, run = _start_harness(tmp_path, mode)
    try:
        yield proc, pids, run
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        _kill_if_ours(pids.get("node"), "redis-server")
        _kill_if_ours(pids.get("worker"), "sleep" if mode != "stubborn" else "python")


@needs_redis
def test_sigint_tears_everything_down(tmp_path):
    with _harness(tmp_path, "normal") as (proc, pids, run):
        assert pid_alive(pids["node"]) and pid_alive(pids["worker"])
        os.kill(proc.pid, signal.SIGINT)
        rc = proc.wait(timeout=20)
        err = (tmp_path / "harness.stderr").read_text()
        assert rc == 3, err  # KeyboardInterrupt -> except -> SystemExit(3), after the finally's teardown
        assert (run / "interrupted").exists() and (run / "torn-down").exists()
        assert not pid_alive(pids["node"]) and not pid_alive(pids["worker"])
        assert "exit code 0" in (run / "nodes" / "redis" / "node.log").read_text()  # a graceful SIGTERM


@needs_redis
def test_sigterm_tears_everything_down(tmp_path):
    with _harness(tmp_path, "normal") as (proc, pids, run):
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=20) == 3
        assert (run / "torn-down").exists()
        assert not pid_alive(pids["node"]) and not pid_alive(pids["worker"])


@needs_redis
def test_sigkill_of_the_harness_kills_the_children(tmp_path):
    with _harness(tmp_path, "normal") as (proc, pids, run):
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        wait_until(lambda: not pid_alive(pids["node"]), 5, "redis to die with its parent")
        wait_until(lambda: not pid_alive(pids["worker"]), 5, "the worker to die with its parent")
        assert not (run / "torn-down").exists()


@needs_redis
def test_second_sigint_kills_hard_and_exits_130(tmp_path):
    with _harness(tmp_path, "stubborn") as (proc, pids, run):
        os.kill(proc.pid, signal.SIGINT)
        wait_until(lambda: (run / "interrupted").exists(), 10, "the first SIGINT to be handled")
        time.sleep(0.3)  # the teardown now waits (up to 60 s) for the worker that ignores SIGTERM
        assert proc.poll() is None
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        rc = proc.wait(timeout=10)
        assert time.monotonic() - t0 < 5
        err = (tmp_path / "harness.stderr").read_text()
        assert rc == 130, err
        assert "killing every process group hard" in err
        assert not (run / "torn-down").exists()
        wait_until(lambda: not pid_alive(pids["worker"]), 5, "the stubborn worker to die")
        wait_until(lambda: not pid_alive(pids["node"]), 5, "redis to die")


def test_atexit_runs_teardowns_newest_first_each_guarded(tmp_path):
    script = textwrap.dedent("""
        from harness.runtime import cleanup
        cleanup.register(lambda: print("first registered", flush=True))
        def broken():
            raise RuntimeError("broken teardown")
        cleanup.register(broken)
        gone = cleanup.register(lambda: print("unregistered", flush=True))
        cleanup.register(lambda: print("last registered", flush=True))
        cleanup.unregister(gone)
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["last registered", "first registered"]
    assert "broken teardown" in out.stderr


def test_local_node_is_exported():
    assert LocalNode.__module__ == "harness.runtime.local"
