"""rumpfs data in a host memfd (fs/rumpfs/memfd_data.py), in-process.

The move keeps pages, holes and fallocated pages; the host's own writes to
the memfd show in the node's size, blocks and times; the descriptor budget
and a host without memfds leave files where they are; memfds go back when
their node dies and at shutdown.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

import rumpfs
from rumpfs.fs.rumpfs.memfd_data import MemfdData
from rumpfs.rumpuser.memhost import MemHost

KEEP_SIZE, PUNCH_HOLE = 0x01, 0x02


def node(k: Any, name: str) -> Any:
    return k.vfs.rootvnode.entries[name]


def move(k: Any, name: str) -> int | None:
    n = node(k, name)
    fd: int | None = n.ops.vop_backing_fd(n, True, True)
    return fd


def layout(k: Any, fd: int) -> list[int]:
    out = []
    off = 0
    size = k.fstat(fd).st_size
    while off < size:
        try:
            off = k.lseek(fd, off, os.SEEK_DATA)
        except OSError:
            break
        out.append(off)
        off = k.lseek(fd, off, os.SEEK_HOLE)
        out.append(off)
    return out


@pytest.fixture
def k() -> Any:
    kernel = rumpfs.Kernel()
    yield kernel
    kernel.shutdown()


def test_the_move_keeps_bytes_pages_and_holes(k: Any) -> None:
    fd = k.open("/f", os.O_CREAT | os.O_RDWR, 0o644)
    k.pwrite(fd, b"a" * 5000, 100)
    k.pwrite(fd, b"b", 1 << 40)
    k.pwrite(fd, b"c" * 300_000, 3 << 20)
    k.fallocate(fd, PUNCH_HOLE | KEEP_SIZE, (3 << 20) + 8192, 3 * 4096)
    k.fallocate(fd, KEEP_SIZE, 9 << 20, 5 * 4096)      # blocks, but a hole
    k.fallocate(fd, KEEP_SIZE, (1 << 40) + 8192, 4096)  # past the end
    before = k.fstat(fd)
    holes = layout(k, fd)
    data = [k.pread(fd, 400_000, off) for off in (0, 3 << 20, (1 << 40) - 10)]
    statfs = k.statvfs("/")
    assert move(k, "f") is not None and isinstance(node(k, "f").data, MemfdData)
    after = k.fstat(fd)
    assert (after.st_size, after.st_blocks, after.st_mtime_ns) == \
        (before.st_size, before.st_blocks, before.st_mtime_ns)
    assert layout(k, fd) == holes
    assert [k.pread(fd, 400_000, off) for off in (0, 3 << 20, (1 << 40) - 10)] == data
    assert k.statvfs("/").f_bfree == statfs.f_bfree
    k.close(fd)


def test_host_writes_show_in_size_blocks_and_times(k: Any) -> None:
    fd = k.open("/f", os.O_CREAT | os.O_RDWR, 0o644)
    k.write(fd, b"x")
    memfd = move(k, "f")
    assert memfd is not None
    frozen = k.clock.now_ns() + 10**9
    k.clock.freeze(frozen)
    k.utime("/f", ns=(1, 1))
    os.pwrite(memfd, b"y" * 8192, 4096)            # what a passthrough write does
    st = k.fstat(fd)
    assert (st.st_size, st.st_blocks) == (12288, 24)
    # stamped, but never past the kernel's (frozen) clock
    assert 1 < st.st_mtime_ns <= frozen and st.st_ctime_ns >= st.st_mtime_ns
    k.clock.freeze(None)
    k.utime("/f", ns=(5, 5))                       # later than the host's write: wins
    assert k.fstat(fd).st_mtime_ns == 5
    k.close(fd)


def test_append_and_big_reads_see_the_host_size(k: Any) -> None:
    fd = k.open("/f", os.O_CREAT | os.O_RDWR, 0o644)
    memfd = move(k, "f")
    assert memfd is not None
    os.pwrite(memfd, b"host", 0)
    a = k.open("/f", os.O_WRONLY | os.O_APPEND)
    k.write(a, b"+kernel")
    k.close(a)
    assert k.pread(fd, 1 << 40, 0) == b"host+kernel"
    k.close(fd)


def test_set_id_size_limited_and_over_budget_files_stay(k: Any) -> None:
    for name in ("suid", "sgid", "plain"):
        k.close(k.open("/" + name, os.O_CREAT | os.O_WRONLY, 0o644))
    k.chmod("/suid", 0o4755)
    k.chmod("/sgid", 0o2644)
    assert move(k, "suid") is None and move(k, "sgid") is None
    k.setxattr("/plain", "security.capability", b"\x01\x00\x00\x02" + bytes(16))
    assert move(k, "plain") is None
    k.mkdir("/lim")
    k.mount("rumpfs", "/lim", options={"size": "1m"})
    k.close(k.open("/lim/f", os.O_CREAT | os.O_WRONLY, 0o644))
    lim = k.vfs.mounts[-1].root.entries["f"]
    assert lim.ops.vop_backing_fd(lim, True, True) is None
    k.close(k.open("/g", os.O_CREAT | os.O_WRONLY, 0o644))
    k.vfs.shm.budget = k.vfs.shm.in_use
    assert move(k, "g") is None
    k.vfs.shm.budget = None
    assert move(k, "g") is not None


def test_a_host_without_memfds() -> None:
    k = rumpfs.Kernel(hypervisor=MemHost())
    try:
        k.close(k.open("/f", os.O_CREAT | os.O_WRONLY, 0o644))
        assert move(k, "f") is None and k.vfs.shm.unsupported
    finally:
        k.shutdown()


def test_memfds_go_back_when_nodes_die_and_at_shutdown() -> None:
    k = rumpfs.Kernel()
    shm = k.vfs.shm
    for name in ("a", "b", "c"):
        k.close(k.open("/" + name, os.O_CREAT | os.O_WRONLY, 0o644))
        move(k, name)
    assert shm.in_use == 3
    fd = k.open("/a", os.O_RDWR)
    k.unlink("/a")                                  # open: stays
    k.unlink("/b")
    assert shm.in_use == 2
    k.write(fd, b"still here")
    dead = node(k, "c")                             # keep a dead node's data around
    k.close(fd)
    assert shm.in_use == 1
    free = k.statvfs("/").f_bfree
    k.link("/c", "/d")
    k.unlink("/c")
    assert shm.in_use == 1
    k.unlink("/d")
    assert shm.in_use == 0 and dead.data.fd == -1
    assert k.statvfs("/").f_bfree == free           # no data was charged; no EBADF either
    k.close(k.open("/d", os.O_CREAT | os.O_WRONLY, 0o644))
    move(k, "d")
    kept = node(k, "d").data
    k.shutdown()
    assert shm.in_use == 0 and kept.fd == -1


def test_a_host_write_right_after_utime_shows(k: Any) -> None:
    """The memfd's times mirror the node's after a setattr: a host write in the
    same clock tick as the move and the utime still changes the memfd's mtime."""
    for i in range(50):
        name = f"e{i}"
        fd = k.open("/" + name, os.O_CREAT | os.O_RDWR, 0o644)
        memfd = move(k, name)
        assert memfd is not None
        k.utime("/" + name, ns=(7, 7))
        os.pwrite(memfd, b"x", 0)
        st = k.fstat(fd)
        assert st.st_mtime_ns > 7 and st.st_atime_ns == 7
        host = os.open(f"/proc/self/fd/{memfd}", os.O_RDONLY)   # as passthrough opens it
        os.pread(host, 1, 0)                        # a host read: relatime
        os.close(host)
        assert k.fstat(fd).st_atime_ns > 7
        k.pread(fd, 1, 0)                           # the kernel's own reads keep theirs
        k.close(fd)
