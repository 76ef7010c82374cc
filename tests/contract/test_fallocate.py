"""fallocate(2) and posix_fallocate, against the host's tmpfs: sizes, st_blocks,
contents, SEEK_DATA/SEEK_HOLE afterwards, and the errno of refused modes.

The host runs Linux's fallocate through libc (``tests.support.hostproc``);
the kernel's ``Process.fallocate`` has the same signature.
"""

from __future__ import annotations

import errno
import os
from typing import Any

import pytest

from tests.contract.helpers import CREAT, OLD_NS, RDONLY, RDWR, WRONLY, expect_errno

KEEP_SIZE, PUNCH_HOLE, COLLAPSE, ZERO, INSERT, UNSHARE = 0x01, 0x02, 0x08, 0x10, 0x20, 0x40


def layout(fs: Any, fd: int) -> tuple[int, int, list[tuple[str, int]]]:
    """(size, st_blocks, the data/hole runs SEEK_DATA/SEEK_HOLE report)."""
    st = fs.fstat(fd)
    runs = []
    pos = 0
    while pos < st.st_size:
        try:
            data = fs.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            assert e.errno == errno.ENXIO
            runs.append(("hole", pos))
            break
        if data > pos:
            runs.append(("hole", pos))
        hole = fs.lseek(fd, data, os.SEEK_HOLE)
        runs.append(("data", data))
        pos = hole
    return st.st_size, st.st_blocks, runs


@pytest.fixture
def fd(fs: Any) -> Any:
    fd = fs.open("/f", CREAT | RDWR, 0o644)
    yield fd
    fs.close(fd)


def test_allocate_grows_and_counts_blocks_but_reads_holes(fs: Any, fd: int) -> None:
    fs.fallocate(fd, 0, 4096, 8192)
    assert layout(fs, fd) == (12288, 16, [("hole", 0)])
    assert fs.pread(fd, 20000, 0) == bytes(12288)
    fs.pwrite(fd, b"x", 5000)                       # a written page becomes data
    assert layout(fs, fd) == (12288, 16, [("hole", 0), ("data", 4096), ("hole", 8192)])


def test_keep_size_allocates_past_the_end(fs: Any, fd: int) -> None:
    fs.write(fd, b"a" * 100)
    fs.fallocate(fd, KEEP_SIZE, 0, 3 * 4096 + 1)
    assert layout(fs, fd) == (100, 32, [("data", 0)])
    fs.ftruncate(fd, 20000)
    assert fs.fstat(fd).st_blocks == 32
    fs.ftruncate(fd, 5000)                          # shrinking frees past the end
    assert fs.fstat(fd).st_blocks == 16
    fs.ftruncate(fd, 0)
    assert fs.fstat(fd).st_blocks == 0


def test_punch_hole(fs: Any, fd: int) -> None:
    fs.write(fd, b"a" * 20000)
    fs.fallocate(fd, PUNCH_HOLE | KEEP_SIZE, 100, 9000)
    size, blocks, runs = layout(fs, fd)
    assert (size, blocks) == (20000, 32)
    assert runs == [("data", 0), ("hole", 4096), ("data", 8192)]
    assert fs.pread(fd, 20000, 0) == b"a" * 100 + bytes(9000) + b"a" * 10900
    fs.fallocate(fd, PUNCH_HOLE | KEEP_SIZE, 0, 1 << 20)
    assert layout(fs, fd) == (20000, 0, [("hole", 0)])
    fs.fallocate(fd, PUNCH_HOLE | KEEP_SIZE, 100000, 4096)   # past the end: fine
    assert fs.fstat(fd).st_size == 20000


def test_refused_modes(fs: Any, fd: int) -> None:
    fs.write(fd, b"a" * 8192)
    for mode in (PUNCH_HOLE, ZERO, ZERO | KEEP_SIZE, COLLAPSE, INSERT, COLLAPSE | KEEP_SIZE,
                 UNSHARE, 0x80, 0x100, PUNCH_HOLE | ZERO | KEEP_SIZE):
        expect_errno(errno.EOPNOTSUPP, fs.fallocate, fd, mode, 0, 4096)
    assert layout(fs, fd) == (8192, 16, [("data", 0)])


def test_argument_and_descriptor_errors(fs: Any, fd: int) -> None:
    expect_errno(errno.EINVAL, fs.fallocate, fd, 0, 0, 0)
    expect_errno(errno.EINVAL, fs.fallocate, fd, 0, -1, 10)
    expect_errno(errno.EFBIG, fs.fallocate, fd, 0, 1 << 62, 1 << 62)
    expect_errno(errno.EBADF, fs.fallocate, 999, 0, 0, 10)
    ro = fs.open("/f", RDONLY)
    try:
        expect_errno(errno.EBADF, fs.fallocate, ro, 0, 0, 10)
    finally:
        fs.close(ro)
    fs.mkdir("/d")
    d = fs.open("/d", RDONLY)
    try:
        expect_errno(errno.EBADF, fs.fallocate, d, 0, 0, 10)
    finally:
        fs.close(d)
    fs.mkfifo("/p")
    p = fs.open("/p", RDWR)
    try:
        expect_errno(errno.ESPIPE, fs.fallocate, p, 0, 0, 10)
    finally:
        fs.close(p)


def test_fallocate_stamps_times(fs: Any, fd: int) -> None:
    fs.utime("/f", ns=(OLD_NS, OLD_NS))
    fs.fallocate(fd, KEEP_SIZE, 0, 4096)
    assert fs.fstat(fd).st_mtime_ns != OLD_NS
    fs.utime("/f", ns=(OLD_NS, OLD_NS))
    fs.fallocate(fd, PUNCH_HOLE | KEEP_SIZE, 0, 4096)
    assert fs.fstat(fd).st_mtime_ns != OLD_NS


def test_fallocate_by_non_owner_clears_setuid(fs: Any, as_user: Any) -> None:
    fd = fs.open("/s", CREAT | WRONLY, 0o6777)
    fs.close(fd)
    fs.chmod("/s", 0o6777)
    other = as_user(2000, 2000)
    ofd = other.open("/s", WRONLY)
    try:
        other.fallocate(ofd, 0, 0, 4096)
    finally:
        other.close(ofd)
    assert fs.stat("/s").st_mode & 0o7777 == 0o777


def test_posix_fallocate(fs: Any, fd: int) -> None:
    fs.posix_fallocate(fd, 0, 10000)
    assert layout(fs, fd) == (10000, 24, [("hole", 0)])
    fs.posix_fallocate(fd, 0, 10)                    # never shrinks
    assert fs.fstat(fd).st_size == 10000
    expect_errno(errno.EINVAL, fs.posix_fallocate, fd, 0, 0)
    expect_errno(errno.EINVAL, fs.posix_fallocate, fd, -1, 10)
