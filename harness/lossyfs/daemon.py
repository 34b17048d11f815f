"""The lossy disk's daemon: a FUSE file system over a backing directory that can forget what was never fsynced.

    python -m harness.lossyfs.daemon BACKING MOUNTPOINT SOCKET     (SOCKET: a path, or @name: an abstract socket)

One daemon per node, mounted over the node's data directory (the runtime does it before the node first starts;
in containers the run directory's bind mount carries it in). Every operation passes through to BACKING; writes
are tracked per inode (`undo.Tracked`) so that a `drop` restores every file to its state at its last fsync.
Commands come over a Unix socket, one JSON line each, and get a JSON line back:

    {"op": "drop"}        -> {"files": N, "bytes": B}   every tracked file back to its last fsync
    {"op": "checkpoint"}  -> {"files": N, "bytes": B}   everything written so far counts as synced
    {"op": "stats"}       -> {"files": N, "bytes": B}   what a drop would take now

A drop is meant for a moment when nothing writes (the node's processes are dead). The daemon runs in the
foreground and unmounts when it gets SIGTERM; mfusepy (on Debian's libfuse3) is its only dependency.
"""

from __future__ import annotations

import errno
import os
import sys
import threading
from typing import Any

os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")  # mfusepy tries libfuse 2 first

import mfusepy

from harness.lossyfs.control import serve
from harness.lossyfs.undo import Tracked

FSNAME = "onceproof-lossy"  # how `onceproof clean` and the tests know our mounts in `findmnt -t fuse`
SYNC_FLAGS = os.O_SYNC | os.O_DSYNC
STAT_KEYS = ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size", "st_rdev", "st_blocks", "st_blksize")


