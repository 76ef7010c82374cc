"""Kernel-level behaviour the contract suite cannot compare with the host:
independence of kernels, mounts, devices, big directories, io files, shutdown."""

from __future__ import annotations

import errno
import os
import stat
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rumpfs import Kernel


@pytest.fixture
def k() -> Iterator[Kernel]:
    with Kernel() as kernel:
        yield kernel


def expect(code: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> OSError:
    with pytest.raises(OSError) as info:
        fn(*args, **kwargs)
    assert info.value.errno == code, info.value
    return info.value


def test_kernels_are_independent() -> None:
    with Kernel() as a, Kernel() as b:
        a.mkdir("/only-in-a")
        assert b.listdir("/") == []
        fd = a.open("/f", os.O_CREAT | os.O_WRONLY)
        expect(errno.EBADF, b.close, fd)
        a.close(fd)


def test_process_has_own_fds_cwd_umask(k: Kernel) -> None:
    p = k.process(uid=1000, gid=1000, groups=(100,))
    assert (p.uid, p.gid, p.groups) == (1000, 1000, frozenset({100}))
    k.mkdir("/tmp", 0o1777)
    k.chmod("/tmp", 0o1777)
    p.chdir("/tmp")
    assert p.getcwd() == "/tmp" and k.getcwd() == "/"
    fd = p.open("f", os.O_CREAT | os.O_WRONLY, 0o666)
    expect(errno.EBADF, k.write, fd, b"x")
    p.close(fd)
    assert stat.S_IMODE(k.stat("/tmp/f").st_mode) == 0o644
    assert (k.stat("/tmp/f").st_uid, k.stat("/tmp/f").st_gid) == (1000, 1000)
    assert p.umask(0o077) == 0o022


def test_mount_crossing_and_unmount_rules(k: Kernel) -> None:
    k.mkdir("/mnt")
    k.mount("rumpfs", "/mnt")
    k.mkdir("/mnt/sub")
    assert k.stat("/mnt").st_dev != k.stat("/").st_dev
    assert k.stat("/mnt/sub/../..").st_ino == k.stat("/").st_ino
    expect(errno.EXDEV, k.rename, "/mnt/sub", "/sub")
    expect(errno.EBUSY, k.rmdir, "/mnt")
    fd = k.open("/mnt/sub", os.O_RDONLY)
    expect(errno.EBUSY, k.unmount, "/mnt")
    k.close(fd)
    p = k.process()
    p.chdir("/mnt/sub")
    expect(errno.EBUSY, k.unmount, "/mnt")
    p.chdir("/")
    expect(errno.EINVAL, k.unmount, "/mnt/sub")
    k.unmount("/mnt")
    assert k.listdir("/mnt") == []


def test_read_only_mount_refuses_every_change(k: Kernel) -> None:
    k.mkdir("/ro")
    k.mount("rumpfs", "/ro")
    k.mkdir("/ro/d")
    fd = k.open("/ro/f", os.O_CREAT | os.O_WRONLY)
    k.write(fd, b"data")
    k.close(fd)
    fd = k.open("/ro/f", os.O_WRONLY)
    expect(errno.EBUSY, k.remount, "/ro", True)
    k.close(fd)
    k.remount("/ro", True)
    changes: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
        (k.mkdir, ("/ro/x",)), (k.rmdir, ("/ro",)), (k.unlink, ("/ro/f",)),
        (k.open, ("/ro/n", os.O_CREAT | os.O_WRONLY)), (k.open, ("/ro/f", os.O_WRONLY)),
        (k.open, ("/ro/f", os.O_RDONLY | os.O_TRUNC)),
        (k.rename, ("/ro/f", "/ro/g")), (k.link, ("/ro/f", "/ro/g")),
        (k.symlink, ("t", "/ro/s")), (k.mknod, ("/ro/p", stat.S_IFIFO)),
        (k.chmod, ("/ro/f", 0o600)), (k.chown, ("/ro/f", 1, 1)),
        (k.utime, ("/ro/f",)), (k.truncate, ("/ro/f", 0)),
    ]
    for fn, args in changes:
        err = expect(errno.EBUSY if fn == k.rmdir else errno.EROFS, fn, *args)
        assert err is not None
    assert sorted(k.listdir("/ro")) == ["d", "f"]
    fd = k.open("/ro/f", os.O_RDONLY)
    assert k.read(fd, 10) == b"data"
    k.close(fd)
    assert k.access("/ro/f", os.W_OK) is False
    assert k.statvfs("/ro").f_flag & os.ST_RDONLY
    k.remount("/ro", False)
    k.unlink("/ro/f")
    k.mount("rumpfs", "/ro/d", read_only=True)
    assert k.listdir("/ro/d") == []
    expect(errno.EROFS, k.mkdir, "/ro/d/x")


