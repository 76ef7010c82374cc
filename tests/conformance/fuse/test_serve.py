"""serve(): lifecycle, robustness, lookup-count bookkeeping."""

from __future__ import annotations

import errno
import logging
import os
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.conformance.fuse.conftest import (
    ROOT,
    is_mounted,
    make_mountpoint,
    remove_mountpoint,
)


class CountingHandles:
    """Wraps a kernel's NodeHandles: counts lookups given and taken back per handle,
    and raises RuntimeError from any call naming ``b"boom"``."""

    GAINING = {"lookup", "mknod", "mkdir", "symlink", "link"}

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.ROOT = inner.ROOT
        self.net: Counter[int] = Counter()
        self.open_files: set[int] = set()

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.inner, name)
        if not callable(fn):
            return fn

        def call(*args: Any, **kwargs: Any) -> Any:
            if b"boom" in args:
                raise RuntimeError("injected failure")
            result = fn(*args, **kwargs)
            if name in self.GAINING:
                self.net[result.st_ino] += 1
            elif name == "probe" and result is not None:
                self.net[result[0]] += 1
            elif name == "create":
                self.net[result[1].st_ino] += 1
                self.open_files.add(result[0])
            elif name == "open":
                self.open_files.add(result)
            elif name == "release":
                self.open_files.discard(args[0])
            elif name == "forget":
                self.net[args[0]] -= args[1]
            return result

        return call

    def readdir(self, dh: int, start: int, reply: Callable[..., bool], plus: bool = True) -> None:
        def counting(name: bytes, st: Any, off: int) -> bool:
            ok = reply(name, st, off)
            if ok and plus and name not in (b".", b".."):  # the kernel does not count these
                self.net[st.st_ino] += 1
            return ok

        self.inner.readdir(dh, start, counting, plus=plus)

    def readdir_plus(self, dh: int, start: int, reply: Callable[..., bool],
                     count: bool = True, stop: Callable[[int], bool] | None = None) -> None:
        def counting(name: bytes, handle: int, st: Any, off: int) -> bool:
            ok = reply(name, handle, st, off)
            if ok and count and name not in (b".", b".."):
                self.net[handle] += 1
            return ok

        self.inner.readdir_plus(dh, start, counting, count=count, stop=stop)


@pytest.fixture
def counting(fuse_kernel: Any) -> Any:
    from rumpfs.frontends.fuse import FuseServer

    handles = CountingHandles(fuse_kernel.node_handles())
    mp = make_mountpoint()
    server = FuseServer(handles, mp, allow_other=ROOT)
    server.start()
    try:
        yield server, handles
    finally:
        server.stop()
        remove_mountpoint(mp)


