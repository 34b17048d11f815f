"""The compose files on their own: valid for compose, and `up` gives a working system (with the locally
built images where no registry is reachable)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import docker_images

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "compose").glob("*.yml"))


def _compose() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip("neither `docker compose` nor docker-compose is installed")


def _env() -> dict[str, str]:
    from harness.images import all_images
    from plugin.imaging import env_var, local_name

    return {**os.environ, **{env_var(i.role): local_name(i.role) for i in all_images()}}


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_compose_file_is_valid(path):
    r = subprocess.run([*_compose(), "-f", str(path), "config", "-q"], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr


def _up(name: str, project: str):
    cmd = [*_compose(), "-f", str(ROOT / "compose" / name), "-p", project]
    r = subprocess.run([*cmd, "up", "-d"], capture_output=True, text=True, env=_env(), timeout=600, check=False)
    assert r.returncode == 0, r.stderr
    return cmd


def _down(cmd: list[str]) -> None:
    subprocess.run([*cmd, "down", "-v", "--remove-orphans"], capture_output=True, env=_env(), timeout=300, check=False)


def _ip(container: str) -> str:
    return subprocess.run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                           container], capture_output=True, text=True, check=True).stdout.strip()


@contextlib.contextmanager
def _stack(target: str) -> Iterator[str]:
    """compose/<target>.yml up with the local images; yields the address of its Toxiproxy; down after."""
    docker_images(target)
    cmd = _up(f"{target}.yml", f"onceproof-compose-{target}")
    try:
        sep = "_" if cmd[0] == "docker-compose" else "-"
        yield _ip(f"onceproof-compose-{target}{sep}toxiproxy{sep}1")
    finally:
        _down(cmd)


def _eventually(check: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll `check` (exceptions count as not yet) until true; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(Exception):
            if check():
                return
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


def test_redis_compose_serves_through_its_proxy():
    from targets.redis import ping

    with _stack("redis") as ip:
        _eventually(lambda: ping(26379, host=ip, timeout=1), 60, "redis never answered through toxiproxy")


def test_kafka_compose_formats_and_serves_metadata_through_its_proxies():
    from targets.kafka.cluster import metadata

    with _stack("kafka") as ip:
        _eventually(lambda: len(metadata(29092, host=ip, timeout=2).brokers) == 3, 240,
                    "the compose cluster never reported 3 brokers through its proxy")


def test_nats_compose_forms_a_jetstream_cluster_behind_its_proxies():
    from nats.js.api import StreamConfig

    from targets.nats.server import connect

    async def r3_stream(ip: str) -> bool:  # an R3 stream is placed only once the three servers form a cluster
        nc = await connect(f"nats://{ip}:24222", timeout=2)
        try:
            js = nc.jetstream(timeout=5)
            await js.add_stream(StreamConfig(name="compose-check", subjects=["compose.check"], num_replicas=3))
            return len((await js.stream_info("compose-check")).cluster.replicas or []) == 2
        finally:
            await nc.close()

    with _stack("nats") as ip:
        _eventually(lambda: asyncio.run(r3_stream(ip)), 120,
                    "the compose cluster never placed an R3 stream through its proxy")
