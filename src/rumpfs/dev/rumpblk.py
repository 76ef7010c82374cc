"""rumpblk: block and character devices over windows of host files.

Allowed imports: ``rumpfs.kern``, ``rumpfs.rumpuser``, ``rumpfs.errors``.

One driver, entered in the device switch at boot for BLOCK and CHAR under
major :data:`RUMPBLK_DEVMAJOR` (NetBSD's number). Each :meth:`RumpBlk.register`
opens the host file (read-write, falling back to read-only as NetBSD's
rumpblk does since 2013) and gives the window ``[begin, begin+size)`` a new
minor: two registrations of one host file are two independent devices. A
device node made with ``mknod`` and this major reaches the same minor.

- BLOCK: any offset and length (the buffer cache's view).
- CHAR (raw): offset and length must be multiples of 512 (EINVAL).
- Both: reads at or past the end give b""; writes at or past it ENOSPC,
  straddling ones are short. A host file that shrank under the window reads
  as EIO. After :meth:`RumpBlk.deregister` the minor's open descriptors get
  EIO, new opens ENXIO; minors are never reused.

Locking: called under the kernel lock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from rumpfs.errors import errno, raise_errno
from rumpfs.kern.devsw import BLOCK, CHAR, DevSwitch
from rumpfs.rumpuser import Hypervisor

__all__ = ["RUMPBLK_DEVMAJOR", "SECTOR", "RumpBlk"]

RUMPBLK_DEVMAJOR = 197
SECTOR = 512
_ACCMODE = os.O_RDONLY | os.O_WRONLY | os.O_RDWR


@dataclass(slots=True)
class _Disk:
    fd: int
    begin: int
    size: int
    writable: bool


class RumpBlk:
    """The rumpblk device table of one kernel: minor -> host window."""

    major = RUMPBLK_DEVMAJOR

    def __init__(self, hyp: Hypervisor) -> None:
        self._hyp = hyp
        self._disks: dict[int, _Disk] = {}
        self._gone: set[int] = set()
        self._next_minor = 0
        self.block = _RumpBlkDriver(self, raw=False)
        self.char = _RumpBlkDriver(self, raw=True)

    def attach(self, devsw: DevSwitch) -> None:
        devsw.register(BLOCK, RUMPBLK_DEVMAJOR, self.block)
        devsw.register(CHAR, RUMPBLK_DEVMAJOR, self.char)

    def register(self, hostpath: str, begin: int, size: int, read_only: bool = False) -> int:
        """Open ``hostpath`` and make a device of its window; returns the minor.
        ``read_only`` opens the host file read-only (the device refuses
        writers with EACCES, as a write-protected disk)."""
        fd = -1
        writable = False
        if not read_only:
            try:
                fd = self._hyp.open(hostpath, os.O_RDWR)
                writable = True
            except OSError as e:
                if e.errno not in (errno.EACCES, errno.EROFS, errno.EPERM):
                    raise
        if fd < 0:
            fd = self._hyp.open(hostpath, os.O_RDONLY)
        minor = self._next_minor
        self._next_minor += 1
        self._disks[minor] = _Disk(fd, begin, size, writable)
        return minor

    def deregister(self, minor: int) -> None:
        """Close the host file of ``minor``; its open descriptors fail with EIO."""
        disk = self._disks.pop(minor, None)
        if disk is None:
            return
        self._gone.add(minor)
        self._hyp.close(disk.fd)

    def close_all(self) -> None:
        for minor in list(self._disks):
            try:
                self.deregister(minor)
            except OSError:
                pass

    def size(self, minor: int) -> int:
        disk = self._disks.get(minor)
        return 0 if disk is None else disk.size

    def disk(self, minor: int) -> _Disk:
        disk = self._disks.get(minor)
        if disk is None:
            raise_errno(errno.EIO if minor in self._gone else errno.ENXIO)
        return disk

    @property
    def host_fds(self) -> int:
        return len(self._disks)


class _RumpBlkDriver:
    """One side (block or raw) of rumpblk, as the device switch sees it."""

    __slots__ = ("_blk", "_hyp", "_raw")

    def __init__(self, blk: RumpBlk, raw: bool) -> None:
        self._blk = blk
        self._hyp = blk._hyp
        self._raw = raw

    def d_open(self, minor: int, flags: int) -> None:
        disk = self._blk._disks.get(minor)
        if disk is None:
            raise_errno(errno.ENXIO)
        if flags & _ACCMODE != os.O_RDONLY and not disk.writable:
            raise_errno(errno.EACCES)
        if self._hyp.fstat(disk.fd).st_nlink == 0:
            raise_errno(errno.EIO)          # the host file went away under us

    def d_close(self, minor: int, flags: int) -> None:
        pass

    def d_read(self, minor: int, size: int, offset: int) -> bytes:
        disk = self._blk.disk(minor)
        if self._raw and (offset % SECTOR or size % SECTOR):
            raise_errno(errno.EINVAL)
        left = disk.size - offset
        if left <= 0 or size <= 0:
            return b""
        n = size if size < left else left
        data = self._hyp.pread(disk.fd, n, disk.begin + offset)
        if len(data) < n:
            raise_errno(errno.EIO)          # the host file shrank under the window
        return data

    def d_write(self, minor: int, data: bytes | memoryview, offset: int) -> int:
        disk = self._blk.disk(minor)
        n = len(data)
        if self._raw and (offset % SECTOR or n % SECTOR):
            raise_errno(errno.EINVAL)
        if not disk.writable:
            raise_errno(errno.EBADF)
        if n == 0:
            return 0
        left = disk.size - offset
        if left <= 0:
            raise_errno(errno.ENOSPC)
        if n > left:
            n = left
            data = data[:n]
        pos = disk.begin + offset
        done = self._hyp.pwrite(disk.fd, data, pos)
        while done < n:
            w = self._hyp.pwrite(disk.fd, data[done:], pos + done)
            if w <= 0:
                break
            done += w
        return done

    def d_fsync(self, minor: int) -> None:
        self._hyp.fsync(self._blk.disk(minor).fd)

    def d_size(self, minor: int) -> int:
        return self._blk.size(minor)
