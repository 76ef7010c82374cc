"""The device switch: (kind, major) -> driver. Drivers register here at boot.

Allowed imports: ``rumpfs.errors``.

Device nodes in any file system carry only an rdev; opening one looks its
major up here (no driver -> ENXIO) and all I/O then goes to the driver.
"""

from __future__ import annotations

import os
from typing import Protocol

from rumpfs.errors import errno, raise_errno

__all__ = ["BLOCK", "CHAR", "DevSwitch", "Driver"]

BLOCK = "b"
CHAR = "c"


class Driver(Protocol):
    """A block or character device driver, addressed by minor number."""

    def d_open(self, minor: int, flags: int) -> None:
        """Check that ``minor`` exists and may be opened with ``flags`` (ENXIO, EACCES)."""
        ...

    def d_close(self, minor: int, flags: int) -> None: ...

    def d_read(self, minor: int, size: int, offset: int) -> bytes:
        """Read up to ``size`` bytes at ``offset``; b"" at or past the end."""
        ...

    def d_write(self, minor: int, data: bytes | memoryview, offset: int) -> int:
        """Write at ``offset``; returns the count written (short at the end)."""
        ...

    def d_fsync(self, minor: int) -> None: ...

    def d_size(self, minor: int) -> int:
        """Size of the device in bytes (0 for endless or stream devices)."""
        ...


class DevSwitch:
    """Block and character device tables of one kernel."""

    __slots__ = ("_table",)

    def __init__(self) -> None:
        self._table: dict[tuple[str, int], Driver] = {}

    def register(self, kind: str, major: int, driver: Driver) -> None:
        """Attach ``driver`` to ``major`` for ``kind`` (BLOCK or CHAR); EEXIST if taken."""
        if (kind, major) in self._table:
            raise_errno(errno.EEXIST)
        self._table[kind, major] = driver

    def unregister(self, kind: str, major: int) -> None:
        self._table.pop((kind, major), None)

    def lookup(self, kind: str, rdev: int) -> tuple[Driver, int]:
        """The driver and minor behind ``rdev``; ENXIO if no driver has its major."""
        driver = self._table.get((kind, os.major(rdev)))
        if driver is None:
            raise_errno(errno.ENXIO)
        return driver, os.minor(rdev)
