"""The hottest os-like calls of a :class:`~rumpfs.kernel.Process`, in a base
class of their own so that the compiled variant compiles them (see
``rumpfs._build``; ``kernel.py`` as a whole stays interpreted).

Allowed imports: every lower layer (as ``kernel.py``).

Each method takes the kernel lock for its whole run and calls the matching
``sys_*``: ``lock.acquire()``/``release()`` in ``try``/``finally``, not
``with``, which in CPython 3.11 allocates a bound ``__enter__``/``__exit__``
and a tuple per call (bench/README.md). A path argument is converted with
``os.fspath`` before the lock is taken: a ``__fspath__`` may call back into
the same kernel.

Locking: ``_lock`` is the kernel lock, or after ``Kernel.shutdown()`` a
stand-in whose ``acquire`` raises ESHUTDOWN.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from rumpfs.vfs import sys_generic, vfs_syscalls
from rumpfs.vfs.proc import StrOrBytesPath, VProc

try:    # mypyc's class options (see rumpfs._build); a no-op when interpreted
    from mypy_extensions import mypyc_attr
except ImportError:     # the pure-Python package needs no mypy_extensions
    def mypyc_attr(*attrs: str, **kwattrs: object) -> Any:  # type: ignore[misc]
        return lambda cls: cls

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer is 3.12+

__all__ = ["FacadeLock", "HotCalls", "fspath", "fspath_or_fd"]


def fspath(path: Any) -> Any:
    """A path argument as ``os`` reads it (``os.fspath``), before the kernel lock
    is taken: a ``__fspath__`` may call back into the same kernel."""
    return path if type(path) is str else os.fspath(path)


def fspath_or_fd(path: Any) -> Any:
    """:func:`fspath` for arguments that may also be a descriptor."""
    if type(path) is str or isinstance(path, int):
        return path
    return os.fspath(path)


class FacadeLock(Protocol):
    """What a facade's ``_lock`` offers: the kernel lock, or the shutdown stand-in.
    The hottest calls use acquire/release, every other one ``with``."""

    def __enter__(self) -> Any: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Any: ...

    def acquire(self) -> bool: ...

    def release(self) -> None: ...


@mypyc_attr(allow_interpreted_subclasses=True)     # Process, Kernel
class HotCalls:
    """The hot half of :class:`~rumpfs.kernel.Process` (see the module docstring)."""

    _p: VProc
    _lock: FacadeLock

    def __init__(self, proc: VProc, lock: FacadeLock) -> None:
        self._p = proc
        self._lock = lock

    def open(self, path: StrOrBytesPath, flags: int, mode: int = 0o777, *,
             dir_fd: int | None = None) -> int:
        """``os.open``: a descriptor in this process's table (``dir_fd`` supported)."""
        if type(path) is not str:      # _fspath, called only when needed
            path = fspath(path)
        lock = self._lock
        lock.acquire()
        try:
            return vfs_syscalls.sys_open(self._p, path, flags, mode, dir_fd)
        finally:
            lock.release()

    def close(self, fd: int) -> None:
        """``os.close``."""
        lock = self._lock
        lock.acquire()
        try:
            sys_generic.sys_close(self._p, fd)
        finally:
            lock.release()

    def read(self, fd: int, n: int) -> bytes:
        """``os.read``: at most ``n`` bytes from the file offset."""
        # acquire/release, not ``with``: no bound __enter__/__exit__ per call
        # (the hottest calls; see bench/README.md)
        lock = self._lock
        lock.acquire()
        try:
            return sys_generic.sys_read(self._p, fd, n)
        finally:
            lock.release()

    def write(self, fd: int, data: Buffer) -> int:
        """``os.write``: returns the count written (O_APPEND appends)."""
        lock = self._lock
        lock.acquire()
        try:
            return sys_generic.sys_write(self._p, fd, data)
        finally:
            lock.release()

    def pread(self, fd: int, n: int, offset: int) -> bytes:
        """``os.pread``: at most ``n`` bytes at ``offset``; the file offset stays."""
        lock = self._lock
        lock.acquire()
        try:
            return sys_generic.sys_pread(self._p, fd, n, offset)
        finally:
            lock.release()

    def pwrite(self, fd: int, data: Buffer, offset: int) -> int:
        """``os.pwrite``: write at ``offset``; the file offset stays."""
        lock = self._lock
        lock.acquire()
        try:
            return sys_generic.sys_pwrite(self._p, fd, data, offset)
        finally:
            lock.release()

    def lseek(self, fd: int, pos: int, how: int) -> int:
        """``os.lseek``; on a directory only SEEK_SET and SEEK_CUR (as Linux's tmpfs)."""
        lock = self._lock
        lock.acquire()
        try:
            return sys_generic.sys_lseek(self._p, fd, pos, how)
        finally:
            lock.release()

    def fstat(self, fd: int) -> os.stat_result:
        """``os.fstat``."""
        lock = self._lock
        lock.acquire()
        try:
            return sys_generic.sys_fstat(self._p, fd)
        finally:
            lock.release()

    def stat(self, path: StrOrBytesPath | int, *, dir_fd: int | None = None,
             follow_symlinks: bool = True) -> os.stat_result:
        """``os.stat`` (a path, or a descriptor; ``dir_fd``, ``follow_symlinks``)."""
        if type(path) is not str:      # _fspath_or_fd, called only when needed
            path = fspath_or_fd(path)
        lock = self._lock
        lock.acquire()
        try:
            return vfs_syscalls.sys_stat(self._p, path, dir_fd, follow_symlinks)
        finally:
            lock.release()

    def mkdir(self, path: StrOrBytesPath, mode: int = 0o777, *,
              dir_fd: int | None = None) -> None:
        """``os.mkdir`` (mode masked by the umask)."""
        path = fspath(path)
        lock = self._lock
        lock.acquire()
        try:
            vfs_syscalls.sys_mkdir(self._p, path, mode, dir_fd)
        finally:
            lock.release()

    def unlink(self, path: StrOrBytesPath, *, dir_fd: int | None = None) -> None:
        """``os.unlink`` (also ``remove``)."""
        path = fspath(path)
        lock = self._lock
        lock.acquire()
        try:
            vfs_syscalls.sys_unlink(self._p, path, dir_fd)
        finally:
            lock.release()

    def rename(self, src: StrOrBytesPath, dst: StrOrBytesPath, *,
               src_dir_fd: int | None = None, dst_dir_fd: int | None = None) -> None:
        """``os.rename`` (also ``replace``: Linux's rename(2) replaces)."""
        src, dst = fspath(src), fspath(dst)
        lock = self._lock
        lock.acquire()
        try:
            vfs_syscalls.sys_rename(self._p, src, dst, src_dir_fd, dst_dir_fd)
        finally:
            lock.release()
