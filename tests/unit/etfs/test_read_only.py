"""Read-only etfs mappings (``read_only=True``): EROFS on every change, reads work."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from rumpfs import EtfsType, Kernel


@pytest.fixture
def host(tmp_path: Path) -> Path:
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "a.txt").write_bytes(b"alpha")
    (tmp_path / "tree" / "sub" / "b.txt").write_bytes(b"beta")
    (tmp_path / "file.txt").write_bytes(b"host bytes")
    (tmp_path / "disk.img").write_bytes(bytes(4096))
    return tmp_path


def _erofs(fn: Callable[[], object]) -> None:
    with pytest.raises(OSError) as ei:
        fn()
    assert ei.value.errno == errno.EROFS, ei.value


def test_read_only_dir_refuses_every_change(host: Path) -> None:
    before = sorted(str(p.relative_to(host)) for p in host.rglob("*"))
    with Kernel() as k:
        k.etfs_register("/data", host / "tree", EtfsType.DIR_SUBDIRS, read_only=True)
        assert k.path("/data/sub/b.txt").read_bytes() == b"beta"
        assert sorted(k.listdir("/data")) == ["a.txt", "sub"]
        _erofs(lambda: k.open("/data/new", os.O_CREAT | os.O_WRONLY, 0o644))
        _erofs(lambda: k.open("/data/a.txt", os.O_WRONLY))
        _erofs(lambda: k.open("/data/a.txt", os.O_RDWR))
        _erofs(lambda: k.mkdir("/data/d"))
        _erofs(lambda: k.unlink("/data/a.txt"))
        _erofs(lambda: k.rmdir("/data/sub"))
        _erofs(lambda: k.rename("/data/a.txt", "/data/c.txt"))
        _erofs(lambda: k.chmod("/data/a.txt", 0o600))
        _erofs(lambda: k.utime("/data/a.txt", (0, 0)))
        _erofs(lambda: k.truncate("/data/a.txt", 0))
        _erofs(lambda: k.symlink("a.txt", "/data/l"))
        _erofs(lambda: k.link("/data/a.txt", "/data/hard"))
        assert k.statvfs("/data").f_flag & os.ST_RDONLY
    after = sorted(str(p.relative_to(host)) for p in host.rglob("*"))
    assert after == before
    assert (host / "tree" / "a.txt").read_bytes() == b"alpha"


def test_read_only_file_and_device(host: Path) -> None:
    with Kernel() as k:
        k.etfs_register("/f", host / "file.txt", read_only=True)
        k.etfs_register("/dev/d0", host / "disk.img", EtfsType.BLK, read_only=True)
        k.etfs_register("/dev/r0", host / "disk.img", EtfsType.CHR, read_only=True)
        assert k.path("/f").read_bytes() == b"host bytes"
        _erofs(lambda: k.open("/f", os.O_WRONLY))
        _erofs(lambda: k.truncate("/f", 1))
        for dev in ("/dev/d0", "/dev/r0"):
            with pytest.raises(PermissionError):  # EACCES: a write-protected disk
                k.open(dev, os.O_RDWR)
            fd = k.open(dev, os.O_RDONLY)
            assert k.pread(fd, 512, 0) == bytes(512)
            k.close(fd)
    assert (host / "file.txt").read_bytes() == b"host bytes"


def test_writable_by_default(host: Path) -> None:
    with Kernel() as k:
        k.etfs_register("/f", host / "file.txt")
        k.path("/f").write_bytes(b"changed")
    assert (host / "file.txt").read_bytes() == b"changed"
