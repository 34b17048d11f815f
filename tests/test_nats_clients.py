"""The NATS clients against a real one-node nats-server behind real Toxiproxy: nats-py's own reconnects and
publish buffering are off, so a publish whose reply was lost is `info` and is never sent again behind the
history's back; a refused connect is `fail` and stores nothing."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from harness.runtime import LocalRuntime, NodeSpec, free_port
from harness.toxiproxy import ToxiproxyServer
from plugin.target import Deployment, NodeInfo
from targets.nats import TARGET, server
from targets.nats.clients import NatsProducer
from workloads.queue import ClientSpec

pytestmark = pytest.mark.integration


@pytest.fixture
def nats_node(tmp_path):
    if not (shutil.which("nats-server") or Path("/usr/sbin/nats-server").exists()):
        pytest.skip("nats-server is not installed (onceproof setup nats)")
    profile = TARGET.profiles["at-least-once"]  # no Nats-Msg-Id: a second send would be a second message
    with LocalRuntime(tmp_path) as rt, ToxiproxyServer(tmp_path / "toxiproxy.log") as tp:
        info = NodeInfo("nats-1", free_port(), data_dir=tmp_path / "nats-1",
                        extra_ports={p: free_port() for p in server.PORTS})
        proxy = tp.create_proxy("nats-1", f"127.0.0.1:{info.port}")
        info.proxy_port = proxy.port
        d = Deployment([info], profile, tmp_path)
        TARGET.setup_nodes(d, lambda argv, timeout: rt.run_once("nats", argv, timeout))
        rt.node(NodeSpec(name="nats-1", argv=TARGET.node_argv(d, info), data_dir=info.data_dir,
                         log_path=tmp_path / "nats-1.log", ready=lambda n: TARGET.ready(info))).start().wait_ready(20)
        TARGET.prepare(d)
        yield d, tp, proxy


def _stored(d: Deployment) -> list[str]:
    return [v["id"] for _, v in server.final_read(d)]


def test_a_lost_reply_is_unknown_and_never_sent_again(nats_node):
    d, tp, proxy = nats_node
    p = NatsProducer(ClientSpec(d.bootstrap, d.profile, "p0", "producer-0", d.run_dir), 0)
    try:
        assert p.send("m-1", "k0", 1).type == "ok"
        nc = p.conn.nc
        assert nc.options["allow_reconnect"] is False and nc._max_pending_size == 0  # nothing buffered, ever
        tp.add_toxic(proxy, "ack-loss", "timeout", stream="downstream", attributes={"timeout": 0})
        lost = p.send("m-2", "k0", 1)
        assert lost.type == "info", lost
        tp.remove_toxic(proxy, "ack-loss")  # closes the proxied connection
        time.sleep(1.0)
        assert p.send("m-3", "k0", 1).type == "ok"  # on a new connection, opened by this send
        time.sleep(2.0)  # time for anything buffered to go out, if the client buffered anything
        assert sorted(_stored(d)) == ["m-1", "m-2", "m-3"]  # m-2 reached the stream once, reply lost
    finally:
        p.close()


def test_a_refused_connect_is_a_failure_and_stores_nothing(nats_node):
    d, tp, proxy = nats_node
    tp.disable(proxy)
    p = NatsProducer(ClientSpec(d.bootstrap, d.profile, "p0", "producer-0", d.run_dir), 0)
    try:
        out = p.send("m-1", "k0", 1)
        assert out.type == "fail" and "connect" in (out.error or "")
        tp.enable(proxy)
        assert p.send("m-2", "k0", 1).type == "ok"
        assert _stored(d) == ["m-2"]
    finally:
        p.close()
