"""The contract syscall suite through an exclusive mount (the CLI's), where the
host caches entries, negative entries, attributes, pages and listings: what
the mount itself changes must never be seen stale.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.contract.conftest import Env
from tests.contract.test_syscalls import *  # noqa: F403
from tests.support.hostproc import HostProcess

from .conftest import ROOT, make_mountpoint, remove_mountpoint


@pytest.fixture
def env(fuse_kernel: Any) -> Iterator[Env]:
    if not ROOT:
        pytest.skip("HostProcess needs root (chroot)")
    from rumpfs.frontends.fuse import FuseServer

    mp = make_mountpoint()
    server = FuseServer(fuse_kernel.node_handles(), mp, allow_other=True, exclusive=True)
    procs: list[HostProcess] = []

    def make_user(uid: int, gid: int, groups: tuple[int, ...], umask: int) -> HostProcess:
        hp = HostProcess(mp, uid=uid, gid=gid, groups=groups, umask=umask)
        procs.append(hp)
        return hp

    try:
        server.start()
        yield Env("fuse", make_user(0, 0, (), 0o022), make_user)
    finally:
        for hp in procs:
            hp.close_proxy()
        server.stop()
        remove_mountpoint(mp)