def test_device_nodes_go_through_the_device_switch(k: Kernel) -> None:
    k.mkdir("/dev")
    k.mknod("/dev/zero", stat.S_IFCHR | 0o666, os.makedev(1, 5))
    k.mknod("/dev/nodrv", stat.S_IFBLK | 0o600, os.makedev(250, 0))
    k.mknod("/dev/nominor", stat.S_IFCHR | 0o600, os.makedev(1, 200))
    assert k.stat("/dev/zero").st_rdev == os.makedev(1, 5)
    assert stat.S_ISBLK(k.stat("/dev/nodrv").st_mode)
    fd = k.open("/dev/zero", os.O_RDWR)
    assert k.read(fd, 3) == b"\0\0\0"
    assert k.write(fd, b"abc") == 3
    k.close(fd)
    expect(errno.ENXIO, k.open, "/dev/nodrv", os.O_RDONLY)
    expect(errno.ENXIO, k.open, "/dev/nominor", os.O_RDONLY)
    k.mkdir("/tmp")
    k.chmod("/tmp", 0o1777)
    expect(errno.EPERM, k.process(uid=5).mknod, "/tmp/x", stat.S_IFCHR, os.makedev(1, 3))
    expect(errno.EACCES, k.process(uid=5).mknod, "/x", stat.S_IFCHR, os.makedev(1, 3))


def test_fifo_and_socket_nodes(k: Kernel) -> None:
    k.mknod("/fifo", stat.S_IFIFO | 0o600)
    k.mknod("/sock", stat.S_IFSOCK | 0o600)
    assert stat.S_ISFIFO(k.stat("/fifo").st_mode)
    assert stat.S_ISSOCK(k.stat("/sock").st_mode)
    assert sorted(k.listdir("/")) == ["fifo", "sock"]
    expect(errno.ENXIO, k.open, "/sock", os.O_RDONLY)
    expect(errno.ENXIO, k.open, "/fifo", os.O_WRONLY | os.O_NONBLOCK)
    fd = k.open("/fifo", os.O_RDONLY | os.O_NONBLOCK)
    assert k.read(fd, 10) == b""
    expect(errno.ESPIPE, k.lseek, fd, 0, os.SEEK_SET)
    k.close(fd)


def test_sparse_tebibyte_write(k: Kernel) -> None:
    fd = k.open("/sparse", os.O_CREAT | os.O_RDWR)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    assert k.pwrite(fd, b"!", 1 << 40) == 1
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 64 * 1024
    st = k.fstat(fd)
    assert st.st_size == (1 << 40) + 1
    assert st.st_blocks == 8
    assert k.pread(fd, 3, (1 << 40) - 2) == b"\0\0!"
    assert k.lseek(fd, 0, os.SEEK_DATA) == 1 << 40
    assert k.lseek(fd, 0, os.SEEK_HOLE) == 0
    k.close(fd)


def test_big_directory_readdir_is_stable_under_churn(k: Kernel) -> None:
    k.mkdir("/big")
    for i in range(3000):
        k.close(k.open(f"/big/keep{i}", os.O_CREAT | os.O_WRONLY))
    h = k.node_handles()
    proc = h.process_for(0, 0)
    big = h.lookup(proc, h.ROOT, b"big").st_ino
    dh = h.opendir(proc, big)
    seen: list[bytes] = []
    offset = 0
    churn = 0
    while True:
        batch: list[tuple[bytes, int]] = []

        def reply(name: bytes, attr: os.stat_result, off: int,
                  batch: list[tuple[bytes, int]] = batch) -> bool:
            batch.append((name, off))
            return len(batch) < 100

        h.readdir(dh, offset, reply)
        if not batch:
            break
        # the last entry was refused (reply returned False): resume at the one before it
        accepted = batch if len(batch) < 100 else batch[:-1]
        seen.extend(name for name, _ in accepted)
        offset = accepted[-1][1]
        if len(seen) > 2500:      # let the listing catch up with the writer
            continue
        for _ in range(50):       # add and remove names between the calls
            k.close(k.open(f"/big/tmp{churn}", os.O_CREAT | os.O_WRONLY))
            if churn % 2:
                k.unlink(f"/big/tmp{churn - 1}")
            churn += 1
    h.releasedir(dh)
    keep = [n for n in seen if n.startswith(b"keep")]
    assert len(keep) == len(set(keep)) == 3000
    assert seen[:2] == [b".", b".."]
    h.forget(big, 1)


