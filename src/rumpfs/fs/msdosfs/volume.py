"""One mounted FAT volume: geometry, the FAT, and block I/O through the buffer cache.

Allowed imports: ``rumpfs.vfs``, ``rumpfs.kern``, ``rumpfs.errors`` and this package.

NetBSD's ``msdosfsmount``. All device access of the driver goes through here.
The metadata in front of the data area (boot sector, FSInfo, the FATs, the
FAT12/16 root directory region) is read once at mount straight from the
device and kept in memory; changes go back through the buffer cache with
``getblk`` (whole buffers, never read): 512 bytes for the boot and FSInfo
sectors, CHUNK-byte pieces for each FAT copy, one sector for the root region.
Only the data area is read through ``bread``, in clusters, so the cache's
sequential read-ahead never makes buffers of one size over a region read
with another (read-ahead only runs forward, and the data area comes last).
Block numbers handed to the buffer cache are in 512-byte units from the
start of the device (a partition window, so nothing outside the partition is
ever addressed; every cluster number is checked against the volume's size).

Dirty state: :meth:`Volume.sync` puts the FAT (every copy) and the FSInfo
hints into the buffer cache; the VFS then flushes the device. The boot
sector's dirty flag is written at once at a read-write mount and cleared at
a clean unmount in a ``late`` buffer, which the cache writes only after
everything else reached the device.

Locking: the kernel lock is held throughout.
"""

from __future__ import annotations

import logging
from typing import NoReturn, Protocol

from rumpfs.errors import errno, raise_errno
from rumpfs.fs.msdosfs.bootsect import (
    STATE_DIRTY,
    FsInfo,
    Geometry,
    pack_fsinfo,
    parse_fsinfo,
    state_offset,
)
from rumpfs.fs.msdosfs.direntry import ns_to_date_time
from rumpfs.fs.msdosfs.fat import CHUNK, Fat
from rumpfs.vfs.bio import Buf

__all__ = ["Buf", "BufCache", "RootSector", "Volume"]

_LOG = logging.getLogger("rumpfs.msdosfs")
_FAT_FIRST = 315_532_800        # 1980-01-01, the first second FAT can hold
_FAT_LAST = 4_354_819_199       # 2107-12-31 23:59:59


class BufCache(Protocol):
    """The part of the buffer cache (``vfs.bio``) this driver uses, bound to one
    device, plus ``read``: bytes straight from the device (uncached)."""

    def read(self, offset: int, size: int) -> bytes: ...
    def write(self, offset: int, data: bytes | memoryview) -> None: ...
    def incore(self, blkno: int) -> Buf | None: ...

    def bread(self, blkno: int, size: int) -> Buf: ...
    def getblk(self, blkno: int, size: int) -> Buf: ...
    def brelse(self, bp: Buf) -> None: ...
    def bdwrite(self, bp: Buf) -> None: ...
    def bwrite(self, bp: Buf) -> None: ...


class RootSector:
    """One sector of the in-memory FAT12/16 root region, used like a buffer."""

    __slots__ = ("data", "index")

    def __init__(self, data: memoryview, index: int) -> None:
        self.data = data
        self.index = index


