"""Host faults under live mappings: errno only, never another exception; descriptor hygiene."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rumpfs import EtfsType, Kernel
from rumpfs.rumpuser.memhost import MemHost

DATA = b"0123456789" * 100


@pytest.fixture
def loaded(mem: MemHost, mk: Kernel) -> Kernel:
    mem.write_file("/f", DATA)
    mem.mkdir("/d/s", parents=True)
    mem.write_file("/d/s/a", DATA)
    mk.etfs_register("/f", "/f")
    mk.etfs_register("/w", "/f", begin=100, size=500)
    mk.etfs_register("/d", "/d", EtfsType.DIR_SUBDIRS)
    return mk


class TestMemHostFaults:
    @pytest.mark.parametrize("err", [errno.EIO, errno.ENOSPC, errno.EDQUOT])
    def test_write_errno_reaches_caller(self, mem: MemHost, loaded: Kernel, err: int) -> None:
        for path in ("/f", "/w", "/d/s/a"):
            fd = loaded.open(path, os.O_RDWR)
            mem.inject("pwrite", err)
            with pytest.raises(OSError) as e:
                loaded.pwrite(fd, b"x", 0)
            assert type(e.value) is not OSError or e.value.errno == err
            assert e.value.errno == err and e.value.filename is None
            assert loaded.pwrite(fd, b"y", 0) == 1       # consistent afterwards
            loaded.close(fd)

    def test_read_eio(self, mem: MemHost, loaded: Kernel) -> None:
        fd = loaded.open("/d/s/a", os.O_RDONLY)
        mem.inject("pread", errno.EIO, count=2)
        for _ in range(2):
            with pytest.raises(OSError) as e:
                loaded.read(fd, 10)
            assert e.value.errno == errno.EIO
        assert loaded.read(fd, 10) == DATA[:10]
        loaded.close(fd)

    def test_full_disk_short_then_enospc(self, mem: MemHost, loaded: Kernel) -> None:
        mem.capacity = mem._used() + 10
        fd = loaded.open("/f", os.O_WRONLY | os.O_APPEND)
        assert loaded.write(fd, b"z" * 50) == 10
        with pytest.raises(OSError) as e:
            loaded.write(fd, b"z")
        assert e.value.errno == errno.ENOSPC
        loaded.close(fd)
        assert loaded.stat("/f").st_size == len(DATA) + 10

    @pytest.mark.parametrize("op", ["openat", "fstatat", "listdir", "mkdirat", "unlinkat",
                                    "renameat", "fstat", "close", "open", "stat"])
    def test_any_host_call_failing(self, mem: MemHost, loaded: Kernel, op: str) -> None:
        k = loaded
        actions = [
            lambda: k.stat("/d/s/a"), lambda: k.listdir("/d/s"), lambda: k.mkdir("/d/n"),
            lambda: k.rename("/d/s/a", "/d/s/b"), lambda: k.stat("/f"),
            lambda: k.close(k.open("/d/s/c", os.O_CREAT | os.O_WRONLY)),
            lambda: k.close(k.open("/f", os.O_RDONLY)), lambda: k.unlink("/d/s/c"),
        ]
        for act in actions:
            mem.inject(op, errno.EIO, count=None)
            try:
                act()
            except OSError as e:
                assert isinstance(e.errno, int)
            mem.clear_faults()
        assert sorted(k.listdir("/")) == ["d", "f", "w"]
        k.etfs_remove("/d")
        k.etfs_remove("/f")
        k.etfs_remove("/w")
        assert mem.open_fds == 0

    def test_vanished(self, mem: MemHost, loaded: Kernel) -> None:
        fd = loaded.open("/f", os.O_RDWR)
        cfd = loaded.open("/d/s/a", os.O_RDWR)
        mem.vanish("/f")
        mem.vanish("/d/s/a")
        for f in (fd, cfd):
            for op in (lambda f=f: loaded.pread(f, 1, 0), lambda f=f: loaded.pwrite(f, b"x", 0),
                       lambda f=f: loaded.fstat(f)):
                with pytest.raises(OSError) as e:
                    op()
                assert e.value.errno == errno.EIO
        for path in ("/f", "/w", "/d/s/a"):
            with pytest.raises(OSError) as e:
                loaded.open(path, os.O_RDONLY)
            assert e.value.errno in (errno.ENOENT, errno.EIO) and e.value.filename == path
        loaded.close(fd)
        loaded.close(cfd)

    def test_vanished_directory(self, mem: MemHost, loaded: Kernel) -> None:
        loaded.chdir("/d/s")
        mem.vanish("/d/s/a")
        mem.unlink("/d/s")
        with pytest.raises(OSError) as e:
            loaded.listdir("/d/s")
        assert e.value.errno == errno.ENOENT
        loaded.chdir("/")

    def test_truncated_under_fixed_window(self, mem: MemHost, loaded: Kernel) -> None:
        fd = loaded.open("/w", os.O_RDONLY)
        mem.truncate_file("/f", 200)
        with pytest.raises(OSError) as e:
            loaded.pread(fd, 200, 0)
        assert e.value.errno == errno.EIO
        loaded.close(fd)


class TestRealHostFaults:
    def test_removed(self, k: Kernel, host: Path) -> None:
        f = host / "f"
        f.write_bytes(DATA)
        k.etfs_register("/f", f, begin=0, size=100)
        fd = k.open("/f", os.O_RDWR)
        f.unlink()
        for op in (lambda: k.read(fd, 1), lambda: k.write(fd, b"1")):
            with pytest.raises(OSError) as e:
                op()
            assert e.value.errno in (errno.EIO, errno.ENOENT)
        k.close(fd)
        with pytest.raises(OSError) as e:
            k.stat("/f")
        assert e.value.errno in (errno.EIO, errno.ENOENT)

    def test_truncated(self, k: Kernel, host: Path) -> None:
        f = host / "f"
        f.write_bytes(DATA)
        k.etfs_register("/f", f, begin=0, size=1000)
        k.etfs_register("/b", f, EtfsType.BLK, size=512)
        fd, bfd = k.open("/f", os.O_RDONLY), k.open("/b", os.O_RDONLY)
        os.truncate(f, 10)
        for op in (lambda: k.pread(fd, 100, 0), lambda: k.pread(bfd, 512, 0)):
            with pytest.raises(OSError) as e:
                op()
            assert e.value.errno == errno.EIO
        k.close(fd)
        k.close(bfd)

    def test_chmod_000_unreadable(self, host: Path) -> None:
        """As an unprivileged host user (a child process), chmod 000 under a live
        mapping gives EACCES/EIO/ENOENT, never another exception."""
        if os.geteuid() != 0:
            pytest.skip("needs root to drop to nobody")
        os.chmod(host, 0o777)
        f = host / "f"
        f.write_bytes(DATA)
        os.chown(f, 65534, 65534)
        src = Path(__file__).resolve().parents[3] / "src"
        code = f"""
