"""With FUSE_POSIX_ACL (exclusive mounts) the host reads a node's ACL at its
permission checks and fails the check with any error but "no ACL": a node
whose file system has no ACLs (EOPNOTSUPP) must be answered ENODATA for the
two ACL names, and nothing else may change. Handlers called directly."""

from __future__ import annotations

import errno
from typing import Any

import pytest

import rumpfs
from rumpfs.frontends import fuse_proto as fp
from rumpfs.frontends.fuse import RumpOperations


class NoXattrs:
    """A kernel's NodeHandles whose file system supports no extended attributes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.ROOT = inner.ROOT

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def getxattr(self, p: Any, handle: int, name: bytes) -> bytes:
        raise OSError(errno.EOPNOTSUPP, "no xattrs here")


class Drop:
    def send(self, parts: list[bytes]) -> bool:
        return True


def ops_for(exclusive: bool) -> RumpOperations:
    k = rumpfs.Kernel()
    ops = RumpOperations(NoXattrs(k.node_handles()), Drop(),  # type: ignore[arg-type]
                         3600.0 if exclusive else 0.0)
    ops.init(0, 0, 0, 0, memoryview(fp.INIT_IN.pack(7, 40, 131072, fp.POSIX_ACL | fp.INIT_EXT)
                                    + bytes(48)))
    return ops


def getxattr_errno(ops: RumpOperations, name: bytes) -> int:
    body = memoryview(fp.GETXATTR_IN.pack(0, 0) + name + b"\0")
    with pytest.raises(OSError) as ei:
        ops.getxattr(1, 1000, 1000, 0, body)
    assert ei.value.errno is not None
    return ei.value.errno


def test_acl_names_read_as_no_acl_on_an_exclusive_mount() -> None:
    ops = ops_for(exclusive=True)
    assert ops.posix_acl
    assert getxattr_errno(ops, b"system.posix_acl_access") == errno.ENODATA
    assert getxattr_errno(ops, b"system.posix_acl_default") == errno.ENODATA
    assert getxattr_errno(ops, b"user.x") == errno.EOPNOTSUPP


def test_serve_mode_does_not_negotiate_acls_nor_rewrite_errors() -> None:
    ops = ops_for(exclusive=False)
    assert not ops.posix_acl
    assert getxattr_errno(ops, b"system.posix_acl_access") == errno.EOPNOTSUPP
