"""ext2 in-core inodes: the vnode of a file, read from and written to the inode table.

Allowed imports: ``rumpfs.vfs``, ``rumpfs.kern``, ``rumpfs.errors`` and this package.

An :class:`Ext2Node` is both the vnode and the decoded inode (NetBSD keeps a
``struct inode`` behind each ext2 vnode; here they are one object). ``raw``
keeps the whole on-disk inode so that fields this driver does not interpret
(extended attributes in the inode body, project id, version) survive a
rewrite. :func:`iupdate` encodes the fields back into the inode table buffer
with the inode checksum; every operation that changes an inode calls it
before returning, so the buffer cache always holds the current inode.

Invariants: ``nlink``, ``size`` and the block map agree with the image after
every call; a node with ``nlink == 0`` is freed by ``vop_inactive`` when its
last reference goes (see vnops).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from rumpfs.fs.ext2fs.csum import crc32c_raw
from rumpfs.fs.ext2fs.ext2fs import corrupt, put16, put32, u16, u32
from rumpfs.vfs.vnode import Vnode, VType

if TYPE_CHECKING:
    from rumpfs.fs.ext2fs.bmap import BlockMap
    from rumpfs.fs.ext2fs.lookup import DirCache
    from rumpfs.fs.ext2fs.vfsops import Ext2Mount
    from rumpfs.fs.ext2fs.vnops import Ext2Ops

__all__ = ["Ext2Node", "iget", "iupdate", "new_inode_raw"]

# i_flags
SECRM_FL = 0x1
IMMUTABLE_FL = 0x10
APPEND_FL = 0x20
INDEX_FL = 0x1000
HUGE_FILE_FL = 0x40000
EXTENTS_FL = 0x80000
EA_INODE_FL = 0x200000
INLINE_DATA_FL = 0x10000000
ENCRYPT_FL = 0x800

_NS = 1_000_000_000
_T_MIN = -(1 << 31) * _NS                # times an inode with extra fields holds exactly
_T_MAX = ((1 << 34) - (1 << 31)) * _NS
_S32 = struct.Struct("<i")

# (offset of the seconds, offset of the extra word, extra_isize needed for it)
_TIMES = {"ctime": (0x0C, 0x84), "mtime": (0x10, 0x88), "atime": (0x08, 0x8C),
          "crtime": (0x90, 0x94)}


class Ext2Node(Vnode):
    """One inode of a mounted ext2 file system, as vnode."""

    __slots__ = (
        "__weakref__", "atime", "bmap", "crtime", "csum_seed", "ctime", "dcache", "dirhint",
        "dirtail", "file_acl", "flags", "generation", "gid", "ino", "mode", "mtime", "nblocks",
        "nlink", "raw", "size", "uid",
    )

    def __init__(self, vtype: VType, ops: Ext2Ops, mount: Ext2Mount, ino: int,
                 raw: bytearray) -> None:
        super().__init__(vtype, ops, mount)
        self.ino = ino
        self.raw = raw
        self.bmap: BlockMap | None = None
        self.dirhint = 0                   # a directory block with free space (a guess)
        self.dirtail = -1                  # offset of the last record in it, -1 unknown
        self.dcache: DirCache | None = None    # directories: see lookup.py
        self.csum_seed = 0
        self.mode = self.uid = self.gid = self.size = self.nlink = self.flags = 0
        self.nblocks = self.file_acl = self.generation = 0
        self.atime = self.mtime = self.ctime = self.crtime = 0

    def __repr__(self) -> str:
        return f"<Ext2Node {self.ino} {self.type.name} use={self.usecount}>"

    @property
    def extra_isize(self) -> int:
        if len(self.raw) <= 128:
            return 0
        return u16(self.raw, 0x80)


def _time(raw: bytearray, name: str, extra: int) -> int:
    off, xoff = _TIMES[name]
    if name == "crtime" and extra < 0x94 - 0x80:
        return 0
    sec: int = _S32.unpack_from(raw, off)[0]
    ns = 0
    if extra >= xoff + 4 - 0x80:
        x = u32(raw, xoff)
        sec += (x & 3) << 32
        ns = (x >> 2) % _NS
    return sec * _NS + ns


def _put_time(raw: bytearray, name: str, extra: int, t: int) -> None:
    off, xoff = _TIMES[name]
    if name == "crtime" and extra < 0x94 - 0x80:
        return
    sec, ns = divmod(t, _NS)
    # clamp to what the inode holds, as Linux does (s_time_min/s_time_max)
    extended = extra >= xoff + 4 - 0x80
    top = (1 << 34) - (1 << 31) - 1 if extended else (1 << 31) - 1
    if sec < -(1 << 31):
        sec, ns = -(1 << 31), 0
    elif sec > top:
        sec, ns = top, 0
    lo = ((sec + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)       # the low 32 bits, signed
    _S32.pack_into(raw, off, lo)
    if extra >= xoff + 4 - 0x80:
        epoch = ((sec - lo) >> 32) & 3
        put32(raw, xoff, epoch | (ns << 2))


def inode_location(mp: Ext2Mount, ino: int) -> tuple[int, int]:
    """(block, byte offset in it) of inode ``ino``'s slot in its group's table."""
    sb = mp.sb
    if not 1 <= ino <= sb.inodes_count:
        corrupt("inode number %d out of range", ino)
    group, index = divmod(ino - 1, sb.inodes_per_group)
    byte = index * sb.inode_size
    return mp.gds[group].inode_table + byte // mp.bs, byte % mp.bs


def inode_csum(mp: Ext2Mount, ino: int, gen: int, raw: bytes | bytearray) -> int:
    b = bytearray(raw)
    put16(b, 0x7C, 0)
    big = len(b) > 128 and u16(b, 0x80) >= 4
    if big:
        put16(b, 0x82, 0)
    seed = crc32c_raw(crc32c_raw(mp.sb.csum_seed, ino.to_bytes(4, "little")),
                      gen.to_bytes(4, "little"))
    crc = crc32c_raw(seed, b)
    return crc if big else crc & 0xFFFF


def read_raw(mp: Ext2Mount, ino: int) -> bytearray:
    blk, off = inode_location(mp, ino)
    data = mp.read_block(blk)
    return bytearray(data[off:off + mp.sb.inode_size])


def iget(mp: Ext2Mount, ino: int, orphan: bool = False) -> Ext2Node:
    """The vnode of inode ``ino`` (cached while anything holds it). EUCLEAN if the
    inode is out of range, not in use (unless an ``orphan`` is wanted), or
    fails its checks."""
    vp = mp.vcache.get(ino)
    if vp is not None:
        mp.cache_vnode(vp)          # most recently used (the list stays bounded)
        return vp
    sb = mp.sb
    if ino < 1 or ino > sb.inodes_count or (ino < sb.first_ino and ino != 2):
        corrupt("directory entry names inode %d", ino)
    raw = read_raw(mp, ino)
    mode = u16(raw, 0)
    nlink = u16(raw, 0x1A)
    # (an orphan has no links and its i_dtime names the next orphan)
    if mode == 0 or (nlink == 0 and u32(raw, 0x14) != 0 and not orphan):
        corrupt("inode %d is not in use (mode %o, links %d)", ino, mode, nlink)
    isz = len(raw)
    extra = u16(raw, 0x80) if isz > 128 else 0
    if extra > isz - 128 or extra & 3:
        corrupt("inode %d extra size %d", ino, extra)
    gen = u32(raw, 0x64)
    if sb.metadata_csum:
        want = u16(raw, 0x7C) | ((u16(raw, 0x82) << 16) if extra >= 4 else 0)
        have = inode_csum(mp, ino, gen, raw)
        if want != have:
            corrupt("inode %d checksum %#x, computed %#x", ino, want, have)
    vtype = VType.from_mode(mode)
    if vtype is VType.VNON:
        corrupt("inode %d has file type %o", ino, mode & 0o170000)
    vp = Ext2Node(vtype, mp.vnops, mp, ino, raw)
    vp.mode = mode
    vp.uid = u16(raw, 2) | (u16(raw, 0x78) << 16)
    vp.gid = u16(raw, 0x18) | (u16(raw, 0x7A) << 16)
    vp.size = u32(raw, 4) | (u32(raw, 0x6C) << 32)
    vp.nlink = nlink
    vp.flags = u32(raw, 0x20)
    nblocks = u32(raw, 0x1C) | (u16(raw, 0x74) << 32)
    if vp.flags & HUGE_FILE_FL:
        nblocks *= mp.bs // 512
    vp.nblocks = nblocks
    vp.generation = gen
    vp.file_acl = u32(raw, 0x68) | (u16(raw, 0x76) << 32)
    for name in ("atime", "mtime", "ctime", "crtime"):
        setattr(vp, name, _time(raw, name, extra))
    if vp.size >= 1 << 63:
        corrupt("inode %d size %d", ino, vp.size)
    if vp.file_acl and not mp.sb.first_data_block < vp.file_acl < mp.sb.blocks_count:
        corrupt("inode %d xattr block %d", ino, vp.file_acl)
    vp.csum_seed = crc32c_raw(crc32c_raw(sb.csum_seed, ino.to_bytes(4, "little")),
                              gen.to_bytes(4, "little"))
    mp.cache_vnode(vp)
    return vp


_HEAD = struct.Struct("<HHI")          # 0x00 mode, uid, size_lo
_MID = struct.Struct("<HHII")          # 0x18 gid, links, blocks_lo, flags
_ACL_SIZE = struct.Struct("<II")       # 0x68 file_acl_lo, size_high
_OSD2 = struct.Struct("<HHHH")         # 0x74 blocks_hi, file_acl_hi, uid_hi, gid_hi


def iupdate(vp: Ext2Node) -> None:
    """Encode ``vp`` into its inode-table slot (delayed write), with its checksum."""
    mp: Ext2Mount = vp.mount  # type: ignore[assignment]
    raw = vp.raw
    uid, gid, size, acl = vp.uid, vp.gid, vp.size, vp.file_acl
    nblocks = vp.nblocks
    flags = vp.flags & ~HUGE_FILE_FL
    if nblocks >= 1 << 48:
        # only huge_file's block-unit counting reaches this far
        nblocks //= mp.bs // 512
        flags |= HUGE_FILE_FL
    _HEAD.pack_into(raw, 0, vp.mode, uid & 0xFFFF, size & 0xFFFFFFFF)
    _MID.pack_into(raw, 0x18, gid & 0xFFFF, vp.nlink, nblocks & 0xFFFFFFFF, flags)
    _ACL_SIZE.pack_into(raw, 0x68, acl & 0xFFFFFFFF, (size >> 32) & 0xFFFFFFFF)
    _OSD2.pack_into(raw, 0x74, (nblocks >> 32) & 0xFFFF, (acl >> 32) & 0xFFFF,
                    (uid >> 16) & 0xFFFF, (gid >> 16) & 0xFFFF)
    extra = vp.extra_isize
    for name in ("atime", "mtime", "ctime", "crtime"):
        t = getattr(vp, name)
        _put_time(raw, name, extra, t)
        # keep what the inode can hold (seconds only in 128-byte inodes, a range)
        if extra < 24 or not _T_MIN <= t < _T_MAX:
            setattr(vp, name, _time(raw, name, extra))
    if mp.sb.metadata_csum:
        # the checksum covers the inode with its own fields zeroed
        put16(raw, 0x7C, 0)
        big = extra >= 4
        if big:
            put16(raw, 0x82, 0)
        c = crc32c_raw(vp.csum_seed, raw)
        put16(raw, 0x7C, c)
        if big:
            put16(raw, 0x82, c >> 16)
    write_raw(mp, vp.ino, raw)


def write_raw(mp: Ext2Mount, ino: int, raw: bytes | bytearray) -> None:
    blk, off = inode_location(mp, ino)
    bp = mp.bread(blk)
    bp.data[off:off + len(raw)] = raw
    mp.bdwrite(bp)


def new_inode_raw(mp: Ext2Mount) -> bytearray:
    """A zeroed on-disk inode with the extra size the file system wants."""
    isz = mp.sb.inode_size
    raw = bytearray(isz)
    if isz > 128:
        extra = max(mp.sb.want_extra_isize, mp.sb.min_extra_isize, 32)
        put16(raw, 0x80, min(extra, isz - 128))
    return raw
