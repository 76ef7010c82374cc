"""The real host: POSIX calls through the ``os`` module.

Every call that names something below a directory descriptor passes one
checked component with ``dir_fd`` and never follows a symbolic link
(``O_NOFOLLOW``, ``follow_symlinks=False``), so a mapped directory's
descriptor is a jail. Errors leave as ``OSError(errno)`` without a filename.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import resource
import time
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from rumpfs.errors import errno, oserror, raise_errno
from rumpfs.rumpuser import HostFileType, check_component

__all__ = ["PosixHost"]

P = ParamSpec("P")
R = TypeVar("R")

_CLOEXEC = os.O_CLOEXEC
# fallocate(2) with a mode (os.posix_fallocate has none): libc's wrapper.
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_fallocate = _libc.fallocate
_fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_fallocate.restype = ctypes.c_int
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def _errno_only(fn: Callable[P, R]) -> Callable[P, R]:
    """Re-raise host errors as OSError(errno) without the host's file names."""

    @wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except OSError as e:
            raise oserror(e.errno or errno.EIO) from None
        except (OverflowError, ValueError):
            raise oserror(errno.EINVAL) from None

    return call


class PosixHost:
    """Hypervisor over the running host."""

    clock_realtime_ns = staticmethod(time.time_ns)

    def clock_utc_offset(self) -> int:
        return time.localtime().tm_gmtoff

    # -- the operator's host paths ------------------------------------------

    @_errno_only
    def getfileinfo(self, path: str) -> tuple[int, HostFileType]:
        s = os.stat(path)
        ft = HostFileType.from_mode(s.st_mode)
        size = s.st_size
        if ft is HostFileType.BLK:
            fd = os.open(path, os.O_RDONLY | _CLOEXEC)
            try:
                size = os.lseek(fd, 0, os.SEEK_END)
            finally:
                os.close(fd)
        return size, ft

    @_errno_only
    def stat(self, path: str) -> os.stat_result:
        return os.stat(path)

    @_errno_only
    def open(self, path: str, flags: int) -> int:
        return os.open(path, flags | _CLOEXEC)

    # -- descriptors --------------------------------------------------------

    @_errno_only
    def close(self, fd: int) -> None:
        os.close(fd)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        try:
            return os.pread(fd, size, offset)
        except OSError as e:
            raise oserror(e.errno or errno.EIO) from None
        except OverflowError:
            raise oserror(errno.EINVAL) from None

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        try:
            return os.pwrite(fd, data, offset)
        except OSError as e:
            raise oserror(e.errno or errno.EIO) from None
        except OverflowError:
            raise oserror(errno.EFBIG) from None

    @_errno_only
    def fsync(self, fd: int, datasync: bool = False) -> None:
        if datasync:
            os.fdatasync(fd)
        else:
            os.fsync(fd)

    @_errno_only
    def memfd_create(self, name: str) -> int:
        fd = os.memfd_create(name, os.MFD_CLOEXEC)
        try:        # the kernel's own reads leave atime to the host's (passthrough);
            # a new memfd has no other status flag F_SETFL sets: no F_GETFL first
            fcntl.fcntl(fd, fcntl.F_SETFL, os.O_NOATIME)
        except OSError:
            pass
        return fd

    def fallocate(self, fd: int, mode: int, offset: int, length: int) -> None:
        if _fallocate(fd, mode, ctypes.c_int64(offset), ctypes.c_int64(length)) != 0:
            raise oserror(ctypes.get_errno() or errno.EIO)

    @_errno_only
    def lseek(self, fd: int, offset: int, whence: int) -> int:
        return os.lseek(fd, offset, whence)

    def raise_nofile_limit(self) -> int:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and soft != hard:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
                soft = hard
            except (OSError, ValueError):
                pass
        return soft if soft != resource.RLIM_INFINITY else 1 << 20

    @_errno_only
    def ftruncate(self, fd: int, length: int) -> None:
        os.ftruncate(fd, length)

    @_errno_only
    def fstat(self, fd: int) -> os.stat_result:
        return os.fstat(fd)

    @_errno_only
    def fstatvfs(self, fd: int) -> os.statvfs_result:
        return os.fstatvfs(fd)

    @_errno_only
    def fchmod(self, fd: int, mode: int) -> None:
        os.fchmod(fd, mode)

    @_errno_only
    def fchown(self, fd: int, uid: int, gid: int) -> None:
        os.fchown(fd, uid, gid)

    @_errno_only
    def futimens(self, fd: int, atime_ns: int | None, mtime_ns: int | None) -> None:
        if atime_ns is None or mtime_ns is None:
            cur = os.fstat(fd)
            atime_ns = cur.st_atime_ns if atime_ns is None else atime_ns
            mtime_ns = cur.st_mtime_ns if mtime_ns is None else mtime_ns
        os.utime(fd, ns=(atime_ns, mtime_ns))

    @_errno_only
    def listdir(self, dirfd: int) -> list[tuple[str, HostFileType, int]]:
        out: list[tuple[str, HostFileType, int]] = []
        # scandir(fd) reads a duplicate of dirfd; types come from d_type or,
        # failing that, from fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW).
        with os.scandir(dirfd) as it:
            for ent in it:
                if ent.is_symlink():
                    ft = HostFileType.LNK
                elif ent.is_dir(follow_symlinks=False):
                    ft = HostFileType.DIR
                elif ent.is_file(follow_symlinks=False):
                    ft = HostFileType.REG
                else:
                    ft = HostFileType.from_mode(ent.stat(follow_symlinks=False).st_mode)
                out.append((ent.name, ft, ent.inode()))
        return out

    # -- one component below a directory descriptor --------------------------

    @_errno_only
    def openat(self, dirfd: int, name: str, flags: int, mode: int = 0o600) -> int:
        check_component(name)
        return os.open(name, flags | _NOFOLLOW, mode, dir_fd=dirfd)

    @_errno_only
    def fstatat(self, dirfd: int, name: str) -> os.stat_result:
        check_component(name)
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False)

    @_errno_only
    def mkdirat(self, dirfd: int, name: str, mode: int) -> None:
        check_component(name)
        os.mkdir(name, mode, dir_fd=dirfd)

    @_errno_only
    def unlinkat(self, dirfd: int, name: str, isdir: bool) -> None:
        check_component(name)
        if isdir:
            os.rmdir(name, dir_fd=dirfd)
        else:
            os.unlink(name, dir_fd=dirfd)

    @_errno_only
    def renameat(self, fdirfd: int, fname: str, tdirfd: int, tname: str) -> None:
        check_component(fname)
        check_component(tname)
        os.rename(fname, tname, src_dir_fd=fdirfd, dst_dir_fd=tdirfd)

    @_errno_only
    def linkat(self, fdirfd: int, fname: str, tdirfd: int, tname: str) -> None:
        check_component(fname)
        check_component(tname)
        os.link(fname, tname, src_dir_fd=fdirfd, dst_dir_fd=tdirfd, follow_symlinks=False)

    @_errno_only
    def symlinkat(self, target: str, dirfd: int, name: str) -> None:
        check_component(name)
        os.symlink(target, name, dir_fd=dirfd)

    @_errno_only
    def readlinkat(self, dirfd: int, name: str) -> str:
        check_component(name)
        return os.readlink(name, dir_fd=dirfd)

    def fchmodat(self, dirfd: int, name: str, mode: int) -> None:
        check_component(name)
        try:
            # fchmodat(AT_SYMLINK_NOFOLLOW): CPython raises ValueError when
            # the host refuses it, which it does exactly for symbolic links.
            os.chmod(name, mode, dir_fd=dirfd, follow_symlinks=False)
        except OSError as e:
            raise oserror(e.errno or errno.EIO) from None
        except (ValueError, NotImplementedError):
            raise_errno(errno.EOPNOTSUPP)

    @_errno_only
    def fchownat(self, dirfd: int, name: str, uid: int, gid: int) -> None:
        check_component(name)
        os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)

    @_errno_only
    def utimensat(self, dirfd: int, name: str, atime_ns: int | None,
                  mtime_ns: int | None) -> None:
        check_component(name)
        if atime_ns is None or mtime_ns is None:
            cur = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            atime_ns = cur.st_atime_ns if atime_ns is None else atime_ns
            mtime_ns = cur.st_mtime_ns if mtime_ns is None else mtime_ns
        os.utime(name, ns=(atime_ns, mtime_ns), dir_fd=dirfd, follow_symlinks=False)

    @_errno_only
    def fgetxattr(self, fd: int, name: str) -> bytes:
        return os.getxattr(fd, name)

    @_errno_only
    def fsetxattr(self, fd: int, name: str, value: bytes, flags: int) -> None:
        os.setxattr(fd, name, value, flags)

    @_errno_only
    def flistxattr(self, fd: int) -> list[str]:
        return os.listxattr(fd)

    @_errno_only
    def fremovexattr(self, fd: int, name: str) -> None:
        os.removexattr(fd, name)
