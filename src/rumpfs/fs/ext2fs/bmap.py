"""ext2 block mapping: logical file blocks -> device blocks, for block maps and extents.

Allowed imports: ``rumpfs.errors`` and this package.

Two implementations of one small interface (:class:`BlockMap`):

- :class:`IndirectMap` -- ext2/ext3's 12 direct pointers, then single, double
  and triple indirect blocks, read and written in place through the buffer
  cache; an indirect block is allocated only when a block under it is.
- :class:`ExtentMap` -- ext4's extent tree. The whole tree is read once into
  a sorted list of extents (checked: magic, depth <= 5, entry counts, key
  order, no block visited twice, every block in range) and written back after
  each change as a fresh, fully packed tree that reuses the old tree's blocks
  (only nodes whose bytes changed are written). Depth grows and shrinks as
  the extent count needs; uninitialized extents read as zeros and are split
  when written.

Holes are never allocated: only :meth:`BlockMap.insert` of a caller's data
allocates. The maps change ``vp.raw`` (the block pointers or the extent root)
and ``vp.nblocks``; the caller writes the inode back (``iupdate``).
:meth:`BlockMap.truncate` frees every block at or past a logical block,
including index blocks left empty. ``vp.nblocks`` (512-byte units)
counts data and tree blocks.
"""

from __future__ import annotations

import bisect
import struct
from typing import TYPE_CHECKING

from rumpfs.errors import errno, raise_errno
from rumpfs.fs.ext2fs.csum import crc32c_raw
from rumpfs.fs.ext2fs.ext2fs import corrupt, put32, u32
from rumpfs.fs.ext2fs.inode import EXTENTS_FL, Ext2Node

if TYPE_CHECKING:
    from rumpfs.fs.ext2fs.vfsops import Ext2Mount

__all__ = ["BlockMap", "ExtentMap", "IndirectMap", "bmap_of"]

EXT_MAGIC = 0xF30A
EXT_MAX_DEPTH = 5
EXT_INIT_MAX = 32768
EXT_UNINIT_MAX = 32767
HOLE_MAX = 1 << 32              # "hole to the end of the file"
_HDR = struct.Struct("<HHHHI")
_LEAF = struct.Struct("<IHHI")
_IDX = struct.Struct("<IIHH")


class BlockMap:
    """Interface shared by both block-map kinds."""

    def __init__(self, vp: Ext2Node) -> None:
        self.vp = vp
        self.mp: Ext2Mount = vp.mount  # type: ignore[assignment]
        self.per = self.mp.bs // 512

    def lookup(self, lblk: int) -> tuple[int, int, bool]:
        """(device block or 0 for a hole, blocks in this run, uninitialized?)."""
        raise NotImplementedError

    def insert(self, lblk: int, pblk: int, n: int) -> None:
        """Map the hole ``[lblk, lblk+n)`` to ``[pblk, pblk+n)`` (already allocated)."""
        raise NotImplementedError

    def mark_init(self, lblk: int, n: int) -> None:
        """Blocks ``[lblk, lblk+n)`` of uninitialized extents now hold data."""

    def truncate(self, lblk: int) -> None:
        """Free every block at or past logical block ``lblk``."""
        raise NotImplementedError

    def goal(self, lblk: int) -> int:
        """Where a new block for ``lblk`` should go (next to its neighbours)."""
        raise NotImplementedError

    def max_blocks(self) -> int:
        raise NotImplementedError

    def _check_phys(self, pblk: int, n: int = 1) -> None:
        sb = self.mp.sb
        if pblk <= sb.first_data_block or pblk + n > sb.blocks_count or n <= 0:
            corrupt("inode %d maps blocks %d+%d out of range", self.vp.ino, pblk, n)


def bmap_of(vp: Ext2Node) -> BlockMap:
    """The (cached) block map of ``vp``."""
    bm = vp.bmap
    if bm is None:
        bm = ExtentMap(vp) if vp.flags & EXTENTS_FL else IndirectMap(vp)
        vp.bmap = bm
    return bm


# ---------------------------------------------------------------------------
# indirect blocks

