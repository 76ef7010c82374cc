"""Denodes: the in-memory FAT file (its directory entry and cluster chain) and file data.

Allowed imports: ``rumpfs.vfs``, ``rumpfs.kern``, ``rumpfs.errors`` and this package.

NetBSD's ``denode.h`` + ``msdosfs_denode.c`` + the data half of
``msdosfs_vnops.c``. A :class:`Denode` is its own vnode. It is named by where
its 8.3 entry lives: ``(parent's first cluster, byte offset of the entry)``;
the mount keeps a weak map from that key to the live denode, so one file has
one vnode while anyone holds it, and a rename re-keys it. A denode keeps a
strong reference to its parent directory, so ``..`` is always known and a
parent outlives its children's denodes.

The entry (``dirent``) is written back to the parent directory's buffer
whenever it changes; the disk (through the buffer cache) is the truth, and a
denode evicted and reloaded reads it again. ``ctime`` exists only in memory
(FAT has no change time): it starts as the modification time.

File data: ``clusters`` is the checked chain (loaded on first use). Writes
and truncation extend it with zero-filled clusters (FAT has no holes) and
shrink it, freeing clusters in the FAT. An unlinked file keeps its clusters
until its last reference goes (``vop_inactive``).

Data moves in clusters: whole-cluster runs that are contiguous on the volume
go to and from the device in one request (cached copies of those clusters
kept in step, a cached one read in preference), the rest through
cluster-sized buffers of the cache.

Invariants: a directory's ``clusters`` is never empty (except the FAT12/16
root, which has none). A chain shorter than the file's size is EUCLEAN on
the read that needs the missing part (a write extends it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rumpfs.errors import errno, raise_errno
from rumpfs.fs.msdosfs.direntry import (
    ATTR_ARCHIVE,
    ATTR_DIRECTORY,
    Dirent,
    date_time_to_ns,
)
from rumpfs.vfs.vnode import VDIR, VREG, Vnode

if TYPE_CHECKING:
    from rumpfs.fs.msdosfs.lookup import DirIndex
    from rumpfs.fs.msdosfs.vfsops import MsdosMount
    from rumpfs.fs.msdosfs.vnops import MsdosOps
    from rumpfs.fs.msdosfs.volume import Volume

__all__ = ["MAX_FILE_SIZE", "Denode"]

MAX_FILE_SIZE = 0xFFFFFFFF
_MAX_DIR_BYTES = 65536 * 32          # Linux's FAT_MAX_DIR_SIZE


_MAX_RUN = 256                       # clusters per direct device request


def _run(cl: list[int], ci: int, most: int) -> int:
    """How many clusters from index ``ci`` on are consecutive on the volume."""
    first = cl[ci]
    most = min(most, _MAX_RUN)
    if cl[ci:ci + most] == list(range(first, first + most)):     # the usual case, in C
        return most
    n = 1
    while n < most and cl[ci + n] == first + n:
        n += 1
    return n


class Denode(Vnode):
    """A FAT file or directory."""

    __slots__ = (
        "__weakref__",
        "_clusters",
        "ctime",
        "dirent",
        "first",
        "index",
        "ino",
        "key",
        "name",
        "offset",
        "parent",
        "unlinked",
        "vol",
    )

    def __init__(self, ops: MsdosOps, mount: MsdosMount, vol: Volume, parent: Denode | None,
                 dirent: Dirent, key: tuple[int, int], first: int, offset: int,
                 name: str, ino: int, ctime: int) -> None:
        super().__init__(VDIR if dirent.attr & ATTR_DIRECTORY else VREG, ops, mount)
        self.vol = vol
        self.parent = parent            # None for the root
        self.dirent = dirent
        self.key = key
        self.first = first              # offset of the first slot (long-name slots first)
        self.offset = offset            # offset of the 8.3 entry in the parent; -1 for the root
        self.name = name
        self.ino = ino
        self.ctime = ctime
        self.unlinked = False
        self.index: DirIndex | None = None
        self._clusters: list[int] | None = None

    @property
    def is_root(self) -> bool:
        return self.parent is None

    @property
    def start(self) -> int:
        """First cluster (0: none)."""
        return self.dirent.cluster(self.vol.fat32)

    def fixed_root(self) -> bool:
        """The FAT12/16 root: a fixed region, not a chain."""
        return self.parent is None and not self.vol.fat32

    # -- the chain ------------------------------------------------------------

    def clusters(self) -> list[int]:
        cl = self._clusters
        if cl is None:
            vol = self.vol
            cs = vol.cluster_size
            if self.type is VDIR:
                limit = _MAX_DIR_BYTES // cs + 1
            else:
                limit = (self.dirent.size + cs - 1) // cs + 16
            cl = vol.fat.chain(self.start, limit)
            if self.type is VDIR and not cl and not self.fixed_root():
                vol.corrupt("directory without clusters")
            self._clusters = cl
        return cl

    def set_start(self, cluster: int) -> None:
        self.dirent.set_cluster(cluster, self.vol.fat32)

    def dir_bytes(self) -> int:
        """Size of a directory as its chain (or the root region) holds it."""
        if self.fixed_root():
            return self.vol.geo.root_entries * 32
        return len(self.clusters()) * self.vol.cluster_size

    # -- file data ------------------------------------------------------------

    def read(self, size: int, offset: int) -> bytes:
        end = min(offset + size, self.dirent.size)
        if end <= offset:
            return b""
        vol = self.vol
        cs = vol.cluster_size
        cl = self.clusters()
        if (end + cs - 1) // cs > len(cl):
            vol.corrupt(f"file of {self.dirent.size} bytes has a chain of {len(cl)} clusters")
        parts: list[bytes] = []
        pos = offset
        bc = vol.bc
        while pos < end:
            ci, co = divmod(pos, cs)
            if co == 0 and end - pos >= 2 * cs:
                run = _run(cl, ci, (end - pos) // cs)
                parts.append(vol.read_run(cl[ci], run))
                pos += run * cs
                continue
            take = min(cs - co, end - pos)
            bp = vol.bread_cluster(cl[ci])
            parts.append(bytes(bp.data[co:co + take]) if take != cs else bytes(bp.data))
            bc.brelse(bp)
            pos += take
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _grow_chain(self, nclusters: int) -> list[int]:
        """Make the chain at least ``nclusters`` long (new clusters not zeroed)."""
        cl = self.clusters()
        have = len(cl)
        if nclusters <= have:
            return []
        fat = self.vol.fat
        new = fat.alloc(nclusters - have, cl[-1] + 1 if cl else 0)
        if cl:
            fat.link(cl[-1], new[0])
        else:
            self.set_start(new[0])
        cl.extend(new)
        return new

    def _zero(self, start: int, end: int) -> None:
        """Write zeros over bytes [start, end) of the (allocated) file."""
        vol = self.vol
        cs = vol.cluster_size
        cl = self.clusters()
        pos = start
        while pos < end:
            ci, co = divmod(pos, cs)
            take = min(cs - co, end - pos)
            if take == cs:
                bp = vol.getblk_cluster(cl[ci])
                bp.data[:] = bytes(cs)
            else:
                bp = vol.bread_cluster(cl[ci])
                bp.data[co:co + take] = bytes(take)
            vol.bc.bdwrite(bp)
            pos += take

    def write(self, data: bytes | memoryview, offset: int, now: int) -> int:
        """Write ``data`` at ``offset``; returns the count (short only at 4 GiB - 1)."""
        if offset >= MAX_FILE_SIZE:
            raise_errno(errno.EFBIG)
        n = min(len(data), MAX_FILE_SIZE - offset)
        if n == 0:
            return 0
        vol = self.vol
        cs = vol.cluster_size
        old = self.dirent.size
        end = offset + n
        want = (end + cs - 1) // cs
        if want > len(self.clusters()):
            missing = want - len(self.clusters())
            if missing > vol.fat.free:
                # Short write into what is left; nothing at all is ENOSPC.
                room = (len(self.clusters()) + vol.fat.free) * cs - offset
                if room <= 0:
                    raise_errno(errno.ENOSPC)
                n = room
                end = offset + n
                want = (end + cs - 1) // cs
            self._grow_chain(want)
        if offset > old:
            self._zero(old, offset)
        mv = data if isinstance(data, memoryview) else memoryview(data)
        cl = self.clusters()
        bc = vol.bc
        pos = offset
        src = 0
        while pos < end:
            ci, co = divmod(pos, cs)
            if co == 0 and end - pos >= 2 * cs:
                run = _run(cl, ci, (end - pos) // cs)
                vol.write_run(cl[ci], run, mv[src:src + run * cs])
                pos += run * cs
                src += run * cs
                continue
            take = min(cs - co, end - pos)
            if take == cs:
                bp = vol.getblk_cluster(cl[ci])
                bp.data[:] = mv[src:src + cs]
            else:
                bp = vol.bread_cluster(cl[ci])
                bp.data[co:co + take] = mv[src:src + take]
            bc.bdwrite(bp)
            pos += take
            src += take
        d = self.dirent
        if end > old:
            d.size = end
        d.mdate, d.mtime, _ = vol.stamp(now)
        d.attr |= ATTR_ARCHIVE
        self.ctime = self.mtime_ns()
        return n

    def truncate(self, size: int) -> None:
        """Set the size: free clusters past it, or extend with zeros."""
        if size > MAX_FILE_SIZE:
            raise_errno(errno.EFBIG)
        vol = self.vol
        cs = vol.cluster_size
        old = self.dirent.size
        cl = self.clusters()
        want = (size + cs - 1) // cs
        if size > old:
            if want - len(cl) > vol.fat.free:
                raise_errno(errno.ENOSPC)
            self._grow_chain(want)
            self._zero(old, size)
        elif want < len(cl):
            tail = cl[want:]
            del cl[want:]
            if cl:
                vol.fat.terminate(cl[-1])
            else:
                self.set_start(0)
            vol.fat.release(tail)
        self.dirent.size = size

    def release_all(self) -> None:
        """Free every cluster (the file is gone)."""
        try:
            cl = self.clusters()
        except OSError:
            return                      # a corrupt chain is left for fsck, not freed blindly
        if cl:
            self.vol.fat.release(cl)
        self._clusters = []
        self.set_start(0)

    # -- times ----------------------------------------------------------------

    def mount_offset(self) -> int:
        return self.vol.tz_offset

    def mtime_ns(self) -> int:
        d = self.dirent
        return date_time_to_ns(d.mdate, d.mtime, 0, self.mount_offset())
