"""rumpfs files through FUSE passthrough (Linux >= 6.9, served as root).

A rumpfs file the mount opens moves to a host memfd and is answered with
FOPEN_PASSTHROUGH: the host reads and writes it without asking the server,
and in-process calls use the same memfd. Checked here through real mounts
(serve() and the exclusive mode), by root and by uid 1000 in a chrooted
child: bytes both ways, size, st_blocks, SEEK_DATA/SEEK_HOLE and statfs
against tmpfs, times, set-id clearing, the descriptor budget's fallback,
release of the memfds, unlinked-but-open files, hard links and renames.
"""

from __future__ import annotations

import errno
import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.fuse.conftest import ROOT, make_mountpoint, remove_mountpoint
from tests.conformance.fuse.test_passthrough import CountingIO
from tests.support.hostproc import HostProcess

pytestmark = pytest.mark.skipif(not ROOT, reason="FUSE_DEV_IOC_BACKING_OPEN needs root")

KEEP_SIZE, PUNCH_HOLE = 0x01, 0x02


@pytest.fixture
def served(fuse_kernel: Any) -> Iterator[tuple[Any, Path, CountingIO]]:
    """serve()-like mount (timeouts 0) with the server's reads and writes counted."""
    from rumpfs.frontends.fuse import FuseServer

    counting = CountingIO(fuse_kernel.node_handles())
    mp = make_mountpoint()
    server = FuseServer(counting, mp, allow_other=True)  # type: ignore[arg-type]
    try:
        server.start()
        if not server.ops.passthrough:
            pytest.skip("the host kernel did not offer FUSE_PASSTHROUGH (Linux < 6.9)")
        yield server, Path(mp), counting
    finally:
        server.stop()
        remove_mountpoint(mp)


def in_memfd(k: Any, path: str, root: Any = None) -> bool:
    from rumpfs.fs.rumpfs.memfd_data import MemfdData

    vp = root or k.vfs.rootvnode
    for part in path.strip("/").split("/"):
        vp = vp.entries[part]
    return isinstance(vp.data, MemfdData)


def layout(fd: int) -> list[tuple[str, int]]:
    """The file's data/hole boundaries, as SEEK_DATA/SEEK_HOLE walk them."""
    out = []
    size = os.fstat(fd).st_size
    off = 0
    while off < size:
        try:
            data = os.lseek(fd, off, os.SEEK_DATA)
        except OSError as exc:
            assert exc.errno == errno.ENXIO
            break
        hole = os.lseek(fd, data, os.SEEK_HOLE)
        out.append(("data", data))
        out.append(("hole", hole))
        off = hole
    return out


def test_bytes_go_both_ways_without_the_server(served: Any, fuse_kernel: Any) -> None:
    _, mp, counting = served
    k = fuse_kernel
    fd = k.open("/f", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o666)
    k.pwrite(fd, b"A" * 5000, 0)
    k.pwrite(fd, b"far", 3 << 20)                     # a hole between
    k.close(fd)
    with open(mp / "f", "r+b", buffering=0) as f:
        assert in_memfd(k, "/f")
        assert f.read(5000) == b"A" * 5000
        assert f.read(10) == bytes(10)                 # the hole
        f.seek(100)
        f.write(b"host")
        assert counting.calls["read"] == 0 and counting.calls["write"] == 0
        # host -> kernel
        g = k.open("/f", os.O_RDWR)
        try:
            assert k.pread(g, 6, 98) == b"AAhost"
            k.pwrite(g, b"kernel", 200)                # kernel -> host, same pages
            assert os.pread(f.fileno(), 6, 200) == b"kernel"
            with mmap.mmap(f.fileno(), 0) as m:        # the host maps the memfd
                assert m[200:206] == b"kernel"
                m[300:304] = b"mmap"
            assert k.pread(g, 4, 300) == b"mmap"
            k.ftruncate(g, 250)                        # an in-process truncation
            assert os.fstat(f.fileno()).st_size == 250
            assert f.seek(0) == 0 and len(f.read()) == 250
        finally:
            k.close(g)
    assert counting.calls["read"] == 0 and counting.calls["write"] == 0


