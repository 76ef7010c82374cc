"""rumpfs vnode operations: mechanism plus the file system's own times and errno.

Allowed imports: ``rumpfs.vfs``, ``rumpfs.kern``, ``rumpfs.errors``.

Permission policy is the system calls' (see ``vfs.vnode_if``); here each
operation keeps Linux's time stamps: entering or removing a name touches
the directory's mtime and ctime, a link count change the node's ctime,
data writes mtime and ctime, reads atime under ``relatime`` rules.

Locking: the kernel lock is held throughout.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from typing import Any, Final, cast

from rumpfs.errors import errno, raise_errno
from rumpfs.fs.rumpfs import memfd_data
from rumpfs.fs.rumpfs.node import RumpDir, RumpLink, RumpNode, RumpReg, own_data, rumpfs_data
from rumpfs.fs.rumpfs.rename import exchange, rename
from rumpfs.kern.clock import Clock
from rumpfs.kern.cred import Cred, may_access
from rumpfs.kern.shm import HostShm
from rumpfs.vfs import acl as posix_acl
from rumpfs.vfs.acl import Acl
from rumpfs.vfs.genfs import FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, GenfsOps
from rumpfs.vfs.vnode import VDIR, VFIFO, VLNK, VREG, Vattr, Vnode
from rumpfs.vfs.vnode_if import Dirent

__all__ = ["RumpfsOps"]

_DAY_NS: Final = 86_400 * 1_000_000_000
_MAX_FILE: Final = (1 << 63) - 1
XATTR_CREATE: Final = 1
XATTR_REPLACE: Final = 2


class RumpfsOps(GenfsOps):
    """The vnode-operation vector of one rumpfs mount."""

    def __init__(self, clock: Clock, shm: HostShm | None = None) -> None:
        self.clock = clock
        self.shm = shm                  # host memfds for FUSE passthrough (memfd_data)
        self.memfds: weakref.WeakSet[memfd_data.MemfdData] = weakref.WeakSet()

    @staticmethod
    def _new_ino(dvp: RumpDir) -> int:
        """A fresh inode number; ENOSPC when the mount's nr_inodes are all in use."""
        data = rumpfs_data(dvp.mount)
        if data.inode_limit is not None and data.inodes >= data.inode_limit:
            raise_errno(errno.ENOSPC)
        data.inodes += 1
        ino = data.next_ino
        data.next_ino = ino + 1
        return ino

    @staticmethod
    def _enter(d: RumpDir, name: str, node: RumpNode, now: int) -> RumpNode:
        """Attach a new node as ``name``: the directory's mtime and ctime change."""
        d.attach(name, node)
        d.mtime = d.ctime = now
        return node

    def _relatime(self, node: RumpNode) -> None:
        """Update atime as a relatime mount does: once after each change, or daily."""
        if node.mount.read_only:
            return
        now = self.clock.now_ns()
        atime = node.atime
        if atime <= node.mtime or atime <= node.ctime or now - atime >= _DAY_NS:
            node.atime = now

    # -- names ---------------------------------------------------------------

    def vop_lookup(self, dvp: Vnode, name: str) -> Vnode:
        d: RumpDir = dvp  # type: ignore[assignment]
        if name == "..":
            return d.parent
        try:
            return d.entries[name]
        except KeyError:
            raise_errno(errno.ENOENT)

    def vop_probe(self, dvp: Vnode, name: str) -> Vnode | None:
        d: RumpDir = dvp  # type: ignore[assignment]
        return d.parent if name == ".." else d.entries.get(name)

    def vop_create(self, dvp: Vnode, name: str, va: Vattr) -> Vnode:
        d: RumpDir = dvp  # type: ignore[assignment]
        now = self.clock.now_ns()
        mp = d.mount
        ino = self._new_ino(d)
        node: RumpNode
        if va.type is VREG:
            node = RumpReg(self, mp, va, ino, now)
        else:
            node = RumpNode(va.type, self, mp, va, ino, now)
        return self._enter(d, name, node, now)

    def vop_mkdir(self, dvp: Vnode, name: str, va: Vattr) -> Vnode:
        d: RumpDir = dvp  # type: ignore[assignment]
        now = self.clock.now_ns()
        node = RumpDir(self, d.mount, va, self._new_ino(d), now, d)
        return self._enter(d, name, node, now)

    def vop_symlink(self, dvp: Vnode, name: str, va: Vattr, target: str) -> Vnode:
        d: RumpDir = dvp  # type: ignore[assignment]
        now = self.clock.now_ns()
        node = RumpLink(self, d.mount, va, self._new_ino(d), now, target)
        return self._enter(d, name, node, now)

    def vop_link(self, dvp: Vnode, name: str, vp: Vnode) -> None:
        d: RumpDir = dvp  # type: ignore[assignment]
        node: RumpNode = vp  # type: ignore[assignment]
        if node.nlink >= 65000:
            raise_errno(errno.EMLINK)
        now = self.clock.now_ns()
        d.attach(name, node)
        node.nlink += 1
        node.ctime = d.mtime = d.ctime = now

    def vop_remove(self, dvp: Vnode, name: str, vp: Vnode) -> None:
        d: RumpDir = dvp  # type: ignore[assignment]
        d.check_unpinned(name)              # before narrowing: a pinned name is foreign
        node: RumpNode = vp  # type: ignore[assignment]
        now = self.clock.now_ns()
        d.detach(name)
        node.nlink -= 1
        node.ctime = d.mtime = d.ctime = now
        if node.nlink == 0 and node.usecount == 0:
            self.vop_inactive(node)

    def vop_rmdir(self, dvp: Vnode, name: str, vp: Vnode) -> None:
        d: RumpDir = dvp  # type: ignore[assignment]
        d.check_unpinned(name)              # before narrowing: a pinned name is foreign
        node: RumpDir = vp  # type: ignore[assignment]
        if node.entries:
            raise_errno(errno.ENOTEMPTY)
        now = self.clock.now_ns()
        d.detach(name)
        node.nlink = 0
        node.ctime = d.mtime = d.ctime = now
        if node.usecount == 0:
            self.vop_inactive(node)

    def vop_rename(
        self, fdvp: Vnode, fname: str, fvp: Vnode, tdvp: Vnode, tname: str, tvp: Vnode | None
    ) -> None:
        rename(self, cast(RumpDir, fdvp), fname, fvp, cast(RumpDir, tdvp), tname, tvp,
               self.clock.now_ns())

    def vop_exchange(self, fdvp: Vnode, fname: str, tdvp: Vnode, tname: str) -> None:
        exchange(cast(RumpDir, fdvp), fname, cast(RumpDir, tdvp), tname, self.clock.now_ns())

    def vop_readdir(self, dvp: Vnode, cookie: int) -> Iterator[Dirent]:
        d: RumpDir = dvp  # type: ignore[assignment]
        self._relatime(d)
        return self._entries(d, cookie)

    @staticmethod
    def _entries(d: RumpDir, cookie: int) -> Iterator[Dirent]:
        # Cookie c resumes at slot c (the entry in slot i has cookie i + 1).
        # Any: each entry (a rumpfs node or an etfs key) has .ino, read inline
        # (node.entry_ino's call is a tenth of a FUSE READDIR's cost per name)
        slots, entries = d.slots, cast("dict[str, Any]", d.entries)
        i = max(cookie, 0)
        while i < len(slots):
            name = slots[i]
            i += 1
            if name is not None:
                node = entries[name]
                yield name, node.ino, node.type, i

    def vop_listnames(self, dvp: Vnode) -> list[str]:
        d: RumpDir = dvp  # type: ignore[assignment]
        self._relatime(d)
        return list(d.entries)      # dict order is cookie order (see node.RumpDir)

    def vop_opendir(self, dvp: Vnode) -> None:
        cast(RumpDir, dvp).readers += 1

    def vop_closedir(self, dvp: Vnode) -> None:
        cast(RumpDir, dvp).readers -= 1

    def vop_readlink(self, vp: Vnode) -> str:
        # Linux touches a link's atime when it is read or followed.
        node: RumpLink = vp  # type: ignore[assignment]
        self._relatime(node)
        return node.target

    # -- attributes ----------------------------------------------------------

    def vop_getattr(self, vp: Vnode) -> os.stat_result:
        node: RumpNode = vp  # type: ignore[assignment]  # every rumpfs vnode is one
        return node.stat()

    def vop_perms(self, vp: Vnode) -> tuple[int, int, int]:
        node: RumpNode = vp  # type: ignore[assignment]
        return node.mode, node.uid, node.gid

    def vop_access(self, vp: Vnode, want: int, cred: Cred) -> bool:
        node: RumpNode = vp  # type: ignore[assignment]
        if node.acl is not None:
            return posix_acl.may_access(cred, node.mode, node.uid, node.gid, want, node.acl,
                                        is_dir=node.type is VDIR)
        return may_access(cred, node.mode, node.uid, node.gid, want,
                          is_dir=node.type is VDIR)

    def vop_setattr(self, vp: Vnode, va: Vattr) -> None:
        node: RumpNode = vp  # type: ignore[assignment]
        touch = False
        memfd = None
        if node.type is VREG and isinstance(cast(RumpReg, node).data, memfd_data.MemfdData):
            memfd = cast(memfd_data.MemfdData, cast(RumpReg, node).data)
            memfd.sync(cast(RumpReg, node))         # the host's writes came first
        if va.size is not None:
            if node.type is VDIR:
                raise_errno(errno.EISDIR)
            if node.type is not VREG:
                raise_errno(errno.EINVAL)
            data = own_data(cast(RumpReg, node)) if va.size else cast(RumpReg, node).data
            # tmpfs (shmem_truncate_range) stamps mtime and ctime whenever the
            # file has pages, even when the size stays: truncate(2) to the
            # same size on a file with data changes its times.
            touch = data.pages > 0 and va.mtime_ns is None
            data.truncate(va.size)
        if va.mode is not None:
            node.mode = node.type.ifmt | (va.mode & 0o7777)
            if node.acl is not None:                # Linux's posix_acl_chmod
                node.acl = posix_acl.chmod(node.acl, va.mode)
        if va.uid is not None:
            node.uid = va.uid
        if va.gid is not None:
            node.gid = va.gid
        if va.atime_ns is not None:
            node.atime = va.atime_ns
        if va.mtime_ns is not None:
            node.mtime = va.mtime_ns
        if va.ctime_ns is not None:
            node.ctime = va.ctime_ns
        if touch:
            node.mtime = node.ctime = self.clock.now_ns()
        if memfd is not None:
            memfd.mirror(cast(RumpReg, node))       # so that the host's next write shows

    # -- data ----------------------------------------------------------------

    def vop_read(self, vp: Vnode, size: int, offset: int) -> bytes:
        # The hot path: _relatime inlined. A rumpfs VREG vnode is a RumpReg:
        # isinstance narrows it (the compiled variant checks every narrowing).
        if isinstance(vp, RumpReg):
            data = vp.data.read(size, offset)
            if not vp.mount.read_only:              # _relatime
                now = self.clock.now_ns()
                atime = vp.atime
                if atime <= vp.mtime or atime <= vp.ctime or now - atime >= _DAY_NS:
                    vp.atime = now
            return data
        if vp.type is VFIFO:
            return b""
        raise_errno(errno.EISDIR if vp.type is VDIR else errno.EINVAL)

    def vop_write(
        self, vp: Vnode, data: bytes | memoryview, offset: int, append: bool
    ) -> tuple[int, int]:
        if not isinstance(vp, RumpReg):     # a rumpfs VREG vnode is a RumpReg
            raise_errno(errno.EISDIR if vp.type is VDIR else errno.EINVAL)
        node = vp
        sparse = own_data(node)
        if append:
            offset = sparse.size
        n = len(data)
        if offset + n > _MAX_FILE:
            raise_errno(errno.EFBIG)
        end = sparse.write(data, offset)        # short only when the mount is full
        node.mtime = node.ctime = self.clock.now_ns()
        return end - offset, end

    def vop_fallocate(self, vp: Vnode, mode: int, offset: int, length: int) -> None:
        # tmpfs's set: allocate (mode 0, KEEP_SIZE) and PUNCH_HOLE|KEEP_SIZE.
        node: RumpNode = vp  # type: ignore[assignment]
        if mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE) or node.type is not VREG:
            raise_errno(errno.EOPNOTSUPP)
        sparse = own_data(cast(RumpReg, node))
        if mode & FALLOC_FL_PUNCH_HOLE:
            sparse.punch(offset, length)
        else:
            sparse.allocate(offset, length, bool(mode & FALLOC_FL_KEEP_SIZE))
        node.mtime = node.ctime = self.clock.now_ns()

    def vop_backing_fd(self, vp: Vnode, readable: bool, writable: bool) -> int | None:
        # A regular file moves to a host memfd (memfd_data) that the host then
        # reads and writes directly.
        if vp.type is not VREG or self.shm is None:
            return None
        return memfd_data.backing_fd(cast(RumpReg, vp), self.shm, self.clock, self.memfds)

    def vop_seekhole(self, vp: Vnode, offset: int, data: bool) -> int:
        node: RumpNode = vp  # type: ignore[assignment]
        if node.type is not VREG:
            return super().vop_seekhole(vp, offset, data)
        return cast(RumpReg, node).data.seek_data(offset, data)

    # -- extended attributes (user.*, trusted.*, security.*) and ACLs ------------

    def vop_getxattr(self, vp: Vnode, name: str) -> bytes:
        xattrs = cast(RumpNode, vp).xattrs
        value = xattrs.get(name) if xattrs else None
        if value is None:
            raise_errno(errno.ENODATA)
        return value

    def vop_setxattr(self, vp: Vnode, name: str, value: bytes, flags: int) -> None:
        node = cast(RumpNode, vp)
        xattrs = node.xattrs
        exists = xattrs is not None and name in xattrs
        if flags & XATTR_CREATE and exists:
            raise_errno(errno.EEXIST)
        if flags & XATTR_REPLACE and not exists:
            raise_errno(errno.ENODATA)
        if xattrs is None:
            xattrs = node.xattrs = {}
        xattrs[name] = bytes(value)
        node.ctime = self.clock.now_ns()

    def vop_listxattr(self, vp: Vnode) -> list[str]:
        node = cast(RumpNode, vp)
        names = []
        if node.acl is not None:
            names.append(posix_acl.XATTR_ACCESS)
        if node.dacl is not None:
            names.append(posix_acl.XATTR_DEFAULT)
        if node.xattrs:
            names.extend(node.xattrs)
        return names

    def vop_removexattr(self, vp: Vnode, name: str) -> None:
        node = cast(RumpNode, vp)
        if not node.xattrs or name not in node.xattrs:
            raise_errno(errno.ENODATA)
        del node.xattrs[name]
        node.ctime = self.clock.now_ns()

    def vop_getacl(self, vp: Vnode, kind: int) -> Acl | None:
        node = cast(RumpNode, vp)
        return node.acl if kind == posix_acl.ACCESS else node.dacl

    def vop_setacl(self, vp: Vnode, kind: int, acl: Acl | None) -> None:
        node = cast(RumpNode, vp)
        if node.type is VLNK:
            raise_errno(errno.EOPNOTSUPP)
        if kind == posix_acl.ACCESS:
            node.acl = acl
        else:
            node.dacl = acl
        node.ctime = self.clock.now_ns()

    def vop_tmpfile(self, dvp: Vnode, va: Vattr) -> Vnode:
        d: RumpDir = dvp  # type: ignore[assignment]
        node = RumpReg(self, d.mount, va, self._new_ino(d), self.clock.now_ns())
        node.nlink = 0                  # unnamed until linked (O_TMPFILE)
        return node

    def vop_inactive(self, vp: Vnode) -> None:
        # The last name and the last reference are gone: free the node's data
        # and its inode. Runs once per such node: a node with no name and no
        # reference cannot be reached again.
        node: RumpNode = vp  # type: ignore[assignment]
        if node.nlink == 0:
            rumpfs_data(node.mount).inodes -= 1
            if isinstance(node, RumpReg):
                node.data.clear()
            node.xattrs = node.acl = node.dacl = None
