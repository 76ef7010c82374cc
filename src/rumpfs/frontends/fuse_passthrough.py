"""FUSE passthrough: which opens the host reads and writes directly, with which backing file.

Allowed imports: ``rumpfs.handles`` (types), ``rumpfs.frontends.fuse_proto``,
``rumpfs.frontends.fuse_dev``, the standard library.

An open is answered with ``FOPEN_PASSTHROUGH`` and a backing id when the
kernel has a host file holding exactly the node's bytes
(``NodeHandles.backing_fd``: an etfs host file, or a rumpfs file moved to a
host memfd). Linux (``fs/fuse/iomode.c``) keeps an inode in one io mode while
it is open: all its opens passthrough with the *same* backing file, or all
cached; an open of the other kind fails with EIO, and so does a second
backing file. So the first open of a node decides, and the decision holds
until its last release:

- passthrough: one backing id per node, shared by its opens (Linux also
  refuses a non-passthrough answer then). The one open that backing cannot
  serve, a writer (reader) of an etfs file first opened read-only
  (write-only), whose backing descriptor allows only that, is refused (EIO)
  rather than left to fail every write (read) with EBADF. A node that
  became set-id while open this way keeps passthrough for further opens
  (see ``fs/rumpfs/memfd_data``: its writes then do not clear the bits);
- cached: later opens are cached too, even if passthrough became possible.

A node that has been passthrough is not opened with ``FOPEN_KEEP_CACHE``
again: pages the host cached before may be stale.

Locking: ``_mu`` is taken before, never under, the kernel lock (the
decision asks the kernel for the backing descriptor and must not race a
second open of the same node).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from typing import TYPE_CHECKING

from rumpfs.frontends import fuse_proto as fp

if TYPE_CHECKING:
    from rumpfs.frontends.fuse_dev import FuseChannel
    from rumpfs.handles import NodeHandles

__all__ = ["Passthrough"]

log = logging.getLogger("rumpfs.fuse")

_R, _W = 1, 2
_ACCESS = {os.O_RDONLY: _R, os.O_WRONLY: _W, os.O_RDWR: _R | _W, 3: _R | _W}
_PASSTHROUGH = fp.FOPEN_NOFLUSH | fp.FOPEN_PASSTHROUGH
_DIRECT = fp.FOPEN_NOFLUSH | fp.FOPEN_DIRECT_IO


class Passthrough:
    """Backing ids of the nodes open through one FUSE connection."""

    def __init__(self, handles: NodeHandles, channel: FuseChannel) -> None:
        self.h = handles
        self.ch = channel
        self._mu = threading.Lock()
        # node handle -> [backing id (0: its opens are cached), the access it
        # allows (_R | _W), files open]
        self._nodes: dict[int, list[int]] = {}
        self._fh_node: dict[int, int] = {}      # fh -> its handle in _nodes
        self._was_pt: set[int] = set()          # handles once passthrough

    def opened(self, fh: int, handle: int, flags: int, cached_flags: int) -> bytes:
        """The OPEN reply for ``fh``, a new open of node ``handle`` with open(2)
        ``flags``."""
        with self._mu:
            ent = self._nodes.get(handle)
            if ent is None:
                ent = self._nodes[handle] = [*self._backing(fh), 0]
                if ent[0] and cached_flags & fp.FOPEN_KEEP_CACHE:
                    self._was_pt.add(handle)        # only where cached opens keep pages
            ent[2] += 1
            self._fh_node[fh] = handle
            if ent[0]:
                if _ACCESS[flags & os.O_ACCMODE] & ~ent[1]:
                    # e.g. a writer of an etfs file whose backing descriptor
                    # is read-only: Linux refuses any answer but passthrough
                    # with that backing; this one makes it fail the open (EIO)
                    # rather than every write (EBADF)
                    return fp.OPEN_OUT.pack(fh, _DIRECT, 0)
                # not KEEP_CACHE: the host's pages are the backing file's
                return fp.OPEN_OUT.pack(fh, _PASSTHROUGH, ent[0])
            if handle in self._was_pt:
                cached_flags &= ~fp.FOPEN_KEEP_CACHE
        return fp.OPEN_OUT.pack(fh, cached_flags, 0)

    def _backing(self, fh: int) -> tuple[int, int]:
        """(backing id, the access it allows) for the node of ``fh``, or (0, 0)."""
        hostfd = self.h.backing_fd(fh)
        if hostfd is None:
            return 0, 0
        try:
            access = _ACCESS.get(fcntl.fcntl(hostfd, fcntl.F_GETFL) & os.O_ACCMODE, 0)
            return self.ch.backing_open(hostfd), access
        except OSError as exc:
            log.debug("rumpfs.fuse: no passthrough for fh %d: %s", fh, exc)
            return 0, 0

    def released(self, fh: int) -> None:
        """``fh`` was released: the node's backing id goes with its last open."""
        backing = 0
        with self._mu:
            handle = self._fh_node.pop(fh, None)
            if handle is not None:
                ent = self._nodes[handle]
                ent[2] -= 1
                if not ent[2]:
                    del self._nodes[handle]
                    backing = ent[0]
        if backing:
            self.ch.backing_close(backing)

    def clear(self) -> None:
        """The device is closed (closing it dropped every backing id)."""
        with self._mu:
            self._nodes.clear()
            self._fh_node.clear()
