"""The file allocation table: entries, chains, allocation, free count.

Allowed imports: ``rumpfs.errors`` (pure: the mount reads and writes the bytes).

NetBSD's ``fat.h`` + ``msdosfs_fat.c``. One :class:`Fat` holds the whole
table of one volume in memory as its on-disk bytes (``raw``), so that writing
it back is a slice per changed chunk; entries are decoded on access (FAT16/32
through a little-endian ``memoryview`` cast, FAT12 by hand). The mount loads
one copy at mount time and writes every changed chunk to every copy (or to
the active one when FAT32 mirroring is off) on sync, keeping the copies in
step.

Untrusted tables: :meth:`Fat.chain` follows a chain only through valid
cluster numbers and never more than ``clusters`` steps, so an entry out of
range, a free or bad cluster inside a chain, or a loop is EUCLEAN with a
logged reason, and costs at most one pass over the volume's clusters.

Invariants: ``free`` is the number of entries 2 .. max_cluster that are 0;
``dirty`` holds the index of every CHUNK-byte piece of ``raw`` changed since
the last :meth:`Fat.take_dirty`.
"""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

from rumpfs.errors import errno, raise_errno

__all__ = ["CHUNK", "Fat"]

CHUNK = 4096                   # write-back granularity of the table (bytes)
_LOG = logging.getLogger("rumpfs.msdosfs")


