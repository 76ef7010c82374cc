"""Vnode-level work shared by the system calls and the vnode-handle API
(NetBSD's vfs_vnops.c): open and close of a vnode, truncation, and the
rules of chmod, chown and utimes.

Allowed imports: ``rumpfs.kern``, ``rumpfs.errors``.

These functions take vnodes already found by namei (or by a frontend's
handle) and raise without a filename; the ``sys_*`` callers attach one.

Reference counting: an open file holds one vnode reference from
:func:`falloc` to the :func:`frele` of its last descriptor.
Locking: the caller holds the kernel lock.
"""

from __future__ import annotations

import os
import stat as st
from typing import Final

from rumpfs.errors import errno, raise_errno
from rumpfs.kern.cred import R_OK, W_OK
from rumpfs.kern.devsw import BLOCK, CHAR
from rumpfs.vfs.fifo import fifo_open
from rumpfs.vfs.file import File
from rumpfs.vfs.proc import VProc
from rumpfs.vfs.sysutil import changed, changed_data, now
from rumpfs.vfs.vnode import (
    VBLK,
    VCHR,
    VDIR,
    VFIFO,
    VLNK,
    VREG,
    VSOCK,
    Vattr,
    Vnode,
    vref,
    vrele,
)

__all__ = [
    "MAX_FILE", "UTIME_NOW", "check_writable_fs", "falloc", "frele", "is_owner", "kill_suid",
    "open_checks", "setattr_mode", "setattr_owner", "setattr_times", "suid_bits_to_kill",
    "vn_open", "vn_setsize", "vn_truncate",
]

_ACCMODE: Final = os.O_RDONLY | os.O_WRONLY | os.O_RDWR
MAX_FILE: Final = (1 << 63) - 1
UTIME_NOW: Final = -(1 << 100)  # a time meaning "now": below any time a 64-bit time_t can hold


def is_owner(p: VProc, attr: os.stat_result) -> bool:
    return p.cred.uid == 0 or p.cred.uid == attr.st_uid


def check_writable_fs(vp: Vnode) -> None:
    """EROFS for changing a file, directory or symlink on a read-only mount."""
    if vp.mount.read_only and vp.type in (VREG, VDIR, VLNK):
        raise_errno(errno.EROFS)


def kill_suid(p: VProc, vp: Vnode) -> None:
    """Writing or truncating without privilege clears setuid, and setgid if group-executable."""
    if p.cred.uid == 0 or vp.type is not VREG:
        return
    mode, _, gid = vp.ops.vop_perms(vp)
    kill = suid_bits_to_kill(p, mode, gid)
    if kill:
        vp.ops.vop_setattr(vp, Vattr(mode=st.S_IMODE(mode) & ~kill, ctime_ns=now(p)))


def suid_bits_to_kill(p: VProc, mode: int, gid: int) -> int:
    """Linux's should_remove_suid + setattr_should_drop_sgid: setuid always; setgid
    when group-executable, or when the caller is neither in the group nor root."""
    kill = mode & st.S_ISUID
    if mode & st.S_ISGID and (
        mode & st.S_IXGRP or (p.cred.uid != 0 and not p.cred.in_group(gid))
    ):
        kill |= st.S_ISGID
    return kill


# --------------------------------------------------------------------------
# open files

def falloc(p: VProc, vp: Vnode, flags: int) -> int:
    """Open ``vp`` (already permission-checked) and give it a descriptor."""
    fp = File(vp, flags)
    if vp.type is VBLK or vp.type is VCHR:
        kind = BLOCK if vp.type is VBLK else CHAR
        rdev = vp.ops.vop_getattr(vp).st_rdev
        driver, minor = p.ctx.devsw.lookup(kind, rdev)
        if kind is BLOCK and fp.writable and p.ctx.blk_in_use(rdev, writers=False):
            raise_errno(errno.EBUSY)        # a mounted disk's buffers are the fs's
        driver.d_open(minor, flags)
        fp.dev, fp.minor, fp.rdev = driver, minor, rdev
        if kind is BLOCK and fp.writable:
            blkw = fp.blk_writers = p.ctx.blk_writers
            blkw[rdev] = blkw.get(rdev, 0) + 1
    else:
        vp.ops.vop_open(vp, flags)
    vref(vp)
    if vp.type is VFIFO and fp.dev is None:
        try:        # an end of the node's pipe; may wait, releasing the kernel lock
            fp.dev = fifo_open(p.ctx, vp, flags)
        except BaseException:
            vrele(vp)
            raise
    if fp.writable:
        vp.mount.writers += 1
    try:
        return p.fds.alloc(fp)
    except OSError:
        frele(fp)
        raise


def frele(fp: File) -> None:
    """Drop one descriptor's hold on ``fp``; the last one closes it."""
    fp.refs -= 1
    if fp.refs:
        return
    vp = fp.vp
    if fp.writable:
        vp.mount.writers -= 1
        blkw = fp.blk_writers
        if blkw is not None:
            if blkw[fp.rdev] == 1:
                del blkw[fp.rdev]
            else:
                blkw[fp.rdev] -= 1
    try:
        if fp.dirstream:
            vp.ops.vop_closedir(vp)
        if fp.dev is not None:
            fp.dev.d_close(fp.minor, fp.flags)
        else:
            vp.ops.vop_close(vp, fp.flags)
    finally:
        vrele(vp)


