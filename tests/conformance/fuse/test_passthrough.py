"""FUSE passthrough (Linux >= 6.9, root): an etfs mapping of a whole host file is
read and written by the host directly, never through the server; a window of a
file (begin/size) is not passthrough-able and still goes through the kernel."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.fuse.conftest import ROOT, make_mountpoint, remove_mountpoint

pytestmark = pytest.mark.skipif(not ROOT, reason="FUSE_DEV_IOC_BACKING_OPEN needs root")


class CountingIO:
    """NodeHandles with read/write calls counted."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.ROOT = inner.ROOT
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def read(self, *args: Any) -> Any:
        self.calls["read"] += 1
        return self.inner.read(*args)

    def write(self, *args: Any, **kw: Any) -> Any:
        self.calls["write"] += 1
        return self.inner.write(*args, **kw)


@pytest.fixture
def served(fuse_kernel: Any, shm: Path) -> Iterator[tuple[Any, Path, CountingIO, Path]]:
    from rumpfs import EtfsType
    from rumpfs.frontends.fuse import FuseServer

    host = shm / "host.bin"
    host.write_bytes(bytes(range(256)) * 4096)           # 1 MiB
    fuse_kernel.etfs_register("/whole", str(host), EtfsType.REG)
    fuse_kernel.etfs_register("/window", str(host), EtfsType.REG, begin=4096, size=8192)
    counting = CountingIO(fuse_kernel.node_handles())
    mp = make_mountpoint()
    server = FuseServer(counting, mp, allow_other=True)  # type: ignore[arg-type]
    try:
        server.start()
        yield server, Path(mp), counting, host
    finally:
        server.stop()
        remove_mountpoint(mp)


def test_whole_host_file_bypasses_the_server(served: Any, fuse_kernel: Any) -> None:
    server, mp, counting, host = served
    if not server.ops.passthrough:
        pytest.skip("the host kernel did not offer FUSE_PASSTHROUGH (Linux < 6.9)")
    with open(mp / "whole", "r+b", buffering=0) as f:
        assert f.read() == host.read_bytes()
        f.seek(100)
        f.write(b"through")
    assert counting.calls["read"] == 0 and counting.calls["write"] == 0
    # one file, three views: the host file, the kernel, the mount
    assert host.read_bytes()[100:107] == b"through"
    fd = fuse_kernel.open("/whole", os.O_RDONLY)
    try:
        assert fuse_kernel.pread(fd, 7, 100) == b"through"
    finally:
        fuse_kernel.close(fd)
    fd = fuse_kernel.open("/whole", os.O_WRONLY)
    try:
        fuse_kernel.pwrite(fd, b"inproc", 200)
    finally:
        fuse_kernel.close(fd)
    assert (mp / "whole").read_bytes()[200:206] == b"inproc"
    assert os.stat(mp / "whole").st_size == 1 << 20


def test_a_window_still_goes_through_the_kernel(served: Any) -> None:
    _, mp, counting, host = served
    data = (mp / "window").read_bytes()
    assert data == host.read_bytes()[4096:4096 + 8192]
    assert counting.calls["read"] > 0
