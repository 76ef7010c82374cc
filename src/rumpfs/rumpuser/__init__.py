"""The hypercall layer: the ONLY code in rumpfs that touches the host.

Allowed imports: the standard library and ``rumpfs.errors``.

A :class:`Hypervisor` is handed to a kernel at boot; kernel code reaches the
host through it and nothing else. ``posix.PosixHost`` is the real host,
``memhost.MemHost`` an in-memory one with fault injection for tests. Host
errors enter the kernel as ``OSError`` carrying only an errno: no host path
ever reaches a message or ``.filename``.

The jail: only :meth:`Hypervisor.getfileinfo`, :meth:`Hypervisor.stat` and
:meth:`Hypervisor.open` take a host path, and only the operator's own
``hostpath`` of a registration is ever passed to them. Everything below a
mapped directory is reached with the ``*at`` calls, one component at a time
from a directory descriptor, never following a host symbolic link: a name is
a single component (no ``/``, not ``.``/``..``/empty; EINVAL otherwise).
"""

from __future__ import annotations

import enum
import os
import stat as st
from typing import Protocol

from rumpfs.errors import errno, raise_errno

__all__ = ["HYPERVISOR_VERSION", "HostFileType", "Hypervisor", "check_component"]

HYPERVISOR_VERSION = 2


class HostFileType(enum.Enum):
    """What a host file is (rumpuser's RUMPUSER_FT_*)."""

    OTHER = 0
    DIR = 1
    REG = 2
    BLK = 3
    CHR = 4
    LNK = 5
    FIFO = 6
    SOCK = 7

    @classmethod
    def from_mode(cls, mode: int) -> HostFileType:
        return _FT.get(st.S_IFMT(mode), cls.OTHER)


_FT = {
    st.S_IFDIR: HostFileType.DIR, st.S_IFREG: HostFileType.REG, st.S_IFBLK: HostFileType.BLK,
    st.S_IFCHR: HostFileType.CHR, st.S_IFLNK: HostFileType.LNK, st.S_IFIFO: HostFileType.FIFO,
    st.S_IFSOCK: HostFileType.SOCK,
}


def check_component(name: str) -> None:
    """Refuse anything but one plain path component (the jail's first line)."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise_errno(errno.EINVAL)


class Hypervisor(Protocol):
    """What the kernel may ask of its host. Every method raises ``OSError``
    with an errno and no filename on failure."""

    def clock_realtime_ns(self) -> int:
        """Wall-clock time in nanoseconds since the epoch."""
        ...

    def clock_utc_offset(self) -> int:
        """Seconds east of UTC of the host's local time now (Linux's sys_tz)."""
        ...

    # -- the operator's host paths (registrations) ------------------------

    def getfileinfo(self, path: str) -> tuple[int, HostFileType]:
        """(size, type) of host ``path``, following symbolic links."""
        ...

    def stat(self, path: str) -> os.stat_result:
        """``stat`` of host ``path``, following symbolic links."""
        ...

    def open(self, path: str, flags: int) -> int:
        """Open host ``path`` (following links; close-on-exec). Returns a host fd."""
        ...

    # -- descriptors --------------------------------------------------------

    def close(self, fd: int) -> None: ...

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (short only at the host's EOF)."""
        ...

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        """Write ``data`` at ``offset``; returns the count written."""
        ...

    def fsync(self, fd: int, datasync: bool = False) -> None: ...

    # Anonymous shared memory (rumpfs files the host reads and writes directly
    # through FUSE passthrough). A host without it answers EOPNOTSUPP.

    def memfd_create(self, name: str) -> int:
        """A new, empty, close-on-exec anonymous memory file (Linux memfd_create)
        whose descriptor does not update its atime (``O_NOATIME``)."""
        ...

    def fallocate(self, fd: int, mode: int, offset: int, length: int) -> None:
        """Linux fallocate(2) with ``mode`` (KEEP_SIZE, PUNCH_HOLE...)."""
        ...

    def lseek(self, fd: int, offset: int, whence: int) -> int:
        """lseek(2); SEEK_DATA/SEEK_HOLE as the host's file system answers them."""
        ...

    def raise_nofile_limit(self) -> int:
        """Raise this process's soft RLIMIT_NOFILE to its hard limit; the new soft limit."""
        ...

    def ftruncate(self, fd: int, length: int) -> None: ...

    def fstat(self, fd: int) -> os.stat_result: ...

    def fstatvfs(self, fd: int) -> os.statvfs_result: ...

    def fchmod(self, fd: int, mode: int) -> None: ...

    def fchown(self, fd: int, uid: int, gid: int) -> None: ...

    def futimens(self, fd: int, atime_ns: int | None, mtime_ns: int | None) -> None:
        """Set times of ``fd``'s file; None leaves a time alone."""
        ...

    def listdir(self, dirfd: int) -> list[tuple[str, HostFileType, int]]:
        """(name, type, inode number) of every entry of directory ``dirfd``
        but ``.``/``..``; types are the entries' own (links not followed)."""
        ...

    # -- one component below a directory descriptor (never following) -----

    def openat(self, dirfd: int, name: str, flags: int, mode: int = 0o600) -> int:
        """Open ``name`` in ``dirfd`` with O_NOFOLLOW (a symlink there: ELOOP)."""
        ...

    def fstatat(self, dirfd: int, name: str) -> os.stat_result:
        """``lstat`` of ``name`` in ``dirfd``."""
        ...

    def mkdirat(self, dirfd: int, name: str, mode: int) -> None: ...

    def unlinkat(self, dirfd: int, name: str, isdir: bool) -> None:
        """Remove ``name``: a directory (rmdir) if ``isdir``, else a non-directory."""
        ...

    def renameat(self, fdirfd: int, fname: str, tdirfd: int, tname: str) -> None: ...

    def linkat(self, fdirfd: int, fname: str, tdirfd: int, tname: str) -> None:
        """Hard-link ``fname`` (itself, not a symlink's target) as ``tname``."""
        ...

    def symlinkat(self, target: str, dirfd: int, name: str) -> None: ...

    def readlinkat(self, dirfd: int, name: str) -> str: ...

    def fchmodat(self, dirfd: int, name: str, mode: int) -> None:
        """chmod ``name`` itself; EOPNOTSUPP for a symbolic link."""
        ...

    def fchownat(self, dirfd: int, name: str, uid: int, gid: int) -> None:
        """chown ``name`` itself (a symlink is changed, not followed)."""
        ...

    def utimensat(self, dirfd: int, name: str, atime_ns: int | None,
                  mtime_ns: int | None) -> None:
        """Set the times of ``name`` itself; None leaves a time alone."""
        ...

    # Extended attributes of an open host file (etfs passes ``user.*`` through).
    # A host without them answers EOPNOTSUPP.

    def fgetxattr(self, fd: int, name: str) -> bytes:
        """The value of ``name``. Errors: ENODATA, EOPNOTSUPP."""
        ...

    def fsetxattr(self, fd: int, name: str, value: bytes, flags: int) -> None:
        """Set ``name`` (XATTR_CREATE/XATTR_REPLACE as Linux). Errors: EEXIST,
        ENODATA, ENOSPC, E2BIG, EOPNOTSUPP."""
        ...

    def flistxattr(self, fd: int) -> list[str]:
        """Every attribute name the host shows this process."""
        ...

    def fremovexattr(self, fd: int, name: str) -> None:
        """Remove ``name``. Errors: ENODATA, EOPNOTSUPP."""
        ...
