"""Mounts, the vfs-operation interface, the mount table and the fs-type registry.

Allowed imports: ``rumpfs.kern``, ``rumpfs.errors``.

A :class:`Vfs` is one kernel's file-system state: its mounts, the root
vnode, the device switch and clock it hands to file systems, and change
watchers (the FUSE frontend's cache invalidation).

Invariants: ``covered.mountedhere is mount`` for every mount but the root;
``mount.busy`` counts the mount's vnodes with a non-zero usecount.
Locking: everything here is guarded by the kernel lock.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from rumpfs.errors import errno, raise_errno
from rumpfs.kern.clock import Clock
from rumpfs.kern.devsw import DevSwitch
from rumpfs.vfs.vnode import Vnode

__all__ = ["FsType", "Mount", "MountArgs", "Vfs", "VfsOps"]


class VfsOps(Protocol):
    """Operations on a mounted file system (NetBSD's vfsops)."""

    def vfs_root(self, mp: Mount) -> Vnode:
        """The root directory of ``mp``."""
        ...

    def vfs_statvfs(self, mp: Mount) -> os.statvfs_result:
        """Capacity and limits, as ``os.statvfs`` returns them."""
        ...

    def vfs_unmount(self, mp: Mount) -> None:
        """Release everything ``mp`` holds; the VFS has checked it is not busy."""
        ...


@dataclass(slots=True)
class MountArgs:
    """What a mount request carries to the file system's factory."""

    read_only: bool = False
    options: dict[str, object] | None = None


class Mount:
    """One mounted file system instance."""

    __slots__ = ("busy", "covered", "dev", "fstype", "ops", "read_only", "root", "writers")

    def __init__(self, fstype: str, ops: VfsOps, dev: int, read_only: bool) -> None:
        self.fstype = fstype
        self.ops = ops
        self.dev = dev
        self.read_only = read_only
        self.covered: Vnode | None = None     # the directory this mount hides; None for "/"
        self.busy = 0                         # referenced vnodes (see module docstring)
        self.writers = 0                      # open files with write access
        self.root: Vnode                      # set by the file system's factory

    def __repr__(self) -> str:
        return f"<Mount {self.fstype} dev={self.dev:#x} ro={self.read_only}>"


# A file-system type: makes a new instance, given the kernel's Vfs, the new
# mount's device number and the mount arguments.
FsType = Callable[["Vfs", int, MountArgs], Mount]


class Vfs:
    """The file-system state of one kernel."""

    def __init__(self, clock: Clock, devsw: DevSwitch) -> None:
        self.clock = clock
        self.devsw = devsw
        self.fstypes: dict[str, FsType] = {}
        self.mounts: list[Mount] = []
        self._next_dev = 0
        self.rootvnode: Vnode | None = None
        self.watchers: list[Callable[[Vnode], None]] = []
        self.quiet = 0            # >0 while a frontend's own request runs (no notifications)

    def register_fstype(self, name: str, factory: FsType) -> None:
        self.fstypes[name] = factory

    def new_mount(self, fstype: str, args: MountArgs) -> Mount:
        """Instantiate ``fstype``; ENODEV if no such type is registered."""
        factory = self.fstypes.get(fstype)
        if factory is None:
            raise_errno(errno.ENODEV)
        mp = factory(self, self.new_dev(), args)
        self.mounts.append(mp)
        return mp

    def new_dev(self) -> int:
        """A fresh device number for a file-system instance (mounts, etfs mappings)."""
        self._next_dev += 1
        return os.makedev(0, 64 + self._next_dev)

    def mount_root(self, fstype: str) -> Vnode:
        mp = self.new_mount(fstype, MountArgs())
        self.rootvnode = mp.root
        return mp.root

    def notify(self, vp: Vnode) -> None:
        """Tell watchers that ``vp`` (or a directory's entries) changed in-process."""
        if not self.quiet:
            for watch in self.watchers:
                watch(vp)
