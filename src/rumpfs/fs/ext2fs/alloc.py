"""ext2 block and inode allocation: bitmaps, group counts, uninit_bg groups.

Allowed imports: ``rumpfs.errors`` and this package.

Bitmaps live in the buffer cache and are changed in place (delayed writes);
group descriptors and the superblock's totals are kept in memory and written
by :meth:`Allocator.sync` with fresh checksums (bitmap checksums too, as
metadata_csum wants them in the descriptor). A group marked BLOCK_UNINIT gets
its bitmap built (its own metadata and any flex_bg metadata placed in it)
the first time something is allocated there; INODE_UNINIT likewise gets a
zeroed inode bitmap, and ``itable_unused`` follows the highest inode used.

Untrusted input: allocating a bit that the bitmap says is free but whose
group count is zero, or freeing a bit that is already clear, is a
bitmap/count disagreement: EUCLEAN with a logged reason. Nothing is
allocated outside the file system's blocks, and never a metadata block.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rumpfs.errors import errno, raise_errno
from rumpfs.fs.ext2fs.csum import crc32c_raw
from rumpfs.fs.ext2fs.ext2fs import (
    BG_BLOCK_UNINIT,
    BG_INODE_UNINIT,
    GroupDesc,
    corrupt,
    encode_gd,
)

if TYPE_CHECKING:
    from rumpfs.fs.ext2fs.vfsops import Ext2Mount

__all__ = ["Allocator"]

_NOT_FULL = re.compile(rb"[^\xff]")
_ZEROS = re.compile(rb"\x00+")


def _bit(bm: bytearray | bytes, i: int) -> int:
    return (bm[i >> 3] >> (i & 7)) & 1


def _find_zero(bm: bytearray, start: int, end: int) -> int:
    """The first clear bit in [start, end), or -1."""
    i = start
    while i < end and i & 7:
        if not _bit(bm, i):
            return i
        i += 1
    if i >= end:
        return -1
    m = _NOT_FULL.search(bm, i >> 3, (end + 7) >> 3)
    if m is None:
        return -1
    v = bm[m.start()]
    bit = ((~v) & (v + 1)).bit_length() - 1
    j = m.start() * 8 + bit
    return j if j < end else -1


def _zero_run(bm: bytearray, i: int, end: int) -> int:
    """How many clear bits start at bit ``i`` (up to ``end``)."""
    n = 0
    while i + n < end and (i + n) & 7:
        if _bit(bm, i + n):
            return n
        n += 1
    if i + n >= end:
        return min(n, end - i)
    m = _ZEROS.match(bm, (i + n) >> 3, (end + 7) >> 3)
    if m is not None:
        n += (m.end() - m.start()) * 8
    while i + n < end and not _bit(bm, i + n):
        n += 1
    return min(n, end - i)


def _all_set(bm: bytearray, i: int, n: int) -> bool:
    v = int.from_bytes(bm[i >> 3:((i + n + 7) >> 3) + 1], "little") >> (i & 7)
    mask = (1 << n) - 1
    return v & mask == mask


def _set_bits(bm: bytearray, i: int, n: int, value: int) -> None:
    end = i + n
    while i < end and i & 7:
        _set_one(bm, i, value)
        i += 1
    full = (end - i) >> 3
    if full:
        bm[i >> 3:(i >> 3) + full] = (b"\xff" if value else b"\x00") * full
        i += full * 8
    while i < end:
        _set_one(bm, i, value)
        i += 1


def _set_one(bm: bytearray, i: int, value: int) -> None:
    if value:
        bm[i >> 3] |= 1 << (i & 7)
    else:
        bm[i >> 3] &= ~(1 << (i & 7)) & 0xFF


class Allocator:
    """Allocation state of one mount."""

    def __init__(self, mp: Ext2Mount) -> None:
        self.mp = mp
        sb = mp.sb
        self.sb = sb
        self.nfree_blocks = sum(gd.free_blocks for gd in mp.gds)
        self.nfree_inodes = sum(gd.free_inodes for gd in mp.gds)
        self.last_group = 0

    # -- blocks --------------------------------------------------------------

    def inode_goal(self, ino: int) -> int:
        group = (ino - 1) // self.sb.inodes_per_group
        return self.sb.group_first_block(group)

    def alloc_blocks(self, goal: int, want: int) -> tuple[int, int]:
        """Allocate up to ``want`` contiguous blocks, as near ``goal`` as possible;
        returns (first block, count >= 1). ENOSPC when none is free."""
        sb = self.sb
        if self.nfree_blocks <= 0:
            raise_errno(errno.ENOSPC)
        if not sb.first_data_block < goal < sb.blocks_count:
            goal = sb.first_data_block
        g0 = (goal - sb.first_data_block) // sb.blocks_per_group
        ng = sb.ngroups
        for k in range(ng + 1):
            g = (g0 + k) % ng
            gd = self.mp.gds[g]
            if gd.free_blocks == 0:
                continue
            start = goal - sb.group_first_block(g) if k == 0 else 0
            got = self._alloc_in_group(g, gd, start, want)
            if got is None and k == 0 and start:
                got = self._alloc_in_group(g, gd, 0, want)
            if got is not None:
                return got
        raise_errno(errno.ENOSPC)

    def _alloc_in_group(self, g: int, gd: GroupDesc, start: int,
                        want: int) -> tuple[int, int] | None:
        mp = self.mp
        sb = self.sb
        if gd.flags & BG_BLOCK_UNINIT:
            self._init_block_bitmap(g, gd)
        nbits = sb.group_nblocks(g)
        bp = mp.bread(gd.block_bitmap)
        bm = bp.data
        i = _find_zero(bm, start, nbits)
        if i < 0:
            mp.brelse(bp)
            return None
        n = _zero_run(bm, i, min(nbits, i + want))
        n = max(1, min(n, want, gd.free_blocks))
        _set_bits(bm, i, n, 1)
        mp.bdwrite(bp)
        gd.free_blocks -= n
        gd.dirty = True
        self.nfree_blocks -= n
        blk = sb.group_first_block(g) + i
        if blk <= sb.first_data_block or blk + n > sb.blocks_count:
            corrupt("group %d bitmap offers block %d", g, blk)
        return blk, n

    def free_blocks(self, blk: int, n: int) -> None:
        """Return ``[blk, blk+n)`` to their groups' bitmaps."""
        sb = self.sb
        mp = self.mp
        if blk <= sb.first_data_block or blk + n > sb.blocks_count:
            corrupt("freeing blocks %d+%d out of range", blk, n)
        while n > 0:
            g, i = divmod(blk - sb.first_data_block, sb.blocks_per_group)
            take = min(n, sb.blocks_per_group - i)
            gd = mp.gds[g]
            if gd.flags & BG_BLOCK_UNINIT:
                corrupt("freeing block %d of never-used group %d", blk, g)
            bp = mp.bread(gd.block_bitmap)
            bm = bp.data
            if not _all_set(bm, i, take):
                mp.brelse(bp)
                corrupt("freeing free block in %d+%d (bitmap/count disagree)", blk, take)
            _set_bits(bm, i, take, 0)
            mp.bdwrite(bp)
            gd.free_blocks += take
            gd.dirty = True
            self.nfree_blocks += take
            blk += take
            n -= take

    def _init_block_bitmap(self, g: int, gd: GroupDesc) -> None:
        """Build the bitmap of a BLOCK_UNINIT group: its metadata blocks are in use."""
        mp = self.mp
        sb = self.sb
        bits = bytearray(mp.bs)
        first = sb.group_first_block(g)
        nblocks = sb.group_nblocks(g)
        used = 0
        if sb.has_super(g):
            used = 1 + sb.gdt_blocks + sb.reserved_gdt
        _set_bits(bits, 0, min(used, nblocks), 1)
        itb = -(-sb.inodes_per_group * sb.inode_size // mp.bs)
        for other in mp.gds:
            for blk, n in ((other.block_bitmap, 1), (other.inode_bitmap, 1),
                           (other.inode_table, itb)):
                lo = max(blk, first)
                hi = min(blk + n, first + nblocks)
                if lo < hi:
                    _set_bits(bits, lo - first, hi - lo, 1)
        if nblocks < mp.bs * 8:
            _set_bits(bits, nblocks, mp.bs * 8 - nblocks, 1)
        free = nblocks - sum(bin(b).count("1") for b in bits[:(nblocks + 7) // 8])
        if nblocks % 8:
            free += 8 - nblocks % 8          # padding bits counted above are not blocks
        if free != gd.free_blocks:
            corrupt("group %d: uninitialized bitmap gives %d free blocks, descriptor %d",
                    g, free, gd.free_blocks)
        bp = mp.getblk(gd.block_bitmap)
        bp.data[:] = bits
        mp.bdwrite(bp)
        gd.flags &= ~BG_BLOCK_UNINIT
        gd.dirty = True

    # -- inodes --------------------------------------------------------------

    def alloc_inode(self, parent_ino: int, is_dir: bool) -> int:
        """A free inode number, in the parent's group if it has room (directories:
        the group with the most free inodes, to spread them as Linux's Orlov does)."""
        sb = self.sb
        mp = self.mp
        if self.nfree_inodes <= 0:
            raise_errno(errno.ENOSPC)
        ng = sb.ngroups
        pg = (parent_ino - 1) // sb.inodes_per_group
        order: list[int]
        if is_dir:
            avg = self.nfree_inodes // ng
            best = [g for g in range(ng) if mp.gds[g].free_inodes > avg
                    and mp.gds[g].free_blocks > 0]
            order = sorted(best, key=lambda g: -mp.gds[g].free_blocks)[:1]
            order += [(pg + k) % ng for k in range(ng)]
        else:
            order = [(pg + k) % ng for k in range(ng)]
        for g in order:
            gd = mp.gds[g]
            if gd.free_inodes == 0:
                continue
            if gd.flags & BG_INODE_UNINIT:
                bp = mp.getblk(gd.inode_bitmap)
                bits = bytearray(mp.bs)
                ipg = sb.inodes_per_group
                _set_bits(bits, ipg, mp.bs * 8 - ipg, 1)
                bp.data[:] = bits
                mp.bdwrite(bp)
                gd.flags &= ~BG_INODE_UNINIT
                gd.itable_unused = ipg
                gd.dirty = True
            bp = mp.bread(gd.inode_bitmap)
            start = 0
            if g == 0:
                start = sb.first_ino - 1
            i = _find_zero(bp.data, start, sb.inodes_per_group)
            if i < 0:
                mp.brelse(bp)
                corrupt("group %d: %d free inodes but a full bitmap", g, gd.free_inodes)
            _set_one(bp.data, i, 1)
            mp.bdwrite(bp)
            gd.free_inodes -= 1
            if is_dir:
                gd.used_dirs += 1
            if sb.metadata_csum or sb.gdt_csum:
                unused_from = sb.inodes_per_group - gd.itable_unused
                if i >= unused_from:
                    gd.itable_unused = sb.inodes_per_group - i - 1
            gd.dirty = True
            self.nfree_inodes -= 1
            return g * sb.inodes_per_group + i + 1
        raise_errno(errno.ENOSPC)

    def free_inode(self, ino: int, is_dir: bool) -> None:
        sb = self.sb
        mp = self.mp
        g, i = divmod(ino - 1, sb.inodes_per_group)
        gd = mp.gds[g]
        bp = mp.bread(gd.inode_bitmap)
        if not _bit(bp.data, i):
            mp.brelse(bp)
            corrupt("freeing free inode %d (bitmap/count disagree)", ino)
        _set_one(bp.data, i, 0)
        mp.bdwrite(bp)
        gd.free_inodes += 1
        if is_dir and gd.used_dirs:
            gd.used_dirs -= 1
        gd.dirty = True
        self.nfree_inodes += 1

    # -- writing back --------------------------------------------------------

    def sync(self) -> None:
        """Write dirty group descriptors (with bitmap checksums) into the GDT blocks."""
        mp = self.mp
        sb = self.sb
        per = sb.desc_per_block
        dsz = sb.desc_size if sb.is64 else 32
        dirty = [g for g, gd in enumerate(mp.gds) if gd.dirty]
        if not dirty:
            return
        blocks: dict[int, list[int]] = {}
        for g in dirty:
            blocks.setdefault(g // per, []).append(g)
        for idx, groups in blocks.items():
            raws = []
            for g in groups:
                gd = mp.gds[g]
                bcs = ics = None
                if sb.metadata_csum:
                    bcs, ics = self._bitmap_csums(gd)
                raws.append((g, encode_gd(sb, g, gd, bcs, ics)))
            bp = mp.bread(mp.gdt_block(idx))
            for g, raw in raws:
                off = (g % per) * dsz
                bp.data[off:off + dsz] = raw[:dsz]
                mp.gds[g].dirty = False
            mp.bdwrite(bp)

    def _bitmap_csums(self, gd: GroupDesc) -> tuple[int | None, int | None]:
        mp = self.mp
        sb = self.sb
        bcs = ics = None
        if not gd.flags & BG_BLOCK_UNINIT:
            data = mp.read_block(gd.block_bitmap)
            bcs = crc32c_raw(sb.csum_seed, data[:sb.blocks_per_group // 8])
        if not gd.flags & BG_INODE_UNINIT:
            data = mp.read_block(gd.inode_bitmap)
            ics = crc32c_raw(sb.csum_seed, data[:sb.inodes_per_group // 8])
        return bcs, ics
