"""Plain ``os`` calls from the host on a served kernel, and in-process <-> host coherence."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.fuse.conftest import ROOT

OLD_NS = 1_000_000_000_123_456_789


def _renameat2(src: Path, dst: Path, flags: int) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    at_fdcwd = -100
    if libc.renameat2(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(src))


RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


def test_mounted_root(mnt: Path) -> None:
    st = os.stat(mnt)
    assert stat.S_ISDIR(st.st_mode)
    assert os.listdir(mnt) == []
    with open("/proc/self/mountinfo") as f:
        line = next(ln for ln in f if f" {mnt} " in ln)
    assert "fuse.rumpfs" in line and " rumpfs " in line


def test_large_write_and_read(mnt: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 123)
    fd = os.open(mnt / "big", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        assert os.write(fd, data) == len(data)  # ≥ 128 KiB requests
        assert os.pread(fd, len(data), 0) == data
        assert os.pread(fd, 256 * 1024, 1_000_000) == data[1_000_000:1_262_144]
        assert os.pwrite(fd, b"XYZ", 10) == 3
        os.fsync(fd)
        assert os.fstat(fd).st_size == len(data)
    finally:
        os.close(fd)
    expected = data[:10] + b"XYZ" + data[13:]
    assert (mnt / "big").read_bytes() == expected


def test_write_visible_in_process(mnt: Path, fuse_kernel: Any) -> None:
    (mnt / "f").write_bytes(b"from the host")
    assert fuse_kernel.stat("/f").st_size == 13
    fd = fuse_kernel.open("/f", os.O_RDONLY)
    try:
        assert fuse_kernel.read(fd, 100) == b"from the host"
    finally:
        fuse_kernel.close(fd)


def test_in_process_change_visible_at_once(mnt: Path, fuse_kernel: Any) -> None:
    k = fuse_kernel
    assert not (mnt / "d").exists()  # a negative lookup the host could cache
    k.mkdir("/d")
    fd = k.open("/d/f", os.O_CREAT | os.O_WRONLY, 0o600)
    k.write(fd, b"one")
    k.close(fd)
    assert (mnt / "d" / "f").read_bytes() == b"one"
    assert stat.S_IMODE(os.stat(mnt / "d" / "f").st_mode) == 0o600
    # change content, size, mode and name in-process: the host sees each at once
    fd = k.open("/d/f", os.O_WRONLY | os.O_APPEND)
    k.write(fd, b" two")
    k.close(fd)
    assert (mnt / "d" / "f").read_bytes() == b"one two"
    k.chmod("/d/f", 0o640)
    assert stat.S_IMODE(os.stat(mnt / "d" / "f").st_mode) == 0o640
    k.rename("/d/f", "/d/g")
    assert os.listdir(mnt / "d") == ["g"]
    assert not (mnt / "d" / "f").exists()
    k.unlink("/d/g")
    k.rmdir("/d")
    assert not (mnt / "d").exists()


def test_host_open_file_sees_in_process_writes(mnt: Path, fuse_kernel: Any) -> None:
    (mnt / "f").write_bytes(b"aaaa")
    with open(mnt / "f", "rb", buffering=0) as f:
        assert f.read() == b"aaaa"
        fd = fuse_kernel.open("/f", os.O_WRONLY)
        fuse_kernel.pwrite(fd, b"bbbbbb", 2)
        fuse_kernel.close(fd)
        assert os.pread(f.fileno(), 100, 0) == b"aabbbbbb"


def test_rename(mnt: Path) -> None:
    (mnt / "a").write_bytes(b"a")
    (mnt / "b").write_bytes(b"b")
    os.rename(mnt / "a", mnt / "b")  # replaces
    assert (mnt / "b").read_bytes() == b"a"
    assert sorted(os.listdir(mnt)) == ["b"]
    os.mkdir(mnt / "d1")
    os.mkdir(mnt / "d2")
    (mnt / "d1" / "x").write_bytes(b"x")
    os.rename(mnt / "d1" / "x", mnt / "d2" / "y")
    assert os.listdir(mnt / "d1") == [] and os.listdir(mnt / "d2") == ["y"]
    with pytest.raises(OSError) as ei:
        os.rename(mnt / "d2", mnt / "d2" / "sub")
    assert ei.value.errno == errno.EINVAL
    os.mkdir(mnt / "d3")
    (mnt / "d3" / "z").write_bytes(b"")
    with pytest.raises(OSError) as ei:
        os.rename(mnt / "d2", mnt / "d3")
    assert ei.value.errno == errno.ENOTEMPTY


def test_rename_noreplace_and_exchange(mnt: Path) -> None:
    (mnt / "a").write_bytes(b"a")
    (mnt / "b").write_bytes(b"b")
    with pytest.raises(OSError) as ei:
        _renameat2(mnt / "a", mnt / "b", RENAME_NOREPLACE)
    assert ei.value.errno == errno.EEXIST
    _renameat2(mnt / "a", mnt / "c", RENAME_NOREPLACE)
    assert sorted(os.listdir(mnt)) == ["b", "c"]
    try:
        _renameat2(mnt / "b", mnt / "c", RENAME_EXCHANGE)
    except OSError as exc:  # a clean EINVAL is allowed
        assert exc.errno == errno.EINVAL
        assert (mnt / "b").read_bytes() == b"b"
    else:
        assert (mnt / "b").read_bytes() == b"a"
        assert (mnt / "c").read_bytes() == b"b"


def test_link_and_symlink(mnt: Path) -> None:
    (mnt / "f").write_bytes(b"data")
    os.link(mnt / "f", mnt / "h")
    assert os.stat(mnt / "f").st_nlink == 2
    assert os.stat(mnt / "f").st_ino == os.stat(mnt / "h").st_ino
    os.symlink("f", mnt / "s")
    assert os.readlink(mnt / "s") == "f"
    assert stat.S_ISLNK(os.lstat(mnt / "s").st_mode)
    assert (mnt / "s").read_bytes() == b"data"
    os.symlink("/nonexistent/x", mnt / "dangling")
    assert not (mnt / "dangling").exists()
    os.unlink(mnt / "f")
    assert os.stat(mnt / "h").st_nlink == 1
    assert not (mnt / "s").exists()


def test_mknod(mnt: Path) -> None:
    os.mkfifo(mnt / "fifo", 0o640)
    st = os.lstat(mnt / "fifo")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640
    os.mknod(mnt / "reg", 0o600 | stat.S_IFREG)
    assert stat.S_ISREG(os.lstat(mnt / "reg").st_mode)
    os.mknod(mnt / "sock", 0o600 | stat.S_IFSOCK)
    assert stat.S_ISSOCK(os.lstat(mnt / "sock").st_mode)
    if ROOT:
        os.mknod(mnt / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        st = os.lstat(mnt / "null")
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
        os.mknod(mnt / "blk", 0o600 | stat.S_IFBLK, os.makedev(7, 0))
        st = os.lstat(mnt / "blk")
        assert stat.S_ISBLK(st.st_mode) and st.st_rdev == os.makedev(7, 0)


def test_chmod_chown_utime(mnt: Path) -> None:
    f = mnt / "f"
    f.write_bytes(b"x")
    os.chmod(f, 0o4711)
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o4711
    if ROOT:
        os.chown(f, 1000, 1001)
        st = os.stat(f)
        assert (st.st_uid, st.st_gid) == (1000, 1001)
        os.chown(f, -1, 1002)
        assert (os.stat(f).st_uid, os.stat(f).st_gid) == (1000, 1002)
    os.utime(f, ns=(OLD_NS, OLD_NS + 5))
    st = os.stat(f)
    assert (st.st_atime_ns, st.st_mtime_ns) == (OLD_NS, OLD_NS + 5)
    os.utime(f, None)  # UTIME_NOW
    assert os.stat(f).st_mtime_ns > OLD_NS + 10**18 // 10
    os.utime(f, ns=(OLD_NS, OLD_NS))
    # UTIME_OMIT for atime: only mtime changes (os.utime cannot say OMIT; touch -m can)
    fd = os.open(f, os.O_RDONLY)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

        class Timespec(ctypes.Structure):
            _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

        utime_omit = (1 << 30) - 2
        times = (Timespec * 2)(Timespec(0, utime_omit), Timespec(1234, 5678))
        assert libc.futimens(fd, times) == 0
    finally:
        os.close(fd)
    st = os.stat(f)
    assert (st.st_atime_ns, st.st_mtime_ns) == (OLD_NS, 1234 * 10**9 + 5678)


def test_truncate(mnt: Path) -> None:
    f = mnt / "f"
    f.write_bytes(b"0123456789")
    os.truncate(f, 4)
    assert f.read_bytes() == b"0123"
    with open(f, "r+b") as fh:
        os.ftruncate(fh.fileno(), 2)
        assert os.fstat(fh.fileno()).st_size == 2
    os.truncate(f, 1 << 20)
    assert os.stat(f).st_size == 1 << 20
    assert f.read_bytes() == b"01" + bytes((1 << 20) - 2)
    with open(f, "wb"):  # O_TRUNC
        pass
    assert os.stat(f).st_size == 0


def test_errors(mnt: Path) -> None:
    os.mkdir(mnt / "d")
    (mnt / "d" / "f").write_bytes(b"")
    cases = [
        (errno.ENOENT, os.stat, mnt / "missing"),
        (errno.ENOTEMPTY, os.rmdir, mnt / "d"),
        (errno.EISDIR, os.unlink, mnt / "d"),
        (errno.ENOTDIR, os.rmdir, mnt / "d" / "f"),
        (errno.ENOTDIR, os.stat, mnt / "d" / "f" / "x"),
        (errno.EEXIST, os.mkdir, mnt / "d"),
        (errno.ENAMETOOLONG, os.stat, mnt / ("x" * 256)),
    ]
    for code, fn, arg in cases:
        with pytest.raises(OSError) as ei:
            fn(arg)
        assert ei.value.errno == code, (fn.__name__, arg)


def test_readdir_big_directory(mnt: Path, fuse_kernel: Any) -> None:
    names = {f"file-{i:05d}-{'x' * (i % 50)}" for i in range(3000)}
    os.mkdir(mnt / "big")
    for name in names:
        os.close(os.open(mnt / "big" / name, os.O_CREAT | os.O_WRONLY, 0o644))
    assert set(os.listdir(mnt / "big")) == names  # several readdir requests
    with os.scandir(mnt / "big") as it:
        entries = {e.name: e.inode() for e in it}
    assert set(entries) == names
    assert len(set(entries.values())) == len(names)
    assert set(fuse_kernel.listdir("/big")) == names


def test_readdir_with_concurrent_removal(mnt: Path) -> None:
    os.mkdir(mnt / "d")
    names = [f"n{i:04d}" for i in range(1500)]
    for name in names:
        (mnt / "d" / name).write_bytes(b"")
    seen = []
    with os.scandir(mnt / "d") as it:
        for i, entry in enumerate(it):
            seen.append(entry.name)
            if i == 10:  # remove entries not yet returned
                for name in names[-500:]:
                    os.unlink(mnt / "d" / name)
    assert len(seen) == len(set(seen))  # no duplicates across resumed readdirs
    assert set(names[:-500]) <= set(seen)


def test_statvfs(mnt: Path, fuse_kernel: Any) -> None:
    st = os.statvfs(mnt)
    ref = fuse_kernel.statvfs("/")
    assert st.f_namemax == 255
    assert st.f_bsize == ref.f_bsize
    assert st.f_blocks == ref.f_blocks
    assert st.f_files == ref.f_files


def test_xattrs_through_the_mount(mnt: Path) -> None:
    (mnt / "f").write_bytes(b"")
    os.setxattr(mnt / "f", "user.x", b"1")
    assert os.getxattr(mnt / "f", "user.x") == b"1"
    assert os.listxattr(mnt / "f") == ["user.x"]
    os.removexattr(mnt / "f", "user.x")
    with pytest.raises(OSError) as ei:
        os.getxattr(mnt / "f", "user.x")
    assert ei.value.errno == errno.ENODATA
    with pytest.raises(OSError) as ei:
        os.setxattr(mnt / "f", "bogus.x", b"1")
    assert ei.value.errno == errno.ENOTSUP


def test_unlinked_open_file_stays_usable(mnt: Path) -> None:
    fd = os.open(mnt / "tmp", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        os.write(fd, b"still here")
        os.unlink(mnt / "tmp")
        assert not (mnt / "tmp").exists()
        assert os.pread(fd, 100, 0) == b"still here"
        os.write(fd, b"!")
        assert os.fstat(fd).st_size == 11
    finally:
        os.close(fd)


def test_access_and_exec(mnt: Path) -> None:
    script = mnt / "run.sh"
    script.write_text("#!/bin/sh\necho ran\n")
    os.chmod(script, 0o755)
    assert os.access(script, os.X_OK)
    import subprocess

    out = subprocess.run([str(script)], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout == "ran\n"
    os.chmod(script, 0o644)
    assert not os.access(script, os.X_OK)


MMAP_CHILD = """
import mmap, sys
with open(sys.argv[1], "r+b") as f, mmap.mmap(f.fileno(), 8192) as m:
    m[0:5] = b"hello"
    m.flush()
    sys.stdout.buffer.write(m[8190:8192])
