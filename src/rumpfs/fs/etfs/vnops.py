"""etfs vnodes: host-backed files, devices and directories; the DIR jail lives here.

Allowed imports: ``rumpfs.vfs``, ``rumpfs.kern``, ``rumpfs.rumpuser``, ``rumpfs.errors``.

Each registration (:class:`Mapping`) is its own :class:`EtfsMount` with its own
device number, so renames and links between it and the rest of the namespace
give EXDEV. Its key vnode sits in a rumpfs directory (pinned there) and is
*not* the mount's root: namei would take a root without a covered vnode for
the top of the namespace. Instead the key answers ``..`` with the rumpfs
directory that holds it, and ``..`` of anything inside a mapped directory goes
to its parent inside the mapping, so ``..`` can never climb out to the host.

The jail: a host directory below the mapped one is reached only by
``openat(parent_fd, name, O_DIRECTORY|O_NOFOLLOW)`` from the mapped
directory's descriptor, one component at a time; every other host call on a
child names it as (parent descriptor, one component) and never follows a
host symbolic link. Host links show as VLNK vnodes whose targets namei
resolves in the kernel's namespace. Opened descriptors are checked to be
the inode the vnode stands for (st_dev, st_ino), so a name swapped on the host
behind our back reads as ENOENT.

Reference counting: host children get one vnode per host file (cached by
(st_dev, st_ino) in the mapping while Python holds it: an open file, a cwd, a
child's ``parent`` link), so inode numbers stay stable. Host descriptors:
the mapped directory's (held for the mapping's life), a bounded LRU of
directory descriptors, and per regular-file vnode one per open access mode,
shared by the kernel opens and closed by the last matching close. Removing
the mapping closes them all and revokes every vnode (EIO from then on).

Locking: the kernel lock is held throughout; host I/O runs under it.
"""

from __future__ import annotations

import enum
import os
import stat as st
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from typing import cast

from rumpfs.errors import errno, raise_errno
from rumpfs.rumpuser import HostFileType, Hypervisor
from rumpfs.vfs.genfs import GenfsOps
from rumpfs.vfs.mount import Mount
from rumpfs.vfs.vnode import VBLK, VCHR, VDIR, VFIFO, VLNK, VNON, VREG, VSOCK, Vattr, Vnode, VType
from rumpfs.vfs.vnode_if import Dirent

__all__ = ["EtfsMount", "EtfsNode", "EtfsOps", "EtfsType", "EtfsVfsOps", "Mapping"]

_ACCMODE = os.O_RDONLY | os.O_WRONLY | os.O_RDWR
_DIRFD_CACHE = 64          # directory descriptors kept open per mapping
_HOST_VTYPE = {
    HostFileType.REG: VREG, HostFileType.DIR: VDIR, HostFileType.LNK: VLNK,
    HostFileType.BLK: VBLK, HostFileType.CHR: VCHR, HostFileType.FIFO: VFIFO,
    HostFileType.SOCK: VSOCK,
}


class EtfsType(enum.IntEnum):
    """What a registration maps (NetBSD's ``enum rump_etfs_type``)."""

    REG = 0
    BLK = 1
    CHR = 2
    DIR = 3
    DIR_SUBDIRS = 4


class EtfsVfsOps:
    """Mount-level operations of one mapping."""

    def vfs_root(self, mp: Mount) -> Vnode:
        return mp.root

    def vfs_statvfs(self, mp: Mount) -> os.statvfs_result:
        m = cast(EtfsMount, mp).mapping
        m.check_live()
        if m.rootfd >= 0:
            return m.hyp.fstatvfs(m.rootfd)
        fd = m.hyp.open(m.hostpath, os.O_RDONLY)
        try:
            return m.hyp.fstatvfs(fd)
        finally:
            m.hyp.close(fd)

    def vfs_unmount(self, mp: Mount) -> None:
        """Mappings go with ``etfs_remove``, never by unmount."""

    def vfs_sync(self, mp: Mount) -> None:
        """Nothing buffered: writes go straight to the host."""


