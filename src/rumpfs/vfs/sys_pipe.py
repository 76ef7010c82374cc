"""Pipe system calls: pipe2(2), mkfifo(3), dup2/dup3(2) and O_NONBLOCK through
fcntl(F_GETFL/F_SETFL) as ``os.get_blocking``/``set_blocking`` spell it
(descriptor plumbing that pipelines need).

Allowed imports: ``rumpfs.kern``, ``rumpfs.errors``.

``pipe()`` gives two descriptors on a fresh anonymous pipe (``vfs.fifo``);
reads and writes go through the descriptor layer to the pipe engine
(``kern.pipe``), which blocks with the kernel lock released. ``mkfifo`` is
mknod with S_IFIFO, so a FIFO node's creation follows mknod's rules.

Locking: the caller (``kernel.py``) holds the kernel lock around every call.
"""

from __future__ import annotations

import os
import stat as st

from rumpfs.errors import errno, raise_errno
from rumpfs.kern.pipe import Pipe, PipeEnd
from rumpfs.vfs.fifo import pipe_vnode
from rumpfs.vfs.file import File
from rumpfs.vfs.proc import DirFd, StrOrBytesPath, VProc
from rumpfs.vfs.sysutil import getfile
from rumpfs.vfs.vfs_syscalls import sys_mknod
from rumpfs.vfs.vfs_vnops import frele
from rumpfs.vfs.vnode import vref

__all__ = ["sys_dup2", "sys_get_blocking", "sys_mkfifo", "sys_pipe", "sys_set_blocking"]

_PIPE_FLAGS = os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_DIRECT", 0)


def sys_pipe(p: VProc, flags: int = 0) -> tuple[int, int]:
    """pipe2: (read end, write end), lowest free descriptors first."""
    if flags & ~_PIPE_FLAGS:
        raise_errno(errno.EINVAL)
    vp = pipe_vnode(p.ctx, p.cred)
    pipe = Pipe(p.ctx.lock)
    nonblock = bool(flags & os.O_NONBLOCK)
    ends = []
    for acc in (os.O_RDONLY, os.O_WRONLY):
        fp = File(vp, acc | (flags & os.O_NONBLOCK))
        fp.dev = PipeEnd(pipe, acc == os.O_RDONLY, acc == os.O_WRONLY, nonblock)
        vref(vp)
        if fp.writable:
            vp.mount.writers += 1
        ends.append(fp)
    fds: list[int] = []
    try:
        for fp in ends:
            fds.append(p.fds.alloc(fp))
    except OSError:
        for fd in fds:
            p.fds.remove(fd)
        for fp in ends:
            frele(fp)
        raise
    return fds[0], fds[1]


def sys_mkfifo(p: VProc, path: StrOrBytesPath, mode: int = 0o666, dir_fd: DirFd = None) -> None:
    """mkfifo(3): mknod of a FIFO; os.mkfifo, as os.mknod, sets no filename."""
    sys_mknod(p, path, st.S_IFIFO | (mode & 0o7777), 0, dir_fd)


def sys_dup2(p: VProc, fd: int, fd2: int, inheritable: bool = True) -> int:
    """dup2: make ``fd2`` a copy of ``fd``, closing what ``fd2`` held first."""
    fp = getfile(p, fd)
    if fd2 < 0:
        raise_errno(errno.EBADF)
    if fd2 == fd:
        return fd2
    fp.refs += 1
    old = p.fds.install(fd2, fp)
    if old is not None:
        frele(old)
    return fd2


def sys_get_blocking(p: VProc, fd: int) -> bool:
    """os.get_blocking: False if the open file has O_NONBLOCK."""
    return not getfile(p, fd).flags & os.O_NONBLOCK


def sys_set_blocking(p: VProc, fd: int, blocking: bool) -> None:
    """os.set_blocking: set or clear O_NONBLOCK on the open file (shared by its
    dups), which pipe and FIFO ends obey from the next call on."""
    fp = getfile(p, fd)
    fp.flags = fp.flags & ~os.O_NONBLOCK if blocking else fp.flags | os.O_NONBLOCK
    if isinstance(fp.dev, PipeEnd):
        fp.dev.nonblock = not blocking
