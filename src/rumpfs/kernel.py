"""Kernel and Process: the public facades. Boot, wiring, shutdown.

Allowed imports: every lower layer.

A :class:`Kernel` owns one giant lock (``kern.lock``), a hypervisor, the
device switch, the VFS state and its processes; it acts as process 1 (root).
Every os-like method takes the lock for its whole run, then calls the
matching ``sys_*`` of ``vfs.sys_generic`` (descriptors), ``vfs.vfs_syscalls``
(names) or ``vfs.sys_mount``. Several kernels in one Python process share
nothing.
"""

from __future__ import annotations

import operator
import os
import stat
import threading
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import replace
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, AnyStr, Generic, Self, cast

from rumpfs.dev.dkwedge import Partition, partition_name, read_partitions
from rumpfs.dev.mem import MEM_MAJOR, MemDriver
from rumpfs.dev.rumpblk import RumpBlk
from rumpfs.errors import errno, raise_errno, with_filename
from rumpfs.fileio import open_file
from rumpfs.fs.etfs import EtfsRegistry, EtfsType
from rumpfs.fs.etfs.registry import normalize_key
from rumpfs.fs.ext2fs import ext2fs_mount
from rumpfs.fs.msdosfs import msdosfs_mount
from rumpfs.fs.rumpfs import rumpfs_mount
from rumpfs.handles import Barrier, NodeHandles
from rumpfs.hotcalls import FacadeLock as _FacadeLock
from rumpfs.hotcalls import HotCalls
from rumpfs.hotcalls import fspath as _fspath
from rumpfs.hotcalls import fspath_or_fd as _fspath_or_fd
from rumpfs.kern.clock import Clock
from rumpfs.kern.cred import Cred, id_arg
from rumpfs.kern.devsw import CHAR, DevSwitch
from rumpfs.kern.lock import KernelLock
from rumpfs.kern.proc import Proc
from rumpfs.kern.shm import HostShm
from rumpfs.rumpuser import Hypervisor
from rumpfs.rumpuser.posix import PosixHost
from rumpfs.vfs import (
    sys_copy,
    sys_falloc,
    sys_generic,
    sys_mount,
    sys_pipe,
    sys_xattr,
    vfs_syscalls,
)
from rumpfs.vfs.mount import MountArgs, Vfs
from rumpfs.vfs.namei import namei
from rumpfs.vfs.proc import StrOrBytesPath, VProc
from rumpfs.vfs.sysutil import pathstr
from rumpfs.vfs.vnode import VDIR, VLNK, VREG, Vnode, VType, vref, vrele

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer is 3.12+

    from rumpfs.path import RumpPath

__all__ = ["DirEntry", "Kernel", "Process"]


class DirEntry(Generic[AnyStr]):
    """What ``scandir`` yields: like ``os.DirEntry``, over the kernel."""

    __slots__ = ("_dir_fd", "_ino", "_lstat", "_proc", "_stat", "_type", "name", "path")

    def __init__(self, proc: Process, name: AnyStr, path: AnyStr, vtype: VType, ino: int,
                 dir_fd: int | None) -> None:
        self._proc = proc
        self.name: AnyStr = name
        self.path: AnyStr = path
        self._type = vtype
        self._ino = ino
        self._dir_fd = dir_fd
        self._stat: os.stat_result | None = None
        self._lstat: os.stat_result | None = None

    def inode(self) -> int:
        return self._ino

    def is_symlink(self) -> bool:
        return self._type is VLNK

    def _followed_type(self, follow_symlinks: bool) -> VType:
        if self._type is not VLNK or not follow_symlinks:
            return self._type
        try:
            return VType.from_mode(self.stat().st_mode)
        except FileNotFoundError:       # as os.DirEntry: only a dangling link is "no"
            return VLNK

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return self._followed_type(follow_symlinks) is VDIR

    def is_file(self, *, follow_symlinks: bool = True) -> bool:
        return self._followed_type(follow_symlinks) is VREG

    def is_junction(self) -> bool:
        return False

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        follow = follow_symlinks and self._type is VLNK
        if follow:
            if self._stat is None:
                self._stat = self._proc.stat(self._target(), dir_fd=self._dir_fd)
            return self._stat
        if self._lstat is None:
            self._lstat = self._proc.stat(self._target(), dir_fd=self._dir_fd,
                                          follow_symlinks=False)
        return self._lstat

    def _target(self) -> AnyStr:
        return self.name if self._dir_fd is not None else self.path

    def __fspath__(self) -> AnyStr:
        return self.path

    def __repr__(self) -> str:
        return f"<DirEntry {self.name!r}>"