class Volume:
    """A FAT volume on a device, as the vnode and vfs operations see it."""

    def __init__(self, bc: BufCache, geo: Geometry, read_only: bool) -> None:
        self.bc = bc
        self.geo = geo
        self.read_only = read_only
        self.tz_offset = 0                          # seconds east of UTC of on-disk times
        self._stamp_sec = -1                        # stamp(): the last second converted
        self._stamp_dt = (0, 0)
        self.fat32 = geo.fat_bits == 32
        self.cluster_size = geo.cluster_size
        self._spb = geo.bps // 512                  # 512-byte blocks per sector
        self._cblocks = geo.cluster_size // 512     # ... per cluster
        self._data_blk = geo.data_start * self._spb
        self.boot = bytearray(bc.read(0, 512))
        self.fat = self._load_fat()
        self.fsinfo: FsInfo | None = None
        self._fsinfo_raw = bytearray()
        if self.fat32 and geo.fsinfo_sector:
            self._fsinfo_raw = bytearray(bc.read(geo.fsinfo_sector * geo.bps, 512))
            self.fsinfo = parse_fsinfo(self._fsinfo_raw)
            if self.fsinfo is not None and self.fat.valid(self.fsinfo.next_free):
                self.fat.next_free = self.fsinfo.next_free
        self.root_raw = bytearray()
        self.root_dirty: set[int] = set()
        if not self.fat32:
            self.root_raw = bytearray(bc.read(geo.root_start * geo.bps, geo.root_sectors * geo.bps))
        if not read_only:
            self._set_state(dirty=True)

    # -- FAT ------------------------------------------------------------------

    def _fat_pieces(self, copy: int) -> list[tuple[int, int]]:
        """(blkno, size) of each CHUNK-byte piece of FAT copy ``copy``."""
        geo = self.geo
        start = (geo.fat_start + copy * geo.fat_sectors) * geo.bps
        total = geo.fat_sectors * geo.bps
        return [(((start + off) // 512), min(CHUNK, total - off)) for off in range(0, total, CHUNK)]

    def _load_fat(self) -> Fat:
        geo = self.geo
        copy = geo.active_fat if geo.active_fat >= 0 else 0
        start = (geo.fat_start + copy * geo.fat_sectors) * geo.bps
        raw = bytearray(self.bc.read(start, geo.fat_sectors * geo.bps))
        return Fat(geo.fat_bits, raw, geo.clusters)

    def _write_fat(self) -> None:
        chunks = self.fat.take_dirty()
        if not chunks:
            return
        geo = self.geo
        copies = [geo.active_fat] if geo.active_fat >= 0 else range(geo.nfats)
        raw = self.fat.raw
        for copy in copies:
            pieces = self._fat_pieces(copy)
            for i in chunks:
                if i >= len(pieces):
                    continue
                blkno, size = pieces[i]
                bp = self.bc.getblk(blkno, size)
                bp.data[:] = raw[i * CHUNK:i * CHUNK + size]
                self.bc.bdwrite(bp)

    # -- boot sector ----------------------------------------------------------

    def _set_state(self, dirty: bool) -> None:
        at = state_offset(self.geo.fat_bits)
        old = self.boot[at]
        new = old | STATE_DIRTY if dirty else old & ~STATE_DIRTY
        if new == old:
            return
        self.boot[at] = new
        bp = self.bc.getblk(0, 512)
        bp.data[:] = self.boot
        if dirty:
            self.bc.bwrite(bp)
        else:
            bp.late = True
            self.bc.bdwrite(bp)

    def sync(self) -> None:
        """Put the FAT copies and FSInfo into the buffer cache (the caller flushes)."""
        self._write_fat()
        if self.fsinfo is not None:
            info = FsInfo(self.fat.free, self.fat.next_free)
            if info != self.fsinfo:
                pack_fsinfo(self._fsinfo_raw, info)
                bp = self.bc.getblk(self.geo.fsinfo_sector * self._spb, 512)
                bp.data[:] = self._fsinfo_raw
                self.bc.bdwrite(bp)
                self.fsinfo = info
        if self.root_dirty:
            bps = self.geo.bps
            for i in sorted(self.root_dirty):
                bp = self.bc.getblk((self.geo.root_start + i) * self._spb, bps)
                bp.data[:] = self.root_raw[i * bps:(i + 1) * bps]
                self.bc.bdwrite(bp)
            self.root_dirty.clear()

    def unmount(self, read_only: bool) -> None:
        """Sync, then clear the dirty flag (written last: the volume is clean
        once everything else is on the device). The caller flushes."""
        self.sync()
        if not read_only:
            self._set_state(dirty=False)

    # -- data -----------------------------------------------------------------

    def cluster_blkno(self, cluster: int) -> int:
        if not self.fat.valid(cluster):
            self.corrupt(f"cluster {cluster} out of range")
        return self._data_blk + (cluster - 2) * self._cblocks

    def bread_cluster(self, cluster: int) -> Buf:
        return self.bc.bread(self.cluster_blkno(cluster), self.cluster_size)

    def getblk_cluster(self, cluster: int) -> Buf:
        return self.bc.getblk(self.cluster_blkno(cluster), self.cluster_size)

    def bread_rootsec(self, index: int) -> RootSector:
        """Sector ``index`` of the FAT12/16 root directory region (in memory)."""
        bps = self.geo.bps
        assert 0 <= index < self.geo.root_sectors
        return RootSector(memoryview(self.root_raw)[index * bps:(index + 1) * bps], index)

    def release(self, bp: Buf | RootSector) -> None:
        """Done with ``bp``, unchanged."""
        if not isinstance(bp, RootSector):
            self.bc.brelse(bp)

    def dirty(self, bp: Buf | RootSector) -> None:
        """Done with ``bp``, changed: written back later."""
        if isinstance(bp, RootSector):
            self.root_dirty.add(bp.index)
        else:
            self.bc.bdwrite(bp)

    def _run_blkno(self, first: int, count: int) -> int:
        if not (self.fat.valid(first) and self.fat.valid(first + count - 1)):
            self.corrupt(f"clusters {first}..{first + count - 1} out of range")
        return self._data_blk + (first - 2) * self._cblocks

    def write_run(self, first: int, count: int, data: memoryview) -> None:
        """Write ``count`` whole clusters from ``first`` on in one device request
        (write-through, as NetBSD's direct I/O), keeping cached copies in step."""
        blkno = self._run_blkno(first, count)
        cb, cs = self._cblocks, self.cluster_size
        incore = self.bc.incore
        for i in range(count):
            bp = incore(blkno + i * cb)
            if bp is not None:
                bp.data[:] = data[i * cs:(i + 1) * cs]
        self.bc.write(blkno * 512, data)

    def read_run(self, first: int, count: int) -> bytes:
        """``count`` whole clusters from ``first`` on: one device request when
        none of them is cached (a cached one may be newer than the device)."""
        blkno = self._run_blkno(first, count)
        cb, cs = self._cblocks, self.cluster_size
        incore = self.bc.incore
        if any(incore(blkno + i * cb) is not None for i in range(count)):
            parts = []
            for i in range(count):
                bp = self.bc.bread(blkno + i * cb, cs)
                parts.append(bytes(bp.data))
                self.bc.brelse(bp)
            return b"".join(parts)
        return self.bc.read(blkno * 512, count * cs)

    def zero_cluster(self, cluster: int) -> None:
        bp = self.getblk_cluster(cluster)
        bp.data[:] = bytes(self.cluster_size)
        self.bc.bdwrite(bp)

    def stamp(self, ns: int) -> tuple[int, int, int]:
        """Unix ns -> (FAT date, time, 10 ms units) in this volume's local time;
        the calendar work is done once per second (calls come in bursts)."""
        secs, frac = divmod(ns, 1_000_000_000)
        if secs == self._stamp_sec:
            date, time = self._stamp_dt
            return date, time, ((secs + self.tz_offset) & 1) * 100 + frac // 10_000_000
        out = ns_to_date_time(ns, self.tz_offset)
        if _FAT_FIRST <= secs + self.tz_offset <= _FAT_LAST:      # not clamped
            self._stamp_sec, self._stamp_dt = secs, (out[0], out[1])
        return out

    @staticmethod
    def corrupt(why: str) -> NoReturn:
        _LOG.warning("msdosfs: corrupt volume: %s", why)
        raise_errno(errno.EUCLEAN)
