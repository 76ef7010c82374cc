"""etfs REG windows: exact host bytes, fixed ends, live size, truncate, fsync."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from rumpfs import Kernel
from rumpfs.rumpuser.memhost import MemHost

DATA = bytes(range(256)) * 16          # 4096 bytes


@pytest.fixture
def f(host: Path) -> Path:
    p = host / "img"
    p.write_bytes(DATA)
    return p


class TestFixedWindow:
    def test_reads_exact_bytes(self, k: Kernel, f: Path) -> None:
        k.etfs_register("/w", f, begin=100, size=300)
        fd = k.open("/w", os.O_RDONLY)
        assert k.read(fd, 1000) == DATA[100:400]
        assert k.read(fd, 10) == b""
        assert k.pread(fd, 50, 250) == DATA[350:400]
        assert k.pread(fd, 10, 300) == b""
        assert k.pread(fd, 10, 10**12) == b""
        assert k.lseek(fd, 0, os.SEEK_END) == 300
        k.close(fd)
        assert k.stat("/w").st_size == 300
        with k.open_file("/w", "rb") as fh:
            assert fh.read() == DATA[100:400]

    def test_writes_land_exactly(self, k: Kernel, f: Path) -> None:
        k.etfs_register("/w", f, begin=100, size=300)
        fd = k.open("/w", os.O_RDWR)
        assert k.pwrite(fd, b"ABC", 0) == 3
        assert k.pwrite(fd, b"XYZ", 297) == 3
        k.close(fd)
        want = bytearray(DATA)
        want[100:103] = b"ABC"
        want[397:400] = b"XYZ"
        assert f.read_bytes() == bytes(want)

    def test_write_at_or_past_end_enospc(self, k: Kernel, f: Path) -> None:
        k.etfs_register("/w", f, begin=100, size=300)
        fd = k.open("/w", os.O_WRONLY)
        for off in (300, 301, 10**9):
            with pytest.raises(OSError) as e:
                k.pwrite(fd, b"!", off)
            assert e.value.errno == errno.ENOSPC
        k.lseek(fd, 300, os.SEEK_SET)
        with pytest.raises(OSError) as e:
            k.write(fd, b"!")
        assert e.value.errno == errno.ENOSPC
        k.close(fd)
        assert f.read_bytes() == DATA

    def test_straddling_write_is_short(self, k: Kernel, f: Path) -> None:
        k.etfs_register("/w", f, begin=100, size=300)
        fd = k.open("/w", os.O_WRONLY)
        assert k.pwrite(fd, b"#" * 50, 280) == 20
        k.lseek(fd, 290, os.SEEK_SET)
        assert k.write(fd, b"@" * 50) == 10
        assert k.lseek(fd, 0, os.SEEK_CUR) == 300
        k.close(fd)
        got = f.read_bytes()
        assert got[380:390] == b"#" * 10 and got[390:400] == b"@" * 10
        assert got[400:] == DATA[400:] and got[:380] == DATA[:380]
        assert len(got) == len(DATA)

    def test_append_to_fixed_window(self, k: Kernel, f: Path) -> None:
        k.etfs_register("/w", f, begin=0, size=10)
        fd = k.open("/w", os.O_WRONLY | os.O_APPEND)
        with pytest.raises(OSError) as e:
            k.write(fd, b"x")
        assert e.value.errno == errno.ENOSPC
        k.close(fd)
        assert f.read_bytes() == DATA

    def test_truncate_einval(self, k: Kernel, f: Path) -> None:
        k.etfs_register("/w", f, begin=0, size=300)
        with pytest.raises(OSError) as e:
            k.truncate("/w", 10)
        assert e.value.errno == errno.EINVAL and e.value.filename == "/w"
        fd = k.open("/w", os.O_RDWR)
        with pytest.raises(OSError) as e:
            k.ftruncate(fd, 0)
        assert e.value.errno == errno.EINVAL
        with pytest.raises(OSError) as e:
            k.open("/w", os.O_WRONLY | os.O_TRUNC)
        assert e.value.errno == errno.EINVAL
        k.close(fd)
        assert f.read_bytes() == DATA

    def test_begin_at_end_is_empty(self, k: Kernel, f: Path) -> None:
        k.etfs_register("/w", f, begin=4096, size=0)
        fd = k.open("/w", os.O_RDWR)
        assert k.read(fd, 10) == b""
        with pytest.raises(OSError) as e:
            k.write(fd, b"x")
        assert e.value.errno == errno.ENOSPC
        k.close(fd)
        assert f.read_bytes() == DATA


class TestLiveWindow:
    def test_whole_file(self, k: Kernel, f: Path) -> None:
        k.etfs_register("/w", f)
        assert k.stat("/w").st_size == 4096
        fd = k.open("/w", os.O_RDWR)
        assert k.read(fd, 5000) == DATA
        assert k.pwrite(fd, b"tail", 4096) == 4
        assert k.fstat(fd).st_size == 4100
        assert k.stat("/w").st_size == 4100
        assert f.read_bytes() == DATA + b"tail"
        k.close(fd)

    def test_follows_host_growth(self, k: Kernel, f: Path) -> None:
        k.etfs_register("/w", f, begin=4000)
        assert k.stat("/w").st_size == 96
        with f.open("ab") as fh:
            fh.write(b"more")
        assert k.stat("/w").st_size == 100
        fd = k.open("/w", os.O_RDONLY)
        assert k.read(fd, 1000) == DATA[4000:] + b"more"
        k.close(fd)

    def test_append_at_host_end(self, k: Kernel, f: Path) -> None:
        k.etfs_register("/w", f, begin=10)
        fd = k.open("/w", os.O_WRONLY | os.O_APPEND)
        assert k.write(fd, b"end") == 3
        k.close(fd)
        assert f.read_bytes() == DATA + b"end"

    def test_truncate_acts_on_host(self, k: Kernel, f: Path) -> None:
        k.etfs_register("/w", f)
        k.truncate("/w", 10)
        assert f.read_bytes() == DATA[:10]
        fd = k.open("/w", os.O_RDWR)
        k.ftruncate(fd, 20)
        assert f.read_bytes() == DATA[:10] + bytes(10)
        k.close(fd)
        k.close(k.open("/w", os.O_WRONLY | os.O_TRUNC))
        assert f.read_bytes() == b""
        assert k.stat("/w").st_size == 0

    def test_truncate_with_begin_keeps_head(self, k: Kernel, f: Path) -> None:
        k.etfs_register("/w", f, begin=100)
        k.truncate("/w", 5)
        assert f.read_bytes() == DATA[:105]
        assert k.stat("/w").st_size == 5

    def test_open_rdwr_after_rdonly(self, k: Kernel, f: Path) -> None:
        # NetBSD's bug: an O_RDWR open while an O_RDONLY one is active got no write fd.
        k.etfs_register("/w", f)
        r = k.open("/w", os.O_RDONLY)
        w = k.open("/w", os.O_RDWR)
        assert k.pwrite(w, b"Q", 0) == 1
        assert k.pread(r, 1, 0) == b"Q"
        with pytest.raises(OSError) as e:
            k.pwrite(r, b"x", 0)
        assert e.value.errno == errno.EBADF
        k.close(r)
        k.close(w)


class TestAttributes:
    def test_stat_shows_host(self, k: Kernel, f: Path) -> None:
        os.chmod(f, 0o640)
        os.utime(f, ns=(1_000_000_123, 2_000_000_456))
        k.etfs_register("/w", f, begin=1, size=2)
        s = k.stat("/w")
        assert s.st_mode == 0o100640 and s.st_size == 2 and s.st_nlink == 1
        assert s.st_mtime_ns == 2_000_000_456 and s.st_atime_ns == 1_000_000_123
        assert s.st_ino == os.stat(f).st_ino

    def test_chmod_utime_act_on_host(self, k: Kernel, f: Path) -> None:
        k.etfs_register("/w", f)
        k.chmod("/w", 0o600)
        k.utime("/w", ns=(5_000_000_000, 6_000_000_000))
        hs = os.stat(f)
        assert hs.st_mode & 0o7777 == 0o600 and hs.st_mtime_ns == 6_000_000_000

    def test_permissions_from_host_mode(self, k: Kernel, f: Path) -> None:
        os.chmod(f, 0o600)
        k.etfs_register("/w", f)
        alice = k.process(uid=1000, gid=1000)
        with pytest.raises(PermissionError):
            alice.open("/w", os.O_RDONLY)


class TestFsync:
    def test_fsync_reaches_host(self, mem: MemHost, mk: Kernel) -> None:
        mem.write_file("/img", DATA)
        mk.etfs_register("/w", "/img", begin=0, size=100)
        fd = mk.open("/w", os.O_RDWR)
        before = mem.calls["fsync"]
        mk.write(fd, b"x")
        mk.fsync(fd)
        mk.fdatasync(fd)
        assert mem.calls["fsync"] == before + 2
        mk.close(fd)

    def test_fsync_error_passes(self, mem: MemHost, mk: Kernel) -> None:
        mem.write_file("/img", DATA)
        mk.etfs_register("/w", "/img")
        fd = mk.open("/w", os.O_RDWR)
        mem.inject("fsync", errno.EIO)
        with pytest.raises(OSError) as e:
            mk.fsync(fd)
        assert e.value.errno == errno.EIO
        mk.fsync(fd)
        mk.close(fd)

    def test_real_host_fsync(self, k: Kernel, f: Path) -> None:
        k.etfs_register("/w", f)
        fd = k.open("/w", os.O_WRONLY)
        k.write(fd, b"z")
        k.fsync(fd)
        k.close(fd)
        assert f.read_bytes()[:1] == b"z"


def test_nothing_beyond_window_ever_written(mem: MemHost, mk: Kernel) -> None:
    """Random writes through a fixed window never change a host byte outside it."""
    import random

    rnd = random.Random(7)
    mem.write_file("/img", DATA)
    mk.etfs_register("/w", "/img", begin=1000, size=1000)
    fd = mk.open("/w", os.O_RDWR)
    model = bytearray(DATA)
    for _ in range(300):
        off = rnd.randrange(0, 1200)
        data = bytes([rnd.randrange(256)]) * rnd.randrange(1, 300)
        try:
            n = mk.pwrite(fd, data, off)
        except OSError as e:
            assert e.errno == errno.ENOSPC and off >= 1000
            continue
        assert n == min(len(data), 1000 - off)
        model[1000 + off:1000 + off + n] = data[:n]
    mk.close(fd)
    got = mem.read_file("/img")
    assert got == bytes(model)
    assert got[:1000] == DATA[:1000] and got[2000:] == DATA[2000:]
