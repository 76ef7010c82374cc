"""serve() caches and pushes invalidations: one test per kind of in-process change.

Each test first shows the host really serving from its cache (the server is
not asked again: counted below the frontend), then changes the kernel
in-process and checks the host's very next look is fresh -- the in-process
call returned only after its invalidations were delivered. Host looks are
this process's own ``os`` calls on the mount (answered by the server's
threads); a shared mapping is read from a child (the serving process must
not map its own mount).
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.fuse.conftest import ROOT, make_mountpoint, remove_mountpoint


class Counting:
    """NodeHandles with the calls a cache hit avoids counted."""

    COUNTED = ("lookup", "getattr", "read", "readdir", "readlink", "open")

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.ROOT = inner.ROOT
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in self.COUNTED:
            return attr

        def counted(*args: Any, **kw: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kw)
        return counted


@pytest.fixture(params=[False, True], ids=["as-served", "page-cache"])
def served(fuse_kernel: Any,
           request: pytest.FixtureRequest) -> Iterator[tuple[Any, Path, Counting]]:
    """``page-cache``: no FUSE passthrough even as root, so file data goes
    through the host's own page cache (kept across opens)."""
    from rumpfs.frontends.fuse import FuseServer

    counting = Counting(fuse_kernel.node_handles())
    mp = make_mountpoint()
    server = FuseServer(counting, mp, allow_other=ROOT)  # type: ignore[arg-type]
    try:
        server.start()
        assert server.ops.inval is not None     # serve()'s mode: caching + notifications
        if request.param:
            server.ops.passthrough = False
        yield fuse_kernel, Path(mp), counting
    finally:
        server.stop()
        remove_mountpoint(mp)


def read_all(path: Path) -> bytes:
    with open(path, "rb", buffering=0) as f:
        return f.read()


def test_in_process_write_reaches_pages_the_host_keeps(served: Any) -> None:
    k, mp, c = served
    k.path("/f").write_bytes(b"a" * 3 * 4096)
    assert read_all(mp / "f") == b"a" * 3 * 4096
    reads = c.calls["read"]
    assert read_all(mp / "f") == b"a" * 3 * 4096
    assert c.calls["read"] == reads             # keep_cache: from the host's pages
    fd = k.open("/f", os.O_WRONLY)
    k.pwrite(fd, b"b" * 10, 4096 + 5)
    k.close(fd)
    data = read_all(mp / "f")
    assert data[4096 + 5:4096 + 15] == b"b" * 10
    assert data.count(b"a") == 3 * 4096 - 10
    # appending and truncating in-process: size and bytes fresh
    k.path("/f").write_bytes(b"short")
    assert read_all(mp / "f") == b"short"
    assert os.stat(mp / "f").st_size == 5


