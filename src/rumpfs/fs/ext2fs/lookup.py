"""ext2 directories: entries with file types, lookup, insert, remove, htree.

Allowed imports: ``rumpfs.vfs``, ``rumpfs.errors`` and this package.

A directory is a file of blocks, each a chain of records (inode, rec_len,
name_len, file_type, name) that covers the block exactly; with
metadata_csum a 12-byte tail record holds the block's crc32c. Every record is
checked as it is parsed (length, alignment, bounds, inode range) and a bad
one fails the call with EUCLEAN.

Each directory vnode keeps a name cache (``dcache``: name -> (inode, type,
block, offset)) filled by one scan and kept current by this driver's own
changes, so lookups and creates in big directories cost O(1) block reads.

Indexed (htree, ``dir_index``) directories are looked up through the index
(hash -> leaf block) when no cache exists; their leaves are ordinary blocks,
so scans read them like any directory. A new entry goes into the leaf its
hash selects while that leaf has room (the index needs no change). When it
has none, the index is dropped (EXT4_INDEX_FL cleared and the index blocks
turned into empty, checksummed leaf blocks): the directory stays valid for
Linux and e2fsck, which only lose the speed-up.

readdir cookies are byte positions (block * block size + offset of the next
record). Records never move: removal merges a record into its predecessor
(or clears its inode when first in its block) and insertion splits a record's
slack, so a position handed out stays meaningful.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING

from rumpfs.errors import errno, raise_errno
from rumpfs.fs.ext2fs.bmap import bmap_of
from rumpfs.fs.ext2fs.csum import crc32c_raw
from rumpfs.fs.ext2fs.ext2fs import IN_FILETYPE, IN_LARGEDIR, corrupt, put16, put32, u16, u32
from rumpfs.fs.ext2fs.inode import ENCRYPT_FL, INDEX_FL, INLINE_DATA_FL, Ext2Node, iupdate
from rumpfs.vfs.vnode import VBLK, VCHR, VDIR, VFIFO, VLNK, VNON, VREG, VSOCK, VType

if TYPE_CHECKING:
    from rumpfs.fs.ext2fs.vfsops import Ext2Mount

__all__ = ["FT_OF", "VTYPE_OF", "DirCache"]

FT_OF = {VREG: 1, VDIR: 2, VCHR: 3, VBLK: 4, VFIFO: 5, VSOCK: 6, VLNK: 7}
VTYPE_OF: dict[int, VType] = {v: k for k, v in FT_OF.items()}
_TAIL_FT = 0xDE
_HDR = struct.Struct("<IHBB")

# name -> (inode, file type, logical block, offset)
DirCache = dict[bytes, tuple[int, int, int, int]]


def rec_len_of(v: int, bs: int) -> int:
    if bs < 65536:
        return v
    if v in (65535, 0):
        return bs
    return (v & 65532) | ((v & 3) << 16)


def rec_len_to(n: int, bs: int) -> int:
    if bs < 65536:
        return n
    if n == 65536:
        return 65535
    return (n & 65532) | ((n >> 16) & 3)


def _need(name_len: int) -> int:
    return (8 + name_len + 3) & ~3


class Dir:
    """Directory operations on one directory vnode (cheap; made per call)."""

    __slots__ = ("bs", "csum", "dvp", "filetype", "mp")

    def __init__(self, dvp: Ext2Node) -> None:
        self.dvp = dvp
        mp: Ext2Mount = dvp.mount  # type: ignore[assignment]
        self.mp = mp
        self.bs = mp.bs
        self.csum = mp.sb.metadata_csum
        self.filetype = bool(mp.sb.incompat & IN_FILETYPE)

    # -- blocks ------------------------------------------------------------

    def nblocks(self) -> int:
        if self.dvp.flags & (INLINE_DATA_FL | ENCRYPT_FL):
            raise_errno(errno.EOPNOTSUPP)       # inline or encrypted directories
        size = self.dvp.size
        # Linux's limit (2 GiB; 4 TiB-ish with large_dir): a bigger one is a
        # corrupt size, and scanning it would take hours
        limit = 1 << 31 if not self.mp.sb.incompat & IN_LARGEDIR else self.bs << 32
        if size % self.bs or size > limit:
            corrupt("directory %d size %d", self.dvp.ino, size)
        return size // self.bs

    def _pblk(self, lblk: int) -> int:
        pblk, _, uninit = bmap_of(self.dvp).lookup(lblk)
        if pblk == 0 or uninit:
            corrupt("directory %d has a hole at block %d", self.dvp.ino, lblk)
        return pblk

    def _is_dx_node(self, lblk: int, data: bytes | bytearray) -> bool:
        if not self.dvp.flags & INDEX_FL:
            return False
        if lblk == 0:
            return True
        return u32(data, 0) == 0 and rec_len_of(u16(data, 4), self.bs) == self.bs

    def _has_tail(self, data: bytes | bytearray) -> bool:
        t = self.bs - 12
        return (u32(data, t) == 0 and u16(data, t + 4) == 12 and data[t + 6] == 0
                and data[t + 7] == _TAIL_FT)

    def read(self, lblk: int) -> bytes:
        data = self.mp.read_block(self._pblk(lblk))
        # An htree node is no leaf: Linux builds the root from the old first
        # leaf without clearing it, so its last 12 bytes can still look like a
        # leaf's checksum tail (with the dx_tail's checksum in place of ours).
        if self.csum and not self._is_dx_node(lblk, data) and self._has_tail(data):
            want = u32(data, self.bs - 4)
            have = crc32c_raw(self.dvp.csum_seed, data[:self.bs - 12])
            if want != have:
                corrupt("directory %d block %d checksum %#x, computed %#x",
                        self.dvp.ino, lblk, want, have)
        return data

    def parse(self, lblk: int, data: bytes | bytearray
              ) -> Iterator[tuple[int, int, int, bytes, int]]:
        """(offset, rec_len, inode, name, file type) of each record of one block."""
        bs = self.bs
        end = bs - 12 if self.csum and self._has_tail(data) else bs
        if lblk == 0 and self.dvp.flags & INDEX_FL:
            # the htree root: '.' and '..' only; '..' spans the index data
            end = bs
        off = 0
        max_ino = self.mp.sb.inodes_count
        ft_ok = self.filetype
        ino_self = self.dvp.ino
        while off < end:
            if off + 8 > end:
                corrupt("directory %d block %d: record at %d overruns", ino_self, lblk, off)
            ino, rl, nl, ft = _HDR.unpack_from(data, off)
            rl = rec_len_of(rl, bs)
            if not ft_ok:
                nl |= ft << 8
                ft = 0
            if rl < 12 or rl & 3 or off + rl > end or nl + 8 > rl or ino > max_ino \
                    or (ino and nl == 0):
                corrupt("directory %d block %d: bad record at %d (len %d, name %d, inode %d)",
                        ino_self, lblk, off, rl, nl, ino)
            name = bytes(data[off + 8:off + 8 + nl])
            if ino and (b"/" in name or b"\0" in name):
                corrupt("directory %d block %d: name %r at %d", ino_self, lblk, name, off)
            yield off, rl, ino, name, ft
            off += rl

    # -- whole-directory views --------------------------------------------

    def cache(self) -> DirCache:
        dc: DirCache | None = self.dvp.dcache
        if dc is not None:
            return dc
        dc = {}
        for lblk in range(self.nblocks()):
            data = self.read(lblk)
            if self._is_dx_node(lblk, data) and lblk:
                continue
            for off, _rl, ino, name, ft in self.parse(lblk, data):
                if ino:
                    if name in dc:
                        corrupt("directory %d holds %r twice", self.dvp.ino, name)
                    dc[name] = (ino, ft, lblk, off)
        self.dvp.dcache = dc
        return dc

    def lookup(self, name: bytes) -> tuple[int, int] | None:
        dc = self.dvp.dcache
        if dc is None:
            if self.dvp.flags & INDEX_FL and self.mp.sb.compat & 0x20:
                hit = self._htree_lookup(name)
                if hit is not False:
                    return hit  # type: ignore[return-value]
            dc = self.cache()
        got = dc.get(name)
        return None if got is None else (got[0], got[1])

    def entries(self, cookie: int) -> Iterator[tuple[bytes, int, int, int]]:
        """(name, inode, file type, cookie after it) from position ``cookie`` on."""
        bs = self.bs
        nb = self.nblocks()
        lblk, start = divmod(max(cookie, 0), bs)
        while lblk < nb:
            data = self.read(lblk)
            if not (lblk and self._is_dx_node(lblk, data)):
                for off, rl, ino, name, ft in self.parse(lblk, data):
                    if off < start or not ino or name in (b".", b".."):
                        continue
                    yield name, ino, ft, lblk * bs + off + rl
            lblk += 1
            start = 0

    def is_empty(self) -> bool:
        return all(name in (b".", b"..") for name in self.cache())

    # -- changes -----------------------------------------------------------

    def _seal(self, data: bytearray) -> None:
        """Refresh the checksum tail of a leaf block we changed."""
        if self.csum and self._has_tail(data):
            put32(data, self.bs - 4, crc32c_raw(self.dvp.csum_seed, data[:self.bs - 12]))

    def _put(self, data: bytearray, off: int, ino: int, rl: int, name: bytes, ft: int) -> None:
        if self.filetype:
            _HDR.pack_into(data, off, ino, rec_len_to(rl, self.bs), len(name), ft)
        else:
            _HDR.pack_into(data, off, ino, rec_len_to(rl, self.bs), len(name) & 0xFF,
                           len(name) >> 8)
        data[off + 8:off + 8 + len(name)] = name

    def enter(self, name: bytes, ino: int, vtype: VType) -> None:
        """Add ``name`` -> ``ino`` (the name is known to be absent)."""
        dc = self.cache()
        ft = FT_OF.get(vtype, 0) if self.filetype else 0
        need = _need(len(name))
        if self.dvp.flags & INDEX_FL:
            if self._htree_enter(name, ino, ft, need):
                return
            self._drop_index()
        nb = self.nblocks()
        mp = self.mp
        dvp = self.dvp
        end = self.bs - 12 if self.csum else self.bs
        # The fast path: the last record of the block we appended to last time.
        if dvp.dirtail >= 0 and dvp.dirhint < nb:
            lblk = dvp.dirhint
            pblk = self._pblk(lblk)
            head = mp.read_block(pblk)
            eino, rl, nl, eft = _HDR.unpack_from(head, dvp.dirtail)
            rl = rec_len_of(rl, self.bs)
            if not self.filetype:
                nl |= eft << 8
            if dvp.dirtail + rl == end and rl >= 12 and nl + 8 <= rl:
                used = _need(nl) if eino else 0
                if rl - used >= need:
                    ename = bytes(head[dvp.dirtail + 8:dvp.dirtail + 8 + nl])
                    self._split(lblk, pblk, dvp.dirtail, rl, eino, ename, used, name, ino, ft)
                    return
        for lblk in list(range(dvp.dirhint, nb)) + list(range(min(dvp.dirhint, nb))):
            pblk = self._pblk(lblk)
            # parse a copy (parsing may fail: no buffer is held then)
            for off, rl, eino, ename, _eft in self.parse(lblk, mp.read_block(pblk)):
                used = _need(len(ename)) if eino else 0
                if rl - used >= need:
                    self._split(lblk, pblk, off, rl, eino, ename, used, name, ino, ft)
                    return
        # no room: a new block at the end
        data = self._new_block(nb)
        self._put(data, 0, ino, end, name, ft)
        self._write_new(nb, data)
        dc[name] = (ino, ft, nb, 0)
        dvp.dirhint = nb
        dvp.dirtail = 0

    def _split(self, lblk: int, pblk: int, off: int, rl: int, eino: int, ename: bytes,
               used: int, name: bytes, ino: int, ft: int) -> None:
        """Put the new record in the slack of record ``off`` (or in it, if unused)."""
        mp = self.mp
        bp = mp.bread(pblk)
        data = bp.data
        if eino:
            self._put(data, off, eino, used, ename, data[off + 7] if self.filetype else 0)
            noff = off + used
            self._put(data, noff, ino, rl - used, name, ft)
        else:
            noff = off
            self._put(data, off, ino, rl, name, ft)
        self._seal(data)
        mp.bdwrite(bp)
        self.dvp.dcache[name] = (ino, ft, lblk, noff)  # type: ignore[index]
        end = self.bs - 12 if self.csum else self.bs
        self.dvp.dirhint = lblk
        self.dvp.dirtail = noff if off + rl == end else -1

    def _new_block(self, lblk: int) -> bytearray:
        data = bytearray(self.bs)
        if self.csum:
            t = self.bs - 12
            _HDR.pack_into(data, t, 0, 12, 0, _TAIL_FT)
        del lblk
        return data

    def _write_new(self, lblk: int, data: bytearray) -> None:
        """Allocate logical block ``lblk`` of the directory and write ``data`` there."""
        mp = self.mp
        bm = bmap_of(self.dvp)
        pblk, _ = mp.alloc.alloc_blocks(bm.goal(lblk), 1)
        try:
            bm.insert(lblk, pblk, 1)
        except OSError:
            mp.alloc.free_blocks(pblk, 1)
            raise
        self._seal(data)
        bp = mp.getblk(pblk)
        bp.data[:] = data
        mp.bdwrite(bp)
        self.dvp.size = (lblk + 1) * self.bs
        iupdate(self.dvp)

    def init(self, parent: int) -> None:
        """Write the first block of a new directory: '.' and '..'."""
        data = self._new_block(0)
        end = self.bs - 12 if self.csum else self.bs
        ft = 2 if self.filetype else 0
        self._put(data, 0, self.dvp.ino, 12, b".", ft)
        self._put(data, 12, parent, end - 12, b"..", ft)
        self._write_new(0, data)
        self.dvp.dirtail = 12
        self.dvp.dcache = {b".": (self.dvp.ino, ft, 0, 0), b"..": (parent, ft, 0, 12)}

    def remove(self, name: bytes) -> None:
        dc = self.cache()
        got = dc.get(name)
        if got is None:
            raise_errno(errno.ENOENT)
        _ino, _ft, lblk, off = got
        mp = self.mp
        pblk = self._pblk(lblk)
        prev = -1
        rl = 0
        for eoff, erl, _eino, _n, _f in self.parse(lblk, mp.read_block(pblk)):
            if eoff == off:
                rl = erl
                break
            prev = eoff
        else:
            corrupt("directory %d: entry %r vanished", self.dvp.ino, name)
        bp = mp.bread(pblk)
        data = bp.data
        if prev < 0:
            put32(data, off, 0)         # first in its block: just unused
        else:
            prl = rec_len_of(u16(data, prev + 4), self.bs)
            put16(data, prev + 4, rec_len_to(prl + rl, self.bs))
        self._seal(data)
        mp.bdwrite(bp)
        del dc[name]
        self.dvp.dirhint = min(self.dvp.dirhint, lblk)
        self.dvp.dirtail = -1                  # records of that block may have merged

    def retarget(self, name: bytes, ino: int, vtype: VType) -> None:
        """Point existing entry ``name`` at ``ino`` (rename over a name)."""
        dc = self.cache()
        _old, _ft, lblk, off = dc[name]
        ft = FT_OF.get(vtype, 0) if self.filetype else 0
        mp = self.mp
        bp = mp.bread(self._pblk(lblk))
        put32(bp.data, off, ino)
        if self.filetype:
            bp.data[off + 7] = ft
        self._seal(bp.data)
        mp.bdwrite(bp)
        dc[name] = (ino, ft, lblk, off)

    def _drop_index(self) -> None:
        """Turn an htree directory into a plain one (see the module docstring)."""
        mp = self.mp
        bs = self.bs
        end = bs - 12 if self.csum else bs
        for lblk in range(self.nblocks()):
            bp = mp.bread(self._pblk(lblk))
            data = bp.data
            if lblk == 0:
                dotdot = 12
                rl = end - dotdot
                put16(data, dotdot + 4, rec_len_to(rl, bs))
                nl = data[dotdot + 6]
                data[dotdot + 8 + nl:] = bytes(bs - dotdot - 8 - nl)
            elif self._is_dx_node(lblk, data):
                data[:] = bytes(bs)
                put16(data, 4, rec_len_to(end, bs))
            else:
                mp.brelse(bp)
                continue
            if self.csum:
                _HDR.pack_into(data, bs - 12, 0, 12, 0, _TAIL_FT)
            self._seal(data)
            mp.bdwrite(bp)
        self.dvp.flags &= ~INDEX_FL
        self.dvp.dirtail = -1
        iupdate(self.dvp)

    # -- htree lookup ------------------------------------------------------

    def _htree_lookup(self, name: bytes) -> tuple[int, int] | bool:
        """Find ``name`` through the index; False if the index is unusable here
        (unknown hash, say) so the caller scans instead."""
        from rumpfs.fs.ext2fs.dirhash import dirhash
        mp = self.mp
        root = self.read_raw_block(0)
        info = 24
        hash_version = root[info + 4]
        info_len = root[info + 5]
        levels = root[info + 6]
        if info_len != 8 or levels > 2:
            corrupt("directory %d htree root (info %d, levels %d)", self.dvp.ino, info_len,
                    levels)
        sb = mp.sb
        if hash_version <= 2 and sb.flags & 0x2:
            hash_version += 3                      # the unsigned variants
        h = dirhash(name, hash_version, sb.hash_seed)
        if h is None:
            return False
        block = self._dx_descend(root, 24 + info_len, h)
        nb = self.nblocks()
        for _ in range(levels):
            if not 0 < block < nb:
                corrupt("directory %d htree points at block %d", self.dvp.ino, block)
            node = self.read_raw_block(block)
            block = self._dx_descend(node, 8, h)
        if not 0 < block < nb:
            corrupt("directory %d htree points at block %d", self.dvp.ino, block)
        data = self.read(block)
        for _off, _rl, ino, ename, ft in self.parse(block, data):
            if ino and ename == name:
                return ino, ft
        # a miss may hide in a collision chain's next leaf: scan instead
        return False

    def read_raw_block(self, lblk: int) -> bytes:
        return self.mp.read_block(self._pblk(lblk))

    def _dx_descend(self, data: bytes, at: int, h: int) -> int:
        return self._dx_find(data, at, h)[0]

    def _dx_find(self, data: bytes, at: int, h: int) -> tuple[int, int | None]:
        """(child block for hash ``h``, the next entry's key or None if last)."""
        limit, count = u16(data, at), u16(data, at + 2)
        if count == 0 or count > limit or at + 8 * limit > self.bs:
            corrupt("directory %d htree node count %d limit %d", self.dvp.ino, count, limit)
        block = u32(data, at + 4)
        nxt = None
        for i in range(1, count):
            key = u32(data, at + 8 * i)
            if key > h:
                nxt = key
                break
            block = u32(data, at + 8 * i + 4)
        return block & 0x0FFFFFFF, nxt

    def _htree_enter(self, name: bytes, ino: int, ft: int, need: int) -> bool:
        """Add ``name`` to the leaf its hash belongs to, if that leaf has room
        (the index stays as it is and valid); False when it has none, the hash
        sits on a leaf boundary, or the index is of a kind not handled here."""
        from rumpfs.fs.ext2fs.dirhash import dirhash
        mp = self.mp
        root = self.read_raw_block(0)
        info = 24
        hash_version, info_len, levels = root[info + 4], root[info + 5], root[info + 6]
        if info_len != 8 or levels > 1 or not mp.sb.compat & 0x20:
            return False
        if hash_version <= 2 and mp.sb.flags & 0x2:
            hash_version += 3                      # the unsigned variants
        h = dirhash(name, hash_version, mp.sb.hash_seed)
        if h is None:
            return False
        block, bound = self._dx_find(root, info + info_len, h)
        nb = self.nblocks()
        for _ in range(levels):
            if not 0 < block < nb:
                corrupt("directory %d htree points at block %d", self.dvp.ino, block)
            block, inner = self._dx_find(self.read_raw_block(block), 8, h)
            bound = inner if inner is not None else bound
        if not 0 < block < nb:
            corrupt("directory %d htree points at block %d", self.dvp.ino, block)
        if bound is not None and h >= bound & ~1:
            return False                           # a collision chain continues there
        pblk = self._pblk(block)
        for off, rl, eino, ename, _eft in self.parse(block, mp.read_block(pblk)):
            used = _need(len(ename)) if eino else 0
            if rl - used >= need:
                self._split(block, pblk, off, rl, eino, ename, used, name, ino, ft)
                self.dvp.dirtail = -1
                return True
        return False


def fsname(name: str) -> bytes:
    b = os.fsencode(name)
    if not 0 < len(b) <= 255:
        raise_errno(errno.ENAMETOOLONG)
    return b


def vtype_of(ft: int) -> VType:
    return VTYPE_OF.get(ft, VNON)


def is_dir_type(ft: int) -> bool:
    return ft == 2 or VTYPE_OF.get(ft) is VDIR
