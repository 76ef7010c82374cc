"""The os calls a port from ``os`` to a Process trips on next: mkfifo, dup2,
removedirs, renames, copy_file_range, sendfile between files, O_TMPFILE.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

from tests.contract.helpers import CREAT, RDONLY, RDWR, WRONLY, expect_errno, mkfile, readfile


def test_mkfifo(fs: Any) -> None:
    fs.mkfifo("/p", 0o640)
    st = fs.stat("/p")
    assert stat.S_ISFIFO(st.st_mode) and st.st_mode & 0o777 == 0o640
    expect_errno(errno.EEXIST, fs.mkfifo, "/p", filename=None)      # as os.mknod
    expect_errno(errno.ENOENT, fs.mkfifo, "/no/p")


def test_dup2(fs: Any) -> None:
    a = fs.open("/a", CREAT | RDWR, 0o644)
    b = fs.open("/b", CREAT | RDWR, 0o644)
    assert fs.dup2(a, b) == b                      # closes b's old file first
    fs.write(b, b"via b")
    assert readfile(fs, "/a") == b"via b"
    assert readfile(fs, "/b") == b""
    assert fs.dup2(a, a) == a
    expect_errno(errno.EBADF, fs.dup2, 999, a)
    assert fs.dup2(a, 200) == 200
    fs.lseek(200, 0, os.SEEK_SET)                  # the offset is shared
    assert fs.lseek(a, 0, os.SEEK_CUR) == 0
    for fd in (a, b, 200):
        fs.close(fd)


def test_removedirs_and_renames(fs: Any) -> None:
    fs.makedirs("/a/b/c")
    mkfile(fs, "/a/keep")
    fs.removedirs("/a/b/c")                        # stops at the non-empty /a
    assert fs.listdir("/a") == ["keep"]
    fs.makedirs("/x/y")
    mkfile(fs, "/x/y/f", b"data")
    fs.renames("/x/y/f", "/new/dir/g")
    assert readfile(fs, "/new/dir/g") == b"data"
    assert "x" not in fs.listdir("/")             # emptied parents are pruned
    expect_errno(errno.ENOENT, fs.removedirs, "/nope")


def test_copy_file_range(fs: Any) -> None:
    mkfile(fs, "/src", b"0123456789")
    s = fs.open("/src", RDONLY)
    d = fs.open("/dst", CREAT | RDWR, 0o644)
    try:
        assert fs.copy_file_range(s, d, 4) == 4
        assert fs.lseek(s, 0, os.SEEK_CUR) == 4 and fs.lseek(d, 0, os.SEEK_CUR) == 4
        assert fs.copy_file_range(s, d, 100, 8, 20) == 2
        assert fs.lseek(s, 0, os.SEEK_CUR) == 4
        assert fs.copy_file_range(s, d, 100, 50) == 0
        assert fs.pread(d, 100, 0) == b"0123" + bytes(16) + b"89"
        expect_errno(errno.EBADF, fs.copy_file_range, d, s, 1)
        rw = fs.open("/src", RDWR)
        try:
            expect_errno(errno.EINVAL, fs.copy_file_range, rw, rw, 4, 0, 2)
        finally:
            fs.close(rw)
        fs.mkdir("/dir")
        dfd = fs.open("/dir", RDONLY)
        try:
            expect_errno(errno.EISDIR, fs.copy_file_range, dfd, d, 1)
        finally:
            fs.close(dfd)
    finally:
        fs.close(s)
        fs.close(d)


def test_sendfile_between_files(fs: Any) -> None:
    mkfile(fs, "/src", b"abcdefgh")
    s = fs.open("/src", RDONLY)
    d = fs.open("/dst", CREAT | WRONLY, 0o644)
    try:
        assert fs.sendfile(d, s, 2, 3) == 3
        assert fs.lseek(s, 0, os.SEEK_CUR) == 0
        assert fs.sendfile(d, s, None, 100) == 8
        assert fs.lseek(s, 0, os.SEEK_CUR) == 8
        assert fs.sendfile(d, s, None, 100) == 0
        expect_errno(errno.EBADF, fs.sendfile, s, d, 0, 1)
    finally:
        fs.close(s)
        fs.close(d)
    assert readfile(fs, "/dst") == b"cdeabcdefgh"
    a = fs.open("/dst", WRONLY | os.O_APPEND)
    s = fs.open("/src", RDONLY)
    try:
        expect_errno(errno.EINVAL, fs.sendfile, a, s, 0, 1)
    finally:
        fs.close(a)
        fs.close(s)


def test_o_tmpfile(fs: Any, env: Any) -> None:
    fs.mkdir("/d")
    fd = fs.open("/d", os.O_TMPFILE | RDWR, 0o640)
    try:
        st = fs.fstat(fd)
        assert st.st_nlink == 0 and stat.S_ISREG(st.st_mode) and st.st_mode & 0o777 == 0o640
        assert fs.listdir("/d") == []
        fs.write(fd, b"anon")
        assert fs.pread(fd, 10, 0) == b"anon"
        if env.kind == "kernel":                   # os cannot spell linkat(AT_EMPTY_PATH)
            fs.link(fd, "/d/named")
            assert readfile(fs, "/d/named") == b"anon"
            assert fs.stat("/d/named").st_nlink == 1
    finally:
        fs.close(fd)
    expect_errno(errno.EINVAL, fs.open, "/d", os.O_TMPFILE | RDONLY)
    expect_errno(errno.EINVAL, fs.open, "/d", os.O_TMPFILE | RDWR | CREAT)
    mkfile(fs, "/f")
    expect_errno(errno.ENOTDIR, fs.open, "/f", os.O_TMPFILE | RDWR)
