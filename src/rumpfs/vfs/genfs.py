"""Generic file-system code: default operations and the rename driver.

Allowed imports: ``rumpfs.kern``, ``rumpfs.errors``.

``GenfsOps`` is the default-error vector: a file system inherits from it
and overrides what it supports; everything else fails with a clear errno,
as NetBSD's ``vn_default_error`` does.
"""

from __future__ import annotations

import os
import stat as st
from collections.abc import Iterator
from typing import TYPE_CHECKING, NoReturn

from rumpfs.errors import errno, raise_errno
from rumpfs.kern.cred import W_OK, X_OK, Cred, may_access
from rumpfs.vfs.acl import Acl
from rumpfs.vfs.namei import lookup_last
from rumpfs.vfs.vnode import VDIR, Vattr, Vnode
from rumpfs.vfs.vnode_if import Dirent

if TYPE_CHECKING:
    from rumpfs.vfs.proc import VProc

__all__ = [
    "FALLOC_FL_COLLAPSE_RANGE", "FALLOC_FL_INSERT_RANGE", "FALLOC_FL_KEEP_SIZE",
    "FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_UNSHARE_RANGE", "FALLOC_FL_WRITE_ZEROES",
    "FALLOC_FL_ZERO_RANGE", "RENAME_EXCHANGE", "RENAME_NOREPLACE", "GenfsOps", "may_delete",
    "rename",
]

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2

# fallocate(2) modes (linux/falloc.h)
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_COLLAPSE_RANGE = 0x08
FALLOC_FL_ZERO_RANGE = 0x10
FALLOC_FL_INSERT_RANGE = 0x20
FALLOC_FL_UNSHARE_RANGE = 0x40
FALLOC_FL_WRITE_ZEROES = 0x80



def _unsupported(*_args: object) -> NoReturn:
    raise_errno(errno.EOPNOTSUPP)


