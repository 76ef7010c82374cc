"""Callers' supplementary groups for the FUSE frontend, read once per task.

Allowed imports: the standard library only. Locking: ``GroupCache`` guards
its dict with its own lock (any serving thread may ask).
"""

from __future__ import annotations

import os
import select
import threading
from typing import Any

__all__ = ["GroupCache", "read_groups"]


def read_groups(pid: int) -> tuple[int, ...]:
    """Supplementary groups of host process ``pid`` ('Groups:' of /proc/<pid>/status).

    () when the process is gone or the file cannot be read or parsed (pid 0:
    a request the host kernel makes on its own behalf).
    """
    if pid <= 0:
        return ()
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Groups:"):
                    return tuple(int(g) for g in line.split()[1:])
    except (OSError, ValueError):
        pass
    return ()


PIDFD_THREAD = os.O_EXCL        # pidfd_open flag (Linux 6.9): a thread, not only a leader


class GroupCache:
    """Supplementary groups per requesting task, read from /proc once per task.

    The rule for reading again: the groups of a task can change only by
    setgroups(2), which needs CAP_SETGID -- in practice done just before a
    setuid/setgid or an exec of another user's program -- or by the task
    going away and its id being reused. So an entry is kept while (a) the
    request's uid and gid are those it was read with, and (b) the task
    still lives: a pidfd taken at read time, polled (no wait) on every use,
    becomes readable when the task exits. Without pidfds (old kernels) nothing
    is cached. What remains: a task with CAP_SETGID that calls setgroups and
    keeps its uid and gid is seen with its old groups (root is never asked:
    its groups decide nothing).
    """

    LIMIT = 512

    def __init__(self) -> None:
        self._mu = threading.Lock()
        self._cache: dict[int, tuple[int, int, tuple[int, ...], Any, int]] = {}

    def get(self, pid: int, uid: int, gid: int) -> tuple[int, ...]:
        ent = self._cache.get(pid)
        if ent is not None and ent[0] == uid and ent[1] == gid and not ent[3].poll(0):
            return ent[2]
        groups = read_groups(pid)
        if pid > 0:
            self._remember(pid, uid, gid, groups)
        return groups

    def _remember(self, pid: int, uid: int, gid: int, groups: tuple[int, ...]) -> None:
        try:
            fd = os.pidfd_open(pid, PIDFD_THREAD)
        except OSError:
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                return
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        # The task may have exited and its id been reused between the /proc
        # read and the pidfd: check that it still has the ids just read.
        if read_groups(pid) != groups:
            os.close(fd)
            return
        with self._mu:
            old = self._cache.pop(pid, None)
            if old is not None:
                os.close(old[4])
            while len(self._cache) >= self.LIMIT:     # the oldest entries go first
                victim = self._cache.pop(next(iter(self._cache)))
                os.close(victim[4])
            self._cache[pid] = (uid, gid, groups, poller, fd)

    def close(self) -> None:
        with self._mu:
            for ent in self._cache.values():
                os.close(ent[4])
            self._cache.clear()
