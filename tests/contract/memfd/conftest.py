"""The contract suite on rumpfs files held in host memfds (``fs/rumpfs/memfd_data``).

``env`` is a fresh kernel whose rumpfs moves every regular file to a memfd
when it is opened, as the FUSE frontend does for a passthrough open: the
syscall, fallocate, statfs and Linux-edge tests then exercise ``MemfdData``
in-process, without a mount (and without root).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.contract.conftest import Env


@pytest.fixture
def env() -> Iterator[Env]:
    import rumpfs
    from rumpfs.fs.rumpfs.node import rumpfs_data

    k = rumpfs.Kernel()
    vnops = rumpfs_data(k.vfs.mounts[0]).vnops
    plain_open = vnops.vop_open

    def open_into_memfd(vp: Any, flags: int) -> None:
        plain_open(vp, flags)
        vnops.vop_backing_fd(vp, True, True)    # what a passthrough open does

    vnops.vop_open = open_into_memfd  # type: ignore[method-assign]

    def make_user(uid: int, gid: int, groups: tuple[int, ...], umask: int) -> Any:
        p = k.process(uid=uid, gid=gid, groups=groups)
        p.umask(umask)
        return p

    try:
        k.umask(0o022)
        yield Env("kernel", k, make_user)
    finally:
        k.shutdown()