class GenfsOps:
    """Default vnode operations: harmless no-ops where NetBSD has genfs_nullop,
    EOPNOTSUPP where it has the default-error entry."""

    def vop_lookup(self, dvp: Vnode, name: str) -> Vnode:
        _unsupported()

    def vop_probe(self, dvp: Vnode, name: str) -> Vnode | None:
        try:
            return self.vop_lookup(dvp, name)
        except FileNotFoundError:
            return None

    def vop_create(self, dvp: Vnode, name: str, va: Vattr) -> Vnode:
        _unsupported()

    def vop_mkdir(self, dvp: Vnode, name: str, va: Vattr) -> Vnode:
        _unsupported()

    def vop_symlink(self, dvp: Vnode, name: str, va: Vattr, target: str) -> Vnode:
        _unsupported()

    def vop_link(self, dvp: Vnode, name: str, vp: Vnode) -> None:
        _unsupported()

    def vop_remove(self, dvp: Vnode, name: str, vp: Vnode) -> None:
        _unsupported()

    def vop_rmdir(self, dvp: Vnode, name: str, vp: Vnode) -> None:
        _unsupported()

    def vop_rename(
        self, fdvp: Vnode, fname: str, fvp: Vnode, tdvp: Vnode, tname: str, tvp: Vnode | None
    ) -> None:
        _unsupported()

    def vop_exchange(self, fdvp: Vnode, fname: str, tdvp: Vnode, tname: str) -> None:
        raise_errno(errno.EINVAL)

    def vop_readdir(self, dvp: Vnode, cookie: int) -> Iterator[Dirent]:
        raise_errno(errno.ENOTDIR)

    def vop_listnames(self, dvp: Vnode) -> list[str]:
        return [ent[0] for ent in self.vop_readdir(dvp, 0)]

    def vop_opendir(self, dvp: Vnode) -> None:
        pass

    def vop_closedir(self, dvp: Vnode) -> None:
        pass

    def vop_setattr(self, vp: Vnode, va: Vattr) -> None:
        _unsupported()

    def vop_access(self, vp: Vnode, want: int, cred: Cred) -> bool:
        mode, uid, gid = self.vop_perms(vp)
        return may_access(cred, mode, uid, gid, want, is_dir=vp.type is VDIR)

    def vop_perms(self, vp: Vnode) -> tuple[int, int, int]:
        attr = self.vop_getattr(vp)
        return attr.st_mode, attr.st_uid, attr.st_gid

    def vop_getattr(self, vp: Vnode) -> os.stat_result:
        _unsupported()

    def vop_open(self, vp: Vnode, flags: int) -> None:
        pass

    def vop_close(self, vp: Vnode, flags: int) -> None:
        pass

    def vop_read(self, vp: Vnode, size: int, offset: int) -> bytes:
        raise_errno(errno.EISDIR if vp.type is VDIR else errno.EINVAL)

    def vop_write(
        self, vp: Vnode, data: bytes | memoryview, offset: int, append: bool
    ) -> tuple[int, int]:
        raise_errno(errno.EISDIR if vp.type is VDIR else errno.EINVAL)

    def vop_seekhole(self, vp: Vnode, offset: int, data: bool) -> int:
        size = self.vop_getattr(vp).st_size
        if offset >= size:
            raise_errno(errno.ENXIO)
        return offset if data else size

    def vop_fsync(self, vp: Vnode, datasync: bool) -> None:
        pass

    def vop_backing_fd(self, vp: Vnode, readable: bool, writable: bool) -> int | None:
        return None    # no host file behind it

    def vop_readlink(self, vp: Vnode) -> str:
        raise_errno(errno.EINVAL)

    def vop_pathconf(self, vp: Vnode, name: str) -> int:
        values = {
            "PC_LINK_MAX": 32767, "PC_NAME_MAX": 255, "PC_PATH_MAX": 4096,
            "PC_PIPE_BUF": 4096, "PC_CHOWN_RESTRICTED": 1, "PC_NO_TRUNC": 1,
            "PC_FILESIZEBITS": 64, "PC_SYMLINK_MAX": 4095, "PC_2_SYMLINKS": 1,
        }
        if name not in values:
            raise_errno(errno.EINVAL)
        return values[name]

    def vop_fallocate(self, vp: Vnode, mode: int, offset: int, length: int) -> None:
        _unsupported()

    # Extended attributes and ACLs: a file system without them answers as
    # Linux's VFS does for one without xattr handlers.

    def vop_getxattr(self, vp: Vnode, name: str) -> bytes:
        _unsupported()

    def vop_setxattr(self, vp: Vnode, name: str, value: bytes, flags: int) -> None:
        _unsupported()

    def vop_listxattr(self, vp: Vnode) -> list[str]:
        return []

    def vop_removexattr(self, vp: Vnode, name: str) -> None:
        _unsupported()

    def vop_getacl(self, vp: Vnode, kind: int) -> Acl | None:
        return None

    def vop_setacl(self, vp: Vnode, kind: int, acl: Acl | None) -> None:
        _unsupported()

    def vop_tmpfile(self, dvp: Vnode, va: Vattr) -> Vnode:
        _unsupported()

    def vop_inactive(self, vp: Vnode) -> None:
        pass

    def vop_reclaim(self, vp: Vnode) -> None:
        pass


def _sticky_denied(cred: Cred, dvp: Vnode, vp: Vnode) -> bool:
    """In a sticky directory only the owner of the file or of the directory may remove."""
    dmode, duid, _ = dvp.ops.vop_perms(dvp)
    return bool(dmode & st.S_ISVTX and cred.uid != duid and cred.uid != vp.ops.vop_perms(vp)[1])


def may_delete(p: VProc, dvp: Vnode, vp: Vnode, isdir: bool) -> None:
    """Linux's may_delete: may ``p`` remove ``vp`` from ``dvp``, as a directory if ``isdir``?"""
    cred = p.cred
    if cred.uid != 0:
        if not dvp.ops.vop_access(dvp, W_OK | X_OK, cred):
            raise_errno(errno.EACCES)
        if _sticky_denied(cred, dvp, vp):
            raise_errno(errno.EPERM)
    if isdir:
        if vp.type is not VDIR:
            raise_errno(errno.ENOTDIR)
        if vp.mountedhere is not None or vp is p.root:
            raise_errno(errno.EBUSY)
    elif vp.type is VDIR:
        raise_errno(errno.EISDIR)


