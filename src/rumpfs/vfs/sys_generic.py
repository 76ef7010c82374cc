"""Descriptor system calls: I/O, seeking, syncing and attributes through an
open file (NetBSD's sys_generic.c, with kern_descrip.c's close and dup).

Allowed imports: ``rumpfs.kern``, ``rumpfs.errors``.

Each ``sys_*`` takes the calling process first and follows Linux: the order
of its checks (argument values before the descriptor where Linux does so),
its errno values. ``os`` sets no filename on descriptor calls, so none is
attached here.

Locking: the caller (``kernel.py``) holds the kernel lock around every call.
Reference counting: a descriptor's open file holds its vnode (``vfs_vnops``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from rumpfs.errors import errno, raise_errno
from rumpfs.vfs.file import File
from rumpfs.vfs.proc import VProc
from rumpfs.vfs.sysutil import changed_data, getfile, getvnode
from rumpfs.vfs.vfs_vnops import (
    MAX_FILE,
    frele,
    kill_suid,
    setattr_mode,
    setattr_owner,
    vn_setsize,
)
from rumpfs.vfs.vnode import VDIR, VFIFO, VREG, VSOCK

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer is 3.12+

__all__ = [
    "sys_close", "sys_dup", "sys_fchmod", "sys_fchown", "sys_fstat", "sys_fsync",
    "sys_ftruncate", "sys_lseek", "sys_pread", "sys_pwrite", "sys_read", "sys_write",
]


def sys_close(p: VProc, fd: int) -> None:
    frele(p.fds.remove(fd))


def sys_dup(p: VProc, fd: int) -> int:
    fp = getfile(p, fd)
    fp.refs += 1
    try:
        return p.fds.alloc(fp)
    except OSError:
        fp.refs -= 1
        raise


def sys_read(p: VProc, fd: int, size: int) -> bytes:
    if size < 0:                        # os checks the size before the call
        raise_errno(errno.EINVAL)
    fp = p.fds.get(fd)                  # getfile, inlined: the hottest calls
    if not fp.readable:
        raise_errno(errno.EBADF)
    if fp.dev is not None:
        data = fp.dev.d_read(fp.minor, size, fp.offset)
    else:
        vp = fp.vp
        data = vp.ops.vop_read(vp, size, fp.offset)
    fp.offset += len(data)
    return data


def sys_pread(p: VProc, fd: int, size: int, offset: int) -> bytes:
    if offset < 0 or size < 0:          # checked before the descriptor, as Linux does
        raise_errno(errno.EINVAL)
    fp = p.fds.get(fd)
    if not fp.readable:
        raise_errno(errno.EBADF)
    vp = fp.vp
    if vp.type is VFIFO:                # FIFOs and pipes: their driver is the pipe
        raise_errno(errno.ESPIPE)
    if fp.dev is not None:
        return fp.dev.d_read(fp.minor, size, offset)
    return vp.ops.vop_read(vp, size, offset)


def _write(p: VProc, fp: File, data: Buffer, offset: int) -> tuple[int, int]:
    if not fp.writable:
        raise_errno(errno.EBADF)
    # bytes (the common case) goes down as it is; any other buffer as bytes-shaped view
    mv = data if type(data) is bytes else memoryview(data).cast("B")
    if fp.dev is not None:
        n = fp.dev.d_write(fp.minor, mv, offset)
        return n, offset + n
    vp = fp.vp
    if not mv:
        return 0, offset
    if p.cred.uid != 0:
        kill_suid(p, vp)
    result = vp.ops.vop_write(vp, mv, offset, fp.append)
    if p.ctx.watchers:
        changed_data(p, vp, result[1] - result[0], result[0])
    return result


def sys_write(p: VProc, fd: int, data: Buffer) -> int:
    fp = p.fds.get(fd)
    n, fp.offset = _write(p, fp, data, fp.offset)
    return n


def sys_pwrite(p: VProc, fd: int, data: Buffer, offset: int) -> int:
    if offset < 0:
        raise_errno(errno.EINVAL)
    fp = p.fds.get(fd)
    if fp.vp.type is VFIFO:
        raise_errno(errno.ESPIPE)
    return _write(p, fp, data, offset)[0]


def sys_lseek(p: VProc, fd: int, pos: int, how: int) -> int:
    fp = getfile(p, fd)
    vp = fp.vp
    if vp.type is VFIFO or vp.type is VSOCK:
        raise_errno(errno.ESPIPE)
    if vp.type is VDIR and how not in (os.SEEK_SET, os.SEEK_CUR):
        raise_errno(errno.EINVAL)       # directories seek only by cookie (tmpfs)
    if how == os.SEEK_SET:
        new = pos
    elif how == os.SEEK_CUR:
        new = fp.offset + pos
    elif how == os.SEEK_END:
        size = fp.dev.d_size(fp.minor) if fp.dev is not None else vp.ops.vop_getattr(vp).st_size
        new = size + pos
    elif how == os.SEEK_DATA or how == os.SEEK_HOLE:
        if pos < 0:
            raise_errno(errno.ENXIO)
        new = vp.ops.vop_seekhole(vp, pos, how == os.SEEK_DATA)
    else:
        raise_errno(errno.EINVAL)
    if new < 0:
        raise_errno(errno.EINVAL)
    if new > MAX_FILE:
        raise_errno(errno.EOVERFLOW)
    fp.offset = new
    return new


def sys_fstat(p: VProc, fd: int) -> os.stat_result:
    vp = getvnode(p, fd)
    return vp.ops.vop_getattr(vp)


def sys_fsync(p: VProc, fd: int, datasync: bool = False) -> None:
    fp = getfile(p, fd)
    if fp.dev is not None:
        fp.dev.d_fsync(fp.minor)
    else:
        fp.vp.ops.vop_fsync(fp.vp, datasync)
        mp = fp.vp.mount
        if mp.device is not None and not mp.read_only:
            p.ctx.sync_mount(mp)            # the file's buffers are the device's


def sys_ftruncate(p: VProc, fd: int, length: int) -> None:
    if length < 0:                      # before the descriptor, as Linux checks
        raise_errno(errno.EINVAL)
    fp = getfile(p, fd)
    if not fp.writable or fp.vp.type is not VREG:
        raise_errno(errno.EINVAL)
    vn_setsize(p, fp.vp, length)


def sys_fchmod(p: VProc, fd: int, mode: int) -> None:
    setattr_mode(p, getvnode(p, fd), mode)


def sys_fchown(p: VProc, fd: int, uid: int, gid: int) -> None:
    setattr_owner(p, getvnode(p, fd), uid, gid)
