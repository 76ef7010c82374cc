"""The contract syscall suite again, through a FUSE mount.

Every test of ``tests/contract/test_syscalls.py`` runs with ``fs`` (and
``user``/``as_user``) being the host's own ``os`` in a child chrooted into a
mount of a fresh kernel (see ``conftest.py``): host syscall -> Linux VFS ->
FUSE -> /dev/fuse -> NodeHandles -> the kernel, and back.
"""

from tests.contract.test_syscalls import *  # noqa: F403
