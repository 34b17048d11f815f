"""The compose files on their own: valid for compose, and `up` gives a working system (with the locally
built images where no registry is reachable)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
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
    from harness.imaging import env_var, local_name

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


def test_redis_compose_serves_through_its_proxy():
    from targets.redis import ping

    docker_images("redis")
    cmd = _up("redis.yml", "onceproof-compose-redis")
    try:
        sep = "_" if cmd[0] == "docker-compose" else "-"
        ip = _ip(f"onceproof-compose-redis{sep}toxiproxy{sep}1")
        deadline = time.monotonic() + 60
        while not ping(26379, host=ip, timeout=1):
            assert time.monotonic() < deadline, "redis never answered through toxiproxy"
            time.sleep(0.5)
    finally:
        _down(cmd)


def test_kafka_compose_formats_and_serves_metadata_through_its_proxies():
    from targets.kafka.cluster import metadata

    docker_images("kafka")
    cmd = _up("kafka.yml", "onceproof-compose-kafka")
    try:
        sep = "_" if cmd[0] == "docker-compose" else "-"
        ip = _ip(f"onceproof-compose-kafka{sep}toxiproxy{sep}1")
        deadline = time.monotonic() + 240
        while True:
            try:
                if len(metadata(29092, host=ip, timeout=2).brokers) == 3:
                    break
            except (OSError, Exception):
                pass
            assert time.monotonic() < deadline, "the compose cluster never reported 3 brokers through its proxy"
            time.sleep(1)
    finally:
        _down(cmd)


def test_nats_compose_forms_a_jetstream_cluster_behind_its_proxies():
    import asyncio

    from targets.nats.server import connect

    docker_images("nats")
    cmd = _up("nats.yml", "onceproof-compose-nats")
    try:
        sep = "_" if cmd[0] == "docker-compose" else "-"
        ip = _ip(f"onceproof-compose-nats{sep}toxiproxy{sep}1")

        async def cluster_size(port: int) -> int:
            nc = await connect(f"nats://{ip}:{port}", timeout=2)
            try:  # an R3 stream can only be placed once all three servers form the JetStream cluster
                js = nc.jetstream(timeout=5)
                from nats.js.api import StreamConfig

                await js.add_stream(StreamConfig(name="compose-check", subjects=["compose.check"], num_replicas=3))
                return len((await js.stream_info("compose-check")).cluster.replicas or []) + 1
            finally:
                await nc.close()

        deadline = time.monotonic() + 120
        while True:
            try:
                if asyncio.run(cluster_size(24222)) == 3:
                    break
            except Exception:
                pass
            assert time.monotonic() < deadline, "the compose cluster never placed an R3 stream through its proxy"
            time.sleep(1)
    finally:
        _down(cmd)
