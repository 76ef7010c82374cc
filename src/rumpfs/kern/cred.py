"""Credentials and the generic permission check (Linux's generic_permission).

Allowed imports: ``rumpfs.errors``.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import SupportsIndex

__all__ = ["ID_NONE", "ROOT_CRED", "R_OK", "W_OK", "X_OK", "Cred", "id_arg", "may_access"]

ID_NONE = 0xFFFF_FFFF         # (uid_t)-1: "no id" to chown, never a process's id
_LONG_MAX = (1 << 63) - 1

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


def id_arg(value: object, what: str) -> int:
    """A uid or gid argument converted as CPython's ``os.chown`` converts it:
    an integer (``__index__``) else TypeError; -1 and (uid_t)-1 both mean
    "leave alone" (returned as -1); below -1 or beyond 32 bits OverflowError."""
    if type(value) is int and 0 <= value < ID_NONE:
        return value                                    # the common case
    if not isinstance(value, SupportsIndex):
        raise TypeError(f"{what} should be integer, not {type(value).__name__}")
    v = operator.index(value)
    if v == -1 or v == ID_NONE:
        return -1
    if v > _LONG_MAX:
        raise OverflowError(f"{what} is greater than maximum")
    if v < -1 or v > ID_NONE:
        raise OverflowError(f"{what} is less than minimum")     # CPython's wording
    return v


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
