"""The buffer cache (vfs/bio.py) on a memhost-backed rumpblk device: hits and
misses, LRU within the budget, delayed writes and their order, read-ahead,
host write errors (fault injection), range and size checks."""

from __future__ import annotations

import errno
from collections.abc import Iterator

import pytest

from rumpfs import EtfsType, Kernel
from rumpfs.rumpuser.memhost import MemHost
from rumpfs.vfs.bio import MAXBSIZE, BlockDev, BufCache

MiB = 1024 * 1024
BS = 4096
SPB = BS // 512             # DEV_BSIZE units per 4 KiB block


class RecHost(MemHost):
    """A memhost that logs device writes (offset, length) and fsyncs, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, int, int]] = []

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        n = super().pwrite(fd, data, offset)
        self.log.append(("w", offset, n))
        return n

    def fsync(self, fd: int, datasync: bool = False) -> None:
        super().fsync(fd, datasync)
        self.log.append(("f", 0, 0))


def pattern(i: int, n: int = BS) -> bytes:
    return bytes([i % 251]) * n


@pytest.fixture
def host() -> RecHost:
    h = RecHost()
    h.write_file("/disk.img", b"".join(pattern(i) for i in range(256)))   # 1 MiB
    return h


@pytest.fixture
def k(host: RecHost) -> Iterator[Kernel]:
    with Kernel(hypervisor=host) as kernel:
        kernel.etfs_register("/dev/d", "/disk.img", EtfsType.BLK)
        yield kernel


@pytest.fixture
def dev(k: Kernel) -> Iterator[BlockDev]:
    d = BlockDev.open_rdev(k.devsw, k.stat("/dev/d").st_rdev, False)
    yield d
    d.close()


@pytest.fixture
def bc() -> BufCache:
    return BufCache()


def test_bread_reads_and_hits(bc: BufCache, dev: BlockDev) -> None:
    bp = bc.bread(dev, 3 * SPB, BS)
    assert bytes(bp.data) == pattern(3) and bp.size == BS and bp.blkno == 3 * SPB
    bc.brelse(bp)
    reads = bc.dev_reads
    bp2 = bc.bread(dev, 3 * SPB, BS)
    assert bp2 is bp and bc.dev_reads == reads and bc.hits == 1
    bc.brelse(bp2)
    assert bc.held() == 0 and bc.bytes == BS


def test_bread_sizes_and_blknos_in_dev_bsize_units(bc: BufCache, dev: BlockDev) -> None:
    bp = bc.bread(dev, 1, 1024)                     # bytes 512..1535
    assert bytes(bp.data) == pattern(0, 1024)
    bc.brelse(bp)
    bp = bc.bread(dev, 7, 1024)                     # straddles blocks 0 and 1
    assert bytes(bp.data) == pattern(0, 512) + pattern(1, 512)
    bc.brelse(bp)


def test_getblk_zero_filled_no_read(bc: BufCache, dev: BlockDev) -> None:
    bp = bc.getblk(dev, 5 * SPB, BS)
    assert bytes(bp.data) == bytes(BS) and bc.dev_reads == 0
    bc.brelse(bp)
    # a cached buffer is returned as it is
    bp = bc.bread(dev, 6 * SPB, BS)
    bp.data[:4] = b"abcd"
    bc.bdwrite(bp)
    bp = bc.getblk(dev, 6 * SPB, BS)
    assert bytes(bp.data[:4]) == b"abcd"
    bc.brelse(bp)


def test_lru_stays_within_budget_and_evicts_oldest(bc: BufCache, dev: BlockDev) -> None:
    bc.set_budget(MAXBSIZE)                         # 16 buffers of 4 KiB
    order = list(range(200, 0, -3))                 # descending: never sequential
    for i in order[:16]:
        bc.brelse(bc.bread(dev, i * SPB, BS))
    assert bc.bytes == MAXBSIZE
    bc.brelse(bc.bread(dev, order[0] * SPB, BS))    # touch the oldest: now youngest
    bc.brelse(bc.bread(dev, 2 * SPB, BS))           # one more: evicts order[1]
    assert bc.incore(dev, order[0] * SPB) is not None
    assert bc.incore(dev, order[1] * SPB) is None
    for i in order[16:]:
        bp = bc.bread(dev, i * SPB, BS)
        assert bytes(bp.data) == pattern(i)
        bc.brelse(bp)
    assert bc.peak <= MAXBSIZE and bc.bytes <= MAXBSIZE


def test_held_buffers_are_never_evicted(bc: BufCache, dev: BlockDev) -> None:
    bc.set_budget(MAXBSIZE)
    held = [bc.bread(dev, i * SPB, BS) for i in range(0, 40, 2)]    # 20 held: over budget
    assert bc.bytes == 20 * BS and bc.held() == 20
    for bp in held:
        bc.brelse(bp)
    assert bc.bytes <= MAXBSIZE and bc.held() == 0                  # trimmed on release


def test_delayed_write_waits_for_flush_in_block_order(
        bc: BufCache, dev: BlockDev, host: RecHost) -> None:
    for i in (9, 3, 7, 4, 5):
        bp = bc.bread(dev, i * SPB, BS)
        bp.data[:] = pattern(100 + i)
        bc.bdwrite(bp)
    sb = bc.bread(dev, 1 * SPB, BS)
    sb.data[:5] = b"clean"
    sb.late = True
    bc.bdwrite(sb)
    assert host.log == []                           # nothing written yet
    assert len(dev.dirty) == 6
    bc.flush(dev)
    # ascending, contiguous 3-4-5 in one request, then fsync, the late one, fsync
    assert host.log == [("w", 3 * BS, 3 * BS), ("w", 7 * BS, BS), ("w", 9 * BS, BS),
                        ("f", 0, 0), ("w", 1 * BS, BS), ("f", 0, 0)]
    img = host.read_file("/disk.img")
    for i in (3, 4, 5, 7, 9):
        assert img[i * BS:(i + 1) * BS] == pattern(100 + i)
    assert img[BS:BS + 5] == b"clean"
    assert not dev.dirty and bc.bytes == 7 * BS     # written buffers stay cached, clean


def test_flush_fsyncs_even_when_clean(bc: BufCache, dev: BlockDev, host: RecHost) -> None:
    bc.flush(dev)
    assert host.log == [("f", 0, 0)]


def test_eviction_writes_dirty_runs_in_one_request(
        bc: BufCache, dev: BlockDev, host: RecHost) -> None:
    bc.set_budget(MAXBSIZE)
    for i in range(16):
        bp = bc.getblk(dev, i * SPB, BS)
        bp.data[:] = pattern(50 + i)
        bc.bdwrite(bp)
    assert host.log == []
    bc.brelse(bc.bread(dev, 100 * SPB, BS))         # needs room: writes the run
    assert host.log == [("w", 0, 16 * BS)]
    img = host.read_file("/disk.img")
    assert all(img[i * BS:(i + 1) * BS] == pattern(50 + i) for i in range(16))
    assert bc.bytes <= MAXBSIZE and not dev.dirty


def test_late_buffers_are_not_evicted_dirty(bc: BufCache, dev: BlockDev, host: RecHost) -> None:
    bc.set_budget(MAXBSIZE)
    sb = bc.getblk(dev, 0, BS)
    sb.late = True
    bc.bdwrite(sb)
    for i in range(2, 40, 2):
        bc.brelse(bc.bread(dev, i * SPB, BS))
    assert bc.incore(dev, 0) is sb and sb.dirty
    assert not [e for e in host.log if e[0] == "w"]


def test_sequential_bread_reads_ahead(bc: BufCache, dev: BlockDev) -> None:
    for i in range(128):
        bp = bc.bread(dev, i * SPB, BS)
        assert bytes(bp.data) == pattern(i)
        bc.brelse(bp)
    assert bc.misses < 20                            # windows grow to 256 KiB
    assert bc.dev_reads == bc.misses


def test_random_bread_does_not_read_ahead(bc: BufCache, dev: BlockDev) -> None:
    for i in range(200, 0, -7):
        bc.brelse(bc.bread(dev, i * SPB, BS))
    assert bc.bytes == len(range(200, 0, -7)) * BS   # no extra buffers
    assert bc.dev_reads == bc.misses


def test_read_ahead_stops_at_cached_and_dirty_blocks(bc: BufCache, dev: BlockDev) -> None:
    bp = bc.getblk(dev, 10 * SPB, BS)
    bp.data[:] = pattern(200)
    bc.bdwrite(bp)
    for i in range(16):
        bc.brelse(bc.bread(dev, i * SPB, BS))
    bp = bc.bread(dev, 10 * SPB, BS)
    assert bytes(bp.data) == pattern(200) and bp.dirty     # not overwritten by read-ahead
    bc.brelse(bp)


def test_read_ahead_stops_at_device_end(bc: BufCache, dev: BlockDev) -> None:
    for i in range(240, 256):
        bp = bc.bread(dev, i * SPB, BS)
        assert bytes(bp.data) == pattern(i)
        bc.brelse(bp)


def test_breadn_reads_given_blocks(bc: BufCache, dev: BlockDev) -> None:
    bp = bc.breadn(dev, 50 * SPB, BS, [70 * SPB, 90 * SPB])
    bc.brelse(bp)
    reads = bc.dev_reads
    for i in (70, 90):
        bp = bc.bread(dev, i * SPB, BS)
        assert bytes(bp.data) == pattern(i)
        bc.brelse(bp)
    assert bc.dev_reads == reads


def test_outside_the_device_is_eio(bc: BufCache, dev: BlockDev) -> None:
    for blkno in (256 * SPB, 256 * SPB - 1, -8, 10**12):
        with pytest.raises(OSError) as ei:
            bc.bread(dev, blkno, BS)
        assert ei.value.errno == errno.EIO
        with pytest.raises(OSError) as ei:
            bc.getblk(dev, blkno, BS)
        assert ei.value.errno == errno.EIO
    assert bc.bytes == 0 and bc.held() == 0


@pytest.mark.parametrize("size", [0, 100, 513, MAXBSIZE + 512, -512])
def test_bad_sizes_are_einval(bc: BufCache, dev: BlockDev, size: int) -> None:
    with pytest.raises(OSError) as ei:
        bc.bread(dev, 0, size)
    assert ei.value.errno == errno.EINVAL


def test_overlapping_buffers_are_replaced(bc: BufCache, dev: BlockDev, host: RecHost) -> None:
    bp = bc.bread(dev, 0, BS)
    bp.data[:] = pattern(90)
    bc.bdwrite(bp)
    small = bc.bread(dev, 4, 1024)                  # inside the dirty 4 KiB buffer
    assert bytes(small.data) == pattern(90, 1024)   # written first, then read
    assert host.log == [("w", 0, BS)] and bc.incore(dev, 0) is None
    bc.brelse(small)
    bp = bc.bread(dev, 0, BS)                       # and back: the small one goes
    assert bc.incore(dev, 4) is None and bytes(bp.data) == pattern(90)
    with pytest.raises(AssertionError):
        bc.getblk(dev, 4, 1024)                     # overlaps a held buffer
    bc.brelse(bp)
    big = bc.bread(dev, 16, 2 * BS)                 # covers blocks 2 and 3
    bc.brelse(big)
    bc.brelse(bc.bread(dev, 3 * SPB, BS))           # same start as nothing; overlaps big
    assert bc.incore(dev, 16) is None
    assert bc.held() == 0


def test_read_ahead_stops_before_a_buffer_of_another_size(bc: BufCache, dev: BlockDev) -> None:
    bc.brelse(bc.bread(dev, 20 * SPB + 2, 1024))    # inside block 20
    for i in range(16):
        bc.brelse(bc.bread(dev, i * SPB, BS))
    small = bc.incore(dev, 20 * SPB + 2)
    assert small is not None and small.size == 1024
    assert bc.incore(dev, 20 * SPB) is None


def test_bwrite_writes_now(bc: BufCache, dev: BlockDev, host: RecHost) -> None:
    bp = bc.bread(dev, 2 * SPB, BS)
    bp.data[:] = pattern(77)
    bc.bwrite(bp)
    assert host.log == [("w", 2 * BS, BS)]
    assert host.read_file("/disk.img")[2 * BS:3 * BS] == pattern(77)
    assert not bp.dirty and bc.held() == 0


def test_bwrite_error_keeps_buffer_dirty(bc: BufCache, dev: BlockDev, host: RecHost) -> None:
    bp = bc.bread(dev, 2 * SPB, BS)
    bp.data[:] = pattern(77)
    host.inject("pwrite", errno.EIO)
    with pytest.raises(OSError) as ei:
        bc.bwrite(bp)
    assert ei.value.errno == errno.EIO
    assert bp.dirty and bp in dev.dirty and bc.held() == 0
    bc.flush(dev)                                   # the retry succeeds
    assert host.read_file("/disk.img")[2 * BS:3 * BS] == pattern(77)


def test_flush_error_reaches_caller_and_nothing_is_dropped(
        bc: BufCache, dev: BlockDev, host: RecHost) -> None:
    for i in (1, 5):
        bp = bc.bread(dev, i * SPB, BS)
        bp.data[:] = pattern(10 + i)
        bc.bdwrite(bp)
    host.inject("pwrite", errno.ENOSPC, after=1)    # first run written, second fails
    with pytest.raises(OSError) as ei:
        bc.flush(dev)
    assert ei.value.errno == errno.ENOSPC
    assert [b.blkno for b in dev.dirty] == [5 * SPB]
    host.inject("fsync", errno.EIO)
    with pytest.raises(OSError) as ei:
        bc.flush(dev)                               # written now; fsync fails
    assert ei.value.errno == errno.EIO
    bc.flush(dev)
    img = host.read_file("/disk.img")
    assert img[BS:2 * BS] == pattern(11) and img[5 * BS:6 * BS] == pattern(15)


def test_eviction_write_error_raised_only_when_no_room(
        bc: BufCache, dev: BlockDev, host: RecHost) -> None:
    bc.set_budget(MAXBSIZE)
    for i in range(0, 32, 2):                       # 16 dirty, not contiguous
        bp = bc.getblk(dev, i * SPB, BS)
        bp.data[:] = pattern(60 + i)
        bc.bdwrite(bp)
    host.inject("pwrite", errno.EIO, count=None)
    with pytest.raises(OSError) as ei:
        bc.bread(dev, 100 * SPB, BS)
    assert ei.value.errno == errno.EIO
    assert len(dev.dirty) == 16 and bc.bytes <= MAXBSIZE and bc.held() == 0
    host.clear_faults()
    bc.brelse(bc.bread(dev, 100 * SPB, BS))         # room again once writes work
    bc.flush(dev)
    img = host.read_file("/disk.img")
    assert all(img[i * BS:(i + 1) * BS] == pattern(60 + i) for i in range(0, 32, 2))


def test_read_error_leaves_no_buffer(bc: BufCache, dev: BlockDev, host: RecHost) -> None:
    host.inject("pread", errno.EIO)
    with pytest.raises(OSError) as ei:
        bc.bread(dev, 0, BS)
    assert ei.value.errno == errno.EIO
    assert bc.bytes == 0 and bc.incore(dev, 0) is None
    assert bytes(bc.bread(dev, 0, BS).data) == pattern(0)


def test_read_only_device_refuses_writes(bc: BufCache, k: Kernel) -> None:
    ro = BlockDev.open_rdev(k.devsw, k.stat("/dev/d").st_rdev, True)
    bp = bc.bread(ro, 0, BS)
    with pytest.raises(OSError) as ei:
        bc.bdwrite(bp)
    assert ei.value.errno == errno.EROFS and bc.held() == 0
    bp = bc.bread(ro, 0, BS)
    with pytest.raises(OSError) as ei:
        bc.bwrite(bp)
    assert ei.value.errno == errno.EROFS and bc.held() == 0
    ro.close()


def test_invalidate_drops_everything(bc: BufCache, dev: BlockDev, host: RecHost) -> None:
    for i in range(4):
        bc.brelse(bc.bread(dev, i * 2 * SPB, BS))
    bp = bc.bread(dev, 20 * SPB, BS)
    bp.data[:] = pattern(1)
    bc.bdwrite(bp)
    assert bc.invalidate(dev) == 1                  # one dirty buffer lost (logged)
    assert bc.bytes == 0 and not dev.bufs and not dev.dirty
    assert host.read_file("/disk.img")[20 * BS:21 * BS] == pattern(20)


def test_set_budget_evicts_and_checks(bc: BufCache, dev: BlockDev) -> None:
    for i in range(0, 64, 2):
        bc.brelse(bc.bread(dev, i * SPB, BS))
    assert bc.bytes == 32 * BS
    bc.set_budget(MAXBSIZE)
    assert bc.bytes == MAXBSIZE
    with pytest.raises(OSError) as ei:
        bc.set_budget(4096)
    assert ei.value.errno == errno.EINVAL


def test_held_counts(bc: BufCache, dev: BlockDev) -> None:
    a = bc.bread(dev, 0, BS)
    b = bc.bread(dev, 0, BS)                        # held twice: one buffer, two holds
    assert a is b and a.holds == 2 and bc.held() == 1 and bc.held(dev) == 1
    bc.brelse(a)
    bc.brelse(b)
    assert bc.held() == 0
    with pytest.raises(AssertionError):
        bc.brelse(a)


def test_read_run_streams_past_the_cache(bc: BufCache, dev: BlockDev) -> None:
    data = bc.read_run(dev, 4 * SPB, 8 * BS)
    assert data == b"".join(pattern(i) for i in range(4, 12))
    assert bc.bytes == 0 and bc.dev_reads == 1              # nothing cached


def test_read_run_sees_dirty_buffers(bc: BufCache, dev: BlockDev) -> None:
    bp = bc.getblk(dev, 6 * SPB, BS)
    bp.data[:] = pattern(200)
    bc.bdwrite(bp)
    small = bc.bread(dev, 3 * SPB + 7, 1024)                # straddles the run's start
    small.data[:] = b"s" * 1024
    bc.bdwrite(small)
    data = bc.read_run(dev, 4 * SPB, 4 * BS)
    want = bytearray(b"".join(pattern(i) for i in range(4, 8)))
    want[2 * BS:3 * BS] = pattern(200)
    want[:512] = b"s" * 512
    assert data == want


def test_write_run_writes_now_and_keeps_the_cache_coherent(
        bc: BufCache, dev: BlockDev, host: RecHost) -> None:
    bp = bc.bread(dev, 5 * SPB, BS)
    bp.data[:] = pattern(150)
    bc.bdwrite(bp)                                          # dirty, covered whole below
    edge = bc.bread(dev, 8 * SPB, 2 * BS)                   # clean, covered half
    bc.brelse(edge)
    new = b"".join(pattern(100 + i) for i in range(4, 9))   # blocks 4..8
    bc.write_run(dev, 4 * SPB, new)
    assert host.log == [("w", 4 * BS, 5 * BS)]
    assert bytes(bp.data) == pattern(105) and not bp.dirty and not dev.dirty
    assert bytes(edge.data) == pattern(108) + pattern(9)
    img = host.read_file("/disk.img")
    assert img[4 * BS:9 * BS] == new and img[9 * BS:10 * BS] == pattern(9)


def test_write_run_errors(bc: BufCache, k: Kernel, dev: BlockDev, host: RecHost) -> None:
    clean = bc.bread(dev, 2 * SPB, BS)
    bc.brelse(clean)
    host.inject("pwrite", errno.EIO)
    with pytest.raises(OSError) as ei:
        bc.write_run(dev, 0, bytes(4 * BS))
    assert ei.value.errno == errno.EIO
    assert bc.incore(dev, 2 * SPB) is None                  # unknown on disk: dropped
    for args in ((0, bytes(100)), (255 * SPB, bytes(2 * BS))):
        with pytest.raises(OSError) as ei:
            bc.write_run(dev, *args)
        assert ei.value.errno in (errno.EINVAL, errno.EIO)
    with pytest.raises(OSError) as ei:
        bc.read_run(dev, 250 * SPB, 8 * BS)
    assert ei.value.errno == errno.EIO
    ro = BlockDev.open_rdev(k.devsw, k.stat("/dev/d").st_rdev, True)
    with pytest.raises(OSError) as ei:
        bc.write_run(ro, 0, bytes(BS))
    assert ei.value.errno == errno.EROFS
    ro.close()
