"""rumpfs vfs operations: a fresh in-memory instance per mount.

Allowed imports: ``rumpfs.vfs``, ``rumpfs.kern``, ``rumpfs.errors``.

Mount options (``MountArgs.options``), as tmpfs names them: ``size`` (bytes,
an int or a string with a k/m/g/t suffix; rounded up to whole pages; 0 = no
limit), ``nr_inodes`` (0 = no limit), ``mode``/``uid``/``gid`` of the root.
Unknown options are EINVAL, as tmpfs refuses them.

Accounting (``RumpfsData``): ``space`` counts the 4 KiB pages regular files
hold (written or fallocated, see ``data``), ``inodes`` the nodes alive
(named or still referenced); statvfs reports both against the limits or,
without one, against a nominal capacity.
"""

from __future__ import annotations

import os
import re

from rumpfs.errors import errno, raise_errno
from rumpfs.fs.rumpfs.data import PAGE, Space
from rumpfs.fs.rumpfs.node import RumpDir, RumpfsData, rumpfs_data
from rumpfs.fs.rumpfs.vnops import RumpfsOps
from rumpfs.vfs.mount import Mount, MountArgs, Vfs
from rumpfs.vfs.vnode import NAME_MAX, VDIR, Vattr

__all__ = ["ROOT_INO", "RumpfsVfsOps", "rumpfs_mount"]

ROOT_INO = 2
_CAPACITY_BLOCKS = 1 << 28        # nominal 1 TiB of 4 KiB blocks: memory is the real limit
_CAPACITY_FILES = 1 << 32
_SIZE = re.compile(r"(\d+)([kmgtpe]?)", re.IGNORECASE)
_OPTIONS = frozenset({"size", "nr_inodes", "mode", "uid", "gid"})


def _number(value: object, suffixes: bool) -> int:
    """An option's value: an int, or digits with an optional k/m/g/t/p/e suffix."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    m = _SIZE.fullmatch(value) if isinstance(value, str) else None
    if m is None or (m.group(2) and not suffixes):
        raise_errno(errno.EINVAL)
    return int(m.group(1)) << (10 * "_kmgtpe".index(m.group(2).lower() or "_"))


class RumpfsVfsOps:
    """Mount-level operations of rumpfs."""

    def vfs_root(self, mp: Mount) -> RumpDir:
        root = mp.root
        assert isinstance(root, RumpDir)
        return root

    def vfs_statvfs(self, mp: Mount) -> os.statvfs_result:
        data = rumpfs_data(mp)
        for memfd in list(data.vnops.memfds):   # files the host writes directly
            memfd.settle()
        space = data.space
        blocks = space.limit if space.limit is not None else _CAPACITY_BLOCKS
        bfree = max(blocks - space.used, 0)
        files = data.inode_limit if data.inode_limit is not None else _CAPACITY_FILES
        ffree = max(files - data.inodes, 0)
        return os.statvfs_result((PAGE, PAGE, blocks, bfree, bfree, files, ffree, ffree, 0,
                                  NAME_MAX))

    def vfs_unmount(self, mp: Mount) -> None:
        """Nothing to flush: the nodes go with their last Python reference;
        the host memfds of files opened through FUSE go now."""
        for memfd in list(rumpfs_data(mp).vnops.memfds):
            memfd.clear()

    def vfs_sync(self, mp: Mount) -> None:
        """Nothing to write: no device."""


def rumpfs_mount(vfs: Vfs, dev: int, args: MountArgs) -> Mount:
    """The ``rumpfs`` fs-type factory: a mount whose ``data`` is a
    :class:`~rumpfs.fs.rumpfs.node.RumpfsData`, and its root directory."""
    opts = dict(args.options or {})
    opts.pop("bufcache", None)                  # the VFS's own option
    if not opts.keys() <= _OPTIONS:
        raise_errno(errno.EINVAL)
    size = _number(opts.get("size", 0), True)
    nr_inodes = _number(opts.get("nr_inodes", 0), True)
    mode = opts.get("mode", 0o755)
    if isinstance(mode, str):
        if not re.fullmatch(r"[0-7]{1,4}", mode):
            raise_errno(errno.EINVAL)
        mode = int(mode, 8)
    va = Vattr(VDIR, _number(mode, False) & 0o7777, _number(opts.get("uid", 0), False),
               _number(opts.get("gid", 0), False))
    mp = Mount("rumpfs", RumpfsVfsOps(), dev, args.read_only)
    vnops = RumpfsOps(vfs.clock, vfs.shm)
    mp.data = RumpfsData(vnops, ROOT_INO + 1, Space((size + PAGE - 1) // PAGE if size else None),
                         nr_inodes or None)
    mp.root = RumpDir(vnops, mp, va, ROOT_INO, vfs.clock.now_ns(), None)
    return mp
