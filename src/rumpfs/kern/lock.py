"""The kernel lock: one lock serialises all kernel state (rump's early giant lock).

Allowed imports: the standard library.

Locking: every system call holds the lock of its kernel for its whole run.
Kernel code never takes it itself and never calls out to user code while
holding it, except documented notification callbacks, which must not call
back into the kernel.
"""

from __future__ import annotations

import threading

__all__ = ["KernelLock"]


def KernelLock() -> threading.Lock:
    """A fresh, non-reentrant giant lock."""
    return threading.Lock()