class ScandirIterator(Generic[AnyStr]):
    """The iterator ``scandir`` returns (a snapshot taken under the kernel lock)."""

    def __init__(self, entries: list[DirEntry[AnyStr]]) -> None:
        self._it: Iterator[DirEntry[AnyStr]] = iter(entries)

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> DirEntry[AnyStr]:
        return next(self._it)

    def close(self) -> None:
        self._it = iter(())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Process(HotCalls):
    """A process of a kernel: credentials, cwd, umask and its own descriptors.

    Methods have the names, parameters, results and exceptions of ``os``
    (the hottest ones, open/close/read/write/stat..., live in ``hotcalls``).
    """

    def __init__(self, kernel: Kernel, proc: VProc) -> None:
        super().__init__(proc, kernel._lock)
        self.kernel = kernel
        kernel._facades.add(self)       # shutdown() swaps their lock for ESHUTDOWN

    @property
    def vproc(self) -> VProc:
        """The kernel's record of this process (for frontends' vnode-handle calls)."""
        return self._p

    # -- identity -----------------------------------------------------------

    @property
    def pid(self) -> int:
        """This process's id (the kernel itself is 1)."""
        return self._p.pid

    @property
    def uid(self) -> int:
        """The real and effective user id (``os.getuid``)."""
        return self._p.cred.uid

    @property
    def gid(self) -> int:
        """The real and effective group id (``os.getgid``)."""
        return self._p.cred.gid

    @property
    def groups(self) -> frozenset[int]:
        """The supplementary group ids (``os.getgroups``, as a frozenset)."""
        return self._p.cred.groups

    def umask(self, mask: int) -> int:
        """``os.umask``: set the file-mode creation mask; returns the old one."""
        mask = _c_int(mask)
        with self._lock:
            old, self._p.umask = self._p.umask, mask & 0o777
            return old

    # -- descriptors --------------------------------------------------------

    def fsync(self, fd: int) -> None:
        """``os.fsync`` (an etfs file reaches the host's fsync)."""
        with self._lock:
            sys_generic.sys_fsync(self._p, fd)

    def fdatasync(self, fd: int) -> None:
        """``os.fdatasync``."""
        with self._lock:
            sys_generic.sys_fsync(self._p, fd, True)

    def ftruncate(self, fd: int, length: int) -> None:
        """``os.ftruncate``."""
        with self._lock:
            sys_generic.sys_ftruncate(self._p, fd, length)

    def dup(self, fd: int) -> int:
        """``os.dup``: the lowest free descriptor, sharing the open file and its offset."""
        with self._lock:
            return sys_generic.sys_dup(self._p, fd)

    def fchmod(self, fd: int, mode: int) -> None:
        """``os.fchmod``."""
        with self._lock:
            sys_generic.sys_fchmod(self._p, fd, mode)

    def fchown(self, fd: int, uid: int, gid: int) -> None:
        """``os.fchown``."""
        uid, gid = id_arg(uid, "uid"), id_arg(gid, "gid")
        with self._lock:
            sys_generic.sys_fchown(self._p, fd, uid, gid)

    def fchdir(self, fd: int) -> None:
        """``os.fchdir``."""
        with self._lock:
            vfs_syscalls.sys_chdir(self._p, fd)

    # -- names --------------------------------------------------------------

    def lstat(self, path: StrOrBytesPath, *, dir_fd: int | None = None) -> os.stat_result:
        """``os.lstat``."""
        path = _fspath(path)
        with self._lock:
            return vfs_syscalls.sys_stat(self._p, path, dir_fd, False)

    def access(self, path: StrOrBytesPath, mode: int, *, dir_fd: int | None = None,
               effective_ids: bool = False, follow_symlinks: bool = True) -> bool:
        """``os.access`` with the real ids (``effective_ids`` is accepted: they are equal)."""
        path = _fspath(path)
        with self._lock:
            return vfs_syscalls.sys_access(self._p, path, mode, dir_fd, follow_symlinks)

    def makedirs(self, name: StrOrBytesPath, mode: int = 0o777, exist_ok: bool = False) -> None:
        """``os.makedirs`` over the kernel."""
        path = os.fsdecode(os.fspath(name))
        head, tail = path.rstrip("/").rpartition("/")[::2]
        if head and tail and not self._exists(head):
            try:
                self.makedirs(head, mode, exist_ok=True)
            except FileExistsError:
                pass
        try:
            self.mkdir(path, mode)
        except OSError:
            if not exist_ok or not self._isdir(path):
                raise

    def _exists(self, path: str) -> bool:
        try:
            self.stat(path)
        except OSError:
            return False
        return True

    def _isdir(self, path: str) -> bool:
        try:
            return VType.from_mode(self.stat(path).st_mode) is VDIR
        except OSError:
            return False

    def rmdir(self, path: StrOrBytesPath, *, dir_fd: int | None = None) -> None:
        """``os.rmdir``."""
        path = _fspath(path)
        with self._lock:
            vfs_syscalls.sys_rmdir(self._p, path, dir_fd)

    remove = HotCalls.unlink

    replace = HotCalls.rename

    def link(self, src: StrOrBytesPath | int, dst: StrOrBytesPath, *,
             src_dir_fd: int | None = None, dst_dir_fd: int | None = None,
             follow_symlinks: bool = True) -> None:
        """``os.link`` (as CPython on Linux: follows only with a ``dir_fd``); a
        descriptor as ``src`` is linkat(src, "", AT_EMPTY_PATH), which ``os``
        cannot spell: it names an O_TMPFILE file."""
        if isinstance(src, int):
            dst = _fspath(dst)
            with self._lock:
                vfs_syscalls.sys_link_fd(self._p, src, dst, dst_dir_fd)
            return
        # As CPython does on Linux: plain link(2), which never follows, unless a
        # dir_fd is given, when linkat(AT_SYMLINK_FOLLOW) honours follow_symlinks.
        follow = follow_symlinks and (src_dir_fd is not None or dst_dir_fd is not None)
        s, d = _fspath(src), _fspath(dst)
        with self._lock:
            vfs_syscalls.sys_link(self._p, s, d, src_dir_fd, dst_dir_fd, follow)

    def symlink(self, src: StrOrBytesPath, dst: StrOrBytesPath,
                target_is_directory: bool = False, *, dir_fd: int | None = None) -> None:
        """``os.symlink`` (``target_is_directory`` is ignored, as on Linux)."""
        src, dst = _fspath(src), _fspath(dst)
        with self._lock:
            vfs_syscalls.sys_symlink(self._p, src, dst, dir_fd)

    def readlink(self, path: AnyStr | os.PathLike[AnyStr], *,
                 dir_fd: int | None = None) -> AnyStr:
        """``os.readlink`` (bytes in, bytes out)."""
        path = _fspath(path)
        with self._lock:
            target = vfs_syscalls.sys_readlink(self._p, path, dir_fd)
        return cast(AnyStr, _like(path, target))

    def listdir(self, path: StrOrBytesPath | int | None = None) -> list[Any]:
        """``os.listdir`` (a path, a descriptor, or the cwd; bytes in, bytes out)."""
        path = None if path is None else _fspath_or_fd(path)
        with self._lock:
            names = vfs_syscalls.sys_listdir(self._p, path)
        if isinstance(path, bytes):
            return [os.fsencode(name) for name in names]
        return names

    def scandir(self, path: StrOrBytesPath | int | None = None) -> ScandirIterator[Any]:
        """``os.scandir``: DirEntry objects whose stat()/is_dir() ask this kernel."""
        path = None if path is None else _fspath_or_fd(path)
        with self._lock:
            ents = vfs_syscalls.sys_readdir(self._p, path)
        arg = "." if path is None else path
        if isinstance(arg, int):
            return ScandirIterator([DirEntry(self, n, n, t, i, arg) for n, t, i in ents])
        base = os.fspath(arg)
        if isinstance(base, bytes):
            return ScandirIterator([
                DirEntry(self, os.fsencode(n), os.path.join(base, os.fsencode(n)), t, i, None)
                for n, t, i in ents])
        return ScandirIterator([DirEntry(self, n, os.path.join(base, n), t, i, None)
                                for n, t, i in ents])

    def walk(self, top: str, topdown: bool = True) -> Iterator[tuple[str, list[str], list[str]]]:
        """``os.walk`` over the kernel (no symlink following)."""
        try:
            entries = list(self.scandir(top))
        except OSError:
            return
        dirs = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
        files = [e.name for e in entries if not e.is_dir(follow_symlinks=False)]
        if topdown:
            yield top, dirs, files
        for name in dirs:
            yield from self.walk(os.path.join(top, name), topdown)
        if not topdown:
            yield top, dirs, files

    # -- attributes ---------------------------------------------------------

    def chmod(self, path: StrOrBytesPath | int, mode: int, *, dir_fd: int | None = None,
              follow_symlinks: bool = True) -> None:
        """``os.chmod`` (a path or a descriptor)."""
        path = _fspath_or_fd(path)
        with self._lock:
            vfs_syscalls.sys_chmod(self._p, path, mode, dir_fd, follow_symlinks)

    def chown(self, path: StrOrBytesPath | int, uid: int, gid: int, *,
              dir_fd: int | None = None, follow_symlinks: bool = True) -> None:
        """``os.chown`` (a path or a descriptor)."""
        path = _fspath_or_fd(path)
        uid, gid = id_arg(uid, "uid"), id_arg(gid, "gid")
        with self._lock:
            vfs_syscalls.sys_chown(self._p, path, uid, gid, dir_fd, follow_symlinks)

    def lchown(self, path: StrOrBytesPath, uid: int, gid: int) -> None:
        """``os.lchown``."""
        path = _fspath(path)
        uid, gid = id_arg(uid, "uid"), id_arg(gid, "gid")
        with self._lock:
            vfs_syscalls.sys_chown(self._p, path, uid, gid, None, False)

    def utime(self, path: StrOrBytesPath | int, times: tuple[float, float] | None = None, *,
              ns: tuple[int, int] | None = None, dir_fd: int | None = None,
              follow_symlinks: bool = True) -> None:
        """``os.utime`` (``times`` in seconds or ``ns``; None: now)."""
        path = _fspath_or_fd(path)
        with self._lock:
            vfs_syscalls.sys_utime(self._p, path, times, ns, dir_fd, follow_symlinks)

    def truncate(self, path: StrOrBytesPath | int, length: int) -> None:
        """``os.truncate`` (a path or a descriptor)."""
        path = _fspath_or_fd(path)
        with self._lock:
            vfs_syscalls.sys_truncate(self._p, path, length)

    def mknod(self, path: StrOrBytesPath, mode: int = 0o600, device: int = 0, *,
              dir_fd: int | None = None) -> None:
        """``os.mknod``: device nodes reach the kernel's drivers (rumpblk, mem) when opened."""
        path = _fspath(path)
        with self._lock:
            vfs_syscalls.sys_mknod(self._p, path, mode, device, dir_fd)

    def statvfs(self, path: StrOrBytesPath | int) -> os.statvfs_result:
        """``os.statvfs`` of the file system holding ``path``."""
        path = _fspath_or_fd(path)
        with self._lock:
            return vfs_syscalls.sys_statvfs(self._p, path)

    # -- cwd ----------------------------------------------------------------

    def chdir(self, path: StrOrBytesPath | int) -> None:
        """``os.chdir`` (a path or a descriptor)."""
        path = _fspath_or_fd(path)
        with self._lock:
            vfs_syscalls.sys_chdir(self._p, path)

    def getcwd(self) -> str:
        """``os.getcwd``: this process's cwd inside the kernel."""
        with self._lock:
            return vfs_syscalls.sys_getcwd(self._p)

    def getcwdb(self) -> bytes:
        """``os.getcwdb``."""
        return os.fsencode(self.getcwd())

    # -- extended attributes (vfs.sys_xattr) ----------------------------------

    def getxattr(self, path: StrOrBytesPath | int, attribute: StrOrBytesPath, *,
                 follow_symlinks: bool = True) -> bytes:
        """``os.getxattr``: the value of extended attribute ``attribute``."""
        path = _fspath_or_fd(path)
        with self._lock:
            return sys_xattr.sys_getxattr(self._p, path, attribute, follow_symlinks)

    def setxattr(self, path: StrOrBytesPath | int, attribute: StrOrBytesPath, value: Buffer,
                 flags: int = 0, *, follow_symlinks: bool = True) -> None:
        """``os.setxattr``: set ``attribute`` (flags XATTR_CREATE/XATTR_REPLACE)."""
        data = bytes(value)
        path = _fspath_or_fd(path)
        with self._lock:
            sys_xattr.sys_setxattr(self._p, path, attribute, data, flags, follow_symlinks)

    def listxattr(self, path: StrOrBytesPath | int | None = None, *,
                  follow_symlinks: bool = True) -> list[str]:
        """``os.listxattr``: the attribute names of ``path`` (the cwd if None)."""
        path = None if path is None else _fspath_or_fd(path)
        with self._lock:
            return sys_xattr.sys_listxattr(self._p, path, follow_symlinks)

    def removexattr(self, path: StrOrBytesPath | int, attribute: StrOrBytesPath, *,
                    follow_symlinks: bool = True) -> None:
        """``os.removexattr``: remove extended attribute ``attribute``."""
        path = _fspath_or_fd(path)
        with self._lock:
            sys_xattr.sys_removexattr(self._p, path, attribute, follow_symlinks)

    # -- space, pipes, copies (vfs.sys_falloc, sys_pipe, sys_copy) -------------

    def posix_fallocate(self, fd: int, offset: int, len: int) -> None:
        """``os.posix_fallocate``: make sure ``offset..offset+len`` is allocated."""
        with self._lock:
            sys_falloc.sys_posix_fallocate(self._p, fd, offset, len)

    def fallocate(self, fd: int, mode: int, offset: int, length: int) -> None:
        """Linux's fallocate(2), which ``os`` lacks: ``mode`` is 0 or FALLOC_FL_*
        bits (``rumpfs.vfs.genfs``); rumpfs does what tmpfs does."""
        with self._lock:
            sys_falloc.sys_fallocate(self._p, fd, mode, offset, length)

    def pipe(self) -> tuple[int, int]:
        """``os.pipe``: (read end, write end) of a new pipe."""
        with self._lock:
            return sys_pipe.sys_pipe(self._p)

    def pipe2(self, flags: int, /) -> tuple[int, int]:
        """``os.pipe2``: a pipe with O_NONBLOCK (and O_CLOEXEC, which changes nothing here)."""
        with self._lock:
            return sys_pipe.sys_pipe(self._p, flags)

    def mkfifo(self, path: StrOrBytesPath, mode: int = 0o666, *,
               dir_fd: int | None = None) -> None:
        """``os.mkfifo``: make a FIFO node."""
        path = _fspath(path)
        with self._lock:
            sys_pipe.sys_mkfifo(self._p, path, mode, dir_fd)

    def get_blocking(self, fd: int, /) -> bool:
        """``os.get_blocking``: False if ``fd``'s open file has O_NONBLOCK."""
        with self._lock:
            return sys_pipe.sys_get_blocking(self._p, fd)

    def set_blocking(self, fd: int, blocking: bool, /) -> None:
        """``os.set_blocking``: clear or set O_NONBLOCK on ``fd``'s open file."""
        with self._lock:
            sys_pipe.sys_set_blocking(self._p, fd, blocking)

    def dup2(self, fd: int, fd2: int, inheritable: bool = True) -> int:
        """``os.dup2``: make ``fd2`` refer to ``fd``'s open file."""
        with self._lock:
            return sys_pipe.sys_dup2(self._p, fd, fd2, inheritable)

    def sendfile(self, out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        """``os.sendfile`` between two of this process's descriptors."""
        with self._lock:
            return sys_copy.sys_sendfile(self._p, out_fd, in_fd, offset, count)

    def copy_file_range(self, src: int, dst: int, count: int, offset_src: int | None = None,
                        offset_dst: int | None = None) -> int:
        """``os.copy_file_range`` between two of this process's descriptors."""
        with self._lock:
            return sys_copy.sys_copy_file_range(self._p, src, dst, count, offset_src,
                                                offset_dst)

    def removedirs(self, name: StrOrBytesPath) -> None:
        """``os.removedirs``: rmdir ``name``, then its parents while they are empty."""
        self.rmdir(name)
        head, tail = os.path.split(os.fspath(name))
        if not tail:
            head, tail = os.path.split(head)
        while head and tail:
            try:
                self.rmdir(head)
            except OSError:
                break
            head, tail = os.path.split(head)

    def renames(self, old: StrOrBytesPath, new: StrOrBytesPath) -> None:
        """``os.renames``: rename, making the new parents and pruning the old ones."""
        head, tail = os.path.split(os.fsdecode(os.fspath(new)))
        if head and tail and not self._exists(head):
            self.makedirs(head)
        self.rename(old, new)
        head, tail = os.path.split(os.fsdecode(os.fspath(old)))
        if head and tail:
            try:
                self.removedirs(head)
            except OSError:
                pass

    # -- files and paths ----------------------------------------------------

    def open_file(self, path: StrOrBytesPath, mode: str = "r", buffering: int = -1,
                  encoding: str | None = None, errors: str | None = None,
                  newline: str | None = None) -> IO[Any]:
        """Like ``builtins.open``, in the kernel's namespace."""
        return open_file(self, path, mode, buffering, encoding, errors, newline)

    def path(self, path: str = "/") -> RumpPath:
        """A ``pathlib``-style path over this process's view of the kernel."""
        from rumpfs.path import RumpPath
        return RumpPath(self, path)

    def __repr__(self) -> str:
        c = self._p.cred
        return f"<{type(self).__name__} pid={self._p.pid} uid={c.uid} gid={c.gid}>"


def _c_int(value: Any) -> int:
    """An int argument as ``os`` converts one to a C int (``os.umask``'s mask)."""
    v = operator.index(value)
    if v > _C_INT_MAX:
        raise OverflowError("Python int too large to convert to C int")
    if v < -_C_INT_MAX - 1:
        raise OverflowError("signed integer is less than minimum")
    return v


def _process_id(value: object, what: str) -> int:
    """A uid or gid for a new process: as ``os.chown`` converts it, but "no id"
    (-1) is no id a process can have."""
    v = id_arg(value, what)
    if v == -1:
        raise ValueError(f"{what} {value!r} is not an id a process can have")
    return v


class _ShutdownLock:
    """Stands in for the kernel lock of every facade once the kernel is shut
    down: whatever is called then fails with one clear error, ESHUTDOWN."""

    def __enter__(self) -> None:
        raise_errno(errno.ESHUTDOWN)

    def __exit__(self, *exc: object) -> None:
        return None

    def acquire(self) -> bool:
        raise_errno(errno.ESHUTDOWN)

    def release(self) -> None:
        return None


_SHUTDOWN_LOCK = _ShutdownLock()


class _WaitingLock:
    """The kernel lock as the facades take it while a FUSE server pushes
    invalidations (``NodeHandles.subscribe`` with a barrier): ``release``
    also waits, after the lock is free, until every notification queued
    before it is delivered -- so an in-process call returns only once the
    host has dropped what the call made stale. Never waits under the lock."""

    __slots__ = ("_one", "_release", "acquire", "barriers")

    def __init__(self, lock: threading.Lock, barriers: tuple[Barrier, ...]) -> None:
        self.acquire = lock.acquire
        self._release = lock.release
        self.barriers = barriers
        self._one = barriers[0] if len(barriers) == 1 else None   # the common case

    def release(self) -> None:
        b = self._one
        if b is not None:
            t = b.queued                        # still under the lock: this call's share
            self._release()
            if b.done < t:
                b.wait(t)
            return
        bs = self.barriers
        tickets = [b.queued for b in bs]
        self._release()
        for b, t in zip(bs, tickets, strict=True):
            if b.done < t:
                b.wait(t)

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
_C_INT_MAX = (1 << 31) - 1


def _like(template: object, value: str) -> Any:
    """``value`` as bytes when the caller passed bytes (as ``os`` answers)."""
    if isinstance(template, bytes) or (
        isinstance(template, os.PathLike) and isinstance(os.fspath(template), bytes)
    ):
        return os.fsencode(value)
    return value


class Kernel(Process):
    """A rump kernel: a rumpfs root, the mount table and processes. Acts as pid 1."""

    def __init__(self, *, hypervisor: Hypervisor | None = None,
                 protected_hardlinks: bool = True) -> None:
        """``protected_hardlinks``: Linux's ``fs.protected_hardlinks`` policy,
        on by default as the distributions set it: an unprivileged process may
        hard-link only files it owns, or regular non-set-id files it may read
        and write (EPERM otherwise). False allows any link, as the sysctl's 0.
        The kernel follows no host sysctl: its policies are its own."""
        if not isinstance(protected_hardlinks, bool):
            raise TypeError("protected_hardlinks must be a bool")
        self._kernel_lock = KernelLock()
        self._lock: _FacadeLock = self._kernel_lock
        self._facades: weakref.WeakSet[Process] = weakref.WeakSet()
        self._barriers: tuple[Barrier, ...] = ()
        self.hypervisor: Hypervisor = hypervisor if hypervisor is not None else PosixHost()
        self.clock = Clock(self.hypervisor)
        self.devsw = DevSwitch()
        self.devsw.register(CHAR, MEM_MAJOR, MemDriver())
        self.vfs: Vfs = Vfs(self.clock, self.devsw, self._kernel_lock)
        self.vfs.protected_hardlinks = protected_hardlinks
        shm = self.vfs.shm = HostShm(self.hypervisor)  # memfds: FUSE passthrough of rumpfs files
        self.vfs.register_fstype("rumpfs", rumpfs_mount)
        self.vfs.register_fstype("ext2", ext2fs_mount)
        self.vfs.register_fstype("msdos", msdosfs_mount)
        root = self.vfs.mount_root("rumpfs")
        self._procs: dict[int, VProc] = {}
        self._next_pid = 1
        self._handles: NodeHandles | None = None
        self._shutdown_hooks: list[Any] = []
        self.running = True
        self.rumpblk = RumpBlk(self.hypervisor)
        self.rumpblk.attach(self.devsw)
        self.add_shutdown_hook(self.rumpblk.close_all)
        self.etfs = EtfsRegistry(self.vfs, self.hypervisor, self.rumpblk)
        self.add_shutdown_hook(self.etfs.shutdown)
        self.add_shutdown_hook(shm.close_all)
        self._disks: dict[str, list[str]] = {}     # attach_disk key -> its device keys
        super().__init__(self, self._new_proc(Cred(0, 0), root))

    def _new_proc(self, cred: Cred, root: Vnode, umask: int = 0o022) -> VProc:
        proc: VProc = Proc(self.vfs, self._next_pid, cred, vref(root), vref(root), umask)
        self._procs[proc.pid] = proc
        self._next_pid += 1
        return proc

    def process(self, uid: int = 0, gid: int = 0, groups: Iterable[int] = (), *,
                umask: int = 0o022) -> Process:
        """A new process with its own descriptors, cwd "/", umask and credentials.

        Ids are converted as ``os.chown`` converts them (TypeError,
        OverflowError); -1, "no id", is a ValueError here."""
        cred = Cred(_process_id(uid, "uid"), _process_id(gid, "gid"),
                    frozenset(_process_id(g, "gid") for g in groups))
        mask = _c_int(umask) & 0o777
        with self._lock:
            root = self.vfs.rootvnode
            assert root is not None
            proc = self._new_proc(cred, root, mask)
        return Process(self, proc)

    def exit_process(self, process: Process) -> None:
        """End ``process``: close its descriptors, release its cwd. TypeError
        for anything but a process of this kernel; the kernel (pid 1) cannot exit."""
        if not isinstance(process, Process) or process.kernel is not self:
            raise TypeError(f"exit_process() takes a Process of this kernel, "
                            f"not {type(process).__name__}")
        if process is self:
            raise ValueError("the kernel's own process (pid 1) cannot exit")
        with self._lock:
            self._exit(process._p)

    def _exit(self, proc: VProc) -> None:
        # A Process used after its exit finds no descriptors and stands at
        # the kernel's root again (whose references never block an unmount).
        for fd, _ in proc.fds.items():
            sys_generic.sys_close(proc, fd)
        root = self.vfs.rootvnode
        assert root is not None
        old_cwd, old_root = proc.cwd, proc.root
        proc.cwd, proc.root = vref(root), vref(root)
        vrele(old_cwd)
        vrele(old_root)
        self._procs.pop(proc.pid, None)

    # -- mounts -------------------------------------------------------------

    def mount(self, fstype: str, path: StrOrBytesPath, read_only: bool = False, *,
              device: StrOrBytesPath | None = None,
              options: dict[str, object] | None = None) -> None:
        """Mount a fresh ``fstype`` instance on directory ``path`` (mount(2)).

        File-system types: ``rumpfs`` (in memory, as the root; no device), and
        on ``device``, a block-device node of this kernel (docs/blockdev.md):
        ``ext2`` (ext2/3/4 images) and ``msdos`` (FAT12/16/32). ENODEV: unknown type; ENOTBLK: not
        a block device; EBUSY: device mounted or open for writing; EACCES:
        read-write on a read-only device. ``options={"bufcache": BYTES}`` sets
        the buffer cache's budget (one cache per kernel). etfs mappings are
        made with ``etfs_register``, not here.
        """
        path = _fspath(path)
        device = None if device is None else _fspath(device)
        with self._lock:
            self.check_running()
            sys_mount.sys_mount(self._p, fstype, path,
                                MountArgs(read_only=read_only, options=options), device)

    def sync(self) -> None:
        """Write every mount's dirty state to its device and fsync it
        (sync(2)); the first error is raised after every mount was tried."""
        with self._lock:
            sys_mount.sys_sync(self._p)

    def remount(self, path: StrOrBytesPath, read_only: bool) -> None:
        """Make the mount at ``path`` (``/`` included) read-only or read-write again;
        EBUSY when going read-only while a file there is open for writing."""
        path = _fspath(path)
        with self._lock:
            sys_mount.sys_remount(self._p, path, read_only)

    def unmount(self, path: StrOrBytesPath) -> None:
        """Unmount the file system mounted at ``path``; EBUSY while in use."""
        path = _fspath(path)
        with self._lock:
            sys_mount.sys_unmount(self._p, path)

    # -- etfs ---------------------------------------------------------------

    def etfs_register(self, key: StrOrBytesPath, hostpath: StrOrBytesPath,
                      ftype: EtfsType = EtfsType.REG, *, begin: int = 0,
                      size: int | None = None, read_only: bool = False) -> None:
        """Map host file or directory ``hostpath`` at absolute path ``key`` (docs/etfs.md).

        ``read_only=True``: every change through the mapping fails with EROFS,
        and a BLK/CHR key's device refuses writers (EACCES, as a
        write-protected disk).
        """
        skey, shost = os.fsdecode(os.fspath(key)), os.fsdecode(os.fspath(hostpath))
        os.fsencode(skey)           # a lone surrogate: UnicodeEncodeError, as os raises
        with self._lock:
            self.check_running()
            try:
                self.etfs.register(self._p, skey, shost, ftype, begin, size, read_only)
            except OSError as e:
                raise with_filename(e, key) from None

    def etfs_remove(self, key: StrOrBytesPath) -> None:
        """Undo the registration at ``key``; its open descriptors fail with EIO."""
        skey = os.fsdecode(os.fspath(key))
        with self._lock:
            try:
                self.etfs.remove(skey)
            except OSError as e:
                raise with_filename(e, key) from None

    # -- disks ----------------------------------------------------------------

    def attach_disk(self, key: StrOrBytesPath, hostpath: StrOrBytesPath, *,
                    read_only: bool = False) -> list[Partition]:
        """Register host disk image ``hostpath`` as block device ``key`` and each
        partition of its MBR or GPT as another (``/dev/rumpdisk0`` ->
        ``/dev/rumpdisk0p1``..., ``/dev/sda`` -> ``/dev/sda1``; MBR logical
        partitions from 5, GPT by entry number). Returns the partitions
        (``path`` set); [] when the image has no table. A bad table is
        EUCLEAN with a message, and nothing stays registered."""
        skey = os.fsdecode(os.fspath(key))
        with self._lock:
            self.check_running()
            try:
                shost = os.fsdecode(os.fspath(hostpath))
                # A disk is whole sectors: a trailing partial one is ignored, as Linux's loop does.
                hst = self.hypervisor.stat(shost)
                whole = hst.st_size // 512 * 512 if stat.S_ISREG(hst.st_mode) else None
                m = self.etfs.register(self._p, skey, shost, EtfsType.BLK, 0, whole, read_only)
            except OSError as e:
                raise with_filename(e, key) from None
            done = [skey]
            try:
                drv, minor = self.rumpblk.block, m.minor
                def read(offset: int, size: int) -> bytes:
                    data = drv.d_read(minor, size, offset)
                    if len(data) != size:
                        raise_errno(errno.EIO)
                    return data
                size = drv.d_size(minor)
                parts = read_partitions(read, size)
                out = []
                extents = {m.rdev: (m.rdev, 0, size)}
                for part in parts:
                    path = partition_name(skey, part.index)
                    pm = self.etfs.register(self._p, path, m.hostpath, EtfsType.BLK,
                                            part.start, part.size, read_only)
                    done.append(path)
                    out.append(replace(part, path=path))
                    extents[pm.rdev] = (m.rdev, part.start, part.start + part.size)
            except OSError as e:
                for path in reversed(done):
                    self.etfs.remove(path)
                if e.filename is None:       # keep dkwedge's message
                    raise OSError(e.errno, e.strerror, key) from None
                raise
            self._disks[skey] = done
            self.vfs.blk_extents.update(extents)
            return out

    def detach_disk(self, key: StrOrBytesPath) -> None:
        """Undo :meth:`attach_disk`: EBUSY while any of its devices is mounted."""
        skey = os.fsdecode(os.fspath(key))
        with self._lock:
            paths = self._disks.get(skey)
            if paths is None:
                raise_errno(errno.ENOENT, key)
            rdevs = [self.etfs.mappings[normalize_key(path)].rdev for path in paths]
            if any(rdev in self.vfs.blk_mounted for rdev in rdevs):
                raise_errno(errno.EBUSY, key)
            for path in reversed(paths):
                self.etfs.remove(path)
            for rdev in rdevs:
                self.vfs.blk_extents.pop(rdev, None)
            del self._disks[skey]

    # -- frontends ----------------------------------------------------------

    def node_handles(self, root: StrOrBytesPath | None = None) -> NodeHandles:
        """The narrow vnode-handle API the FUSE frontend drives (see ``handles``);
        ``root``: a directory to serve instead of "/" (a mounted image), fixed
        by the first call (EBUSY if a later one names another)."""
        with self._lock:
            vp = None
            if root is not None:
                vp = namei(self._p, pathstr(root), self._p.cwd, True)
                if vp.type is not VDIR:
                    raise_errno(errno.ENOTDIR, root)
            if self._handles is None:
                self._handles = NodeHandles(self, vp)
            elif vp is not None and self._handles._root is not vp:
                raise_errno(errno.EBUSY, root)
            return self._handles

    def add_shutdown_hook(self, hook: Any) -> None:
        """Call ``hook()`` under the kernel lock at shutdown (drivers, etfs)."""
        self._shutdown_hooks.append(hook)

    # -- lifetime -----------------------------------------------------------

    def shutdown(self) -> None:
        """Close every descriptor of every process and release all host resources.

        Every step runs even when one fails (every hook, every device); the
        first error is raised at the end, later ones noted on it. Afterwards
        every call of this kernel or its processes raises ESHUTDOWN; a second
        ``shutdown()`` does nothing."""
        errors: list[Exception] = []
        with self._kernel_lock:
            if not self.running:
                return
            self.running = False
            for facade in list(self._facades):
                facade._lock = _SHUTDOWN_LOCK
            for pipe in list(self.vfs.fifos.values()):
                pipe.shutdown()             # FIFO opens still waiting for a partner
            for proc in list(self._procs.values()):
                for fd, _ in proc.fds.items():
                    try:
                        sys_generic.sys_close(proc, fd)
                    except OSError:
                        pass            # a failing close still frees the descriptor
                    except Exception as e:
                        errors.append(e)
            # Disk file systems write their last state before the drivers go.
            try:
                err = self.vfs.shutdown_devices()
                if err is not None:
                    errors.append(err)  # a write that failed is never dropped silently
            except Exception as e:
                errors.append(e)
            for hook in reversed(self._shutdown_hooks):
                try:
                    hook()
                except Exception as e:
                    errors.append(e)
            self._shutdown_hooks.clear()
        if errors:
            first = errors[0]
            for other in errors[1:]:
                first.add_note(f"shutdown: also {other!r}")
            raise first

    def check_running(self) -> None:
        """ESHUTDOWN (an OSError) if the kernel has been shut down."""
        if not self.running:
            raise_errno(errno.ESHUTDOWN)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.shutdown()

    def _attach_barrier(self, barrier: Barrier) -> None:
        """From now on in-process calls wait on ``barrier`` after releasing the
        lock (``NodeHandles.subscribe``)."""
        with self._kernel_lock:
            self._set_barriers((*self._barriers, barrier))

    def _detach_barrier(self, barrier: Barrier) -> None:
        with self._kernel_lock:
            self._set_barriers(tuple(b for b in self._barriers if b is not barrier))

    def _set_barriers(self, barriers: tuple[Barrier, ...]) -> None:
        # Under the kernel lock. The facades' lock is swapped, not wrapped, so a
        # kernel nobody serves keeps the bare C lock on its hot path.
        self._barriers = barriers
        if not self.running:
            return
        lock: _FacadeLock = (_WaitingLock(self._kernel_lock, barriers) if barriers
                             else self._kernel_lock)
        for facade in list(self._facades):
            if facade._lock is not _SHUTDOWN_LOCK:
                facade._lock = lock

    @property
    def lock(self) -> threading.Lock:
        """The kernel lock (for frontends that batch several calls)."""
        return self._kernel_lock

