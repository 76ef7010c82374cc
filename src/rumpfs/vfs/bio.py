"""The buffer cache (NetBSD's vfs_bio.c): block I/O for disk file systems.

Allowed imports: ``rumpfs.kern``, ``rumpfs.errors``.

A disk file system reads and writes its device only through the kernel's one
:class:`BufCache` (``vfs.bufcache``), in buffers keyed by (device, block
number). Device I/O goes device switch -> driver (rumpblk) -> rumpuser::

    bp = vfs.bufcache.bread(dev, blkno, size)   # held; read on a miss
    bp.data[off:off + n] = new                  # change it in place...
    vfs.bufcache.bdwrite(bp)                    # ...release, write later
    # or: brelse(bp) unchanged, bwrite(bp) write now (errors raised)

- ``blkno`` counts 512-byte units (``DEV_BSIZE``, NetBSD's ``b_blkno``) from
  the start of the device; ``size`` is a multiple of 512, at most
  :data:`MAXBSIZE`. A request that does not lie inside the device is EIO
  (Linux's "attempt to access beyond end of device"), so a corrupt block
  number cannot reach another partition.
- Buffers of one device never overlap. A new buffer that would overlap
  cached ones of another size (read-ahead across into a region the file
  system reads with another block size, say) replaces them, written first if
  dirty; overlapping a *held* buffer is the caller's error (asserted).
  Read-ahead stops at the first block already cached.
- Memory: the data of all buffers together stays within ``budget`` bytes
  (default 64 MiB; :meth:`BufCache.set_budget`, or the mount option
  ``bufcache=BYTES``). Unheld buffers form one LRU list; making room evicts
  from its old end, writing a dirty victim first (together with its
  contiguous dirty neighbours, one device write). Held buffers are never
  evicted: only while more than the budget is held does the cache exceed it.
- Read-ahead: a miss that continues the device's previous ``bread`` reads
  a window of following blocks in the same device request; the window
  doubles on each sequential miss up to :data:`MAXREADAHEAD` bytes and
  collapses on a random one. :meth:`BufCache.breadn` is the file system's
  own read-ahead (it knows the next blocks of a file).
- Delayed writes reach the device on :meth:`BufCache.flush` (fsync, sync,
  unmount, shutdown) or eviction. :meth:`flush` writes in a safe order: all
  dirty buffers in ascending block order (contiguous ones in one request),
  then the device's fsync, then the buffers marked ``late`` (a superblock
  that says "clean" goes to disk only after everything it describes is on
  stable storage), then fsync again. Eviction never writes a ``late``
  buffer: keep them few.
- Streaming: :meth:`BufCache.read_run` / :meth:`BufCache.write_run` move
  runs of file data in one device request past the cache, coherent with
  the buffers they overlap.
- Errors: a failed device write raises its errno (a host error arrives
  through rumpuser as the host's errno) and leaves the buffer dirty and
  cached: a later flush retries it, nothing is dropped silently.
  :meth:`invalidate` (unmount) drops what is left and logs it.

Locking: every method runs under the kernel lock (the giant lock); device
I/O is done while holding it. The cache has no lock of its own. A "hold"
is NetBSD's B_BUSY without the sleeping: as nothing runs concurrently, a
buffer may be held more than once (a count), and every hold needs exactly
one ``brelse``/``bdwrite``/``bwrite``.

Invariants: ``bytes`` is the sum of the sizes of all cached buffers; a
buffer is in the LRU list iff ``holds == 0``; ``dev.dirty`` holds exactly
the dirty buffers of ``dev``; ``dev.bufs[bp.blkno] is bp`` for every
cached ``bp``.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Iterable

from rumpfs.errors import errno, raise_errno
from rumpfs.kern.devsw import BLOCK, DevSwitch, Driver

__all__ = [
    "DEFAULT_BUDGET", "DEV_BSIZE", "MAXBSIZE", "MAXREADAHEAD", "BlockDev", "Buf", "BufCache",
]

log = logging.getLogger("rumpfs.bio")

DEV_BSIZE = 512
MAXBSIZE = 64 * 1024                 # largest buffer (ext4 blocks, FAT clusters)
DEFAULT_BUDGET = 64 * 1024 * 1024
MAXREADAHEAD = 256 * 1024            # largest read-ahead window, in bytes
MAXCLUSTER = 1024 * 1024             # largest single device write


class BlockDev:
    """An opened block device a file system mounts on: driver, minor, size,
    and the cache's per-device state (its buffers, dirty set, read-ahead)."""

    __slots__ = (
        "bufs", "dirty", "driver", "flags", "maxsec", "minor", "open", "ra", "rdev",
        "read_only", "seq_next", "size",
    )

    def __init__(self, driver: Driver, minor: int, rdev: int, read_only: bool) -> None:
        self.driver = driver
        self.minor = minor
        self.rdev = rdev
        self.read_only = read_only
        self.flags = os.O_RDONLY if read_only else os.O_RDWR
        self.size = driver.d_size(minor)         # bytes; a window's size is fixed
        self.open = True
        self.bufs: dict[int, Buf] = {}            # blkno -> cached buffer
        self.dirty: set[Buf] = set()
        self.maxsec = 1                           # largest buffer so far, in DEV_BSIZE units
        self.seq_next = -1                        # blkno a sequential bread would ask next
        self.ra = 0                               # current read-ahead window, bytes

    @classmethod
    def open_rdev(cls, devsw: DevSwitch, rdev: int, read_only: bool) -> BlockDev:
        """Open block device ``rdev`` through the device switch (ENXIO, EACCES)."""
        driver, minor = devsw.lookup(BLOCK, rdev)
        driver.d_open(minor, os.O_RDONLY if read_only else os.O_RDWR)
        return cls(driver, minor, rdev, read_only)

    def close(self) -> None:
        if self.open:
            self.open = False
            self.driver.d_close(self.minor, self.flags)

    def read(self, offset: int, size: int) -> bytes:
        """Exactly ``size`` bytes at byte ``offset``; EIO if any lies outside."""
        if offset < 0 or offset + size > self.size:
            raise_errno(errno.EIO)
        data = self.driver.d_read(self.minor, size, offset)
        if len(data) != size:
            raise_errno(errno.EIO)
        return data

    def write(self, offset: int, data: bytes | memoryview) -> None:
        """Write all of ``data`` at byte ``offset`` (EROFS, EIO, the host's errno)."""
        if self.read_only:
            raise_errno(errno.EROFS)
        n = len(data)
        if offset < 0 or offset + n > self.size:
            raise_errno(errno.EIO)
        if self.driver.d_write(self.minor, data, offset) != n:
            raise_errno(errno.EIO)

    def fsync(self) -> None:
        self.driver.d_fsync(self.minor)

    def __repr__(self) -> str:
        return f"<BlockDev {os.major(self.rdev)},{os.minor(self.rdev)} size={self.size}>"


