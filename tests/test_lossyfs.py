"""The lossy disk: its undo log on plain files (no FUSE), then the FUSE layer on this machine: what survives a drop,
and SQLite through it with a writer SIGKILLed mid-run (synchronous=FULL keeps every committed row, OFF does
not). No broker; every test leaves no mount and no daemon behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import lossyfs
from harness.lossyfs.undo import Tracked
from harness.runtime import LocalRuntime


def _tracked(path: Path, content: bytes, synced: bool) -> Tracked:
    path.write_bytes(content)
    t = Tracked(os.open(path, os.O_RDWR), len(content) if synced else 0)
    return t


def test_the_undo_log_puts_back_what_the_last_fsync_saw(tmp_path):
    t = _tracked(tmp_path / "f", b"0123456789", synced=True)
    t.before_write(2, 2)
    os.pwrite(t.fd, b"AB", 2)
    t.before_write(8, 6)
    os.pwrite(t.fd, b"xxxxxx", 8)  # overwrites the synced tail and grows the file
    t.before_truncate(3)
    os.ftruncate(t.fd, 3)
    assert t.unsynced() > 0
    assert t.drop() > 0 and (tmp_path / "f").read_bytes() == b"0123456789"
    assert t.drop() == 0  # nothing left to lose


def test_an_fsync_makes_everything_written_so_far_safe(tmp_path):
    t = _tracked(tmp_path / "g", b"", synced=False)
    os.pwrite(t.fd, b"hello", 0)
    t.sync()
    os.pwrite(t.fd, b" world", 5)
    assert t.unsynced() == 6 and t.drop() == 6 and (tmp_path / "g").read_bytes() == b"hello"


needs_fuse = pytest.mark.skipif(not lossyfs.available()[0], reason=f"no lossy disks here: {lossyfs.available()[1]}")


@pytest.fixture
def disk(tmp_path):
    """A lossy disk mounted over tmp_path/data, and the runtime that runs its daemon; torn down after."""
    rt = LocalRuntime(tmp_path / "run")
    disks = rt.lossy
    assert disks is not None
    data = tmp_path / "data"
    data.mkdir()
    disks.mount("n1", data)
    try:
        yield disks, data
    finally:
        rt.teardown()
        assert not [m for m in lossyfs.mounts() if m[1] == str(data)], "a mount was left behind"
        assert not _daemons(tmp_path), "a daemon was left behind"


def _daemons(root: Path) -> list[str]:
    r = subprocess.run(["pgrep", "-af", "harness.lossyfs.daemon"], capture_output=True, text=True, check=False)
    return [line for line in r.stdout.splitlines() if str(root) in line]


@needs_fuse
def test_a_drop_keeps_exactly_what_was_fsynced(disk):
    disks, d = disk
    (d / "never").write_text("x" * 100)
    with open(d / "synced", "w") as f:
        f.write("y" * 7)
        f.flush()
        os.fsync(f.fileno())
    with open(d / "half", "w") as f:
        f.write("z" * 5000)
        f.flush()
        os.fsync(f.fileno())
        f.write("w" * 5000)
    fd = os.open(d / "dsync", os.O_WRONLY | os.O_CREAT | os.O_DSYNC)
    os.write(fd, b"sync")
    os.close(fd)
    fd = os.open(d / "append", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(fd, b"aa")
    os.fdatasync(fd)
    os.write(fd, b"bb")
    os.close(fd)
    os.rename(d / "never", d / "renamed")  # metadata is durable at once
    assert disks.unsynced("n1")["bytes"] == 100 + 5000 + 2
    assert disks.drop("n1") == {"files": 3, "bytes": 5102}
    sizes = {p.name: p.stat().st_size for p in d.iterdir()}
    assert sizes == {"renamed": 0, "synced": 7, "half": 5000, "dsync": 4, "append": 2}


@needs_fuse
def test_a_checkpoint_counts_everything_as_synced(disk):
    disks, d = disk
    (d / "setup").write_text("config")
    assert disks.checkpoint() == {"n1": {"files": 1, "bytes": 6}}
    assert disks.drop("n1")["bytes"] == 0 and (d / "setup").read_text() == "config"


WRITER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=" + sys.argv[3])
db.execute("PRAGMA synchronous=" + sys.argv[2])
db.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
n = 0
while True:
    db.execute("INSERT INTO t VALUES (?)", (n,))  # one transaction each (autocommit)
    n += 1
    print(n, flush=True)
"""


