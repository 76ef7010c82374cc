"""rumpfs vfs operations: a fresh in-memory instance per mount.

Allowed imports: ``rumpfs.vfs``, ``rumpfs.kern``, ``rumpfs.errors``.
"""

from __future__ import annotations

import os

from rumpfs.fs.rumpfs.node import RumpDir
from rumpfs.fs.rumpfs.vnops import RumpfsOps
from rumpfs.vfs.mount import Mount, MountArgs, Vfs
from rumpfs.vfs.vnode import NAME_MAX, VDIR, Vattr

__all__ = ["ROOT_INO", "RumpfsMount", "RumpfsVfsOps", "rumpfs_mount"]

ROOT_INO = 2
_CAPACITY_BLOCKS = 1 << 28        # nominal 1 TiB of 4 KiB blocks: memory is the real limit
_CAPACITY_FILES = 1 << 32


class RumpfsMount(Mount):
    """A rumpfs instance: its root, its vnode-op vector and its inode counter."""

    __slots__ = ("next_ino", "vnops")

    def __init__(self, vfs: Vfs, dev: int, args: MountArgs) -> None:
        super().__init__("rumpfs", RumpfsVfsOps(), dev, args.read_only)
        self.vnops = RumpfsOps(vfs.clock)
        self.next_ino = ROOT_INO + 1
        va = Vattr(VDIR, 0o755, 0, 0)
        self.root = RumpDir(self.vnops, self, va, ROOT_INO, vfs.clock.now_ns(), None)


class RumpfsVfsOps:
    """Mount-level operations of rumpfs."""

    def vfs_root(self, mp: Mount) -> RumpDir:
        root = mp.root
        assert isinstance(root, RumpDir)
        return root

    def vfs_statvfs(self, mp: Mount) -> os.statvfs_result:
        assert isinstance(mp, RumpfsMount)
        files = mp.next_ino - ROOT_INO
        return os.statvfs_result((
            4096, 4096, _CAPACITY_BLOCKS, _CAPACITY_BLOCKS, _CAPACITY_BLOCKS,
            _CAPACITY_FILES, _CAPACITY_FILES - files, _CAPACITY_FILES - files, 0, NAME_MAX,
        ))

    def vfs_unmount(self, mp: Mount) -> None:
        """Nothing to flush: the nodes go with their last Python reference."""

    def vfs_sync(self, mp: Mount) -> None:
        """Nothing to write: no device."""


def rumpfs_mount(vfs: Vfs, dev: int, args: MountArgs) -> Mount:
    """The ``rumpfs`` fs-type factory."""
    return RumpfsMount(vfs, dev, args)
