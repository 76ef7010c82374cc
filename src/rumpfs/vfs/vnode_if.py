"""The vnode-operation interface: the contract between the VFS and file systems.

Allowed imports: ``rumpfs.kern``, ``rumpfs.errors``.

Common rules for every operation:

- Locks: the kernel lock is held on entry and on return; an operation never
  releases it and never calls back into the system-call layer.
- Refs: operations take and drop no long-lived references (see ``vnode``);
  a vnode they return lives at least until the system call returns.
- Errors: ``OSError`` with a Linux errno, raised through
  ``errors.raise_errno``, without a filename.
- Policy lives above: the system calls check permissions (through
  ``vop_access`` and ``vop_getattr``), read-only mounts, and the "possible"
  errors that depend only on vnode types. A file system checks what only it
  can know (ENOTEMPTY, ENOSPC, host errors) and keeps its own times.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Protocol

from rumpfs.kern.cred import Cred
from rumpfs.vfs.acl import Acl
from rumpfs.vfs.vnode import Vattr, Vnode, VType

__all__ = ["Dirent", "VnodeOps"]

# A directory entry as vop_readdir yields it: (name, fileid, type, cookie).
# ``cookie`` is the position just after this entry; reading again from it
# resumes with the next entry even if entries were added or removed meanwhile.
Dirent = tuple[str, int, VType, int]


class VnodeOps(Protocol):
    """Operations on a file system's vnodes (NetBSD's vnodeop vector)."""

    def vop_lookup(self, dvp: Vnode, name: str) -> Vnode:
        """Find ``name`` in directory ``dvp``; ``..`` gives the parent (the root gives itself).
        Errors: ENOENT. ``.`` never reaches a file system."""
        ...

    def vop_probe(self, dvp: Vnode, name: str) -> Vnode | None:
        """``vop_lookup`` that answers None instead of ENOENT (the cheap miss that
        every create needs). genfs derives it from vop_lookup."""
        ...

    def vop_create(self, dvp: Vnode, name: str, va: Vattr) -> Vnode:
        """Make a new non-directory, non-symlink node ``name`` in ``dvp``.
        ``va.type`` is VREG, VFIFO, VSOCK, VBLK or VCHR; mode/uid/gid are final.
        Refs: the result is unreferenced. Errors: ENOSPC, EMLINK."""
        ...

    def vop_mkdir(self, dvp: Vnode, name: str, va: Vattr) -> Vnode:
        """Make directory ``name`` in ``dvp``; ``dvp``'s link count grows by one."""
        ...

    def vop_symlink(self, dvp: Vnode, name: str, va: Vattr, target: str) -> Vnode:
        """Make symbolic link ``name`` -> ``target`` in ``dvp``."""
        ...

    def vop_link(self, dvp: Vnode, name: str, vp: Vnode) -> None:
        """Enter ``vp`` (not a directory) as ``name`` in ``dvp``. Errors: EMLINK, EXDEV."""
        ...

    def vop_remove(self, dvp: Vnode, name: str, vp: Vnode) -> None:
        """Remove entry ``name`` (naming non-directory ``vp``) from ``dvp``.
        An unlinked node lives on while referenced (open files); its data
        goes in ``vop_inactive``. Errors: EBUSY (the name is pinned)."""
        ...

    def vop_rmdir(self, dvp: Vnode, name: str, vp: Vnode) -> None:
        """Remove empty directory ``vp`` named ``name`` from ``dvp``. Errors: ENOTEMPTY, EBUSY."""
        ...

    def vop_rename(
        self, fdvp: Vnode, fname: str, fvp: Vnode, tdvp: Vnode, tname: str, tvp: Vnode | None
    ) -> None:
        """Move ``fname`` (``fvp``) of ``fdvp`` to ``tname`` of ``tdvp``, replacing ``tvp``.
        The caller (``genfs.rename``) has checked every rule; the file system
        only moves entries, fixes link counts, ``..`` and times. Both
        directories are on this file system. Errors: EBUSY (pinned names)."""
        ...

    def vop_exchange(self, fdvp: Vnode, fname: str, tdvp: Vnode, tname: str) -> None:
        """Swap two existing entries atomically (RENAME_EXCHANGE). Errors: EINVAL if unsupported."""
        ...

    def vop_readdir(self, dvp: Vnode, cookie: int) -> Iterator[Dirent]:
        """Entries of ``dvp`` after ``cookie`` (0 = from the start), without ``.``/``..``.
        An entry present for the whole listing is yielded exactly once."""
        ...

    def vop_listnames(self, dvp: Vnode) -> list[str]:
        """The names ``vop_readdir(dvp, 0)`` would yield, in its order (listdir's
        fast path). genfs derives it from vop_readdir."""
        ...

    def vop_opendir(self, dvp: Vnode) -> None:
        """A directory stream opens on ``dvp``: cookies must stay valid until closedir."""
        ...

    def vop_closedir(self, dvp: Vnode) -> None: ...

    def vop_getattr(self, vp: Vnode) -> os.stat_result:
        """All attributes, as ``os.stat`` returns them (st_ino is the file id in its mount)."""
        ...

    def vop_perms(self, vp: Vnode) -> tuple[int, int, int]:
        """(st_mode, st_uid, st_gid): what permission checks need, cheaper than
        getattr. genfs derives it from vop_getattr."""
        ...

    def vop_setattr(self, vp: Vnode, va: Vattr) -> None:
        """Set the non-None fields of ``va``; ``size`` truncates or extends a regular file.
        ctime is the caller's to pass. Errors: EINVAL (size on a fixed window), EFBIG."""
        ...

    def vop_access(self, vp: Vnode, want: int, cred: Cred) -> bool:
        """May ``cred`` read/write/search (R_OK/W_OK/X_OK bits) ``vp`` by its mode bits?"""
        ...

    def vop_open(self, vp: Vnode, flags: int) -> None:
        """An open of ``vp`` with ``flags`` begins. Errors: host errors for etfs."""
        ...

    def vop_close(self, vp: Vnode, flags: int) -> None:
        """The last descriptor of one open goes away."""
        ...

    def vop_read(self, vp: Vnode, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes at ``offset``; b"" at or past the end. Errors: EISDIR, EIO."""
        ...

    def vop_write(
        self, vp: Vnode, data: bytes | memoryview, offset: int, append: bool
    ) -> tuple[int, int]:
        """Write ``data`` at ``offset`` (at the end if ``append``), growing the file.
        Returns (bytes written, offset after them); short only at a fixed end.
        Errors: ENOSPC, EFBIG, EIO."""
        ...

    def vop_seekhole(self, vp: Vnode, offset: int, data: bool) -> int:
        """SEEK_DATA (``data``) or SEEK_HOLE from ``offset``. Errors: ENXIO at or past EOF."""
        ...

    def vop_backing_fd(self, vp: Vnode, readable: bool, writable: bool) -> int | None:
        """A host descriptor holding exactly this regular file's bytes, open for the
        given access (FUSE passthrough hands it to the host), or None."""
        ...

    def vop_fsync(self, vp: Vnode, datasync: bool) -> None:
        """Make written data durable (host fsync for etfs; nothing for memory)."""
        ...

    def vop_readlink(self, vp: Vnode) -> str:
        """The target of symbolic link ``vp``."""
        ...

    def vop_pathconf(self, vp: Vnode, name: str) -> int:
        """A pathconf value (``PC_*`` names of ``os.pathconf_names``). Errors: EINVAL."""
        ...

    def vop_fallocate(self, vp: Vnode, mode: int, offset: int, length: int) -> None:
        """fallocate(2) on regular file ``vp``: ``mode`` is one of the FALLOC_FL_*
        combinations the system call has checked (``genfs``); the range is valid
        and within the maximum size. The file system keeps mtime/ctime.
        Errors: EOPNOTSUPP (a mode it does not do; genfs for all), ENOSPC
        (nothing allocated), EINVAL (alignment for the range modes)."""
        ...

    def vop_getxattr(self, vp: Vnode, name: str) -> bytes:
        """The value of extended attribute ``name`` (full name, ``user.x``); the
        caller checked the namespace and permissions. ``system.posix_acl_*``
        never reaches here (see vop_getacl). Errors: ENODATA, EOPNOTSUPP (genfs)."""
        ...

    def vop_setxattr(self, vp: Vnode, name: str, value: bytes, flags: int) -> None:
        """Set ``name`` to ``value``: XATTR_CREATE (1) fails with EEXIST if it
        exists, XATTR_REPLACE (2) with ENODATA if not. Sets ctime.
        Errors: EEXIST, ENODATA, ENOSPC, E2BIG, EOPNOTSUPP (genfs), host errors."""
        ...

    def vop_listxattr(self, vp: Vnode) -> list[str]:
        """Every attribute name, ACL names first (the caller filters trusted.*
        for unprivileged callers). genfs: none."""
        ...

    def vop_removexattr(self, vp: Vnode, name: str) -> None:
        """Remove ``name``; sets ctime. Errors: ENODATA, EOPNOTSUPP (genfs)."""
        ...

    def vop_getacl(self, vp: Vnode, kind: int) -> Acl | None:
        """The access (``acl.ACCESS``) or default (``acl.DEFAULT``) ACL, None if
        none (genfs: always none, so permission checks use the mode alone)."""
        ...

    def vop_setacl(self, vp: Vnode, kind: int, acl: Acl | None) -> None:
        """Store (None: drop) an ACL the caller validated; for ACCESS the caller
        also sets the mode it implies. Sets ctime. A file system keeping ACLs
        applies ``acl.chmod`` in its vop_setattr of a mode.
        Errors: EOPNOTSUPP (genfs; symlinks)."""
        ...

    def vop_tmpfile(self, dvp: Vnode, va: Vattr) -> Vnode:
        """An unnamed regular file (nlink 0) on ``dvp``'s file system, for
        O_TMPFILE; it lives while referenced and may get a name by vop_link.
        Errors: EOPNOTSUPP (genfs), ENOSPC."""
        ...

    def vop_inactive(self, vp: Vnode) -> None:
        """The last long-lived reference went; free what an unlinked node held."""
        ...

    def vop_reclaim(self, vp: Vnode) -> None:
        """The vnode is being destroyed (unmount, revoke): release everything."""
        ...
