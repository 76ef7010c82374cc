"""Kernel-only checks of issue 12's calls where the host reference cannot
follow: a read-only mount of its own, linkat(AT_EMPTY_PATH)."""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterator

import pytest
from tests.contract.helpers import RDWR, expect_errno, mkfile

import rumpfs


@pytest.fixture
def fs() -> Iterator[rumpfs.Kernel]:
    k = rumpfs.Kernel()
    try:
        yield k
    finally:
        k.shutdown()


def named_user_acl() -> bytes:
    entries = [(0x01, 6, 0xFFFFFFFF), (0x02, 6, 1000), (0x04, 4, 0xFFFFFFFF),
               (0x10, 6, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


@pytest.mark.parametrize("ns", ["user.x", "system.posix_acl_access"])
def test_xattr_set_on_read_only_fs_is_erofs(fs: rumpfs.Kernel, ns: str) -> None:
    fs.mkdir("/m")
    fs.mount("rumpfs", "/m")
    mkfile(fs, "/m/f")
    fs.remount("/m", True)
    value = b"1" if ns.startswith("user.") else named_user_acl()
    expect_errno(errno.EROFS, fs.setxattr, "/m/f", ns, value, filename="/m/f")
    expect_errno(errno.EROFS, fs.removexattr, "/m/f", ns)


@pytest.mark.parametrize("excl", [True, False])
def test_o_tmpfile_linking_rules(fs: rumpfs.Kernel, excl: bool) -> None:
    fs.mkdir("/d")
    fd = fs.open("/d", os.O_TMPFILE | RDWR | (os.O_EXCL if excl else 0), 0o600)
    try:
        if excl:
            expect_errno(errno.ENOENT, fs.link, fd, "/d/x")
        else:
            fs.link(fd, "/d/x")
            fs.unlink("/d/x")
            expect_errno(errno.ENOENT, fs.link, fd, "/d/y")    # named once only
    finally:
        fs.close(fd)
    assert fs.listdir("/d") == []
    assert fs.statvfs("/").f_files - fs.statvfs("/").f_ffree == 2     # / and /d: freed


def test_shutdown_wakes_a_waiting_fifo_open() -> None:
    import threading

    k = rumpfs.Kernel()
    k.mkfifo("/p")
    out: list[BaseException | int] = []

    def opener() -> None:
        try:
            out.append(k.open("/p", os.O_RDONLY))
        except OSError as e:
            out.append(e)

    t = threading.Thread(target=opener, daemon=True)
    t.start()
    while not k.vfs.fifos:          # the opener holds an end and waits (lock released)
        t.join(0.01)
        assert t.is_alive() or out
    k.shutdown()
    t.join(20)
    assert not t.is_alive()
    assert isinstance(out[0], OSError) and out[0].errno == errno.ESHUTDOWN


def test_pipe_fstat_and_fsync(fs: rumpfs.Kernel) -> None:
    import stat

    r, w = fs.pipe()
    st = fs.fstat(r)
    assert stat.S_ISFIFO(st.st_mode) and st.st_mode & 0o777 == 0o600
    assert fs.fstat(w).st_ino == st.st_ino
    expect_errno(errno.EINVAL, fs.fsync, w)
    expect_errno(errno.ESPIPE, fs.fallocate, w, 0, 0, 1)
    expect_errno(errno.EINVAL, fs.ftruncate, w, 0)
    fs.close(r)
    fs.close(w)
