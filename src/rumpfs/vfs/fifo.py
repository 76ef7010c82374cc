"""FIFO nodes and anonymous pipes: the VFS side of the pipe engine (``kern.pipe``).

Allowed imports: ``rumpfs.kern``, ``rumpfs.errors``.

A FIFO node of any file system gets a :class:`~rumpfs.kern.pipe.Pipe` when
it is first opened; the pipe lives in ``Vfs.fifos`` while any end is open
and goes (with unread data) when the last closes, as Linux frees i_pipe.
Opening follows Linux's fifo_open:

- O_RDONLY: waits for a writer unless O_NONBLOCK (a non-blocking reader
  without writers then reads end-of-file);
- O_WRONLY: ENXIO if O_NONBLOCK and no reader; else waits for one;
- O_RDWR: never waits (it is its own partner).

Anonymous pipes (``pipe()``) are VFIFO vnodes of a hidden ``pipefs`` mount,
one per kernel, outside the mount table, as Linux's pipefs.

Locking: called with the kernel lock held; the waits release it (see
``kern.pipe``). The caller holds a reference on the FIFO vnode across the
wait, so it cannot be freed meanwhile.
"""

from __future__ import annotations

import os
import stat as st
from collections.abc import Callable

from rumpfs.errors import errno, raise_errno
from rumpfs.kern.cred import Cred
from rumpfs.kern.pipe import Pipe, PipeEnd
from rumpfs.vfs.genfs import GenfsOps
from rumpfs.vfs.mount import Mount, Vfs
from rumpfs.vfs.vnode import VFIFO, Vattr, Vnode

__all__ = ["PipeVnode", "fifo_open", "pipe_vnode"]

_ACCMODE = os.O_RDONLY | os.O_WRONLY | os.O_RDWR


def fifo_open(vfs: Vfs, vp: Vnode, flags: int) -> PipeEnd:
    """Open an end of FIFO node ``vp``'s pipe (may wait; see the module docstring)."""
    pipe = vfs.fifos.get(vp)
    if pipe is None:
        pipe = Pipe(vfs.lock)
        fifos = vfs.fifos

        def release() -> None:
            fifos.pop(vp, None)

        pipe.on_release = release
        fifos[vp] = pipe
    acc = flags & _ACCMODE
    nonblock = bool(flags & os.O_NONBLOCK)
    end: PipeEnd
    if acc == os.O_RDONLY:
        end = FifoEnd(vfs, vp, pipe, True, False, nonblock)
        if not nonblock and not pipe.writers:
            _wait(end, pipe.wait_for_writer)
    elif acc == os.O_WRONLY:
        if nonblock and not pipe.readers:
            if not pipe.writers:
                pipe.close_end(False, False)        # nobody holds it: let it go
            raise_errno(errno.ENXIO)
        end = FifoEnd(vfs, vp, pipe, False, True, nonblock)
        if not pipe.readers:
            _wait(end, pipe.wait_for_reader)
    else:
        end = FifoEnd(vfs, vp, pipe, True, True, nonblock)
    return end


_DAY_NS = 86_400 * 1_000_000_000


class FifoEnd(PipeEnd):
    """An end of a FIFO node's pipe: data moved stamps the node as Linux's
    pipe_read/pipe_write do (atime by relatime rules after a read; mtime and
    ctime after a write), except on a read-only mount."""

    __slots__ = ("vfs", "vp")

    def __init__(self, vfs: Vfs, vp: Vnode, pipe: Pipe, read: bool, write: bool,
                 nonblock: bool) -> None:
        super().__init__(pipe, read, write, nonblock)
        self.vfs = vfs
        self.vp = vp

    def d_read(self, minor: int, size: int, offset: int) -> bytes:
        data = super().d_read(minor, size, offset)
        vp = self.vp
        if data and not vp.mount.read_only:
            st_ = vp.ops.vop_getattr(vp)
            now = self.vfs.clock.now_ns()
            atime = st_.st_atime_ns
            if atime <= st_.st_mtime_ns or atime <= st_.st_ctime_ns or now - atime >= _DAY_NS:
                vp.ops.vop_setattr(vp, Vattr(atime_ns=now))
        return data

    def d_write(self, minor: int, data: bytes | memoryview, offset: int) -> int:
        n = super().d_write(minor, data, offset)
        vp = self.vp
        if n and not vp.mount.read_only:
            now = self.vfs.clock.now_ns()
            vp.ops.vop_setattr(vp, Vattr(mtime_ns=now, ctime_ns=now))
        return n


def _wait(end: PipeEnd, wait: Callable[[], None]) -> None:
    """Run a partner wait; if it is interrupted (KeyboardInterrupt in the waiting
    thread), close the end again before passing the exception on."""
    try:
        wait()
    except BaseException:
        end.d_close(0, 0)
        raise


class PipeVnode(Vnode):
    """An anonymous pipe's vnode: who made it, when, and a number."""

    __slots__ = ("ctime", "gid", "ino", "uid")

    def __init__(self, mp: Mount, ino: int, cred: Cred, now: int) -> None:
        super().__init__(VFIFO, mp.root.ops, mp)
        self.ino = ino
        self.uid = cred.uid
        self.gid = cred.gid
        self.ctime = now


class PipefsOps(GenfsOps):
    """pipefs: stat and access for anonymous pipes; I/O goes through their ends."""

    def vop_getattr(self, vp: Vnode) -> os.stat_result:
        pv: PipeVnode = vp  # type: ignore[assignment]
        t = pv.ctime
        s, f = t // 1_000_000_000, t / 1e9
        return os.stat_result((st.S_IFIFO | 0o600, pv.ino, vp.mount.dev, 1, pv.uid, pv.gid, 0,
                               s, s, s, f, f, f, t, t, t, 4096, 0, 0))

    def vop_perms(self, vp: Vnode) -> tuple[int, int, int]:
        pv: PipeVnode = vp  # type: ignore[assignment]
        return st.S_IFIFO | 0o600, pv.uid, pv.gid

    def vop_access(self, vp: Vnode, want: int, cred: Cred) -> bool:
        return True


class _Pipefs:
    """pipefs's mount data: the last inode number handed out."""

    __slots__ = ("last_ino",)

    def __init__(self) -> None:
        self.last_ino = 0


class _PipefsVfsOps:
    def vfs_root(self, mp: Mount) -> Vnode:
        return mp.root

    def vfs_statvfs(self, mp: Mount) -> os.statvfs_result:
        return os.statvfs_result((4096, 4096, 0, 0, 0, 0, 0, 0, 0, 255))

    def vfs_unmount(self, mp: Mount) -> None:
        pass

    def vfs_sync(self, mp: Mount) -> None:
        pass


def pipe_vnode(vfs: Vfs, cred: Cred) -> PipeVnode:
    """A fresh anonymous pipe vnode on the kernel's pipefs."""
    mp = vfs.pipefs
    if mp is None:
        mp = vfs.pipefs = Mount("pipefs", _PipefsVfsOps(), vfs.new_dev(), False)
        mp.root = Vnode(VFIFO, PipefsOps(), mp)
        mp.data = _Pipefs()
    data = mp.data
    assert isinstance(data, _Pipefs)
    data.last_ino += 1
    return PipeVnode(mp, data.last_ino, cred, vfs.clock.now_ns())