class Fat:
    """One volume's FAT, decoded on access."""

    __slots__ = ("_mv", "bits", "clusters", "dirty", "eoc", "eoc_min", "free", "mask",
                 "max_cluster", "next_free", "raw")

    def __init__(self, bits: int, raw: bytearray, clusters: int) -> None:
        assert bits in (12, 16, 32)
        need = ((clusters + 2) * bits + 7) // 8
        assert len(raw) >= need, "the table must cover every cluster"
        self.bits = bits
        self.raw = raw
        self.clusters = clusters
        self.max_cluster = clusters + 1
        self.mask = (1 << bits) - 1 if bits != 32 else 0x0FFFFFFF
        self.eoc_min = self.mask - 7            # 0xFF8, 0xFFF8, 0x0FFFFFF8
        self.eoc = self.mask                    # what Linux writes at a chain's end
        self.dirty: set[int] = set()
        self._mv: memoryview | None = None
        if bits != 12 and sys.byteorder == "little":
            usable = len(raw) - len(raw) % (bits // 8)
            self._mv = memoryview(raw)[:usable].cast("H" if bits == 16 else "I")
        self.free = self._count_free()
        self.next_free = 2

    # -- entries --------------------------------------------------------------

    def get(self, n: int) -> int:
        mv = self._mv
        if mv is not None:
            return mv[n] & self.mask
        raw = self.raw
        if self.bits == 12:
            off = n + (n >> 1)
            v = raw[off] | raw[off + 1] << 8
            return v >> 4 if n & 1 else v & 0xFFF
        if self.bits == 16:
            return raw[2 * n] | raw[2 * n + 1] << 8
        off = 4 * n
        return int.from_bytes(raw[off:off + 4], "little") & 0x0FFFFFFF

    def set(self, n: int, value: int) -> None:
        """Set entry ``n`` (FAT32 keeps the top four reserved bits)."""
        bits, raw = self.bits, self.raw
        if bits == 12:
            off = n + (n >> 1)
            if n & 1:
                raw[off] = (raw[off] & 0x0F) | (value << 4 & 0xF0)
                raw[off + 1] = value >> 4 & 0xFF
            else:
                raw[off] = value & 0xFF
                raw[off + 1] = (raw[off + 1] & 0xF0) | (value >> 8 & 0x0F)
            self.dirty.add(off // CHUNK)
            self.dirty.add((off + 1) // CHUNK)
            return
        mv = self._mv
        if bits == 16:
            off = 2 * n
            if mv is not None:
                mv[n] = value & 0xFFFF
            else:
                raw[off:off + 2] = (value & 0xFFFF).to_bytes(2, "little")
        else:
            off = 4 * n
            old = mv[n] if mv is not None else int.from_bytes(raw[off:off + 4], "little")
            new = (old & 0xF0000000) | (value & 0x0FFFFFFF)
            if mv is not None:
                mv[n] = new
            else:
                raw[off:off + 4] = new.to_bytes(4, "little")
        self.dirty.add(off // CHUNK)

    def is_eoc(self, value: int) -> bool:
        return value >= self.eoc_min

    def valid(self, n: int) -> bool:
        return 2 <= n <= self.max_cluster

    # -- chains ---------------------------------------------------------------

    def chain(self, start: int, limit: int | None = None) -> list[int]:
        """The clusters of the chain starting at ``start`` (0 = empty chain).

        ``limit`` bounds the length wanted (more is EUCLEAN, as a chain longer
        than its file's size); loops and invalid entries are EUCLEAN."""
        if start == 0:
            return []
        cap = self.clusters if limit is None else min(limit, self.clusters)
        if not self.valid(start):
            self._corrupt(f"chain starts at invalid cluster {start}")
        out = [start]
        cur = start
        get = self.get
        lo, hi, eoc_min = 2, self.max_cluster, self.eoc_min
        mv, mask = self._mv, self.mask
        while True:
            nxt = mv[cur] & mask if mv is not None else get(cur)
            if nxt >= eoc_min:
                return out
            if not lo <= nxt <= hi:
                self._corrupt(f"cluster {cur} points at {nxt:#x} (free, bad or out of range)")
            if len(out) >= cap:
                self._corrupt(f"chain at {start} loops or outgrows its file ({cap} clusters)")
            out.append(nxt)
            cur = nxt

    @staticmethod
    def _corrupt(why: str) -> NoReturn:
        _LOG.warning("msdosfs: corrupt FAT: %s", why)
        raise_errno(errno.EUCLEAN)

    # -- allocation -----------------------------------------------------------

    def _count_free(self) -> int:
        mv = self._mv
        if mv is not None:
            seg = mv[2:self.max_cluster + 1].tolist()
            if self.bits == 16:
                return seg.count(0)
            # free = low 28 bits zero; the top four bits are reserved (kept as found)
            free = seg.count(0)
            if seg and max(seg) >= 1 << 28:
                free += sum(seg.count(top << 28) for top in range(1, 16))
            return free
        return sum(1 for n in range(2, self.max_cluster + 1) if self.get(n) == 0)

    def _find_free(self, start: int) -> int:
        """The first free cluster at or after ``start`` (wrapping); 0 if none."""
        if self.free <= 0:
            return 0
        for lo, hi in ((start, self.max_cluster), (2, start - 1)):
            if lo > hi:
                continue
            n = self._scan(lo, hi)
            if n:
                return n
        return 0

    def _scan(self, lo: int, hi: int) -> int:
        if self.bits == 12 or self._mv is None:
            get = self.get
            for n in range(lo, hi + 1):
                if get(n) == 0:
                    return n
            return 0
        width = self.bits // 8
        zero = bytes(width)
        raw = self.raw
        pos, end = lo * width, (hi + 1) * width
        while pos < end:
            i = raw.find(zero, pos, end)
            if i < 0:
                return 0
            if i % width:
                pos = i + width - i % width
                continue
            return i // width
        return 0

    def alloc(self, count: int, near: int = 0) -> list[int]:
        """Allocate ``count`` clusters as one chain (ended by EOC); ENOSPC if
        fewer are free. Contiguous runs are preferred, starting at ``near``
        (the cluster after a file's last one) or the next-free hint."""
        if count <= 0:
            return []
        if count > self.free:
            raise_errno(errno.ENOSPC)
        out: list[int] = []
        n = near if self.valid(near) else self.next_free
        if not self.valid(n):
            n = 2
        get = self.get
        hi = self.max_cluster
        while len(out) < count:
            if not (self.valid(n) and get(n) == 0):
                n = self._find_free(n if self.valid(n) else 2)
                assert n, "free count said there was room"
            first = n
            mv = self._mv
            if mv is not None:
                mask = self.mask
                while len(out) < count and n <= hi and not mv[n] & mask:
                    out.append(n)
                    n += 1
            else:
                while len(out) < count and n <= hi and get(n) == 0:
                    out.append(n)
                    n += 1
            if len(out) > n - first and n - first:          # joins the previous run
                self.set(out[-(n - first) - 1], first)
            self._chain_run(first, n - 1)                   # taken now: scans skip it
        self.free -= count
        self.next_free = out[-1] + 1 if out[-1] < self.max_cluster else 2
        return out

    def _chain_run(self, first: int, last: int) -> None:
        """Link first -> first+1 -> ... -> last -> EOC."""
        mv = self._mv
        if mv is None or self.bits != 32:
            for c in range(first, last):
                self.set(c, c + 1)
            self.set(last, self.eoc)
            return
        for c in range(first, last):
            mv[c] = (mv[c] & 0xF0000000) | (c + 1)
        mv[last] = (mv[last] & 0xF0000000) | self.eoc
        self.dirty.update(range(4 * first // CHUNK, 4 * last // CHUNK + 1))

    def link(self, last: int, first: int) -> None:
        """Make the chain ending at ``last`` continue at ``first``."""
        self.set(last, first)

    def terminate(self, last: int) -> None:
        self.set(last, self.eoc)

    def release(self, clusters: list[int]) -> None:
        """Free the given clusters (a chain's tail, already read and checked)."""
        for n in clusters:
            self.set(n, 0)
        self.free += len(clusters)

    def take_dirty(self) -> list[int]:
        """Indices of the CHUNK-byte pieces changed since the last call, sorted."""
        out = sorted(self.dirty)
        self.dirty = set()
        return out