class Buf:
    """One cached block: ``data`` is exactly ``size`` bytes, changed in place."""

    __slots__ = ("blkno", "data", "dev", "dirty", "holds", "late", "size")

    def __init__(self, dev: BlockDev, blkno: int, data: bytearray) -> None:
        self.dev = dev
        self.blkno = blkno               # in DEV_BSIZE units
        self.size = len(data)
        self.data = data
        self.dirty = False               # delayed write pending
        self.holds = 0
        self.late = False                # flush writes it last (see module docstring)

    def __repr__(self) -> str:
        state = "D" if self.dirty else "-"
        return f"<Buf {self.dev!r} blkno={self.blkno} size={self.size} {state} holds={self.holds}>"


class BufCache:
    """The buffer cache of one kernel (``vfs.bufcache``)."""

    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self.budget = budget
        self.bytes = 0                   # data bytes of all cached buffers
        self.peak = 0                    # highest ``bytes`` seen (the memory test reads it)
        self._lru: OrderedDict[Buf, None] = OrderedDict()   # unheld buffers, oldest first
        self.nheld = 0                   # buffers with holds > 0
        self.hits = 0
        self.misses = 0
        self.dev_reads = 0               # device requests (a read-ahead run is one)
        self.dev_writes = 0

    def set_budget(self, nbytes: int) -> None:
        """Change the memory budget (EINVAL below MAXBSIZE); evicts down to it."""
        if nbytes < MAXBSIZE:
            raise_errno(errno.EINVAL)
        self.budget = nbytes
        self._make_room(0, must=False)

    # -- getting buffers ------------------------------------------------------

    def bread(self, dev: BlockDev, blkno: int, size: int) -> Buf:
        """Block ``blkno`` of ``dev``, held; read from the device on a miss
        (with read-ahead when the device is being read sequentially)."""
        nsec = size // DEV_BSIZE
        seq = blkno == dev.seq_next
        dev.seq_next = blkno + nsec
        bp = dev.bufs.get(blkno)
        if bp is not None and bp.size == size:
            self.hits += 1
            self._hold(bp)
            return bp
        self._check(dev, blkno, size)
        if seq:
            ra = dev.ra * 2 if dev.ra else 4 * size
            dev.ra = min(ra, MAXREADAHEAD, self.budget // 4)
        else:
            dev.ra = 0
        return self._read(dev, blkno, size, dev.ra // size)

    def breadn(self, dev: BlockDev, blkno: int, size: int, rablks: Iterable[int]) -> Buf:
        """:meth:`bread`, then read the blocks ``rablks`` (same size) into the
        cache unheld if missing: the file system's own read-ahead. Read-ahead
        failures are ignored (the later bread reports them)."""
        bp = self.bread(dev, blkno, size)
        for ra in rablks:
            if ra in dev.bufs:
                continue
            try:
                self._check(dev, ra, size)
                self.brelse(self._read(dev, ra, size, 0))
            except OSError:
                break
        return bp

    def getblk(self, dev: BlockDev, blkno: int, size: int) -> Buf:
        """Block ``blkno`` held without reading it, for a caller about to
        overwrite all of it: a cached buffer as it is, else zero-filled."""
        bp = dev.bufs.get(blkno)
        if bp is not None and bp.size == size:
            self._hold(bp)
            return bp
        self._check(dev, blkno, size)
        self._make_room(size, must=True)
        bp = self._enter(dev, blkno, bytearray(size))
        bp.holds = 1
        self.nheld += 1
        return bp

    def incore(self, dev: BlockDev, blkno: int) -> Buf | None:
        """The cached buffer at ``blkno`` (not held), or None."""
        return dev.bufs.get(blkno)

    # -- streaming file data past the cache ------------------------------------

    def read_run(self, dev: BlockDev, blkno: int, nbytes: int) -> bytes | bytearray:
        """``nbytes`` (a multiple of 512) at ``blkno`` in one device request,
        without caching them: for large sequential file data, which would only
        push metadata out of the cache. Cached buffers in the range (dirty
        ones included) are laid over what the device returned, so the result
        is what ``bread`` would show. EINVAL/EIO as :meth:`bread`."""
        self._range(dev, blkno, nbytes)
        self.dev_reads += 1
        data = dev.read(blkno * DEV_BSIZE, nbytes)
        cached = self._overlaps(dev, blkno, nbytes // DEV_BSIZE)
        if not cached:
            return data
        out = bytearray(data)
        for o in cached:
            _copy_overlap(o.blkno, o.data, blkno, out)
        return out

    def write_run(self, dev: BlockDev, blkno: int, data: bytes | memoryview) -> None:
        """Write ``data`` (a multiple of 512 bytes) at ``blkno`` now, past the
        cache (file data written whole: no read, no delayed write). Cached
        buffers in the range get the new bytes; those it covers whole are
        clean afterwards. On a write error the errno is raised and the clean
        buffers of the range are dropped (the device holds unknown data)."""
        if dev.read_only:
            raise_errno(errno.EROFS)
        nbytes = len(data)
        self._range(dev, blkno, nbytes)
        self.dev_writes += 1
        cached = self._overlaps(dev, blkno, nbytes // DEV_BSIZE)
        try:
            dev.write(blkno * DEV_BSIZE, data)
        except OSError:
            for o in cached:
                if not o.dirty and not o.holds:
                    del self._lru[o]
                    self._drop(o)
            raise
        end = blkno + nbytes // DEV_BSIZE
        for o in cached:
            _copy_overlap(blkno, data, o.blkno, o.data)
            if o.dirty and o.blkno >= blkno and o.blkno + o.size // DEV_BSIZE <= end:
                o.dirty = False
                dev.dirty.discard(o)

    # -- giving them back -------------------------------------------------------

    def brelse(self, bp: Buf) -> None:
        """Release ``bp`` unchanged (or still dirty from an earlier bdwrite)."""
        self._unhold(bp)

    def bdwrite(self, bp: Buf) -> None:
        """Release ``bp`` and write it later (EROFS on a read-only device)."""
        if bp.dev.read_only:
            self._unhold(bp)
            raise_errno(errno.EROFS)
        if not bp.dirty:
            bp.dirty = True
            bp.dev.dirty.add(bp)
        self._unhold(bp)

    def bwrite(self, bp: Buf) -> None:
        """Write ``bp`` now, then release it. On failure the errno is raised
        and ``bp`` stays cached and dirty (released either way)."""
        dev = bp.dev
        try:
            if dev.read_only:
                raise_errno(errno.EROFS)
            if not bp.dirty:
                bp.dirty = True
                dev.dirty.add(bp)
            self.dev_writes += 1
            dev.write(bp.blkno * DEV_BSIZE, memoryview(bp.data))
            bp.dirty = False
            dev.dirty.discard(bp)
        finally:
            self._unhold(bp)

    # -- whole devices ------------------------------------------------------------

    def flush(self, dev: BlockDev) -> None:
        """Write every dirty buffer of ``dev`` in the safe order (module
        docstring), then fsync the device. The first failure is raised; the
        buffers not yet written stay dirty."""
        if dev.read_only and not dev.dirty:
            return
        if dev.dirty:
            early = sorted((b for b in dev.dirty if not b.late), key=_blkno)
            late = sorted((b for b in dev.dirty if b.late), key=_blkno)
            self._write_sorted(dev, early)
            if late:
                dev.fsync()
                self._write_sorted(dev, late)
        dev.fsync()

    def invalidate(self, dev: BlockDev) -> int:
        """Drop every buffer of ``dev`` (unmount, after :meth:`flush`); returns
        how many were still dirty (lost, and logged)."""
        lost = len(dev.dirty)
        if lost:
            log.warning("%r: dropping %d dirty buffers that could not be written", dev, lost)
        for bp in list(dev.bufs.values()):
            assert bp.holds == 0, f"invalidate with {bp!r} held"
            del self._lru[bp]
            self._drop(bp)
        dev.dirty.clear()
        dev.seq_next = -1
        dev.ra = 0
        return lost

    def held(self, dev: BlockDev | None = None) -> int:
        """How many buffers (of ``dev``, or of all devices) are held: tests assert 0."""
        if dev is None:
            return self.nheld
        return sum(1 for b in dev.bufs.values() if b.holds)

    # -- internals ----------------------------------------------------------------

    def _check(self, dev: BlockDev, blkno: int, size: int) -> None:
        """EINVAL for a size the cache cannot hold, EIO outside the device; then
        clear the way for a new buffer: a cached buffer it would overlap (one
        of another size, or read ahead across a region the file system reads
        with another size) is written if dirty and dropped. One that is held
        is the caller breaking the rule: asserted."""
        if size <= 0 or size % DEV_BSIZE or size > MAXBSIZE:
            raise_errno(errno.EINVAL)
        if blkno < 0 or (blkno * DEV_BSIZE) + size > dev.size:
            raise_errno(errno.EIO)
        for o in self._overlaps(dev, blkno, size // DEV_BSIZE):
            assert not o.holds, f"{dev!r}: buffer {blkno}+{size} overlaps held {o!r}"
            if o.dirty:
                self._write_bufs(dev, [o])
            del self._lru[o]
            self._drop(o)

    @staticmethod
    def _range(dev: BlockDev, blkno: int, nbytes: int) -> None:
        if nbytes <= 0 or nbytes % DEV_BSIZE:
            raise_errno(errno.EINVAL)
        if blkno < 0 or blkno * DEV_BSIZE + nbytes > dev.size:
            raise_errno(errno.EIO)

    @staticmethod
    def _overlaps(dev: BlockDev, blkno: int, nsec: int) -> list[Buf]:
        """Cached buffers of ``dev`` that share a sector with [blkno, blkno+nsec)."""
        bufs = dev.bufs
        if not bufs:
            return []
        found = []
        for b in range(max(0, blkno - dev.maxsec + 1), blkno + nsec):
            o = bufs.get(b)
            if o is not None and b + o.size // DEV_BSIZE > blkno:
                found.append(o)
        return found

    def _hold(self, bp: Buf) -> None:
        if not bp.holds:
            del self._lru[bp]
            self.nheld += 1
        bp.holds += 1

    def _unhold(self, bp: Buf) -> None:
        assert bp.holds > 0, f"release of unheld {bp!r}"
        bp.holds -= 1
        if not bp.holds:
            self.nheld -= 1
            self._lru[bp] = None
            if self.bytes > self.budget:
                self._make_room(0, must=False)

    def _enter(self, dev: BlockDev, blkno: int, data: bytearray) -> Buf:
        """A new unheld-but-not-listed buffer in the cache (caller holds or lists it)."""
        bp = Buf(dev, blkno, data)
        dev.bufs[blkno] = bp
        nsec = bp.size // DEV_BSIZE
        if nsec > dev.maxsec:
            dev.maxsec = nsec
        self.bytes += bp.size
        if self.bytes > self.peak:
            self.peak = self.bytes
        return bp

    def _drop(self, bp: Buf) -> None:
        del bp.dev.bufs[bp.blkno]
        self.bytes -= bp.size

    def _read(self, dev: BlockDev, blkno: int, size: int, nra: int) -> Buf:
        """Read block ``blkno`` and up to ``nra`` following missing blocks in
        one device request; returns the first held, the others unheld."""
        self.misses += 1
        self._make_room(size, must=True)
        nsec = size // DEV_BSIZE
        n = 1
        limit = dev.size // DEV_BSIZE
        bufs = dev.bufs
        while n <= nra:
            b = blkno + n * nsec
            if b + nsec > limit or b in bufs or self._overlaps(dev, b, nsec):
                break                   # read-ahead never replaces what is cached
            n += 1
        if n > 1 and not self._make_room(n * size, must=False):
            n = 1
        self.dev_reads += 1
        raw = memoryview(dev.read(blkno * DEV_BSIZE, n * size))
        bp = self._enter(dev, blkno, bytearray(raw[:size]))
        bp.holds = 1
        self.nheld += 1
        lru = self._lru
        for i in range(1, n):
            rb = self._enter(dev, blkno + i * nsec, bytearray(raw[i * size:(i + 1) * size]))
            lru[rb] = None
        return bp

    def _make_room(self, need: int, must: bool) -> bool:
        """Evict unheld buffers, oldest first, until ``need`` more bytes fit.
        A dirty victim is written first (with its run); if that fails it
        stays and the next one is tried. Returns whether ``need`` fits; with
        ``must``, a write error that kept it from fitting is raised instead
        (held buffers alone may push the cache over its budget)."""
        lru = self._lru
        budget = self.budget
        err: OSError | None = None
        tries = len(lru)
        while self.bytes + need > budget and tries:
            tries -= 1
            bp = next(iter(lru))
            if bp.dirty:
                if bp.late:
                    lru.move_to_end(bp)
                    continue
                try:
                    self._write_run(bp)
                except OSError as e:
                    err = e
                    lru.move_to_end(bp)
                    continue
            del lru[bp]
            self._drop(bp)
        if self.bytes + need <= budget:
            return True
        if must and err is not None:
            raise err
        return must

    def _write_run(self, bp: Buf) -> None:
        """Write dirty ``bp`` together with its contiguous, same-size, unheld
        dirty neighbours (not ``late``) in one device request."""
        dev, size = bp.dev, bp.size
        nsec = size // DEV_BSIZE
        bufs = dev.bufs
        first = bp.blkno
        most = MAXCLUSTER // size
        n = 1
        while n < most:
            o = bufs.get(first - nsec)
            if o is None or not o.dirty or o.holds or o.late or o.size != size:
                break
            first -= nsec
            n += 1
        last = bp.blkno
        while n < most:
            o = bufs.get(last + nsec)
            if o is None or not o.dirty or o.holds or o.late or o.size != size:
                break
            last += nsec
            n += 1
        run = [bufs[b] for b in range(first, last + 1, nsec)]
        self._write_bufs(dev, run)

    def _write_sorted(self, dev: BlockDev, bps: list[Buf]) -> None:
        """Write ``bps`` (ascending blkno) in runs of contiguous buffers."""
        i = 0
        while i < len(bps):
            j = i + 1
            total = bps[i].size
            while (j < len(bps) and total < MAXCLUSTER
                   and bps[j].blkno == bps[j - 1].blkno + bps[j - 1].size // DEV_BSIZE):
                total += bps[j].size
                j += 1
            self._write_bufs(dev, bps[i:j])
            i = j

    def _write_bufs(self, dev: BlockDev, run: list[Buf]) -> None:
        """One device write of contiguous ``run``; marks it clean on success."""
        self.dev_writes += 1
        if len(run) == 1:
            dev.write(run[0].blkno * DEV_BSIZE, memoryview(run[0].data))
        else:
            dev.write(run[0].blkno * DEV_BSIZE, b"".join(b.data for b in run))
        dirty = dev.dirty
        for b in run:
            b.dirty = False
            dirty.discard(b)


def _blkno(bp: Buf) -> int:
    return bp.blkno


def _copy_overlap(src_blkno: int, src: bytes | bytearray | memoryview, dst_blkno: int,
                  dst: bytearray) -> None:
    """Copy the sectors that ``src`` (at ``src_blkno``) and ``dst`` share into ``dst``."""
    lo = max(src_blkno, dst_blkno) * DEV_BSIZE
    hi = min(src_blkno * DEV_BSIZE + len(src), dst_blkno * DEV_BSIZE + len(dst))
    if lo < hi:
        s0 = lo - src_blkno * DEV_BSIZE
        d0 = lo - dst_blkno * DEV_BSIZE
        dst[d0:d0 + hi - lo] = src[s0:s0 + hi - lo]