def open_checks(p: VProc, vp: Vnode, flags: int, created: bool) -> None:
    """Linux's may_open: type rules, then EROFS/EACCES, for an existing node."""
    acc = flags & _ACCMODE
    write = acc != os.O_RDONLY or bool(flags & os.O_TRUNC)
    vtype = vp.type
    if flags & os.O_DIRECTORY and vtype is not VDIR:
        raise_errno(errno.ENOTDIR)
    if vtype is VDIR:
        if write or (flags & os.O_CREAT and not created):
            raise_errno(errno.EISDIR)
    elif vtype is VLNK:
        raise_errno(errno.ELOOP)
    if created:
        return
    if write:
        check_writable_fs(vp)
    want = (R_OK if acc != os.O_WRONLY else 0) | (W_OK if write else 0)
    if acc == 3:
        raise_errno(errno.EINVAL)
    if want and not vp.ops.vop_access(vp, want, p.cred):
        raise_errno(errno.EACCES)
    if vtype is VSOCK:
        raise_errno(errno.ENXIO)


def vn_open(p: VProc, vp: Vnode, flags: int, created: bool = False) -> int:
    """Open vnode ``vp`` for ``p``: may_open's checks, O_TRUNC, a descriptor."""
    open_checks(p, vp, flags, created)
    if flags & os.O_TRUNC and not created and vp.type is VREG:
        vn_setsize(p, vp, 0)
    return falloc(p, vp, flags)


# --------------------------------------------------------------------------
# size and attributes

def vn_setsize(p: VProc, vp: Vnode, length: int, stamp: bool = True) -> None:
    """Set the size; mtime and ctime change if ``stamp`` (ftruncate, O_TRUNC) or
    the size does. truncate(2) to the same size leaves the times to the file
    system (tmpfs and rumpfs stamp a file that has pages; ext4 always does)."""
    if length > MAX_FILE:
        raise_errno(errno.EFBIG)
    kill_suid(p, vp)
    va = Vattr(size=length)
    if stamp or vp.ops.vop_getattr(vp).st_size != length:
        va.mtime_ns = va.ctime_ns = now(p)
    vp.ops.vop_setattr(vp, va)
    if p.ctx.watchers:
        changed_data(p, vp, length, 0)


def vn_truncate(p: VProc, vp: Vnode, length: int) -> None:
    """truncate(2) on a vnode: a writable regular file."""
    if length < 0:
        raise_errno(errno.EINVAL)
    if vp.type is VDIR:
        raise_errno(errno.EISDIR)
    if vp.type is not VREG:
        raise_errno(errno.EINVAL)
    check_writable_fs(vp)
    if not vp.ops.vop_access(vp, W_OK, p.cred):
        raise_errno(errno.EACCES)
    vn_setsize(p, vp, length, stamp=False)


def setattr_mode(p: VProc, vp: Vnode, mode: int) -> None:
    """chmod's rules: owner or root; a non-member loses S_ISGID."""
    check_writable_fs(vp)
    attr = vp.ops.vop_getattr(vp)
    if not is_owner(p, attr):
        raise_errno(errno.EPERM)
    mode &= 0o7777
    if p.cred.uid != 0 and not p.cred.in_group(attr.st_gid):
        mode &= ~st.S_ISGID
    vp.ops.vop_setattr(vp, Vattr(mode=mode, ctime_ns=now(p)))
    if p.ctx.watchers:
        changed(p, vp)


def setattr_owner(p: VProc, vp: Vnode, uid: int, gid: int) -> None:
    """chown's rules (Linux chown_ok/chgrp_ok; -1 leaves an id alone), then the
    clearing of setuid (and group-executable setgid) on non-directories."""
    check_writable_fs(vp)
    attr = vp.ops.vop_getattr(vp)
    cred = p.cred
    owner = cred.uid == attr.st_uid
    if cred.uid != 0:
        if uid != -1 and not (owner and uid == attr.st_uid):
            raise_errno(errno.EPERM)
        if gid != -1 and not (owner and (gid == attr.st_gid or cred.in_group(gid))):
            raise_errno(errno.EPERM)
    va = Vattr(ctime_ns=now(p))
    if uid != -1:
        va.uid = uid
    if gid != -1:
        va.gid = gid
    if vp.type is not VDIR:
        kill = suid_bits_to_kill(p, attr.st_mode, attr.st_gid)
        if kill:
            if not owner and cred.uid != 0:
                raise_errno(errno.EPERM)
            va.mode = st.S_IMODE(attr.st_mode) & ~kill
    vp.ops.vop_setattr(vp, va)
    if p.ctx.watchers:
        changed(p, vp)


def setattr_times(p: VProc, vp: Vnode, atime_ns: int | None, mtime_ns: int | None) -> None:
    """utimensat's rules: setting both to now needs ownership or write access
    (EACCES), anything else ownership (EPERM). UTIME_NOW = now, None = omit."""
    check_writable_fs(vp)
    t = now(p)
    if atime_ns is None and mtime_ns is None:
        return
    attr = vp.ops.vop_getattr(vp)
    if not is_owner(p, attr):
        to_now = atime_ns in (None, UTIME_NOW) and mtime_ns in (None, UTIME_NOW)
        if not to_now:
            raise_errno(errno.EPERM)
        if not vp.ops.vop_access(vp, W_OK, p.cred):
            raise_errno(errno.EACCES)
    va = Vattr(ctime_ns=t)
    if atime_ns is not None:
        va.atime_ns = t if atime_ns == UTIME_NOW else atime_ns
    if mtime_ns is not None:
        va.mtime_ns = t if mtime_ns == UTIME_NOW else mtime_ns
    vp.ops.vop_setattr(vp, va)
    if p.ctx.watchers:
        changed(p, vp)
