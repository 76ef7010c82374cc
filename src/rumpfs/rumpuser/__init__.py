"""The hypercall layer: the ONLY code in rumpfs that touches the host.

Allowed imports: the standard library and ``rumpfs.errors``.

A :class:`Hypervisor` is handed to a kernel at boot; kernel code reaches the
host through it and nothing else. ``posix.PosixHost`` is the real host,
``memhost.MemHost`` an in-memory one with fault injection for tests. Host
errors enter the kernel as ``OSError`` carrying only an errno: no host path
ever reaches a message or ``.filename``.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["HYPERVISOR_VERSION", "Hypervisor"]

HYPERVISOR_VERSION = 1


class Hypervisor(Protocol):
    """What the kernel may ask of its host."""

    def clock_realtime_ns(self) -> int:
        """Wall-clock time in nanoseconds since the epoch."""
        ...