class EtfsMount(Mount):
    """The mount of one registration (fstype ``etfs``)."""

    __slots__ = ("mapping",)

    def __init__(self, dev: int, mapping: Mapping, read_only: bool = False) -> None:
        super().__init__("etfs", EtfsVfsOps(), dev, read_only)
        self.mapping = mapping


class EtfsNode(Vnode):
    """A vnode of a mapping: its key, or a host file below a mapped directory.

    ``parent`` is None for the key; for host children it is the directory
    vnode holding ``name``. ``hfds`` maps an access mode to [host fd, opens].
    """

    __slots__ = ("__weakref__", "hfds", "hid", "ino", "name", "parent", "unlinked")

    def __init__(self, vtype: VType, ops: EtfsOps, mount: EtfsMount,
                 parent: EtfsNode | None, name: str, hid: tuple[int, int]) -> None:
        super().__init__(vtype, ops, mount)
        self.parent = parent
        self.name = name
        self.hid = hid
        self.ino = hid[1]
        self.hfds: dict[int, list[int]] = {}
        self.unlinked = False        # removed through the kernel: keep serving open fds


class Mapping:
    """One registration: key, host file or directory, window, vnodes, host fds."""

    def __init__(self, hyp: Hypervisor, key: str, comps: tuple[str, ...], hostpath: str,
                 ftype: EtfsType, begin: int, size: int | None) -> None:
        self.hyp = hyp
        self.key = key
        self.comps = comps
        self.hostpath = hostpath
        self.ftype = ftype
        self.begin = begin
        self.size = size                      # None: the live rest of the host file
        self.rootfd = -1                      # DIR*: the mapped directory, held for life
        self.minor = -1                       # BLK/CHR: the rumpblk minor
        self.rdev = 0
        self.revoked = False
        self.dirfds: OrderedDict[EtfsNode, int] = OrderedDict()
        self.cache: weakref.WeakValueDictionary[tuple[int, int], EtfsNode] = (
            weakref.WeakValueDictionary())
        self.open_nodes: set[EtfsNode] = set()
        self.holder: Vnode | None = None      # the rumpfs directory holding the key
        self.name = comps[-1]
        self.mount: EtfsMount
        self.node: EtfsNode

    @property
    def is_dir(self) -> bool:
        return self.ftype >= EtfsType.DIR

    def check_live(self) -> None:
        if self.revoked:
            raise_errno(errno.EIO)

    def close_all(self) -> None:
        """Close every host descriptor of the mapping (remove, shutdown)."""
        fds: list[int] = list(self.dirfds.values())
        self.dirfds.clear()
        for node in self.open_nodes:
            fds.extend(ent[0] for ent in node.hfds.values())
            node.hfds.clear()
        self.open_nodes.clear()
        if self.rootfd >= 0:
            fds.append(self.rootfd)
            self.rootfd = -1
        for fd in fds:
            try:
                self.hyp.close(fd)
            except OSError:
                pass

    # -- directory descriptors: the jail's walk ------------------------------

    def dirfd(self, node: EtfsNode) -> int:
        """A host descriptor of directory ``node``, opened one component at a
        time from the nearest directory already open, each checked to be the
        host directory ``node`` stood for."""
        if node.parent is None:
            if self.rootfd < 0:
                raise_errno(errno.EIO)
            return self.rootfd
        cache = self.dirfds
        fd = cache.get(node)
        if fd is not None:
            cache.move_to_end(node)
            return fd
        # Trim before walking: the descriptor handed out by the previous
        # call (rename and link use two) is the newest and survives.
        while len(cache) >= _DIRFD_CACHE:
            _, old = cache.popitem(last=False)
            self.hyp.close(old)
        chain: list[EtfsNode] = []
        cur: EtfsNode = node
        while cur.parent is not None and cur not in cache:
            chain.append(cur)
            cur = cur.parent
        base = self.rootfd if cur.parent is None else cache[cur]
        if base < 0:
            raise_errno(errno.EIO)
        for n in reversed(chain):
            fd = open_same(self.hyp, base, n.name, os.O_RDONLY | os.O_DIRECTORY, n.hid)
            cache[n] = fd
            base = fd
        return base

    def forget_dir(self, node: EtfsNode) -> None:
        fd = self.dirfds.pop(node, None)
        if fd is not None:
            self.hyp.close(fd)

    def child(self, dvp: EtfsNode, name: str, s: os.stat_result) -> EtfsNode:
        """The vnode of host file ``name`` in ``dvp`` whose lstat is ``s``."""
        vtype = _HOST_VTYPE.get(HostFileType.from_mode(s.st_mode), VNON)
        hid = (s.st_dev, s.st_ino)
        node = self.cache.get(hid)
        if node is not None and node.type is vtype and not node.unlinked:
            node.parent = dvp
            node.name = name
            return node
        node = EtfsNode(vtype, cast(EtfsOps, dvp.ops), self.mount, dvp, name, hid)
        self.cache[hid] = node
        return node


