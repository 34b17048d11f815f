"""Shared fixtures: the docker runtime's prerequisites (an engine, the images for a target)."""

from __future__ import annotations

import os

import pytest

_built: set[str] = set()


def docker_images(target: str) -> None:
    """Skip unless a docker engine answers; build the target's images once per session (from this
    machine's files, as `onceproof images build` does). ONCEPROOF_REQUIRE_DOCKER=1 (CI) turns the skip
    into a failure, so a broken engine cannot pass as a green run."""
    from harness import images, setup
    from harness.runtime import docker

    if not docker.available():
        msg = "no docker engine answers (sh harness/start-docker.sh starts one)"
        if os.environ.get("ONCEPROOF_REQUIRE_DOCKER"):
            pytest.fail(msg)
        pytest.skip(msg)
    if target not in _built:
        setup.install([target], progress=lambda *a: None)
        images.build_for([target], progress=lambda *a: None)
        _built.add(target)


def require_setup(*targets: str) -> None:
    """Install what the targets need (cached after the first time), or skip saying why it cannot be done."""
    from harness import setup

    try:
        setup.install(list(targets), progress=lambda *a: None)
    except Exception as e:  # whatever stops setup (no apt, no network), the tests cannot run
        pytest.skip(f"{', '.join(targets)} cannot be set up here: {e}")


@pytest.fixture(autouse=True)
def _no_lossy_disk_left_behind(request, tmp_path_factory):
    """After every test: no lossy disk of this test session still mounted, and none of its daemons running."""
    yield
    import subprocess

    from harness import lossyfs

    base = str(tmp_path_factory.getbasetemp())
    mounts = [t for _, t in lossyfs.mounts() if t.startswith(base)]
    daemons = subprocess.run(["pgrep", "-af", "harness.lossyfs"], capture_output=True, text=True, check=False)
    left = [line for line in daemons.stdout.splitlines() if base in line]
    if mounts or left:
        for t in mounts:
            lossyfs.unmount(t)
        pytest.fail(f"{request.node.nodeid} left lossy disks behind: mounts {mounts}, daemons {left}")
