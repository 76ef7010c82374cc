"""etfs registrations of one kernel: keys, their rules, register and remove.

Allowed imports: ``rumpfs.vfs``, ``rumpfs.kern``, ``rumpfs.rumpuser``, ``rumpfs.errors``.

Outline of :meth:`EtfsRegistry.register`, in the order of its errors:
  1. the key: absolute (EINVAL), normalised as Linux reads a path (``//``
     and ``.`` vanish, ``..`` goes up), not ``/`` itself (EINVAL);
  2. against other keys, by path component: the same key, or a DIR* key
     above or below the new one, or the new DIR* key above or below an old
     one (EEXIST);
  3. the namespace: existing parents must be directories (ENOTDIR) outside
     any mapping (EEXIST), and the name must be free (EEXIST);
  4. the host: ``getfileinfo`` (its errno, ENOENT when missing); DIR* need a
     directory (ENOTDIR) and no window (EISDIR); others a window inside the
     file (EINVAL), BLK/CHR one aligned to 512 bytes (EINVAL);
  5. then missing parents are made (root, 0755, as ``mkdir -p``), the host
     side is opened (DIR*: the directory; BLK/CHR: a rumpblk minor), and the
     key vnode is entered in its parent and pinned there.

A read-only registration is a read-only :class:`EtfsMount`: the system
calls refuse every change with EROFS (as on a ``mount -o ro``), host files
are opened read-only, and a BLK/CHR key's device refuses opens for writing
with EROFS.

The key directory is any rumpfs directory: this module knows it only as a
:class:`KeyDir` (attach/detach/pinned), as rumpfs is a sibling layer.

Locking: the caller (``Kernel``) holds the kernel lock.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from rumpfs.errors import errno, raise_errno
from rumpfs.fs.etfs.vnops import EtfsMount, EtfsNode, EtfsOps, EtfsType, Mapping
from rumpfs.rumpuser import HostFileType, Hypervisor
from rumpfs.vfs.mount import Vfs
from rumpfs.vfs.namei import lookup_last, namei
from rumpfs.vfs.vnode import VBLK, VCHR, VDIR, VNON, VREG, Vattr, Vnode

if TYPE_CHECKING:
    from rumpfs.vfs.proc import VProc

__all__ = ["BlockDevices", "EtfsRegistry", "KeyDir", "normalize_key"]

SECTOR = 512


@runtime_checkable
class KeyDir(Protocol):
    """A directory that can hold a foreign vnode under a pinned name (rumpfs's RumpDir)."""

    pinned: set[str] | None

    def attach(self, name: str, node: EtfsNode) -> None: ...

    def detach(self, name: str) -> object: ...


class BlockDevices(Protocol):
    """What etfs needs of rumpblk (handed in by the kernel: dev is not ours to import)."""

    major: int

    def register(self, hostpath: str, begin: int, size: int, read_only: bool = False) -> int:
        """Open ``hostpath``'s window as a new device (``read_only``: never
        for writing); returns its minor."""
        ...

    def deregister(self, minor: int) -> None: ...


def normalize_key(key: str) -> tuple[str, ...]:
    """The components of absolute ``key``; EINVAL if relative or ``/``."""
    if not key.startswith("/"):
        raise_errno(errno.EINVAL)
    comps: list[str] = []
    for c in key.split("/"):
        if c in ("", "."):
            continue
        if c == "..":
            if comps:
                comps.pop()
            continue
        comps.append(c)
    if not comps:
        raise_errno(errno.EINVAL)
    return tuple(comps)


class EtfsRegistry:
    """The mappings of one kernel."""

    def __init__(self, vfs: Vfs, hyp: Hypervisor, disks: BlockDevices) -> None:
        self.vfs = vfs
        self.hyp = hyp
        self.disks = disks
        self.ops = EtfsOps(hyp)
        self.mappings: dict[tuple[str, ...], Mapping] = {}

    # -- register ------------------------------------------------------------

    def _check_keys(self, comps: tuple[str, ...], isdir: bool) -> None:
        for old in self.mappings.values():
            oc = old.comps
            n = min(len(oc), len(comps))
            if oc[:n] != comps[:n]:
                continue
            if len(oc) == len(comps) or (len(oc) < len(comps) and old.is_dir) or (
                    len(comps) < len(oc) and isdir):
                raise_errno(errno.EEXIST)

    def _walk_parents(self, p: VProc, comps: tuple[str, ...]) -> tuple[Vnode, int]:
        """The deepest existing parent directory of the key and how many
        components it covers; checks it and the free name (if reached)."""
        root = p.root
        dvp = root
        depth = 0
        for i, comp in enumerate(comps[:-1]):
            child = lookup_last(dvp, comp)
            if child is None:
                return dvp, depth
            vp = namei(p, "/" + "/".join(comps[:i + 1]), root, True)
            if vp.type is not VDIR:
                raise_errno(errno.ENOTDIR)       # a REG/BLK/CHR key as a parent too
            if isinstance(vp.mount, EtfsMount):
                raise_errno(errno.EEXIST)        # below another mapping
            dvp = vp
            depth = i + 1
        if lookup_last(dvp, comps[-1]) is not None:
            raise_errno(errno.EEXIST)
        return dvp, depth

    def _check_host(self, hostpath: str, ftype: EtfsType, begin: int,
                    size: int | None) -> int | None:
        """Validate the host side; returns the window size (None: live)."""
        hsize, ft = self.hyp.getfileinfo(hostpath)
        if ftype >= EtfsType.DIR:
            if ft is not HostFileType.DIR:
                raise_errno(errno.ENOTDIR)
            if begin != 0 or size is not None:
                raise_errno(errno.EISDIR)
            return None
        if ft is HostFileType.DIR:
            raise_errno(errno.EISDIR)
        if ft not in (HostFileType.REG, HostFileType.BLK, HostFileType.CHR):
            raise_errno(errno.EINVAL)
        if begin < 0 or (size is not None and size < 0) or begin > hsize:
            raise_errno(errno.EINVAL)
        if size is not None and begin + size > hsize:
            raise_errno(errno.EINVAL)
        if ftype is EtfsType.REG:
            return size
        if size is None:
            size = hsize - begin
        if begin % SECTOR or size % SECTOR:
            raise_errno(errno.EINVAL)
        return size

    def register(self, p: VProc, key: str, hostpath: str, ftype: EtfsType,
                 begin: int = 0, size: int | None = None, read_only: bool = False) -> Mapping:
        ftype = EtfsType(ftype)
        comps = normalize_key(key)
        isdir = ftype >= EtfsType.DIR
        self._check_keys(comps, isdir)
        dvp, depth = self._walk_parents(p, comps)
        wsize = self._check_host(hostpath, ftype, begin, size)
        if dvp.mount.read_only:
            raise_errno(errno.EROFS)
        for comp in comps[depth:-1]:        # mkdir -p, as root
            parent, dvp = dvp, dvp.ops.vop_mkdir(dvp, comp, Vattr(VDIR, 0o755, 0, 0))
            self.vfs.notify_entry(parent, comp)
        if not isinstance(dvp, KeyDir):
            raise_errno(errno.EOPNOTSUPP)   # only rumpfs directories hold keys
        m = Mapping(self.hyp, "/" + "/".join(comps), comps, hostpath, ftype, begin, wsize)
        m.mount = EtfsMount(self.vfs.new_dev(), m, read_only)
        if isdir:
            m.rootfd = self.hyp.open(hostpath, os.O_RDONLY | os.O_DIRECTORY)
            s = self.hyp.fstat(m.rootfd)
            vtype = VDIR
        else:
            s = self.hyp.stat(hostpath)
            vtype = VREG
            if ftype is not EtfsType.REG:
                assert wsize is not None
                m.minor = self.disks.register(hostpath, begin, wsize, read_only)
                m.rdev = os.makedev(self.disks.major, m.minor)
                vtype = VBLK if ftype is EtfsType.BLK else VCHR
        node = EtfsNode(vtype, self.ops, m.mount, None, comps[-1], (s.st_dev, s.st_ino))
        m.node = node
        # Not the key: namei takes a root without a covered vnode for the top
        # of the namespace. The key answers ".." itself (see vnops).
        m.mount.root = EtfsNode(VNON, self.ops, m.mount, None, "", (-1, 0))
        m.holder = dvp
        dvp.attach(comps[-1], node)
        if dvp.pinned is None:
            dvp.pinned = set()
        dvp.pinned.add(comps[-1])
        self.mappings[comps] = m
        self.vfs.notify_entry(dvp, comps[-1])
        return m

    # -- remove --------------------------------------------------------------

    def remove(self, key: str) -> None:
        """Undo a registration: unpin and detach the key, close the host side,
        revoke every vnode of the mapping (EIO from now on)."""
        comps = normalize_key(key)
        m = self.mappings.get(comps)
        if m is None:
            raise_errno(errno.ENOENT)
        if m.rdev and m.ftype is EtfsType.BLK and m.rdev in self.vfs.blk_mounted:
            raise_errno(errno.EBUSY)        # a file system is mounted on the device
        del self.mappings[comps]
        holder = m.holder
        if isinstance(holder, KeyDir):
            if holder.pinned is not None:
                holder.pinned.discard(m.name)
            holder.detach(m.name)
        self._revoke(m)
        if holder is not None:
            self.vfs.notify_entry(holder, m.name)
        self.vfs.notify(m.node)

    def _revoke(self, m: Mapping) -> None:
        m.revoked = True
        try:
            m.close_all()
        finally:
            if m.minor >= 0:
                self.disks.deregister(m.minor)

    def shutdown(self) -> None:
        """Close every host descriptor of every mapping (kernel shutdown)."""
        for m in list(self.mappings.values()):
            try:
                self._revoke(m)
            except OSError:
                pass

    @property
    def keys(self) -> list[str]:
        return [m.key for m in self.mappings.values()]