def test_unlinked_file_lives_until_last_close(k: Kernel) -> None:
    fd = k.open("/f", os.O_CREAT | os.O_RDWR)
    fd2 = k.dup(fd)
    k.write(fd, b"still here")
    k.unlink("/f")
    assert k.fstat(fd).st_nlink == 0
    k.close(fd)
    assert k.pread(fd2, 100, 0) == b"still here"
    k.pwrite(fd2, b"S", 0)
    assert k.pread(fd2, 5, 0) == b"Still"
    k.close(fd2)


def test_open_file_like_builtins_open(k: Kernel) -> None:
    with k.open_file("/t.txt", "w", encoding="utf-8") as f:
        f.write("héllo\nwörld\n")
    with k.open_file("/t.txt", encoding="utf-8") as f:
        assert f.readline() == "héllo\n"
        assert f.read() == "wörld\n"
    with k.open_file("/t.txt", "a") as f:
        f.write("more")
    with k.open_file("/t.txt", "rb") as f:
        assert f.read().endswith(b"more")
        f.seek(1)
        assert f.tell() == 1
    with k.open_file("/t.txt", "r+b", buffering=0) as f:
        f.write(b"H")
        f.seek(0)
        assert f.read(2) == b"H\xc3"
    with pytest.raises(FileExistsError):
        k.open_file("/t.txt", "x")
    with pytest.raises(IsADirectoryError):
        k.open_file("/", "r")
    with pytest.raises(ValueError):
        k.open_file("/t.txt", "rw")
    with pytest.raises(FileNotFoundError):
        k.open_file("/missing")
    with k.open_file("/n.txt", "w", newline="\r\n") as f:
        f.write("a\n")
    assert k.open_file("/n.txt", "rb").read() == b"a\r\n"


def test_shutdown_closes_every_descriptor() -> None:
    k = Kernel()
    p = k.process(uid=1)
    fd = k.open("/f", os.O_CREAT | os.O_WRONLY)
    k.close(k.open("/g", os.O_CREAT | os.O_WRONLY))
    pfd = p.open("/f", os.O_RDONLY)
    k.shutdown()
    assert all(not proc.fds.items() for proc in k._procs.values())
    expect(errno.ESHUTDOWN, k.write, fd, b"x")
    expect(errno.ESHUTDOWN, p.read, pfd, 1)
    k.shutdown()        # idempotent


def test_handles_lookup_counts_keep_unlinked_nodes(k: Kernel) -> None:
    h = k.node_handles()
    proc = h.process_for(0, 0)
    fh, attr = h.create(proc, h.ROOT, b"f", 0o644, os.O_RDWR)
    h.write(fh, b"abc", 0)
    h.release(fh)
    k.unlink("/f")
    assert h.getattr(attr.st_ino).st_nlink == 0
    assert h.lookup_count(attr.st_ino) == 1
    h.forget(attr.st_ino, 1)
    expect(errno.ESTALE, h.getattr, attr.st_ino)


class _Seen:
    """A watcher recording what it is told (vfs.mount.Watcher)."""

    def __init__(self) -> None:
        self.attrs: list[object] = []
        self.data: list[tuple[object, int, int]] = []
        self.entries: list[tuple[object, str]] = []

    def changed(self, vp: object) -> None:
        self.attrs.append(vp)

    def changed_data(self, vp: object, offset: int, length: int) -> None:
        self.data.append((vp, offset, length))

    def changed_entry(self, dvp: object, name: str) -> None:
        self.entries.append((dvp, name))


class _Barrier:
    """A barrier that records the tickets in-process calls wait for."""

    def __init__(self) -> None:
        self.queued = 0
        self.done = 0
        self.waited: list[int] = []

    def wait(self, ticket: int) -> None:
        self.waited.append(ticket)
        self.done = ticket


