"""FAT boot sector, BIOS parameter block and FAT32 FSInfo: checked decoding.

Allowed imports: ``rumpfs.errors`` (pure functions on bytes; no I/O).

NetBSD's ``bootsect.h`` + ``bpb.h``. :func:`parse_bpb` turns the first 512
bytes of a volume into a :class:`Geometry` or raises EINVAL with a reason:
everything a later calculation depends on (sector size, cluster size, FAT
count and size, root entries, total sectors) is checked here, so the rest of
the driver can trust the numbers. The FAT type is decided as Linux does: no
16-bit FAT size means FAT32, otherwise the cluster count (< 4085 -> FAT12).

Invariants of a :class:`Geometry`: every region lies inside ``total_sectors``;
``clusters >= 1``; ``fat_sectors * bps`` holds an entry for every cluster.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "FAT12_MAX_CLUSTERS",
    "FAT16_MAX_CLUSTERS",
    "FAT32_MAX_CLUSTERS",
    "FSINFO_FREE_UNKNOWN",
    "STATE_DIRTY",
    "BadVolume",
    "FsInfo",
    "Geometry",
    "pack_fsinfo",
    "parse_bpb",
    "parse_fsinfo",
    "state_offset",
]

FAT12_MAX_CLUSTERS = 4084
FAT16_MAX_CLUSTERS = 65524
FAT32_MAX_CLUSTERS = 0x0FFFFFF6 - 1      # clusters 2 .. 0x0FFFFFF6
FSINFO_FREE_UNKNOWN = 0xFFFFFFFF
STATE_DIRTY = 0x01                        # Linux's FAT_STATE_DIRTY in the "reserved1" byte

_LEAD_SIG = 0x41615252
_STRUCT_SIG = 0x61417272
_TRAIL_SIG = 0xAA550000


class BadVolume(ValueError):
    """The boot sector does not describe a usable FAT volume (the reason is the message)."""


@dataclass(frozen=True, slots=True)
class Geometry:
    """What the BPB says, checked, plus the derived layout (all in sectors of ``bps``)."""

    bps: int                  # bytes per sector
    spc: int                  # sectors per cluster
    reserved: int             # reserved sectors (boot sector, FSInfo, ...)
    nfats: int
    root_entries: int         # FAT12/16 fixed root directory entries; 0 on FAT32
    total_sectors: int
    media: int
    fat_sectors: int          # per FAT copy
    fat_bits: int             # 12, 16 or 32
    root_cluster: int         # FAT32: first cluster of the root; 0 otherwise
    fsinfo_sector: int        # FAT32: FSInfo sector (0 = none)
    active_fat: int           # FAT32 with mirroring off: the one FAT in use; else -1
    volume_id: int
    label: bytes
    state: int                # the dirty-flag byte (offset 37 or 65)

    @property
    def cluster_size(self) -> int:
        return self.bps * self.spc

    @property
    def fat_start(self) -> int:
        return self.reserved

    @property
    def root_start(self) -> int:
        """First sector of the FAT12/16 root directory region."""
        return self.reserved + self.nfats * self.fat_sectors

    @property
    def root_sectors(self) -> int:
        return (self.root_entries * 32 + self.bps - 1) // self.bps

    @property
    def data_start(self) -> int:
        return self.root_start + self.root_sectors

    @property
    def clusters(self) -> int:
        """Number of data clusters (valid cluster numbers are 2 .. clusters + 1)."""
        return (self.total_sectors - self.data_start) // self.spc

    @property
    def max_cluster(self) -> int:
        return self.clusters + 1


def state_offset(fat_bits: int) -> int:
    """Where the dirty-flag byte lives in the boot sector."""
    return 65 if fat_bits == 32 else 37


def _bad(why: str) -> BadVolume:
    return BadVolume(why)


def parse_bpb(sector: bytes | bytearray | memoryview, device_bytes: int | None = None) -> Geometry:
    """Decode and check a boot sector; BadVolume (a ValueError) with the reason if unusable.

    ``device_bytes``, when given, must hold the whole volume as the BPB describes it.
    """
    b = bytes(sector[:512])
    if len(b) < 512:
        raise _bad("boot sector shorter than 512 bytes")
    if b[0] not in (0xEB, 0xE9, 0xE8):
        raise _bad(f"no x86 jump at the start of the boot sector ({b[0]:#04x})")
    bps, spc, reserved, nfats, root_entries, ts16, media, fs16 = struct.unpack_from(
        "<HBHBHHBH", b, 11)
    (ts32,) = struct.unpack_from("<I", b, 32)
    if bps not in (512, 1024, 2048, 4096):
        raise _bad(f"bytes per sector {bps} is not 512, 1024, 2048 or 4096")
    if spc == 0 or spc & (spc - 1) or spc > 128:
        raise _bad(f"sectors per cluster {spc} is not a power of two up to 128")
    if bps * spc > 256 * 1024:
        raise _bad(f"cluster size {bps * spc} too large")
    if reserved == 0:
        raise _bad("no reserved sectors")
    if nfats == 0 or nfats > 4:
        raise _bad(f"{nfats} FAT copies")
    if media != 0xF0 and media < 0xF8:
        raise _bad(f"media byte {media:#04x}")
    total = ts16 if ts16 else ts32
    if total == 0:
        raise _bad("total sector count is 0")
    if fs16 == 0:
        fat_bits = 32
        fat_sectors, ext_flags, version, root_cluster, fsinfo = struct.unpack_from(
            "<IHHIH", b, 36)
        if version != 0:
            raise _bad(f"FAT32 version {version:#06x} unknown")
        if root_entries != 0:
            raise _bad("FAT32 with a fixed root directory")
        active = ext_flags & 0x0F if ext_flags & 0x80 else -1
        if active >= nfats:
            raise _bad(f"active FAT {active} of {nfats}")
        if fsinfo >= reserved:
            fsinfo = 0                      # outside the reserved area: ignore it
        label_at, state_at, sig_at = 71, 65, 66
    else:
        fat_bits = 0
        fat_sectors, root_cluster, fsinfo, active = fs16, 0, 0, -1
        if root_entries == 0:
            raise _bad("FAT12/16 without root directory entries")
        label_at, state_at, sig_at = 43, 37, 38
    if fat_sectors == 0:
        raise _bad("FAT size is 0")
    root_sectors = (root_entries * 32 + bps - 1) // bps
    data_start = reserved + nfats * fat_sectors + root_sectors
    if data_start + spc > total:
        raise _bad("no room for a single data cluster")
    clusters = (total - data_start) // spc
    if fat_bits == 0:
        fat_bits = 12 if clusters <= FAT12_MAX_CLUSTERS else 16
        if clusters > FAT16_MAX_CLUSTERS:
            raise _bad(f"{clusters} clusters: too many for FAT16")
    elif clusters > FAT32_MAX_CLUSTERS:
        raise _bad(f"{clusters} clusters: too many for FAT32")
    if fat_sectors * bps * 8 < (clusters + 2) * fat_bits:
        raise _bad(f"FAT of {fat_sectors} sectors too small for {clusters} clusters")
    if fat_bits == 32 and not 2 <= root_cluster <= clusters + 1:
        raise _bad(f"root cluster {root_cluster} out of range")
    if device_bytes is not None and total * bps > device_bytes:
        raise _bad(f"volume of {total * bps} bytes larger than its device ({device_bytes})")
    if b[sig_at] == 0x29:
        (vol_id,) = struct.unpack_from("<I", b, sig_at + 1)
        label = b[label_at:label_at + 11]
    else:
        vol_id, label = 0, b"NO NAME    "
    return Geometry(bps, spc, reserved, nfats, root_entries, total, media, fat_sectors,
                    fat_bits, root_cluster, fsinfo, active, vol_id, label, b[state_at])


@dataclass(slots=True)
class FsInfo:
    """The FAT32 FSInfo hints: free cluster count and where to look for one."""

    free: int = FSINFO_FREE_UNKNOWN
    next_free: int = FSINFO_FREE_UNKNOWN


def parse_fsinfo(sector: bytes | bytearray | memoryview) -> FsInfo | None:
    """The hints of an FSInfo sector, or None if its signatures are wrong."""
    lead, = struct.unpack_from("<I", sector, 0)
    sig, free, nxt = struct.unpack_from("<III", sector, 484)
    trail, = struct.unpack_from("<I", sector, 508)
    if lead != _LEAD_SIG or sig != _STRUCT_SIG or trail != _TRAIL_SIG:
        return None
    return FsInfo(free, nxt)


def pack_fsinfo(sector: bytearray, info: FsInfo) -> None:
    """Write signatures and hints into ``sector`` (the other bytes are kept)."""
    struct.pack_into("<I", sector, 0, _LEAD_SIG)
    struct.pack_into("<III", sector, 484, _STRUCT_SIG, info.free, info.next_free)
    struct.pack_into("<I", sector, 508, _TRAIL_SIG)
