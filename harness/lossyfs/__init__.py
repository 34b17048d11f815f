"""Lossy disks: each node's data directory on a FUSE layer that can forget what was never fsynced (the power-loss
faults). `LossyDisks` is the runtimes' `lossy` ability: it mounts one daemon (`harness.lossyfs.daemon`) per node
over the node's data directory before the node first starts, and asks it to drop, checkpoint or count unsynced
writes. The daemons run on this machine for both runtimes: a container sees the mount through the run
directory's bind mount, with no device and no capability of its own (docker binds are recursive).

Needs Debian's fuse3 (`fusermount3`, libfuse3) and `/dev/fuse`; `available()` says whether they are here, and
`onceproof setup` installs fuse3. With ONCEPROOF_LAZYFS pointing at a LazyFS binary, the same calls drive LazyFS
instead (`harness.lossyfs.lazyfs`), as Jepsen does.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plugin.needs import Debian
from plugin.runtime import NodeSpec

DEBIAN = Debian("fuse3", "fusermount3")  # libfuse3 for mfusepy, fusermount3 to unmount; setup installs it
MOUNT_WAIT_S = 15.0
FSNAME = "onceproof-lossy"  # the source of our mounts in `findmnt -t fuse` (daemon.FSNAME says the same)


def available() -> tuple[bool, str]:
    """Whether lossy disks work here, and what is missing when they do not."""
    if os.environ.get("ONCEPROOF_LAZYFS"):
        from harness.lossyfs import lazyfs

        return lazyfs.available()
    if not os.path.exists("/dev/fuse"):
        return False, "no /dev/fuse (the kernel or container has no FUSE)"
    if not shutil.which("fusermount3"):
        return False, "fusermount3 is not installed (onceproof setup installs Debian's fuse3)"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as e:  # OSError: the library loads libfuse3 on import
        return False, f"mfusepy cannot load libfuse3 ({e}; onceproof setup installs Debian's fuse3)"
    return True, "FUSE (fuse3) and mfusepy"


def mounts() -> list[tuple[str, str]]:
    """(source, mountpoint) of every FUSE mount on this machine that is one of ours."""
    r = subprocess.run(["findmnt", "-rn", "-t", "fuse", "-o", "SOURCE,TARGET"], capture_output=True, text=True,
                       check=False)
    out = []
    for line in r.stdout.splitlines():
        src, _, target = line.partition(" ")
        if src in (FSNAME, "lazyfs"):
            out.append((src, target.replace("\\x20", " ")))
    return out


def unmount(mountpoint: str | os.PathLike[str]) -> None:
    """Lazily unmount (the mount goes as soon as nothing uses it)."""
    subprocess.run(["fusermount3", "-uz", str(mountpoint)], capture_output=True, check=False)


def clean_leftovers(say: Callable[[str], object] = print) -> int:
    """Unmount every mount of ours whose daemon is gone (a harness that was SIGKILLed); how many."""
    n = 0
    for _, target in mounts():
        try:
            os.stat(target)
            continue  # its daemon still answers: a run in progress
        except OSError:
            pass
        unmount(target)
        say(f"onceproof clean: unmounted {target} (a lossy disk whose daemon was gone)")
        n += 1
    return n


class Disk:
    """One node's lossy disk: its daemon (a process this machine runs), its mountpoint, its control socket."""

    def __init__(self, node: str, mountpoint: Path, backing: Path, control: str, daemon: Any) -> None:
        self.node, self.mountpoint, self.backing, self.control, self.daemon = node, mountpoint, backing, control, daemon

    def ask(self, op: str, timeout: float = 30.0) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect("\0" + self.control)
            s.sendall(json.dumps({"op": op}).encode() + b"\n")
            answer = json.loads(s.makefile("rb").readline() or b"{}")
        if "error" in answer:
            raise RuntimeError(f"lossy disk of {self.node}: {op} failed: {answer['error']}")
        return answer

    def ready(self) -> bool:
        try:
            return os.path.ismount(self.mountpoint) and "files" in self.ask("stats", timeout=2.0)
        except OSError:
            return False


class LossyDisks:
    """A run's lossy disks, by node name. `spawn(spec)` starts a process on this machine and returns its handle
    (start/stop/kill/alive/log_tail, as the local runtime's nodes)."""

    def __init__(self, run_dir: Path, spawn: Callable[[NodeSpec], Any], python: str = sys.executable) -> None:
        self.dir = Path(run_dir) / "lossy"
        self.spawn, self.python = spawn, python
        self.disks: dict[str, Disk] = {}

    def mount(self, node: str, data_dir: Path) -> None:
        """Put `data_dir` on a lossy disk: what is in it moves to the backing directory beside it (`<dir>.disk`),
        and the daemon mounts over it. Before the node's first start."""
        self.dir.mkdir(parents=True, exist_ok=True)
        backing = data_dir.with_name(data_dir.name + ".disk")
        backing.mkdir(parents=True, exist_ok=True)
        for entry in list(data_dir.iterdir()) if data_dir.exists() else []:
            shutil.move(str(entry), backing / entry.name)
        data_dir.mkdir(parents=True, exist_ok=True)
        control = f"onceproof-lossy-{uuid.uuid4().hex[:12]}"  # an abstract socket: no path, no length limit
        if os.environ.get("ONCEPROOF_LAZYFS"):
            from harness.lossyfs import lazyfs

            argv = lazyfs.argv(backing, data_dir, control, self.dir / node)
        else:
            argv = [self.python, "-m", "harness.lossyfs.daemon", str(backing), str(data_dir), "@" + control]
        disk = Disk(node, data_dir, backing, control, None)
        spec = NodeSpec(name=f"lossyfs-{node}", argv=argv, data_dir=self.dir, log_path=self.dir / f"{node}.log",
                        ready=lambda _n: disk.ready())
        disk.daemon = self.spawn(spec)
        self.disks[node] = disk
        disk.daemon.start()
        disk.daemon.wait_ready(MOUNT_WAIT_S)

    def drop(self, node: str) -> dict[str, int]:
        """The power loss of `node`'s disk (its processes must be dead): {files, bytes} it erased."""
        return self.disks[node].ask("drop")

    def checkpoint(self) -> dict[str, dict[str, int]]:
        """Everything written so far on every disk counts as synced (after setup: the load is what is tested)."""
        return {n: d.ask("checkpoint") for n, d in self.disks.items()}

    def unsynced(self, node: str) -> dict[str, int]:
        return self.disks[node].ask("stats")

    def unmount_all(self) -> None:
        """Every disk unmounted and its daemon stopped (teardown, Ctrl-C): nothing left behind. What the disk
        holds goes back to the node's data directory, where a run's nodes keep their data and logs."""
        for d in self.disks.values():
            unmount(d.mountpoint)
            if d.daemon is not None:
                d.daemon.stop(timeout=5.0)
            deadline = time.monotonic() + 5.0
            while os.path.ismount(d.mountpoint) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not os.path.ismount(d.mountpoint) and d.backing.is_dir():
                with contextlib.suppress(OSError):
                    d.mountpoint.rmdir()  # empty once unmounted
                    d.backing.rename(d.mountpoint)
        self.disks.clear()
