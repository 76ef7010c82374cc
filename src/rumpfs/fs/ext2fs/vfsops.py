"""ext2 vfs operations: mount (superblock, features, groups), statvfs, sync, unmount.

Allowed imports: ``rumpfs.vfs``, ``rumpfs.kern``, ``rumpfs.errors`` and this package.

Mounting reads the superblock straight from the device, decides from the
feature flags what it may do (module ``ext2fs`` lists them):

- an incompatible feature it does not know (or cannot read): the mount fails
  with EINVAL and a message naming the feature;
- a read-only-compatible feature it cannot keep correct, an incompatible one
  it can read but not write (meta_bg, inline_data...), a journal that needs
  recovery, orphans to process, or an error state: read-only, with a logged
  warning;

then reads the group descriptors and the root inode. A read-write mount
marks the superblock "not clean" at once (as Linux does) and clean again
when it is unmounted, after everything else reached the device (the
superblock buffer is ``late``, see ``vfs.bio``). A clean journal is never
touched.

All block I/O goes through the kernel's buffer cache in file-system blocks;
:meth:`Ext2Mount.bread` refuses any block outside the file system, so a
corrupt block number fails its call (EUCLEAN) instead of reaching another
partition.

Reference counting: ``vcache`` holds vnodes weakly (a vnode lives while
anything references it, so there is never a second one for an inode);
``recent`` holds the last :data:`RECENT` vnodes used strongly, so that their
decoded state (directory name caches, extent lists) survives between calls.
The root is held by the mount. Locking: the kernel lock throughout.
"""

from __future__ import annotations

import os
import weakref
from collections import OrderedDict

from rumpfs.errors import errno, raise_errno
from rumpfs.fs.ext2fs.alloc import Allocator
from rumpfs.fs.ext2fs.ext2fs import (
    IN_META_BG,
    IN_NAMES,
    IN_READABLE,
    IN_RECOVER,
    IN_WRITABLE,
    RO_NAMES,
    RO_ORPHAN_PRESENT,
    RO_WRITABLE,
    SB_OFFSET,
    SB_SIZE,
    STATE_ERROR,
    STATE_VALID,
    GroupDesc,
    Superblock,
    corrupt,
    decode_gd,
    feature_names,
    log,
    put16,
    put32,
    u16,
    u32,
)
from rumpfs.fs.ext2fs.inode import Ext2Node, iget
from rumpfs.fs.ext2fs.orphan import process_orphans
from rumpfs.fs.ext2fs.vnops import Ext2Ops
from rumpfs.vfs.bio import BlockDev, Buf, BufCache
from rumpfs.vfs.mount import Mount, MountArgs, Vfs
from rumpfs.vfs.vnode import NAME_MAX, VDIR

__all__ = ["Ext2Mount", "Ext2VfsOps", "ext2fs_mount"]

ROOT_INO = 2
RECENT = 4096


