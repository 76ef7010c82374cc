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

from tests.contract.conftest import Env, _kernel_env


def _open_into_memfd(k: Any) -> None:
    """Every open of a rumpfs file also moves it to a memfd, as a passthrough open does."""
    from rumpfs.fs.rumpfs.node import rumpfs_data

    vnops = rumpfs_data(k.vfs.mounts[0]).vnops
    plain_open = vnops.vop_open

    def open_into_memfd(vp: Any, flags: int) -> None:
        plain_open(vp, flags)
        vnops.vop_backing_fd(vp, True, True)

    vnops.vop_open = open_into_memfd


@pytest.fixture
def env() -> Iterator[Env]:
    yield from _kernel_env(_open_into_memfd)
