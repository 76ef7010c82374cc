"""What every system-call module shares: argument conversion, the start
directory of a relative path, descriptor lookup, time and change notices.

Allowed imports: ``rumpfs.kern``, ``rumpfs.errors``.

The system calls are split as NetBSD splits them: descriptor I/O in
``sys_generic`` (``sys_generic.c``), name operations in ``vfs_syscalls``
(``vfs_syscalls.c``), mounts in ``sys_mount``, and the vnode-level work both
need (open, truncate, setattr rules) in ``vfs_vnops`` (``vfs_vnops.c``). A
new family of calls (extended attributes, pipes) gets its own ``sys_*``
module built from these helpers, and a method in ``kernel.py``.

Errors raised below the system calls carry no filename; each ``sys_*``
attaches the caller's own argument where ``os`` would, through
``errors.with_filename``.

Locking: the caller (``kernel.py``) holds the kernel lock around every call.
"""

from __future__ import annotations

import os

from rumpfs.errors import errno, raise_errno
from rumpfs.vfs.file import File
from rumpfs.vfs.proc import DirFd, StrOrBytesPath, VProc
from rumpfs.vfs.vnode import PATH_MAX, Vnode

__all__ = [
    "changed", "changed_data", "changed_entry", "getfile", "getvnode", "now", "pathstr",
    "startdir",
]


def pathstr(path: StrOrBytesPath) -> str:
    """The kernel's form of a path argument: str, NUL-free, at most PATH_MAX bytes.
    Empty -> ENOENT; NUL -> ValueError; a str that has no bytes form (a lone
    surrogate) -> UnicodeEncodeError: as ``os`` raises, so that no name the
    host could not spell ever enters the namespace."""
    if isinstance(path, bytes):
        s = os.fsdecode(path)           # always encodable again (surrogateescape)
    else:
        s = path if isinstance(path, str) else os.fsdecode(os.fspath(path))
        if not s.isascii():
            os.fsencode(s)              # a lone surrogate: UnicodeEncodeError, as os raises
    if not s:
        raise_errno(errno.ENOENT)
    if "\0" in s:
        raise ValueError("embedded null byte")
    if len(s) >= PATH_MAX // 4 and len(os.fsencode(s)) >= PATH_MAX:
        raise_errno(errno.ENAMETOOLONG)
    return s


def startdir(p: VProc, path: str, dir_fd: DirFd) -> Vnode:
    """Where a relative ``path`` starts: the cwd, ``dir_fd``'s directory, or a
    directory vnode given directly (the vnode-handle API's *at calls)."""
    if dir_fd is None or path[0] == "/":
        return p.cwd
    if isinstance(dir_fd, Vnode):
        return dir_fd
    return p.fds.get(dir_fd).vp


def getfile(p: VProc, fd: int) -> File:
    """The open file behind descriptor ``fd`` (EBADF); NetBSD's fd_getfile."""
    return p.fds.get(fd)


def getvnode(p: VProc, fd: int) -> Vnode:
    """The vnode behind descriptor ``fd`` (EBADF); NetBSD's fd_getvnode."""
    return p.fds.get(fd).vp


def now(p: VProc) -> int:
    """The kernel clock, in ns since the epoch."""
    return p.ctx.clock.now_ns()


def changed(p: VProc, *vps: Vnode | None) -> None:
    """Notify watchers (the FUSE frontend) of changed vnodes; callers test
    ``p.ctx.watchers`` first, so that the common case costs no call."""
    for vp in vps:
        if vp is not None:
            p.ctx.notify(vp)


def changed_data(p: VProc, vp: Vnode, offset: int, length: int) -> None:
    """Notify watchers that bytes of ``vp`` changed (``length`` 0: to the end)."""
    p.ctx.notify_data(vp, offset, length)


def changed_entry(p: VProc, dvp: Vnode, *names: str) -> None:
    """Notify watchers that entries ``names`` of directory ``dvp`` changed."""
    for name in names:
        p.ctx.notify_entry(dvp, name)
