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
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:

    from rumpfs.vfs.mount import Mount
    from rumpfs.vfs.vnode_if import VnodeOps

try:    # mypyc's class options (see rumpfs._build); a no-op when interpreted
    from mypy_extensions import mypyc_attr
except ImportError:     # the pure-Python package needs no mypy_extensions
    def mypyc_attr(*attrs: str, **kwattrs: object) -> Any:  # type: ignore[misc]
        return lambda cls: cls

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
# Final: the compiled variant reads them as C statics, not from the module dict.
VNON: Final = VType.VNON
VREG: Final = VType.VREG
VDIR: Final = VType.VDIR
VBLK: Final = VType.VBLK
VCHR: Final = VType.VCHR
VLNK: Final = VType.VLNK
VSOCK: Final = VType.VSOCK
VFIFO: Final = VType.VFIFO

_IFMT: Final = {
    VType.VNON: 0, VType.VREG: st.S_IFREG, VType.VDIR: st.S_IFDIR, VType.VBLK: st.S_IFBLK,
    VType.VCHR: st.S_IFCHR, VType.VLNK: st.S_IFLNK, VType.VSOCK: st.S_IFSOCK,
    VType.VFIFO: st.S_IFIFO,
}
_FROM_IFMT: Final = {v: k for k, v in _IFMT.items() if v}


class Vattr:
    """Attributes to set (``vop_setattr``) or to create with; None leaves a field alone.

    A plain class, not a dataclass: the compiled variant would run a
    dataclass's generated ``__init__`` as interpreted code, on every create."""

    __slots__ = ("atime_ns", "ctime_ns", "gid", "mode", "mtime_ns", "rdev", "size", "type",
                 "uid")

    def __init__(self, type: VType = VNON, mode: int | None = None, uid: int | None = None,
                 gid: int | None = None, size: int | None = None, atime_ns: int | None = None,
                 mtime_ns: int | None = None, ctime_ns: int | None = None,
                 rdev: int = 0) -> None:
        self.type = type
        self.mode = mode            # permission bits (07777) only
        self.uid = uid
        self.gid = gid
        self.size = size
        self.atime_ns = atime_ns
        self.mtime_ns = mtime_ns
        self.ctime_ns = ctime_ns
        self.rdev = rdev

    def _fields(self) -> tuple[object, ...]:
        return (self.type, self.mode, self.uid, self.gid, self.size, self.atime_ns,
                self.mtime_ns, self.ctime_ns, self.rdev)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vattr):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None     # type: ignore[assignment]  # mutable, as the dataclass was

    def __repr__(self) -> str:
        names = ("type", "mode", "uid", "gid", "size", "atime_ns", "mtime_ns", "ctime_ns",
                 "rdev")
        inner = ", ".join(f"{n}={v!r}" for n, v in zip(names, self._fields(), strict=True))
        return f"Vattr({inner})"


@mypyc_attr(allow_interpreted_subclasses=True)     # every file system's nodes
class Vnode:
    """Base of every file system's nodes."""

    __slots__ = ("dead", "handle", "mount", "mountedhere", "ops", "type", "usecount")

    # namei's fast path: a directory whose vop_lookup of every name but ".." is
    # exactly ``names[name]`` (a missing name: ENOENT, nothing else done) may
    # expose that dict here, as a slot of its own class; namei then looks
    # names up without a call (a dict, not any Mapping: the compiled variant
    # calls dict.get directly). None (this class default): always vop_lookup.
    names: dict[str, Vnode] | None = None

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
