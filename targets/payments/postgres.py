"""PostgreSQL 15 (Debian's `postgresql`) as a node of a payments run: a cluster initialised in the node's own
directory and run in the foreground by the `postgres` user (the server refuses to run as root), so kill,
pause and restart act on the real server process. Durable as shipped: fsync on, synchronous_commit on."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

PG_VERSION = "15"
# the server runs as `postgres`, which cannot enter root's private directories (a store under /root, pytest's
# temporary ones): the cluster lives here, linked from the node's directory, and is removed at teardown
CLUSTERS = Path("/var/tmp/onceproof-postgres")
BIN = Path(f"/usr/lib/postgresql/{PG_VERSION}/bin")
USER = "postgres"  # Debian's package creates it
DATABASE = "payments"


def as_user() -> list[str]:
    """The prefix that runs a command as the postgres user, keeping the same process (exec), so signals sent
    to the node's pid reach the server itself."""
    return ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--clear-groups", "--"]


def initdb(data: Path) -> None:
    """An empty cluster with the DATABASE database, owned by postgres, trusting local connections (it listens
    on loopback only), in CLUSTERS and linked as `data/pgdata`."""
    pw = pwd.getpwnam(USER)
    CLUSTERS.mkdir(mode=0o755, parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix=f"{data.parent.parent.name}-{data.name}-", dir=CLUSTERS))
    os.chmod(home, 0o755)
    (data / "pgdata").symlink_to(home)
    pgdata, sock = home / "pgdata", home / "sock"
    for p in (pgdata, sock):
        p.mkdir()
    for p in (home, pgdata, sock):
        os.chown(p, pw.pw_uid, pw.pw_gid)
    out = subprocess.run([*as_user(), str(BIN / "initdb"), "-D", str(pgdata), "-U", USER, "--auth=trust",
                          "--no-instructions", "-E", "UTF8", "--locale=C"], capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"initdb failed ({out.returncode}): {(out.stdout + out.stderr)[-600:]}")
    # the application's database, made in single-user mode: no server (and no port) needed yet
    out = subprocess.run([*as_user(), str(BIN / "postgres"), "--single", "-D", str(pgdata), "postgres"],
                         input=f"CREATE DATABASE {DATABASE};\n", capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"creating the database failed ({out.returncode}): {(out.stdout + out.stderr)[-600:]}")


def remove(data: Path) -> None:
    """The cluster of a node directory, once its server has stopped (the link stays, dangling)."""
    link = data / "pgdata"
    if link.is_symlink():
        home = link.resolve()
        if home.parent == CLUSTERS:
            shutil.rmtree(home, ignore_errors=True)


def argv(data: Path, port: int, bind: str, synchronous_commit: str = "on") -> list[str]:
    """The server in the foreground, its socket directory beside its data (not /run/postgresql). Durable unless
    a profile turns `synchronous_commit` off (a commit then returns before its WAL is flushed)."""
    home = (data / "pgdata").resolve()
    return [*as_user(), str(BIN / "postgres"), "-D", str(home / "pgdata"), "-p", str(port), "-h", bind,
            "-k", str(home / "sock"), "-c", "fsync=on", "-c", f"synchronous_commit={synchronous_commit}",
            "-c", "max_connections=200",
            # with synchronous_commit off, the WAL writer flushes every wal_writer_delay (200 ms by default): a kill
            # forgot a claim only if it came in that last fraction of a second, which one CI run in three missed.
            # 10 s (the most) widens the window the kill must hit, as Jepsen widens its faults' windows
            *(["-c", "wal_writer_delay=10000"] if synchronous_commit == "off" else [])]


def url(host: str, port: int, database: str = DATABASE) -> str:
    return f"postgresql://{USER}@{host}:{port}/{database}"


def ready(host: str, port: int) -> bool:
    import psycopg

    try:
        with psycopg.connect(url(host, port, "postgres"), connect_timeout=1) as c:
            c.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False
