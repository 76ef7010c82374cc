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
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from rumpfs.errors import errno, raise_errno
from rumpfs.kern.clock import Clock
from rumpfs.kern.devsw import DevSwitch
from rumpfs.kern.pipe import Pipe
from rumpfs.kern.shm import HostShm
from rumpfs.vfs.bio import BlockDev, BufCache
from rumpfs.vfs.vnode import VBLK, Vnode

__all__ = ["FsType", "Mount", "MountArgs", "Vfs", "VfsOps", "Watcher"]


class Watcher(Protocol):
    """Told of every change to the file-system tree (the FUSE frontend's pushed
    invalidation). Called under the kernel lock, right after the change: it
    must not block or call back into the kernel."""

    def changed(self, vp: Vnode) -> None:
        """``vp``'s attributes changed (a directory: also its listing)."""

    def changed_data(self, vp: Vnode, offset: int, length: int) -> None:
        """Bytes ``[offset, offset + length)`` of ``vp`` changed (``length`` 0:
        to the end), and with them its attributes."""

    def changed_entry(self, dvp: Vnode, name: str) -> None:
        """The entry ``name`` of directory ``dvp`` appeared, went or now names
        another vnode; ``dvp``'s attributes and listing changed with it."""


class VfsOps(Protocol):
    """Operations on a mounted file system (NetBSD's vfsops)."""

    def vfs_root(self, mp: Mount) -> Vnode:
        """The root directory of ``mp``."""
        ...

    def vfs_statvfs(self, mp: Mount) -> os.statvfs_result:
        """Capacity and limits, as ``os.statvfs`` returns them."""
        ...

    def vfs_unmount(self, mp: Mount) -> None:
        """Release everything ``mp`` holds; the VFS has checked it is not busy.
        A disk file system writes its final state (bdwrite is enough: the VFS
        then flushes and invalidates the device's buffers)."""
        ...

    def vfs_sync(self, mp: Mount) -> None:
        """Push the file system's in-memory state (inodes, bitmaps, superblock)
        into the buffer cache; the VFS then flushes the device (sync, fsync,
        unmount, shutdown). File systems without a device do nothing."""
        ...


@dataclass(slots=True)
class MountArgs:
    """What a mount request carries to the file system's factory."""

    read_only: bool = False
    options: dict[str, object] | None = None
    device: BlockDev | None = None        # the opened block device, for disk file systems


class Mount:
    """One mounted file system instance.

    ``data`` is the file system's own per-mount state (NetBSD's ``mnt_data``):
    the VFS never looks inside; the file system reads it back through a typed
    accessor of its own that checks the type (see ``fs/rumpfs/node.py``).
    """

    __slots__ = (
        "busy", "covered", "data", "dev", "device", "fstype", "ops", "read_only", "root",
        "writers",
    )

    def __init__(self, fstype: str, ops: VfsOps, dev: int, read_only: bool) -> None:
        self.fstype = fstype
        self.ops = ops
        self.dev = dev
        self.read_only = read_only
        self.covered: Vnode | None = None     # the directory this mount hides; None for "/"
        self.busy = 0                         # referenced vnodes (see module docstring)
        self.writers = 0                      # open files with write access
        self.device: BlockDev | None = None   # set by sys_mount for disk file systems
        self.root: Vnode                      # set by the file system's factory
        self.data: object = None              # the file system's private state (mnt_data)

    def __repr__(self) -> str:
        return f"<Mount {self.fstype} dev={self.dev:#x} ro={self.read_only}>"


# A file-system type: makes a new instance, given the kernel's Vfs, the new
# mount's device number and the mount arguments.
FsType = Callable[["Vfs", int, MountArgs], Mount]


