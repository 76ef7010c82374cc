"""The real host: POSIX calls through the ``os`` module."""

from __future__ import annotations

import time

__all__ = ["PosixHost"]


class PosixHost:
    """Hypervisor over the running host."""

    def clock_realtime_ns(self) -> int:
        return time.time_ns()