def test_handles_subscribe_tells_every_change_with_names_and_ranges(k: Kernel) -> None:
    h = k.node_handles()
    proc = h.process_for(0, 0)
    d = h.mkdir(proc, h.ROOT, b"d", 0o755)
    seen = _Seen()
    unsubscribe = h.subscribe(seen)
    h.mkdir(proc, d.st_ino, b"by-frontend", 0o755)      # the watcher tells these apart
    k.mkdir("/d/in-process")
    assert [(dvp.handle, name) for dvp, name in seen.entries] == [  # type: ignore[attr-defined]
        (d.st_ino, "by-frontend"), (d.st_ino, "in-process")]
    fd = k.open("/d/f", os.O_CREAT | os.O_RDWR)
    k.pwrite(fd, b"abcd", 10)
    k.ftruncate(fd, 2)
    assert [(o, n) for _, o, n in seen.data] == [(10, 4), (2, 0)]
    k.chmod("/d/f", 0o600)
    k.rename("/d/f", "/d/g")
    assert [name for _, name in seen.entries[-3:]] == ["f", "f", "g"]
    assert len(seen.attrs) == 2         # chmod; rename (the moved node's ctime)
    k.close(fd)
    unsubscribe()
    k.mkdir("/d/after")
    assert seen.entries[-1][1] == "g"


def test_in_process_calls_wait_on_a_barrier_only_while_attached(k: Kernel) -> None:
    h = k.node_handles()
    b = _Barrier()
    unsubscribe = h.subscribe(_Seen(), b)
    p = k.process(uid=0)                # made while attached: waits too
    b.queued = 3
    k.mkdir("/a")
    p.mkdir("/b")
    assert b.waited == [3]              # done caught up after the first wait
    b.queued = 5
    p.stat("/b")
    assert b.waited == [3, 5]
    unsubscribe()
    b.queued = 9
    k.mkdir("/c")
    p.mkdir("/d")
    assert b.waited == [3, 5]


def test_exit_process_releases_descriptors_and_cwd(k: Kernel) -> None:
    k.mkdir("/d")
    k.mount("rumpfs", "/d")
    p = k.process(uid=0)
    p.chdir("/d")
    fd = p.open("/d/f", os.O_CREAT | os.O_WRONLY)
    expect(errno.EBUSY, k.unmount, "/d")
    k.exit_process(p)
    expect(errno.EBADF, p.write, fd, b"x")
    k.unmount("/d")
    assert p.getcwd() == "/"


def test_mount_on_a_removed_directory_is_enoent(k: Kernel) -> None:
    # Linux refuses to mount on an unlinked directory (do_lock_mount: ENOENT).
    k.mkdir("/a")
    k.chdir("/a")
    k.rmdir("/a")
    expect(errno.ENOENT, k.mount, "rumpfs", ".")
    k.chdir("/")
    assert k.listdir("/") == []


def test_handles_rename_into_a_removed_directory_is_enoent(k: Kernel) -> None:
    # The FUSE path (vnode handles) gets the same check as the os-like calls.
    h = k.node_handles()
    proc = h.process_for(0, 0)
    d = h.mkdir(proc, h.ROOT, b"d", 0o755)
    h.mkdir(proc, h.ROOT, b"c", 0o755)
    h.rmdir(proc, h.ROOT, b"d")
    expect(errno.ENOENT, h.rename, proc, h.ROOT, b"c", d.st_ino, b"x")
    expect(errno.ENOENT, h.mkdir, proc, d.st_ino, b"x", 0o755)
    assert sorted(k.listdir("/")) == ["c"]


@pytest.mark.parametrize("protected", [True, False])
def test_protected_hardlinks_is_a_kernel_option(protected: bool) -> None:
    with Kernel(protected_hardlinks=protected) as k:
        k.mkdir("/w", 0o777)
        k.chmod("/w", 0o777)
        fd = k.open("/secret", os.O_CREAT | os.O_WRONLY, 0o600)
        k.close(fd)
        user = k.process(uid=1000, gid=1000)
        if protected:
            expect(errno.EPERM, user.link, "/secret", "/w/hl")
        else:
            user.link("/secret", "/w/hl")
            assert k.stat("/secret").st_nlink == 2
        k.link("/secret", "/w/root-may")            # root is never restricted
    with pytest.raises(TypeError):
        Kernel(protected_hardlinks="yes")  # type: ignore[arg-type]
