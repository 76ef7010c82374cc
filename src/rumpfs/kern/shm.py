"""Host anonymous shared memory (memfds) for file data, under a descriptor budget.

Allowed imports: ``rumpfs.rumpuser``, ``rumpfs.errors``.

A file system may keep a file's bytes in a host memory file instead of its own
store, so that the host can read, write and map them directly (FUSE
passthrough hands the descriptor to the host kernel). Each such file holds one
host descriptor for as long as it lives, so the kernel keeps a budget: the
first use raises the process's soft RLIMIT_NOFILE to its hard limit and allows
half of it; past the budget :meth:`HostShm.create` answers None and the caller
keeps the file in its own store (an open never fails for want of a memfd).

Locking: called under the kernel lock; the counters need nothing more.
"""

from __future__ import annotations

import weakref
from typing import Protocol

from rumpfs.errors import errno
from rumpfs.rumpuser import Hypervisor

__all__ = ["HostShm", "ShmUser"]

_RESERVE = 256          # descriptors left for everything else below the budget


class ShmUser(Protocol):
    """What holds a memfd: :meth:`clear` gives it back (and its data)."""

    def clear(self) -> None: ...


class HostShm:
    """One kernel's memfds: creation through the hypervisor, and their count."""

    __slots__ = ("budget", "hyp", "in_use", "unsupported", "users")

    def __init__(self, hyp: Hypervisor, budget: int | None = None) -> None:
        self.hyp = hyp
        self.budget = budget            # None until the first create (or set by a test)
        self.in_use = 0
        self.unsupported = False        # the host has no memfds (MemHost, old kernels)
        self.users: weakref.WeakSet[ShmUser] = weakref.WeakSet()

    def create(self) -> int | None:
        """A new empty memfd, or None (over budget, or the host has none)."""
        if self.unsupported:
            return None
        if self.budget is None:
            self.budget = max(self.hyp.raise_nofile_limit() // 2 - _RESERVE, 0)
        if self.in_use >= self.budget:
            return None
        try:
            fd = self.hyp.memfd_create("rumpfs")
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.ENOSYS):
                self.unsupported = True
            return None                 # EMFILE, ENOMEM...: keep the file where it is
        self.in_use += 1
        return fd

    def release(self, fd: int) -> None:
        """Close a memfd from :meth:`create`."""
        self.in_use -= 1
        self.hyp.close(fd)

    def close_all(self) -> None:
        """At kernel shutdown: every holder gives its memfd back now (not when
        the garbage collector gets to it)."""
        for user in list(self.users):
            user.clear()
