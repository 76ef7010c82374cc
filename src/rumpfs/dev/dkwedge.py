"""Partition tables (NetBSD's dkwedge_mbr / dkwedge_gpt): MBR and GPT -> windows.

Allowed imports: ``rumpfs.errors`` (and the standard library). The module
only parses: it gets a ``read(offset, size)`` over the whole disk (the
whole-disk rumpblk device) and returns :class:`Partition` windows;
``Kernel.attach_disk`` turns each into a rumpblk device, so nothing below
the driver knows about partitions and no I/O can leave a window.

What is recognised, in this order:
  1. MBR signature 0x55AA at byte 510 with a protective entry (type 0xEE,
     also in a hybrid MBR), or no signature but "EFI PART" at LBA 1: GPT.
     The primary header (LBA 1) and its entry array are CRC32-checked; if
     either is damaged the backup header (the last LBA) is used, with a
     logged warning; both damaged -> error. 512- and 4096-byte sectors.
  2. MBR signature: DOS partitions 1-4, and logical ones 5, 6... along the
     chain of extended boot records (types 0x05, 0x0F, 0x85), as Linux
     numbers them. A boot sector of a bare FAT/NTFS file system (the
     signature, a BIOS parameter block, no valid table) is no table.
  3. Anything else: no table (an empty list): the disk is one device.

A table that is present but wrong -- entries past the end of the disk,
overlapping, an extended chain that loops or leaves its container, a bad
CRC in both GPT copies -- is an ``OSError`` with errno EUCLEAN and a message
naming the problem, never a guess. The work is bounded whatever the image
says: at most :data:`MAX_LOGICAL` logical partitions and
:data:`MAX_GPT_ENTRIES_BYTES` bytes of GPT entries are read.

Locking: pure functions; the caller (``Kernel``) holds the kernel lock.
"""

from __future__ import annotations

import itertools
import logging
import struct
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from rumpfs.errors import errno

__all__ = ["MAX_GPT_ENTRIES_BYTES", "MAX_LOGICAL", "Partition", "partition_name",
           "read_partitions"]

log = logging.getLogger("rumpfs.dkwedge")

Reader = Callable[[int, int], bytes]

MAX_LOGICAL = 256                       # logical partitions in one extended chain
MAX_GPT_ENTRIES_BYTES = 1024 * 1024     # a GPT entry array larger than this is refused
_EXTENDED = frozenset((0x05, 0x0F, 0x85))
_GPT_SIG = b"EFI PART"
_GPT_HDR = struct.Struct("<8sIIIIQQQQ16sQIII")   # 92 bytes


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition: ``start`` and ``size`` in bytes from the start of the disk."""

    index: int          # MBR: 1-4 primary, 5... logical; GPT: entry number + 1
    start: int
    size: int
    type: str           # MBR: "0x83"; GPT: the type GUID, lower case
    name: str = ""      # GPT partition name (UTF-16 in the table)
    scheme: str = ""    # "mbr" or "gpt"
    path: str = ""      # the device node made for it (set by Kernel.attach_disk)


def partition_name(key: str, index: int) -> str:
    """Linux's rule: ``sda`` -> ``sda1``, ``rumpdisk0`` -> ``rumpdisk0p1``."""
    return f"{key}p{index}" if key[-1:].isdigit() else f"{key}{index}"


def _bad(msg: str) -> OSError:
    return OSError(errno.EUCLEAN, f"bad partition table: {msg}")


def read_partitions(read: Reader, disk_size: int) -> list[Partition]:
    """The partitions of the disk behind ``read``; [] when it has no table."""
    if disk_size < 512:
        return []
    sec0 = read(0, 512)
    has_sig = sec0[510:512] == b"\x55\xaa"
    types = [sec0[446 + 16 * i + 4] for i in range(4)]
    if has_sig and 0xEE in types:
        return _gpt(read, disk_size)
    if not has_sig:
        for sector in (512, 4096):
            if disk_size >= 2 * sector and read(sector, 8) == _GPT_SIG:
                return _gpt(read, disk_size)
        return []
    return _mbr(read, disk_size, sec0)


# -- MBR ---------------------------------------------------------------------------