class Ext2Mount(Mount):
    """One mounted ext2/3/4 file system."""

    __slots__ = (
        "__weakref__",
        "alloc",
        "bc",
        "bdev",
        "bs",
        "forced_ro",
        "gds",
        "marked",
        "orphans",
        "recent",
        "sb",
        "spb",
        "vcache",
        "vnops",
        "was_clean",
    )

    def __init__(self, vfs: Vfs, dev: int, args: MountArgs, bdev: BlockDev,
                 sb: Superblock, forced_ro: str | None) -> None:
        super().__init__("ext2", Ext2VfsOps(), dev, args.read_only or forced_ro is not None)
        self.bc: BufCache = vfs.bufcache
        self.bdev = bdev
        self.sb = sb
        self.bs = sb.block_size
        self.spb = sb.block_size // 512
        self.forced_ro = forced_ro
        self.was_clean = bool(sb.state & STATE_VALID)
        self.marked = False             # the superblock on disk says "not clean"
        self.orphans: list[int] = []    # the orphan list (orphan.py)
        self.vnops = Ext2Ops(vfs.clock)
        self.vcache: weakref.WeakValueDictionary[int, Ext2Node] = weakref.WeakValueDictionary()
        self.recent: OrderedDict[int, Ext2Node] = OrderedDict()
        self.gds: list[GroupDesc] = []
        self.alloc: Allocator

    # -- vnode cache -----------------------------------------------------------

    def cache_vnode(self, vp: Ext2Node) -> None:
        """Enter (or refresh) ``vp`` in the vnode cache and the recent list."""
        self.vcache[vp.ino] = vp
        recent = self.recent
        recent[vp.ino] = vp
        recent.move_to_end(vp.ino)
        if len(recent) > RECENT:
            recent.popitem(last=False)

    def uncache_vnode(self, ino: int) -> None:
        self.vcache.pop(ino, None)
        self.recent.pop(ino, None)

    # -- block I/O -----------------------------------------------------------

    def bread(self, blk: int) -> Buf:
        if not 0 <= blk < self.sb.blocks_count:
            corrupt("block %d outside the file system", blk)
        return self.bc.bread(self.bdev, blk * self.spb, self.bs)

    def getblk(self, blk: int) -> Buf:
        if not 0 <= blk < self.sb.blocks_count:
            corrupt("block %d outside the file system", blk)
        return self.bc.getblk(self.bdev, blk * self.spb, self.bs)

    def brelse(self, bp: Buf) -> None:
        self.bc.brelse(bp)

    def bdwrite(self, bp: Buf) -> None:
        self.bc.bdwrite(bp)

    def read_block(self, blk: int) -> bytes:
        bp = self.bread(blk)
        try:
            return bytes(bp.data)
        finally:
            self.bc.brelse(bp)

    def zero_block(self, blk: int) -> None:
        bp = self.getblk(blk)
        bp.data[:] = bytes(self.bs)
        self.bc.bdwrite(bp)

    def gdt_block(self, idx: int) -> int:
        """Where descriptor block ``idx`` lives (meta_bg moves the later ones)."""
        sb = self.sb
        if sb.incompat & IN_META_BG and idx >= sb.first_meta_bg:
            g = idx * sb.desc_per_block
            return sb.group_first_block(g) + (1 if sb.has_super(g) else 0)
        return SB_OFFSET // self.bs + 1 + idx     # after the superblock's block

    # -- superblock ----------------------------------------------------------

    def write_super(self, clean: bool) -> None:
        sb = self.sb
        if clean:
            sb.state |= STATE_VALID
        else:
            sb.state &= ~STATE_VALID
        now = self.vnops.clock.now_ns() // 1_000_000_000
        put32(sb.raw, 48, now)                                   # s_wtime
        raw = sb.encode(self.alloc.nfree_blocks, self.alloc.nfree_inodes)
        blk, off = (1, 0) if self.bs == 1024 else (0, SB_OFFSET)
        bp = self.bread(blk)
        bp.data[off:off + SB_SIZE] = raw
        bp.late = True
        self.bc.bdwrite(bp)

    def writable(self) -> None:
        """EROFS unless this mount may write (a forced read-only mount stays so
        even after a remount asked for read-write). The first change after a
        mount or remount marks the superblock "not clean"."""
        if self.forced_ro is not None or self.read_only:
            raise_errno(errno.EROFS)
        if not self.marked:
            self.write_super(clean=False)
            self.marked = True

    def settle(self) -> None:
        """Write the final state: descriptors, counts, and "clean" again (if it
        was clean when mounted, as Linux restores s_state)."""
        self.alloc.sync()
        self.write_super(clean=self.was_clean)
        self.marked = False


class Ext2VfsOps:
    """Mount-level operations of ext2."""

    def vfs_root(self, mp: Mount) -> Ext2Node:
        root = mp.root
        assert isinstance(root, Ext2Node)
        return root

    def vfs_statvfs(self, mp: Mount) -> os.statvfs_result:
        assert isinstance(mp, Ext2Mount)
        sb = mp.sb
        free = mp.alloc.nfree_blocks
        avail = max(0, free - sb.r_blocks)
        return os.statvfs_result((
            mp.bs, mp.bs, sb.blocks_count, free, avail, sb.inodes_count,
            mp.alloc.nfree_inodes, mp.alloc.nfree_inodes, 0, NAME_MAX,
        ))

    def vfs_sync(self, mp: Mount) -> None:
        assert isinstance(mp, Ext2Mount)
        if not mp.marked:
            return                      # nothing changed since the last settle
        if mp.read_only:
            mp.settle()                 # a remount to read-only: clean again now
            return
        mp.alloc.sync()
        mp.write_super(clean=False)

    def vfs_unmount(self, mp: Mount) -> None:
        assert isinstance(mp, Ext2Mount)
        for vp in list(mp.vcache.values()):
            if vp.nlink == 0 and not mp.read_only and mp.forced_ro is None:
                mp.vnops.vop_inactive(vp)
        if mp.marked:
            mp.settle()
        mp.vcache.clear()
        mp.recent.clear()