def test_size_blocks_holes_and_statfs_as_tmpfs(served: Any, fuse_kernel: Any,
                                               shm: Path) -> None:
    _, mp, _ = served
    before = os.statvfs(mp)
    results = []
    for d in (mp, shm):
        fd = os.open(d / "s", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            os.pwrite(fd, b"x" * 10000, 4096)
            os.pwrite(fd, b"y", 1 << 40)               # sparse: no memory for the gap
            os.pwrite(fd, b"z" * 8192, 1 << 20)
            from tests.support.hostproc import _fallocate
            _fallocate(fd, PUNCH_HOLE | KEEP_SIZE, 8192, 4096)
            _fallocate(fd, KEEP_SIZE, 2 << 20, 3 * 4096)   # allocated, reads as a hole
            for bad in (0x10, 0x08, 0x20):              # ZERO_RANGE, COLLAPSE, INSERT
                with pytest.raises(OSError) as ei:
                    _fallocate(fd, bad, 0, 4096)
                results.append(("refused", bad, ei.value.errno))
            st = os.fstat(fd)
            results.append((st.st_size, st.st_blocks, layout(fd)))
            os.ftruncate(fd, 6000)
            st = os.fstat(fd)
            results.append((st.st_size, st.st_blocks, layout(fd),
                            os.pread(fd, 6000, 0) == bytes(4096) + b"x" * 1904))
        finally:
            os.close(fd)
    mine, tmpfs = results[:len(results) // 2], results[len(results) // 2:]
    assert mine == tmpfs
    assert in_memfd(fuse_kernel, "/s")
    st = fuse_kernel.stat("/s")                        # in-process: the same file
    assert (st.st_size, st.st_blocks) == results[-1][:2]
    used = before.f_blocks - before.f_bfree
    after = os.statvfs(mp)
    assert after.f_blocks - after.f_bfree == used + st.st_blocks // 8


def test_times_follow_host_writes_and_never_go_back(served: Any, fuse_kernel: Any) -> None:
    _, mp, _ = served
    k = fuse_kernel
    old = 1_000_000_000 * 10**9
    fd = os.open(mp / "t", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.utime(mp / "t", ns=(old, old))
        os.pwrite(fd, b"through passthrough", 0)       # stamps the memfd only
        host = os.fstat(fd)
        kern = k.stat("/t")
        now = k.clock.now_ns()
        assert old < host.st_mtime_ns <= now and host.st_ctime_ns >= host.st_mtime_ns
        assert (kern.st_mtime_ns, kern.st_ctime_ns) == (host.st_mtime_ns, host.st_ctime_ns)
        # an explicit time after the host's write wins (it came later)
        os.utime(mp / "t", ns=(old, old))
        assert os.stat(mp / "t").st_mtime_ns == old == k.stat("/t").st_mtime_ns
        # a read through passthrough updates atime as relatime does (atime <= mtime)
        with open(mp / "t", "rb") as r:
            assert r.read(7) == b"through"
        assert os.stat(mp / "t").st_atime_ns > old and k.stat("/t").st_atime_ns > old
        # and a write right after a utime shows, however soon
        for _ in range(20):
            os.utime(mp / "t", ns=(old, old))
            os.pwrite(fd, b"T", 0)
            assert os.stat(mp / "t").st_mtime_ns > old
        os.utime(mp / "t", ns=(old, old))
        # in-process and host writes in turn: mtime never goes backwards
        seen = [old]
        g = k.open("/t", os.O_WRONLY)
        try:
            for i in range(20):
                if i % 2:
                    k.pwrite(g, b"k", i)
                else:
                    os.pwrite(fd, b"h", i)
                seen.append(os.fstat(fd).st_mtime_ns)
        finally:
            k.close(g)
        assert seen == sorted(seen) and seen[-1] > old
    finally:
        os.close(fd)


def test_uid1000_reads_writes_and_clears_setid(served: Any, fuse_kernel: Any) -> None:
    _, mp, counting = served
    k = fuse_kernel
    k.chmod("/", 0o777)
    fd = k.open("/shared", os.O_CREAT | os.O_WRONLY, 0o666)
    k.write(fd, b"root's bytes")
    k.close(fd)
    k.chmod("/shared", 0o666)
    with HostProcess(str(mp), uid=1000, gid=1000) as hp:
        f = hp.open("/shared", os.O_RDWR)
        assert hp.pread(f, 12, 0) == b"root's bytes"
        hp.pwrite(f, b"USER", 0)
        hp.close(f)
        assert in_memfd(k, "/shared") and counting.calls["write"] == 0
        assert k.stat("/shared").st_size == 12
        # a set-id file is never opened with passthrough: the non-owner's
        # write reaches the kernel, which clears the bits, as on tmpfs
        fd = k.open("/setid", os.O_CREAT | os.O_WRONLY, 0o6666)
        k.write(fd, b"root's")
        k.close(fd)
        for bits in (0o4000, 0o2000, 0o6010):
            k.chmod("/setid", 0o666 | bits)
            f = hp.open("/setid", os.O_WRONLY)
            hp.pwrite(f, b"u", 1)
            hp.close(f)
            assert k.stat("/setid").st_mode & 0o7777 == (0o676 if bits & 0o10 else 0o666)
        assert counting.calls["write"] == 3 and not in_memfd(k, "/setid")
        own = hp.open("/mine", os.O_CREAT | os.O_RDWR, 0o600)
        hp.pwrite(own, b"x", 1 << 30)
        assert hp.fstat(own).st_blocks == 8 and k.stat("/mine").st_uid == 1000
        hp.close(own)


def test_over_the_budget_files_go_through_the_server(served: Any, fuse_kernel: Any) -> None:
    _, mp, counting = served
    k = fuse_kernel
    shm = k.vfs.shm
    shm.budget = shm.in_use                            # no more memfds
    (mp / "b").write_bytes(b"still works")
    assert (mp / "b").read_bytes() == b"still works"
    assert not in_memfd(k, "/b") and counting.calls["write"] > 0
    # a node the host has open in cached mode stays so for its later opens
    with open(mp / "b", "rb") as f1:
        shm.budget = shm.in_use + 10
        with open(mp / "b", "r+b", buffering=0) as f2:
            f2.write(b"STILL")
            assert f1.read() == b"STILL works"
    assert not in_memfd(k, "/b")
    assert (mp / "b").read_bytes() == b"STILL works" and in_memfd(k, "/b")


def test_unlinked_open_links_renames_and_release(fuse_kernel: Any) -> None:
    from rumpfs.fuse import serve

    k = fuse_kernel
    shm = k.vfs.shm
    mp = make_mountpoint()
    try:
        with serve(k, mp, allow_other=True) as server:
            if not server.ops.passthrough:
                pytest.skip("no FUSE_PASSTHROUGH here")
            fd = os.open(f"{mp}/a", os.O_CREAT | os.O_RDWR, 0o644)
            os.write(fd, b"first")
            assert shm.in_use == 1
            k.link("/a", "/b")                         # same node, same memfd
            k.rename("/a", "/c")
            os.pwrite(fd, b"FIRST", 0)
            g = k.open("/b", os.O_RDONLY)
            assert k.pread(g, 5, 0) == b"FIRST"
            k.close(g)
            g = k.open("/c", os.O_RDONLY)
            assert k.pread(g, 5, 0) == b"FIRST"
            k.close(g)
            k.unlink("/b")
            k.unlink("/c")                             # unlinked, open on the host
            os.pwrite(fd, b"!", 5)
            assert os.pread(fd, 10, 0) == b"FIRST!"
            assert os.fstat(fd).st_nlink == 0
            os.close(fd)
            (Path(mp) / "kept").write_bytes(b"k")
        # unmounted: the host forgot the unlinked node, whose memfd is gone;
        # the named file keeps its bytes (and its memfd) in the kernel
        assert shm.in_use == 1
        g = k.open("/kept", os.O_RDONLY)
        assert k.read(g, 10) == b"k"
        k.close(g)
        k.unlink("/kept")
        assert shm.in_use == 0
    finally:
        remove_mountpoint(mp)


def test_exclusive_mount(exclusive_mnt: Path, fuse_kernel: Any) -> None:
    p = exclusive_mnt / "x"
    p.write_bytes(b"a" * 100_000)
    with open(p, "r+b") as f:
        f.seek(50_000)
        f.write(b"B")
    assert p.read_bytes() == b"a" * 50_000 + b"B" + b"a" * 49_999
    assert os.stat(p).st_blocks == 200
    g = fuse_kernel.open("/x", os.O_RDONLY)
    try:
        assert fuse_kernel.pread(g, 2, 49_999) == b"aB"
    finally:
        fuse_kernel.close(g)


def test_size_limited_mount_stays_in_the_kernel(served: Any, fuse_kernel: Any) -> None:
    _, mp, counting = served
    k = fuse_kernel
    k.mkdir("/lim")
    k.mount("rumpfs", "/lim", options={"size": 8 * 4096})
    fd = os.open(mp / "lim" / "f", os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        assert os.write(fd, b"x" * (6 * 4096)) == 6 * 4096
        assert os.pwrite(fd, b"y" * (4 * 4096), 6 * 4096) == 2 * 4096
        with pytest.raises(OSError) as ei:
            os.pwrite(fd, b"y" * 4096, 10 * 4096)
        assert ei.value.errno == errno.ENOSPC
    finally:
        os.close(fd)
    assert not in_memfd(k, "/f", k.vfs.mounts[-1].root) and counting.calls["write"] > 0
    assert os.stat(mp / "lim" / "f").st_blocks == 8 * 8


def test_two_opens_of_one_etfs_file(served: Any, fuse_kernel: Any, shm: Path) -> None:
    """Linux wants every open of a passthrough inode to name the same backing
    file; a second backing id made the second open fail with EIO."""
    from rumpfs import EtfsType

    _, mp, counting = served
    host = shm / "h"
    host.write_bytes(b"etfs bytes")
    fuse_kernel.etfs_register("/e", str(host), EtfsType.REG)
    with open(mp / "e", "rb") as a, open(mp / "e", "rb") as b:
        assert a.read() == b.read() == b"etfs bytes"
    with open(mp / "e", "r+b", buffering=0) as a, open(mp / "e", "r+b", buffering=0) as b:
        a.write(b"ETFS")
        assert b.read() == b"ETFS bytes"
        with open(mp / "e", "rb") as c:             # a reader shares a writer's backing
            assert c.read() == b"ETFS bytes"
    assert counting.calls["read"] == 0 and counting.calls["write"] == 0
    # first opened read-only, the node's backing descriptor cannot be written:
    # a writer meanwhile is refused (Linux accepts no other backing, and no
    # non-passthrough open, while the first is open)
    with open(mp / "e", "rb") as a:
        with pytest.raises(OSError) as ei:
            os.close(os.open(mp / "e", os.O_RDWR))
        assert ei.value.errno == errno.EIO
        assert a.read() == b"ETFS bytes"
    with open(mp / "e", "r+b", buffering=0) as b:   # and accepted once it closed
        b.write(b"e")
    w = os.open(mp / "e", os.O_WRONLY)                # likewise a reader after a writer
    try:
        with pytest.raises(OSError) as ei:
            os.close(os.open(mp / "e", os.O_RDONLY))
        assert ei.value.errno == errno.EIO
        assert os.write(w, b"E") == 1
    finally:
        os.close(w)
    assert (mp / "e").read_bytes() == b"ETFS bytes"


def test_a_non_root_server_keeps_files_in_the_kernel() -> None:
    """Served by an unprivileged user (no FUSE_DEV_IOC_BACKING_OPEN, so no
    passthrough): data, sparse sizes, st_blocks and holes as before, through
    the server. Run as in test_cli's test_non_root_mount (a private mount
    namespace whose /dev/fuse is 0666)."""
    import subprocess
    import sys
    import tempfile

    from tests.conformance.fuse.test_cli import UNPRIVILEGED, run_as, serving_line, wait_gone

    mp = make_mountpoint("rumpfs-memfd-user-")
    dev = tempfile.mkdtemp(prefix="rumpfs-memfd-dev-", dir="/tmp")
    os.chown(mp, UNPRIVILEGED, UNPRIVILEGED)

    def check() -> None:  # in the child, as the user, inside its namespace
        path = os.path.join(mp, "sparse")
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        os.pwrite(fd, b"head", 0)
        os.pwrite(fd, b"tail", 1 << 40)
        st = os.fstat(fd)
        print(f"{st.st_size} {st.st_blocks} {os.lseek(fd, 0, os.SEEK_HOLE)} "
              f"{os.lseek(fd, 4096, os.SEEK_DATA)} {os.pread(fd, 4, 1 << 40)!r}",
              file=sys.stderr)
        os.close(fd)
        done = subprocess.run(["fusermount3", "-u", mp], capture_output=True, text=True,
                              timeout=60, check=False)
        print(f"fusermount3 -u: {done.returncode}", file=sys.stderr)

    try:
        code, err = run_as(UNPRIVILEGED, "mount", mp, private_fuse=dev, then=check)
        assert code == 0, err
        lines = err.splitlines(keepends=True)
        m = serving_line(mp).fullmatch(lines[0])
        assert m is not None, err
        assert lines[1:] == [f"{(1 << 40) + 4} 16 4096 {1 << 40} b'tail'\n",
                             "fusermount3 -u: 0\n"]
        wait_gone(int(m.group(1)))
    finally:
        os.rmdir(dev)
        remove_mountpoint(mp)