def open_same(hyp: Hypervisor, dirfd: int, name: str, flags: int,
              hid: tuple[int, int]) -> int:
    """openat(dirfd, name) that must reach the host file ``hid`` (st_dev, st_ino):
    anything swapped in under that name since the lookup gives ENOENT."""
    fd = hyp.openat(dirfd, name, flags)
    try:
        s = hyp.fstat(fd)
    except OSError:
        hyp.close(fd)
        raise
    if (s.st_dev, s.st_ino) != hid:
        hyp.close(fd)
        raise_errno(errno.ENOENT)
    return fd


class EtfsOps(GenfsOps):
    """The vnode operations of every mapping (one vector per kernel)."""

    def __init__(self, hyp: Hypervisor) -> None:
        self.hyp = hyp

    # -- helpers ---------------------------------------------------------------

    @staticmethod
    def _m(vp: Vnode) -> Mapping:
        m = cast(EtfsMount, vp.mount).mapping
        if m.revoked:
            raise_errno(errno.EIO)
        return m

    def _at(self, m: Mapping, node: EtfsNode) -> tuple[int, str]:
        """(parent directory descriptor, name) of a host child."""
        assert node.parent is not None
        return m.dirfd(node.parent), node.name

    def _hostfd(self, m: Mapping, node: EtfsNode, want_write: bool) -> int:
        """An open host descriptor of regular file ``node`` for reading or writing."""
        hfds = node.hfds
        ent = hfds.get(os.O_WRONLY if want_write else os.O_RDONLY) or hfds.get(os.O_RDWR)
        if ent is None:
            raise_errno(errno.EBADF)
        return ent[0]

    def _open_host(self, m: Mapping, node: EtfsNode, acc: int) -> int:
        if node.parent is None:
            return self.hyp.open(m.hostpath, acc)
        dfd, name = self._at(m, node)
        return open_same(self.hyp, dfd, name, acc, node.hid)

    def _check_present(self, node: EtfsNode, fd: int) -> os.stat_result:
        """fstat of an open host file; EIO if it was removed on the host."""
        s = self.hyp.fstat(fd)
        if s.st_nlink == 0 and not node.unlinked:
            raise_errno(errno.EIO)
        return s

    def _hstat(self, m: Mapping, node: EtfsNode) -> os.stat_result:
        """The host's attributes of ``node``."""
        if node.hfds:
            return self._check_present(node, next(iter(node.hfds.values()))[0])
        if node.parent is None:
            if m.rootfd >= 0:
                return self.hyp.fstat(m.rootfd)
            return self.hyp.stat(m.hostpath)
        if node.type is VDIR:
            return self.hyp.fstat(m.dirfd(node))
        dfd, name = self._at(m, node)
        s = self.hyp.fstatat(dfd, name)
        if (s.st_dev, s.st_ino) != node.hid:
            raise_errno(errno.ENOENT)
        return s

    def _with_fd(self, m: Mapping, node: EtfsNode, acc: int) -> tuple[int, bool]:
        """A descriptor of ``node`` for an attribute change: (fd, close it after)."""
        if node.parent is None and m.rootfd >= 0:
            return m.rootfd, False
        if node.type is VDIR:
            return m.dirfd(node), False
        ent = node.hfds.get(acc) or node.hfds.get(os.O_RDWR)
        if ent is not None:
            return ent[0], False
        return self._open_host(m, node, acc), True

    # -- names -----------------------------------------------------------------

    def vop_lookup(self, dvp: Vnode, name: str) -> Vnode:
        d = cast(EtfsNode, dvp)
        m = self._m(d)
        if d.type is not VDIR:
            raise_errno(errno.ENOTDIR)
        if name == "..":
            if d.parent is None:
                assert m.holder is not None
                return m.holder
            return d.parent
        s = self.hyp.fstatat(m.dirfd(d), name)
        if m.ftype is EtfsType.DIR and st.S_ISDIR(s.st_mode):
            raise_errno(errno.ENOENT)         # DIR maps one level: subdirectories hidden
        return m.child(d, name, s)

    def _settle(self, m: Mapping, fd: int | None, dfd: int, name: str, va: Vattr,
                chmod: bool) -> None:
        """Give a new host file the mode and owner the kernel decided."""
        if chmod and va.mode is not None:
            if fd is not None:
                self.hyp.fchmod(fd, va.mode & 0o7777)
            else:
                self.hyp.fchmodat(dfd, name, va.mode & 0o7777)
        uid = -1 if va.uid is None else va.uid
        gid = -1 if va.gid is None else va.gid
        if uid != -1 or gid != -1:
            try:
                if fd is not None:
                    self.hyp.fchown(fd, uid, gid)
                else:
                    self.hyp.fchownat(dfd, name, uid, gid)
            except PermissionError:
                pass        # an unprivileged host keeps its own owner

    def vop_create(self, dvp: Vnode, name: str, va: Vattr) -> Vnode:
        d = cast(EtfsNode, dvp)
        m = self._m(d)
        if va.type is not VREG:
            raise_errno(errno.EPERM)          # no device, fifo or socket nodes on the host
        dfd = m.dirfd(d)
        mode = 0o600 if va.mode is None else va.mode & 0o7777
        fd = self.hyp.openat(dfd, name, os.O_RDONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            self._settle(m, fd, dfd, name, va, True)
            s = self.hyp.fstat(fd)
        finally:
            self.hyp.close(fd)
        return m.child(d, name, s)

    def vop_mkdir(self, dvp: Vnode, name: str, va: Vattr) -> Vnode:
        d = cast(EtfsNode, dvp)
        m = self._m(d)
        if m.ftype is not EtfsType.DIR_SUBDIRS:
            raise_errno(errno.EPERM)          # DIR maps files only
        dfd = m.dirfd(d)
        mode = 0o700 if va.mode is None else va.mode & 0o7777
        self.hyp.mkdirat(dfd, name, mode)
        fd = self.hyp.openat(dfd, name, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self._settle(m, fd, dfd, name, va, True)
            s = self.hyp.fstat(fd)
        finally:
            self.hyp.close(fd)
        return m.child(d, name, s)

    def vop_symlink(self, dvp: Vnode, name: str, va: Vattr, target: str) -> Vnode:
        d = cast(EtfsNode, dvp)
        m = self._m(d)
        dfd = m.dirfd(d)
        self.hyp.symlinkat(target, dfd, name)
        self._settle(m, None, dfd, name, va, False)
        return m.child(d, name, self.hyp.fstatat(dfd, name))

    def vop_link(self, dvp: Vnode, name: str, vp: Vnode) -> None:
        d, node = cast(EtfsNode, dvp), cast(EtfsNode, vp)
        m = self._m(d)
        if node.parent is None:
            raise_errno(errno.EXDEV)
        tfd = m.dirfd(d)
        ffd, fname = self._at(m, node)
        self.hyp.linkat(ffd, fname, tfd, name)

    def _unlinked(self, m: Mapping, node: EtfsNode) -> None:
        """``node`` lost a name through the kernel; the last one ends its host identity."""
        try:
            nlink = self._hstat(m, node).st_nlink
        except OSError:
            nlink = 0
        if nlink == 0:
            node.unlinked = True
            if m.cache.get(node.hid) is node:
                del m.cache[node.hid]

    def vop_remove(self, dvp: Vnode, name: str, vp: Vnode) -> None:
        d, node = cast(EtfsNode, dvp), cast(EtfsNode, vp)
        m = self._m(d)
        self.hyp.unlinkat(m.dirfd(d), name, False)
        self._unlinked(m, node)

    def vop_rmdir(self, dvp: Vnode, name: str, vp: Vnode) -> None:
        d, node = cast(EtfsNode, dvp), cast(EtfsNode, vp)
        m = self._m(d)
        self.hyp.unlinkat(m.dirfd(d), name, True)
        m.forget_dir(node)
        node.unlinked = True
        if m.cache.get(node.hid) is node:
            del m.cache[node.hid]

    def vop_rename(
        self, fdvp: Vnode, fname: str, fvp: Vnode, tdvp: Vnode, tname: str, tvp: Vnode | None
    ) -> None:
        fd_, td = cast(EtfsNode, fdvp), cast(EtfsNode, tdvp)
        m = self._m(fd_)
        ffd = m.dirfd(fd_)
        tfd = m.dirfd(td)
        self.hyp.renameat(ffd, fname, tfd, tname)
        moved = cast(EtfsNode, fvp)
        moved.parent = td
        moved.name = tname
        if tvp is not None:
            old = cast(EtfsNode, tvp)
            if old.type is VDIR:
                m.forget_dir(old)
                old.unlinked = True
                if m.cache.get(old.hid) is old:
                    del m.cache[old.hid]
            else:
                self._unlinked(m, old)

    def vop_readdir(self, dvp: Vnode, cookie: int) -> Iterator[Dirent]:
        d = cast(EtfsNode, dvp)
        m = self._m(d)
        if d.type is not VDIR:
            raise_errno(errno.ENOTDIR)
        ents = sorted(self.hyp.listdir(m.dirfd(d)))
        if m.ftype is EtfsType.DIR:
            ents = [e for e in ents if e[1] is not HostFileType.DIR]
        return self._entries(ents, max(cookie, 0))

    @staticmethod
    def _entries(ents: list[tuple[str, HostFileType, int]], start: int) -> Iterator[Dirent]:
        for i in range(start, len(ents)):
            name, ft, ino = ents[i]
            yield name, ino, _HOST_VTYPE.get(ft, VNON), i + 1

    def vop_readlink(self, vp: Vnode) -> str:
        node = cast(EtfsNode, vp)
        m = self._m(node)
        if node.type is not VLNK or node.parent is None:
            raise_errno(errno.EINVAL)
        dfd, name = self._at(m, node)
        return self.hyp.readlinkat(dfd, name)

    # -- attributes --------------------------------------------------------------

    def vop_getattr(self, vp: Vnode) -> os.stat_result:
        node = cast(EtfsNode, vp)
        m = self._m(node)
        s = self._hstat(m, node)
        perm = st.S_IMODE(s.st_mode)
        if node.parent is None:
            # The key: the mapping's type, the window's size, the host's rest.
            if m.is_dir:
                size, mode, rdev = s.st_size, st.S_IFDIR | perm, 0
            elif m.ftype is EtfsType.REG:
                size = m.size if m.size is not None else max(0, s.st_size - m.begin)
                mode, rdev = st.S_IFREG | perm, 0
            else:
                size = cast(int, m.size)
                mode = (st.S_IFBLK if m.ftype is EtfsType.BLK else st.S_IFCHR) | perm
                rdev = m.rdev
            nlink = s.st_nlink if m.is_dir else 1
            blocks = s.st_blocks if m.is_dir or m.size is None else (size + 511) // 512
        else:
            size, mode, rdev, nlink, blocks = (s.st_size, node.type.ifmt | perm, 0,
                                               s.st_nlink, s.st_blocks)
        return os.stat_result((
            mode, node.ino, m.mount.dev, nlink, s.st_uid, s.st_gid, size,
            int(s.st_atime), int(s.st_mtime), int(s.st_ctime),
            s.st_atime, s.st_mtime, s.st_ctime, s.st_atime_ns, s.st_mtime_ns, s.st_ctime_ns,
            s.st_blksize, blocks, rdev,
        ))

    def vop_setattr(self, vp: Vnode, va: Vattr) -> None:
        node = cast(EtfsNode, vp)
        m = self._m(node)
        if va.size is not None:
            self._truncate(m, node, va.size)
        if va.mode is None and va.uid is None and va.gid is None \
                and va.atime_ns is None and va.mtime_ns is None:
            return
        if node.parent is not None and node.type is not VDIR:
            # A child by (parent descriptor, name): never opened, never followed.
            dfd, name = self._at(m, node)
            if va.mode is not None:
                self.hyp.fchmodat(dfd, name, va.mode & 0o7777)
            if va.uid is not None or va.gid is not None:
                self.hyp.fchownat(dfd, name, _id(va.uid), _id(va.gid))
            if va.atime_ns is not None or va.mtime_ns is not None:
                self.hyp.utimensat(dfd, name, va.atime_ns, va.mtime_ns)
            return
        fd, close = self._with_fd(m, node, os.O_RDONLY)
        try:
            if va.mode is not None:
                self.hyp.fchmod(fd, va.mode & 0o7777)
            if va.uid is not None or va.gid is not None:
                self.hyp.fchown(fd, _id(va.uid), _id(va.gid))
            if va.atime_ns is not None or va.mtime_ns is not None:
                self.hyp.futimens(fd, va.atime_ns, va.mtime_ns)
        finally:
            if close:
                self.hyp.close(fd)

    def _truncate(self, m: Mapping, node: EtfsNode, length: int) -> None:
        if node.type is VDIR:
            raise_errno(errno.EISDIR)
        if node.type is not VREG:
            raise_errno(errno.EINVAL)
        if node.parent is None and m.size is not None:
            raise_errno(errno.EINVAL)         # a fixed window cannot change size
        begin = m.begin if node.parent is None else 0
        fd, close = self._with_fd(m, node, os.O_WRONLY)
        try:
            self._check_present(node, fd)
            self.hyp.ftruncate(fd, begin + length)
        finally:
            if close:
                self.hyp.close(fd)

    # -- open files ----------------------------------------------------------------

    def vop_open(self, vp: Vnode, flags: int) -> None:
        node = cast(EtfsNode, vp)
        m = self._m(node)
        if node.type is not VREG:
            if node.type is VDIR and node.parent is not None:
                m.dirfd(node)                 # ENOENT now if it went away
            return
        acc = flags & _ACCMODE
        ent = node.hfds.get(acc)
        if ent is not None:
            ent[1] += 1
            return
        fd = self._open_host(m, node, acc)
        node.hfds[acc] = [fd, 1]
        m.open_nodes.add(node)

    def vop_close(self, vp: Vnode, flags: int) -> None:
        node = cast(EtfsNode, vp)
        ent = node.hfds.get(flags & _ACCMODE)
        if ent is None:
            return                            # revoked: already closed
        ent[1] -= 1
        if ent[1] > 0:
            return
        del node.hfds[flags & _ACCMODE]
        m = cast(EtfsMount, node.mount).mapping
        if not node.hfds:
            m.open_nodes.discard(node)
        self.hyp.close(ent[0])

    def vop_backing_fd(self, vp: Vnode, readable: bool, writable: bool) -> int | None:
        """The open host descriptor of a whole host file: a REG key mapping with
        no window, or a regular file below a mapped directory (FUSE passthrough)."""
        node = cast(EtfsNode, vp)
        m = self._m(node)
        if node.type is not VREG or node.unlinked:
            return None
        if node.parent is None and (m.ftype is not EtfsType.REG or m.begin or m.size is not None):
            return None
        acc = os.O_RDWR if readable and writable else os.O_WRONLY if writable else os.O_RDONLY
        ent = node.hfds.get(acc) or node.hfds.get(os.O_RDWR)
        return None if ent is None else ent[0]

    def vop_read(self, vp: Vnode, size: int, offset: int) -> bytes:
        node = cast(EtfsNode, vp)
        m = self._m(node)
        if node.type is not VREG:
            raise_errno(errno.EISDIR if node.type is VDIR else errno.EINVAL)
        fd = self._hostfd(m, node, False)
        if node.parent is not None:
            self._check_present(node, fd)
            return self.hyp.pread(fd, size, offset)
        limit = m.size
        if limit is not None:
            if offset >= limit:
                return b""
            if size > limit - offset:
                size = limit - offset
        self._check_present(node, fd)
        data = self.hyp.pread(fd, size, m.begin + offset)
        if limit is not None and len(data) < size:
            raise_errno(errno.EIO)            # the host file shrank under a fixed window
        return data

    def vop_write(
        self, vp: Vnode, data: bytes | memoryview, offset: int, append: bool
    ) -> tuple[int, int]:
        node = cast(EtfsNode, vp)
        m = self._m(node)
        if node.type is not VREG:
            raise_errno(errno.EISDIR if node.type is VDIR else errno.EINVAL)
        fd = self._hostfd(m, node, True)
        s = self._check_present(node, fd)
        key = node.parent is None
        begin = m.begin if key else 0
        limit = m.size if key else None
        n = len(data)
        if append:
            offset = limit if limit is not None else max(0, s.st_size - begin)
        if limit is not None:
            if offset >= limit:
                raise_errno(errno.ENOSPC)
            if n > limit - offset:
                n = limit - offset
                data = data[:n]
        pos = begin + offset
        done = self.hyp.pwrite(fd, data, pos)
        while 0 < done < n:      # a short host write: try the rest once more
            try:
                w = self.hyp.pwrite(fd, data[done:], pos + done)
            except OSError:
                break                # what was written counts; the error comes next time
            if w <= 0:
                break
            done += w
        return done, offset + done

    def vop_fsync(self, vp: Vnode, datasync: bool) -> None:
        node = cast(EtfsNode, vp)
        m = self._m(node)
        if node.type is VDIR:
            self.hyp.fsync(m.dirfd(node) if node.parent is not None else m.rootfd)
            return
        for fd, _ in node.hfds.values():
            self.hyp.fsync(fd, datasync)

    # -- extended attributes: DIR mappings pass user.* through to the host ------

    def _xattr_fd(self, vp: Vnode, name: str | None) -> tuple[Mapping, int, bool]:
        """(mapping, host descriptor, close it after) for an xattr call on a file
        or directory of a DIR mapping; EOPNOTSUPP for anything else."""
        node = cast(EtfsNode, vp)
        m = self._m(node)
        if not m.is_dir or (name is not None and not name.startswith("user.")) \
                or node.type not in (VREG, VDIR):
            raise_errno(errno.EOPNOTSUPP)
        fd, close = self._with_fd(m, node, os.O_RDONLY)
        return m, fd, close

    def vop_getxattr(self, vp: Vnode, name: str) -> bytes:
        _, fd, close = self._xattr_fd(vp, name)
        try:
            return self.hyp.fgetxattr(fd, name)
        finally:
            if close:
                self.hyp.close(fd)

    def vop_setxattr(self, vp: Vnode, name: str, value: bytes, flags: int) -> None:
        _, fd, close = self._xattr_fd(vp, name)
        try:
            self.hyp.fsetxattr(fd, name, value, flags)
        finally:
            if close:
                self.hyp.close(fd)

    def vop_listxattr(self, vp: Vnode) -> list[str]:
        try:
            _, fd, close = self._xattr_fd(vp, None)
        except OSError:
            return []
        try:
            return [n for n in self.hyp.flistxattr(fd) if n.startswith("user.")]
        except OSError as e:
            if e.errno == errno.EOPNOTSUPP:
                return []
            raise
        finally:
            if close:
                self.hyp.close(fd)

    def vop_removexattr(self, vp: Vnode, name: str) -> None:
        _, fd, close = self._xattr_fd(vp, name)
        try:
            self.hyp.fremovexattr(fd, name)
        finally:
            if close:
                self.hyp.close(fd)

    def vop_inactive(self, vp: Vnode) -> None:
        pass


def _id(v: int | None) -> int:
    return -1 if v is None else v
