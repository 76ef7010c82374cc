"""One mounted FAT volume: geometry, the FAT, and block I/O through the buffer cache.

Allowed imports: ``rumpfs.vfs``, ``rumpfs.kern``, ``rumpfs.errors`` and this package.

NetBSD's ``msdosfsmount``. All device access of the driver goes through here,
in buffers of one size per region so that no two buffers of the device
overlap: 512 bytes for the boot sector and the FSInfo sector, FAT_CHUNK-byte
pieces for each FAT copy, one sector for the FAT12/16 root directory region
and one cluster for the data area. Block numbers handed to the buffer cache
are in 512-byte units from the start of the device (a partition window, so
nothing outside the partition is ever addressed; every number computed here
is checked against the volume's size).

Dirty state: the FAT is written back (to every copy) and the FSInfo hints on
:meth:`Volume.sync`; the boot sector's dirty flag is set at a read-write mount
and cleared at a clean unmount, after everything else reached the device.

Locking: the kernel lock is held throughout.
"""

from __future__ import annotations

import logging
from typing import NoReturn, Protocol

from rumpfs.errors import errno, raise_errno
from rumpfs.fs.msdosfs.bootsect import (
    FSINFO_FREE_UNKNOWN,
    STATE_DIRTY,
    FsInfo,
    Geometry,
    pack_fsinfo,
    parse_fsinfo,
    state_offset,
)
from rumpfs.fs.msdosfs.fat import CHUNK, Fat

__all__ = ["Buf", "BufCache", "Volume"]

_LOG = logging.getLogger("rumpfs.msdosfs")


class Buf(Protocol):
    """A buffer of the cache: ``data`` holds the block's bytes."""

    data: bytearray


class BufCache(Protocol):
    """The part of the buffer cache (``vfs.bio``) this driver uses, for one device."""

    def bread(self, blkno: int, size: int) -> Buf: ...
    def getblk(self, blkno: int, size: int) -> Buf: ...
    def brelse(self, bp: Buf) -> None: ...
    def bdwrite(self, bp: Buf) -> None: ...
    def bwrite(self, bp: Buf) -> None: ...
    def flush(self) -> None: ...
    def invalidate(self) -> None: ...


class Volume:
    """A FAT volume on a device, as the vnode and vfs operations see it."""

    def __init__(self, bc: BufCache, geo: Geometry, read_only: bool) -> None:
        self.bc = bc
        self.geo = geo
        self.read_only = read_only
        self.tz_offset = 0                          # seconds east of UTC of on-disk times
        self.fat32 = geo.fat_bits == 32
        self.cluster_size = geo.cluster_size
        self._spb = geo.bps // 512                  # 512-byte blocks per sector
        self._cblocks = geo.cluster_size // 512     # ... per cluster
        self._data_blk = geo.data_start * self._spb
        self.fat = self._load_fat()
        self.fsinfo: FsInfo | None = None
        if self.fat32 and geo.fsinfo_sector:
            bp = bc.bread(geo.fsinfo_sector * self._spb, 512)
            self.fsinfo = parse_fsinfo(bp.data)
            bc.brelse(bp)
            if self.fsinfo is not None and self.fat.valid(self.fsinfo.next_free):
                self.fat.next_free = self.fsinfo.next_free
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
        raw = bytearray()
        for blkno, size in self._fat_pieces(copy):
            bp = self.bc.bread(blkno, size)
            raw += bp.data
            self.bc.brelse(bp)
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
        bp = self.bc.bread(0, 512)
        at = state_offset(self.geo.fat_bits)
        old = bp.data[at]
        new = old | STATE_DIRTY if dirty else old & ~STATE_DIRTY
        if new == old:
            self.bc.brelse(bp)
            return
        bp.data[at] = new
        self.bc.bwrite(bp)

    def sync(self) -> None:
        """Write the FAT copies and FSInfo, then every delayed buffer."""
        self._write_fat()
        if self.fsinfo is not None:
            info = FsInfo(self.fat.free, self.fat.next_free)
            if info != self.fsinfo:
                bp = self.bc.bread(self.geo.fsinfo_sector * self._spb, 512)
                pack_fsinfo(bp.data, info)
                self.bc.bdwrite(bp)
                self.fsinfo = info
        self.bc.flush()

    def unmount(self) -> None:
        """Sync, then clear the dirty flag: the volume is clean on the device."""
        if not self.read_only:
            self.sync()
            self._set_state(dirty=False)
            self.bc.flush()
        self.bc.invalidate()

    # -- data -----------------------------------------------------------------

    def cluster_blkno(self, cluster: int) -> int:
        if not self.fat.valid(cluster):
            self.corrupt(f"cluster {cluster} out of range")
        return self._data_blk + (cluster - 2) * self._cblocks

    def bread_cluster(self, cluster: int) -> Buf:
        return self.bc.bread(self.cluster_blkno(cluster), self.cluster_size)

    def getblk_cluster(self, cluster: int) -> Buf:
        return self.bc.getblk(self.cluster_blkno(cluster), self.cluster_size)

    def bread_rootsec(self, index: int) -> Buf:
        """Sector ``index`` of the FAT12/16 root directory region."""
        geo = self.geo
        assert 0 <= index < geo.root_sectors
        return self.bc.bread((geo.root_start + index) * self._spb, geo.bps)

    def zero_cluster(self, cluster: int) -> None:
        bp = self.getblk_cluster(cluster)
        bp.data[:] = bytes(self.cluster_size)
        self.bc.bdwrite(bp)

    @staticmethod
    def corrupt(why: str) -> NoReturn:
        _LOG.warning("msdosfs: corrupt volume: %s", why)
        raise_errno(errno.EUCLEAN)

    def free_clusters(self) -> int:
        return self.fat.free

    def fsinfo_free_hint(self) -> int:
        return self.fsinfo.free if self.fsinfo is not None else FSINFO_FREE_UNKNOWN
