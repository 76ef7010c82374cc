"""fstyp: which file system is on a device, from its on-disk magic (FreeBSD's fstyp(8)).

The program runs inside a kernel as a process: it opens a block device (or
a regular file) of the kernel's namespace read-only and reads at most the
first 64 KiB with ``pread``. No host call.

- ``ext2``: the ext2/3/4 superblock magic 0xEF53 at byte 1080 (1024 + 56),
  with a sane log block size; the kernel's ``ext2`` type mounts all three.
  :func:`describe` names the generation (ext4: extents, 64bit, flex_bg...;
  ext3: a journal; else ext2).
- ``msdos``: a FAT boot sector: 0x55AA at 510, an x86 jump, a BIOS parameter
  block with a power-of-two sector size (512-4096) and cluster size, at
  least one reserved sector, one or two FATs, a media byte of 0xF0 or
  0xF8-0xFF, and a FAT12/16/32 geometry (NTFS and exFAT, which share the
  boot-sector shape, are not FAT).

Anything else is None: the caller says "unknown file system", never guesses.

Allowed imports: ``rumpfs.errors``; ``rumpfs.kernel`` for types.
"""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rumpfs.kernel import Process

__all__ = ["KNOWN", "describe", "fstyp", "probe"]

KNOWN = ("ext2", "msdos")           # the kernel fs types fstyp can name

_EXT2_MAGIC = 0xEF53
_EXT3_HAS_JOURNAL = 0x0004          # compat
_EXT4_INCOMPAT = 0x0040 | 0x0080 | 0x0200   # extents, 64bit, flex_bg
_EXT4_RO_COMPAT = 0x0008 | 0x0400           # huge_file, metadata_csum


def probe(head: bytes) -> tuple[str, str] | None:
    """(fs type, description) of the first bytes of a device, or None."""
    if len(head) >= 2048:
        sb = head[1024:2048]
        magic, = struct.unpack_from("<H", sb, 56)
        log_block, = struct.unpack_from("<I", sb, 24)
        if magic == _EXT2_MAGIC and log_block <= 6:
            compat, incompat, ro_compat = struct.unpack_from("<III", sb, 92)
            if incompat & _EXT4_INCOMPAT or ro_compat & _EXT4_RO_COMPAT:
                gen = "ext4"
            elif compat & _EXT3_HAS_JOURNAL:
                gen = "ext3"
            else:
                gen = "ext2"
            return "ext2", gen
    if len(head) >= 512:
        fat = _fat_kind(head[:512])
        if fat is not None:
            return "msdos", fat
    return None


def _fat_kind(bs: bytes) -> str | None:
    if bs[510:512] != b"\x55\xaa":
        return None
    if not (bs[0] == 0xEB and bs[2] == 0x90) and bs[0] != 0xE9:
        return None
    if bs[3:11] in (b"NTFS    ", b"EXFAT   "):
        return None
    bps, spc, reserved, nfats, rootents, total16, media, fatsz16 = struct.unpack_from(
        "<HBHBHHBH", bs, 11)
    total32, = struct.unpack_from("<I", bs, 32)
    fatsz32, = struct.unpack_from("<I", bs, 36)
    if bps not in (512, 1024, 2048, 4096) or spc == 0 or spc & (spc - 1):
        return None
    if reserved == 0 or nfats not in (1, 2) or not (media == 0xF0 or media >= 0xF8):
        return None
    total = total16 or total32
    fatsz = fatsz16 or fatsz32
    if total == 0 or fatsz == 0:
        return None
    if fatsz16 == 0:
        return "fat32" if rootents == 0 else None
    rootsecs = (rootents * 32 + bps - 1) // bps
    data = total - reserved - nfats * fatsz - rootsecs
    if data <= 0:
        return None
    return "fat12" if data // spc < 4085 else "fat16"


def _head(p: Process, device: str | os.PathLike[str]) -> bytes:
    fd = p.open(device, os.O_RDONLY)
    try:
        return p.pread(fd, 64 * 1024, 0)
    finally:
        p.close(fd)


def fstyp(p: Process, device: str | os.PathLike[str]) -> str | None:
    """The kernel fs type (``"ext2"``, ``"msdos"``) on ``device``, or None."""
    found = probe(_head(p, device))
    return None if found is None else found[0]


def describe(p: Process, device: str | os.PathLike[str]) -> str | None:
    """What is on ``device`` for people (``"ext4"``, ``"fat32"``), or None."""
    found = probe(_head(p, device))
    return None if found is None else found[1]
