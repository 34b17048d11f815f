"""The lossy disk's model, with no FUSE in it: what a file would hold after a power loss.

Writes go straight to the backing file (so reads see them at once, as from a page cache); each file remembers
its size at its last fsync (`synced`) and the old bytes of every synced region overwritten or cut off since
(`pre`, oldest first). `drop` truncates the file back to `synced` and writes the old bytes back, newest first,
so each byte ends as it was at the last fsync: LazyFS's fault model (un-fsynced data is lost; creating,
renaming and removing files is durable at once), without a cache of its own. A write through a descriptor
opened with O_SYNC or O_DSYNC, an fsync and an fdatasync all count as an fsync of the whole file (slightly
generous: unsynced bytes written earlier through another descriptor become safe too).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass
class Tracked:
    """One backing inode: our own descriptor on it (it survives renames and unlinks), its size at the last fsync,
    and the old bytes of synced regions changed since, oldest first. `handles` counts the open descriptors the
    file system gave out on it (an unlinked inode is forgotten when the last one closes)."""

    fd: int
    synced: int
    pre: list[tuple[int, bytes]] = field(default_factory=list)
    handles: int = 0

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def before_write(self, offset: int, length: int) -> None:
        """Keep the synced bytes a write at `offset` is about to overwrite."""
        end = min(offset + length, self.synced)
        if offset < end:
            self.pre.append((offset, os.pread(self.fd, end - offset, offset)))

    def before_truncate(self, length: int) -> None:
        """Keep the synced bytes a truncation to `length` is about to cut off."""
        if length < self.synced:
            self.pre.append((length, os.pread(self.fd, self.synced - length, length)))

    def sync(self) -> None:
        """An fsync: everything the file holds now survives a power loss."""
        self.synced = self.size()
        self.pre.clear()

    def unsynced(self) -> int:
        """Bytes a power loss would take: the tail past `synced`, and the synced bytes changed since."""
        return max(0, self.size() - self.synced) + sum(len(b) for _, b in self.pre)

    def drop(self) -> int:
        """The power loss: back to the state at the last fsync; returns the bytes that changed."""
        lost = self.unsynced()
        if not lost:
            return 0
        os.ftruncate(self.fd, self.synced)
        for offset, old in reversed(self.pre):
            os.pwrite(self.fd, old, offset)
        self.pre.clear()
        return lost
