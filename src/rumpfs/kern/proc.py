"""Process state: credentials, umask, cwd, root and the descriptor table.

Allowed imports: ``rumpfs.kern``, ``rumpfs.errors``.

The table stores whatever the VFS calls an open file; it only counts and
hands out descriptor numbers, lowest free first, as POSIX requires.

Locking: all of it is guarded by the kernel lock.
"""

from __future__ import annotations

import heapq
from typing import Final, Generic, TypeVar

from rumpfs.errors import errno, raise_errno
from rumpfs.kern.cred import Cred

__all__ = ["FdTable", "Proc"]

F = TypeVar("F")
V = TypeVar("V")
C = TypeVar("C")

FD_MAX: Final = 1 << 20
_INT_LIMIT: Final = 1 << 31


class FdTable(Generic[F]):
    """Descriptor number -> open file; the lowest free number is handed out."""

    __slots__ = ("_free", "_slots")

    def __init__(self) -> None:
        self._slots: list[F | None] = []
        self._free: list[int] = []          # heap of holes below len(_slots)

    def alloc(self, fp: F) -> int:
        free = self._free
        while free:
            fd = heapq.heappop(free)
            if fd < len(self._slots) and self._slots[fd] is None:
                self._slots[fd] = fp
                return fd
        fd = len(self._slots)
        if fd >= FD_MAX:
            raise_errno(errno.EMFILE)
        self._slots.append(fp)
        return fd

    def get(self, fd: int) -> F:
        """The open file of ``fd``: EBADF if none; a non-integer is a TypeError
        and a number beyond a C int an OverflowError, as ``os`` raises."""
        try:
            fp = self._slots[fd] if fd >= 0 else None
        except IndexError:
            fp = None
        if fp is None:
            if not -_INT_LIMIT <= fd < _INT_LIMIT:
                raise OverflowError("Python int too large to convert to C int")
            raise_errno(errno.EBADF)
        return fp

    def install(self, fd: int, fp: F) -> F | None:
        """Put ``fp`` at descriptor ``fd`` (dup2); returns what was there, if anything."""
        if fd >= FD_MAX:
            raise_errno(errno.EBADF)
        slots = self._slots
        if fd >= len(slots):
            for hole in range(len(slots), fd):
                heapq.heappush(self._free, hole)
            slots.extend([None] * (fd + 1 - len(slots)))
        old = slots[fd]
        slots[fd] = fp
        return old

    def remove(self, fd: int) -> F:
        fp = self.get(fd)
        self._slots[fd] = None
        if fd == len(self._slots) - 1:
            while self._slots and self._slots[-1] is None:
                self._slots.pop()
        else:
            heapq.heappush(self._free, fd)
        return fp

    def items(self) -> list[tuple[int, F]]:
        return [(fd, fp) for fd, fp in enumerate(self._slots) if fp is not None]

    def __len__(self) -> int:
        return sum(1 for fp in self._slots if fp is not None)


class Proc(Generic[V, F, C]):
    """A process: who it is, where it stands, what it has open.

    ``ctx`` is the kernel context the upper layers hang off a process (the
    VFS state); the base kernel only carries it.
    """

    __slots__ = ("cred", "ctx", "cwd", "fds", "pid", "root", "umask")

    def __init__(self, ctx: C, pid: int, cred: Cred, root: V, cwd: V, umask: int = 0o022) -> None:
        self.ctx = ctx
        self.pid = pid
        self.cred = cred
        self.root = root
        self.cwd = cwd
        self.umask = umask
        self.fds: FdTable[F] = FdTable()