def _write_and_kill(db: Path, synchronous: str, journal: str, seconds: float = 1.5) -> int:
    """Rows a SIGKILLed writer had committed (a lower bound: the last count it printed)."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db), synchronous, journal], stdout=subprocess.PIPE,
                            text=True)
    time.sleep(seconds)
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=10)
    lines = out.split()
    return int(lines[-1]) if lines else 0


def _rows(db: Path) -> int:
    import sqlite3

    try:
        return int(sqlite3.connect(db).execute("SELECT count(*) FROM t").fetchone()[0])
    except sqlite3.DatabaseError:  # no table (never fsynced), or a database the loss broke
        return 0


@needs_fuse
@pytest.mark.parametrize("journal", ["DELETE", "WAL"])
def test_sqlite_synchronous_full_keeps_every_committed_row_through_a_power_loss(disk, journal):
    disks, d = disk
    acked = _write_and_kill(d / "full.db", "FULL", journal)
    dropped = disks.drop("n1")
    assert acked > 20 and _rows(d / "full.db") >= acked, (acked, dropped)


@needs_fuse
def test_sqlite_synchronous_off_loses_committed_rows_in_a_power_loss(disk):
    disks, d = disk
    acked = _write_and_kill(d / "off.db", "OFF", "DELETE")
    dropped = disks.drop("n1")
    assert acked > 20 and dropped["bytes"] > 0 and _rows(d / "off.db") < acked, (acked, dropped)


FAKE_LAZYFS = """#!/usr/bin/env python3
# stands in for LazyFS: reads its config's FIFOs, notes each command, answers clear-cache as LazyFS does
import re, sys
config = open(sys.argv[sys.argv.index("--config-path") + 1]).read()
fifo, done = re.findall(r'fifo_path(?:_completed)?="([^"]+)"', config)
while True:
    with open(fifo) as f:
        for line in f:
            open(fifo + ".log", "a").write(line)
            if line.strip() == "lazyfs::clear-cache":
                with open(done, "w") as d:
                    d.write("finished::clear-cache\\n")
"""


def test_the_lazyfs_backend_speaks_lazyfs_s_fifos(tmp_path, monkeypatch):
    """With ONCEPROOF_LAZYFS set, a drop is LazyFS's clear-cache, answered when LazyFS says it finished (a stand-in
    for the binary here: onceproof does not build LazyFS)."""
    from harness.lossyfs import Disk, lazyfs

    fake = tmp_path / "lazyfs"
    fake.write_text(FAKE_LAZYFS)
    fake.chmod(0o755)
    monkeypatch.setenv("ONCEPROOF_LAZYFS", str(fake))
    control = f"onceproof-test-{os.getpid()}"
    work = tmp_path / "work"
    proc = subprocess.Popen(lazyfs.argv(tmp_path / "backing", tmp_path / "mnt", control, work))
    try:
        disk = Disk("n1", tmp_path / "mnt", tmp_path / "backing", control, None)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                assert disk.ask("stats") == {"files": -1, "bytes": -1}
                break
            except OSError:
                time.sleep(0.05)
        assert disk.ask("drop") == {"files": -1, "bytes": -1}
        assert "lazyfs::clear-cache" in (work / "faults.fifo.log").read_text()
        assert 'apply_eviction=false' in (work / "lazyfs.toml").read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_results_say_what_each_power_loss_erased_and_which_were_vacuous(tmp_path):
    from checkers.history import read_history
    from checkers.suite import check_history
    from tests.histories import Builder

    b = Builder()
    b.send(0, "m1")
    dropped = {"n1": {"files": 2, "bytes": 300}, "n2": {"files": 0, "bytes": 0}}
    b.op("nemesis", "info", "start-fault", {"fault": "power-loss", "nodes": ["n1", "n2"], "dropped": dropped})
    b.fault("stop-fault", "power-loss", ["n1", "n2"])
    b.poll(1, ["m1"])
    r = check_history(read_history(b.write(tmp_path / "h.jsonl")), "at-least-once")
    (f,) = r["faults"]
    assert f["dropped"] == {"n1": {"files": 2, "bytes": 300}, "n2": {"files": 0, "bytes": 0}}
    assert any("erased nothing on n2" in w and "a kill, not a power loss" in w for w in r["warnings"])
