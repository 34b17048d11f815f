"""LazyFS as the lossy disk, where a user points ONCEPROOF_LAZYFS at a LazyFS binary (onceproof does not build
it): the same power-loss faults, driven as Jepsen drives it. This module is a small wrapper process per node:

    python -m harness.lossyfs.lazyfs LAZYFS BACKING MOUNTPOINT @CONTROL WORKDIR

It writes LazyFS's configuration (its FIFOs in WORKDIR; a page cache of ONCEPROOF_LAZYFS_CACHE, default 1GB,
which must exceed what a node writes between fsyncs: with the cache full, LazyFS writes through and a power
loss then takes less than it should), starts LazyFS in the foreground over BACKING at MOUNTPOINT, and answers
the same JSON control socket as onceproof's own daemon:

    drop        -> lazyfs::clear-cache, answered when LazyFS writes finished::clear-cache
    checkpoint  -> lazyfs::cache-checkpoint (written to the backing files, no fsync)
    stats       -> LazyFS does not count unsynced bytes for us: -1

Counts of what a drop erased are unknown with LazyFS (-1). LazyFS allocates its whole cache up front.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.lossyfs.control import serve

FIFO_TIMEOUT_S = 30.0


def available() -> tuple[bool, str]:
    binary = os.environ.get("ONCEPROOF_LAZYFS", "")
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        return False, f"ONCEPROOF_LAZYFS={binary!r} is not an executable LazyFS binary"
    if not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"):
        return False, "LazyFS needs /dev/fuse and fusermount3 (Debian's fuse3)"
    return True, f"LazyFS at {binary}"


def argv(backing: Path, mountpoint: Path, control: str, work: Path) -> list[str]:
    return [sys.executable, "-m", "harness.lossyfs.lazyfs", os.environ["ONCEPROOF_LAZYFS"], str(backing),
            str(mountpoint), "@" + control, str(work)]


def config_text(fifo: Path, done: Path, cache: str) -> str:
    """LazyFS's TOML configuration, as Jepsen writes it (no eviction: the cache holds every unsynced page)."""
    return (f'[faults]\nfifo_path="{fifo}"\nfifo_path_completed="{done}"\n'
            f'[cache]\napply_eviction=false\n[cache.simple]\ncustom_size="{cache}"\nblocks_per_page=1\n'
            '[filesystem]\nlog_all_operations=false\n')


class Fifos:
    """LazyFS's command FIFO and its completion FIFO: one command at a time."""

    def __init__(self, fifo: Path, done: Path) -> None:
        self.fifo, self.done, self.lock = fifo, done, threading.Lock()

    def command(self, line: str, answer: str | None) -> None:
        """Send `line`; with `answer`, wait for it on the completion FIFO (LazyFS opens that FIFO for writing only
        once it is done, and the open waits for our reader: no answer is missed, and none is waited for twice)."""
        with self.lock:
            with open(self.fifo, "w") as f:
                f.write(line + "\n")
            if answer is not None:
                with open(self.done, "rb") as reader:
                    got = reader.readline().decode().strip()
                if got != answer:
                    raise RuntimeError(f"LazyFS answered {got!r} to {line!r}")


def commands(fifos: Fifos) -> dict[str, Callable[[], dict[str, Any]]]:
    """onceproof's control commands in LazyFS's terms; LazyFS does not say what it erased (-1)."""
    unknown = {"files": -1, "bytes": -1}

    def drop() -> dict[str, Any]:
        fifos.command("lazyfs::clear-cache", "finished::clear-cache")
        return unknown

    def checkpoint() -> dict[str, Any]:
        fifos.command("lazyfs::cache-checkpoint", None)
        return unknown

    return {"drop": drop, "checkpoint": checkpoint, "stats": lambda: unknown}


def main(args: list[str]) -> int:
    if len(args) != 5:
        print("usage: python -m harness.lossyfs.lazyfs LAZYFS BACKING MOUNTPOINT @CONTROL WORKDIR", file=sys.stderr)
        return 2
    binary, backing, mountpoint, control, work = args
    wd = Path(work)
    wd.mkdir(parents=True, exist_ok=True)
    fifo, done, config = wd / "faults.fifo", wd / "done.fifo", wd / "lazyfs.toml"
    for p in (fifo, done):
        if not p.exists():
            os.mkfifo(p)
    config.write_text(config_text(fifo, done, os.environ.get("ONCEPROOF_LAZYFS_CACHE", "1GB")))
    threading.Thread(target=serve, args=(control, commands(Fifos(fifo, done))), daemon=True).start()
    proc = subprocess.Popen([binary, mountpoint, "--config-path", str(config), "-o", "allow_other", "-o",
                             "modules=subdir", "-o", f"subdir={backing}", "-f"])
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    return proc.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
