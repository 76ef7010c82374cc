"""The contract xattr/ACL suite again, through a FUSE mount (see conftest.py):
the host's getxattr/setxattr/listxattr/removexattr -> FUSE -> NodeHandles ->
the kernel's sys_xattr, and the kernel's ACL checks behind every open."""

from tests.contract.test_xattr import *  # noqa: F403
