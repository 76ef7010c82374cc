"""Pushed invalidation: a FUSE mount that caches while the kernel also changes in-process.

Allowed imports: the standard library, ``rumpfs.frontends.fuse_proto``,
``rumpfs.frontends.fuse_dev``, ``rumpfs.handles``, ``rumpfs.vfs.vnode``.

An :class:`Invalidator` is one mount's ``vfs.mount.Watcher`` and its
``handles.Barrier`` (both attached by ``NodeHandles.subscribe``). Why this
is enough for "no host program sees stale state after the in-process call
returned" is argued in docs/frontends.md ("Caching and coherence").

Watcher side (under the kernel lock, in the thread that made the change)
    Only nodes with a lookup count matter (the host can hold no other, and
    no reply handing one out is outstanding: replies count under the lock).
    A change made by one of this mount's own reader threads is the host's
    own request: the host updates its caches for it, nothing is queued.
    Any other change bumps ``gen`` and records it for the node
    (``changed_at``: replies compare it with the ``gen`` they started at and
    give timeout 0 when the node changed meanwhile) and queues
    ``NOTIFY_INVAL_INODE`` (attributes; a byte range for data; every page
    of a directory, which holds its cached listing) and for an entry
    ``NOTIFY_INVAL_ENTRY (parent, name)``. Queued work for one node merges.

Notifier thread (never under the kernel lock)
    Writes the queue in order. ``INVAL_INODE`` waits for the pages' locks
    and ``INVAL_ENTRY`` for the parent's ``i_rwsem``, which a host task may
    hold while it waits for a reply that needs the kernel lock: so only this
    thread writes them, and request handlers never wait on it. An
    ``INVAL_INODE`` the host answers ENOENT (it does not know the node)
    while this mount counts lookups of it is retried: a reply handing the
    node out is written but not yet installed, and it may carry the old
    attributes (for up to ``RETRY_FOR`` seconds, until the host has the
    node or forgets it).

Barrier
    ``queued`` counts queued notifications (under the kernel lock), ``done``
    delivered ones. The kernel's facades, after releasing the lock, wait
    while ``done`` < the ``queued`` they saw under it -- never on a reader
    thread of this mount and never for longer than ``WAIT_MAX``.

Locking: ``_mu`` guards the queue and the counters; it is taken under the
kernel lock (watcher) and without it (notifier, waiters), never the other
way round.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable

from rumpfs.frontends import fuse_proto as fp
from rumpfs.frontends.fuse_dev import FuseChannel
from rumpfs.vfs.vnode import Vnode

__all__ = ["SERVING", "TO_END", "Invalidator"]

log = logging.getLogger("rumpfs.fuse")

RETRY_FOR = 2.0      # seconds an INVAL_INODE of a node in flight to the host is retried
WAIT_MAX = 30.0      # an in-process call never waits longer for its notifications
_ATTR_ONLY = -1      # INVAL_INODE offset: attributes, no pages
TO_END = -1          # end of a pending range: to the end of the file

# Every FUSE reader thread of this process (every mount): a request handler
# never waits for notifications, not even another mount's.
SERVING: set[int] = set()

_INODE = fp.NOTIFY_INVAL_INODE_OUT.pack
_ENTRY = fp.NOTIFY_INVAL_ENTRY_OUT.pack


class Invalidator:
    """One mount's pushed invalidation: watcher, notifier thread and barrier."""

    def __init__(self, channel: FuseChannel, to_ino: Callable[[int], int],
                 counted: Callable[[int], int], held: Callable[[int], int],
                 kernel_only: Callable[[int], bool], timeout: tuple[int, int]) -> None:
        """``to_ino``: handle -> FUSE node id; ``counted``: the kernel-wide
        lookup count of a handle (read under the kernel lock); ``held``: this
        mount's own count (what the host was handed); ``kernel_only``: whether
        only the kernel changes the nodes of an ``st_dev`` (not etfs);
        ``timeout``: the cache timeout (s, ns)."""
        self.ch = channel
        self._to_ino = to_ino
        self._counted = counted
        self._held = held
        self._dev_kernel_only = kernel_only
        self._tmo = timeout
        self._devs: dict[int, bool] = {}     # st_dev -> only the kernel changes its nodes
        self._dir_gen: dict[int, int] = {}   # dir handle -> gen when its listing began
        self.readers: set[int] = set()        # thread idents of this mount's readers
        self.gen = 0                          # in-process changes so far
        self.changed_at: dict[int, int] = {}  # handle -> gen of its last in-process change
        self.queued = 0
        self.done = 0
        self._mu = threading.Lock()
        self._work = threading.Condition(self._mu)
        self._delivered = threading.Condition(self._mu)
        self._q: deque[tuple[int, bytes]] = deque()   # (handle, b"") inode / (parent, name)
        self._ranges: dict[int, tuple[int, int]] = {}  # pending INVAL_INODE: (start, end)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._ident = 0

    # -- lifetime ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rumpfs-fuse-notify",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Deliver nothing more; release every waiter; end the thread."""
        with self._mu:
            self._stopping = True
            self._q.clear()
            self._ranges.clear()
            self.done = self.queued
            self._work.notify_all()
            self._delivered.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("rumpfs.fuse: the notifier did not end")

    def forget(self, handle: int) -> None:
        """The host dropped ``handle``: no reply can still carry it."""
        self.changed_at.pop(handle, None)

    # -- replies (reader threads; also under the kernel lock, from readdir) -------------------

    def timeouts(self, h: int, dev: int, g0: int) -> tuple[int, int, int, int]:
        """(entry s, entry ns, attr s, attr ns) for a reply about handle ``h``
        on device ``dev`` begun at change count ``g0``: attributes are not kept
        when an in-process change touched ``h`` since (its notification may
        have found the host without the node, and been dropped); nothing is
        kept of an etfs node (its host file changes behind our back)."""
        s, ns = self._tmo
        ok = self._devs.get(dev)
        if ok is None:
            ok = self._devs[dev] = self._dev_kernel_only(dev)
        if not ok:
            return 0, 0, 0, 0
        if self.changed_at.get(h, 0) > g0:
            return s, ns, 0, 0
        return s, ns, s, ns

    def listing(self, dirh: int, dh: int, offset: int, g0: int, eof: bool) -> None:
        """After a READDIR(PLUS) reply. The host fills its listing cache from
        the replies and marks it whole at the end of the stream; a reply
        computed before an in-process change may reach that cache after the
        change's INVAL_INODE dropped its pages (nothing there yet to drop): if
        the directory changed since the stream began, invalidate it once more
        after the end, so the next listing never starts from a stale cache
        (whatever the directory's mtime says). Never waits."""
        if offset == 0:
            self._dir_gen[dh] = g0
        elif eof and self.changed_at.get(dirh, 0) > self._dir_gen.get(dh, -1):
            self.push_inode(dirh, 0, TO_END)

    def dir_closed(self, dh: int) -> None:
        self._dir_gen.pop(dh, None)

    # -- watcher (under the kernel lock) -----------------------------------------------------

    def _note(self, vp: Vnode) -> int:
        """Record an in-process change of ``vp``; its handle if the host may hold it.
        A node without a lookup count needs nothing: no reply handing it out
        is outstanding (replies count it under the lock that computes them)."""
        h = vp.handle
        if not h or self._counted(h) <= 0 or threading.get_ident() in self.readers:
            return 0
        self.gen += 1
        self.changed_at[h] = self.gen
        return h

    def changed(self, vp: Vnode) -> None:
        h = self._note(vp)
        if h:
            self.push_inode(h, _ATTR_ONLY, 0)

    def changed_data(self, vp: Vnode, offset: int, length: int) -> None:
        h = self._note(vp)
        if h:
            self.push_inode(h, offset, TO_END if length <= 0 else offset + length)

    def changed_entry(self, dvp: Vnode, name: str) -> None:
        h = self._note(dvp)
        if h:
            with self._mu:
                self._enqueue((h, os.fsencode(name)))
            self.push_inode(h, 0, TO_END)    # attributes and the cached listing

    def push_inode(self, h: int, start: int, end: int) -> None:
        with self._mu:
            old = self._ranges.get(h)
            if old is None:
                self._ranges[h] = (start, end)
                self._enqueue((h, b""))
                return
            ostart, oend = old
            if ostart == _ATTR_ONLY:
                self._ranges[h] = (start, end)
            elif start != _ATTR_ONLY:
                to_end = oend == TO_END or end == TO_END
                self._ranges[h] = (min(ostart, start), TO_END if to_end else max(oend, end))

    def _enqueue(self, key: tuple[int, bytes]) -> None:
        # under _mu
        if self._stopping:
            return
        self._q.append(key)
        self.queued += 1
        self._work.notify()

    # -- barrier ----------------------------------------------------------------------------

    def wait(self, ticket: int) -> None:
        """Block until the first ``ticket`` notifications are delivered (never on
        a FUSE reader thread or the notifier itself: they must not wait)."""
        me = threading.get_ident()
        if me in SERVING or me == self._ident:
            return
        deadline = time.monotonic() + WAIT_MAX
        with self._mu:
            while self.done < ticket:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.error("rumpfs.fuse: notifications not delivered in %g s; going on",
                              WAIT_MAX)
                    return
                self._delivered.wait(left)

    # -- notifier thread --------------------------------------------------------------------

    def _run(self) -> None:
        self._ident = threading.get_ident()
        while True:
            with self._mu:
                while not self._q and not self._stopping:
                    self._work.wait()
                if self._stopping:
                    return
                h, name = self._q.popleft()
                rng = None if name else self._ranges.pop(h)
            try:
                if rng is None:
                    self._inval_entry(h, name)
                else:
                    self._inval_inode(h, *rng)
            except Exception:
                log.exception("rumpfs.fuse: a notification failed")
            with self._mu:
                if not self._stopping:
                    self.done += 1
                self._delivered.notify_all()

    def _inval_entry(self, parent: int, name: bytes) -> None:
        # ENOENT: the host holds no such entry (or does not know the parent,
        # so it holds none below it either): nothing to drop.
        self.ch.notify(fp.NOTIFY_INVAL_ENTRY,
                       [_ENTRY(self._to_ino(parent), len(name), 0), name + b"\0"])

    def _inval_inode(self, h: int, start: int, end: int) -> None:
        length = 0 if start == _ATTR_ONLY or end == TO_END else end - start
        msg = [_INODE(self._to_ino(h), start, length)]
        err = self.ch.notify(fp.NOTIFY_INVAL_INODE, msg)
        if err != errno.ENOENT or self._held(h) <= 0:
            return
        # The host counts no such node yet, but was handed it: the reply is on
        # its way to being installed (possibly with attributes older than this
        # change). Try again until the host has it or forgets it.
        deadline = time.monotonic() + RETRY_FOR
        pause = 0.0002
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 2, 0.01)
            err = self.ch.notify(fp.NOTIFY_INVAL_INODE, msg)
            if err != errno.ENOENT or self._held(h) <= 0:
                return
        if not self._stopping:
            log.warning("rumpfs.fuse: node %d handed out but never installed by the host", h)
