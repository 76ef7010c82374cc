"""fallocate(2) and posix_fallocate(3) on descriptors (Linux's vfs_fallocate).

Allowed imports: ``rumpfs.kern``, ``rumpfs.errors``.

The system call checks what Linux's VFS checks, in its order: the range
(EINVAL), the mode (EOPNOTSUPP for unknown bits and impossible combinations:
PUNCH_HOLE needs KEEP_SIZE; COLLAPSE/INSERT_RANGE and WRITE_ZEROES refuse
it), the descriptor (EBADF unless open for writing), the node's type (ESPIPE
for FIFOs, EISDIR, ENODEV for anything not a regular file), the maximum
size (EFBIG). What a mode does is the file system's (``vop_fallocate``):
rumpfs, as tmpfs, allocates (0, KEEP_SIZE) and punches holes, and refuses
the rest with EOPNOTSUPP. A successful call clears setuid/setgid as a write
does (Linux's file_modified).

``posix_fallocate`` is glibc's: mode 0, falling back to growing the file
where the file system has no fallocate.

Locking: the caller (``kernel.py``) holds the kernel lock around every call.
"""

from __future__ import annotations

from rumpfs.errors import errno, raise_errno
from rumpfs.vfs.genfs import (
    FALLOC_FL_COLLAPSE_RANGE,
    FALLOC_FL_INSERT_RANGE,
    FALLOC_FL_KEEP_SIZE,
    FALLOC_FL_PUNCH_HOLE,
    FALLOC_FL_UNSHARE_RANGE,
    FALLOC_FL_WRITE_ZEROES,
    FALLOC_FL_ZERO_RANGE,
)
from rumpfs.vfs.proc import VProc
from rumpfs.vfs.sysutil import changed_data, getfile
from rumpfs.vfs.vfs_vnops import MAX_FILE, kill_suid, vn_setsize
from rumpfs.vfs.vnode import VBLK, VDIR, VFIFO, VREG

__all__ = ["sys_fallocate", "sys_posix_fallocate"]

_MODE_MASK = (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_ZERO_RANGE
              | FALLOC_FL_INSERT_RANGE | FALLOC_FL_UNSHARE_RANGE | FALLOC_FL_WRITE_ZEROES)


def _check_mode(mode: int) -> None:
    if mode & ~(_MODE_MASK | FALLOC_FL_KEEP_SIZE):
        raise_errno(errno.EOPNOTSUPP)
    op = mode & _MODE_MASK
    keep = mode & FALLOC_FL_KEEP_SIZE
    if op in (0, FALLOC_FL_UNSHARE_RANGE, FALLOC_FL_ZERO_RANGE):
        return
    if op == FALLOC_FL_PUNCH_HOLE:
        if not keep:
            raise_errno(errno.EOPNOTSUPP)
        return
    if op in (FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE, FALLOC_FL_WRITE_ZEROES):
        if keep:
            raise_errno(errno.EOPNOTSUPP)
        return
    raise_errno(errno.EOPNOTSUPP)       # two operations at once


def sys_fallocate(p: VProc, fd: int, mode: int, offset: int, length: int) -> None:
    if offset < 0 or length <= 0:
        raise_errno(errno.EINVAL)
    _check_mode(mode)
    fp = getfile(p, fd)
    if not fp.writable:
        raise_errno(errno.EBADF)
    vp = fp.vp
    if vp.type is VFIFO:
        raise_errno(errno.ESPIPE)
    if vp.type is VDIR:
        raise_errno(errno.EISDIR)
    if vp.type is not VREG and vp.type is not VBLK:
        raise_errno(errno.ENODEV)
    if offset + length > MAX_FILE:
        raise_errno(errno.EFBIG)
    if fp.dev is not None:
        raise_errno(errno.EOPNOTSUPP)       # no driver offers discard/zeroing
    vp.ops.vop_fallocate(vp, mode, offset, length)
    if p.cred.uid != 0:
        kill_suid(p, vp)                # file_modified, once the file system agreed
    if p.ctx.watchers:
        changed_data(p, vp, offset, length)


def sys_posix_fallocate(p: VProc, fd: int, offset: int, length: int) -> None:
    """glibc's posix_fallocate: fallocate mode 0; where the file system has
    none, make the file at least ``offset + length`` long instead."""
    if offset < 0 or length < 0:
        raise_errno(errno.EINVAL)
    if offset + length > MAX_FILE:
        raise_errno(errno.EFBIG)
    try:
        sys_fallocate(p, fd, 0, offset, length)
    except OSError as e:
        if e.errno != errno.EOPNOTSUPP:
            raise
        fp = getfile(p, fd)
        vp = fp.vp
        if vp.type is not VREG:
            raise
        if vp.ops.vop_getattr(vp).st_size < offset + length:
            vn_setsize(p, vp, offset + length)