class Vfs:
    """The file-system state of one kernel."""

    def __init__(self, clock: Clock, devsw: DevSwitch,
                 lock: threading.Lock | None = None) -> None:
        self.clock = clock
        self.devsw = devsw
        self.shm: HostShm | None = None         # host memfds (FUSE passthrough), set by Kernel
        # The kernel lock, for the few waits that release it (pipes, FIFO opens).
        self.lock = lock if lock is not None else threading.Lock()
        self.fifos: dict[Vnode, Pipe] = {}      # FIFO nodes open somewhere -> their pipe
        self.pipefs: Mount | None = None        # anonymous pipes' hidden mount (vfs.fifo)
        self.fstypes: dict[str, FsType] = {}
        self.mounts: list[Mount] = []
        self._next_dev = 0
        self.rootvnode: Vnode | None = None
        self.watchers: list[Watcher] = []    # empty unless a FUSE server pushes invalidations
        self.protected_hardlinks = True   # Linux's fs.protected_hardlinks (Kernel option)
        self.bufcache = BufCache()
        # Block devices in use, by rdev: mounted ones (their Mount), and the
        # count of descriptors open for writing on each. Each excludes the other.
        self.blk_mounted: dict[int, Mount] = {}
        self.blk_writers: dict[int, int] = {}
        # Devices over one disk (Kernel.attach_disk): rdev -> (the disk's rdev,
        # first byte, end byte), so that a partition and its whole disk count
        # as in use together where their windows overlap.
        self.blk_extents: dict[int, tuple[int, int, int]] = {}

    def register_fstype(self, name: str, factory: FsType) -> None:
        self.fstypes[name] = factory

    def new_mount(self, fstype: str, args: MountArgs) -> Mount:
        """Instantiate ``fstype``; ENODEV if no such type is registered. The
        option ``bufcache`` (bytes) sets the kernel's buffer-cache budget."""
        factory = self.fstypes.get(fstype)
        if factory is None:
            raise_errno(errno.ENODEV)
        budget = (args.options or {}).get("bufcache")
        if budget is not None:
            if not isinstance(budget, int) or isinstance(budget, bool):
                raise_errno(errno.EINVAL)
            self.bufcache.set_budget(budget)
        mp = factory(self, self.new_dev(), args)
        if args.device is not None:
            mp.device = args.device
            self.blk_mounted[args.device.rdev] = mp
        self.mounts.append(mp)
        return mp

    # -- block devices under mounts -------------------------------------------

    def open_device(self, vp: Vnode, read_only: bool) -> BlockDev:
        """Open block-device node ``vp`` for a mount: ENOTBLK if it is none,
        EBUSY if mounted or open for writing, then the driver's open (ENXIO;
        EACCES for read-write on a read-only device, as Linux)."""
        if vp.type is not VBLK:
            raise_errno(errno.ENOTBLK)
        rdev = vp.ops.vop_getattr(vp).st_rdev
        if self.blk_in_use(rdev, writers=True):
            raise_errno(errno.EBUSY)
        return BlockDev.open_rdev(self.devsw, rdev, read_only)

    def blk_in_use(self, rdev: int, writers: bool) -> bool:
        """Whether block device ``rdev``, or another device over an overlapping
        window of the same disk, is mounted (or, with ``writers``, open for
        writing)."""
        ext = self.blk_extents.get(rdev)
        if ext is None:
            return rdev in self.blk_mounted or (writers and bool(self.blk_writers.get(rdev)))
        disk, first, end = ext
        for r, (d, a, b) in self.blk_extents.items():
            if d == disk and a < end and first < b and (
                    r in self.blk_mounted or (writers and self.blk_writers.get(r))):
                return True
        return False

    def remount_device(self, mp: Mount, read_only: bool) -> None:
        """Going read-only: sync first. Going read-write: reopen the device
        for writing (EACCES on a read-only one)."""
        dev = mp.device
        assert dev is not None
        if read_only:
            self.sync_mount(mp)
        elif dev.read_only:
            dev.driver.d_open(dev.minor, os.O_RDWR)
            dev.read_only = False
            dev.flags = os.O_RDWR

    def sync_mount(self, mp: Mount) -> None:
        """vfs_sync, then write the device's dirty buffers and fsync it."""
        mp.ops.vfs_sync(mp)
        if mp.device is not None:
            self.bufcache.flush(mp.device)

    def sync(self) -> None:
        """Sync every mount; every one is tried, the first error is raised."""
        first: OSError | None = None
        for mp in list(self.mounts):
            try:
                self.sync_mount(mp)
            except OSError as e:
                first = first or e
        if first is not None:
            raise first

    def release_device(self, mp: Mount) -> None:
        """After ``vfs_unmount``: flush, drop the buffers, close the device.
        A flush error is raised after the rest is done (the buffers it could
        not write are dropped with a logged warning)."""
        dev = mp.device
        if dev is None:
            return
        try:
            self.bufcache.flush(dev)
        finally:
            self.bufcache.invalidate(dev)
            self.blk_mounted.pop(dev.rdev, None)
            mp.device = None
            dev.close()

    def shutdown_devices(self) -> OSError | None:
        """At kernel shutdown: sync and unmount every mount on a device, busy or
        not (a forced unmount: vnodes still referenced, by a frontend say, are
        never used again). Returns the first error, after trying everything."""
        first: OSError | None = None
        for mp in reversed(self.mounts):
            if mp.device is None:
                continue
            try:
                self.sync_mount(mp)
                mp.ops.vfs_unmount(mp)
            except OSError as e:
                first = first or e
            try:
                self.release_device(mp)
            except OSError as e:
                first = first or e
        return first

    def new_dev(self) -> int:
        """A fresh device number for a file-system instance (mounts, etfs mappings)."""
        self._next_dev += 1
        return os.makedev(0, 64 + self._next_dev)

    def mount_root(self, fstype: str) -> Vnode:
        mp = self.new_mount(fstype, MountArgs())
        self.rootvnode = mp.root
        return mp.root

    # Callers test ``watchers`` first (``if p.ctx.watchers:``), so a kernel
    # nobody watches pays one attribute test per change.

    def notify(self, vp: Vnode) -> None:
        """Tell watchers that ``vp``'s attributes changed."""
        for w in self.watchers:
            w.changed(vp)

    def notify_data(self, vp: Vnode, offset: int, length: int) -> None:
        """Tell watchers that bytes of ``vp`` changed (``length`` 0: to the end)."""
        for w in self.watchers:
            w.changed_data(vp, offset, length)

    def notify_entry(self, dvp: Vnode, name: str) -> None:
        """Tell watchers that the entry ``name`` of directory ``dvp`` changed."""
        for w in self.watchers:
            w.changed_entry(dvp, name)
