"""rumpfs nodes and directory entries: construct, attach, detach, destroy.

Allowed imports: ``rumpfs.vfs``, ``rumpfs.kern``, ``rumpfs.errors``.

A node is its own vnode (see ``vfs.vnode``): in-memory nodes are never
evicted, so a separate vnode cache would only add indirection.

Invariants:
- a directory's ``nlink`` is 2 + its subdirectories; ``parent`` is the
  directory holding it (the root's parent is itself);
- ``entries`` iterates in cookie order: a name's cookie is fixed when it is
  entered and changes only if it is removed and entered again, so readdir
  resumed at a cookie never repeats or skips a name present throughout;
- a node with ``nlink == 0`` is reachable only through references
  (open files, cwd); its data goes when the last one does.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Final, cast

from rumpfs.errors import errno, raise_errno
from rumpfs.fs.rumpfs.data import Space, SparseData
from rumpfs.fs.rumpfs.memfd_data import MemfdData
from rumpfs.vfs.acl import Acl
from rumpfs.vfs.mount import Mount
from rumpfs.vfs.vnode import VDIR, VLNK, VREG, Vattr, Vnode, VType

if TYPE_CHECKING:
    from rumpfs.fs.rumpfs.vnops import RumpfsOps

__all__ = [
    "BOGO_DIRENT_SIZE", "RumpDir", "RumpLink", "RumpNode", "RumpReg", "RumpfsData", "entry_ino",
    "own_data", "rumpfs_data",
]

BOGO_DIRENT_SIZE: Final = 20       # tmpfs's directory size per entry (st_size of directories)
_NS: Final = 1_000_000_000
_IFMT: Final = {t: t.ifmt for t in VType}
_COMPACT_MIN: Final = 64


class RumpfsData:
    """A rumpfs mount's private state (its ``Mount.data``): the vnode-op vector
    its nodes share, the next inode number to hand out, and the accounting
    statvfs reports: ``space`` (pages of file data, with the ``size=``
    limit) and ``inodes`` (nodes alive, with the ``nr_inodes=`` limit).

    ``empty`` is the store every regular file shares until something is
    first written, truncated or fallocated into it (see :func:`own_data`):
    a file that never held data costs one GC-tracked object (its node), not
    two, which is what the cyclic GC's full collections walk at 200k files.
    Nothing changes ``empty``: its size and pages stay 0."""

    __slots__ = ("empty", "inode_limit", "inodes", "next_ino", "space", "vnops")

    def __init__(self, vnops: RumpfsOps, next_ino: int, space: Space | None = None,
                 inode_limit: int | None = None) -> None:
        self.vnops = vnops
        self.next_ino = next_ino
        self.space = space if space is not None else Space()
        self.empty = SparseData(self.space, shared=True)
        self.inodes = 1                         # the root
        self.inode_limit = inode_limit


def rumpfs_data(mp: Mount) -> RumpfsData:
    """``mp.data`` of a rumpfs mount (TypeError for any other mount)."""
    data = mp.data
    if not isinstance(data, RumpfsData):
        raise TypeError(f"not a rumpfs mount: {mp!r}")
    return data


class RumpNode(Vnode):
    """Attributes common to every rumpfs node."""

    __slots__ = (
        "acl", "atime", "ctime", "dacl", "gid", "ino", "mode", "mtime", "nlink", "rdev", "uid",
        "xattrs",
    )

    def __init__(self, vtype: VType, ops: RumpfsOps, mount: Mount, va: Vattr,
                 ino: int, now: int) -> None:
        super().__init__(vtype, ops, mount)
        self.ino = ino
        self.mode = _IFMT[vtype] | ((va.mode or 0) & 0o7777)
        self.uid = va.uid or 0
        self.gid = va.gid or 0
        self.nlink = 1
        self.rdev = va.rdev
        self.atime = self.mtime = self.ctime = now
        self.xattrs: dict[str, bytes] | None = None    # user.*, trusted.*, security.*
        self.acl: Acl | None = None                     # system.posix_acl_access
        self.dacl: Acl | None = None                    # system.posix_acl_default (dirs)

    def size(self) -> int:
        return 0

    def blocks(self) -> int:
        return 0

    def stat(self) -> os.stat_result:
        return make_stat(self, self.size(), self.blocks(), self.rdev)


def entry_ino(vp: Vnode) -> int:
    """The inode number of a directory entry: a rumpfs node's, or a foreign key's (etfs)."""
    if isinstance(vp, RumpNode):
        return vp.ino
    ino: int = cast(Any, vp).ino
    return ino


def make_stat(node: RumpNode, size: int, blocks: int, rdev: int) -> os.stat_result:
    """The stat of ``node``. Times split into seconds once per distinct value
    (mtime == ctime after any write, all three equal after a create)."""
    a, m, c = node.atime, node.mtime, node.ctime
    ms = m // _NS
    mf = m / 1e9
    if c == m:
        cs, cf = ms, mf
    else:
        cs, cf = c // _NS, c / 1e9
    if a == m:
        as_, af = ms, mf
    else:
        as_, af = a // _NS, a / 1e9
    return os.stat_result((
        node.mode, node.ino, node.mount.dev, node.nlink, node.uid, node.gid, size,
        as_, ms, cs, af, mf, cf, a, m, c, 4096, blocks, rdev,
    ))


class RumpReg(RumpNode):
    """A regular file with sparse in-memory data (or a host memfd, see memfd_data)."""

    __slots__ = ("data",)

    def __init__(self, ops: RumpfsOps, mount: Mount, va: Vattr, ino: int,
                 now: int) -> None:
        super().__init__(VREG, ops, mount, va, ino, now)
        # the mount's shared empty store until own_data(); MemfdData once the
        # FUSE frontend has opened it with passthrough
        self.data: SparseData | MemfdData = rumpfs_data(mount).empty

    def stat(self) -> os.stat_result:
        data = self.data
        if isinstance(data, MemfdData):     # the host may have written it: ask
            size, blocks = data.sync(self)
            return make_stat(self, size, blocks, 0)
        return make_stat(self, data.size, data.pages * 8, 0)


def own_data(node: RumpReg) -> SparseData | MemfdData:
    """``node.data`` ready to be changed: a file still sharing its mount's empty
    store gets a store of its own first. Every write, truncation and fallocate
    goes through here; reads, stat and SEEK_DATA read the shared one as it is
    (size 0, no pages)."""
    data = node.data
    if isinstance(data, SparseData) and data.shared:    # no Mount attribute read:
        data = node.data = SparseData(data.space)       # the write path's cost
    return data


class RumpLink(RumpNode):
    """A symbolic link."""

    __slots__ = ("target",)

    def __init__(self, ops: RumpfsOps, mount: Mount, va: Vattr, ino: int, now: int,
                 target: str) -> None:
        super().__init__(VLNK, ops, mount, va, ino, now)
        self.target = target

    def size(self) -> int:
        return len(os.fsencode(self.target))


class RumpDir(RumpNode):
    """A directory: O(1) lookup by name, stable readdir cookies.

    ``entries`` (name -> node) is the directory. ``slots`` is an append-only
    log of names in cookie order (None where a name was removed); ``where``
    gives a name's index in it. A name's cookie is its index + 1. The log is
    compacted only while no directory stream is open (``readers == 0``), so
    cookies handed out to an open stream stay valid.
    """

    __slots__ = ("entries", "names", "parent", "pinned", "readers", "slots", "tombstones",
                 "where")

    def __init__(self, ops: RumpfsOps, mount: Mount, va: Vattr, ino: int, now: int,
                 parent: RumpDir | None) -> None:
        super().__init__(VDIR, ops, mount, va, ino, now)
        self.nlink = 2
        self.parent: RumpDir = parent if parent is not None else self
        # a RumpNode, or a foreign key vnode (etfs) under a pinned name: typed
        # as what it is, since the compiled variant checks types at run time
        self.entries: dict[str, Vnode] = {}
        self.names = self.entries           # vop_lookup is entries[name]: namei's fast path
        self.where: dict[str, int] = {}
        self.slots: list[str | None] = []
        self.tombstones = 0
        self.readers = 0
        self.pinned: set[str] | None = None      # names that only their owner may remove

    def size(self) -> int:
        return (len(self.entries) + 2) * BOGO_DIRENT_SIZE

    def stat(self) -> os.stat_result:
        # RumpNode.stat with size() inlined and no blocks (a directory has none)
        return make_stat(self, (len(self.entries) + 2) * BOGO_DIRENT_SIZE, 0, self.rdev)

    def attach(self, name: str, node: Vnode) -> None:
        """Enter ``node`` as ``name`` (which must be free). ``node`` may be a
        foreign vnode with ``ino`` and ``type`` (an etfs key, pinned here)."""
        self.entries[name] = node
        self.where[name] = len(self.slots)
        self.slots.append(name)
        if node.type is VDIR:
            if isinstance(node, RumpDir):   # else a foreign directory (an etfs key)
                node.parent = self
            self.nlink += 1

    def detach(self, name: str) -> Vnode:
        """Remove entry ``name``; returns its node (link counts are the caller's)."""
        node = self.entries.pop(name)
        self.slots[self.where.pop(name)] = None
        self.tombstones += 1
        if node.type is VDIR:
            self.nlink -= 1
        if self.tombstones > _COMPACT_MIN and self.tombstones * 2 > len(self.slots) \
                and not self.readers:
            self._compact()
        return node

    def replace(self, name: str, node: Vnode) -> Vnode:
        """Point existing entry ``name`` at ``node``, keeping its cookie."""
        old = self.entries[name]
        self.entries[name] = node
        if old.type is VDIR:
            self.nlink -= 1
        if node.type is VDIR:
            if isinstance(node, RumpDir):
                node.parent = self
            self.nlink += 1
        return old

    def check_unpinned(self, name: str) -> None:
        """EBUSY if ``name`` is pinned here (an etfs key)."""
        if self.pinned and name in self.pinned:
            raise_errno(errno.EBUSY)

    def _compact(self) -> None:
        names = [name for name in self.slots if name is not None]
        self.slots = list(names)
        self.where = {name: i for i, name in enumerate(names)}
        self.tombstones = 0
