"""Vnodes: the file system independent face of a file.

Allowed imports: ``rumpfs.kern``, ``rumpfs.errors``.

A file system subclasses :class:`Vnode` for its nodes (rumpfs keeps node and
vnode as one object, as its in-memory nodes are never evicted) and supplies
the operations through ``ops`` (see ``vnode_if``).

Reference counting: ``usecount`` counts holders that outlive one system call
— open files, a process's cwd or root, FUSE lookup counts, mounts. Under the
kernel lock a vnode reached by namei stays alive until the call returns, so
lookups themselves take no reference. When the count drops to zero the file
system's ``vop_inactive`` runs (an unlinked node frees its data there).

Locking: everything here is guarded by the kernel lock.
"""

from __future__ import annotations

import enum
import stat as st
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rumpfs.vfs.mount import Mount
    from rumpfs.vfs.vnode_if import VnodeOps

__all__ = [
    "NAME_MAX", "PATH_MAX", "SYMLOOP_MAX", "VBLK", "VCHR", "VDIR", "VFIFO", "VLNK", "VNON", "VREG",
    "VSOCK", "VType", "Vattr", "Vnode", "vref", "vrele",
]

NAME_MAX: Final = 255
PATH_MAX: Final = 4096
SYMLOOP_MAX: Final = 40


class VType(enum.IntEnum):
    """Vnode types, as NetBSD names them."""

    VNON = 0
    VREG = 1
    VDIR = 2
    VBLK = 3
    VCHR = 4
    VLNK = 5
    VSOCK = 6
    VFIFO = 7

    @property
    def ifmt(self) -> int:
        """The S_IFMT bits of this type."""
        return _IFMT[self]

    @classmethod
    def from_mode(cls, mode: int) -> VType:
        return _FROM_IFMT.get(st.S_IFMT(mode), cls.VNON)


# Module constants for the members: on CPython 3.11 ``VType.VDIR`` costs about
# 0.3 us (an attribute of an Enum class), a module global a few ns; hot code
# compares against these.
VNON, VREG, VDIR, VBLK, VCHR, VLNK, VSOCK, VFIFO = VType

_IFMT = {
    VType.VNON: 0, VType.VREG: st.S_IFREG, VType.VDIR: st.S_IFDIR, VType.VBLK: st.S_IFBLK,
    VType.VCHR: st.S_IFCHR, VType.VLNK: st.S_IFLNK, VType.VSOCK: st.S_IFSOCK,
    VType.VFIFO: st.S_IFIFO,
}
_FROM_IFMT = {v: k for k, v in _IFMT.items() if v}


@dataclass(slots=True)
class Vattr:
    """Attributes to set (``vop_setattr``) or to create with; None leaves a field alone."""

    type: VType = VType.VNON
    mode: int | None = None          # permission bits (07777) only
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    atime_ns: int | None = None
    mtime_ns: int | None = None
    ctime_ns: int | None = None
    rdev: int = 0


class Vnode:
    """Base of every file system's nodes."""

    __slots__ = ("dead", "handle", "mount", "mountedhere", "ops", "type", "usecount")

    # namei's fast path: a directory whose vop_lookup of every name but ".." is
    # exactly ``names[name]`` (a missing name: ENOENT, nothing else done) may
    # expose that mapping here, as a slot of its own class; namei then looks
    # names up without a call. None (this class default): always vop_lookup.
    names: Mapping[str, Vnode] | None = None

    def __init__(self, vtype: VType, ops: VnodeOps, mount: Mount) -> None:
        self.type = vtype
        self.ops = ops
        self.mount = mount
        self.usecount = 0
        self.mountedhere: Mount | None = None   # set on a directory covered by a mount
        self.handle = 0                         # kernel-wide name for FUSE; 0 = none yet
        self.dead = False                       # a removed directory: nothing may enter it

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.type.name} use={self.usecount}>"


def vref(vp: Vnode) -> Vnode:
    """Take a long-lived reference to ``vp`` (open file, cwd, FUSE lookup)."""
    if vp.usecount == 0:
        vp.mount.busy += 1
    vp.usecount += 1
    return vp


def vrele(vp: Vnode) -> None:
    """Drop a reference; the last one runs ``vop_inactive``."""
    assert vp.usecount > 0, "vrele of an unreferenced vnode"
    vp.usecount -= 1
    if vp.usecount == 0:
        vp.mount.busy -= 1
        vp.ops.vop_inactive(vp)