def _entries(sec: bytes) -> list[tuple[int, int, int, int]]:
    """(boot indicator, type, first LBA, sector count) of the four slots."""
    out = []
    for i in range(4):
        boot, _chs, ptype, _chs2, lba, count = struct.unpack_from("<B3sB3sII", sec, 446 + 16 * i)
        out.append((boot, ptype, lba, count))
    return out


def _looks_like_vbr(sec: bytes) -> bool:
    """A FAT/NTFS/exFAT boot sector: x86 jump, then a plausible BPB."""
    if not (sec[0] == 0xEB and sec[2] == 0x90) and sec[0] != 0xE9:
        return False
    if sec[3:11] in (b"NTFS    ", b"EXFAT   "):
        return True
    bps, spc, reserved, nfats = struct.unpack_from("<HBHB", sec, 11)
    media = sec[21]
    return (bps in (512, 1024, 2048, 4096) and spc != 0 and spc & (spc - 1) == 0
            and reserved > 0 and nfats in (1, 2) and (media == 0xF0 or media >= 0xF8))


def _mbr(read: Reader, disk_size: int, sec0: bytes) -> list[Partition]:
    nsec = disk_size // 512
    ents = _entries(sec0)
    used = [(i + 1, e) for i, e in enumerate(ents) if e[1] != 0 and e[3] != 0]
    valid = all(e[0] in (0, 0x80) for e in ents) and all(
        e[2] != 0 and e[2] + e[3] <= nsec for _, e in used)
    if _looks_like_vbr(sec0) and not (valid and used):
        return []                       # a bare file system's boot sector
    if not used:
        return []                       # a signature and an empty table
    for _i, e in enumerate(ents):
        if e[0] not in (0, 0x80):
            raise _bad(f"MBR slot {_i + 1}: boot indicator {e[0]:#04x} is neither 0 nor 0x80")
    parts: list[Partition] = []
    for index, (_boot, ptype, lba, count) in used:
        if lba == 0:
            raise _bad(f"MBR partition {index} starts at sector 0 (the MBR itself)")
        if lba + count > nsec:
            raise _bad(f"MBR partition {index} (sectors {lba}+{count}) extends beyond "
                       f"the end of the disk ({nsec} sectors)")
        parts.append(Partition(index, lba * 512, count * 512, f"{ptype:#04x}", "", "mbr"))
    _no_overlap(parts)
    logical: list[Partition] = []
    for p in parts:
        if int(p.type, 16) in _EXTENDED:
            logical += _logical(read, p, 5 + len(logical))
    _no_overlap([p for p in parts if int(p.type, 16) not in _EXTENDED] + logical)
    return [p for p in parts if int(p.type, 16) not in _EXTENDED] + logical


def _logical(read: Reader, ext: Partition, first_index: int) -> list[Partition]:
    """Walk the EBR chain of extended partition ``ext`` (bytes): each EBR holds
    one data partition (relative to the EBR) and a link (relative to ``ext``)."""
    ext_lba, ext_end = ext.start // 512, (ext.start + ext.size) // 512
    out: list[Partition] = []
    seen: set[int] = set()
    ebr = ext_lba
    while True:
        if ebr in seen:
            raise _bad(f"extended partition chain loops at sector {ebr}")
        if len(seen) >= MAX_LOGICAL:
            raise _bad(f"more than {MAX_LOGICAL} logical partitions")
        seen.add(ebr)
        sec = read(ebr * 512, 512)
        if sec[510:512] != b"\x55\xaa":
            if ebr == ext_lba:
                return out              # an empty extended partition
            raise _bad(f"extended boot record at sector {ebr} has no signature")
        link = 0
        data_done = False
        for _boot, ptype, lba, count in _entries(sec):
            if ptype == 0 or count == 0:
                continue
            if ptype in _EXTENDED:
                if not link:
                    link = ext_lba + lba
                continue
            if data_done:
                continue
            data_done = True
            start = ebr + lba
            index = first_index + len(out)
            if lba == 0 or start + count > ext_end:
                raise _bad(f"logical partition {index} (sectors {start}+{count}) lies "
                           f"outside its extended partition ({ext_lba}..{ext_end})")
            out.append(Partition(index, start * 512, count * 512, f"{ptype:#04x}", "", "mbr"))
        if not link:
            return out
        if not ext_lba <= link < ext_end:
            raise _bad(f"extended boot record link to sector {link} leaves the extended "
                       f"partition ({ext_lba}..{ext_end})")
        ebr = link