def _check_features(sb: Superblock, read_only: bool) -> str | None:
    """Refuse what we cannot read; the reason to go read-only, or None."""
    unknown = sb.incompat & ~IN_READABLE
    if unknown:
        names = ", ".join(feature_names(unknown, IN_NAMES))
        log.error("ext2fs: cannot mount: unsupported incompatible feature(s): %s", names)
        raise OSError(errno.EINVAL, f"unsupported ext2 feature(s): {names}")
    reasons = []
    ro = sb.ro_compat & ~RO_WRITABLE
    if ro:
        reasons.append("read-only-compatible feature(s) " + ", ".join(feature_names(ro, RO_NAMES)))
    inc = sb.incompat & ~IN_WRITABLE & ~IN_RECOVER
    if inc:
        reasons.append("feature(s) " + ", ".join(feature_names(inc, IN_NAMES)))
    if sb.incompat & IN_RECOVER:
        reasons.append("the journal needs recovery")
    if sb.ro_compat & RO_ORPHAN_PRESENT:
        reasons.append("orphan inodes in the orphan file")
    if sb.state & STATE_ERROR:
        reasons.append("errors recorded (run e2fsck)")
    elif not sb.state & STATE_VALID:
        log.warning("ext2fs: mounting a file system that was not cleanly unmounted")
    if sb.log_cluster != sb.block_size.bit_length() - 11:
        reasons.append("bigalloc clusters")
    if not reasons:
        return None
    reason = "; ".join(reasons)
    if not read_only:
        log.warning("ext2fs: mounting read-only: %s", reason)
    return reason


def ext2fs_mount(vfs: Vfs, dev: int, args: MountArgs) -> Mount:
    """The ``ext2`` fs-type factory (ext2, ext3 and ext4 images)."""
    bdev = args.device
    if bdev is None:
        raise_errno(errno.ENOTBLK)
    if bdev.size < SB_OFFSET + SB_SIZE:
        raise_errno(errno.EINVAL)
    sb = Superblock(bdev.read(SB_OFFSET, SB_SIZE))
    if sb.blocks_count * sb.block_size > bdev.size:
        corrupt("%d blocks of %d bytes on a %d-byte device", sb.blocks_count, sb.block_size,
                bdev.size)
    forced = _check_features(sb, args.read_only)
    mp = Ext2Mount(vfs, dev, args, bdev, sb, forced)
    try:
        _load_groups(mp)
        mp.alloc = Allocator(mp)
        root = iget(mp, ROOT_INO)
        if root.type is not VDIR:
            corrupt("root inode is not a directory")
        mp.root = root
        if not mp.read_only:
            put16(sb.raw, 52, u16(sb.raw, 52) + 1)                 # s_mnt_count
            put32(sb.raw, 44, vfs.clock.now_ns() // 1_000_000_000)  # s_mtime
            mp.writable()                                          # "not clean" on disk
            if u32(sb.raw, 232):
                try:
                    process_orphans(mp)
                except OSError as e:
                    log.warning("ext2fs: mounting read-only: orphan list: %s", e.strerror)
                    mp.forced_ro = "a bad orphan list"
                    mp.read_only = True
            vfs.bufcache.flush(bdev)
    except BaseException:
        vfs.bufcache.invalidate(bdev)
        raise
    return mp


def _load_groups(mp: Ext2Mount) -> None:
    sb = mp.sb
    per = sb.desc_per_block
    dsz = sb.desc_size if sb.is64 else 32
    for idx in range(sb.gdt_blocks):
        data = mp.read_block(mp.gdt_block(idx))
        for k in range(per):
            g = idx * per + k
            if g >= sb.ngroups:
                break
            mp.gds.append(decode_gd(sb, g, data[k * dsz:(k + 1) * dsz]))
    free_b = sum(gd.free_blocks for gd in mp.gds)
    if free_b > sb.blocks_count:
        corrupt("group descriptors count %d free blocks of %d", free_b, sb.blocks_count)
