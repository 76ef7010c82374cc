"""statvfs accounting and the ``size=``/``nr_inodes=`` limits, against a host
tmpfs mounted with the same options (the test mounts it: root only, as the
contract suite is).
"""

from __future__ import annotations

import errno
import os
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from tests.contract.helpers import expect_errno

OPTS = {"size": "256k", "nr_inodes": "16"}


class HostMount:
    """``os`` calls on a private host tmpfs, absolute paths mapped under it."""

    def __init__(self, base: str) -> None:
        self.base = base

    def _p(self, path: str) -> str:
        return os.path.join(self.base, path.lstrip("/"))

    def open(self, path: str, flags: int, mode: int = 0o644) -> int:
        return os.open(self._p(path), flags, mode)

    def unlink(self, path: str) -> None:
        os.unlink(self._p(path))

    def mkdir(self, path: str) -> None:
        os.mkdir(self._p(path))

    def statvfs(self, path: str) -> os.statvfs_result:
        return os.statvfs(self._p(path))

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


@pytest.fixture(params=["host", "kernel"])
def mnt(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "host":
        if os.geteuid() != 0:
            pytest.fail("the statfs contract needs root to mount a reference tmpfs")
        base = tempfile.mkdtemp(prefix="rumpfs-statfs-")
        opts = ",".join(f"{k}={v}" for k, v in OPTS.items())
        subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", base], check=True)
        try:
            yield HostMount(base)
        finally:
            # lazily: a failed test may still hold a descriptor there
            subprocess.run(["umount", "-l", base], check=True)
            os.rmdir(base)
    else:
        import rumpfs

        k = rumpfs.Kernel()
        try:
            k.mkdir("/m")
            k.mount("rumpfs", "/m", options=dict(OPTS))
            k.chdir("/m")
            yield k
        finally:
            k.shutdown()


def free(m: Any) -> tuple[int, int, int, int]:
    sv = m.statvfs("/" if isinstance(m, HostMount) else "/m")
    return sv.f_blocks, sv.f_bfree, sv.f_files, sv.f_ffree


def path(m: Any, name: str) -> str:
    return name if isinstance(m, HostMount) else "/m" + name


def test_statfs_counts_data_and_inodes(mnt: Any) -> None:
    blocks, bfree0, files, ffree0 = free(mnt)
    assert (blocks, files) == (64, 16)
    assert bfree0 == 64
    fd = mnt.open(path(mnt, "/a"), os.O_CREAT | os.O_RDWR)
    mnt.write(fd, b"x" * 10000)
    assert free(mnt)[1] == bfree0 - 3
    assert free(mnt)[3] == ffree0 - 1
    mnt.pwrite(fd, b"y", 100000)                   # a sparse page
    assert free(mnt)[1] == bfree0 - 4
    mnt.ftruncate(fd, 4096)
    assert free(mnt)[1] == bfree0 - 1
    mnt.close(fd)
    mnt.unlink(path(mnt, "/a"))
    assert free(mnt)[1:] == (bfree0, files, ffree0)


def test_full_mount_writes_short_then_enospc(mnt: Any) -> None:
    fd = mnt.open(path(mnt, "/big"), os.O_CREAT | os.O_RDWR)
    n = mnt.write(fd, b"z" * 300000)
    assert n == 64 * 4096
    assert mnt.fstat(fd).st_size == n
    expect_errno(errno.ENOSPC, mnt.write, fd, b"more")
    assert mnt.pwrite(fd, b"over", 10) == 4       # rewriting held pages needs no space
    assert free(mnt)[1] == 0
    mnt.ftruncate(fd, 4096 * 60 + 1)
    assert mnt.pwrite(fd, b"q" * 20000, 4096 * 60 + 1) == 4096 * 4 - 1  # 60 held, 61..63 free
    assert mnt.fstat(fd).st_size == 4096 * 64
    mnt.close(fd)
    mnt.unlink(path(mnt, "/big"))
    assert free(mnt)[1] == 64


def test_fallocate_beyond_the_limit_allocates_nothing(mnt: Any) -> None:
    import ctypes

    fd = mnt.open(path(mnt, "/f"), os.O_CREAT | os.O_RDWR)
    if isinstance(mnt, HostMount):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
        assert libc.fallocate(fd, 0, 0, 65 * 4096) == -1
        assert ctypes.get_errno() == errno.ENOSPC
    else:
        expect_errno(errno.ENOSPC, mnt.fallocate, fd, 0, 0, 65 * 4096)
    st = mnt.fstat(fd)
    assert (st.st_size, st.st_blocks) == (0, 0)
    assert free(mnt)[1] == 64
    mnt.close(fd)


def test_nr_inodes_limit(mnt: Any) -> None:
    made = 0
    with pytest.raises(OSError) as info:
        while True:
            mnt.close(mnt.open(path(mnt, f"/f{made}"), os.O_CREAT | os.O_WRONLY))
            made += 1
    assert info.value.errno == errno.ENOSPC
    assert made == 15                              # the root holds one of the 16
    assert free(mnt)[3] == 0
    mnt.unlink(path(mnt, "/f0"))
    mnt.mkdir(path(mnt, "/d"))
    assert free(mnt)[3] == 0
