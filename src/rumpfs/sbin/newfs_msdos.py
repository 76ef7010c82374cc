"""newfs_msdos: make an empty FAT12/16/32 file system on a device (NetBSD's
``newfs_msdos``, Linux's ``mkfs.fat``).

Allowed imports: ``rumpfs.fs.msdosfs`` (for the checks), ``rumpfs.errors``;
it runs in a kernel on a device node through a process's os-like calls.

:func:`plan` chooses the layout as ``mkfs.fat`` (dosfstools 4.2) does for an
image file: FAT32 from 512 MiB on (cluster size by Microsoft's table), below
that the smallest cluster size, starting at 4 sectors, for which FAT12 or
FAT16 can address the volume, whichever gives more clusters; reserved
sectors, FATs and the root directory aligned to the cluster size once the
volume exceeds 8192 sectors; the floppy formats at their exact sizes. Every
choice can be forced (``fat_type``, ``sectors_per_cluster``, ...). The
result is checked by the driver's own BPB parser before anything is written.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from rumpfs.errors import errno, raise_errno
from rumpfs.fs.msdosfs.bootsect import FsInfo, Geometry, pack_fsinfo, parse_bpb
from rumpfs.fs.msdosfs.direntry import ATTR_VOLUME, Dirent, ns_to_date_time

__all__ = ["Layout", "newfs_msdos", "newfs_msdos_image", "plan"]

_MAX_CLUST_12 = 4084
_MAX_CLUST_16 = 65524
_MAX_CLUST_32 = 0x0FFFFFF6 - 1
_MIN_CLUST_32 = 65529
_FAT12_THRESHOLD = 4085
_MIB = 1024 * 1024
# size in KiB -> (sectors/track, heads, media, sectors/cluster, root entries)
_FLOPPIES = {
    360: (9, 2, 0xFD, 2, 112), 720: (9, 2, 0xF9, 2, 112), 1200: (15, 2, 0xF9, 1, 224),
    1440: (18, 2, 0xF0, 1, 224), 2880: (36, 2, 0xF0, 2, 224),
}
_LABEL_BAD = frozenset('*?.,;:/\\|+=<>[]"')


@dataclass(frozen=True, slots=True)
class Layout:
    """A file system to write: the BPB fields newfs chose."""

    fat_bits: int
    sector_size: int
    spc: int
    reserved: int
    nfats: int
    root_entries: int
    total_sectors: int
    fat_sectors: int
    clusters: int
    media: int
    secs_track: int
    heads: int
    label: bytes
    volume_id: int

    @property
    def root_start(self) -> int:
        return self.reserved + self.nfats * self.fat_sectors

    @property
    def data_start(self) -> int:
        return self.root_start + (self.root_entries * 32 + self.sector_size - 1) // self.sector_size


def _cdiv(a: int, b: int) -> int:
    return (a + b - 1) // b


def _label_bytes(label: str | None) -> bytes:
    if not label:
        return b"NO NAME    "
    try:
        raw = label.upper().encode("cp437")
    except UnicodeEncodeError:
        raise ValueError(f"label {label!r} not representable in codepage 437") from None
    if len(raw) > 11:
        raise ValueError("label can be no longer than 11 characters")
    if any(b < 0x20 for b in raw) or any(chr(b) in _LABEL_BAD for b in raw if b < 0x80):
        raise ValueError(f"label {label!r} has characters FAT does not allow")
    if raw.startswith(b" "):
        raise ValueError("label can't start with a space")
    return raw.ljust(11, b" ")


def plan(size: int, *, fat_type: int | None = None, sectors_per_cluster: int | None = None,
         label: str | None = None, nfats: int = 2, root_entries: int | None = None,
         reserved: int | None = None, sector_size: int = 512, media: int | None = None,
         volume_id: int | None = None) -> Layout:
    """The layout mkfs.fat would choose for a device of ``size`` bytes."""
    if fat_type not in (None, 12, 16, 32):
        raise ValueError(f"FAT type {fat_type} is not 12, 16 or 32")
    if sector_size not in (512, 1024, 2048, 4096):
        raise ValueError(f"sector size {sector_size}")
    if sectors_per_cluster is not None and (
            sectors_per_cluster < 1 or sectors_per_cluster > 128
            or sectors_per_cluster & (sectors_per_cluster - 1)):
        raise ValueError(f"sectors per cluster {sectors_per_cluster} not a power of two <= 128")
    num_sectors = min((size // 1024) * 1024 // sector_size, 0xFFFFFFFF)
    secs_track, heads, dmedia, csize, def_root = 63, 255, 0xF8, 4, 512
    if size < 512 * _MIB:
        secs_track, heads = 32, 64
    floppy = _FLOPPIES.get(size // 1024) if size % 1024 == 0 else None
    if floppy is not None:
        secs_track, heads, dmedia, csize, def_root = floppy
    by_user = fat_type is not None
    bits = fat_type or 0
    if not bits and size >= 512 * _MIB:
        bits = 32
    if bits == 32:
        mb = size // _MIB
        csize = (64 if mb > 32 * 1024 else 32 if mb > 16 * 1024 else 16 if mb > 8 * 1024
                 else 8 if mb > 260 else 1)
    root_ents = 0 if bits == 32 else (root_entries if root_entries else def_root)
    res = reserved if reserved else (32 if bits == 32 else 1)
    if bits == 32 and res < 2:
        raise ValueError("FAT32 needs at least 2 reserved sectors")
    align = num_sectors > 8192

    def al(n: int, c: int) -> int:
        return (n + c - 1) & ~(c - 1) if align else n

    maxcs = 128
    if sectors_per_cluster:
        csize = maxcs = sectors_per_cluster
    root_secs = _cdiv(root_ents * 32, sector_size)
    ss = sector_size
    clust12 = clust16 = clust32 = 0
    fl12 = fl16 = fl32 = 0
    while csize and csize <= maxcs:
        fd32 = num_sectors - al(res, csize)
        fd1216 = fd32 - al(root_secs, csize)
        clust12 = 2 * (fd1216 * ss + nfats * 3) // (2 * csize * ss + nfats * 3)
        fl12 = al(_cdiv(((clust12 + 2) * 3 + 1) >> 1, ss), csize)
        clust12 = (fd1216 - nfats * fl12) // csize
        if clust12 > min(fl12 * 2 * ss // 3, _MAX_CLUST_12) - 2:
            clust12 = 0
        clust16 = (fd1216 * ss + nfats * 4) // (csize * ss + nfats * 2)
        fl16 = al(_cdiv((clust16 + 2) * 2, ss), csize)
        clust16 = (fd1216 - nfats * fl16) // csize
        if clust16 > min(fl16 * ss // 2, _MAX_CLUST_16) - 2:
            clust16 = 0
        if clust16 < _FAT12_THRESHOLD and not (by_user and bits == 16):
            clust16 = 0
        clust32 = (fd32 * ss + nfats * 8) // (csize * ss + nfats * 4)
        fl32 = al(_cdiv((clust32 + 2) * 4, ss), csize)
        clust32 = (fd32 - nfats * fl32) // csize
        if clust32 and clust32 < _MIN_CLUST_32 and not (by_user and bits == 32):
            clust32 = 0
        if clust32 > min(fl32 * ss // 4, _MAX_CLUST_32):
            clust32 = 0
        if ((clust12 and bits in (0, 12)) or (clust16 and bits in (0, 16))
                or (clust32 and bits == 32)):
            break
        csize <<= 1
    if not bits:
        bits = 16 if clust16 > clust12 else 12
    count, fat_len = {12: (clust12, fl12), 16: (clust16, fl16), 32: (clust32, fl32)}[bits]
    if count <= 0 or not csize or csize > maxcs:
        raise ValueError(f"no FAT{bits} layout fits {size} bytes")
    if (bits == 16 and count < _FAT12_THRESHOLD) or (bits == 12 and count > _MAX_CLUST_12):
        # a reader decides FAT12/16 by the cluster count: it would misread this one
        raise ValueError(f"{count} clusters cannot be FAT{bits}: too small or too large")
    res = al(res, csize)
    if bits == 32:
        root_ents = 0
    elif align:
        root_ents = al(root_secs, csize) * (ss >> 5)
    if volume_id is None:
        volume_id = time.time_ns() // 1000 & 0xFFFFFFFF
    return Layout(bits, ss, csize, res, nfats, root_ents, num_sectors, fat_len, count,
                  dmedia if media is None else media, secs_track, heads, _label_bytes(label),
                  volume_id)


def boot_sector(lay: Layout) -> bytearray:
    """The boot sector (first ``sector_size`` bytes) of ``lay``."""
    b = bytearray(lay.sector_size)
    fat32 = lay.fat_bits == 32
    code_at = 90 if fat32 else 62
    b[0:3] = bytes([0xEB, code_at - 2, 0x90])
    b[3:11] = b"rumpfs  "
    ts16 = lay.total_sectors if lay.total_sectors < 65536 else 0
    ts32 = 0 if ts16 else lay.total_sectors
    struct.pack_into("<HBHBHHBHHHII", b, 11, lay.sector_size, lay.spc, lay.reserved,
                     lay.nfats, lay.root_entries, ts16, lay.media,
                     0 if fat32 else lay.fat_sectors, lay.secs_track, lay.heads, 0, ts32)
    if fat32:
        struct.pack_into("<IHHIHH", b, 36, lay.fat_sectors, 0, 0, 2, 1, 6)
        vi = 64
        fstype = b"FAT32   "
    else:
        vi = 36
        fstype = b"FAT12   " if lay.fat_bits == 12 else b"FAT16   "
    b[vi] = 0x80 if lay.media == 0xF8 else 0x00
    b[vi + 2] = 0x29
    struct.pack_into("<I", b, vi + 3, lay.volume_id)
    b[vi + 7:vi + 18] = lay.label
    b[vi + 18:vi + 26] = fstype
    b[code_at:code_at + 3] = b"\xf4\xeb\xfd"        # hlt; jmp back: not bootable
    b[510:512] = b"\x55\xaa"
    return b


class _Proc(Protocol):
    def open(self, path: str, flags: int, mode: int = ..., *, dir_fd: int | None = ...) -> int: ...
    def close(self, fd: int) -> None: ...
    def pwrite(self, fd: int, data: bytes, offset: int) -> int: ...
    def lseek(self, fd: int, pos: int, how: int) -> int: ...
    def fsync(self, fd: int) -> None: ...


def write_layout(lay: Layout, write: Callable[[int, bytes], None], now_ns: int) -> None:
    """Write the whole file system of ``lay`` through ``write(offset, data)``."""
    ss = lay.sector_size
    boot = boot_sector(lay)
    parse_bpb(boot)                        # our own checks agree with what we write
    zero_chunk = bytes(64 * ss)

    def zero(sector: int, count: int) -> None:
        while count > 0:
            n = min(count, 64)
            write(sector * ss, zero_chunk[:n * ss])
            sector += n
            count -= n

    zero(0, lay.reserved)
    write(0, bytes(boot))
    fat = bytearray(ss)
    mask = {12: 0xFFF, 16: 0xFFFF, 32: 0x0FFFFFFF}[lay.fat_bits]
    if lay.fat_bits == 12:
        e0, e1 = 0xF00 | lay.media, 0xFFF
        fat[0:3] = bytes([e0 & 0xFF, (e0 >> 8) | (e1 & 0xF) << 4, e1 >> 4])
    elif lay.fat_bits == 16:
        struct.pack_into("<HH", fat, 0, 0xFF00 | lay.media, 0xFFFF)
    else:
        struct.pack_into("<III", fat, 0, 0x0FFFFF00 | lay.media, mask, mask)
    for i in range(lay.nfats):
        start = lay.reserved + i * lay.fat_sectors
        zero(start, lay.fat_sectors)
        write(start * ss, bytes(fat))
    if lay.fat_bits == 32:
        info = bytearray(ss)
        pack_fsinfo(info, FsInfo(lay.clusters - 1, 2))
        write(1 * ss, bytes(info))
        write(6 * ss, bytes(boot))
        write(7 * ss, bytes(info))
        root_sec, root_len = lay.data_start, lay.spc
    else:
        root_sec, root_len = lay.root_start, lay.data_start - lay.root_start
    zero(root_sec, root_len)
    if lay.label != b"NO NAME    ":
        date, tm, _ = ns_to_date_time(now_ns, 0)
        ent = Dirent(name=lay.label, attr=ATTR_VOLUME, mtime=tm, mdate=date)
        write(root_sec * ss, ent.pack())


def newfs_msdos(p: _Proc, path: str, *, size: int | None = None, fat_type: int | None = None,
                sectors_per_cluster: int | None = None, label: str | None = None,
                nfats: int = 2, root_entries: int | None = None,
                volume_id: int | None = None) -> Geometry:
    """Make a FAT file system on device (or file) ``path`` of process ``p``
    (a ``Kernel`` or ``Process``); returns the geometry as the driver reads it.
    ``size`` defaults to the whole device. Bad options are EINVAL."""
    fd = p.open(path, os.O_RDWR)
    try:
        end = p.lseek(fd, 0, os.SEEK_END)
        if size is None:
            size = end
        try:
            lay = plan(size, fat_type=fat_type, sectors_per_cluster=sectors_per_cluster,
                       label=label, nfats=nfats, root_entries=root_entries,
                       volume_id=volume_id)
        except ValueError:
            raise_errno(errno.EINVAL)

        def write(off: int, data: bytes) -> None:
            if p.pwrite(fd, data, off) != len(data):
                raise_errno(errno.ENOSPC)

        write_layout(lay, write, time.time_ns())
        p.fsync(fd)
        return parse_bpb(boot_sector(lay))
    finally:
        p.close(fd)


def newfs_msdos_image(hostpath: str | os.PathLike[str], *, fat_type: int | None = None,
                      sectors_per_cluster: int | None = None, label: str | None = None,
                      volume_id: int | None = None) -> Geometry:
    """:func:`newfs_msdos` on host image file ``hostpath`` (existing, at its final
    size), through a private kernel that maps it as an etfs block device."""
    from rumpfs import EtfsType, Kernel

    with Kernel() as k:
        k.etfs_register("/dev/image", os.fspath(hostpath), EtfsType.BLK)
        return newfs_msdos(k, "/dev/image", fat_type=fat_type, label=label,
                           sectors_per_cluster=sectors_per_cluster, volume_id=volume_id)
