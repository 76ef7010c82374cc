"""The narrow vnode-handle API that frontends drive (as NetBSD's p2k drives VOPs).

Allowed imports: ``rumpfs.vfs``, ``rumpfs.kern``, ``rumpfs.errors``; never
``rumpfs.kernel``: the kernel hands itself in as a :class:`KernelPort` and
callers come as :class:`Caller` (``kernel.Process`` fits both shapes), so the
dependency runs one way, kernel -> handles.

FUSE names files by inode number and counts lookups; this module gives
vnodes kernel-wide integer *handles* and keeps those counts:

Reference counting: a handle with lookup count > 0 holds one vnode
reference (so an unlinked file the host still knows stays alive, and the
mount stays busy); ``forget`` to zero drops it and the handle is forgotten.
Handles are never reused while their vnode lives (a vnode keeps its handle
number for life). Open files (``fh``) and directory streams (``dh``) are
descriptors of a private server process: permission is checked with the
caller's credentials at open time, as the kernel does for any open.

Locking: every entry point takes the kernel lock; ``subscribe`` watchers
run under it and must not block or call back into the kernel.

Notifications: ``subscribe(watcher, barrier)`` tells ``watcher`` of every
change to the tree (``vfs.mount.Watcher``: attributes, data ranges, entries),
whoever makes it -- the watcher tells its own requests' changes apart -- and
makes every in-process call of the kernel, after it released the lock, wait
on ``barrier`` until the notifications queued so far are delivered (the
kernel's facades take a waiting lock while any barrier is attached; without
one they take the bare lock and pay nothing).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Protocol

from rumpfs.errors import errno, raise_errno
from rumpfs.kern.cred import W_OK, X_OK, Cred
from rumpfs.kern.proc import Proc
from rumpfs.vfs import sys_falloc, sys_generic, sys_xattr, vfs_syscalls, vfs_vnops
from rumpfs.vfs.genfs import RENAME_EXCHANGE, RENAME_NOREPLACE
from rumpfs.vfs.mount import Vfs, Watcher
from rumpfs.vfs.namei import dotdot, lookup_last
from rumpfs.vfs.proc import VProc
from rumpfs.vfs.vfs_vnops import UTIME_NOW
from rumpfs.vfs.vnode import VBLK, VCHR, VDIR, VLNK, VREG, Vattr, Vnode, VType, vref, vrele

__all__ = [
    "RENAME_EXCHANGE", "RENAME_NOREPLACE", "UTIME_NOW", "Barrier", "Caller", "KernelPort",
    "NodeHandles", "Watcher",
]


class Barrier(Protocol):
    """What an in-process call waits on after releasing the kernel lock.

    ``queued`` counts notifications queued (bumped under the kernel lock),
    ``done`` those delivered; a call that saw ``queued == t`` before its
    release waits (``wait(t)``) while ``done < t``."""

    queued: int
    done: int

    def wait(self, ticket: int) -> None: ...


class Caller(Protocol):
    """Whoever a request runs as: anything carrying a kernel process record
    (``kernel.Caller`` is one)."""

    @property
    def vproc(self) -> VProc: ...


class KernelPort(Protocol):
    """What the handle API needs of a kernel (``kernel.Kernel`` is one): its
    lock, its VFS state, and processes to run callers' requests as."""

    @property
    def lock(self) -> threading.Lock: ...

    @property
    def vfs(self) -> Vfs: ...

    def process(self, uid: int = 0, gid: int = 0, groups: Iterable[int] = (), *,
                umask: int = 0o022) -> Caller: ...

    def _attach_barrier(self, barrier: Barrier) -> None: ...

    def _detach_barrier(self, barrier: Barrier) -> None: ...

