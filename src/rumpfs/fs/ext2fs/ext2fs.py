"""ext2/3/4 on-disk structures: superblock, group descriptors, inodes, features.

Allowed imports: ``rumpfs.errors`` and this package's ``csum``.

Everything read from an image is untrusted: decoding checks each value that
later code uses as a block number, length, count or loop bound, and a bad one
raises EUCLEAN (:func:`corrupt`) with a logged reason. Encoding writes back
only the fields this driver owns and keeps every other byte as it was read,
so fields we do not understand survive a rewrite.

Layout reference: the ext4 disk-layout documentation (Linux's
``Documentation/filesystems/ext4/``); field offsets are noted inline.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import NoReturn

from rumpfs.errors import errno, raise_errno
from rumpfs.fs.ext2fs.csum import crc16, crc32c_raw

__all__ = [
    "EXT2_MAGIC", "GroupDesc", "Superblock", "corrupt", "log", "sparse_has_super",
]

log = logging.getLogger("rumpfs.ext2fs")

EXT2_MAGIC = 0xEF53
SB_OFFSET = 1024
SB_SIZE = 1024

# s_state
STATE_VALID = 0x0001
STATE_ERROR = 0x0002
STATE_ORPHANS = 0x0004

# compatible features: safe to ignore entirely
COMPAT_NAMES = {
    0x0001: "dir_prealloc", 0x0002: "imagic_inodes", 0x0004: "has_journal",
    0x0008: "ext_attr", 0x0010: "resize_inode", 0x0020: "dir_index",
    0x0040: "lazy_bg", 0x0080: "exclude_inode", 0x0100: "exclude_bitmap",
    0x0200: "sparse_super2", 0x0400: "fast_commit", 0x0800: "stable_inodes",
    0x1000: "orphan_file",
}
COMPAT_DIR_INDEX = 0x0020
COMPAT_ORPHAN_FILE = 0x1000

# read-only compatible: a writer must understand these
RO_SPARSE_SUPER = 0x0001
RO_LARGE_FILE = 0x0002
RO_BTREE_DIR = 0x0004
RO_HUGE_FILE = 0x0008
RO_GDT_CSUM = 0x0010
RO_DIR_NLINK = 0x0020
RO_EXTRA_ISIZE = 0x0040
RO_HAS_SNAPSHOT = 0x0080
RO_QUOTA = 0x0100
RO_BIGALLOC = 0x0200
RO_METADATA_CSUM = 0x0400
RO_REPLICA = 0x0800
RO_READONLY = 0x1000
RO_PROJECT = 0x2000
RO_SHARED_BLOCKS = 0x4000
RO_VERITY = 0x8000
RO_ORPHAN_PRESENT = 0x10000
RO_NAMES = {
    RO_SPARSE_SUPER: "sparse_super", RO_LARGE_FILE: "large_file", RO_BTREE_DIR: "btree_dir",
    RO_HUGE_FILE: "huge_file", RO_GDT_CSUM: "uninit_bg", RO_DIR_NLINK: "dir_nlink",
    RO_EXTRA_ISIZE: "extra_isize", RO_HAS_SNAPSHOT: "snapshot", RO_QUOTA: "quota",
    RO_BIGALLOC: "bigalloc", RO_METADATA_CSUM: "metadata_csum", RO_REPLICA: "replica",
    RO_READONLY: "read-only", RO_PROJECT: "project", RO_SHARED_BLOCKS: "shared_blocks",
    RO_VERITY: "verity", RO_ORPHAN_PRESENT: "orphan_present",
}
RO_WRITABLE = (RO_SPARSE_SUPER | RO_LARGE_FILE | RO_HUGE_FILE | RO_GDT_CSUM | RO_DIR_NLINK
               | RO_EXTRA_ISIZE | RO_METADATA_CSUM)

# incompatible: a reader must understand these
IN_COMPRESSION = 0x0001
IN_FILETYPE = 0x0002
IN_RECOVER = 0x0004
IN_JOURNAL_DEV = 0x0008
IN_META_BG = 0x0010
IN_EXTENTS = 0x0040
IN_64BIT = 0x0080
IN_MMP = 0x0100
IN_FLEX_BG = 0x0200
IN_EA_INODE = 0x0400
IN_DIRDATA = 0x1000
IN_CSUM_SEED = 0x2000
IN_LARGEDIR = 0x4000
IN_INLINE_DATA = 0x8000
IN_ENCRYPT = 0x10000
IN_CASEFOLD = 0x20000
IN_NAMES = {
    IN_COMPRESSION: "compression", IN_FILETYPE: "filetype", IN_RECOVER: "needs_recovery",
    IN_JOURNAL_DEV: "journal_dev", IN_META_BG: "meta_bg", IN_EXTENTS: "extent",
    IN_64BIT: "64bit", IN_MMP: "mmp", IN_FLEX_BG: "flex_bg", IN_EA_INODE: "ea_inode",
    IN_DIRDATA: "dirdata", IN_CSUM_SEED: "metadata_csum_seed", IN_LARGEDIR: "large_dir",
    IN_INLINE_DATA: "inline_data", IN_ENCRYPT: "encrypt", IN_CASEFOLD: "casefold",
}
# what we can read at all
IN_READABLE = (IN_FILETYPE | IN_RECOVER | IN_META_BG | IN_EXTENTS | IN_64BIT | IN_FLEX_BG
               | IN_CSUM_SEED | IN_LARGEDIR | IN_INLINE_DATA | IN_MMP | IN_EA_INODE
               | IN_ENCRYPT | IN_CASEFOLD)
# what we can also write
IN_WRITABLE = (IN_FILETYPE | IN_EXTENTS | IN_64BIT | IN_FLEX_BG | IN_CSUM_SEED | IN_LARGEDIR)

# s_flags
FLAG_SIGNED_HASH = 0x0001
FLAG_UNSIGNED_HASH = 0x0002

# group descriptor bg_flags
BG_INODE_UNINIT = 0x0001
BG_BLOCK_UNINIT = 0x0002
BG_INODE_ZEROED = 0x0004


def corrupt(reason: str, *args: object) -> NoReturn:
    """An on-disk structure is inconsistent: log why and fail this call with EUCLEAN."""
    log.warning("ext2fs: corrupt image: " + reason, *args)
    raise_errno(errno.EUCLEAN)


def feature_names(mask: int, names: dict[int, str]) -> list[str]:
    out = []
    bit = 1
    while bit <= mask:
        if mask & bit:
            out.append(names.get(bit, f"unknown({bit:#x})"))
        bit <<= 1
    return out


_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


def u16(b: bytes | bytearray | memoryview, off: int) -> int:
    return _U16.unpack_from(b, off)[0]  # type: ignore[no-any-return]


def u32(b: bytes | bytearray | memoryview, off: int) -> int:
    return _U32.unpack_from(b, off)[0]  # type: ignore[no-any-return]


def put16(b: bytearray | memoryview, off: int, v: int) -> None:
    _U16.pack_into(b, off, v & 0xFFFF)


def put32(b: bytearray | memoryview, off: int, v: int) -> None:
    _U32.pack_into(b, off, v & 0xFFFFFFFF)



def sparse_has_super(group: int) -> bool:
    """sparse_super: superblock backups in groups 0, 1 and powers of 3, 5 and 7."""
    if group <= 1:
        return True
    if not group & 1:
        return False
    for base in (3, 5, 7):
        n = base
        while n < group:
            n *= base
        if n == group:
            return True
    return False

class Superblock:
    """The decoded superblock (``raw`` keeps all 1024 bytes for rewriting)."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) < SB_SIZE:
            corrupt("short superblock")
        b = bytearray(raw[:SB_SIZE])
        self.raw = b
        if u16(b, 56) != EXT2_MAGIC:
            log.warning("ext2fs: no ext2 magic in the superblock")
            raise_errno(errno.EINVAL)
        self.inodes_count = u32(b, 0)
        self.r_blocks = u32(b, 8)
        self.first_data_block = u32(b, 20)
        log_bs = u32(b, 24)
        if log_bs > 6:
            corrupt("block size 2^(10+%d)", log_bs)
        self.block_size = 1024 << log_bs
        self.log_cluster = u32(b, 28)
        self.blocks_per_group = u32(b, 32)
        self.inodes_per_group = u32(b, 40)
        self.state = u16(b, 58)
        self.rev_level = u32(b, 76)
        self.compat = self.incompat = self.ro_compat = 0
        self.first_ino = 11
        self.inode_size = 128
        if self.rev_level >= 1:
            self.first_ino = u32(b, 84)
            self.inode_size = u16(b, 88)
            self.compat = u32(b, 92)
            self.incompat = u32(b, 96)
            self.ro_compat = u32(b, 100)
        self.uuid = bytes(b[104:120])
        self.reserved_gdt = u16(b, 206)
        self.hash_seed = [u32(b, 236 + 4 * i) for i in range(4)]
        self.def_hash_version = b[252]
        self.desc_size = 32
        self.is64 = bool(self.incompat & IN_64BIT)
        if self.is64:
            self.desc_size = u16(b, 254)
        self.first_meta_bg = u32(b, 260)
        self.min_extra_isize = u16(b, 348)
        self.want_extra_isize = u16(b, 350)
        self.flags = u32(b, 352)
        self.log_groups_per_flex = b[372]
        self.blocks_count = u32(b, 4)
        if self.is64:
            self.blocks_count |= u32(b, 336) << 32
            self.r_blocks |= u32(b, 340) << 32
        self.free_blocks = u32(b, 12) | ((u32(b, 344) << 32) if self.is64 else 0)
        self.free_inodes = u32(b, 16)
        self.checksum_seed_field = u32(b, 0x270)
        self._check()
        self.metadata_csum = bool(self.ro_compat & RO_METADATA_CSUM)
        self.gdt_csum = bool(self.ro_compat & RO_GDT_CSUM) and not self.metadata_csum
        if self.incompat & IN_CSUM_SEED:
            self.csum_seed = self.checksum_seed_field
        else:
            self.csum_seed = crc32c_raw(0xFFFFFFFF, self.uuid)
        if self.metadata_csum:
            want = u32(b, 0x3FC)
            have = crc32c_raw(0xFFFFFFFF, b[:0x3FC])
            if want != have:
                corrupt("superblock checksum %#x, computed %#x", want, have)
        self.ngroups = -(-(self.blocks_count - self.first_data_block) // self.blocks_per_group)
        self.desc_per_block = self.block_size // self.desc_size
        self.gdt_blocks = -(-self.ngroups // self.desc_per_block)
        self.addr_per_block = self.block_size // 4

    def _check(self) -> None:
        bs = self.block_size
        if self.rev_level > 1:
            corrupt("revision %d", self.rev_level)
        # a bitmap block maps one group's clusters (blocks, without bigalloc)
        cshift = self.log_cluster - (bs.bit_length() - 11) if self.ro_compat & RO_BIGALLOC else 0
        cpg = u32(self.raw, 36) if cshift else self.blocks_per_group
        if not 0 <= cshift <= 16 or not 8 <= cpg <= bs * 8 \
                or self.blocks_per_group != cpg << cshift:
            corrupt("%d blocks per group (%d clusters)", self.blocks_per_group, cpg)
        if not 1 <= self.inodes_per_group <= bs * 8:
            corrupt("%d inodes per group", self.inodes_per_group)
        isz = self.inode_size
        if isz < 128 or isz > bs or isz & (isz - 1):
            corrupt("inode size %d", isz)
        if self.first_data_block != (1 if bs == 1024 and not cshift else 0):
            corrupt("first data block %d with %d-byte blocks", self.first_data_block, bs)
        if self.blocks_count <= self.first_data_block or self.blocks_count >= 1 << 48:
            corrupt("block count %d", self.blocks_count)
        if self.is64 and (self.desc_size < 64 or self.desc_size > 1024
                          or self.desc_size & (self.desc_size - 1)):
            corrupt("descriptor size %d", self.desc_size)
        ngroups = -(-(self.blocks_count - self.first_data_block) // self.blocks_per_group)
        if self.inodes_count != ngroups * self.inodes_per_group:
            corrupt("inode count %d for %d groups of %d", self.inodes_count, ngroups,
                    self.inodes_per_group)
        if self.rev_level >= 1 and not 11 <= self.first_ino < self.inodes_count:
            corrupt("first inode %d", self.first_ino)
        if isz > 128:
            extra_max = isz - 128
            if self.min_extra_isize > extra_max or self.want_extra_isize > extra_max:
                corrupt("extra inode size %d/%d", self.min_extra_isize, self.want_extra_isize)
        if self.reserved_gdt > bs // 4:
            corrupt("%d reserved GDT blocks", self.reserved_gdt)

    def encode(self, free_blocks: int, free_inodes: int) -> bytes:
        """The superblock with the given free counts, our state, and its checksum."""
        b = self.raw
        put32(b, 12, free_blocks)
        if self.is64:
            put32(b, 344, free_blocks >> 32)
        put32(b, 16, free_inodes)
        put16(b, 58, self.state)
        put32(b, 92, self.compat)
        put32(b, 96, self.incompat)
        put32(b, 100, self.ro_compat)
        if self.metadata_csum:
            put32(b, 0x3FC, crc32c_raw(0xFFFFFFFF, b[:0x3FC]))
        return bytes(b)

    def has_super(self, group: int) -> bool:
        """Does ``group`` hold a superblock backup?"""
        return not self.ro_compat & RO_SPARSE_SUPER or sparse_has_super(group)

    def group_first_block(self, group: int) -> int:
        return self.first_data_block + group * self.blocks_per_group

    def group_nblocks(self, group: int) -> int:
        if group == self.ngroups - 1:
            return self.blocks_count - self.group_first_block(group)
        return self.blocks_per_group


@dataclass(slots=True)
class GroupDesc:
    """One block group's descriptor (``raw`` keeps the bytes as read)."""

    raw: bytearray
    block_bitmap: int
    inode_bitmap: int
    inode_table: int
    free_blocks: int
    free_inodes: int
    used_dirs: int
    flags: int
    itable_unused: int
    dirty: bool = False


def decode_gd(sb: Superblock, group: int, raw: bytes) -> GroupDesc:
    b = bytearray(raw)
    big = sb.is64 and sb.desc_size >= 64

    def lohi32(lo: int, hi: int) -> int:
        return u32(b, lo) | ((u32(b, hi) << 32) if big else 0)

    def lohi16(lo: int, hi: int) -> int:
        return u16(b, lo) | ((u16(b, hi) << 16) if big else 0)

    gd = GroupDesc(b, lohi32(0, 0x20), lohi32(4, 0x24), lohi32(8, 0x28),
                   lohi16(0xC, 0x2C), lohi16(0xE, 0x2E), lohi16(0x10, 0x30),
                   u16(b, 0x12), lohi16(0x1C, 0x32))
    if sb.metadata_csum or sb.gdt_csum:
        want = u16(b, 0x1E)
        have = gd_csum(sb, group, b)
        if want != have:
            corrupt("group %d descriptor checksum %#x, computed %#x", group, want, have)
    else:
        gd.flags = 0            # without checksums the uninit flags mean nothing
        gd.itable_unused = 0
    itb = -(-sb.inodes_per_group * sb.inode_size // sb.block_size)
    for what, blk, n in (("block bitmap", gd.block_bitmap, 1),
                         ("inode bitmap", gd.inode_bitmap, 1),
                         ("inode table", gd.inode_table, itb)):
        if blk <= sb.first_data_block or blk + n > sb.blocks_count:
            corrupt("group %d %s at block %d", group, what, blk)
    if gd.free_blocks > sb.blocks_per_group or gd.free_inodes > sb.inodes_per_group \
            or gd.itable_unused > sb.inodes_per_group:
        corrupt("group %d counts %d/%d", group, gd.free_blocks, gd.free_inodes)
    return gd


def gd_csum(sb: Superblock, group: int, b: bytes | bytearray) -> int:
    size = sb.desc_size if sb.is64 else 32
    le = group.to_bytes(4, "little")
    if sb.metadata_csum:
        crc = crc32c_raw(sb.csum_seed, le)
        crc = crc32c_raw(crc, b[:0x1E])
        crc = crc32c_raw(crc, b"\0\0")
        if size > 0x20:
            crc = crc32c_raw(crc, b[0x20:size])
        return crc & 0xFFFF
    crc = crc16(0xFFFF, sb.uuid)
    crc = crc16(crc, le)
    crc = crc16(crc, b[:0x1E])
    if size > 0x20:
        crc = crc16(crc, b[0x20:size])
    return crc


def encode_gd(sb: Superblock, group: int, gd: GroupDesc, bbitmap_csum: int | None,
              ibitmap_csum: int | None) -> bytes:
    """The descriptor's bytes with our counts and flags and fresh checksums."""
    b = gd.raw
    big = sb.is64 and sb.desc_size >= 64
    put16(b, 0xC, gd.free_blocks)
    put16(b, 0xE, gd.free_inodes)
    put16(b, 0x10, gd.used_dirs)
    if sb.metadata_csum or sb.gdt_csum:
        put16(b, 0x12, gd.flags)
        put16(b, 0x1C, gd.itable_unused)
    if big:
        put16(b, 0x2C, gd.free_blocks >> 16)
        put16(b, 0x2E, gd.free_inodes >> 16)
        put16(b, 0x30, gd.used_dirs >> 16)
        if sb.metadata_csum or sb.gdt_csum:
            put16(b, 0x32, gd.itable_unused >> 16)
    if sb.metadata_csum:
        if bbitmap_csum is not None:
            put16(b, 0x18, bbitmap_csum)
            if big:
                put16(b, 0x38, bbitmap_csum >> 16)
        if ibitmap_csum is not None:
            put16(b, 0x1A, ibitmap_csum)
            if big:
                put16(b, 0x3A, ibitmap_csum >> 16)
    if sb.metadata_csum or sb.gdt_csum:
        put16(b, 0x1E, gd_csum(sb, group, b))
    return bytes(b)


def gd_bitmap_csums(sb: Superblock, gd: GroupDesc) -> tuple[int, int]:
    """The (block, inode) bitmap checksums stored in ``gd``."""
    b = gd.raw
    big = sb.is64 and sb.desc_size >= 64
    bb = u16(b, 0x18) | ((u16(b, 0x38) << 16) if big else 0)
    ib = u16(b, 0x1A) | ((u16(b, 0x3A) << 16) if big else 0)
    return bb, ib