class IndirectMap(BlockMap):
    """Direct, single, double and triple indirect pointers (ext2/ext3)."""

    def __init__(self, vp: Ext2Node) -> None:
        super().__init__(vp)
        self.apb = self.mp.sb.addr_per_block
        self.shift = self.apb.bit_length() - 1

    def _iblock(self, i: int) -> int:
        return u32(self.vp.raw, 0x28 + 4 * i)

    def _set_iblock(self, i: int, v: int) -> None:
        put32(self.vp.raw, 0x28 + 4 * i, v)

    def max_blocks(self) -> int:
        a = self.apb
        return 12 + a + a * a + a * a * a

    def _path(self, lblk: int) -> tuple[int, list[int]]:
        """(top-level slot, indexes in each indirect level below it)."""
        a, s = self.apb, self.shift
        if lblk < 12:
            return lblk, []
        lblk -= 12
        if lblk < a:
            return 12, [lblk]
        lblk -= a
        if lblk < a * a:
            return 13, [lblk >> s, lblk & (a - 1)]
        lblk -= a * a
        if lblk < a * a * a:
            return 14, [lblk >> (2 * s), (lblk >> s) & (a - 1), lblk & (a - 1)]
        raise_errno(errno.EFBIG)

    def lookup(self, lblk: int) -> tuple[int, int, bool]:
        if lblk >= self.max_blocks():
            return 0, HOLE_MAX, False
        slot, path = self._path(lblk)
        p = self._iblock(slot)
        if not path:
            if p:
                self._check_phys(p)
            return p, 1, False
        data: bytes = b""
        for i, idx in enumerate(path):
            if p == 0:
                # a missing indirect block: the hole runs to the end of what it covers
                rest = path[i:]
                span = self.apb ** len(rest)
                pos = 0
                for x in rest:
                    pos = pos * self.apb + x
                return 0, span - pos, False
            self._check_phys(p)
            data = self.mp.read_block(p)
            p = u32(data, 4 * idx)
        last = path[-1]
        if p == 0:
            n = 1
            while last + n < self.apb and u32(data, 4 * (last + n)) == 0:
                n += 1
            return 0, n, False
        self._check_phys(p)
        n = 1
        while last + n < self.apb and u32(data, 4 * (last + n)) == p + n:
            n += 1
        return p, n, False

    def goal(self, lblk: int) -> int:
        if lblk > 0:
            p, _, _ = self.lookup(lblk - 1)
            if p:
                return p + 1
        return self.mp.alloc.inode_goal(self.vp.ino)

    def insert(self, lblk: int, pblk: int, n: int) -> None:
        for i in range(n):
            self._set(lblk + i, pblk + i)
        self.vp.nblocks += n * self.per

    def _set(self, lblk: int, pblk: int) -> None:
        slot, path = self._path(lblk)
        if not path:
            self._set_iblock(slot, pblk)
            return
        p = self._iblock(slot)
        if p == 0:
            p = self._new_indirect(pblk)
            self._set_iblock(slot, p)
        for depth, idx in enumerate(path):
            self._check_phys(p)
            if depth == len(path) - 1:
                bp = self.mp.bread(p)
                put32(bp.data, 4 * idx, pblk)
                self.mp.bdwrite(bp)
                return
            nxt = u32(self.mp.read_block(p), 4 * idx)
            if nxt == 0:
                # allocate with no buffer held: a failure must leak nothing
                nxt = self._new_indirect(pblk)
                bp = self.mp.bread(p)
                put32(bp.data, 4 * idx, nxt)
                self.mp.bdwrite(bp)
            p = nxt

    def _new_indirect(self, near: int) -> int:
        blk, _ = self.mp.alloc.alloc_blocks(near, 1)
        self.mp.zero_block(blk)
        self.vp.nblocks += self.per
        return blk

    def truncate(self, lblk: int) -> None:
        a = self.apb
        freed = 0
        for slot in range(12):
            p = self._iblock(slot)
            if slot >= lblk and p:
                self._check_phys(p)
                self.mp.alloc.free_blocks(p, 1)
                self._set_iblock(slot, 0)
                freed += 1
        base = 12
        for slot, level in ((12, 1), (13, 2), (14, 3)):
            span = a ** level
            p = self._iblock(slot)
            if p:
                gone, empty = self._free_tree(p, level, base, lblk)
                freed += gone
                if empty:
                    self._set_iblock(slot, 0)
            base += span
        if freed:
            self.vp.nblocks = max(0, self.vp.nblocks - freed * self.per)

    def _free_tree(self, blk: int, level: int, base: int, lblk: int) -> tuple[int, bool]:
        """Free what lies at or past ``lblk`` under indirect block ``blk`` (covering
        logical blocks from ``base``); returns (blocks freed, blk itself freed)."""
        a = self.apb
        span = a ** (level - 1)
        if base + a * span <= lblk:
            return 0, False
        self._check_phys(blk)
        data = bytearray(self.mp.read_block(blk))     # a copy: no buffer held below
        freed = 0
        changed = False
        for i in range(a):
            child = u32(data, 4 * i)
            if not child:
                continue
            cbase = base + i * span
            if cbase + span <= lblk:
                continue
            if level == 1:
                self._check_phys(child)
                self.mp.alloc.free_blocks(child, 1)
                put32(data, 4 * i, 0)
                freed += 1
                changed = True
            else:
                gone, empty = self._free_tree(child, level - 1, cbase, lblk)
                freed += gone
                if empty:
                    put32(data, 4 * i, 0)
                    changed = True
        empty = not any(data)
        if changed and not empty:
            bp = self.mp.bread(blk)
            bp.data[:] = data
            self.mp.bdwrite(bp)
        if empty:
            self.mp.alloc.free_blocks(blk, 1)
            freed += 1
        return freed, empty


