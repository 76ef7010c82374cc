"""etfs DIR mappings pass user.* extended attributes through to the host file;
other namespaces and hosts without xattrs answer EOPNOTSUPP."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

import rumpfs
from rumpfs.rumpuser.memhost import MemHost
from tests.contract.helpers import expect_errno


@pytest.fixture
def hostdir() -> Iterator[str]:
    d = tempfile.mkdtemp(dir="/dev/shm")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_user_xattrs_reach_the_host(hostdir: str) -> None:
    with open(os.path.join(hostdir, "f"), "w"):
        pass
    os.mkdir(os.path.join(hostdir, "sub"))
    os.setxattr(os.path.join(hostdir, "f"), "trusted.hidden", b"1")
    with rumpfs.Kernel() as k:
        k.etfs_register("/e", hostdir, rumpfs.EtfsType.DIR_SUBDIRS)
        k.setxattr("/e/f", "user.a", b"one")
        k.setxattr("/e/sub", "user.b", b"two")
        assert os.getxattr(os.path.join(hostdir, "f"), "user.a") == b"one"
        assert os.getxattr(os.path.join(hostdir, "sub"), "user.b") == b"two"
        os.setxattr(os.path.join(hostdir, "f"), "user.c", b"host")
        assert k.getxattr("/e/f", "user.c") == b"host"
        assert sorted(k.listxattr("/e/f")) == ["user.a", "user.c"]     # trusted.* stays out
        expect_errno(errno.EEXIST, k.setxattr, "/e/f", "user.a", b"x", os.XATTR_CREATE)
        expect_errno(errno.EOPNOTSUPP, k.setxattr, "/e/f", "trusted.t", b"1", filename="/e/f")
        expect_errno(errno.EOPNOTSUPP, k.getxattr, "/e/f", "system.posix_acl_access" + "x")
        k.removexattr("/e/f", "user.a")
        expect_errno(errno.ENODATA, k.getxattr, "/e/f", "user.a")
        assert "user.a" not in os.listxattr(os.path.join(hostdir, "f"))


def test_host_without_xattrs() -> None:
    host = MemHost()
    host.mkdir("/srv")
    host.write_file("/srv/f", b"data")
    with rumpfs.Kernel(hypervisor=host) as k:
        k.etfs_register("/e", "/srv", rumpfs.EtfsType.DIR_SUBDIRS)
        k.stat("/e/f")
        held = host.open_fds
        expect_errno(errno.EOPNOTSUPP, k.setxattr, "/e/f", "user.a", b"1")
        assert k.listxattr("/e/f") == []
        assert host.open_fds == held          # the descriptors it opened are closed