class LossyFS(mfusepy.Operations):
    """Passthrough to `root`, with every regular file's unsynced changes tracked. Methods map FUSE calls to the
    backing directory; OSError from the os module becomes the call's errno."""

    use_ns = True

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        self.guard = threading.RLock()  # (not `lock`: that name is FUSE's lock operation)
        self.inodes: dict[int, Tracked] = {}  # backing inode -> its tracking
        self.fh_inode: dict[int, int] = {}  # our file handle -> backing inode
        self.fh_sync: set[int] = set()  # handles opened with O_SYNC or O_DSYNC

    def _path(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    # --- tracking -----------------------------------------------------------------------------------------

    def _track(self, fh: int, created: bool) -> None:
        ino = os.fstat(fh).st_ino
        with self.guard:
            t = self.inodes.get(ino)
            if t is None:
                own = os.open(f"/proc/self/fd/{fh}", os.O_RDWR)
                t = self.inodes[ino] = Tracked(own, 0 if created else os.fstat(fh).st_size)
            t.handles += 1
            self.fh_inode[fh] = ino

    def _tracked(self, fh: int) -> Tracked:
        return self.inodes[self.fh_inode[fh]]

    def drop(self) -> dict[str, int]:
        with self.guard:
            lost = {ino: t.drop() for ino, t in self.inodes.items()}
        return {"files": sum(1 for b in lost.values() if b), "bytes": sum(lost.values())}

    def checkpoint(self) -> dict[str, int]:
        with self.guard:
            pending = {ino: t.unsynced() for ino, t in self.inodes.items()}
            for t in self.inodes.values():
                t.sync()
        return {"files": sum(1 for b in pending.values() if b), "bytes": sum(pending.values())}

    def stats(self) -> dict[str, int]:
        with self.guard:
            pending = [t.unsynced() for t in self.inodes.values()]
        return {"files": sum(1 for b in pending if b), "bytes": sum(pending)}

    # --- files ---------------------------------------------------------------------------------------------

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        st = os.fstat(fh) if fh is not None else os.lstat(self._path(path))
        return {k: getattr(st, k) for k in STAT_KEYS} | {
            "st_atime": st.st_atime_ns, "st_mtime": st.st_mtime_ns, "st_ctime": st.st_ctime_ns}

    def open(self, path: str, flags: int) -> int:
        # (O_APPEND off: the kernel gives every write its offset; O_TRUNC after tracking, so the old bytes are kept)
        fh = os.open(self._path(path), flags & ~(os.O_APPEND | os.O_TRUNC | os.O_CREAT))
        self._after_open(fh, flags, created=False)
        return fh

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        flags = fi if isinstance(fi, int) else os.O_WRONLY
        p = self._path(path)
        fh = os.open(p, (flags & ~(os.O_APPEND | os.O_TRUNC)) | os.O_CREAT, mode)
        self._own(p)
        self._after_open(fh, flags, created=True)
        return fh

    def _after_open(self, fh: int, flags: int, created: bool) -> None:
        if not os.path.isfile(f"/proc/self/fd/{fh}"):
            return
        self._track(fh, created)
        if flags & SYNC_FLAGS:
            self.fh_sync.add(fh)
        if flags & os.O_TRUNC and not created:
            self._truncate(fh, 0)

    @staticmethod
    def _own(p: str) -> None:
        """What a caller other than root creates is its own, as on a disk (the daemon runs as root)."""
        uid, gid, _ = mfusepy.fuse_get_context()
        if uid:
            os.lchown(p, uid, gid)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        with self.guard:
            t = self._tracked(fh)
            t.before_write(offset, len(data))
            n = os.pwrite(fh, data, offset)
            if fh in self.fh_sync:
                t.sync()
        return n

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        if fh is None:
            fh = os.open(self._path(path), os.O_RDWR)
            try:
                self._track(fh, created=False)
                return self._truncate(fh, length)
            finally:
                self.release(path, fh)
        return self._truncate(fh, length)

    def _truncate(self, fh: int, length: int) -> int:
        with self.guard:
            self._tracked(fh).before_truncate(length)
            os.ftruncate(fh, length)
        return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        with self.guard:
            self._tracked(fh).sync()
        return 0

    def flush(self, path: str, fh: int) -> int:
        return 0

    def release(self, path: str, fh: int) -> int:
        with self.guard:
            ino = self.fh_inode.pop(fh, None)
            self.fh_sync.discard(fh)
            t = self.inodes.get(ino) if ino is not None else None
            if t is not None:
                t.handles -= 1
                if t.handles <= 0 and os.fstat(t.fd).st_nlink == 0:  # unlinked and closed: free its space
                    os.close(t.fd)
                    del self.inodes[ino]
        os.close(fh)
        return 0

    def fallocate(self, path: str, mode: int, offset: int, length: int, fh: int) -> int:
        if mode:
            raise mfusepy.FuseOSError(errno.EOPNOTSUPP)
        with self.guard:
            os.posix_fallocate(fh, offset, length)
        return 0

    # --- the rest passes straight through, durable at once (as in LazyFS) ------------------------------------

    def access(self, path: str, amode: int) -> int:
        if not os.access(self._path(path), amode):
            raise mfusepy.FuseOSError(errno.EACCES)
        return 0

    def readdir(self, path: str, fh: int) -> list[Any]:
        out: list[Any] = [(".", {"st_mode": 0o040755}, 0), ("..", {"st_mode": 0o040755}, 0)]
        with os.scandir(self._path(path)) as it:
            for e in it:  # with use_ino, an entry without its inode is hidden by glibc
                st = e.stat(follow_symlinks=False)
                out.append((e.name, {"st_ino": st.st_ino, "st_mode": st.st_mode}, 0))
        return out

    def mkdir(self, path: str, mode: int) -> int:
        os.mkdir(self._path(path), mode)
        self._own(self._path(path))
        return 0

    def rmdir(self, path: str) -> int:
        os.rmdir(self._path(path))
        return 0

    def unlink(self, path: str) -> int:
        p = self._path(path)
        ino = os.lstat(p).st_ino
        os.unlink(p)
        with self.guard:
            t = self.inodes.get(ino)
            if t is not None and t.handles <= 0 and os.fstat(t.fd).st_nlink == 0:
                os.close(t.fd)
                del self.inodes[ino]
        return 0

    def rename(self, old: str, new: str) -> int:
        os.rename(self._path(old), self._path(new))
        return 0

    def link(self, target: str, source: str) -> int:
        os.link(self._path(source), self._path(target))
        return 0

    def symlink(self, target: str, source: str) -> int:
        os.symlink(source, self._path(target))
        self._own(self._path(target))
        return 0

    def readlink(self, path: str) -> str:
        return os.readlink(self._path(path))

    def mknod(self, path: str, mode: int, dev: int) -> int:
        os.mknod(self._path(path), mode, dev)
        self._own(self._path(path))
        return 0

    def chmod(self, path: str, mode: int) -> int:
        os.chmod(self._path(path), mode)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        os.lchown(self._path(path), uid, gid)
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        os.utime(self._path(path), ns=times, follow_symlinks=False) if times else os.utime(self._path(path))
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        st = os.statvfs(self._path(path))
        return {k: getattr(st, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree",
                                            "f_files", "f_flag", "f_frsize", "f_namemax")}


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m harness.lossyfs.daemon BACKING MOUNTPOINT SOCKET", file=sys.stderr)
        return 2
    backing, mountpoint, control = argv
    fs = LossyFS(backing)
    commands = {"drop": fs.drop, "checkpoint": fs.checkpoint, "stats": fs.stats}
    threading.Thread(target=serve, args=(control, commands), daemon=True).start()
    print(f"lossyfs: {backing} on {mountpoint}, control {control}", flush=True)
    mfusepy.FUSE(fs, mountpoint, foreground=True, use_ino=True, fsname=FSNAME, attr_timeout=0, entry_timeout=0,
                 negative_timeout=0, allow_other=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