# ---------------------------------------------------------------------------
# extents

class ExtentMap(BlockMap):
    """ext4 extent tree, held as a sorted list and rewritten on change."""

    def __init__(self, vp: Ext2Node) -> None:
        super().__init__(vp)
        # parallel lists, sorted by logical block
        self.lblks: list[int] = []
        self.lens: list[int] = []
        self.pblks: list[int] = []
        self.uninit: list[bool] = []
        self.tree: list[int] = []                 # blocks of the on-disk tree nodes
        self.per_block = (self.mp.bs - 12) // 12
        self._load()

    def max_blocks(self) -> int:
        return 1 << 32

    # -- reading -------------------------------------------------------------

    def _load(self) -> None:
        root = bytes(self.vp.raw[0x28:0x64])
        seen: set[int] = set()
        limit = self.vp.nblocks // self.per + 1          # the tree cannot be bigger
        out: list[tuple[int, int, int, bool]] = []
        self._node(root, 4, None, 0, 1 << 32, seen, limit, out)
        prev_end = 0
        for lb, n, pb, un in out:
            if lb < prev_end:
                corrupt("inode %d extents overlap at %d", self.vp.ino, lb)
            prev_end = lb + n
            self.lblks.append(lb)
            self.lens.append(n)
            self.pblks.append(pb)
            self.uninit.append(un)

    def _node(self, data: bytes, cap: int, depth_want: int | None, lo: int, hi: int,
              seen: set[int], limit: int, out: list[tuple[int, int, int, bool]]) -> None:
        magic, entries, emax, depth, _ = _HDR.unpack_from(data, 0)
        ino = self.vp.ino
        if magic != EXT_MAGIC:
            corrupt("inode %d extent node magic %#x", ino, magic)
        if depth > EXT_MAX_DEPTH or (depth_want is not None and depth != depth_want):
            corrupt("inode %d extent depth %d", ino, depth)
        if emax > cap or entries > emax:
            corrupt("inode %d extent node %d/%d entries (capacity %d)", ino, entries, emax, cap)
        prev = lo
        for i in range(entries):
            off = 12 + 12 * i
            if depth == 0:
                lb, ln, hi16, lo32 = _LEAF.unpack_from(data, off)
                un = ln > EXT_INIT_MAX
                n = ln - EXT_INIT_MAX if un else ln
                pb = (hi16 << 32) | lo32
                if n == 0 or lb < prev or lb + n > hi:
                    corrupt("inode %d extent %d+%d outside [%d, %d)", ino, lb, n, prev, hi)
                self._check_phys(pb, n)
                out.append((lb, n, pb, un))
                prev = lb + n
            else:
                lb, leaf_lo, leaf_hi, _ = _IDX.unpack_from(data, off)
                child = (leaf_hi << 32) | leaf_lo
                nxt = hi
                if i + 1 < entries:
                    nxt = u32(data, off + 12)
                if lb < prev or nxt < lb or (i == 0 and lb < lo):
                    corrupt("inode %d extent index keys out of order", ino)
                self._check_phys(child)
                if child in seen or len(seen) >= limit:
                    corrupt("inode %d extent tree revisits block %d", ino, child)
                seen.add(child)
                self.tree.append(child)
                cdata = self.mp.read_block(child)
                if self.mp.sb.metadata_csum:
                    self._verify_tail(child, cdata)
                self._node(cdata, self.per_block, depth - 1, lb, nxt, seen, limit, out)
                prev = lb

    def _verify_tail(self, blk: int, data: bytes) -> None:
        emax = _HDR.unpack_from(data, 0)[2]
        if emax > self.per_block:
            corrupt("inode %d extent block %d capacity %d", self.vp.ino, blk, emax)
        end = 12 + 12 * emax
        want = u32(data, end)
        have = crc32c_raw(self.vp.csum_seed, data[:end])
        if want != have:
            corrupt("inode %d extent block %d checksum %#x, computed %#x",
                    self.vp.ino, blk, want, have)

    def lookup(self, lblk: int) -> tuple[int, int, bool]:
        i = bisect.bisect_right(self.lblks, lblk) - 1
        if i >= 0:
            off = lblk - self.lblks[i]
            if off < self.lens[i]:
                return self.pblks[i] + off, self.lens[i] - off, self.uninit[i]
        if i + 1 < len(self.lblks):
            return 0, self.lblks[i + 1] - lblk, False
        return 0, HOLE_MAX, False

    def goal(self, lblk: int) -> int:
        i = bisect.bisect_right(self.lblks, lblk) - 1
        if i >= 0:
            return self.pblks[i] + (lblk - self.lblks[i])
        if self.pblks:
            return max(self.mp.sb.first_data_block + 1, self.pblks[0] - (self.lblks[0] - lblk))
        return self.mp.alloc.inode_goal(self.vp.ino)

    # -- changing ------------------------------------------------------------

    def insert(self, lblk: int, pblk: int, n: int) -> None:
        if lblk + n > 1 << 32:
            raise_errno(errno.EFBIG)
        i = bisect.bisect_right(self.lblks, lblk)
        total = n
        # merge with the extent before when both ends touch
        while n:
            if (i > 0 and not self.uninit[i - 1]
                    and self.lblks[i - 1] + self.lens[i - 1] == lblk
                    and self.pblks[i - 1] + self.lens[i - 1] == pblk
                    and self.lens[i - 1] < EXT_INIT_MAX):
                take = min(n, EXT_INIT_MAX - self.lens[i - 1])
                self.lens[i - 1] += take
            else:
                take = min(n, EXT_INIT_MAX)
                self.lblks.insert(i, lblk)
                self.lens.insert(i, take)
                self.pblks.insert(i, pblk)
                self.uninit.insert(i, False)
                i += 1
            lblk += take
            pblk += take
            n -= take
        self.vp.nblocks += total * self.per
        self.store()

    def mark_init(self, lblk: int, n: int) -> None:
        end = lblk + n
        while lblk < end:
            i = bisect.bisect_right(self.lblks, lblk) - 1
            if i < 0 or lblk >= self.lblks[i] + self.lens[i]:
                return
            if not self.uninit[i]:
                lblk = self.lblks[i] + self.lens[i]
                continue
            s, ln, p = self.lblks[i], self.lens[i], self.pblks[i]
            a, b = lblk, min(end, s + ln)
            pieces = []
            if a > s:
                pieces.append((s, a - s, p, True))
            pieces.append((a, b - a, p + (a - s), False))
            if b < s + ln:
                pieces.append((b, s + ln - b, p + (b - s), True))
            del self.lblks[i], self.lens[i], self.pblks[i], self.uninit[i]
            for j, (pl, pn, pp, pu) in enumerate(pieces):
                self.lblks.insert(i + j, pl)
                self.lens.insert(i + j, pn)
                self.pblks.insert(i + j, pp)
                self.uninit.insert(i + j, pu)
            lblk = b
        self.store()

    def truncate(self, lblk: int) -> None:
        alloc = self.mp.alloc
        freed = 0
        i = bisect.bisect_left(self.lblks, lblk)
        if i > 0 and self.lblks[i - 1] + self.lens[i - 1] > lblk:
            j = i - 1
            keep = lblk - self.lblks[j]
            alloc.free_blocks(self.pblks[j] + keep, self.lens[j] - keep)
            freed += self.lens[j] - keep
            self.lens[j] = keep
        for j in range(i, len(self.lblks)):
            alloc.free_blocks(self.pblks[j], self.lens[j])
            freed += self.lens[j]
        del self.lblks[i:], self.lens[i:], self.pblks[i:], self.uninit[i:]
        self.vp.nblocks = max(0, self.vp.nblocks - freed * self.per)
        self.store()

    def store(self) -> None:
        """Write the extent list back as a packed tree (reusing the old tree's blocks)."""
        mp = self.mp
        vp = self.vp
        n = len(self.lblks)
        leaves = [(self.lblks[i], self.lens[i] + (EXT_INIT_MAX if self.uninit[i] else 0),
                   self.pblks[i]) for i in range(n)]
        per = self.per_block
        # levels[0] = leaf nodes; each node is a list of entries
        levels: list[list[list[tuple[int, int, int]]]] = []
        nodes: list[list[tuple[int, int, int]]] = [leaves]
        if n > 4:
            nodes = [leaves[k:k + per] for k in range(0, n, per)]
            levels.append(nodes)
            while len(nodes) > 4:
                count = len(nodes)
                parents = [[(0, 0, 0)] * min(per, count - k) for k in range(0, count, per)]
                levels.append(parents)
                nodes = parents
        depth = len(levels)
        needed = sum(len(lv) for lv in levels)
        old = self.tree
        if needed > len(old):
            goal = self.goal(0)
            while len(old) < needed:
                blk, _ = mp.alloc.alloc_blocks(goal, 1)
                old.append(blk)
                vp.nblocks += self.per
        elif needed < len(old):
            for blk in old[needed:]:
                mp.alloc.free_blocks(blk, 1)
                vp.nblocks -= self.per
            del old[needed:]
        # assign blocks and fill index entries bottom up
        k = 0
        child_keys: list[tuple[int, int]] = []       # (first lblk, block) of each node
        for level, lv in enumerate(levels):
            keys: list[tuple[int, int]] = []
            for ci, node in enumerate(lv):
                blk = old[k]
                k += 1
                if level == 0:
                    first = node[0][0]
                    body = b"".join(_LEAF.pack(lb, ln, pb >> 32, pb & 0xFFFFFFFF)
                                    for lb, ln, pb in node)
                else:
                    entries = child_keys[ci * per:ci * per + len(node)]
                    first = entries[0][0]
                    body = b"".join(_IDX.pack(lb, cb & 0xFFFFFFFF, cb >> 32, 0)
                                    for lb, cb in entries)
                self._write_node(blk, len(node), level, body)
                keys.append((first, blk))
            child_keys = keys
        # the root in the inode
        if depth == 0:
            body = b"".join(_LEAF.pack(lb, ln, pb >> 32, pb & 0xFFFFFFFF) for lb, ln, pb in leaves)
            count = n
        else:
            # e2fsck wants each index key equal to its child's first key
            body = b"".join(_IDX.pack(lb, cb & 0xFFFFFFFF, cb >> 32, 0) for lb, cb in child_keys)
            count = len(child_keys)
        root = bytearray(60)
        _HDR.pack_into(root, 0, EXT_MAGIC, count, 4, depth, 0)
        root[12:12 + len(body)] = body
        vp.raw[0x28:0x64] = root

    def _write_node(self, blk: int, entries: int, depth: int, body: bytes) -> None:
        mp = self.mp
        per = self.per_block
        bp = mp.bread(blk)
        data = bytearray(mp.bs)
        _HDR.pack_into(data, 0, EXT_MAGIC, entries, per, depth, 0)
        data[12:12 + len(body)] = body
        if mp.sb.metadata_csum:
            end = 12 + 12 * per
            put32(data, end, crc32c_raw(self.vp.csum_seed, data[:end]))
        if bp.data != data:
            bp.data[:] = data
            mp.bdwrite(bp)
        else:
            mp.brelse(bp)
