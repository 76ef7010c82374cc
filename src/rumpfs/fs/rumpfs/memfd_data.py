"""Regular-file data in a host memfd, for files the host opens through FUSE passthrough.

Allowed imports: ``rumpfs.kern``, ``rumpfs.vfs``, ``rumpfs.errors``, and
``data`` of this package.

:class:`MemfdData` has the interface of :class:`~rumpfs.fs.rumpfs.data.SparseData`
(``read``, ``write``, ``truncate``, ``allocate``, ``punch``, ``seek_data``,
``clear``, ``size``, ``pages``, ``space``) over an anonymous host memory file
(tmpfs). A file moves there once, under the kernel lock, when the FUSE
frontend first opens it with passthrough (:func:`backing_fd`): its pages,
holes and fallocated-but-unwritten pages are copied, so st_blocks and
SEEK_DATA/SEEK_HOLE stay what they were. From then on the host kernel reads,
writes and maps the memfd directly, and every in-process call uses it too:
one page cache, coherent both ways by construction. Sizes, st_blocks, holes
and the fallocate modes are tmpfs's own (a memfd is a tmpfs file), and its
size limit is tmpfs's (MAX_LFS_FILESIZE, the same as rumpfs's).

Times: a write through passthrough stamps the memfd, not the node. The
memfd's mtime and atime mirror the node's whenever this kernel sets them
(the move, every ``setattr``), ``seen`` holds what they were at the last
look, and the kernel's own descriptor never touches atime (``O_NOATIME``).
:meth:`MemfdData.sync` (called by ``stat`` and before ``setattr``) takes a
memfd mtime (atime) other than the one last seen as a write (read) made
since, and carries it into the node's mtime and ctime (atime): never past
the kernel's clock, never backwards (an in-process write's own stamp on
the memfd is never later than the node's). A host write in the same host
clock tick as the memfd's last stamp may leave it unchanged, and so unseen:
the node then keeps that earlier stamp of the same tick.

Accounting: ``charged`` is what this file counts in the mount's
:class:`~rumpfs.fs.rumpfs.data.Space`; it follows the memfd's st_blocks when
synced (``stat``, ``pages``, statvfs through :meth:`settle`). Files move only
on mounts without a ``size=`` limit, where the count is only reported.

Locking: the kernel lock is held throughout (``__del__`` excepted: it only
closes the descriptor).
"""

from __future__ import annotations

import os
import stat as st
import weakref
from typing import TYPE_CHECKING

from rumpfs.errors import errno, raise_errno
from rumpfs.fs.rumpfs.data import CHUNK_SHIFT, PAGE, Space, SparseData
from rumpfs.kern.clock import Clock
from rumpfs.kern.shm import HostShm
from rumpfs.vfs.genfs import FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE

if TYPE_CHECKING:
    from rumpfs.fs.rumpfs.node import RumpReg

__all__ = ["MemfdData", "backing_fd", "setid"]

_SEEK_DATA = 3
_SEEK_HOLE = 4
_CAPABILITY = "security.capability"
_BIG_READ = 1 << 20


def _runs(mask: int) -> list[tuple[int, int]]:
    """(first bit, count) of each run of set bits of ``mask``, lowest first."""
    out = []
    while mask:
        lo = (mask & -mask).bit_length() - 1
        m = mask >> lo
        n = ((m + 1) & ~m).bit_length() - 1       # trailing ones of m
        out.append((lo, n))
        mask &= ~(((1 << n) - 1) << lo)
    return out


