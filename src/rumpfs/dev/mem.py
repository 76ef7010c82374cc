"""The memory devices of Linux's major 1: null (minor 3) and zero (minor 5).

Allowed imports: ``rumpfs.kern``, ``rumpfs.errors``.

Registered as a character driver at boot, so that ``mknod(path, S_IFCHR,
makedev(1, 3))`` gives a working /dev/null inside a kernel.
"""

from __future__ import annotations

from rumpfs.errors import errno, raise_errno

__all__ = ["MEM_MAJOR", "MemDriver"]

MEM_MAJOR = 1
NULL_MINOR = 3
ZERO_MINOR = 5


class MemDriver:
    """null swallows writes and reads as end-of-file; zero reads as zeros."""

    def d_open(self, minor: int, flags: int) -> None:
        if minor not in (NULL_MINOR, ZERO_MINOR):
            raise_errno(errno.ENXIO)

    def d_close(self, minor: int, flags: int) -> None:
        pass

    def d_read(self, minor: int, size: int, offset: int) -> bytes:
        return bytes(size) if minor == ZERO_MINOR else b""

    def d_write(self, minor: int, data: bytes | memoryview, offset: int) -> int:
        return len(data)

    def d_fsync(self, minor: int) -> None:
        pass

    def d_size(self, minor: int) -> int:
        return 0
