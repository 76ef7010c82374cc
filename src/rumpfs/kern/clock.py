"""Timestamps, taken from the hypervisor so that tests can freeze time.

Allowed imports: ``rumpfs.rumpuser``.
"""

from __future__ import annotations

from rumpfs.rumpuser import Hypervisor

__all__ = ["Clock"]


class Clock:
    """Wall-clock nanoseconds; ``freeze`` pins the value (for tests)."""

    __slots__ = ("_frozen", "_hyp")

    def __init__(self, hyp: Hypervisor) -> None:
        self._hyp = hyp
        self._frozen: int | None = None

    def now_ns(self) -> int:
        if self._frozen is not None:
            return self._frozen
        return self._hyp.clock_realtime_ns()

    def freeze(self, ns: int | None) -> None:
        """Pin the clock at ``ns``; ``None`` lets it run again."""
        self._frozen = ns