class MemfdData:
    """The bytes of one regular file, in a host memfd."""

    __slots__ = ("__weakref__", "charged", "clock", "fd", "seen_a", "seen_m", "shm", "space")

    def __init__(self, shm: HostShm, fd: int, space: Space, clock: Clock, charged: int) -> None:
        self.shm = shm
        self.fd = fd
        self.space = space
        self.clock = clock
        self.charged = charged
        self.seen_a = self.seen_m = -1

    @classmethod
    def from_sparse(cls, sparse: SparseData, shm: HostShm, clock: Clock,
                    node: RumpReg) -> MemfdData | None:
        """A memfd holding ``sparse``'s bytes, pages and holes (which then must
        not be used) and ``node``'s times; None if no memfd can be had or the
        copy fails."""
        if sparse.space.limit is not None:
            return None          # a host write must not pass the mount's size= limit
        fd = shm.create()
        if fd is None:
            return None
        hyp = shm.hyp
        data = None
        try:
            if sparse.size:                 # a new file (CREATE) has nothing to copy
                hyp.ftruncate(fd, sparse.size)
            for index in sorted(sparse.chunks):
                c = sparse.chunks[index]
                base = index << CHUNK_SHIFT
                for lo, n in _runs(c.mask):               # written pages: their bytes
                    off = base + lo * PAGE
                    chunk = sparse.read(n * PAGE, off)
                    pos = 0
                    while pos < len(chunk):
                        pos += hyp.pwrite(fd, memoryview(chunk)[pos:], off + pos)
                for lo, n in _runs(c.falloc):             # allocated, never written
                    hyp.fallocate(fd, FALLOC_FL_KEEP_SIZE, base + lo * PAGE, n * PAGE)
            # The pages change stores, not count: the mount's Space stays as it was.
            data = cls(shm, fd, sparse.space, clock, sparse.pages)
            data.mirror(node)
        except OSError:
            if data is not None:
                data.fd = -1                # released here, not again by __del__
            shm.release(fd)
            return None
        shm.users.add(data)
        if sparse.pages:
            data.settle()
        return data

    def __del__(self) -> None:
        # A node dropped without vop_inactive (its mount went away): give the fd back.
        if self.fd >= 0:
            try:
                self.shm.release(self.fd)
            except OSError:
                pass
            self.fd = -1

    # -- what the host may have changed ------------------------------------------

    @property
    def size(self) -> int:
        return self.shm.hyp.fstat(self.fd).st_size

    @property
    def pages(self) -> int:
        return self._charge(self.shm.hyp.fstat(self.fd))

    def _charge(self, s: os.stat_result) -> int:
        pages = s.st_blocks >> 3
        if pages != self.charged:
            self.space.used += pages - self.charged
            self.charged = pages
        return pages

    def settle(self) -> None:
        """Bring the mount's page count up to date with the memfd (if it still
        has one: a dead node's data may outlive it in a weak set)."""
        if self.fd >= 0:
            self._charge(self.shm.hyp.fstat(self.fd))

    def sync(self, node: RumpReg) -> tuple[int, int]:
        """(size, st_blocks) of the data; a write (read) through passthrough
        since the last look moves the node's mtime and ctime (atime)."""
        s = self.shm.hyp.fstat(self.fd)
        m, a = s.st_mtime_ns, s.st_atime_ns
        if m != self.seen_m or a != self.seen_a:
            now = self.clock.now_ns()
            if m != self.seen_m:
                self.seen_m = m
                t = m if m < now else now
                if t > node.mtime:
                    node.mtime = t
                if t > node.ctime:
                    node.ctime = t
            if a != self.seen_a:
                self.seen_a = a
                t = a if a < now else now
                if t > node.atime and not node.mount.read_only:
                    node.atime = t
        return s.st_size, self._charge(s) << 3

    def mirror(self, node: RumpReg) -> None:
        """Give the memfd the node's atime and mtime (after the kernel set
        them), so that the host's next write or read shows as a change."""
        hyp = self.shm.hyp
        try:
            hyp.futimens(self.fd, node.atime, node.mtime)
            self.seen_a, self.seen_m = node.atime, node.mtime
        except OSError:                     # a time the host cannot hold: look instead
            s = hyp.fstat(self.fd)
            self.seen_a, self.seen_m = s.st_atime_ns, s.st_mtime_ns

    # -- the SparseData interface ------------------------------------------------

    def read(self, size: int, offset: int) -> bytes:
        hyp = self.shm.hyp
        if size > _BIG_READ:            # the host allocates what is asked for first
            size = max(min(size, hyp.fstat(self.fd).st_size - offset), 0)
        return hyp.pread(self.fd, size, offset)

    def write(self, data: bytes | memoryview, offset: int) -> int:
        """Write all of ``data`` at ``offset``; the offset after the last byte
        written (short only if the host runs out of memory part way)."""
        hyp, fd = self.shm.hyp, self.fd
        n = len(data)
        pos = 0
        try:
            while pos < n:
                pos += hyp.pwrite(fd, data[pos:] if pos else data, offset + pos)
        except OSError:
            if pos == 0:
                raise
        return offset + pos

    def truncate(self, size: int) -> None:
        # only in setattr, which mirrors the node's times afterwards
        self.shm.hyp.ftruncate(self.fd, size)

    def clear(self) -> None:
        """The node is gone: free its pages and the memfd."""
        self.space.used -= self.charged
        self.charged = 0
        fd, self.fd = self.fd, -1
        if fd >= 0:
            self.shm.release(fd)

    def allocate(self, offset: int, length: int, keep_size: bool) -> None:
        self.shm.hyp.fallocate(self.fd, FALLOC_FL_KEEP_SIZE if keep_size else 0, offset, length)

    def punch(self, offset: int, length: int) -> None:
        self.shm.hyp.fallocate(self.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset,
                               length)

    def seek_data(self, offset: int, want_data: bool) -> int:
        if offset < 0:
            raise_errno(errno.ENXIO)
        return self.shm.hyp.lseek(self.fd, offset, _SEEK_DATA if want_data else _SEEK_HOLE)


def setid(node: RumpReg) -> bool:
    """Whether some write could have to clear something: setuid, setgid (Linux
    clears it without group execute too, for a writer outside the group), or
    file capabilities (security.capability)."""
    if node.mode & (st.S_ISUID | st.S_ISGID):
        return True
    return bool(node.xattrs) and _CAPABILITY in node.xattrs   # type: ignore[operator]


def backing_fd(node: RumpReg, shm: HostShm, clock: Clock,
               live: weakref.WeakSet[MemfdData] | None = None) -> int | None:
    """The memfd holding ``node``'s bytes, moving them there first; None when
    the node stays in its own store (no memfd to be had, a size= limit) or is
    set-id: a non-owner's write must clear the bits, and a write through
    passthrough never reaches this kernel (Linux's passthrough write does not
    clear them either). Any open, not only a writer's: Linux keeps all of an
    inode's opens in the mode of its first."""
    if setid(node):
        return None
    data = node.data
    if isinstance(data, MemfdData):
        return data.fd
    moved = MemfdData.from_sparse(data, shm, clock, node)
    if moved is None:
        return None
    node.data = moved
    if live is not None:
        live.add(moved)
    return moved.fd
