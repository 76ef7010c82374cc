"""ext2 block mapping: logical file blocks -> device blocks, for block maps and extents.

Allowed imports: ``rumpfs.errors`` and this package.

Two implementations of one small interface (:class:`BlockMap`):

- :class:`IndirectMap` -- ext2/ext3's 12 direct pointers, then single, double
  and triple indirect blocks, read and written in place through the buffer
  cache; an indirect block is allocated only when a block under it is.
- :class:`ExtentMap` -- ext4's extent tree. The whole tree is read once into
  a sorted list of extents (checked: magic, depth <= 5, entry counts, key
  order, no block visited twice, every block in range) with the tree's shape
  (which extents each leaf holds). A change of one extent rewrites its leaf
  (split when full) and the index nodes above; bigger changes repack the
  whole tree, reusing its blocks (only nodes whose bytes changed are
  written). Depth grows and shrinks as
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
    """ext4 extent tree, held as a sorted list plus the leaves' shape."""

    def __init__(self, vp: Ext2Node) -> None:
        super().__init__(vp)
        # parallel lists, sorted by logical block
        self.lblks: list[int] = []
        self.lens: list[int] = []
        self.pblks: list[int] = []
        self.uninit: list[bool] = []
        self.per_block = (self.mp.bs - 12) // 12
        # The tree's shape, kept so that a change rewrites one leaf (plus the
        # few index nodes), not the whole tree: leaf j holds extents
        # [cuts[j], cuts[j+1]) and lives in leaf_blks[j]; idx_blks are the
        # index nodes' blocks. All empty while the extents fit the inode.
        self.cuts: list[int] = []
        self.leaf_blks: list[int] = []
        self.idx_blks: list[int] = []
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
        cuts = self.cuts
        if any(cuts[j] >= cuts[j + 1] for j in range(len(cuts) - 1)) or (
                cuts and cuts[-1] >= len(out)):
            # an empty leaf: forget the shape, the next change repacks
            self.idx_blks += self.leaf_blks
            self.cuts, self.leaf_blks = [], []
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
                cdata = self.mp.read_block(child)
                if self.mp.sb.metadata_csum:
                    self._verify_tail(child, cdata)
                if depth == 1:
                    self.cuts.append(len(out))
                    self.leaf_blks.append(child)
                else:
                    self.idx_blks.append(child)
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
        touched = max(i - 1, 0)
        added = 0
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
                added += 1
            lblk += take
            pblk += take
            n -= take
        # ... and with the one after (a hole filled between two extents)
        if (0 < i < len(self.lblks) and not self.uninit[i] and not self.uninit[i - 1]
                and self.lblks[i - 1] + self.lens[i - 1] == self.lblks[i]
                and self.pblks[i - 1] + self.lens[i - 1] == self.pblks[i]
                and self.lens[i - 1] + self.lens[i] <= EXT_INIT_MAX):
            self.lens[i - 1] += self.lens[i]
            del self.lblks[i], self.lens[i], self.pblks[i], self.uninit[i]
            added -= 1
        self.vp.nblocks += total * self.per
        if -1 <= added <= 1:
            self._store_near(touched, added)
        else:
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
        """Write the extent list back as a freshly packed tree, reusing the old
        tree's blocks (truncate, uninitialized splits, many new extents)."""
        n = len(self.lblks)
        pool = self.leaf_blks + self.idx_blks
        self.leaf_blks, self.idx_blks = [], []
        if n <= 4:
            self.cuts = []
            self._free_surplus(pool)
            self._write_root()
            return
        self.cuts = list(range(0, n, self.per_block))
        for _ in self.cuts:
            self.leaf_blks.append(pool.pop(0) if pool else self._new_tree_block())
        for j in range(len(self.cuts)):
            self._write_leaf(j)
        self.idx_blks = pool               # reused by _write_index first
        self._write_index()

    def _store_near(self, i: int, added: int) -> None:
        """After a change at extent ``i`` (``added`` extents more: -1, 0 or 1),
        rewrite only its leaf (split in two when full) and the index above."""
        n = len(self.lblks)
        if n <= 4 or not self.cuts:
            self.store()
            return
        cuts = self.cuts
        j = max(bisect.bisect_right(cuts, i) - 1, 0)
        if added:
            for k in range(j + 1, len(cuts)):
                cuts[k] += added
        bounds = [*cuts, n]
        if any(bounds[k] >= bounds[k + 1] for k in range(j, min(j + 2, len(cuts)))):
            self.store()                   # an empty leaf: repack
            return
        end = bounds[j + 1]
        dirty = [j]
        if added < 0 and j + 1 < len(cuts):
            dirty.append(j + 1)            # its first extent merged into leaf j
        if end - cuts[j] > self.per_block:
            mid = cuts[j] + (end - cuts[j]) // 2
            cuts.insert(j + 1, mid)
            self.leaf_blks.insert(j + 1, self._new_tree_block(self.leaf_blks[j]))
            dirty = [j, j + 1]
        for d in dirty:
            self._write_leaf(d)
        self._write_index()

    def _new_tree_block(self, near: int = 0) -> int:
        blk, _ = self.mp.alloc.alloc_blocks(near or self.goal(0), 1)
        self.vp.nblocks += self.per
        return blk

    def _free_surplus(self, blocks: list[int]) -> None:
        for blk in blocks:
            self.mp.alloc.free_blocks(blk, 1)
            self.vp.nblocks -= self.per

    def _leaf_body(self, a: int, b: int) -> bytes:
        lb, ln, pb, un = self.lblks, self.lens, self.pblks, self.uninit
        return b"".join(
            _LEAF.pack(lb[k], ln[k] + (EXT_INIT_MAX if un[k] else 0), pb[k] >> 32,
                       pb[k] & 0xFFFFFFFF) for k in range(a, b))

    def _write_leaf(self, j: int) -> None:
        a = self.cuts[j]
        b = self.cuts[j + 1] if j + 1 < len(self.cuts) else len(self.lblks)
        self._write_node(self.leaf_blks[j], b - a, 0, self._leaf_body(a, b))

    def _write_index(self) -> None:
        """The index levels above the leaves (reusing ``idx_blks``) and the root."""
        per = self.per_block
        keys = [(self.lblks[c], blk) for c, blk in zip(self.cuts, self.leaf_blks, strict=True)]
        old = self.idx_blks
        used: list[int] = []
        depth = 1
        while len(keys) > 4:
            parents: list[tuple[int, int]] = []
            for k in range(0, len(keys), per):
                chunk = keys[k:k + per]
                blk = old.pop(0) if old else self._new_tree_block()
                used.append(blk)
                body = b"".join(_IDX.pack(lb, cb & 0xFFFFFFFF, cb >> 32, 0) for lb, cb in chunk)
                self._write_node(blk, len(chunk), depth, body)
                parents.append((chunk[0][0], blk))
            keys = parents
            depth += 1
        self._free_surplus(old)
        self.idx_blks = used
        # e2fsck wants each index key equal to its child's first key
        body = b"".join(_IDX.pack(lb, cb & 0xFFFFFFFF, cb >> 32, 0) for lb, cb in keys)
        root = bytearray(60)
        _HDR.pack_into(root, 0, EXT_MAGIC, len(keys), 4, depth, 0)
        root[12:12 + len(body)] = body
        self.vp.raw[0x28:0x64] = root

    def _write_root(self) -> None:
        """All extents (at most 4) in the inode itself: depth 0."""
        n = len(self.lblks)
        root = bytearray(60)
        _HDR.pack_into(root, 0, EXT_MAGIC, n, 4, 0, 0)
        body = self._leaf_body(0, n)
        root[12:12 + len(body)] = body
        self.vp.raw[0x28:0x64] = root

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
