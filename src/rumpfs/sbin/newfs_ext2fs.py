"""newfs_ext2fs: make an empty ext2 file system on a kernel device (NetBSD's newfs_ext2fs).

The program runs inside a kernel, as a process: it opens a block device (or
a regular file) of the kernel's namespace and writes the file system with
``pwrite``; no e2fsprogs, no host call. :func:`newfs_image` does the same on
a host image file by mapping it into a private kernel with etfs.

What it makes (what ``mke2fs -t ext2 -O none,sparse_super,filetype,large_file``
makes, without the resize inode):

- revision 1, block size 1024, 2048 or 4096, inodes of 128 or 256 bytes
  (256-byte inodes carry 32 bytes of extra fields: nanosecond times and a
  creation time);
- ``sparse_super`` (superblock and descriptor backups in groups 0, 1 and the
  powers of 3, 5 and 7), ``filetype``, ``large_file``; ``dir_index`` on request
  (an empty file system has no indexed directory, the flag only lets drivers
  index directories that grow);
- 32-byte group descriptors, one block bitmap, inode bitmap and inode table
  per group, padding bits past the last block and inode set as e2fsck wants;
- the root directory (inode 2) and ``lost+found`` (inode 11, 12 KiB at 1 KiB
  blocks and 16 KiB otherwise, so that e2fsck can reconnect files without
  allocating).

Allowed imports: ``rumpfs.errors``, ``rumpfs.fs.ext2fs.ext2fs`` (the checked
superblock decoder); ``rumpfs`` (Kernel, EtfsType) for :func:`newfs_image`
and, for types, ``rumpfs.kernel``.

Invariants: every write is of whole blocks at block offsets (the superblock:
1024 bytes at 1024), so raw (character) disk devices work too; every block
the file system owns is written (inode tables and bitmaps with zeros where
unused), so the device's previous content does not matter; nothing past
``blocks_count * block_size`` is written. A device too small for one group
with its root directory is ENOSPC; bad parameters EINVAL.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict, Unpack

from rumpfs.errors import raise_errno
from rumpfs.fs.ext2fs.ext2fs import Superblock, sparse_has_super

if TYPE_CHECKING:
    from rumpfs.kernel import Process

StrOrBytesPath = str | bytes | os.PathLike[str] | os.PathLike[bytes]

__all__ = ["Geometry", "NewfsOptions", "newfs", "newfs_image", "plan"]

EXT2_MAGIC = 0xEF53
ROOT_INO = 2
LPF_INO = 11
FIRST_INO = 11
GOOD_OLD_INODE_SIZE = 128
EXTRA_ISIZE = 32

COMPAT_DIR_INDEX = 0x20
INCOMPAT_FILETYPE = 0x2
RO_COMPAT_SPARSE_SUPER = 0x1
RO_COMPAT_LARGE_FILE = 0x2
FT_DIR = 2
HASH_HALF_MD4 = 1
FLAG_SIGNED_HASH = 0x1
DEFM_XATTR_USER_ACL = 0x0004 | 0x0008

SB_OFFSET = 1024
SB_SIZE = 1024
DESC_SIZE = 32
MIN_SLACK = 50  # a last group with fewer free blocks than this is dropped (as mke2fs)
ZERO_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Geometry:
    """The layout of a file system :func:`newfs` makes (all counts in blocks)."""

    block_size: int
    inode_size: int
    blocks_count: int
    first_data_block: int
    blocks_per_group: int
    groups: int
    inodes_per_group: int
    gdt_blocks: int
    inode_table_blocks: int  # per group
    reserved_blocks: int
    uuid: bytes
    dir_index: bool

    @property
    def inodes_count(self) -> int:
        return self.groups * self.inodes_per_group

    @property
    def lpf_blocks(self) -> int:
        return min(12, 16384 // self.block_size)

    def group_start(self, g: int) -> int:
        return self.first_data_block + g * self.blocks_per_group

    def group_blocks(self, g: int) -> int:
        if g == self.groups - 1:
            return self.blocks_count - self.group_start(g)
        return self.blocks_per_group

    def has_super(self, g: int) -> bool:
        return sparse_has_super(g)             # newfs always sets sparse_super

    def group_layout(self, g: int) -> tuple[int, int, int]:
        """(block bitmap, inode bitmap, inode table) block numbers of group g."""
        first = self.group_start(g)
        if self.has_super(g):
            first += 1 + self.gdt_blocks
        return first, first + 1, first + 2

    def overhead(self, g: int) -> int:
        return (1 + self.gdt_blocks if self.has_super(g) else 0) + 2 + self.inode_table_blocks


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def plan(size: int, *, block_size: int | None = None, inode_size: int = 256,
         bytes_per_inode: int | None = None, inodes: int | None = None,
         reserved_percent: float = 5.0, fs_uuid: bytes | None = None,
         dir_index: bool = False) -> Geometry:
    """The geometry of an ext2 file system for a device of ``size`` bytes.

    Defaults follow mke2fs' "small" and "default" types: below 512 MiB 1 KiB
    blocks and an inode per 4 KiB, otherwise 4 KiB blocks and one per 16 KiB.
    """
    small = size < 512 << 20
    bs = block_size if block_size is not None else (1024 if small else 4096)
    if bs not in (1024, 2048, 4096):
        raise_errno(errno.EINVAL)
    if inode_size not in (128, 256) or not 0 <= reserved_percent <= 50:
        raise_errno(errno.EINVAL)
    if fs_uuid is not None and len(fs_uuid) != 16:
        raise_errno(errno.EINVAL)
    ratio = bytes_per_inode if bytes_per_inode is not None else (4096 if small else 16384)
    if ratio < 1024:
        raise_errno(errno.EINVAL)
    fdb = 1 if bs == 1024 else 0
    bpg = 8 * bs
    blocks = size // bs
    if blocks >= 1 << 32:
        raise_errno(errno.EFBIG)  # 64bit is an ext4 feature
    ipb = bs // inode_size
    step = ipb * 8 // _gcd(ipb, 8)  # whole inode-table blocks, whole bitmap bytes
    while True:
        groups = _ceil(blocks - fdb, bpg) if blocks > fdb else 0
        if groups == 0:
            raise_errno(errno.ENOSPC)
        total = inodes if inodes is not None else blocks * bs // ratio
        ipg = max(_ceil(total, groups), FIRST_INO + 1)
        ipg = min(_ceil(ipg, step) * step, bpg)
        gdt = _ceil(groups * DESC_SIZE, bs)
        geo = Geometry(
            block_size=bs, inode_size=inode_size, blocks_count=blocks, first_data_block=fdb,
            blocks_per_group=bpg, groups=groups, inodes_per_group=ipg, gdt_blocks=gdt,
            inode_table_blocks=ipg * inode_size // bs,
            reserved_blocks=int(blocks * reserved_percent / 100),
            uuid=fs_uuid if fs_uuid is not None else uuid.uuid4().bytes, dir_index=dir_index)
        last = groups - 1
        need = geo.overhead(last) + (1 + geo.lpf_blocks if last == 0 else 0)
        if geo.group_blocks(last) >= need + MIN_SLACK or (last == 0 and
                                                           geo.group_blocks(0) >= need + 1):
            return geo
        if last == 0:
            raise_errno(errno.ENOSPC)
        blocks = geo.group_start(last)  # drop a last group too small to be worth it


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


# -- encoders ---------------------------------------------------------------
# fs/ext2fs/ext2fs.py decodes a superblock read from disk and patches only the
# fields the driver owns back into it; making one from nothing is newfs's job,
# so the fields it sets are listed here, and _self_check has the driver's
# decoder read the result back.

_SB_FIELDS: tuple[tuple[int, str, str], ...] = (
    (0x00, "I", "inodes_count"), (0x04, "I", "blocks_count"), (0x08, "I", "r_blocks_count"),
    (0x0C, "I", "free_blocks_count"), (0x10, "I", "free_inodes_count"),
    (0x14, "I", "first_data_block"), (0x18, "I", "log_block_size"),
    (0x1C, "I", "log_cluster_size"), (0x20, "I", "blocks_per_group"),
    (0x24, "I", "clusters_per_group"), (0x28, "I", "inodes_per_group"), (0x2C, "I", "mtime"),
    (0x30, "I", "wtime"), (0x34, "H", "mnt_count"), (0x36, "h", "max_mnt_count"),
    (0x38, "H", "magic"), (0x3A, "H", "state"), (0x3C, "H", "errors"),
    (0x3E, "H", "minor_rev_level"), (0x40, "I", "lastcheck"), (0x44, "I", "checkinterval"),
    (0x48, "I", "creator_os"), (0x4C, "I", "rev_level"), (0x50, "H", "def_resuid"),
    (0x52, "H", "def_resgid"), (0x54, "I", "first_ino"), (0x58, "H", "inode_size"),
    (0x5A, "H", "block_group_nr"), (0x5C, "I", "feature_compat"),
    (0x60, "I", "feature_incompat"), (0x64, "I", "feature_ro_compat"),
    (0xFC, "B", "def_hash_version"), (0x100, "I", "default_mount_opts"),
    (0x108, "I", "mkfs_time"), (0x15C, "H", "min_extra_isize"),
    (0x15E, "H", "want_extra_isize"), (0x160, "I", "flags"),
)


def _superblock(geo: Geometry, group: int, free_blocks: int, free_inodes: int, now: int,
                label: bytes, hash_seed: bytes) -> bytes:
    extra = EXTRA_ISIZE if geo.inode_size > GOOD_OLD_INODE_SIZE else 0
    log = geo.block_size.bit_length() - 11
    values = {
        "inodes_count": geo.inodes_count, "blocks_count": geo.blocks_count,
        "r_blocks_count": geo.reserved_blocks, "free_blocks_count": free_blocks,
        "free_inodes_count": free_inodes, "first_data_block": geo.first_data_block,
        "log_block_size": log, "log_cluster_size": log,
        "blocks_per_group": geo.blocks_per_group, "clusters_per_group": geo.blocks_per_group,
        "inodes_per_group": geo.inodes_per_group, "mtime": 0, "wtime": now, "mnt_count": 0,
        "max_mnt_count": -1, "magic": EXT2_MAGIC, "state": 1, "errors": 1,
        "minor_rev_level": 0, "lastcheck": now, "checkinterval": 0, "creator_os": 0,
        "rev_level": 1, "def_resuid": 0, "def_resgid": 0, "first_ino": FIRST_INO,
        "inode_size": geo.inode_size, "block_group_nr": group,
        "feature_compat": COMPAT_DIR_INDEX if geo.dir_index else 0,
        "feature_incompat": INCOMPAT_FILETYPE,
        "feature_ro_compat": RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE,
        "def_hash_version": HASH_HALF_MD4, "default_mount_opts": DEFM_XATTR_USER_ACL,
        "mkfs_time": now, "min_extra_isize": extra, "want_extra_isize": extra,
        "flags": FLAG_SIGNED_HASH,
    }
    sb = bytearray(SB_SIZE)
    for off, fmt, name in _SB_FIELDS:
        struct.pack_into("<" + fmt, sb, off, values[name])
    sb[0x68:0x78] = geo.uuid
    sb[0x78:0x88] = label.ljust(16, b"\0")
    sb[0xEC:0xFC] = hash_seed
    return bytes(sb)


def _inode(geo: Geometry, mode: int, uid: int, gid: int, size: int, links: int,
           blocks: list[int], now: int) -> bytes:
    ino = bytearray(geo.inode_size)
    sectors = len(blocks) * geo.block_size // 512
    struct.pack_into("<HHIIIIIHHII", ino, 0, mode, uid & 0xFFFF, size, now, now, now, 0,
                     gid & 0xFFFF, links, sectors, 0)
    struct.pack_into("<15I", ino, 0x28, *(blocks + [0] * (15 - len(blocks))))
    struct.pack_into("<HH", ino, 0x78, uid >> 16, gid >> 16)  # osd2 uid/gid high halves
    if geo.inode_size > GOOD_OLD_INODE_SIZE:
        # i_extra_isize, then ctime/mtime/atime_extra (0 ns), crtime, crtime_extra
        struct.pack_into("<HHIIIII", ino, 0x80, EXTRA_ISIZE, 0, 0, 0, 0, now, 0)
    return bytes(ino)


def _dirent(ino: int, rec_len: int, name: bytes, ftype: int) -> bytes:
    head = struct.pack("<IHBB", ino, rec_len, len(name), ftype)
    return (head + name).ljust(rec_len, b"\0")


def _bitmap(bs: int, used: int, valid: int) -> bytes:
    """A bitmap block: bits [0, used) and [valid, 8*bs) set, the rest clear."""
    bits = bytearray(bs)
    for lo, hi in ((0, used), (valid, 8 * bs)):
        for i in range(lo, min(hi, (lo + 7) // 8 * 8)):
            bits[i // 8] |= 1 << (i % 8)
        a, b = (lo + 7) // 8, hi // 8
        if b > a:
            bits[a:b] = b"\xff" * (b - a)
        for i in range(max(lo, b * 8), hi):
            bits[i // 8] |= 1 << (i % 8)
    return bytes(bits)


# -- the program ------------------------------------------------------------


class NewfsOptions(TypedDict, total=False):
    """The keyword arguments of :func:`newfs` (for :func:`newfs_image`)."""

    block_size: int | None
    inode_size: int
    bytes_per_inode: int | None
    inodes: int | None
    reserved_percent: float
    label: str | bytes
    fs_uuid: bytes | None
    root_uid: int
    root_gid: int
    dir_index: bool
    now: int | None


def newfs(proc: Process, device: StrOrBytesPath, *, block_size: int | None = None,
          inode_size: int = 256, bytes_per_inode: int | None = None, inodes: int | None = None,
          reserved_percent: float = 5.0, label: str | bytes = b"",
          fs_uuid: bytes | None = None, root_uid: int = 0, root_gid: int = 0,
          dir_index: bool = False, now: int | None = None) -> Geometry:
    """Make an empty ext2 file system on ``device``, a block or raw disk device (or
    a regular file) of ``proc``'s namespace, as ``proc``. Returns its geometry.

    ``now`` (seconds) defaults to the kernel's clock. Errors: those of open
    and pwrite on the device; EINVAL for bad parameters or a device that is
    not a disk device or regular file; ENOSPC when it is too small.
    """
    label_b = os.fsencode(label)
    if len(label_b) > 16:
        raise_errno(errno.EINVAL)
    fd = proc.open(device, os.O_RDWR)
    try:
        st = proc.fstat(fd)
        if not (stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode)
                or stat.S_ISREG(st.st_mode)):
            raise_errno(errno.EINVAL)
        geo = plan(st.st_size, block_size=block_size, inode_size=inode_size,
                   bytes_per_inode=bytes_per_inode, inodes=inodes,
                   reserved_percent=reserved_percent, fs_uuid=fs_uuid, dir_index=dir_index)
        t = now if now is not None else proc.kernel.clock.now_ns() // 1_000_000_000
        _write(proc, fd, geo, label_b, root_uid, root_gid, t & 0xFFFFFFFF)
        proc.fsync(fd)
    finally:
        proc.close(fd)
    return geo


def newfs_image(hostpath: StrOrBytesPath, **options: Unpack[NewfsOptions]) -> Geometry:
    """:func:`newfs` on the host image file ``hostpath`` (which must exist, with
    its final size), through a private kernel that maps it as an etfs block device."""
    from rumpfs import EtfsType, Kernel

    with Kernel() as k:
        k.etfs_register("/dev/image", hostpath, EtfsType.BLK)
        return newfs(k, "/dev/image", **options)


def _write(proc: Process, fd: int, geo: Geometry, label: bytes, uid: int, gid: int,
           now: int) -> None:
    bs = geo.block_size
    # Group 0's data starts with the root directory's block, then lost+found's.
    root_blk = geo.group_layout(0)[2] + geo.inode_table_blocks
    lpf_blks = list(range(root_blk + 1, root_blk + 1 + geo.lpf_blocks))
    used0 = 1 + len(lpf_blks)

    free_blocks: list[int] = []
    free_inodes: list[int] = []
    descs = bytearray(geo.gdt_blocks * bs)
    for g in range(geo.groups):
        bb, ib, it = geo.group_layout(g)
        used = geo.overhead(g) + (used0 if g == 0 else 0)
        ifree = geo.inodes_per_group - (FIRST_INO if g == 0 else 0)
        free_blocks.append(geo.group_blocks(g) - used)
        free_inodes.append(ifree)
        struct.pack_into("<IIIHHH", descs, g * DESC_SIZE, bb, ib, it, free_blocks[g], ifree,
                         2 if g == 0 else 0)

    # The root directory and lost+found: their inodes go into the first blocks of
    # group 0's inode table (written whole, so that raw devices work), then their
    # directory blocks.
    itable0 = bytearray(_ceil(LPF_INO * geo.inode_size, bs) * bs)
    root = _inode(geo, stat.S_IFDIR | 0o755, uid, gid, bs, 3, [root_blk], now)
    lpf = _inode(geo, stat.S_IFDIR | 0o700, 0, 0, len(lpf_blks) * bs, 2, lpf_blks, now)
    for ino, data in ((ROOT_INO, root), (LPF_INO, lpf)):
        itable0[(ino - 1) * geo.inode_size:ino * geo.inode_size] = data
    rootdir = (_dirent(ROOT_INO, 12, b".", FT_DIR) + _dirent(ROOT_INO, 12, b"..", FT_DIR)
               + _dirent(LPF_INO, bs - 24, b"lost+found", FT_DIR))
    lpfdir = bytearray(_dirent(LPF_INO, 12, b".", FT_DIR) + _dirent(ROOT_INO, bs - 12, b"..",
                                                                     FT_DIR))
    lpfdir += _dirent(0, bs, b"", 0) * (len(lpf_blks) - 1)

    hash_seed = uuid.uuid4().bytes
    _self_check(geo, _superblock(geo, 0, 0, 0, now, label, hash_seed))
    for g in range(geo.groups):
        bb, ib, it = geo.group_layout(g)
        start = geo.group_start(g)
        if geo.has_super(g):
            sb = _superblock(geo, g, sum(free_blocks), sum(free_inodes), now, label, hash_seed)
            if g == 0:
                # block 0 (1 KiB blocks: block 1) holds the boot area, the superblock
                # at byte 1024, then zeros to the end of the block
                _pwrite(proc, fd, sb.ljust(max(bs - SB_OFFSET, SB_SIZE), b"\0"), SB_OFFSET)
            else:
                _pwrite(proc, fd, sb.ljust(bs, b"\0"), start * bs)
            _pwrite(proc, fd, bytes(descs), (start + 1) * bs)
        used = geo.overhead(g) + (used0 if g == 0 else 0)
        _pwrite(proc, fd, _bitmap(bs, used, geo.group_blocks(g)), bb * bs)
        ufirst = FIRST_INO if g == 0 else 0
        _pwrite(proc, fd, _bitmap(bs, ufirst, geo.inodes_per_group), ib * bs)
        if g == 0:
            _pwrite(proc, fd, bytes(itable0), it * bs)
            _zero(proc, fd, it * bs + len(itable0), geo.inode_table_blocks * bs - len(itable0))
        else:
            _zero(proc, fd, it * bs, geo.inode_table_blocks * bs)

    _pwrite(proc, fd, rootdir, root_blk * bs)
    _pwrite(proc, fd, bytes(lpfdir), lpf_blks[0] * bs)


def _self_check(geo: Geometry, raw: bytes) -> None:
    """The driver's own checked decoder must read our superblock as the layout
    we are about to write (one definition of groups, descriptor blocks and
    sparse_super backups, even though the encoder here is separate)."""
    sb = Superblock(raw)
    assert (sb.blocks_count, sb.inodes_count, sb.ngroups, sb.gdt_blocks, sb.block_size,
            sb.inode_size) == (geo.blocks_count, geo.inodes_count, geo.groups,
                               geo.gdt_blocks, geo.block_size, geo.inode_size), geo
    assert all(sb.has_super(g) == geo.has_super(g) and
               sb.group_nblocks(g) == geo.group_blocks(g) for g in range(geo.groups)), geo


def _pwrite(proc: Process, fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = proc.pwrite(fd, view, offset)
        if n <= 0:
            raise_errno(errno.ENOSPC)
        view, offset = view[n:], offset + n


def _zero(proc: Process, fd: int, offset: int, length: int) -> None:
    chunk = bytes(min(ZERO_CHUNK, length))
    while length > 0:
        n = min(length, len(chunk))
        _pwrite(proc, fd, chunk[:n], offset)
        offset, length = offset + n, length - n