def test_in_process_write_reaches_a_host_mapping(served: Any) -> None:
    k, mp, _ = served
    k.path("/m").write_bytes(b"old!" * 1024)
    with subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import mmap, sys
        f = open(sys.argv[1], "rb")
        m = mmap.mmap(f.fileno(), 4096, prot=mmap.PROT_READ)
        print(m[:4].decode(), flush=True)
        sys.stdin.readline()
        print(m[:4].decode(), flush=True)
    """), str(mp / "m")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdin is not None and child.stdout is not None
        try:
            assert child.stdout.readline().strip() == "old!"
            fd = k.open("/m", os.O_WRONLY)
            k.pwrite(fd, b"new!", 0)
            k.close(fd)
            child.stdin.write("\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "new!"
        finally:
            child.kill()


def test_in_process_unlink_then_host_stat_is_enoent(served: Any) -> None:
    k, mp, c = served
    k.path("/u").write_bytes(b"x")
    os.stat(mp / "u")
    n = c.calls["lookup"] + c.calls["getattr"]
    os.stat(mp / "u")
    assert c.calls["lookup"] + c.calls["getattr"] == n      # entry and attributes cached
    k.unlink("/u")
    with pytest.raises(FileNotFoundError):
        os.stat(mp / "u")


def test_in_process_create_beats_a_cached_negative_entry(served: Any) -> None:
    k, mp, c = served
    with pytest.raises(FileNotFoundError):
        os.stat(mp / "n")
    n = c.calls["lookup"]
    with pytest.raises(FileNotFoundError):
        os.stat(mp / "n")
    assert c.calls["lookup"] == n               # the negative entry is kept
    k.path("/n").write_bytes(b"here")
    assert os.stat(mp / "n").st_size == 4
    k.mkdir("/nd")                              # and for every kind of create
    k.symlink("n", "/nl")
    k.link("/n", "/nh")
    assert stat.S_ISDIR(os.stat(mp / "nd").st_mode)
    assert os.readlink(mp / "nl") == "n"
    assert os.stat(mp / "nh").st_nlink == 2
    assert os.stat(mp / "n").st_nlink == 2      # the other name's cached attributes too


def test_in_process_chmod_chown_utime_truncate_are_fresh(served: Any) -> None:
    k, mp, c = served
    k.path("/a").write_bytes(b"12345678")
    fd = os.open(mp / "a", os.O_RDONLY)
    try:
        os.fstat(fd)
        n = c.calls["getattr"]
        os.fstat(fd)
        os.stat(mp / "a")
        assert c.calls["getattr"] == n          # attributes cached
        k.chmod("/a", 0o600)
        assert stat.S_IMODE(os.stat(mp / "a").st_mode) == 0o600
        k.chown("/a", 123, 456)
        st = os.fstat(fd)
        assert (st.st_uid, st.st_gid) == (123, 456)
        k.utime("/a", ns=(1_000_000_000, 2_000_000_000))
        assert os.stat(mp / "a").st_mtime_ns == 2_000_000_000
        k.truncate("/a", 3)
        assert os.fstat(fd).st_size == 3
        assert os.pread(fd, 100, 0) == b"123"
        k.truncate("/a", 6)
        assert os.pread(fd, 100, 0) == b"123\0\0\0"
    finally:
        os.close(fd)


def test_in_process_rename_moves_names_the_host_holds(served: Any) -> None:
    k, mp, _ = served
    k.path("/r1").write_bytes(b"one")
    k.path("/r2").write_bytes(b"two")
    assert read_all(mp / "r1") == b"one" and read_all(mp / "r2") == b"two"
    k.rename("/r1", "/r2")                      # over an existing name
    assert read_all(mp / "r2") == b"one"
    with pytest.raises(FileNotFoundError):
        os.stat(mp / "r1")
    k.mkdir("/d1")
    k.path("/d1/in").write_bytes(b"in")
    assert os.listdir(mp / "d1") == ["in"]
    k.rename("/d1", "/d2")
    assert os.listdir(mp / "d2") == ["in"]
    with pytest.raises(FileNotFoundError):
        os.listdir(mp / "d1")


def test_cached_listing_follows_in_process_changes(served: Any) -> None:
    k, mp, c = served
    k.mkdir("/l")
    for i in range(5):
        k.path(f"/l/{i}").write_bytes(b"")
    assert sorted(os.listdir(mp / "l")) == [str(i) for i in range(5)]
    n = c.calls["readdir"]
    assert sorted(os.listdir(mp / "l")) == [str(i) for i in range(5)]
    assert c.calls["readdir"] == n              # the listing is cached
    k.unlink("/l/0")
    k.path("/l/new").write_bytes(b"")
    assert sorted(os.listdir(mp / "l")) == ["1", "2", "3", "4", "new"]


def test_etfs_key_removal_is_seen(served: Any, tmp_path: Path) -> None:
    from rumpfs import EtfsType

    k, mp, _ = served
    host = tmp_path / "h.bin"
    host.write_bytes(b"host bytes")
    k.etfs_register("/key", str(host), EtfsType.REG)
    assert "key" in os.listdir(mp)
    assert read_all(mp / "key") == b"host bytes"
    k.etfs_remove("/key")
    assert "key" not in os.listdir(mp)
    with pytest.raises(FileNotFoundError):
        os.stat(mp / "key")


def test_etfs_host_file_is_not_cached(served: Any, tmp_path: Path) -> None:
    """An etfs file may change behind the kernel's back (its host file): serve()
    lets the host keep nothing of it."""
    from rumpfs import EtfsType

    k, mp, _ = served
    host = tmp_path / "h.bin"
    host.write_bytes(b"first")
    k.etfs_register("/key", str(host), EtfsType.REG)
    assert read_all(mp / "key") == b"first"
    host.write_bytes(b"second!")
    assert os.stat(mp / "key").st_size == 7
    assert read_all(mp / "key") == b"second!"


def test_mount_and_remount_in_process_are_seen(served: Any) -> None:
    """(An in-process unmount of a file system the host has looked into is
    EBUSY while the host holds its nodes, as before: see docs/frontends.md.)"""
    k, mp, _ = served
    k.mkdir("/mnt")
    k.path("/mnt/covered").write_bytes(b"")
    assert os.listdir(mp / "mnt") == ["covered"]
    assert os.stat(mp / "mnt" / "covered").st_size == 0
    k.mount("rumpfs", "/mnt")
    k.path("/mnt/mounted").write_bytes(b"")
    assert os.listdir(mp / "mnt") == ["mounted"]
    with pytest.raises(FileNotFoundError):
        os.stat(mp / "mnt" / "covered")
    k.remount("/mnt", read_only=True)
    with pytest.raises(OSError) as e:
        (mp / "mnt" / "w").write_bytes(b"")
    assert e.value.errno == errno.EROFS


def test_xattr_and_acl_changes_in_process_are_seen(served: Any) -> None:
    k, mp, _ = served
    k.path("/x").write_bytes(b"")
    assert os.listxattr(mp / "x") == []
    k.setxattr("/x", "user.k", b"v")
    assert os.getxattr(mp / "x", "user.k") == b"v"
    k.removexattr("/x", "user.k")
    with pytest.raises(OSError):
        os.getxattr(mp / "x", "user.k")


def test_a_change_through_one_mount_reaches_another_of_the_same_kernel(served: Any) -> None:
    """Each mount tells only its own requests' changes apart: what one mount
    changes is pushed to the other's host caches like any in-process change --
    but without a wait (a request handler never waits for notifications), so
    the host program syncs with an in-process call, whose return waits for
    every notification queued before it."""
    from rumpfs.frontends.fuse import FuseServer

    k, mp, _ = served
    mp2 = make_mountpoint()
    other = FuseServer(k.node_handles(), mp2, allow_other=ROOT)
    try:
        other.start()
        k.path("/both").write_bytes(b"12345")
        assert os.stat(mp / "both").st_size == 5
        assert read_all(mp / "both") == b"12345"
        assert "both" in os.listdir(mp)
        with open(Path(mp2) / "both", "r+b", buffering=0) as f:
            f.write(b"ab")
            f.truncate(3)
        k.stat("/")                             # delivered once this returns
        assert os.stat(mp / "both").st_size == 3
        assert read_all(mp / "both") == b"ab3"
        os.rename(Path(mp2) / "both", Path(mp2) / "moved")
        k.stat("/")
        assert sorted(os.listdir(mp)) == ["moved"]
        with pytest.raises(FileNotFoundError):
            os.stat(mp / "both")
    finally:
        other.stop()
        remove_mountpoint(mp2)
