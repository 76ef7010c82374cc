"""The narrow vnode-handle API that frontends drive (as NetBSD's p2k drives VOPs).

Allowed imports: ``rumpfs.vfs``, ``rumpfs.kern``, ``rumpfs.errors``.

FUSE names files by inode number and counts lookups; this module gives
vnodes kernel-wide integer *handles* and keeps those counts:

Reference counting: a handle with lookup count > 0 holds one vnode
reference (so an unlinked file the host still knows stays alive, and the
mount stays busy); ``forget`` to zero drops it and the handle is forgotten.
Handles are never reused while their vnode lives (a vnode keeps its handle
number for life). Open files (``fh``) and directory streams (``dh``) are
descriptors of a private server process: permission is checked with the
caller's credentials at open time, as the kernel does for any open.

Locking: every entry point takes the kernel lock; ``subscribe`` callbacks
run under it and must not call back into the kernel.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from rumpfs.errors import errno, raise_errno
from rumpfs.kern.cred import X_OK, Cred
from rumpfs.kern.proc import Proc
from rumpfs.vfs import syscalls as sc
from rumpfs.vfs.genfs import RENAME_EXCHANGE, RENAME_NOREPLACE
from rumpfs.vfs.namei import dotdot, lookup_last
from rumpfs.vfs.syscalls import UTIME_NOW, VProc
from rumpfs.vfs.vnode import VDIR, VLNK, VREG, Vnode, vref, vrele

if TYPE_CHECKING:
    from rumpfs.kernel import Kernel, Process

__all__ = ["RENAME_EXCHANGE", "RENAME_NOREPLACE", "UTIME_NOW", "NodeHandles"]

ReplyFn = Callable[[bytes, os.stat_result, int], bool]


def with_handle(attr: os.stat_result, handle: int) -> os.stat_result:
    """``attr`` with st_ino replaced by ``handle``."""
    return os.stat_result((
        attr.st_mode, handle, attr.st_dev, attr.st_nlink, attr.st_uid, attr.st_gid,
        attr.st_size, int(attr.st_atime), int(attr.st_mtime), int(attr.st_ctime),
        attr.st_atime, attr.st_mtime, attr.st_ctime,
        attr.st_atime_ns, attr.st_mtime_ns, attr.st_ctime_ns,
        attr.st_blksize, attr.st_blocks, attr.st_rdev,
    ))


class NodeHandles:
    """Handles, lookup counts and open files for one kernel's frontend."""

    ROOT = 1

    def __init__(self, kernel: Kernel) -> None:
        self._kernel = kernel
        self._lock = kernel.lock
        self._vfs = kernel.vfs
        root = self._vfs.rootvnode
        assert root is not None
        self._next = 2
        root.handle = self.ROOT
        self._vnodes: dict[int, Vnode] = {self.ROOT: root}   # handle -> vnode, while counted
        self._counts: dict[int, int] = {self.ROOT: 1}
        vref(root)
        self._server: VProc = Proc(self._vfs, 0, Cred(0, 0), root, root, 0)
        self._procs: dict[tuple[int, int, tuple[int, ...], int], Process] = {}

    # -- handles ------------------------------------------------------------

    def _handle_of(self, vp: Vnode) -> int:
        if not vp.handle:
            vp.handle = self._next
            self._next += 1
        return vp.handle

    def _vp(self, handle: int) -> Vnode:
        vp = self._vnodes.get(handle)
        if vp is None:
            raise_errno(errno.ESTALE)
        return vp

    def _remember(self, vp: Vnode) -> os.stat_result:
        """+1 lookup on ``vp``; returns its attributes under its handle."""
        h = self._handle_of(vp)
        count = self._counts.get(h, 0)
        if not count:
            self._vnodes[h] = vref(vp)
        self._counts[h] = count + 1
        return with_handle(vp.ops.vop_getattr(vp), h)

    def process_for(self, uid: int, gid: int, groups: tuple[int, ...] = (),
                    umask: int = 0o022) -> Process:
        """A (cached) process carrying a caller's credentials."""
        key = (uid, gid, tuple(sorted(groups)), umask)
        proc = self._procs.get(key)
        if proc is None:
            proc = self._kernel.process(uid, gid, groups, umask=umask)
            self._procs[key] = proc
        return proc

    def forget(self, handle: int, n: int) -> None:
        with self._lock:
            count = self._counts.get(handle, 0) - n
            if count > 0:
                self._counts[handle] = count
                return
            self._counts.pop(handle, None)
            vp = self._vnodes.pop(handle, None)
            if vp is not None:
                vrele(vp)

    def lookup_count(self, handle: int) -> int:
        return self._counts.get(handle, 0)

    # -- names --------------------------------------------------------------

    def lookup(self, p: Process, parent: int, name: bytes) -> os.stat_result:
        with self._lock:
            proc = p._p
            dvp = self._vp(parent)
            if dvp.type is not VDIR:
                raise_errno(errno.ENOTDIR)
            if proc.cred.uid != 0 and not dvp.ops.vop_access(dvp, X_OK, proc.cred):
                raise_errno(errno.EACCES)
            s = os.fsdecode(name)
            if s == ".":
                vp = dvp
            elif s == "..":
                vp = dotdot(proc, dvp)
            else:
                found = lookup_last(dvp, s)
                if found is None:
                    raise_errno(errno.ENOENT)
                vp = found
                while vp.mountedhere is not None:
                    vp = vp.mountedhere.root
            return self._remember(vp)

    def _entered(self, dvp: Vnode, name: str) -> os.stat_result:
        vp = lookup_last(dvp, name)
        if vp is None:             # raced away: impossible under the lock
            raise_errno(errno.EIO)
        return self._remember(vp)

    def getattr(self, handle: int) -> os.stat_result:
        with self._lock:
            vp = self._vp(handle)
            return with_handle(vp.ops.vop_getattr(vp), handle)

    def setattr(self, p: Process, handle: int, *, mode: int | None = None,
                uid: int | None = None, gid: int | None = None, size: int | None = None,
                atime_ns: int | None = None, mtime_ns: int | None = None,
                fh: int | None = None) -> os.stat_result:
        with self._lock, self._quiet():
            proc = p._p
            vp = self._vp(handle)
            if size is not None:
                if fh is not None:
                    sc.sys_ftruncate(self._server, fh, size)
                else:
                    sc.vn_truncate(proc, vp, size)
            if mode is not None:
                sc.setattr_mode(proc, vp, mode)
            if (uid is not None and uid != -1) or (gid is not None and gid != -1):
                sc.setattr_owner(proc, vp, -1 if uid is None else uid,
                                 -1 if gid is None else gid)
            if atime_ns is not None or mtime_ns is not None:
                sc.setattr_times(proc, vp, atime_ns, mtime_ns)
            return with_handle(vp.ops.vop_getattr(vp), handle)

    def readlink(self, p: Process, handle: int) -> bytes:
        with self._lock:
            vp = self._vp(handle)
            if vp.type is not VLNK:
                raise_errno(errno.EINVAL)
            return os.fsencode(vp.ops.vop_readlink(vp))

    def mknod(self, p: Process, parent: int, name: bytes, mode: int,
              rdev: int) -> os.stat_result:
        with self._lock, self._quiet():
            dvp, s = self._vp(parent), os.fsdecode(name)
            sc.sys_mknod(p._p, s, mode, rdev, dvp)
            return self._entered(dvp, s)

    def mkdir(self, p: Process, parent: int, name: bytes, mode: int) -> os.stat_result:
        with self._lock, self._quiet():
            dvp, s = self._vp(parent), os.fsdecode(name)
            sc.sys_mkdir(p._p, s, mode, dvp)
            return self._entered(dvp, s)

    def symlink(self, p: Process, parent: int, name: bytes, target: bytes) -> os.stat_result:
        with self._lock, self._quiet():
            dvp, s = self._vp(parent), os.fsdecode(name)
            sc.sys_symlink(p._p, target, s, dvp)
            return self._entered(dvp, s)

    def link(self, p: Process, handle: int, newparent: int, newname: bytes) -> os.stat_result:
        with self._lock, self._quiet():
            vp, dvp, s = self._vp(handle), self._vp(newparent), os.fsdecode(newname)
            sc.vn_link(p._p, vp, dvp, s)
            return self._entered(dvp, s)

    def unlink(self, p: Process, parent: int, name: bytes) -> None:
        with self._lock, self._quiet():
            sc.sys_unlink(p._p, os.fsdecode(name), self._vp(parent))

    def rmdir(self, p: Process, parent: int, name: bytes) -> None:
        with self._lock, self._quiet():
            sc.sys_rmdir(p._p, os.fsdecode(name), self._vp(parent))

    def rename(self, p: Process, parent: int, name: bytes, newparent: int, newname: bytes,
               flags: int = 0) -> None:
        with self._lock, self._quiet():
            sc.sys_rename(p._p, os.fsdecode(name), os.fsdecode(newname),
                          self._vp(parent), self._vp(newparent), flags)

    def access(self, p: Process, handle: int, mode: int) -> None:
        with self._lock:
            vp = self._vp(handle)
            if mode & os.W_OK and vp.mount.read_only and vp.type in (
                    VREG, VDIR, VLNK):
                raise_errno(errno.EROFS)
            want = mode & (os.R_OK | os.W_OK | os.X_OK)
            if want and not vp.ops.vop_access(vp, want, p._p.cred):
                raise_errno(errno.EACCES)

    # -- files --------------------------------------------------------------

    def _adopt(self, proc: VProc, fd: int) -> int:
        """Move descriptor ``fd`` of ``proc`` into the server's table."""
        fp = proc.fds.remove(fd)
        return self._server.fds.alloc(fp)

    def open(self, p: Process, handle: int, flags: int) -> int:
        with self._lock, self._quiet():
            fd = sc.vn_open(p._p, self._vp(handle), flags & ~(os.O_CREAT | os.O_EXCL))
            return self._adopt(p._p, fd)

    def create(self, p: Process, parent: int, name: bytes, mode: int,
               flags: int) -> tuple[int, os.stat_result]:
        with self._lock, self._quiet():
            dvp, s = self._vp(parent), os.fsdecode(name)
            fd = sc.sys_open(p._p, s, flags | os.O_CREAT, mode, dvp)
            fh = self._adopt(p._p, fd)
            return fh, self._remember(self._server.fds.get(fh).vp)

    def read(self, fh: int, size: int, offset: int) -> bytes:
        with self._lock:
            return sc.sys_pread(self._server, fh, size, offset)

    def write(self, fh: int, data: bytes, offset: int) -> int:
        with self._lock, self._quiet():
            return sc.sys_pwrite(self._server, fh, data, offset)

    def flush(self, fh: int) -> None:
        with self._lock:
            self._server.fds.get(fh)

    def fsync(self, fh: int, datasync: bool = False) -> None:
        with self._lock:
            sc.sys_fsync(self._server, fh, datasync)

    def release(self, fh: int) -> None:
        with self._lock:
            sc.sys_close(self._server, fh)

    # -- directories --------------------------------------------------------

    def opendir(self, p: Process, handle: int) -> int:
        with self._lock:
            vp = self._vp(handle)
            fd = sc.vn_open(p._p, vp, os.O_RDONLY | os.O_DIRECTORY)
            fh = self._adopt(p._p, fd)
            fp = self._server.fds.get(fh)
            vp.ops.vop_opendir(vp)
            fp.dirstream = True
            return fh

    def releasedir(self, dh: int) -> None:
        self.release(dh)

    def readdir(self, dh: int, start: int, reply: ReplyFn) -> None:
        """Offsets: 1 = after ".", 2 = after "..", 2 + c = after the entry with cookie c.
        "." and ".." take no lookup count (the host's kernel does not count them)."""
        with self._lock:
            fp = self._server.fds.get(dh)
            dvp = fp.vp
            if start < 1:
                attr = with_handle(dvp.ops.vop_getattr(dvp), self._handle_of(dvp))
                if not reply(b".", attr, 1):
                    return
            if start < 2:
                up = dotdot(self._server, dvp)
                attr = with_handle(up.ops.vop_getattr(up), self._handle_of(up))
                if not reply(b"..", attr, 2):
                    return
            for name, _, _, cookie in dvp.ops.vop_readdir(dvp, max(start - 2, 0)):
                vp = lookup_last(dvp, name)
                if vp is None:
                    continue
                while vp.mountedhere is not None:
                    vp = vp.mountedhere.root
                attr = with_handle(vp.ops.vop_getattr(vp), self._handle_of(vp))
                if not reply(os.fsencode(name), attr, cookie + 2):
                    return
                self._remember(vp)

    def fsyncdir(self, dh: int) -> None:
        with self._lock:
            self._server.fds.get(dh)

    def statfs(self) -> os.statvfs_result:
        with self._lock:
            return sc.sys_statvfs(self._server, "/")

    # -- notifications --------------------------------------------------------

    def subscribe(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Call ``callback(handle)`` after in-process changes to counted vnodes."""
        def watch(vp: Vnode) -> None:
            if vp.handle and vp.handle in self._counts:
                callback(vp.handle)

        with self._lock:
            self._vfs.watchers.append(watch)

        def unsubscribe() -> None:
            with self._lock:
                if watch in self._vfs.watchers:
                    self._vfs.watchers.remove(watch)
        return unsubscribe

    def _quiet(self) -> _Quiet:
        return _Quiet(self._vfs)


class _Quiet:
    """While a frontend's own request runs, its changes are not echoed back."""

    __slots__ = ("_vfs",)

    def __init__(self, vfs: object) -> None:
        self._vfs = vfs

    def __enter__(self) -> None:
        self._vfs.quiet += 1      # type: ignore[attr-defined]

    def __exit__(self, *exc: object) -> None:
        self._vfs.quiet -= 1      # type: ignore[attr-defined]