"""


def test_mmap_shared_writes(mnt: Path, fuse_kernel: Any) -> None:
    # In a child: the serving process itself must not fault on the mount's pages
    # (a page fault holds the GIL that the server thread needs).
    import subprocess
    import sys

    (mnt / "m").write_bytes(b"\0" * 8190 + b"zz")
    out = subprocess.run([sys.executable, "-c", MMAP_CHILD, str(mnt / "m")],
                         capture_output=True, check=True, timeout=60)
    assert out.stdout == b"zz"
    assert (mnt / "m").read_bytes()[:5] == b"hello"
    fd = fuse_kernel.open("/m", os.O_RDONLY)
    try:
        assert fuse_kernel.pread(fd, 5, 0) == b"hello"
    finally:
        fuse_kernel.close(fd)


def test_listing_a_big_renamed_directory(mnt: Path) -> None:
    """Plain READDIRs (the host's second and later ones, unless it was told to
    use READDIRPLUS): Linux 6.18 asks for more than it accepts; a reply that
    long once failed the listing with EIO."""
    d = mnt / "big"
    d.mkdir()
    for i in range(10000):
        os.close(os.open(d / f"m{i}", os.O_CREAT | os.O_WRONLY, 0o644))
    for i in range(10000):
        os.rename(d / f"m{i}", d / f"n{i}")
    for _ in range(2):
        assert sorted(os.listdir(d)) == sorted(f"n{i}" for i in range(10000))
