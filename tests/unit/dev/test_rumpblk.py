"""rumpblk through etfs BLK/CHR keys: rdev, sizes, alignment, ends, minors, mknod."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rumpfs import EtfsType, Kernel
from rumpfs.dev.rumpblk import RUMPBLK_DEVMAJOR
from rumpfs.rumpuser.memhost import MemHost

DATA = bytes(range(256)) * 32          # 8192 bytes


@pytest.fixture
def img() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="rumpfs-blk-", dir="/dev/shm"))
    p = d / "disk.img"
    p.write_bytes(DATA)
    try:
        yield p
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def k() -> Iterator[Kernel]:
    with Kernel() as kernel:
        yield kernel


def test_major_registered_at_boot(k: Kernel) -> None:
    _driver, minor = k.devsw.lookup("b", os.makedev(RUMPBLK_DEVMAJOR, 3))
    assert minor == 3
    k.devsw.lookup("c", os.makedev(RUMPBLK_DEVMAJOR, 0))


@pytest.mark.parametrize("t,fmt", [(EtfsType.BLK, stat.S_IFBLK), (EtfsType.CHR, stat.S_IFCHR)])
def test_stat(k: Kernel, img: Path, t: EtfsType, fmt: int) -> None:
    k.etfs_register("/dev/a", img, t)
    k.etfs_register("/dev/b", img, t, begin=1024, size=2048)
    a, b = k.stat("/dev/a"), k.stat("/dev/b")
    assert stat.S_IFMT(a.st_mode) == fmt and stat.S_IFMT(b.st_mode) == fmt
    assert a.st_size == 8192 and b.st_size == 2048
    assert os.major(a.st_rdev) == os.major(b.st_rdev) == RUMPBLK_DEVMAJOR
    assert os.minor(a.st_rdev) != os.minor(b.st_rdev)


def test_blk_any_offset_and_length(k: Kernel, img: Path) -> None:
    k.etfs_register("/dev/d", img, EtfsType.BLK, begin=512, size=4096)
    fd = k.open("/dev/d", os.O_RDWR)
    assert k.pread(fd, 7, 3) == DATA[515:522]
    assert k.pread(fd, 10000, 4000) == DATA[4512:4608]
    assert k.pwrite(fd, b"hello", 1) == 5
    assert k.lseek(fd, 0, os.SEEK_END) == 4096
    k.lseek(fd, 10, os.SEEK_SET)
    assert k.read(fd, 3) == DATA[522:525]
    k.close(fd)
    got = img.read_bytes()
    assert got[513:518] == b"hello" and got[:513] == DATA[:513] and got[518:] == DATA[518:]


def test_blk_short_device_short_read(k: Kernel, img: Path) -> None:
    k.etfs_register("/dev/d", img, EtfsType.BLK, size=4096)
    fd = k.open("/dev/d", os.O_RDONLY)
    assert k.read(fd, 65536) == DATA[:4096]
    k.close(fd)


@pytest.mark.parametrize("t", [EtfsType.BLK, EtfsType.CHR])
def test_ends(k: Kernel, img: Path, t: EtfsType) -> None:
    k.etfs_register("/dev/d", img, t, begin=1024, size=2048)
    fd = k.open("/dev/d", os.O_RDWR)
    assert k.pread(fd, 512, 2048) == b""
    assert k.pread(fd, 512, 4096) == b""
    with pytest.raises(OSError) as e:
        k.pwrite(fd, b"x" * 512, 2048)
    assert e.value.errno == errno.ENOSPC
    with pytest.raises(OSError) as e:
        k.pwrite(fd, b"x" * 512, 1 << 20)
    assert e.value.errno == errno.ENOSPC
    assert k.pwrite(fd, b"y" * 1024, 1536) == 512            # straddling: short
    assert k.pread(fd, 1024, 1536) == b"y" * 512              # reads stop at the end
    k.close(fd)
    got = img.read_bytes()
    assert got[2560:3072] == b"y" * 512
    assert got[3072:] == DATA[3072:] and got[:2560] == DATA[:2560]


@pytest.mark.parametrize("off,n", [(1, 512), (0, 1), (512, 100), (256, 256)])
def test_chr_alignment(k: Kernel, img: Path, off: int, n: int) -> None:
    k.etfs_register("/dev/r", img, EtfsType.CHR)
    fd = k.open("/dev/r", os.O_RDWR)
    with pytest.raises(OSError) as e:
        k.pread(fd, n, off)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        k.pwrite(fd, b"z" * n, off)
    assert e.value.errno == errno.EINVAL
    assert k.pread(fd, 1024, 512) == DATA[512:1536]
    assert k.pwrite(fd, b"Z" * 512, 1024) == 512
    k.close(fd)
    assert img.read_bytes()[1024:1536] == b"Z" * 512


def test_two_keys_one_file_independent(k: Kernel, img: Path) -> None:
    k.etfs_register("/dev/a", img, EtfsType.BLK, begin=0, size=4096)
    k.etfs_register("/dev/b", img, EtfsType.BLK, begin=4096, size=4096)
    a, b = k.stat("/dev/a"), k.stat("/dev/b")
    assert a.st_rdev != b.st_rdev
    fa, fb = k.open("/dev/a", os.O_RDWR), k.open("/dev/b", os.O_RDWR)
    assert k.pread(fa, 4, 0) == DATA[0:4] and k.pread(fb, 4, 0) == DATA[4096:4100]
    k.pwrite(fb, b"BBBB", 0)
    assert k.pread(fa, 4, 0) == DATA[0:4]
    k.close(fa)
    k.etfs_remove("/dev/a")                     # the other device lives on
    assert k.pread(fb, 4, 0) == b"BBBB"
    k.close(fb)


def test_mknod_reaches_existing_minor(k: Kernel, img: Path) -> None:
    k.etfs_register("/dev/d", img, EtfsType.BLK)
    rdev = k.stat("/dev/d").st_rdev
    k.mknod("/alias", stat.S_IFBLK | 0o600, rdev)
    k.mknod("/raw", stat.S_IFCHR | 0o600, rdev)
    fd = k.open("/alias", os.O_RDWR)
    assert k.pread(fd, 16, 100) == DATA[100:116]
    k.pwrite(fd, b"via-mknod", 0)
    k.close(fd)
    raw = k.open("/raw", os.O_RDONLY)
    assert k.pread(raw, 512, 0)[:9] == b"via-mknod"
    with pytest.raises(OSError) as e:
        k.pread(raw, 9, 0)
    assert e.value.errno == errno.EINVAL
    k.close(raw)
    assert img.read_bytes()[:9] == b"via-mknod"


def test_mknod_unknown_minor_enxio(k: Kernel) -> None:
    k.mknod("/nodev", stat.S_IFBLK | 0o600, os.makedev(RUMPBLK_DEVMAJOR, 99))
    with pytest.raises(OSError) as e:
        k.open("/nodev", os.O_RDONLY)
    assert e.value.errno == errno.ENXIO


def test_mknod_after_remove(k: Kernel, img: Path) -> None:
    k.etfs_register("/dev/d", img, EtfsType.BLK)
    rdev = k.stat("/dev/d").st_rdev
    k.mknod("/alias", stat.S_IFBLK | 0o600, rdev)
    fd = k.open("/alias", os.O_RDONLY)
    k.etfs_remove("/dev/d")
    with pytest.raises(OSError) as e:
        k.pread(fd, 1, 0)
    assert e.value.errno == errno.EIO
    k.close(fd)
    with pytest.raises(OSError) as e:
        k.open("/alias", os.O_RDONLY)
    assert e.value.errno == errno.ENXIO
    # Minors are not reused: a new registration is a new device.
    k.etfs_register("/dev/e", img, EtfsType.BLK)
    assert k.stat("/dev/e").st_rdev != rdev


def test_fsync_and_errors_memhost() -> None:
    mem = MemHost()
    mem.write_file("/disk", DATA)
    with Kernel(hypervisor=mem) as k:
        k.etfs_register("/dev/d", "/disk", EtfsType.BLK)
        fd = k.open("/dev/d", os.O_RDWR)
        n = mem.calls["fsync"]
        k.fsync(fd)
        assert mem.calls["fsync"] == n + 1
        mem.inject("pread", errno.EIO)
        with pytest.raises(OSError) as e:
            k.pread(fd, 10, 0)
        assert e.value.errno == errno.EIO
        mem.inject("pwrite", errno.ENOSPC)
        with pytest.raises(OSError) as e:
            k.pwrite(fd, b"x", 0)
        assert e.value.errno == errno.ENOSPC
        assert k.pread(fd, 4, 0) == DATA[:4]
        mem.truncate_file("/disk", 1000)          # shrank under the device
        with pytest.raises(OSError) as e:
            k.pread(fd, 512, 512)
        assert e.value.errno == errno.EIO
        k.close(fd)


def test_read_only_host_file_opens_read_only() -> None:
    mem = MemHost()
    mem.write_file("/disk", DATA)
    mem.inject("open", errno.EACCES)           # read-write refused: rumpblk falls back
    with Kernel(hypervisor=mem) as k:
        k.etfs_register("/dev/d", "/disk", EtfsType.BLK)
        fd = k.open("/dev/d", os.O_RDONLY)
        assert k.pread(fd, 4, 0) == DATA[:4]
        k.close(fd)
        with pytest.raises(OSError) as e:
            k.open("/dev/d", os.O_RDWR)
        assert e.value.errno == errno.EACCES