def _no_overlap(parts: list[Partition]) -> None:
    ordered = sorted(parts, key=lambda p: p.start)
    for a, b in itertools.pairwise(ordered):
        if a.start + a.size > b.start:
            raise _bad(f"partitions {a.index} and {b.index} overlap")


# -- GPT ---------------------------------------------------------------------------

@dataclass(slots=True)
class _GptHeader:
    my_lba: int
    alternate_lba: int
    first_usable: int
    last_usable: int
    entries_lba: int
    num_entries: int
    entry_size: int
    entries: bytes


def _gpt(read: Reader, disk_size: int) -> list[Partition]:
    sector = 512
    if disk_size >= 2 * 4096 and read(512, 8) != _GPT_SIG and read(4096, 8) == _GPT_SIG:
        sector = 4096
    last_lba = disk_size // sector - 1
    hdr, why = _gpt_header(read, 1, sector, last_lba)
    if hdr is None:
        backup, why2 = _gpt_header(read, last_lba, sector, last_lba)
        if backup is None:
            raise _bad(f"GPT: primary header invalid ({why}); backup header invalid ({why2})")
        log.warning("GPT: primary header invalid (%s); using the backup header", why)
        hdr = backup
    parts: list[Partition] = []
    size = hdr.entry_size
    for i in range(hdr.num_entries):
        e = hdr.entries[i * size:(i + 1) * size]
        tguid = e[0:16]
        if tguid == bytes(16):
            continue
        first, last = struct.unpack_from("<QQ", e, 32)
        if first > last or first < hdr.first_usable or last > hdr.last_usable:
            raise _bad(f"GPT partition {i + 1} (LBA {first}..{last}) lies outside the "
                       f"usable area ({hdr.first_usable}..{hdr.last_usable})")
        name = e[56:128].decode("utf-16-le", "replace").split("\0", 1)[0]
        parts.append(Partition(i + 1, first * sector, (last - first + 1) * sector,
                               str(uuid.UUID(bytes_le=tguid)), name, "gpt"))
    _no_overlap(parts)
    return parts


def _gpt_header(read: Reader, lba: int, sector: int,
                last_lba: int) -> tuple[_GptHeader | None, str]:
    """The checked header at ``lba`` with its entry array, or None and why not."""
    raw = read(lba * sector, sector)
    (sig, _rev, hsize, hcrc, _res, my_lba, alt_lba, first_usable, last_usable, _guid,
     entries_lba, num_entries, entry_size, entries_crc) = _GPT_HDR.unpack_from(raw, 0)
    if sig != _GPT_SIG:
        return None, f"no signature at LBA {lba}"
    if not 92 <= hsize <= sector:
        return None, f"header size {hsize}"
    check = bytearray(raw[:hsize])
    check[16:20] = bytes(4)
    if zlib.crc32(check) != hcrc:
        return None, "header CRC32 mismatch"
    if my_lba != lba:
        return None, f"header at LBA {lba} says it is at {my_lba}"
    if not (first_usable <= last_usable <= last_lba and alt_lba <= last_lba):
        return None, f"usable area {first_usable}..{last_usable} outside the disk"
    if entry_size < 128 or entry_size % 8 or num_entries * entry_size > MAX_GPT_ENTRIES_BYTES:
        return None, f"{num_entries} entries of {entry_size} bytes"
    nbytes = num_entries * entry_size
    nsect = -(-nbytes // sector)
    if entries_lba < 2 or entries_lba + nsect - 1 > last_lba or (
            entries_lba <= last_usable and entries_lba + nsect > first_usable):
        return None, f"entry array at LBA {entries_lba} outside the disk or in the usable area"
    entries = read(entries_lba * sector, nbytes)
    if zlib.crc32(entries) != entries_crc:
        return None, "entry array CRC32 mismatch"
    return _GptHeader(my_lba, alt_lba, first_usable, last_usable, entries_lba, num_entries,
                      entry_size, entries), ""
