"""Open files: what a descriptor points at. dup() shares one File.

Allowed imports: ``rumpfs.kern``, ``rumpfs.errors``.

Reference counting: a File holds one vnode reference from open to the
close of its last descriptor. Locking: guarded by the kernel lock.
"""

from __future__ import annotations

import os
from typing import Final

from rumpfs.kern.devsw import Driver
from rumpfs.vfs.vnode import Vnode

__all__ = ["File"]

_ACCMODE: Final = os.O_RDONLY | os.O_WRONLY | os.O_RDWR


class File:
    """An open file description: vnode, offset, status flags."""

    __slots__ = (
        "append", "blk_writers", "dev", "dirstream", "flags", "minor", "offset", "rdev",
        "readable", "refs", "tmpfile_linkable", "vp", "writable",
    )

    def __init__(self, vp: Vnode, flags: int) -> None:
        self.vp = vp
        self.flags = flags
        acc = flags & _ACCMODE
        self.readable = acc != os.O_WRONLY
        self.writable = acc != os.O_RDONLY
        self.append = bool(flags & os.O_APPEND)
        self.offset = 0
        self.refs = 1
        self.dev: Driver | None = None      # device driver for VBLK/VCHR opens
        self.minor = 0
        self.rdev = 0                       # VBLK/VCHR: the node's device number
        # VBLK open for writing: the Vfs's writer counts (rdev -> opens), for EBUSY
        self.blk_writers: dict[int, int] | None = None
        self.dirstream = False              # vop_opendir was called for this open
        self.tmpfile_linkable = False       # O_TMPFILE without O_EXCL, not yet named
