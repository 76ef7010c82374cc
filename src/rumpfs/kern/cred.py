"""Credentials and the generic permission check (Linux's generic_permission).

Allowed imports: ``rumpfs.errors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ROOT_CRED", "R_OK", "W_OK", "X_OK", "Cred", "may_access"]

R_OK = 4
W_OK = 2
X_OK = 1


@dataclass(frozen=True, slots=True)
class Cred:
    """Who a process is: uid, primary gid and supplementary groups."""

    uid: int
    gid: int
    groups: frozenset[int] = field(default_factory=frozenset)

    @property
    def is_root(self) -> bool:
        return self.uid == 0

    def in_group(self, gid: int) -> bool:
        """True if ``gid`` is the primary group or a supplementary one."""
        return gid == self.gid or gid in self.groups


ROOT_CRED = Cred(0, 0)


def may_access(
    cred: Cred, mode: int, uid: int, gid: int, want: int, *, is_dir: bool = False
) -> bool:
    """Linux's rule for ``want`` (R_OK|W_OK|X_OK bits) on a file with ``mode``/uid/gid.

    Exactly one class applies: owner, else group, else other. Root may do
    anything, except execute a non-directory that has no execute bit at all.
    """
    if cred.uid == 0:
        return not (want & X_OK and not is_dir and not mode & 0o111)
    if cred.uid == uid:
        bits = mode >> 6
    elif gid == cred.gid or gid in cred.groups:
        bits = mode >> 3
    else:
        bits = mode
    return want & ~bits & 7 == 0