def _is_ancestor(anc: Vnode, vp: Vnode) -> bool:
    """True if directory ``anc`` is ``vp`` or above it within ``vp``'s mount."""
    root = vp.mount.root
    while True:
        if vp is anc:
            return True
        if vp is root or vp.mount is not anc.mount:   # left the mount (etfs keys)
            return False
        vp = vp.ops.vop_lookup(vp, "..")


def rename(
    p: VProc, fdvp: Vnode, fname: str, ftrail: bool,
    tdvp: Vnode, tname: str, ttrail: bool, flags: int = 0,
) -> tuple[Vnode, Vnode | None]:
    """The generic rename driver, in Linux's order of checks (do_renameat2 +
    vfs_rename). Returns (moved vnode, replaced vnode or None).

    Outline: one mount (EXDEV) -> names that cannot move (EBUSY) -> writable
    (EROFS) -> source exists, target directory not removed (ENOENT) ->
    NOREPLACE/EXCHANGE target rules -> trailing slashes on a non-directory
    (ENOTDIR) -> source above the target (EINVAL) or target above the source
    (ENOTEMPTY) -> same file (no-op) ->
    permission to delete and to create -> the file system moves the entry.
    """
    if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) or (
        flags & RENAME_NOREPLACE and flags & RENAME_EXCHANGE
    ):
        raise_errno(errno.EINVAL)
    if fdvp.mount is not tdvp.mount:
        raise_errno(errno.EXDEV)
    if fname in ("", ".", ".."):
        raise_errno(errno.EBUSY)
    if tname in ("", ".", ".."):
        raise_errno(errno.EEXIST if flags & RENAME_NOREPLACE else errno.EBUSY)
    if fdvp.mount.read_only:
        raise_errno(errno.EROFS)
    fvp = lookup_last(fdvp, fname)
    if fvp is None:
        raise_errno(errno.ENOENT)
    if tdvp.dead:           # Linux's lookup of the target fails in a removed directory
        raise_errno(errno.ENOENT)
    tvp = lookup_last(tdvp, tname)
    exchange = bool(flags & RENAME_EXCHANGE)
    if tvp is not None and flags & RENAME_NOREPLACE:
        raise_errno(errno.EEXIST)
    if tvp is None and exchange:
        raise_errno(errno.ENOENT)
    fisdir = fvp.type is VDIR
    if not exchange and not fisdir and (ftrail or ttrail):
        raise_errno(errno.ENOTDIR)
    if fdvp is not tdvp:
        if fisdir and _is_ancestor(fvp, tdvp):
            raise_errno(errno.EINVAL)
        if tvp is not None and tvp.type is VDIR and _is_ancestor(tvp, fdvp):
            raise_errno(errno.EINVAL if exchange else errno.ENOTEMPTY)
    if fvp is tvp:
        return fvp, None
    may_delete(p, fdvp, fvp, fisdir)
    if tvp is None:
        if p.cred.uid != 0 and not tdvp.ops.vop_access(tdvp, W_OK | X_OK, p.cred):
            raise_errno(errno.EACCES)
    else:
        may_delete(p, tdvp, tvp, tvp.type is VDIR if exchange else fisdir)
    if p.cred.uid != 0 and fdvp is not tdvp:
        for moved in (fvp, tvp if exchange else None):
            if (moved is not None and moved.type is VDIR
                    and not moved.ops.vop_access(moved, W_OK, p.cred)):
                raise_errno(errno.EACCES)
    if exchange:
        fdvp.ops.vop_exchange(fdvp, fname, tdvp, tname)
    else:
        fdvp.ops.vop_rename(fdvp, fname, fvp, tdvp, tname, tvp)
    return fvp, tvp