import errno, os, sys
sys.path.insert(0, {str(src)!r})
from rumpfs import Kernel, EtfsType
k = Kernel()
os.setgid(65534); os.setuid(65534)
k.etfs_register("/f", {str(f)!r}, size=100)
fd = k.open("/f", os.O_RDONLY)
assert k.pread(fd, 3, 0) == b"012"
k.close(fd)
os.chmod({str(f)!r}, 0)
try:
    k.open("/f", os.O_RDONLY)
except OSError as e:
    assert e.errno in (errno.EACCES, errno.EIO, errno.ENOENT), e.errno
    print("ok", e.errno)
else:
    raise SystemExit("opened")
k.shutdown()
"""
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=60, check=False)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("ok")


def _nfds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_descriptor_hygiene(host: Path) -> None:
    f = host / "f"
    f.write_bytes(DATA)
    d = host / "d"
    (d / "s").mkdir(parents=True)
    (d / "s" / "a").write_bytes(DATA)
    with Kernel() as k:
        before = _nfds()
        types = [EtfsType.REG, EtfsType.BLK, EtfsType.CHR, EtfsType.DIR_SUBDIRS]
        for i in range(2000):
            t = types[i % len(types)]
            if t is EtfsType.DIR_SUBDIRS:
                k.etfs_register("/m", d, t)
                fd = k.open("/m/s/a", os.O_RDONLY)
                assert k.read(fd, 10) == DATA[:10]
                if i % 8 == 3:
                    k.etfs_remove("/m")         # removed with the descriptor still open
                    k.close(fd)
                    continue
            else:
                k.etfs_register("/m", f, t, size=512)
                fd = k.open("/m", os.O_RDWR if i % 2 else os.O_RDONLY)
                assert k.read(fd, 512) == DATA[:512]
            k.close(fd)
            k.etfs_remove("/m")
        assert _nfds() == before
    assert _nfds() <= before
