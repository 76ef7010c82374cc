"""The os-like system calls, as root: every case runs on the host os and on rumpfs.

The host (Linux, a tmpfs in a chroot) is the reference: docs/api.md promises
Linux's semantics and errno values.  Values that are inherently host-specific
(st_ino, st_dev, st_blksize, st_blocks, a directory's st_size) are only ever
compared for equality between two objects of the same implementation.
"""

from __future__ import annotations

import errno
import os
import pathlib
import stat
from typing import Any

import pytest

from tests.contract.helpers import (
    APPEND,
    CREAT,
    DIRECTORY,
    EXCL,
    NOFOLLOW,
    OLD_NS,
    RDONLY,
    RDWR,
    TRUNC,
    WRONLY,
    age,
    exists,
    expect_errno,
    mkfile,
    mode_of,
    readfile,
)

# -- open ------------------------------------------------------------------------------------


def test_open_creat_makes_regular_file(fs: Any) -> None:
    fd = fs.open("/f", CREAT | WRONLY, 0o666)
    fs.close(fd)
    st = fs.stat("/f")
    assert stat.S_ISREG(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o644
    assert st.st_size == 0
    assert st.st_nlink == 1
    assert (st.st_uid, st.st_gid) == (0, 0)


def test_open_missing_without_creat_is_enoent(fs: Any) -> None:
    expect_errno(errno.ENOENT, fs.open, "/nope", RDONLY, filename="/nope")


def test_open_creat_excl_on_existing_is_eexist(fs: Any) -> None:
    mkfile(fs, "/f")
    expect_errno(errno.EEXIST, fs.open, "/f", CREAT | EXCL | WRONLY, 0o644, filename="/f")


def test_open_creat_excl_on_dangling_symlink_is_eexist(fs: Any) -> None:
    fs.symlink("/target", "/link")
    expect_errno(errno.EEXIST, fs.open, "/link", CREAT | EXCL | WRONLY, 0o644, filename="/link")
    assert not exists(fs, "/target")


def test_open_creat_excl_on_directory_is_eexist(fs: Any) -> None:
    fs.mkdir("/d")
    expect_errno(errno.EEXIST, fs.open, "/d", CREAT | EXCL | WRONLY, 0o644, filename="/d")


def test_open_creat_through_dangling_symlink_creates_target(fs: Any) -> None:
    fs.symlink("target", "/link")
    fs.close(fs.open("/link", CREAT | WRONLY, 0o644))
    assert stat.S_ISREG(fs.lstat("/target").st_mode)
    assert stat.S_ISLNK(fs.lstat("/link").st_mode)


def test_open_creat_existing_keeps_mode_and_data(fs: Any) -> None:
    mkfile(fs, "/f", b"data", 0o600)
    fs.close(fs.open("/f", CREAT | WRONLY, 0o777))
    assert mode_of(fs, "/f") == 0o600
    assert readfile(fs, "/f") == b"data"


def test_open_trunc_empties_file(fs: Any) -> None:
    mkfile(fs, "/f", b"0123456789")
    fs.close(fs.open("/f", WRONLY | TRUNC))
    assert fs.stat("/f").st_size == 0


def test_open_rdonly_trunc_truncates_on_linux(fs: Any) -> None:
    mkfile(fs, "/f", b"0123456789")
    fd = fs.open("/f", RDONLY | TRUNC)
    assert fs.read(fd, 10) == b""
    fs.close(fd)
    assert fs.stat("/f").st_size == 0


def test_open_directory_flag_on_file_is_enotdir(fs: Any) -> None:
    mkfile(fs, "/f")
    expect_errno(errno.ENOTDIR, fs.open, "/f", RDONLY | DIRECTORY, filename="/f")


def test_open_directory_rdonly_is_allowed(fs: Any) -> None:
    fs.mkdir("/d")
    fd = fs.open("/d", RDONLY | DIRECTORY)
    assert stat.S_ISDIR(fs.fstat(fd).st_mode)
    fs.close(fd)
    fd = fs.open("/d", RDONLY)
    assert stat.S_ISDIR(fs.fstat(fd).st_mode)
    fs.close(fd)


@pytest.mark.parametrize("flags", [WRONLY, RDWR, WRONLY | TRUNC])
def test_open_directory_for_writing_is_eisdir(fs: Any, flags: int) -> None:
    fs.mkdir("/d")
    expect_errno(errno.EISDIR, fs.open, "/d", flags, filename="/d")


def test_open_creat_on_directory_is_eisdir(fs: Any) -> None:
    fs.mkdir("/d")
    expect_errno(errno.EISDIR, fs.open, "/d", CREAT | RDONLY, 0o644, filename="/d")


def test_open_creat_with_trailing_slash_is_eisdir(fs: Any) -> None:
    expect_errno(errno.EISDIR, fs.open, "/new/", CREAT | WRONLY, 0o644, filename="/new/")
    assert not exists(fs, "/new")


def test_open_file_with_trailing_slash_is_enotdir(fs: Any) -> None:
    mkfile(fs, "/f")
    expect_errno(errno.ENOTDIR, fs.open, "/f/", RDONLY, filename="/f/")


def test_open_nofollow_on_symlink_is_eloop(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.symlink("f", "/l")
    expect_errno(errno.ELOOP, fs.open, "/l", RDONLY | NOFOLLOW, filename="/l")


def test_open_nofollow_only_applies_to_last_component(fs: Any) -> None:
    fs.mkdir("/d")
    mkfile(fs, "/d/f", b"x")
    fs.symlink("d", "/ld")
    fd = fs.open("/ld/f", RDONLY | NOFOLLOW)
    assert fs.read(fd, 1) == b"x"
    fs.close(fd)


def test_open_creat_excl_nofollow_on_symlink_is_eexist(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.symlink("f", "/l")
    expect_errno(errno.EEXIST, fs.open, "/l", CREAT | EXCL | NOFOLLOW | WRONLY, 0o644)


def test_open_creat_in_missing_directory_is_enoent(fs: Any) -> None:
    expect_errno(errno.ENOENT, fs.open, "/no/f", CREAT | WRONLY, 0o644, filename="/no/f")


def test_open_creat_under_a_file_is_enotdir(fs: Any) -> None:
    mkfile(fs, "/f")
    expect_errno(errno.ENOTDIR, fs.open, "/f/g", CREAT | WRONLY, 0o644, filename="/f/g")


def test_open_read_on_directory_fd_is_eisdir(fs: Any) -> None:
    fs.mkdir("/d")
    fd = fs.open("/d", RDONLY)
    expect_errno(errno.EISDIR, fs.read, fd, 10, filename=None)
    fs.close(fd)


def test_open_creat_applies_umask_and_keeps_setuid(fs: Any) -> None:
    fs.close(fs.open("/a", CREAT | WRONLY, 0o777))
    fs.close(fs.open("/b", CREAT | WRONLY, 0o4755))
    fs.close(fs.open("/c", CREAT | WRONLY, 0o000))
    assert mode_of(fs, "/a") == 0o755
    assert mode_of(fs, "/b") == 0o4755
    assert mode_of(fs, "/c") == 0


def test_umask_changes_creation_mode(fs: Any) -> None:
    old = fs.umask(0o077)
    assert old == 0o022
    assert fs.umask(0o077) == 0o077
    fs.close(fs.open("/f", CREAT | WRONLY, 0o666))
    fs.mkdir("/d")
    assert mode_of(fs, "/f") == 0o600
    assert mode_of(fs, "/d") == 0o700


def test_open_returns_lowest_free_descriptor(fs: Any) -> None:
    mkfile(fs, "/f")
    a = fs.open("/f", RDONLY)
    b = fs.open("/f", RDONLY)
    assert b > a
    fs.close(a)
    c = fs.open("/f", RDONLY)
    assert c == a
    fs.close(b)
    fs.close(c)


def test_open_accepts_bytes_and_pathlike(fs: Any) -> None:
    mkfile(fs, "/f", b"abc")
    for path in (b"/f", pathlib.PurePosixPath("/f")):
        fd = fs.open(path, RDONLY)
        assert fs.read(fd, 3) == b"abc"
        fs.close(fd)


def test_open_creat_updates_parent_times(fs: Any) -> None:
    fs.mkdir("/d")
    age(fs, "/d")
    mkfile(fs, "/d/f")
    assert fs.stat("/d").st_mtime_ns != OLD_NS


# -- read / write / pread / pwrite / lseek ---------------------------------------------------


def test_write_then_read_advances_offset(fs: Any) -> None:
    fd = fs.open("/f", CREAT | RDWR, 0o644)
    assert fs.write(fd, b"hello world") == 11
    assert fs.lseek(fd, 0, os.SEEK_CUR) == 11
    assert fs.lseek(fd, 0, os.SEEK_SET) == 0
    assert fs.read(fd, 5) == b"hello"
    assert fs.read(fd, 100) == b" world"
    assert fs.read(fd, 100) == b""
    assert fs.read(fd, 0) == b""
    fs.close(fd)


def test_write_accepts_bytes_like(fs: Any) -> None:
    fd = fs.open("/f", CREAT | RDWR, 0o644)
    assert fs.write(fd, bytearray(b"ab")) == 2
    assert fs.write(fd, memoryview(b"cd")) == 2
    assert fs.pread(fd, 10, 0) == b"abcd"
    fs.close(fd)


def test_pread_pwrite_do_not_move_offset(fs: Any) -> None:
    fd = fs.open("/f", CREAT | RDWR, 0o644)
    fs.write(fd, b"abcdef")
    fs.lseek(fd, 2, os.SEEK_SET)
    assert fs.pread(fd, 3, 1) == b"bcd"
    assert fs.pwrite(fd, b"XY", 4) == 2
    assert fs.lseek(fd, 0, os.SEEK_CUR) == 2
    assert fs.read(fd, 10) == b"cdXY"
    fs.close(fd)


def test_pread_past_eof_is_empty(fs: Any) -> None:
    mkfile(fs, "/f", b"abc")
    fd = fs.open("/f", RDONLY)
    assert fs.pread(fd, 10, 3) == b""
    assert fs.pread(fd, 10, 1000) == b""
    assert fs.pread(fd, 10, 2) == b"c"
    fs.close(fd)


def test_pwrite_past_eof_leaves_zero_filled_hole(fs: Any) -> None:
    fd = fs.open("/f", CREAT | RDWR, 0o644)
    fs.write(fd, b"ab")
    assert fs.pwrite(fd, b"z", 10) == 1
    assert fs.fstat(fd).st_size == 11
    assert fs.pread(fd, 20, 0) == b"ab" + b"\0" * 8 + b"z"
    fs.close(fd)


def test_write_after_seek_past_eof_fills_zeros(fs: Any) -> None:
    fd = fs.open("/f", CREAT | RDWR, 0o644)
    assert fs.lseek(fd, 5, os.SEEK_SET) == 5
    assert fs.fstat(fd).st_size == 0
    fs.write(fd, b"x")
    assert fs.pread(fd, 10, 0) == b"\0\0\0\0\0x"
    fs.close(fd)


def test_large_write_and_read_back(fs: Any) -> None:
    data = bytes(range(256)) * 1024 + b"tail"
    fd = fs.open("/f", CREAT | RDWR, 0o644)
    assert fs.write(fd, data) == len(data)
    assert fs.fstat(fd).st_size == len(data)
    assert fs.pread(fd, len(data) + 10, 0) == data
    assert fs.pread(fd, 4, 65536 * 4 - 2) == data[65536 * 4 - 2 : 65536 * 4 + 2]
    fs.close(fd)


@pytest.mark.parametrize("offset", [-1, -4096])
def test_pread_pwrite_negative_offset_is_einval(fs: Any, offset: int) -> None:
    fd = fs.open("/f", CREAT | RDWR, 0o644)
    expect_errno(errno.EINVAL, fs.pread, fd, 1, offset)
    expect_errno(errno.EINVAL, fs.pwrite, fd, b"x", offset)
    fs.close(fd)


def test_lseek_whence(fs: Any) -> None:
    mkfile(fs, "/f", b"0123456789")
    fd = fs.open("/f", RDONLY)
    assert fs.lseek(fd, 3, os.SEEK_SET) == 3
    assert fs.lseek(fd, 2, os.SEEK_CUR) == 5
    assert fs.lseek(fd, -1, os.SEEK_CUR) == 4
    assert fs.lseek(fd, -2, os.SEEK_END) == 8
    assert fs.read(fd, 5) == b"89"
    assert fs.lseek(fd, 100, os.SEEK_END) == 110
    assert fs.read(fd, 5) == b""
    fs.close(fd)


def test_lseek_to_negative_position_is_einval(fs: Any) -> None:
    mkfile(fs, "/f", b"0123")
    fd = fs.open("/f", RDONLY)
    expect_errno(errno.EINVAL, fs.lseek, fd, -1, os.SEEK_SET)
    expect_errno(errno.EINVAL, fs.lseek, fd, -5, os.SEEK_END)
    expect_errno(errno.EINVAL, fs.lseek, fd, -1, os.SEEK_CUR)
    assert fs.lseek(fd, 0, os.SEEK_CUR) == 0
    fs.close(fd)


def test_lseek_bad_whence_is_einval(fs: Any) -> None:
    mkfile(fs, "/f", b"0123")
    fd = fs.open("/f", RDONLY)
    expect_errno(errno.EINVAL, fs.lseek, fd, 0, 99)
    fs.close(fd)


def test_seek_data_and_hole_on_dense_file(fs: Any) -> None:
    mkfile(fs, "/f", b"x" * 100)
    fd = fs.open("/f", RDONLY)
    assert fs.lseek(fd, 0, os.SEEK_DATA) == 0
    assert fs.lseek(fd, 10, os.SEEK_DATA) == 10
    assert fs.lseek(fd, 0, os.SEEK_HOLE) == 100
    assert fs.lseek(fd, 99, os.SEEK_HOLE) == 100
    fs.close(fd)


def test_seek_data_and_hole_at_or_past_eof_is_enxio(fs: Any) -> None:
    mkfile(fs, "/f", b"x" * 100)
    fd = fs.open("/f", RDONLY)
    for whence in (os.SEEK_DATA, os.SEEK_HOLE):
        expect_errno(errno.ENXIO, fs.lseek, fd, 100, whence)
        expect_errno(errno.ENXIO, fs.lseek, fd, 1000, whence)
    fs.close(fd)


def test_seek_data_on_empty_file_is_enxio(fs: Any) -> None:
    mkfile(fs, "/f")
    fd = fs.open("/f", RDONLY)
    expect_errno(errno.ENXIO, fs.lseek, fd, 0, os.SEEK_DATA)
    expect_errno(errno.ENXIO, fs.lseek, fd, 0, os.SEEK_HOLE)
    fs.close(fd)


def test_append_writes_go_to_end(fs: Any) -> None:
    mkfile(fs, "/f", b"abc")
    fd = fs.open("/f", WRONLY | APPEND)
    fs.lseek(fd, 0, os.SEEK_SET)
    assert fs.write(fd, b"de") == 2
    assert fs.lseek(fd, 0, os.SEEK_CUR) == 5
    fs.close(fd)
    assert readfile(fs, "/f") == b"abcde"


def test_append_sees_writes_through_other_descriptors(fs: Any) -> None:
    mkfile(fs, "/f")
    a = fs.open("/f", WRONLY | APPEND)
    b = fs.open("/f", WRONLY)
    fs.write(b, b"12345")
    fs.write(a, b"X")
    fs.close(a)
    fs.close(b)
    assert readfile(fs, "/f") == b"12345X"


def test_pwrite_with_append_appends_on_linux(fs: Any) -> None:
    mkfile(fs, "/f", b"abc")
    fd = fs.open("/f", RDWR | APPEND)
    assert fs.pwrite(fd, b"Z", 0) == 1
    assert fs.pread(fd, 10, 0) == b"abcZ"
    fs.close(fd)


def test_two_descriptors_have_independent_offsets(fs: Any) -> None:
    mkfile(fs, "/f", b"abcdef")
    a = fs.open("/f", RDONLY)
    b = fs.open("/f", RDONLY)
    assert fs.read(a, 2) == b"ab"
    assert fs.read(b, 3) == b"abc"
    assert fs.read(a, 2) == b"cd"
    fs.close(a)
    fs.close(b)


# -- EBADF -----------------------------------------------------------------------------------


def test_closed_descriptor_is_ebadf(fs: Any) -> None:
    mkfile(fs, "/f", b"abc")
    fd = fs.open("/f", RDWR)
    fs.close(fd)
    expect_errno(errno.EBADF, fs.read, fd, 1, filename=None)
    expect_errno(errno.EBADF, fs.write, fd, b"x")
    expect_errno(errno.EBADF, fs.pread, fd, 1, 0)
    expect_errno(errno.EBADF, fs.pwrite, fd, b"x", 0)
    expect_errno(errno.EBADF, fs.lseek, fd, 0, os.SEEK_SET)
    expect_errno(errno.EBADF, fs.fstat, fd)
    expect_errno(errno.EBADF, fs.fsync, fd)
    expect_errno(errno.EBADF, fs.ftruncate, fd, 0)
    expect_errno(errno.EBADF, fs.dup, fd)
    expect_errno(errno.EBADF, fs.close, fd)


@pytest.mark.parametrize("fd", [-1, 9999])
def test_never_opened_descriptor_is_ebadf(fs: Any, fd: int) -> None:
    expect_errno(errno.EBADF, fs.read, fd, 1)
    expect_errno(errno.EBADF, fs.fstat, fd)
    expect_errno(errno.EBADF, fs.close, fd)


def test_write_on_rdonly_descriptor_is_ebadf(fs: Any) -> None:
    mkfile(fs, "/f", b"abc")
    fd = fs.open("/f", RDONLY)
    expect_errno(errno.EBADF, fs.write, fd, b"x")
    expect_errno(errno.EBADF, fs.pwrite, fd, b"x", 0)
    fs.close(fd)
    assert readfile(fs, "/f") == b"abc"


def test_read_on_wronly_descriptor_is_ebadf(fs: Any) -> None:
    mkfile(fs, "/f", b"abc")
    fd = fs.open("/f", WRONLY)
    expect_errno(errno.EBADF, fs.read, fd, 1)
    expect_errno(errno.EBADF, fs.pread, fd, 1, 0)
    fs.close(fd)


def test_write_on_directory_descriptor_is_ebadf(fs: Any) -> None:
    fs.mkdir("/d")
    fd = fs.open("/d", RDONLY)
    expect_errno(errno.EBADF, fs.write, fd, b"x")
    fs.close(fd)


# -- dup -------------------------------------------------------------------------------------


def test_dup_shares_offset(fs: Any) -> None:
    mkfile(fs, "/f", b"abcdef")
    fd = fs.open("/f", RDONLY)
    fd2 = fs.dup(fd)
    assert fd2 != fd
    assert fs.read(fd, 2) == b"ab"
    assert fs.lseek(fd2, 0, os.SEEK_CUR) == 2
    assert fs.read(fd2, 2) == b"cd"
    fs.close(fd)
    assert fs.read(fd2, 10) == b"ef"
    fs.close(fd2)


def test_dup_returns_lowest_free_descriptor(fs: Any) -> None:
    mkfile(fs, "/f")
    a = fs.open("/f", RDONLY)
    b = fs.open("/f", RDONLY)
    fs.close(a)
    assert fs.dup(b) == a


def test_dup_keeps_access_mode(fs: Any) -> None:
    mkfile(fs, "/f", b"abc")
    fd = fs.open("/f", RDONLY)
    fd2 = fs.dup(fd)
    expect_errno(errno.EBADF, fs.write, fd2, b"x")
    fs.close(fd)
    fs.close(fd2)


# -- fsync / ftruncate / truncate ------------------------------------------------------------


def test_fsync_file_and_directory(fs: Any) -> None:
    fs.mkdir("/d")
    mkfile(fs, "/d/f", b"x")
    fd = fs.open("/d/f", RDWR)
    assert fs.fsync(fd) is None
    fs.close(fd)
    dfd = fs.open("/d", RDONLY)
    assert fs.fsync(dfd) is None
    fs.close(dfd)


def test_ftruncate_shrinks_and_grows(fs: Any) -> None:
    fd = fs.open("/f", CREAT | RDWR, 0o644)
    fs.write(fd, b"0123456789")
    fs.ftruncate(fd, 4)
    assert fs.fstat(fd).st_size == 4
    assert fs.pread(fd, 10, 0) == b"0123"
    fs.ftruncate(fd, 8)
    assert fs.pread(fd, 10, 0) == b"0123\0\0\0\0"
    assert fs.lseek(fd, 0, os.SEEK_CUR) == 10
    fs.close(fd)


def test_ftruncate_then_regrow_reads_zeros(fs: Any) -> None:
    fd = fs.open("/f", CREAT | RDWR, 0o644)
    fs.write(fd, b"abcdef")
    fs.ftruncate(fd, 2)
    fs.pwrite(fd, b"Z", 5)
    assert fs.pread(fd, 10, 0) == b"ab\0\0\0Z"
    fs.close(fd)


def test_ftruncate_on_rdonly_descriptor_is_einval(fs: Any) -> None:
    mkfile(fs, "/f", b"abc")
    fd = fs.open("/f", RDONLY)
    expect_errno(errno.EINVAL, fs.ftruncate, fd, 0)
    fs.close(fd)
    assert fs.stat("/f").st_size == 3


def test_ftruncate_on_directory_is_einval(fs: Any) -> None:
    fs.mkdir("/d")
    fd = fs.open("/d", RDONLY)
    expect_errno(errno.EINVAL, fs.ftruncate, fd, 0)
    fs.close(fd)


def test_ftruncate_negative_is_einval(fs: Any) -> None:
    fd = fs.open("/f", CREAT | RDWR, 0o644)
    expect_errno(errno.EINVAL, fs.ftruncate, fd, -1)
    fs.close(fd)


def test_truncate_by_path(fs: Any) -> None:
    mkfile(fs, "/f", b"0123456789")
    fs.truncate("/f", 3)
    assert readfile(fs, "/f") == b"012"
    fs.truncate("/f", 5)
    assert readfile(fs, "/f") == b"012\0\0"


def test_truncate_errors(fs: Any) -> None:
    fs.mkdir("/d")
    mkfile(fs, "/f")
    expect_errno(errno.EISDIR, fs.truncate, "/d", 0, filename="/d")
    expect_errno(errno.ENOENT, fs.truncate, "/nope", 0, filename="/nope")
    expect_errno(errno.EINVAL, fs.truncate, "/f", -1, filename="/f")
    expect_errno(errno.ENOTDIR, fs.truncate, "/f/", 0, filename="/f/")


def test_truncate_follows_symlink(fs: Any) -> None:
    mkfile(fs, "/f", b"abcdef")
    fs.symlink("f", "/l")
    fs.truncate("/l", 2)
    assert readfile(fs, "/f") == b"ab"


def test_truncate_changing_size_updates_mtime(fs: Any) -> None:
    mkfile(fs, "/f", b"abcdef")
    age(fs, "/f")
    fs.truncate("/f", 2)
    assert fs.stat("/f").st_mtime_ns != OLD_NS


def test_ftruncate_updates_mtime(fs: Any) -> None:
    mkfile(fs, "/f", b"abcdef")
    age(fs, "/f")
    fd = fs.open("/f", WRONLY)
    fs.ftruncate(fd, 1)
    fs.close(fd)
    assert fs.stat("/f").st_mtime_ns != OLD_NS


# -- stat ------------------------------------------------------------------------------------


def test_stat_file_fields(fs: Any) -> None:
    mkfile(fs, "/f", b"hello", 0o640)
    st = fs.stat("/f")
    assert stat.S_IFMT(st.st_mode) == stat.S_IFREG
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_size == 5
    assert st.st_nlink == 1
    assert (st.st_uid, st.st_gid) == (0, 0)
    assert st.st_rdev == 0
    assert isinstance(st, os.stat_result)
    assert st.st_mtime == st.st_mtime_ns / 1e9 or abs(st.st_mtime - st.st_mtime_ns / 1e9) < 1e-6


def test_fstat_matches_stat(fs: Any) -> None:
    mkfile(fs, "/f", b"abc")
    fd = fs.open("/f", RDONLY)
    a, b = fs.fstat(fd), fs.stat("/f")
    fs.close(fd)
    for attr in ("st_mode", "st_ino", "st_dev", "st_nlink", "st_uid", "st_gid", "st_size",
                 "st_mtime_ns", "st_ctime_ns"):
        assert getattr(a, attr) == getattr(b, attr), attr


def test_distinct_files_have_distinct_inodes(fs: Any) -> None:
    mkfile(fs, "/a")
    mkfile(fs, "/b")
    fs.mkdir("/d")
    inos = {fs.stat(p).st_ino for p in ("/a", "/b", "/d", "/")}
    assert len(inos) == 4
    assert fs.stat("/a").st_dev == fs.stat("/d").st_dev


def test_directory_nlink_counts_subdirectories(fs: Any) -> None:
    fs.mkdir("/d")
    assert fs.stat("/d").st_nlink == 2
    fs.mkdir("/d/a")
    fs.mkdir("/d/b")
    mkfile(fs, "/d/f")
    fs.symlink("a", "/d/l")
    assert fs.stat("/d").st_nlink == 4
    fs.rmdir("/d/a")
    assert fs.stat("/d").st_nlink == 3


def test_root_nlink_counts_subdirectories(fs: Any) -> None:
    before = fs.stat("/").st_nlink
    fs.mkdir("/x")
    assert fs.stat("/").st_nlink == before + 1


def test_new_directory_mode(fs: Any) -> None:
    fs.mkdir("/d")
    fs.mkdir("/e", 0o700)
    st = fs.stat("/d")
    assert stat.S_ISDIR(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o755
    assert mode_of(fs, "/e") == 0o700


def test_symlink_lstat_size_is_target_length(fs: Any) -> None:
    fs.symlink("some/where/else", "/l")
    st = fs.lstat("/l")
    assert stat.S_ISLNK(st.st_mode)
    assert st.st_size == len("some/where/else")
    assert stat.S_IMODE(st.st_mode) == 0o777


def test_symlink_size_counts_bytes_not_characters(fs: Any) -> None:
    fs.symlink("é", "/l")
    assert fs.lstat("/l").st_size == 2


def test_stat_follows_symlink_lstat_does_not(fs: Any) -> None:
    mkfile(fs, "/f", b"abc")
    fs.symlink("f", "/l")
    assert stat.S_ISREG(fs.stat("/l").st_mode)
    assert fs.stat("/l").st_ino == fs.stat("/f").st_ino
    assert stat.S_ISLNK(fs.lstat("/l").st_mode)
    assert stat.S_ISLNK(fs.stat("/l", follow_symlinks=False).st_mode)
    assert fs.lstat("/l").st_ino != fs.stat("/f").st_ino


def test_stat_missing_is_enoent(fs: Any) -> None:
    expect_errno(errno.ENOENT, fs.stat, "/missing", filename="/missing")
    expect_errno(errno.ENOENT, fs.lstat, "/missing", filename="/missing")
    expect_errno(errno.ENOENT, fs.stat, "/missing/x", filename="/missing/x")


def test_stat_bytes_path_keeps_bytes_filename(fs: Any) -> None:
    expect_errno(errno.ENOENT, fs.stat, b"/missing", filename=b"/missing")


def test_write_updates_mtime_and_ctime(fs: Any) -> None:
    mkfile(fs, "/f")
    age(fs, "/f")
    ctime = fs.stat("/f").st_ctime_ns
    fd = fs.open("/f", WRONLY)
    fs.write(fd, b"x")
    fs.close(fd)
    st = fs.stat("/f")
    assert st.st_mtime_ns != OLD_NS
    assert st.st_atime_ns == OLD_NS
    assert st.st_ctime_ns >= ctime


def test_read_does_not_change_mtime(fs: Any) -> None:
    mkfile(fs, "/f", b"abc")
    age(fs, "/f")
    assert readfile(fs, "/f") == b"abc"
    assert fs.stat("/f").st_mtime_ns == OLD_NS


def test_chmod_does_not_change_mtime(fs: Any) -> None:
    mkfile(fs, "/f", b"abc")
    age(fs, "/f")
    fs.chmod("/f", 0o600)
    st = fs.stat("/f")
    assert st.st_mtime_ns == OLD_NS
    assert st.st_atime_ns == OLD_NS


def test_unlink_updates_parent_mtime(fs: Any) -> None:
    fs.mkdir("/d")
    mkfile(fs, "/d/f")
    age(fs, "/d")
    fs.unlink("/d/f")
    assert fs.stat("/d").st_mtime_ns != OLD_NS


def test_rename_updates_both_parents_mtime(fs: Any) -> None:
    fs.mkdir("/a")
    fs.mkdir("/b")
    mkfile(fs, "/a/f")
    age(fs, "/a")
    age(fs, "/b")
    fs.rename("/a/f", "/b/f")
    assert fs.stat("/a").st_mtime_ns != OLD_NS
    assert fs.stat("/b").st_mtime_ns != OLD_NS


def test_rename_keeps_file_mtime(fs: Any) -> None:
    mkfile(fs, "/f")
    age(fs, "/f")
    fs.rename("/f", "/g")
    assert fs.stat("/g").st_mtime_ns == OLD_NS


def test_mkdir_updates_parent_mtime(fs: Any) -> None:
    fs.mkdir("/d")
    age(fs, "/d")
    fs.mkdir("/d/e")
    assert fs.stat("/d").st_mtime_ns != OLD_NS


def test_write_of_nothing_keeps_size(fs: Any) -> None:
    mkfile(fs, "/f", b"abc")
    fd = fs.open("/f", WRONLY)
    assert fs.write(fd, b"") == 0
    fs.close(fd)
    assert fs.stat("/f").st_size == 3


# -- mkdir / rmdir ---------------------------------------------------------------------------


def test_mkdir_existing_is_eexist(fs: Any) -> None:
    fs.mkdir("/d")
    mkfile(fs, "/f")
    expect_errno(errno.EEXIST, fs.mkdir, "/d", filename="/d")
    expect_errno(errno.EEXIST, fs.mkdir, "/f", filename="/f")
    expect_errno(errno.EEXIST, fs.mkdir, "/", filename="/")


def test_mkdir_on_dangling_symlink_is_eexist(fs: Any) -> None:
    fs.symlink("nowhere", "/l")
    expect_errno(errno.EEXIST, fs.mkdir, "/l", filename="/l")
    assert not exists(fs, "/nowhere")


def test_mkdir_in_missing_parent_is_enoent(fs: Any) -> None:
    expect_errno(errno.ENOENT, fs.mkdir, "/a/b", filename="/a/b")


def test_mkdir_under_file_is_enotdir(fs: Any) -> None:
    mkfile(fs, "/f")
    expect_errno(errno.ENOTDIR, fs.mkdir, "/f/d", filename="/f/d")


def test_mkdir_with_trailing_slashes(fs: Any) -> None:
    fs.mkdir("/d/")
    fs.mkdir("/e//")
    assert stat.S_ISDIR(fs.stat("/d").st_mode)
    assert stat.S_ISDIR(fs.stat("/e").st_mode)


def test_mkdir_keeps_sticky_drops_setgid(fs: Any) -> None:
    fs.mkdir("/s", 0o1777)
    fs.mkdir("/g", 0o2755)
    assert mode_of(fs, "/s") == 0o1755
    assert mode_of(fs, "/g") == 0o755


def test_mkdir_empty_path_is_enoent(fs: Any) -> None:
    expect_errno(errno.ENOENT, fs.mkdir, "", filename="")


def test_rmdir_removes_empty_directory(fs: Any) -> None:
    fs.mkdir("/d")
    fs.rmdir("/d")
    assert not exists(fs, "/d")
    assert fs.listdir("/") == []


def test_rmdir_nonempty_is_enotempty(fs: Any) -> None:
    fs.mkdir("/d")
    mkfile(fs, "/d/f")
    expect_errno(errno.ENOTEMPTY, fs.rmdir, "/d", filename="/d")
    fs.unlink("/d/f")
    fs.mkdir("/d/e")
    expect_errno(errno.ENOTEMPTY, fs.rmdir, "/d", filename="/d")


def test_rmdir_errors(fs: Any) -> None:
    mkfile(fs, "/f")
    expect_errno(errno.ENOENT, fs.rmdir, "/nope", filename="/nope")
    expect_errno(errno.ENOTDIR, fs.rmdir, "/f", filename="/f")
    expect_errno(errno.ENOTDIR, fs.rmdir, "/f/x", filename="/f/x")


def test_rmdir_dot_is_einval(fs: Any) -> None:
    fs.mkdir("/d")
    expect_errno(errno.EINVAL, fs.rmdir, "/d/.", filename="/d/.")
    assert exists(fs, "/d")


def test_rmdir_dotdot_is_enotempty(fs: Any) -> None:
    fs.mkdir("/d")
    expect_errno(errno.ENOTEMPTY, fs.rmdir, "/d/..", filename="/d/..")


def test_rmdir_root_is_ebusy(fs: Any) -> None:
    expect_errno(errno.EBUSY, fs.rmdir, "/", filename="/")


def test_rmdir_symlink_to_directory_is_enotdir(fs: Any) -> None:
    fs.mkdir("/d")
    fs.symlink("d", "/l")
    expect_errno(errno.ENOTDIR, fs.rmdir, "/l", filename="/l")
    expect_errno(errno.ENOTDIR, fs.rmdir, "/l/", filename="/l/")
    assert exists(fs, "/d")


def test_rmdir_trailing_slash(fs: Any) -> None:
    fs.mkdir("/d")
    fs.rmdir("/d/")
    assert not exists(fs, "/d")


def test_rmdir_cwd_then_getcwd_is_enoent(fs: Any) -> None:
    fs.mkdir("/d")
    fs.chdir("/d")
    fs.rmdir("/d")
    expect_errno(errno.ENOENT, fs.getcwd)
    assert fs.listdir(".") == []
    expect_errno(errno.ENOENT, fs.open, "new", CREAT | WRONLY, 0o644, filename="new")
    fs.chdir("/")


# -- unlink ----------------------------------------------------------------------------------


def test_unlink_removes_name(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.unlink("/f")
    assert not exists(fs, "/f")
    expect_errno(errno.ENOENT, fs.unlink, "/f", filename="/f")


def test_remove_is_unlink(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.remove("/f")
    assert not exists(fs, "/f")


def test_unlink_directory_is_eisdir(fs: Any) -> None:
    fs.mkdir("/d")
    expect_errno(errno.EISDIR, fs.unlink, "/d", filename="/d")
    expect_errno(errno.EISDIR, fs.unlink, "/d/", filename="/d/")
    assert exists(fs, "/d")


def test_unlink_file_with_trailing_slash_is_enotdir(fs: Any) -> None:
    mkfile(fs, "/f")
    expect_errno(errno.ENOTDIR, fs.unlink, "/f/", filename="/f/")
    assert exists(fs, "/f")


def test_unlink_under_file_is_enotdir(fs: Any) -> None:
    mkfile(fs, "/f")
    expect_errno(errno.ENOTDIR, fs.unlink, "/f/x", filename="/f/x")


def test_unlink_symlink_removes_link_only(fs: Any) -> None:
    mkfile(fs, "/f", b"x")
    fs.symlink("f", "/l")
    fs.unlink("/l")
    assert not exists(fs, "/l")
    assert readfile(fs, "/f") == b"x"


def test_unlink_symlink_to_dir(fs: Any) -> None:
    fs.mkdir("/d")
    fs.symlink("d", "/l")
    fs.unlink("/l")
    assert fs.listdir("/") == ["d"]


def test_unlinked_open_file_stays_usable(fs: Any) -> None:
    mkfile(fs, "/f", b"abc")
    fd = fs.open("/f", RDWR)
    fs.unlink("/f")
    assert not exists(fs, "/f")
    assert fs.fstat(fd).st_nlink == 0
    assert fs.read(fd, 10) == b"abc"
    assert fs.write(fd, b"def") == 3
    assert fs.pread(fd, 10, 0) == b"abcdef"
    fs.ftruncate(fd, 1)
    assert fs.fstat(fd).st_size == 1
    fs.close(fd)
    assert fs.listdir("/") == []


def test_unlink_one_hard_link_keeps_other(fs: Any) -> None:
    mkfile(fs, "/f", b"abc")
    fs.link("/f", "/g")
    fs.unlink("/f")
    assert readfile(fs, "/g") == b"abc"
    assert fs.stat("/g").st_nlink == 1


def test_recreate_after_unlink_is_new_file(fs: Any) -> None:
    mkfile(fs, "/f", b"old")
    fd = fs.open("/f", RDONLY)
    fs.unlink("/f")
    mkfile(fs, "/f", b"new")
    assert fs.read(fd, 10) == b"old"
    fs.close(fd)
    assert readfile(fs, "/f") == b"new"


# -- rename ----------------------------------------------------------------------------------


def test_rename_file_to_new_name(fs: Any) -> None:
    mkfile(fs, "/a", b"x")
    ino = fs.stat("/a").st_ino
    fs.rename("/a", "/b")
    assert not exists(fs, "/a")
    assert readfile(fs, "/b") == b"x"
    assert fs.stat("/b").st_ino == ino


def test_rename_file_over_file_replaces(fs: Any) -> None:
    mkfile(fs, "/a", b"A")
    mkfile(fs, "/b", b"B")
    fs.rename("/a", "/b")
    assert readfile(fs, "/b") == b"A"
    assert sorted(fs.listdir("/")) == ["b"]


def test_rename_over_open_file_keeps_old_contents_readable(fs: Any) -> None:
    mkfile(fs, "/a", b"A")
    mkfile(fs, "/b", b"B")
    fd = fs.open("/b", RDONLY)
    fs.rename("/a", "/b")
    assert fs.read(fd, 10) == b"B"
    assert fs.fstat(fd).st_nlink == 0
    fs.close(fd)


def test_replace_is_rename(fs: Any) -> None:
    mkfile(fs, "/a", b"A")
    mkfile(fs, "/b", b"B")
    fs.replace("/a", "/b")
    assert readfile(fs, "/b") == b"A"


def test_rename_across_directories(fs: Any) -> None:
    fs.mkdir("/a")
    fs.mkdir("/b")
    mkfile(fs, "/a/f", b"x")
    fs.rename("/a/f", "/b/g")
    assert fs.listdir("/a") == []
    assert fs.listdir("/b") == ["g"]


def test_rename_directory_over_empty_directory(fs: Any) -> None:
    fs.mkdir("/a")
    mkfile(fs, "/a/f")
    fs.mkdir("/b")
    fs.rename("/a", "/b")
    assert fs.listdir("/b") == ["f"]
    assert not exists(fs, "/a")
    assert fs.stat("/").st_nlink == 3


def test_rename_directory_over_nonempty_directory_is_enotempty(fs: Any) -> None:
    fs.mkdir("/a")
    fs.mkdir("/b")
    mkfile(fs, "/b/f")
    expect_errno(errno.ENOTEMPTY, fs.rename, "/a", "/b", filename="/a", filename2="/b")


def test_rename_file_over_directory_is_eisdir(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.mkdir("/d")
    expect_errno(errno.EISDIR, fs.rename, "/f", "/d", filename="/f", filename2="/d")


def test_rename_directory_over_file_is_enotdir(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.mkdir("/d")
    expect_errno(errno.ENOTDIR, fs.rename, "/d", "/f", filename="/d", filename2="/f")


def test_rename_directory_into_own_subtree_is_einval(fs: Any) -> None:
    fs.mkdir("/a")
    fs.mkdir("/a/b")
    expect_errno(errno.EINVAL, fs.rename, "/a", "/a/b/c", filename="/a", filename2="/a/b/c")
    expect_errno(errno.EINVAL, fs.rename, "/a", "/a/c")
    assert fs.listdir("/a") == ["b"]


def test_rename_directory_onto_its_ancestor_is_enotempty(fs: Any) -> None:
    fs.mkdir("/a")
    fs.mkdir("/a/b")
    expect_errno(errno.ENOTEMPTY, fs.rename, "/a/b", "/a")


def test_rename_to_itself_is_noop(fs: Any) -> None:
    mkfile(fs, "/f", b"x")
    fs.mkdir("/d")
    fs.rename("/f", "/f")
    fs.rename("/d", "/d")
    fs.rename("/d/../f", "/f")
    assert sorted(fs.listdir("/")) == ["d", "f"]
    assert readfile(fs, "/f") == b"x"


def test_rename_between_hard_links_is_noop(fs: Any) -> None:
    mkfile(fs, "/a", b"x")
    fs.link("/a", "/b")
    fs.rename("/a", "/b")
    assert sorted(fs.listdir("/")) == ["a", "b"]
    assert fs.stat("/a").st_nlink == 2


def test_rename_missing_source_is_enoent(fs: Any) -> None:
    expect_errno(errno.ENOENT, fs.rename, "/nope", "/x", filename="/nope", filename2="/x")


def test_rename_into_missing_directory_is_enoent(fs: Any) -> None:
    mkfile(fs, "/f")
    expect_errno(errno.ENOENT, fs.rename, "/f", "/no/f", filename="/f", filename2="/no/f")
    assert exists(fs, "/f")


def test_rename_directory_updates_dotdot_and_link_counts(fs: Any) -> None:
    fs.mkdir("/a")
    fs.mkdir("/b")
    fs.mkdir("/a/d")
    assert fs.stat("/a").st_nlink == 3
    fs.rename("/a/d", "/b/d")
    assert fs.stat("/a").st_nlink == 2
    assert fs.stat("/b").st_nlink == 3
    assert fs.stat("/b/d/..").st_ino == fs.stat("/b").st_ino


def test_rename_directory_over_empty_dir_in_other_parent_link_counts(fs: Any) -> None:
    fs.mkdir("/a")
    fs.mkdir("/b")
    fs.mkdir("/a/d")
    fs.mkdir("/b/e")
    fs.rename("/a/d", "/b/e")
    assert fs.stat("/a").st_nlink == 2
    assert fs.stat("/b").st_nlink == 3
    assert fs.listdir("/b") == ["e"]


def test_rename_symlink_renames_link(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.symlink("f", "/l")
    fs.rename("/l", "/m")
    assert fs.readlink("/m") == "f"
    assert exists(fs, "/f")


def test_rename_file_with_trailing_slash_is_enotdir(fs: Any) -> None:
    mkfile(fs, "/f")
    expect_errno(errno.ENOTDIR, fs.rename, "/f/", "/g", filename="/f/", filename2="/g")
    expect_errno(errno.ENOTDIR, fs.rename, "/f", "/g/", filename="/f", filename2="/g/")


def test_rename_directory_with_trailing_slashes(fs: Any) -> None:
    fs.mkdir("/d")
    fs.rename("/d/", "/e/")
    assert fs.listdir("/") == ["e"]


def test_rename_root_is_ebusy(fs: Any) -> None:
    expect_errno(errno.EBUSY, fs.rename, "/", "/x")


def test_rename_dot_is_ebusy(fs: Any) -> None:
    fs.mkdir("/d")
    expect_errno(errno.EBUSY, fs.rename, "/d/.", "/e")


def test_rename_keeps_open_descriptor_working(fs: Any) -> None:
    mkfile(fs, "/f", b"abc")
    fd = fs.open("/f", RDWR)
    fs.rename("/f", "/g")
    fs.pwrite(fd, b"Z", 0)
    fs.close(fd)
    assert readfile(fs, "/g") == b"Zbc"


# -- link ------------------------------------------------------------------------------------


def test_link_shares_inode_and_counts(fs: Any) -> None:
    mkfile(fs, "/f", b"abc")
    fs.link("/f", "/g")
    assert fs.stat("/f").st_ino == fs.stat("/g").st_ino
    assert fs.stat("/f").st_nlink == 2
    fd = fs.open("/g", WRONLY | APPEND)
    fs.write(fd, b"d")
    fs.close(fd)
    assert readfile(fs, "/f") == b"abcd"


def test_link_directory_is_eperm(fs: Any) -> None:
    fs.mkdir("/d")
    expect_errno(errno.EPERM, fs.link, "/d", "/e", filename="/d", filename2="/e")


def test_link_existing_destination_is_eexist(fs: Any) -> None:
    mkfile(fs, "/f")
    mkfile(fs, "/g")
    fs.mkdir("/d")
    expect_errno(errno.EEXIST, fs.link, "/f", "/g", filename="/f", filename2="/g")
    expect_errno(errno.EEXIST, fs.link, "/f", "/d", filename="/f", filename2="/d")


def test_link_missing_source_is_enoent(fs: Any) -> None:
    expect_errno(errno.ENOENT, fs.link, "/nope", "/g", filename="/nope", filename2="/g")


def test_link_into_missing_directory_is_enoent(fs: Any) -> None:
    mkfile(fs, "/f")
    expect_errno(errno.ENOENT, fs.link, "/f", "/no/g", filename="/f", filename2="/no/g")


def test_link_by_default_links_the_symlink_itself_on_linux(fs: Any) -> None:
    # os.link(follow_symlinks=True) without dir_fd is link(2), which never follows on Linux
    mkfile(fs, "/f")
    fs.symlink("f", "/l")
    fs.link("/l", "/g")
    assert stat.S_ISLNK(fs.lstat("/g").st_mode)
    assert fs.lstat("/g").st_ino == fs.lstat("/l").st_ino


def test_link_with_dir_fd_follows_symlink(fs: Any) -> None:
    # with a dir_fd, os.link is linkat(AT_SYMLINK_FOLLOW)
    mkfile(fs, "/f")
    fs.symlink("f", "/l")
    dfd = fs.open("/", RDONLY)
    fs.link("l", "g", src_dir_fd=dfd, dst_dir_fd=dfd)
    fs.close(dfd)
    assert stat.S_ISREG(fs.lstat("/g").st_mode)
    assert fs.stat("/g").st_ino == fs.stat("/f").st_ino
    assert fs.stat("/f").st_nlink == 2


def test_link_nofollow_links_the_symlink(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.symlink("f", "/l")
    fs.link("/l", "/g", follow_symlinks=False)
    assert stat.S_ISLNK(fs.lstat("/g").st_mode)
    assert fs.lstat("/g").st_ino == fs.lstat("/l").st_ino
    assert fs.lstat("/l").st_nlink == 2


def test_link_updates_ctime_not_mtime(fs: Any) -> None:
    mkfile(fs, "/f")
    age(fs, "/f")
    fs.link("/f", "/g")
    assert fs.stat("/f").st_mtime_ns == OLD_NS


# -- symlink / readlink ----------------------------------------------------------------------


def test_readlink_returns_target(fs: Any) -> None:
    fs.symlink("../x/y", "/l")
    assert fs.readlink("/l") == "../x/y"
    assert fs.readlink(b"/l") == b"../x/y"
    assert fs.readlink(pathlib.PurePosixPath("/l")) == "../x/y"


def test_readlink_non_symlink_is_einval(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.mkdir("/d")
    expect_errno(errno.EINVAL, fs.readlink, "/f", filename="/f")
    expect_errno(errno.EINVAL, fs.readlink, "/d", filename="/d")


def test_readlink_missing_is_enoent(fs: Any) -> None:
    expect_errno(errno.ENOENT, fs.readlink, "/nope", filename="/nope")


def test_readlink_does_not_follow_last_component(fs: Any) -> None:
    fs.symlink("b", "/a")
    fs.symlink("c", "/b")
    assert fs.readlink("/a") == "b"


def test_symlink_existing_name_is_eexist(fs: Any) -> None:
    mkfile(fs, "/f")
    expect_errno(errno.EEXIST, fs.symlink, "x", "/f", filename="x", filename2="/f")


def test_symlink_empty_target_is_enoent(fs: Any) -> None:
    expect_errno(errno.ENOENT, fs.symlink, "", "/l")


def test_symlink_in_missing_directory_is_enoent(fs: Any) -> None:
    expect_errno(errno.ENOENT, fs.symlink, "x", "/no/l", filename="x", filename2="/no/l")


def test_symlink_relative_resolves_from_link_directory(fs: Any) -> None:
    fs.mkdir("/d")
    fs.mkdir("/e")
    mkfile(fs, "/e/f", b"rel")
    fs.symlink("../e/f", "/d/l")
    assert readfile(fs, "/d/l") == b"rel"


def test_symlink_absolute_resolves_in_namespace(fs: Any) -> None:
    fs.mkdir("/d")
    mkfile(fs, "/f", b"abs")
    fs.symlink("/f", "/d/l")
    assert readfile(fs, "/d/l") == b"abs"


def test_symlink_to_directory_in_middle_of_path(fs: Any) -> None:
    fs.mkdir("/d")
    mkfile(fs, "/d/f", b"mid")
    fs.symlink("/d", "/l")
    assert readfile(fs, "/l/f") == b"mid"
    assert fs.listdir("/l") == ["f"]


def test_dangling_symlink(fs: Any) -> None:
    fs.symlink("nowhere", "/l")
    expect_errno(errno.ENOENT, fs.stat, "/l", filename="/l")
    expect_errno(errno.ENOENT, fs.open, "/l", RDONLY, filename="/l")
    assert stat.S_ISLNK(fs.lstat("/l").st_mode)
    assert fs.access("/l", os.F_OK) is False


def test_symlink_loop_is_eloop(fs: Any) -> None:
    fs.symlink("b", "/a")
    fs.symlink("a", "/b")
    fs.symlink("self", "/self")
    expect_errno(errno.ELOOP, fs.stat, "/a", filename="/a")
    expect_errno(errno.ELOOP, fs.open, "/self", RDONLY, filename="/self")
    expect_errno(errno.ELOOP, fs.stat, "/a/x", filename="/a/x")


def _chain(fs: Any, n: int) -> str:
    """n symlinks /l1 -> /l0 ... each pointing at the previous; /l0 -> /f. Returns /l<n-1>."""
    mkfile(fs, "/f", b"end")
    fs.symlink("f", "/l0")
    for i in range(1, n):
        fs.symlink(f"l{i - 1}", f"/l{i}")
    return f"/l{n - 1}"


def test_forty_chained_symlinks_are_followed(fs: Any) -> None:
    last = _chain(fs, 40)
    assert readfile(fs, last) == b"end"
    assert stat.S_ISREG(fs.stat(last).st_mode)


def test_forty_one_chained_symlinks_is_eloop(fs: Any) -> None:
    last = _chain(fs, 41)
    expect_errno(errno.ELOOP, fs.stat, last, filename=last)
    expect_errno(errno.ELOOP, fs.open, last, RDONLY, filename=last)
    assert stat.S_ISLNK(fs.lstat(last).st_mode)


def test_symlinks_counted_across_path_components(fs: Any) -> None:
    # 21 links for the directory, then 20 more for the last component: 41 in one lookup
    fs.mkdir("/d")
    fs.symlink("d", "/a0")
    for i in range(1, 21):
        fs.symlink(f"a{i - 1}", f"/a{i}")
    mkfile(fs, "/d/f")
    fs.symlink("f", "/d/b0")
    for i in range(1, 20):
        fs.symlink(f"b{i - 1}", f"/d/b{i}")
    assert stat.S_ISREG(fs.stat("/a19/b19").st_mode)  # 20 + 20 = 40
    expect_errno(errno.ELOOP, fs.stat, "/a20/b19")


def test_trailing_slash_on_symlink_to_directory_follows(fs: Any) -> None:
    fs.mkdir("/d")
    fs.symlink("d", "/l")
    assert stat.S_ISLNK(fs.lstat("/l").st_mode)
    assert stat.S_ISDIR(fs.lstat("/l/").st_mode)
    assert fs.lstat("/l/").st_ino == fs.stat("/d").st_ino


def test_trailing_slash_on_symlink_to_file_is_enotdir(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.symlink("f", "/l")
    expect_errno(errno.ENOTDIR, fs.stat, "/l/", filename="/l/")
    expect_errno(errno.ENOTDIR, fs.lstat, "/l/", filename="/l/")


def test_symlink_target_max_length(fs: Any) -> None:
    fs.symlink("a" * 4095, "/ok")
    assert fs.readlink("/ok") == "a" * 4095
    expect_errno(errno.ENAMETOOLONG, fs.symlink, "a" * 4096, "/toolong")


def test_symlink_to_dotdot(fs: Any) -> None:
    fs.mkdir("/d")
    fs.mkdir("/d/e")
    fs.symlink("..", "/d/e/up")
    assert fs.stat("/d/e/up").st_ino == fs.stat("/d").st_ino


def test_dotdot_after_symlink_is_physical(fs: Any) -> None:
    fs.mkdir("/a")
    fs.mkdir("/a/b")
    fs.mkdir("/c")
    fs.symlink("/a/b", "/c/l")
    assert fs.stat("/c/l/..").st_ino == fs.stat("/a").st_ino


# -- namei -----------------------------------------------------------------------------------


def test_dot_and_dotdot(fs: Any) -> None:
    fs.mkdir("/d")
    fs.mkdir("/d/e")
    root = fs.stat("/").st_ino
    assert fs.stat("/.").st_ino == root
    assert fs.stat("/..").st_ino == root
    assert fs.stat("/../../..").st_ino == root
    assert fs.stat("/d/e/..").st_ino == fs.stat("/d").st_ino
    assert fs.stat("/d/./e/.").st_ino == fs.stat("/d/e").st_ino


def test_repeated_slashes(fs: Any) -> None:
    fs.mkdir("/d")
    mkfile(fs, "/d/f", b"x")
    assert readfile(fs, "//d///f") == b"x"
    assert fs.stat("///").st_ino == fs.stat("/").st_ino


def test_trailing_slash_on_file_is_enotdir(fs: Any) -> None:
    mkfile(fs, "/f")
    expect_errno(errno.ENOTDIR, fs.stat, "/f/", filename="/f/")
    expect_errno(errno.ENOTDIR, fs.stat, "/f/.", filename="/f/.")
    expect_errno(errno.ENOTDIR, fs.stat, "/f/..", filename="/f/..")
    expect_errno(errno.ENOTDIR, fs.stat, "/f/x", filename="/f/x")


def test_dotdot_through_missing_directory_is_enoent(fs: Any) -> None:
    expect_errno(errno.ENOENT, fs.stat, "/nope/..", filename="/nope/..")


@pytest.mark.parametrize("call", ["stat", "lstat", "open", "mkdir", "unlink", "rmdir",
                                  "readlink", "chdir", "listdir"])
def test_empty_path_is_enoent(fs: Any, call: str) -> None:
    args: tuple[Any, ...] = ("", RDONLY) if call == "open" else ("",)
    expect_errno(errno.ENOENT, getattr(fs, call), *args, filename="")


@pytest.mark.parametrize("call", ["stat", "open", "mkdir", "unlink", "listdir"])
def test_nul_in_path_is_valueerror(fs: Any, call: str) -> None:
    args: tuple[Any, ...] = ("/a\0b", RDONLY) if call == "open" else ("/a\0b",)
    with pytest.raises(ValueError):
        getattr(fs, call)(*args)


def test_name_of_255_bytes_is_fine(fs: Any) -> None:
    name = "/" + "n" * 255
    mkfile(fs, name, b"x")
    assert readfile(fs, name) == b"x"
    fs.mkdir("/" + "d" * 255)
    assert sorted(len(n) for n in fs.listdir("/")) == [255, 255]


def test_name_of_256_bytes_is_enametoolong(fs: Any) -> None:
    name = "/" + "n" * 256
    expect_errno(errno.ENAMETOOLONG, fs.open, name, CREAT | WRONLY, 0o644, filename=name)
    expect_errno(errno.ENAMETOOLONG, fs.stat, name, filename=name)
    expect_errno(errno.ENAMETOOLONG, fs.mkdir, name, filename=name)


def test_name_length_counts_utf8_bytes(fs: Any) -> None:
    name = "/" + "é" * 128  # 256 bytes
    expect_errno(errno.ENAMETOOLONG, fs.mkdir, name, filename=name)
    fs.mkdir("/" + "é" * 127 + "x")


def test_long_name_in_middle_component_is_enametoolong(fs: Any) -> None:
    path = "/" + "n" * 256 + "/x"
    expect_errno(errno.ENAMETOOLONG, fs.stat, path, filename=path)


def test_path_of_4095_bytes_is_fine(fs: Any) -> None:
    path = "/" + "./" * 2047
    assert len(path) == 4095
    assert fs.stat(path).st_ino == fs.stat("/").st_ino


def test_path_of_4096_bytes_is_enametoolong(fs: Any) -> None:
    path = "/" + "./" * 2047 + "."
    assert len(path) == 4096
    expect_errno(errno.ENAMETOOLONG, fs.stat, path, filename=path)
    expect_errno(errno.ENAMETOOLONG, fs.mkdir, path + "/x")


def test_relative_paths_use_cwd(fs: Any) -> None:
    fs.mkdir("/d")
    fs.chdir("/d")
    mkfile(fs, "f", b"rel")
    fs.mkdir("sub")
    assert sorted(fs.listdir("/d")) == ["f", "sub"]
    assert readfile(fs, "./f") == b"rel"
    assert readfile(fs, "sub/../f") == b"rel"
    assert readfile(fs, "../d/f") == b"rel"
    assert sorted(fs.listdir()) == ["f", "sub"]
    fs.chdir("/")


def test_non_ascii_names(fs: Any) -> None:
    mkfile(fs, "/übung", b"u")
    fs.mkdir("/日本")
    assert sorted(fs.listdir("/")) == sorted(["übung", "日本"])
    assert sorted(fs.listdir(b"/")) == sorted(["übung".encode(), "日本".encode()])
    assert readfile(fs, "/übung") == b"u"


# -- listdir / scandir -----------------------------------------------------------------------


def test_listdir_names(fs: Any) -> None:
    fs.mkdir("/d")
    for name in ("a", "b", "c"):
        mkfile(fs, f"/d/{name}")
    fs.mkdir("/d/sub")
    fs.symlink("a", "/d/l")
    assert sorted(fs.listdir("/d")) == ["a", "b", "c", "l", "sub"]
    assert fs.listdir("/d/sub") == []


def test_listdir_bytes(fs: Any) -> None:
    mkfile(fs, "/f")
    assert fs.listdir(b"/") == [b"f"]


def test_listdir_many_entries(fs: Any) -> None:
    fs.mkdir("/d")
    names = [f"file{i:03d}" for i in range(300)]
    for n in names:
        mkfile(fs, f"/d/{n}")
    assert sorted(fs.listdir("/d")) == names
    for n in names[::2]:
        fs.unlink(f"/d/{n}")
    assert sorted(fs.listdir("/d")) == names[1::2]


def test_listdir_errors(fs: Any) -> None:
    mkfile(fs, "/f")
    expect_errno(errno.ENOTDIR, fs.listdir, "/f", filename="/f")
    expect_errno(errno.ENOENT, fs.listdir, "/nope", filename="/nope")


def test_listdir_follows_symlink(fs: Any) -> None:
    fs.mkdir("/d")
    mkfile(fs, "/d/x")
    fs.symlink("d", "/l")
    assert fs.listdir("/l") == ["x"]


def test_scandir_entries(fs: Any) -> None:
    fs.mkdir("/d")
    mkfile(fs, "/d/f", b"abc")
    fs.mkdir("/d/sub")
    fs.symlink("sub", "/d/ls")
    fs.symlink("f", "/d/lf")
    fs.symlink("nowhere", "/d/dangling")
    with fs.scandir("/d") as it:
        entries = {e.name: e for e in it}
    assert set(entries) == {"f", "sub", "ls", "lf", "dangling"}
    f, sub, ls, lf, dangling = (entries[n] for n in ("f", "sub", "ls", "lf", "dangling"))
    assert f.path == "/d/f"
    assert (f.is_file(), f.is_dir(), f.is_symlink()) == (True, False, False)
    assert (sub.is_file(), sub.is_dir(), sub.is_symlink()) == (False, True, False)
    assert (ls.is_dir(), ls.is_dir(follow_symlinks=False), ls.is_symlink()) == (True, False, True)
    assert (lf.is_file(), lf.is_file(follow_symlinks=False)) == (True, False)
    assert (dangling.is_file(), dangling.is_dir(), dangling.is_symlink()) == (False, False, True)


def test_scandir_entry_stat(fs: Any) -> None:
    fs.mkdir("/d")
    mkfile(fs, "/d/f", b"abc")
    fs.symlink("f", "/d/l")
    fs.symlink("nowhere", "/d/dangling")
    with fs.scandir("/d") as it:
        entries = {e.name: e for e in it}
    assert entries["f"].stat().st_size == 3
    assert entries["f"].stat().st_ino == fs.stat("/d/f").st_ino
    assert entries["f"].inode() == fs.stat("/d/f").st_ino
    assert entries["l"].stat().st_ino == fs.stat("/d/f").st_ino
    assert stat.S_ISLNK(entries["l"].stat(follow_symlinks=False).st_mode)
    assert entries["l"].inode() == fs.lstat("/d/l").st_ino
    with pytest.raises(FileNotFoundError):
        entries["dangling"].stat()


def test_scandir_relative_and_bytes(fs: Any) -> None:
    fs.mkdir("/d")
    mkfile(fs, "/d/f")
    fs.chdir("/d")
    with fs.scandir() as it:
        entries = list(it)
    assert [(e.name, e.path) for e in entries] == [("f", "./f")]
    with fs.scandir(b"/d") as it:
        entries = list(it)
    assert [(e.name, e.path) for e in entries] == [(b"f", b"/d/f")]
    fs.chdir("/")


def test_scandir_errors(fs: Any) -> None:
    mkfile(fs, "/f")
    expect_errno(errno.ENOENT, lambda: list(fs.scandir("/nope")), filename="/nope")
    expect_errno(errno.ENOTDIR, lambda: list(fs.scandir("/f")), filename="/f")


# -- chmod / chown / utime -------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o000, 0o644, 0o4755, 0o2755, 0o1777, 0o7777])
def test_chmod_sets_mode_bits(fs: Any, mode: int) -> None:
    mkfile(fs, "/f")
    fs.chmod("/f", mode)
    assert mode_of(fs, "/f") == mode
    assert stat.S_ISREG(fs.stat("/f").st_mode)


def test_chmod_directory(fs: Any) -> None:
    fs.mkdir("/d")
    fs.chmod("/d", 0o1700)
    assert fs.stat("/d").st_mode == stat.S_IFDIR | 0o1700


def test_chmod_follows_symlink(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.symlink("f", "/l")
    fs.chmod("/l", 0o600)
    assert mode_of(fs, "/f") == 0o600
    assert mode_of(fs, "/l") == 0o777


def test_chmod_missing_is_enoent(fs: Any) -> None:
    expect_errno(errno.ENOENT, fs.chmod, "/nope", 0o644, filename="/nope")


def test_fchmod(fs: Any) -> None:
    mkfile(fs, "/f")
    fd = fs.open("/f", RDONLY)
    fs.fchmod(fd, 0o604)
    fs.close(fd)
    assert mode_of(fs, "/f") == 0o604


def test_chmod_changes_ctime(fs: Any) -> None:
    import time

    mkfile(fs, "/f")
    before = fs.stat("/f").st_ctime_ns
    time.sleep(0.03)
    fs.chmod("/f", 0o600)
    assert fs.stat("/f").st_ctime_ns > before


def test_chown_sets_owner(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.chown("/f", 1000, 100)
    st = fs.stat("/f")
    assert (st.st_uid, st.st_gid) == (1000, 100)
    fs.chown("/f", -1, 200)
    st = fs.stat("/f")
    assert (st.st_uid, st.st_gid) == (1000, 200)
    fs.chown("/f", 5, -1)
    st = fs.stat("/f")
    assert (st.st_uid, st.st_gid) == (5, 200)


def test_chown_follows_symlink_lchown_does_not(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.symlink("f", "/l")
    fs.chown("/l", 1000, 1000)
    assert fs.stat("/f").st_uid == 1000
    assert fs.lstat("/l").st_uid == 0
    fs.lchown("/l", 2000, 2000)
    assert (fs.lstat("/l").st_uid, fs.lstat("/l").st_gid) == (2000, 2000)
    assert fs.stat("/f").st_uid == 1000
    fs.chown("/l", 3000, 3000, follow_symlinks=False)
    assert fs.lstat("/l").st_uid == 3000


def test_fchown(fs: Any) -> None:
    mkfile(fs, "/f")
    fd = fs.open("/f", RDONLY)
    fs.fchown(fd, 7, 8)
    fs.close(fd)
    assert (fs.stat("/f").st_uid, fs.stat("/f").st_gid) == (7, 8)


def test_chown_clears_setuid_setgid_even_for_root(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.chmod("/f", 0o6755)
    fs.chown("/f", 1000, 1000)
    assert mode_of(fs, "/f") == 0o755


def test_chown_keeps_setgid_without_group_exec(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.chmod("/f", 0o2644)
    fs.chown("/f", 1000, 1000)
    assert mode_of(fs, "/f") == 0o2644


def test_chown_directory_keeps_setgid(fs: Any) -> None:
    fs.mkdir("/d")
    fs.chmod("/d", 0o2775)
    fs.chown("/d", 1000, 1000)
    assert mode_of(fs, "/d") == 0o2775


def test_chown_missing_is_enoent(fs: Any) -> None:
    expect_errno(errno.ENOENT, fs.chown, "/nope", 1, 1, filename="/nope")


def test_utime_times_seconds(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.utime("/f", times=(1_000_000, 2_000_000.5))
    st = fs.stat("/f")
    assert st.st_atime_ns == 1_000_000 * 10**9
    assert st.st_mtime_ns == 2_000_000_500_000_000


def test_utime_ns(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.utime("/f", ns=(1_500_000_000_123_456_789, 1_600_000_000_987_654_321))
    st = fs.stat("/f")
    assert st.st_atime_ns == 1_500_000_000_123_456_789
    assert st.st_mtime_ns == 1_600_000_000_987_654_321


def test_utime_none_sets_now(fs: Any) -> None:
    mkfile(fs, "/f")
    age(fs, "/f")
    fs.utime("/f")
    st = fs.stat("/f")
    assert st.st_mtime_ns > OLD_NS
    assert st.st_atime_ns > OLD_NS
    fs.utime("/f", None)
    assert fs.stat("/f").st_mtime_ns >= st.st_mtime_ns


def test_utime_times_and_ns_is_valueerror(fs: Any) -> None:
    mkfile(fs, "/f")
    with pytest.raises(ValueError):
        fs.utime("/f", times=(1, 2), ns=(1, 2))


def test_utime_follow_symlinks(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.symlink("f", "/l")
    fs.utime("/l", ns=(OLD_NS, OLD_NS))
    assert fs.stat("/f").st_mtime_ns == OLD_NS
    fs.utime("/l", ns=(5 * 10**9, 6 * 10**9), follow_symlinks=False)
    assert fs.lstat("/l").st_mtime_ns == 6 * 10**9
    assert fs.stat("/f").st_mtime_ns == OLD_NS


def test_utime_missing_is_enoent(fs: Any) -> None:
    expect_errno(errno.ENOENT, fs.utime, "/nope", filename=None)  # os sets none


def test_utime_directory(fs: Any) -> None:
    fs.mkdir("/d")
    fs.utime("/d", ns=(3, 4))
    st = fs.stat("/d")
    assert (st.st_atime_ns, st.st_mtime_ns) == (3, 4)


# -- mknod -----------------------------------------------------------------------------------


def test_mknod_fifo(fs: Any) -> None:
    fs.mknod("/p", stat.S_IFIFO | 0o666)
    st = fs.stat("/p")
    assert stat.S_ISFIFO(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o644


def test_mknod_socket(fs: Any) -> None:
    fs.mknod("/s", stat.S_IFSOCK | 0o600)
    assert stat.S_ISSOCK(fs.stat("/s").st_mode)


def test_mknod_char_device(fs: Any) -> None:
    dev = os.makedev(1, 3)
    fs.mknod("/c", stat.S_IFCHR | 0o600, dev)
    st = fs.stat("/c")
    assert stat.S_ISCHR(st.st_mode)
    assert st.st_rdev == dev
    assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)


def test_mknod_block_device(fs: Any) -> None:
    dev = os.makedev(259, 70000)
    fs.mknod("/b", stat.S_IFBLK | 0o660, dev)
    st = fs.stat("/b")
    assert stat.S_ISBLK(st.st_mode)
    assert st.st_rdev == dev
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_size == 0


def test_mknod_default_makes_regular_file(fs: Any) -> None:
    fs.mknod("/r")
    st = fs.stat("/r")
    assert stat.S_ISREG(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600


def test_mknod_existing_is_eexist(fs: Any) -> None:
    mkfile(fs, "/f")
    expect_errno(errno.EEXIST, fs.mknod, "/f", stat.S_IFIFO | 0o600, filename=None)


def test_mknod_directory_type_is_eperm(fs: Any) -> None:
    expect_errno(errno.EPERM, fs.mknod, "/d", stat.S_IFDIR | 0o755, filename=None)


def test_mknod_in_missing_directory_is_enoent(fs: Any) -> None:
    expect_errno(errno.ENOENT, fs.mknod, "/no/p", stat.S_IFIFO | 0o600, filename=None)


def test_special_files_in_listings(fs: Any) -> None:
    fs.mkdir("/d")
    fs.mknod("/d/p", stat.S_IFIFO | 0o600)
    fs.mknod("/d/c", stat.S_IFCHR | 0o600, os.makedev(1, 5))
    with fs.scandir("/d") as it:
        entries = {e.name: e for e in it}
    assert set(entries) == {"p", "c"}
    for e in entries.values():
        assert (e.is_file(), e.is_dir(), e.is_symlink()) == (False, False, False)
    assert stat.S_ISFIFO(entries["p"].stat().st_mode)


# -- dir_fd ----------------------------------------------------------------------------------


@pytest.fixture
def dfd(fs: Any) -> Any:
    fs.mkdir("/d")
    fd = fs.open("/d", RDONLY | DIRECTORY)
    yield fd
    fs.close(fd)


def test_dir_fd_mkdir_stat_rmdir(fs: Any, dfd: int) -> None:
    fs.mkdir("sub", dir_fd=dfd)
    assert stat.S_ISDIR(fs.stat("sub", dir_fd=dfd).st_mode)
    assert fs.listdir("/d") == ["sub"]
    fs.rmdir("sub", dir_fd=dfd)
    assert fs.listdir("/d") == []


def test_dir_fd_open_and_unlink(fs: Any, dfd: int) -> None:
    fd = fs.open("f", CREAT | WRONLY, 0o644, dir_fd=dfd)
    fs.write(fd, b"df")
    fs.close(fd)
    assert readfile(fs, "/d/f") == b"df"
    fs.unlink("f", dir_fd=dfd)
    assert fs.listdir("/d") == []


def test_dir_fd_rename(fs: Any, dfd: int) -> None:
    fs.mkdir("/e")
    efd = fs.open("/e", RDONLY)
    mkfile(fs, "/d/f", b"x")
    fs.rename("f", "g", src_dir_fd=dfd, dst_dir_fd=efd)
    assert fs.listdir("/e") == ["g"]
    fs.rename("g", "/d/h", src_dir_fd=efd)
    assert fs.listdir("/d") == ["h"]
    fs.close(efd)


def test_dir_fd_symlink_readlink_lstat(fs: Any, dfd: int) -> None:
    fs.symlink("target", "l", dir_fd=dfd)
    assert fs.readlink("l", dir_fd=dfd) == "target"
    assert stat.S_ISLNK(fs.lstat("l", dir_fd=dfd).st_mode)
    assert stat.S_ISLNK(fs.stat("l", dir_fd=dfd, follow_symlinks=False).st_mode)


def test_dir_fd_link_chmod_chown_utime_access_mknod(fs: Any, dfd: int) -> None:
    mkfile(fs, "/d/f")
    fs.link("f", "g", src_dir_fd=dfd, dst_dir_fd=dfd)
    assert fs.stat("/d/g").st_nlink == 2
    fs.chmod("f", 0o600, dir_fd=dfd)
    assert mode_of(fs, "/d/g") == 0o600
    fs.chown("f", 9, 9, dir_fd=dfd)
    assert fs.stat("/d/g").st_uid == 9
    fs.utime("f", ns=(1, 2), dir_fd=dfd)
    assert fs.stat("/d/g").st_mtime_ns == 2
    assert fs.access("f", os.R_OK, dir_fd=dfd) is True
    assert fs.access("nope", os.F_OK, dir_fd=dfd) is False
    fs.mknod("p", stat.S_IFIFO | 0o600, dir_fd=dfd)
    assert stat.S_ISFIFO(fs.stat("/d/p").st_mode)


def test_dir_fd_ignored_for_absolute_paths(fs: Any, dfd: int) -> None:
    fs.mkdir("/abs", dir_fd=dfd)
    assert exists(fs, "/abs")
    assert fs.listdir("/d") == []


def test_dir_fd_errors(fs: Any, dfd: int) -> None:
    expect_errno(errno.ENOENT, fs.stat, "nope", dir_fd=dfd, filename="nope")
    mkfile(fs, "/f")
    ffd = fs.open("/f", RDONLY)
    expect_errno(errno.ENOTDIR, fs.stat, "x", dir_fd=ffd, filename="x")
    expect_errno(errno.ENOTDIR, fs.mkdir, "x", dir_fd=ffd, filename="x")
    fs.close(ffd)
    expect_errno(errno.EBADF, fs.stat, "x", dir_fd=ffd)
    expect_errno(errno.EBADF, fs.mkdir, "x", dir_fd=ffd)


def test_dir_fd_follows_directory_across_rename(fs: Any, dfd: int) -> None:
    fs.rename("/d", "/moved")
    fs.mkdir("x", dir_fd=dfd)
    assert fs.listdir("/moved") == ["x"]


def test_dir_fd_dotdot(fs: Any, dfd: int) -> None:
    mkfile(fs, "/top")
    assert fs.stat("../top", dir_fd=dfd).st_ino == fs.stat("/top").st_ino


# -- access ----------------------------------------------------------------------------------


def test_access_existence(fs: Any) -> None:
    mkfile(fs, "/f")
    assert fs.access("/f", os.F_OK) is True
    assert fs.access("/nope", os.F_OK) is False
    assert fs.access("/f/", os.F_OK) is False


def test_access_root_bypasses_rw_but_not_exec(fs: Any) -> None:
    mkfile(fs, "/f", mode=0o000)
    fs.chmod("/f", 0o000)
    assert fs.access("/f", os.R_OK | os.W_OK) is True
    assert fs.access("/f", os.X_OK) is False
    fs.chmod("/f", 0o644)
    assert fs.access("/f", os.X_OK) is False
    fs.chmod("/f", 0o010)
    assert fs.access("/f", os.X_OK) is True


def test_access_root_on_directory_without_x(fs: Any) -> None:
    fs.mkdir("/d", 0o000)
    assert fs.access("/d", os.R_OK | os.W_OK | os.X_OK) is True


def test_root_opens_mode_000_file(fs: Any) -> None:
    mkfile(fs, "/f", b"secret")
    fs.chmod("/f", 0)
    fd = fs.open("/f", RDWR)
    assert fs.read(fd, 6) == b"secret"
    fs.close(fd)


# -- chdir / getcwd --------------------------------------------------------------------------


def test_getcwd_starts_at_root(fs: Any) -> None:
    assert fs.getcwd() == "/"
    assert fs.getcwdb() == b"/"


def test_chdir_and_getcwd(fs: Any) -> None:
    fs.mkdir("/a")
    fs.mkdir("/a/b")
    fs.chdir("/a/b")
    assert fs.getcwd() == "/a/b"
    fs.chdir("..")
    assert fs.getcwd() == "/a"
    fs.chdir("b")
    assert fs.getcwd() == "/a/b"
    fs.chdir("/")
    assert fs.getcwd() == "/"


def test_chdir_errors(fs: Any) -> None:
    mkfile(fs, "/f")
    expect_errno(errno.ENOTDIR, fs.chdir, "/f", filename="/f")
    expect_errno(errno.ENOENT, fs.chdir, "/nope", filename="/nope")
    assert fs.getcwd() == "/"


def test_chdir_through_symlink_gives_physical_cwd(fs: Any) -> None:
    fs.mkdir("/a")
    fs.mkdir("/a/b")
    fs.symlink("/a/b", "/l")
    fs.chdir("/l")
    assert fs.getcwd() == "/a/b"
    fs.chdir("/")


def test_getcwd_follows_rename(fs: Any) -> None:
    fs.mkdir("/a")
    fs.mkdir("/a/b")
    fs.chdir("/a/b")
    fs.rename("/a", "/z")
    assert fs.getcwd() == "/z/b"
    fs.chdir("/")


def test_fchdir(fs: Any) -> None:
    fs.mkdir("/a")
    fd = fs.open("/a", RDONLY)
    fs.fchdir(fd)
    fs.close(fd)
    assert fs.getcwd() == "/a"
    fs.chdir("/")


# -- statvfs ---------------------------------------------------------------------------------


def test_statvfs(fs: Any) -> None:
    mkfile(fs, "/f")
    st = fs.statvfs("/")
    assert isinstance(st, os.statvfs_result)
    assert st.f_namemax == 255
    assert st.f_bsize > 0
    assert fs.statvfs("/f").f_namemax == 255


def test_statvfs_missing_is_enoent(fs: Any) -> None:
    expect_errno(errno.ENOENT, fs.statvfs, "/nope", filename="/nope")


# -- more edge cases -------------------------------------------------------------------------


def test_lseek_on_directory_to_start(fs: Any) -> None:
    fs.mkdir("/d")
    fd = fs.open("/d", RDONLY)
    assert fs.lseek(fd, 0, os.SEEK_SET) == 0
    fs.close(fd)


def test_pwrite_of_nothing_past_eof_keeps_size(fs: Any) -> None:
    fd = fs.open("/f", CREAT | RDWR, 0o644)
    fs.write(fd, b"abc")
    assert fs.pwrite(fd, b"", 100) == 0
    assert fs.fstat(fd).st_size == 3
    fs.close(fd)


def test_writes_are_visible_through_other_descriptors(fs: Any) -> None:
    fd_w = fs.open("/f", CREAT | WRONLY, 0o644)
    fd_r = fs.open("/f", RDONLY)
    fs.write(fd_w, b"abc")
    assert fs.read(fd_r, 10) == b"abc"
    fs.write(fd_w, b"def")
    assert fs.read(fd_r, 10) == b"def"
    fs.close(fd_w)
    fs.close(fd_r)


def test_read_after_truncate_below_offset_is_empty(fs: Any) -> None:
    mkfile(fs, "/f", b"0123456789")
    fd = fs.open("/f", RDWR)
    fs.lseek(fd, 8, os.SEEK_SET)
    fs.ftruncate(fd, 4)
    assert fs.read(fd, 10) == b""
    assert fs.lseek(fd, 0, os.SEEK_CUR) == 8
    fs.close(fd)


def test_append_and_trunc_together(fs: Any) -> None:
    mkfile(fs, "/f", b"old")
    fd = fs.open("/f", WRONLY | APPEND | TRUNC)
    fs.write(fd, b"new")
    fs.close(fd)
    assert readfile(fs, "/f") == b"new"


def test_dup_shares_append_flag(fs: Any) -> None:
    mkfile(fs, "/f", b"abc")
    fd = fs.open("/f", WRONLY | APPEND)
    fd2 = fs.dup(fd)
    fs.lseek(fd2, 0, os.SEEK_SET)
    fs.write(fd2, b"d")
    fs.close(fd)
    fs.close(fd2)
    assert readfile(fs, "/f") == b"abcd"


def test_open_write_through_symlink_writes_target(fs: Any) -> None:
    mkfile(fs, "/f", b"")
    fs.symlink("f", "/l")
    fd = fs.open("/l", WRONLY)
    fs.write(fd, b"via link")
    fs.close(fd)
    assert readfile(fs, "/f") == b"via link"


def test_open_dot_directory(fs: Any) -> None:
    fs.mkdir("/d")
    fd = fs.open("/d/.", RDONLY)
    assert fs.fstat(fd).st_ino == fs.stat("/d").st_ino
    fs.close(fd)
    expect_errno(errno.EISDIR, fs.open, "/d/.", CREAT | WRONLY, 0o644, filename="/d/.")


def test_chmod_ignores_file_type_bits(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.chmod("/f", stat.S_IFREG | 0o600)
    assert fs.stat("/f").st_mode == stat.S_IFREG | 0o600
    fs.mkdir("/d")
    fs.chmod("/d", 0o700)
    assert fs.stat("/d").st_mode == stat.S_IFDIR | 0o700


def test_mkdir_mode_zero(fs: Any) -> None:
    fs.mkdir("/d", 0)
    assert fs.stat("/d").st_mode == stat.S_IFDIR
    mkfile(fs, "/d/f")  # root ignores the missing permissions
    assert fs.listdir("/d") == ["f"]


def test_utime_negative_and_large_times(fs: Any, time_max_ns: int | None) -> None:
    mkfile(fs, "/f")
    fs.utime("/f", ns=(-1, -(10**18)))
    st = fs.stat("/f")
    assert (st.st_atime_ns, st.st_mtime_ns) == (-1, -(10**18))
    fs.utime("/f", ns=(2**40 * 10**9, 0))
    # ext2/4 clamp to their latest time (2446), as Linux does; tmpfs stores it
    limit = 2**40 * 10**9 if time_max_ns is None else time_max_ns
    assert fs.stat("/f").st_atime_ns == min(2**40 * 10**9, limit)


def test_access_with_invalid_mode_is_false(fs: Any) -> None:
    mkfile(fs, "/f")
    assert fs.access("/f", 0o10) is False


def test_symlink_mode_ignores_umask(fs: Any) -> None:
    fs.umask(0o077)
    fs.symlink("x", "/l")
    assert mode_of(fs, "/l") == 0o777


def test_mknod_applies_umask(fs: Any) -> None:
    fs.umask(0o027)
    fs.mknod("/p", stat.S_IFIFO | 0o666)
    fs.mknod("/r", stat.S_IFREG | 0o666)
    assert mode_of(fs, "/p") == 0o640
    assert stat.S_ISREG(fs.stat("/r").st_mode)
    assert mode_of(fs, "/r") == 0o640


@pytest.mark.parametrize("name", [".", ".."])
def test_unlink_dot_names_is_eisdir(fs: Any, name: str) -> None:
    fs.mkdir("/d")
    expect_errno(errno.EISDIR, fs.unlink, f"/d/{name}", filename=f"/d/{name}")


@pytest.mark.parametrize("name", [".", ".."])
def test_mkdir_dot_names_is_eexist(fs: Any, name: str) -> None:
    fs.mkdir("/d")
    expect_errno(errno.EEXIST, fs.mkdir, f"/d/{name}", filename=f"/d/{name}")


@pytest.mark.parametrize("name", [".", ".."])
def test_create_dot_names_is_eexist(fs: Any, name: str) -> None:
    fs.mkdir("/d")
    mkfile(fs, "/f")
    expect_errno(errno.EEXIST, fs.symlink, "x", f"/d/{name}")
    expect_errno(errno.EEXIST, fs.link, "/f", f"/d/{name}")
    expect_errno(errno.EEXIST, fs.mknod, f"/d/{name}", stat.S_IFIFO | 0o600)


@pytest.mark.parametrize("name", [".", ".."])
def test_rename_to_dot_names_is_ebusy(fs: Any, name: str) -> None:
    fs.mkdir("/d")
    fs.mkdir("/e")
    expect_errno(errno.EBUSY, fs.rename, "/e", f"/d/{name}")


def test_create_with_trailing_slash_on_new_name(fs: Any) -> None:
    mkfile(fs, "/f")
    expect_errno(errno.ENOENT, fs.symlink, "x", "/l/")
    expect_errno(errno.ENOENT, fs.link, "/f", "/g/")
    expect_errno(errno.ENOENT, fs.mknod, "/p/", stat.S_IFIFO | 0o600)
    assert fs.listdir("/") == ["f"]


def test_link_source_with_trailing_slash_is_enotdir(fs: Any) -> None:
    mkfile(fs, "/f")
    expect_errno(errno.ENOTDIR, fs.link, "/f/", "/g", filename="/f/", filename2="/g")


def test_mkdir_through_dangling_symlink_parent_is_enoent(fs: Any) -> None:
    fs.symlink("nowhere", "/l")
    expect_errno(errno.ENOENT, fs.mkdir, "/l/x", filename="/l/x")


def test_mkdir_through_symlink_to_file_is_enotdir(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.symlink("f", "/l")
    expect_errno(errno.ENOTDIR, fs.mkdir, "/l/x", filename="/l/x")


def test_mkdir_through_symlink_to_directory(fs: Any) -> None:
    fs.mkdir("/d")
    fs.symlink("d", "/l")
    fs.mkdir("/l/x")
    assert fs.listdir("/d") == ["x"]


def test_rename_file_over_symlink_replaces_link(fs: Any) -> None:
    mkfile(fs, "/target", b"t")
    fs.symlink("target", "/l")
    mkfile(fs, "/f", b"f")
    fs.rename("/f", "/l")
    assert stat.S_ISREG(fs.lstat("/l").st_mode)
    assert readfile(fs, "/target") == b"t"


def test_rename_symlink_to_directory_over_directory_is_eisdir(fs: Any) -> None:
    fs.mkdir("/d")
    fs.mkdir("/e")
    fs.symlink("d", "/l")
    expect_errno(errno.EISDIR, fs.rename, "/l", "/e")


def test_rename_directory_over_symlink_is_enotdir(fs: Any) -> None:
    fs.mkdir("/d")
    fs.mkdir("/e")
    fs.symlink("e", "/l")
    expect_errno(errno.ENOTDIR, fs.rename, "/d", "/l")


def test_rename_over_hard_link_of_other_file(fs: Any) -> None:
    mkfile(fs, "/a", b"A")
    mkfile(fs, "/b", b"B")
    fs.link("/b", "/b2")
    fs.rename("/a", "/b")
    assert readfile(fs, "/b") == b"A"
    assert fs.stat("/b2").st_nlink == 1
    assert readfile(fs, "/b2") == b"B"


def test_listdir_reflects_directory_rename(fs: Any) -> None:
    fs.mkdir("/a")
    mkfile(fs, "/a/f")
    fs.rename("/a", "/b")
    assert fs.listdir("/b") == ["f"]
    expect_errno(errno.ENOENT, fs.listdir, "/a", filename="/a")


def test_chdir_dotdot_from_root_stays_at_root(fs: Any) -> None:
    fs.chdir("/..")
    assert fs.getcwd() == "/"
    fs.chdir("..")
    assert fs.getcwd() == "/"


def test_fstat_of_removed_directory(fs: Any) -> None:
    fs.mkdir("/d")
    fd = fs.open("/d", RDONLY)
    fs.rmdir("/d")
    st = fs.fstat(fd)
    assert stat.S_ISDIR(st.st_mode)
    assert st.st_nlink == 0
    fs.close(fd)


def test_create_in_removed_directory_via_dir_fd_is_enoent(fs: Any) -> None:
    fs.mkdir("/d")
    fd = fs.open("/d", RDONLY)
    fs.rmdir("/d")
    expect_errno(errno.ENOENT, fs.mkdir, "x", dir_fd=fd)
    expect_errno(errno.ENOENT, fs.open, "f", CREAT | WRONLY, 0o644, dir_fd=fd)
    fs.close(fd)


def test_scandir_special_is_dir_false(fs: Any) -> None:
    fs.mkdir("/d")
    fs.mknod("/d/s", stat.S_IFSOCK | 0o600)
    with fs.scandir("/d") as it:
        (e,) = list(it)
    assert (e.name, e.is_dir(), e.is_file(), e.is_symlink()) == ("s", False, False, False)
    assert stat.S_ISSOCK(e.stat().st_mode)


def test_statvfs_result_fields(fs: Any) -> None:
    st = fs.statvfs("/")
    for field in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files",
                  "f_ffree", "f_favail", "f_flag", "f_namemax"):
        assert isinstance(getattr(st, field), int), field
    assert st.f_bfree <= st.f_blocks
    assert st.f_bavail <= st.f_blocks


def test_excl_without_creat_is_ignored(fs: Any) -> None:
    mkfile(fs, "/f", b"x")
    fd = fs.open("/f", RDONLY | EXCL)
    assert fs.read(fd, 1) == b"x"
    fs.close(fd)


def test_fdatasync(fs: Any) -> None:
    fd = fs.open("/f", CREAT | WRONLY, 0o644)
    fs.write(fd, b"x")
    assert fs.fdatasync(fd) is None
    fs.close(fd)
    expect_errno(errno.EBADF, fs.fdatasync, fd)


def test_bytes_and_pathlike_paths_everywhere(fs: Any) -> None:
    p = pathlib.PurePosixPath
    fs.mkdir(p("/d"))
    fs.mkdir(b"/d/e")
    mkfile(fs, "/d/f")
    fs.rename(b"/d/f", b"/d/g")
    fs.link(p("/d/g"), p("/d/h"))
    fs.symlink(b"g", b"/d/l")
    fs.chmod(b"/d/g", 0o600)
    fs.utime(p("/d/g"), ns=(1, 2))
    assert sorted(fs.listdir(p("/d"))) == ["e", "g", "h", "l"]
    fs.unlink(p("/d/h"))
    fs.rmdir(b"/d/e")
    assert sorted(fs.listdir(b"/d")) == [b"g", b"l"]
    expect_errno(errno.ENOENT, fs.rename, b"/nope", b"/x", filename=b"/nope", filename2=b"/x")


def test_deep_tree_and_getcwd(fs: Any) -> None:
    path = ""
    for i in range(60):
        path += f"/d{i}"
        fs.mkdir(path)
    fs.chdir(path)
    assert fs.getcwd() == path
    assert fs.stat("/".join([".."] * 60)).st_ino == fs.stat("/").st_ino
    assert fs.stat("/".join([".."] * 100)).st_ino == fs.stat("/").st_ino
    fs.chdir("/")


def test_getcwdb_non_ascii(fs: Any) -> None:
    fs.mkdir("/ü")
    fs.chdir("/ü")
    assert fs.getcwd() == "/ü"
    assert fs.getcwdb() == "/ü".encode()
    fs.chdir("/")


def test_readlink_bytes_with_dir_fd(fs: Any) -> None:
    fs.mkdir("/d")
    fs.symlink("tgt", "/d/l")
    fd = fs.open("/d", RDONLY)
    assert fs.readlink(b"l", dir_fd=fd) == b"tgt"
    fs.close(fd)


def test_hard_link_count_survives_rename(fs: Any) -> None:
    mkfile(fs, "/a")
    fs.link("/a", "/b")
    fs.mkdir("/d")
    fs.rename("/a", "/d/a")
    assert fs.stat("/b").st_nlink == 2
    assert fs.stat("/d/a").st_ino == fs.stat("/b").st_ino
