"""rumpfs vfs operations: a fresh in-memory instance per mount.

Allowed imports: ``rumpfs.vfs``, ``rumpfs.kern``, ``rumpfs.errors``.
"""

from __future__ import annotations

import os

from rumpfs.fs.rumpfs.node import RumpDir, RumpfsData, rumpfs_data
from rumpfs.fs.rumpfs.vnops import RumpfsOps
from rumpfs.vfs.mount import Mount, MountArgs, Vfs
from rumpfs.vfs.vnode import NAME_MAX, VDIR, Vattr

__all__ = ["ROOT_INO", "RumpfsVfsOps", "rumpfs_mount"]

ROOT_INO = 2
_CAPACITY_BLOCKS = 1 << 28        # nominal 1 TiB of 4 KiB blocks: memory is the real limit
_CAPACITY_FILES = 1 << 32


class RumpfsVfsOps:
    """Mount-level operations of rumpfs."""

    def vfs_root(self, mp: Mount) -> RumpDir:
        root = mp.root
        assert isinstance(root, RumpDir)
        return root

    def vfs_statvfs(self, mp: Mount) -> os.statvfs_result:
        files = rumpfs_data(mp).next_ino - ROOT_INO
        return os.statvfs_result((
            4096, 4096, _CAPACITY_BLOCKS, _CAPACITY_BLOCKS, _CAPACITY_BLOCKS,
            _CAPACITY_FILES, _CAPACITY_FILES - files, _CAPACITY_FILES - files, 0, NAME_MAX,
        ))

    def vfs_unmount(self, mp: Mount) -> None:
        """Nothing to flush: the nodes go with their last Python reference."""

    def vfs_sync(self, mp: Mount) -> None:
        """Nothing to write: no device."""


def rumpfs_mount(vfs: Vfs, dev: int, args: MountArgs) -> Mount:
    """The ``rumpfs`` fs-type factory: a mount whose ``data`` is a
    :class:`~rumpfs.fs.rumpfs.node.RumpfsData`, and its root directory."""
    mp = Mount("rumpfs", RumpfsVfsOps(), dev, args.read_only)
    vnops = RumpfsOps(vfs.clock)
    mp.data = RumpfsData(vnops, ROOT_INO + 1)
    mp.root = RumpDir(vnops, mp, Vattr(VDIR, 0o755, 0, 0), ROOT_INO, vfs.clock.now_ns(), None)
    return mp
