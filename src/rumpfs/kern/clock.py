"""Timestamps, taken from the hypervisor so that tests can freeze time.

Allowed imports: ``rumpfs.rumpuser``.
"""

from __future__ import annotations

from collections.abc import Callable

from rumpfs.rumpuser import Hypervisor

__all__ = ["Clock"]


class Clock:
    """Wall-clock nanoseconds; ``freeze`` pins the value (for tests).

    ``now_ns`` is an attribute holding the hypervisor's own clock function
    (or a frozen stand-in): the hottest call in the kernel is one C call.
    """

    __slots__ = ("_hyp", "now_ns")

    def __init__(self, hyp: Hypervisor) -> None:
        self._hyp = hyp
        self.now_ns: Callable[[], int] = hyp.clock_realtime_ns

    def utc_offset(self) -> int:
        """Seconds east of UTC of the host's local time (what vfat calls local time)."""
        return self._hyp.clock_utc_offset()

    def freeze(self, ns: int | None) -> None:
        """Pin the clock at ``ns``; ``None`` lets it run again."""
        self.now_ns = self._hyp.clock_realtime_ns if ns is None else (lambda: ns)
