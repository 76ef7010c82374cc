"""Callers' supplementary groups for the FUSE frontend, read once per task.

Allowed imports: the standard library only. Locking: ``GroupCache`` guards
its dict with its own lock (any serving thread may ask).
"""

from __future__ import annotations

import os
import select
import threading
from typing import Any

__all__ = ["GroupCache", "read_groups", "read_status"]


CAP_SETGID = 6


def read_status(pid: int) -> tuple[tuple[int, ...], bool]:
    """(supplementary groups, whether the task may call setgroups) of host
    process ``pid``, from one read of /proc/<pid>/status ('Groups:' and
    'CapPrm:': a task holding CAP_SETGID in its permitted set may raise it
    and change its groups at any moment, keeping its uid and gid).

    ((), False) when the process is gone or the file cannot be read or parsed
    (pid 0: a request the host kernel makes on its own behalf).
    """
    if pid <= 0:
        return (), False
    groups: tuple[int, ...] = ()
    setgid = False
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Groups:"):
                    groups = tuple(int(g) for g in line.split()[1:])
                elif line.startswith(b"CapPrm:"):
                    setgid = bool(int(line.split()[1], 16) >> CAP_SETGID & 1)
                    break                  # Groups: comes first
    except (OSError, ValueError, IndexError):
        return (), False
    return groups, setgid


def read_groups(pid: int) -> tuple[int, ...]:
    """Supplementary groups of host process ``pid`` ('Groups:' of /proc/<pid>/status).

    () when the process is gone or the file cannot be read or parsed (pid 0:
    a request the host kernel makes on its own behalf).
    """
    return read_status(pid)[0]


PIDFD_THREAD = os.O_EXCL        # pidfd_open flag (Linux 6.9): a thread, not only a leader


class GroupCache:
    """Supplementary groups per requesting task, read from /proc once per task.

    The rule for reading again: the groups of a task can change only by
    setgroups(2), which needs CAP_SETGID, or by the task going away and its id
    being reused. So an entry is kept while (a) the request's uid and gid are
    those it was read with, (b) the task still lives: a pidfd taken at read
    time, polled (no wait) on every use, becomes readable when the task exits,
    and (c) the task could not call setgroups when it was read: a task holding
    CAP_SETGID in its permitted set ('CapPrm:', read with the groups) may
    change its groups at any moment keeping its ids, so its groups are read on
    every request. Without pidfds (old kernels) nothing is cached. What
    remains: a task without CAP_SETGID that execs a set-user-ID (or
    file-capability) program which calls setgroups and then returns to the
    same uid and gid in the same task (``newgrp`` naming one's own primary
    group) is seen with its old groups until it exits; Linux offers no cheap
    signal of an exec or a credential change to watch. Root is never asked:
    its groups decide nothing.
    """

    LIMIT = 512

    def __init__(self) -> None:
        self._mu = threading.Lock()
        self._cache: dict[int, tuple[int, int, tuple[int, ...], Any, int]] = {}

    def get(self, pid: int, uid: int, gid: int) -> tuple[int, ...]:
        ent = self._cache.get(pid)
        if ent is not None and ent[0] == uid and ent[1] == gid and not ent[3].poll(0):
            return ent[2]
        groups, may_setgroups = read_status(pid)
        if pid > 0 and not may_setgroups:
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
        if read_status(pid) != (groups, False):
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
