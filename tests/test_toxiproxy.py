"""harness/toxiproxy.py against the real Toxiproxy server, in front of a TCP echo server on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness import toxiproxy as tpmod
from harness.toxiproxy import APIConsumer, ToxiproxyError, ToxiproxyServer
from plugin.needs import SetupError, install_toxiproxy, toxiproxy_binary

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


class Echo(socketserver.ThreadingTCPServer):
    """Echoes every chunk back and remembers what it received."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), EchoHandler)
        self.received = bytearray()
        self.cond = threading.Condition()
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def record(self, data: bytes) -> None:
        with self.cond:
            self.received += data
            self.cond.notify_all()

    def wait_received(self, data: bytes, timeout: float = 5.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: data in self.received, timeout)


class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            while data := self.request.recv(65536):
                self.server.record(data)
                self.request.sendall(data)
        except OSError:
            pass


@pytest.fixture(scope="session")
def toxiproxy_bin() -> Path:
    try:
        return toxiproxy_binary()
    except SetupError:  # in CI `onceproof setup` has run; elsewhere build it now (cached)
        return install_toxiproxy()


@pytest.fixture
def echo():
    server = Echo()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def tp(toxiproxy_bin, tmp_path):
    server = ToxiproxyServer(tmp_path / "toxiproxy.log", binary=toxiproxy_bin).start()
    yield server
    server.stop()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def roundtrip(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def closed_by_peer(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True if the peer closes the connection (FIN or RST) within the timeout."""
    sock.settimeout(timeout)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # reparented to an init that has not reaped it yet: dead all the same
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def test_bytes_pass_through_a_proxy(tp, echo):
    assert tp.version() == "2.12.0"
    p = tp.create_proxy("echo", echo.address)
    assert p.name == "echo" and p.listen == f"127.0.0.1:{p.port}" and p.port > 0 and p.enabled
    with connect(p.port) as c:
        assert roundtrip(c, b"hello") == b"hello"
    assert echo.wait_received(b"hello")
    assert tp.log_path.read_text().count("\"message\":\"Starting Toxiproxy\"") == 1


def test_timeout_toxic_loses_responses_and_removing_it_closes_the_connection(tp, echo):
    p = tp.create_proxy("echo", echo.address)
    with connect(p.port) as c:
        assert roundtrip(c, b"before") == b"before"
        toxic = tp.add_toxic(p, "ack-loss", "timeout", attributes={"timeout": 0})
        assert toxic == {"name": "ack-loss", "type": "timeout", "stream": "downstream", "toxicity": 1,
                         "attributes": {"timeout": 0}}
        c.sendall(b"request")
        assert echo.wait_received(b"request"), "the request reaches the server"
        c.settimeout(0.5)
        with pytest.raises(TimeoutError):
            c.recv(65536)  # but its response never comes back
        assert [t["name"] for t in tp.toxics(p)] == ["ack-loss"]
        tp.remove_toxic(p, "ack-loss")
        assert closed_by_peer(c)
    with connect(p.port) as c:
        assert roundtrip(c, b"after") == b"after"


def test_timeout_toxic_on_new_connections(tp, echo):
    p = tp.create_proxy("echo", echo.address)
    tp.add_toxic(p, "ack-loss", "timeout", attributes={"timeout": 0})
    with connect(p.port) as c:
        c.sendall(b"fresh")
        assert echo.wait_received(b"fresh")
        c.settimeout(0.5)
        with pytest.raises(TimeoutError):
            c.recv(65536)


def test_update_toxic_changes_it_in_place(tp, echo):
    p = tp.create_proxy("echo", echo.address)
    tp.add_toxic(p, "slow", "latency", attributes={"latency": 0})
    updated = tp.update_toxic(p, "slow", attributes={"latency": 400})
    assert updated["attributes"]["latency"] == 400 and updated["toxicity"] == 1
    with connect(p.port) as c:
        t0 = time.monotonic()
        assert roundtrip(c, b"x") == b"x"
        assert time.monotonic() - t0 >= 0.35
    assert tp.update_toxic(p, "slow", toxicity=0.25)["attributes"]["latency"] == 400  # the rest is kept


def test_reset_peer_resets_on_the_first_response(tp, echo):
    p = tp.create_proxy("echo", echo.address)
    tp.add_toxic(p, "rst", "reset_peer", attributes={"timeout": 0})
    with connect(p.port) as c:
        c.sendall(b"doomed")
        assert echo.wait_received(b"doomed")
        with pytest.raises(ConnectionResetError):
            c.recv(65536)


def test_disable_refuses_connections_and_enable_restores_them(tp, echo):
    p = tp.create_proxy("echo", echo.address)
    with connect(p.port) as open_before:
        assert roundtrip(open_before, b"a") == b"a"
        tp.disable(p)
        assert not p.enabled
        assert closed_by_peer(open_before)
    with pytest.raises(ConnectionRefusedError):
        connect(p.port)
    tp.enable(p)
    with connect(p.port) as c:
        assert roundtrip(c, b"back") == b"back"


def test_reset_enables_everything_and_drops_toxics_and_destroy_all_removes_proxies(tp, echo):
    p = tp.create_proxy("echo", echo.address)
    q = tp.create_proxy("other", echo.address)
    tp.add_toxic(p, "ack-loss", "timeout", attributes={"timeout": 0})
    tp.disable(q)
    tp.reset()
    assert tp.toxics(p) == []
    for proxy in (p, q):
        with connect(proxy.port) as c:
            assert roundtrip(c, b"ok") == b"ok"
    tp.destroy_all()
    with pytest.raises(ConnectionRefusedError):
        connect(p.port)
    with pytest.raises(ToxiproxyError, match="404"):
        tp.toxics(p)


def test_api_errors_raise(tp, echo):
    p = tp.create_proxy("echo", echo.address)
    with pytest.raises(ToxiproxyError, match="already exists"):
        tp.create_proxy("echo", echo.address)
    with pytest.raises(ToxiproxyError, match="400"):
        tp.add_toxic(p, "bad", "no-such-toxic")
    with pytest.raises(ToxiproxyError, match="404"):
        tp.remove_toxic(p, "missing")
    with pytest.raises(ToxiproxyError, match="404"):
        tp.update_toxic(p, "missing", toxicity=0.5)
    with pytest.raises(ToxiproxyError, match="405"):  # passed silently in the library
        APIConsumer.post("/version")


def test_requests_time_out(monkeypatch):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (backlog) but never answers
        monkeypatch.setattr(tpmod, "REQUEST_TIMEOUT", 0.3)
        monkeypatch.setattr(APIConsumer, "host", "127.0.0.1")
        monkeypatch.setattr(APIConsumer, "port", silent.getsockname()[1])
        t0 = time.monotonic()
        with pytest.raises(ToxiproxyError, match="GET /proxies"):
            tpmod.toxiproxy.Toxiproxy().proxies()
        assert time.monotonic() - t0 < 3


def test_one_server_per_process(tp, tmp_path):
    with pytest.raises(ToxiproxyError, match="already runs"):
        ToxiproxyServer(tmp_path / "second.log", binary=tp.binary).start()


def test_stop_leaves_no_process(toxiproxy_bin, tmp_path, echo):
    server = ToxiproxyServer(tmp_path / "t.log", binary=toxiproxy_bin).start()
    pid = server.pid
    p = server.create_proxy("echo", echo.address)
    os.kill(pid, 0)
    server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ConnectionRefusedError):
        connect(p.port)
    with pytest.raises(ConnectionRefusedError):
        connect(server.port)
    server.stop()  # idempotent
    again = ToxiproxyServer(tmp_path / "t.log", binary=toxiproxy_bin).start()  # a new one may start
    again.stop()


def test_server_dies_with_the_harness(toxiproxy_bin, tmp_path):
    script = (
        "import os, sys\n"
        "from harness.toxiproxy import ToxiproxyServer\n"
        f"s = ToxiproxyServer({str(tmp_path / 'child.log')!r}, binary={str(toxiproxy_bin)!r}).start()\n"
        "print(s.pid, flush=True)\n"
        "os._exit(0)\n"  # no stop(), no cleanup: as if the harness crashed
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    pid = int(out.stdout)
    deadline = time.monotonic() + 5
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gone(pid)