def test_exception_in_operation_is_eio_and_mount_survives(
    counting: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = counting
    mp = server.mountpoint
    with caplog.at_level(logging.ERROR, logger="rumpfs.fuse"):
        with pytest.raises(OSError) as ei:
            os.stat(os.path.join(mp, "boom"))
        assert ei.value.errno == errno.EIO
        with pytest.raises(OSError) as ei:
            os.mkdir(os.path.join(mp, "boom"))
        assert ei.value.errno == errno.EIO
    assert any("injected failure" in r.getMessage() or r.exc_info for r in caplog.records)
    # the mount still works
    with open(os.path.join(mp, "ok"), "w") as f:
        f.write("fine")
    assert os.listdir(mp) == ["ok"]
    assert server.running


def test_lookup_counts_balance_after_unmount(counting: Any) -> None:
    server, handles = counting
    mp = server.mountpoint
    os.makedirs(os.path.join(mp, "a", "b", "c"))
    for i in range(50):
        with open(os.path.join(mp, "a", "b", f"f{i}"), "w") as f:
            f.write("x")
    os.link(os.path.join(mp, "a", "b", "f0"), os.path.join(mp, "a", "h"))
    os.symlink("b", os.path.join(mp, "a", "s"))
    os.mkfifo(os.path.join(mp, "a", "p"))
    for _ in os.walk(mp):
        pass
    os.stat(os.path.join(mp, "a", "b", ".."))
    keep = os.open(os.path.join(mp, "a", "b", "f1"), os.O_RDONLY)
    try:
        server.stop()  # the host still holds lookups and an open file
        assert not is_mounted(mp)
    finally:
        try:
            os.close(keep)
        except OSError:  # ENOTCONN: the server is gone
            pass
    leaks = {h: n for h, n in handles.net.items() if n != 0}
    assert not leaks, f"lookup counts not given back: {leaks}"
    assert not handles.open_files


def test_unmount_with_open_files_loses_nothing(fuse_kernel: Any) -> None:
    from rumpfs.fuse import serve

    mp = make_mountpoint()
    data = os.urandom(300_000)
    fds = []
    try:
        with serve(fuse_kernel, mp, allow_other=ROOT):
            fd = os.open(os.path.join(mp, "f"), os.O_CREAT | os.O_WRONLY, 0o644)
            fds.append(fd)
            os.write(fd, data)
            os.mkdir(os.path.join(mp, "d"))
            fds.append(os.open(os.path.join(mp, "d"), os.O_RDONLY | os.O_DIRECTORY))
        assert not is_mounted(mp)
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        remove_mountpoint(mp)
    fd = fuse_kernel.open("/f", os.O_RDONLY)
    try:
        assert fuse_kernel.pread(fd, len(data) + 1, 0) == data
    finally:
        fuse_kernel.close(fd)


def test_leaving_block_by_exception_unmounts(fuse_kernel: Any) -> None:
    from rumpfs.fuse import serve

    mp = make_mountpoint()
    try:
        with pytest.raises(ValueError, match="boom"), serve(fuse_kernel, mp):
            assert is_mounted(mp)
            raise ValueError("boom")
        assert not is_mounted(mp)
        # and the process can serve again afterwards
        with serve(fuse_kernel, mp):
            assert os.listdir(mp) == []
    finally:
        remove_mountpoint(mp)


def test_two_mounts_of_one_kernel_at_once(fuse_server: Any, fuse_kernel: Any) -> None:
    from rumpfs.fuse import serve

    mp = make_mountpoint()
    try:
        with serve(fuse_kernel, mp, allow_other=ROOT):
            with open(os.path.join(mp, "f"), "w") as f:
                f.write("both")
            with open(os.path.join(fuse_server.mountpoint, "f")) as f:
                assert f.read() == "both"
        assert not is_mounted(mp)
        assert fuse_server.running
    finally:
        remove_mountpoint(mp)


def test_stop_never_unmounts_a_mount_that_is_not_its_own(fuse_kernel: Any) -> None:
    """A server whose mount was taken away, and replaced by another mount at the
    same path, leaves the newcomer alone when it stops (cli's race)."""
    import subprocess

    from rumpfs.frontends.fuse import FuseServer
    from rumpfs.fuse import serve

    mp = make_mountpoint()
    try:
        old = FuseServer(fuse_kernel.node_handles(), mp)
        old.start()
        try:
            subprocess.run(["fusermount3", "-u", mp], check=True, timeout=60)
            assert old.wait(60)
            with serve(fuse_kernel, mp) as new:
                old.stop()
                assert is_mounted(mp) and new.running
                os.mkdir(os.path.join(mp, "still-served"))
                assert fuse_kernel.listdir("/") == ["still-served"]
        finally:
            old.stop()
        assert not is_mounted(mp)
    finally:
        remove_mountpoint(mp)


def test_external_unmount_ends_serving(fuse_kernel: Any) -> None:
    import subprocess

    from rumpfs.fuse import serve

    mp = make_mountpoint()
    try:
        with serve(fuse_kernel, mp) as server:
            subprocess.run(["fusermount3", "-u", mp], check=True, timeout=60)
            assert server.wait(60)
            assert not server.running
        assert not is_mounted(mp)
    finally:
        remove_mountpoint(mp)


def test_read_only(fuse_kernel: Any) -> None:
    from rumpfs.fuse import serve

    fd = fuse_kernel.open("/f", os.O_CREAT | os.O_WRONLY, 0o644)
    fuse_kernel.write(fd, b"ro")
    fuse_kernel.close(fd)
    mp = make_mountpoint()
    try:
        with serve(fuse_kernel, mp, read_only=True):
            with open(os.path.join(mp, "f"), "rb") as f:
                assert f.read() == b"ro"
            for call in (lambda: os.open(os.path.join(mp, "f"), os.O_WRONLY),
                         lambda: os.mkdir(os.path.join(mp, "d"))):
                with pytest.raises(OSError) as ei:
                    call()
                assert ei.value.errno == errno.EROFS
    finally:
        remove_mountpoint(mp)


def test_mountpoint_must_be_a_directory(fuse_kernel: Any, tmp_path: Any) -> None:
    from rumpfs.fuse import serve

    f = tmp_path / "file"
    f.write_bytes(b"")
    with pytest.raises(NotADirectoryError), serve(fuse_kernel, f):
        pass
