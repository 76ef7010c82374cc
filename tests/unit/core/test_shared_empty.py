"""A rumpfs mount's shared empty store: files share it until their first change
(write, growing truncation, fallocate), and no change to one file shows in another."""

from __future__ import annotations

import os

import pytest

from rumpfs import Kernel
from rumpfs.fs.rumpfs.data import SparseData
from rumpfs.fs.rumpfs.node import RumpReg, rumpfs_data


def node(k: Kernel, name: str) -> RumpReg:
    vp = k.vfs.rootvnode.entries[name]
    assert isinstance(vp, RumpReg)
    return vp


def make(k: Kernel, *names: str) -> None:
    for name in names:
        k.close(k.open(f"/{name}", os.O_CREAT | os.O_WRONLY, 0o644))


def test_new_files_share_the_mounts_empty_store() -> None:
    with Kernel() as k:
        make(k, "a", "b")
        empty = rumpfs_data(k.vfs.rootvnode.mount).empty
        assert node(k, "a").data is empty and node(k, "b").data is empty
        # reading, stat, SEEK_DATA and truncation to 0 leave it shared
        fd = k.open("/a", os.O_RDWR | os.O_TRUNC)
        assert k.read(fd, 10) == b""
        with pytest.raises(OSError):
            k.lseek(fd, 0, os.SEEK_DATA)
        k.ftruncate(fd, 0)
        k.close(fd)
        assert node(k, "a").data is empty
        assert k.stat("/a").st_size == 0 and k.stat("/a").st_blocks == 0


@pytest.mark.parametrize("change", ["write", "truncate", "fallocate", "append"])
def test_a_change_gives_the_file_its_own_store(change: str) -> None:
    with Kernel() as k:
        make(k, "a", "b")
        empty = rumpfs_data(k.vfs.rootvnode.mount).empty
        fd = k.open("/a", os.O_RDWR | (os.O_APPEND if change == "append" else 0))
        if change in ("write", "append"):
            k.write(fd, b"x" * 5000)
            want_size, want_blocks = 5000, 16
        elif change == "truncate":
            k.ftruncate(fd, 1 << 40)
            want_size, want_blocks = 1 << 40, 0
        else:
            k.posix_fallocate(fd, 0, 8192)
            want_size, want_blocks = 8192, 16
        k.close(fd)
        own = node(k, "a").data
        assert own is not empty and isinstance(own, SparseData) and not own.shared
        st = k.stat("/a")
        assert (st.st_size, st.st_blocks) == (want_size, want_blocks)
        # the other file and the shared store saw nothing
        assert node(k, "b").data is empty
        assert (empty.size, empty.pages, empty.chunks) == (0, 0, {})
        assert (k.stat("/b").st_size, k.stat("/b").st_blocks) == (0, 0)
        # the file's pages are charged to the mount, and freed with it
        space = rumpfs_data(k.vfs.rootvnode.mount).space
        assert space.used == want_blocks // 8
        k.unlink("/a")
        assert space.used == 0