ReplyFn = Callable[[bytes, os.stat_result, int], bool]
PlusReplyFn = Callable[[bytes, int, os.stat_result, int], bool]
NameReplyFn = Callable[[bytes, int, int, int, int], bool]
_IFMT_OF = {t: t.ifmt for t in VType}
VDIR_IFMT = VDIR.ifmt
_FSENC, _FSERR = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()  # os.fsencode's


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

    def __init__(self, kernel: KernelPort, root: Vnode | None = None) -> None:
        """``root``: serve the tree below this directory only (a mounted disk
        image); the callers' processes are chrooted there."""
        self._kernel = kernel
        self._lock = kernel.lock
        self._vfs = kernel.vfs
        if root is None:
            root = self._vfs.rootvnode
        assert root is not None
        self._root = root
        self._next = 2
        root.handle = self.ROOT
        self._vnodes: dict[int, Vnode] = {self.ROOT: root}   # handle -> vnode, while counted
        self._counts: dict[int, int] = {self.ROOT: 1}
        vref(root)
        self._server: VProc = Proc(self._vfs, 0, Cred(0, 0), root, root, 0)
        self._procs: dict[tuple[int, int, tuple[int, ...], int], Caller] = {}
        self._linkable: set[int] = set()   # O_TMPFILE handles (no O_EXCL) not yet named

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
                    umask: int = 0o022) -> Caller:
        """A (cached) process carrying a caller's credentials."""
        key = (uid, gid, tuple(sorted(groups)), umask)
        proc = self._procs.get(key)
        if proc is None:
            proc = self._kernel.process(uid, gid, groups, umask=umask)
            if self._root is not self._vfs.rootvnode:
                with self._lock:                # chroot + chdir to the served tree
                    vp = proc.vproc
                    old = (vp.root, vp.cwd)
                    vp.root, vp.cwd = vref(self._root), vref(self._root)
                    vrele(old[0])
                    vrele(old[1])
            self._procs[key] = proc
        return proc

    def forget(self, handle: int, n: int) -> None:
        with self._lock:
            count = self._counts.get(handle, 0) - n
            if count > 0:
                self._counts[handle] = count
                return
            self._counts.pop(handle, None)
            self._linkable.discard(handle)
            vp = self._vnodes.pop(handle, None)
            if vp is not None:
                vrele(vp)

    def lookup_count(self, handle: int) -> int:
        return self._counts.get(handle, 0)

    def dev_kernel_only(self, dev: int) -> bool:
        """Whether only the kernel changes the nodes of device ``dev`` (an
        ``st_dev``), so that a frontend told of every change may let the host
        cache them: a mounted file system's, not an etfs mapping's (its host
        file may change behind the kernel's back). Device numbers are never
        reused, so the answer may be kept. Lock-free (a frontend asks from
        readdir's reply callback, under the lock): a snapshot of the list."""
        return any(mp.dev == dev and mp.fstype != "etfs" for mp in tuple(self._vfs.mounts))

    def kernel_only(self, handle: int, pages: bool = False) -> bool:
        """:meth:`dev_kernel_only` for counted node ``handle`` (lock-free: one
        read); with ``pages``, also whether the host may keep its pages: a
        regular file (not a device window, whose bytes a file system mounted
        from it changes without a notification)."""
        vp = self._vnodes.get(handle)
        if vp is None or vp.mount.fstype == "etfs":
            return False
        return not pages or vp.type is VREG

    # -- names --------------------------------------------------------------

    def lookup(self, p: Caller, parent: int, name: bytes) -> os.stat_result:
        found = self.probe(p, parent, name)
        if found is None:
            raise_errno(errno.ENOENT)
        return with_handle(found[1], found[0])

    def probe(self, p: Caller, parent: int, name: bytes) -> tuple[int, os.stat_result] | None:
        """:meth:`lookup` for a frontend that names nodes itself: (handle, the
        file system's own attributes), counting one lookup as ``lookup`` does,
        or None for a missing name (no ENOENT raised: a frontend answering
        negative entries saves the exception)."""
        with self._lock:
            proc = p.vproc
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
                    return None
                vp = found
                while vp.mountedhere is not None:
                    vp = vp.mountedhere.root
            h = vp.handle or self._handle_of(vp)
            count = self._counts.get(h, 0)
            if not count:
                self._vnodes[h] = vref(vp)
            self._counts[h] = count + 1
            return h, vp.ops.vop_getattr(vp)

    def _entered(self, dvp: Vnode, name: str) -> os.stat_result:
        vp = lookup_last(dvp, name)
        if vp is None:             # raced away: impossible under the lock
            raise_errno(errno.EIO)
        return self._remember(vp)

    def getattr(self, handle: int) -> os.stat_result:
        with self._lock:
            vp = self._vp(handle)
            return with_handle(vp.ops.vop_getattr(vp), handle)

    def attributes(self, handle: int) -> os.stat_result:
        """:meth:`getattr` as the file system gives it (st_ino its own inode
        number): for a frontend that names the node itself."""
        with self._lock:
            vp = self._vnodes.get(handle)
            if vp is None:
                raise_errno(errno.ESTALE)
            return vp.ops.vop_getattr(vp)

    def setattr(self, p: Caller, handle: int, *, mode: int | None = None,
                uid: int | None = None, gid: int | None = None, size: int | None = None,
                atime_ns: int | None = None, mtime_ns: int | None = None,
                fh: int | None = None, kill_suid: bool = False,
                touch: bool = False) -> os.stat_result:
        """Apply all or nothing: every permission is checked before the first
        change. ``kill_suid``: the host asks to clear setuid/setgid as the
        caller would on a write (FUSE's KILL_SUIDGID); ``touch`` with nothing
        else is chown(f, -1, -1) (ctime, and setuid clearing)."""
        with self._lock:
            proc = p.vproc
            vp = self._vp(handle)
            if size is not None:
                self._check_truncate(proc, vp, size, fh)
            if mode is not None or uid is not None or gid is not None:
                attr = vp.ops.vop_getattr(vp)
                if proc.cred.uid != 0 and proc.cred.uid != attr.st_uid:
                    raise_errno(errno.EPERM)
            if size is not None:
                if fh is not None:
                    sys_generic.sys_ftruncate(self._server, fh, size)
                else:
                    vfs_vnops.vn_truncate(proc, vp, size)
                if kill_suid:
                    vfs_vnops.kill_suid(proc, vp)
            if mode is not None:
                vfs_vnops.setattr_mode(proc, vp, mode)
            if (uid is not None and uid != -1) or (gid is not None and gid != -1):
                vfs_vnops.setattr_owner(proc, vp, -1 if uid is None else uid,
                                 -1 if gid is None else gid)
            if atime_ns is not None or mtime_ns is not None:
                vfs_vnops.setattr_times(proc, vp, atime_ns, mtime_ns)
            if touch and size is None and mode is None and uid is None and gid is None \
                    and atime_ns is None and mtime_ns is None:
                # An empty SETATTR is chown(f, -1, -1) -- or the host's
                # file_remove_privs before a non-owner's write, which must not
                # fail (the WRITE itself carries KILL_SUIDGID): so where
                # chown would refuse, only ctime moves.
                try:
                    vfs_vnops.setattr_owner(proc, vp, -1, -1)
                except PermissionError:
                    vfs_vnops.check_writable_fs(vp)
                    vp.ops.vop_setattr(vp, Vattr(ctime_ns=proc.ctx.clock.now_ns()))
            return with_handle(vp.ops.vop_getattr(vp), handle)

    def _check_truncate(self, proc: VProc, vp: Vnode, size: int, fh: int | None) -> None:
        """truncate's own refusals, before anything changes."""
        if size < 0:
            raise_errno(errno.EINVAL)
        if fh is not None:
            fp = self._server.fds.get(fh)
            if not fp.writable or fp.vp.type is not VREG:
                raise_errno(errno.EINVAL)
            return
        if vp.type is VDIR:
            raise_errno(errno.EISDIR)
        if vp.type is not VREG:
            raise_errno(errno.EINVAL)
        if vp.mount.read_only:
            raise_errno(errno.EROFS)
        if not vp.ops.vop_access(vp, W_OK, proc.cred):
            raise_errno(errno.EACCES)

    def readlink(self, p: Caller, handle: int) -> bytes:
        with self._lock:
            vp = self._vp(handle)
            if vp.type is not VLNK:
                raise_errno(errno.EINVAL)
            return os.fsencode(vp.ops.vop_readlink(vp))

    def mknod(self, p: Caller, parent: int, name: bytes, mode: int,
              rdev: int) -> os.stat_result:
        with self._lock:
            dvp, s = self._vp(parent), os.fsdecode(name)
            vfs_syscalls.sys_mknod(p.vproc, s, mode, rdev, dvp)
            return self._entered(dvp, s)

    def mkdir(self, p: Caller, parent: int, name: bytes, mode: int) -> os.stat_result:
        with self._lock:
            dvp, s = self._vp(parent), os.fsdecode(name)
            vfs_syscalls.sys_mkdir(p.vproc, s, mode, dvp)
            return self._entered(dvp, s)

    def symlink(self, p: Caller, parent: int, name: bytes, target: bytes) -> os.stat_result:
        with self._lock:
            dvp, s = self._vp(parent), os.fsdecode(name)
            vfs_syscalls.sys_symlink(p.vproc, target, s, dvp)
            return self._entered(dvp, s)

    def link(self, p: Caller, handle: int, newparent: int, newname: bytes) -> os.stat_result:
        with self._lock:
            vp, dvp, s = self._vp(handle), self._vp(newparent), os.fsdecode(newname)
            # linkat(fd, "", AT_EMPTY_PATH) of an O_TMPFILE file reaches us as
            # a LINK of its node: the first one may name it (I_LINKABLE)
            vfs_syscalls.vn_link(p.vproc, vp, dvp, s, False, handle in self._linkable)
            self._linkable.discard(handle)
            return self._entered(dvp, s)

    def unlink(self, p: Caller, parent: int, name: bytes) -> None:
        with self._lock:
            vfs_syscalls.sys_unlink(p.vproc, os.fsdecode(name), self._vp(parent))

    def rmdir(self, p: Caller, parent: int, name: bytes) -> None:
        with self._lock:
            vfs_syscalls.sys_rmdir(p.vproc, os.fsdecode(name), self._vp(parent))

    def rename(self, p: Caller, parent: int, name: bytes, newparent: int, newname: bytes,
               flags: int = 0) -> None:
        with self._lock:
            vfs_syscalls.sys_rename(p.vproc, os.fsdecode(name), os.fsdecode(newname),
                          self._vp(parent), self._vp(newparent), flags)

    def access(self, p: Caller, handle: int, mode: int) -> None:
        with self._lock:
            vp = self._vp(handle)
            if mode & os.W_OK and vp.mount.read_only and vp.type in (
                    VREG, VDIR, VLNK):
                raise_errno(errno.EROFS)
            want = mode & (os.R_OK | os.W_OK | os.X_OK)
            if want and not vp.ops.vop_access(vp, want, p.vproc.cred):
                raise_errno(errno.EACCES)

    # -- files --------------------------------------------------------------

    def _adopt(self, proc: VProc, fd: int) -> int:
        """Move descriptor ``fd`` of ``proc`` into the server's table."""
        fp = proc.fds.remove(fd)
        return self._server.fds.alloc(fp)

    def open(self, p: Caller, handle: int, flags: int, kill_suid: bool = False) -> int:
        with self._lock:
            vp = self._vp(handle)
            fd = vfs_vnops.vn_open(p.vproc, vp, flags & ~(os.O_CREAT | os.O_EXCL))
            if kill_suid:
                vfs_vnops.kill_suid(p.vproc, vp)
            return self._adopt(p.vproc, fd)

    def create(self, p: Caller, parent: int, name: bytes, mode: int,
               flags: int) -> tuple[int, os.stat_result]:
        with self._lock:
            dvp, s = self._vp(parent), os.fsdecode(name)
            fd = vfs_syscalls.sys_open(p.vproc, s, flags | os.O_CREAT, mode, dvp)
            fh = self._adopt(p.vproc, fd)
            return fh, self._remember(self._server.fds.get(fh).vp)

    def tmpfile(self, p: Caller, parent: int, mode: int,
                flags: int) -> tuple[int, os.stat_result]:
        """open(dir, O_TMPFILE): an unnamed file, open, and its (counted) handle."""
        with self._lock:
            fd = vfs_syscalls.open_tmpfile(p.vproc, self._vp(parent),
                                           flags | vfs_syscalls.O_TMPFILE, mode)
            fh = self._adopt(p.vproc, fd)
            st = self._remember(self._server.fds.get(fh).vp)
            if not flags & os.O_EXCL:
                self._linkable.add(st.st_ino)
            return fh, st

    def read(self, fh: int, size: int, offset: int) -> bytes:
        with self._lock:
            return sys_generic.sys_pread(self._server, fh, size, offset)

    def write(self, fh: int, data: bytes | memoryview, offset: int,
              kill_suid: Caller | None = None) -> int:
        """pwrite; ``kill_suid``: the writer, whose write clears setuid/setgid
        as its own would (FUSE's WRITE_KILL_SUIDGID: the host's writer lacks
        CAP_FSETID). ``data`` may be a view of a reused buffer: it is copied."""
        with self._lock:
            if kill_suid is not None and len(data):
                vfs_vnops.kill_suid(kill_suid.vproc, self._server.fds.get(fh).vp)
            return sys_generic.sys_pwrite(self._server, fh, data, offset)

    def backing_fd(self, fh: int) -> int | None:
        """The host descriptor behind open file ``fh`` if it is a whole host file
        (etfs), for FUSE passthrough; None otherwise. It stays the kernel's: the
        caller may only hand it on (the host takes its own reference)."""
        with self._lock:
            fp = self._server.fds.get(fh)
            if fp.dev is not None:
                return None
            return fp.vp.ops.vop_backing_fd(fp.vp, fp.readable, fp.writable)

    # -- extended attributes ------------------------------------------------

    def getxattr(self, p: Caller, handle: int, name: bytes) -> bytes:
        x = sys_xattr
        with self._lock:
            vp = self._vp(handle)
            return bytes(x.vn_getxattr(p.vproc, vp, x.check_args(name)))

    def listxattr(self, p: Caller, handle: int) -> list[str]:
        x = sys_xattr
        with self._lock:
            return list(x.vn_listxattr(p.vproc, self._vp(handle)))

    def setxattr(self, p: Caller, handle: int, name: bytes, value: bytes, flags: int) -> None:
        x = sys_xattr
        with self._lock:
            vp = self._vp(handle)
            x.vn_setxattr(p.vproc, vp, x.check_args(name, value, flags), value, flags)

    def removexattr(self, p: Caller, handle: int, name: bytes) -> None:
        x = sys_xattr
        with self._lock:
            x.vn_removexattr(p.vproc, self._vp(handle), x.check_args(name))

    def lseek(self, fh: int, offset: int, whence: int) -> int:
        """SEEK_DATA/SEEK_HOLE (and the others) on an open file, as lseek(2)."""
        with self._lock:
            return sys_generic.sys_lseek(self._server, fh, offset, whence)

    def fallocate(self, p: Caller, fh: int, mode: int, offset: int, length: int) -> None:
        """fallocate(2) on an open file (the kernel's sys_fallocate)."""
        with self._lock:
            sys_falloc.sys_fallocate(self._server, fh, mode, offset, length)
            if p.vproc.cred.uid != 0:
                vfs_vnops.kill_suid(p.vproc, self._server.fds.get(fh).vp)

    def copy_file_range(self, p: Caller, fh_in: int, off_in: int, fh_out: int,
                        off_out: int, length: int) -> int:
        """Copy inside the kernel (nothing passes through the host's page
        cache); Linux's rules: EBADF unless readable/writable, EISDIR/EINVAL
        for non-regular files, EINVAL for overlapping ranges in one file."""
        chunk = 1 << 20
        with self._lock:
            src, dst = self._server.fds.get(fh_in), self._server.fds.get(fh_out)
            if not src.readable or not dst.writable or dst.append:
                raise_errno(errno.EBADF)
            for f in (src, dst):
                if f.vp.type is VDIR:
                    raise_errno(errno.EISDIR)
                if f.vp.type is not VREG:
                    raise_errno(errno.EINVAL)
            if src.vp is dst.vp and off_in < off_out + length and off_out < off_in + length:
                raise_errno(errno.EINVAL)
            done = 0
            if length and p.vproc.cred.uid != 0:
                vfs_vnops.kill_suid(p.vproc, dst.vp)
            while done < length:
                data = sys_generic.sys_pread(self._server, fh_in, min(chunk, length - done),
                                    off_in + done)
                if not data:
                    break
                done += sys_generic.sys_pwrite(self._server, fh_out, data, off_out + done)
            return done

    def flush(self, fh: int) -> None:
        with self._lock:
            self._server.fds.get(fh)

    def fsync(self, fh: int, datasync: bool = False) -> None:
        with self._lock:
            sys_generic.sys_fsync(self._server, fh, datasync)

    def release(self, fh: int) -> None:
        with self._lock:
            sys_generic.sys_close(self._server, fh)

    # -- directories --------------------------------------------------------

    def opendir(self, p: Caller, handle: int) -> int:
        with self._lock:
            vp = self._vp(handle)
            fd = vfs_vnops.vn_open(p.vproc, vp, os.O_RDONLY | os.O_DIRECTORY)
            fh = self._adopt(p.vproc, fd)
            fp = self._server.fds.get(fh)
            vp.ops.vop_opendir(vp)
            fp.dirstream = True
            return fh

    def releasedir(self, dh: int) -> None:
        self.release(dh)

    def readdir(self, dh: int, start: int, reply: ReplyFn, plus: bool = True) -> None:
        """Offsets: 1 = after ".", 2 = after "..", 2 + c = after the entry with cookie c.
        With ``plus`` each entry replied (but "." and "..", which the host's
        kernel does not count) takes a lookup count; without, none does.
        ``reply`` gets attributes with st_ino the entry's handle."""
        def raw(name: bytes, handle: int, attr: os.stat_result, off: int) -> bool:
            return reply(name, with_handle(attr, handle), off)

        self.readdir_plus(dh, start, raw, count=plus)

    def readdir_plus(self, dh: int, start: int, reply: PlusReplyFn,
                     count: bool = True, stop: Callable[[int], bool] | None = None) -> None:
        """:meth:`readdir` for a frontend that packs attributes itself:
        ``reply(name, handle, attr, next_off)`` with the file system's own
        attributes (st_ino is its inode number, not the handle). ``stop(handle)``
        true ends the batch before that entry (and before reading its attributes)."""
        with self._lock:
            fp = self._server.fds.get(dh)
            dvp = fp.vp
            if start < 1 and not reply(b".", self._handle_of(dvp), dvp.ops.vop_getattr(dvp), 1):
                return
            if start < 2:
                up = dotdot(self._server, dvp)
                if not reply(b"..", self._handle_of(up), up.ops.vop_getattr(up), 2):
                    return
            counts, vnodes = self._counts, self._vnodes
            names = dvp.names                   # namei's fast path, where the fs has one
            handle_of = self._handle_of
            for name, _, _, cookie in dvp.ops.vop_readdir(dvp, max(start - 2, 0)):
                vp = names.get(name) if names is not None else lookup_last(dvp, name)
                if vp is None:
                    continue
                while vp.mountedhere is not None:
                    vp = vp.mountedhere.root
                h = vp.handle or handle_of(vp)
                if stop is not None and stop(h):
                    return
                if not reply(name.encode(_FSENC, _FSERR), h, vp.ops.vop_getattr(vp), cookie + 2):
                    return
                if count:       # _remember's count, without its getattr
                    held = counts.get(h, 0)
                    if not held:
                        vnodes[h] = vref(vp)
                    counts[h] = held + 1

    def readdir_names(self, dh: int, start: int, reply: NameReplyFn) -> None:
        """A plain listing (offsets as :meth:`readdir`): ``reply(name, handle,
        ifmt, rdev, next_off)`` with the entry's S_IFMT bits and, for device
        nodes only, its rdev -- no attributes are read for other entries, and
        no lookup count is taken."""
        with self._lock:
            fp = self._server.fds.get(dh)
            dvp = fp.vp
            if start < 1 and not reply(b".", self._handle_of(dvp), VDIR_IFMT, 0, 1):
                return
            if start < 2:
                up = dotdot(self._server, dvp)
                if not reply(b"..", self._handle_of(up), VDIR_IFMT, 0, 2):
                    return
            names = dvp.names                   # namei's fast path, where the fs has one
            handle_of = self._handle_of
            ifmt_of = _IFMT_OF
            for name, _, vtype, cookie in dvp.ops.vop_readdir(dvp, max(start - 2, 0)):
                vp = names.get(name) if names is not None else lookup_last(dvp, name)
                if vp is None:
                    continue
                rdev = 0
                if vp.mountedhere is not None:
                    while vp.mountedhere is not None:
                        vp = vp.mountedhere.root
                    vtype = vp.type
                elif vtype is VBLK or vtype is VCHR:
                    rdev = vp.ops.vop_getattr(vp).st_rdev
                if not reply(name.encode(_FSENC, _FSERR), vp.handle or handle_of(vp),
                             ifmt_of[vtype], rdev, cookie + 2):
                    return

    def fsyncdir(self, dh: int) -> None:
        with self._lock:
            self._server.fds.get(dh)

    def statfs(self) -> os.statvfs_result:
        with self._lock:
            return vfs_syscalls.sys_statvfs(self._server, "/")

    # -- notifications --------------------------------------------------------

    def subscribe(self, watcher: Watcher, barrier: Barrier | None = None) -> Callable[[], None]:
        """Tell ``watcher`` of every change (under the kernel lock); with a
        ``barrier``, in-process calls wait on it after releasing the lock.
        Returns the unsubscribe function."""
        with self._lock:
            self._vfs.watchers.append(watcher)
        if barrier is not None:
            self._kernel._attach_barrier(barrier)

        def unsubscribe() -> None:
            if barrier is not None:
                self._kernel._detach_barrier(barrier)
            with self._lock:
                if watcher in self._vfs.watchers:
                    self._vfs.watchers.remove(watcher)
        return unsubscribe
