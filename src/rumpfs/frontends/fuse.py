"""Serve a rumpfs kernel to the host through FUSE, like NetBSD's p2k.

p2k turns puffs requests into vnode operations; this module turns the host
kernel's FUSE requests (read from ``/dev/fuse`` by :mod:`fuse_dev`, laid out
as in :mod:`fuse_proto`) into calls on the kernel's narrow vnode-handle API
(:class:`rumpfs.handles.NodeHandles`). A FUSE node id *is* a handle, except
that the kernel's root handle and FUSE's root id 1 are swapped (a bijection).

Allowed imports: the standard library, ``rumpfs.frontends.fuse_proto``,
``rumpfs.frontends.fuse_dev``, ``rumpfs.frontends.fuse_creds``,
``rumpfs.frontends.fuse_encode``, ``rumpfs.frontends.fuse_inval``,
``rumpfs.frontends.fuse_passthrough``,
``rumpfs.handles`` and ``rumpfs.kernel``.

Requests
    One table maps each opcode to a handler ``(nodeid, uid, gid, pid, body)
    -> reply parts``; every request the kernel can send has an answer, and
    ENOSYS is given only where Linux's tmpfs has no such operation either
    (ioctl, bmap, poll, locks are left to the host: see docs/frontends.md).
    Requests are served by ``threads`` reader threads (default 1: the kernel
    runs under one lock and the GIL, so more readers only help when a
    request blocks); replies and notifications are single ``writev`` calls,
    so any thread may send.

Credentials
    Every request runs as a kernel ``Process`` with the caller's uid and gid
    (request header), umask (create/mkdir/mknod bodies: ``DONT_MASK`` is
    negotiated so the kernel, not the host, applies it) and supplementary
    groups (``/proc/<pid>/status``, cached per task: :class:`GroupCache`).
    On an exclusive mount the host checks permissions too
    (``default_permissions``, with ``POSIX_ACL`` so that ACLs count);
    otherwise only the kernel decides.

Reference counting
    Each reply that hands the host a node (lookup, create, mknod, mkdir,
    symlink, link, readdirplus entries other than ``.``/``..``) adds one to
    the handle's lookup count; ``forget`` takes them back. The frontend keeps
    its own copy of the counts and of the open file/directory handles so
    that, once the host is gone, it can release everything it still held.

Caching
    With ``cache_timeout`` > 0 the host keeps entries (also negative ones),
    attributes, pages (``keep_cache``), listings and symlink targets. An
    exclusive mount (nothing else changes the kernel) needs nothing more;
    under ``serve()`` every other change is pushed to the host by
    :class:`fuse_inval.Invalidator`, and a reply gives attribute timeout 0
    for a node changed in-process since the reply began (docs/frontends.md,
    "Caching and coherence", has the argument). Nodes whose host file may
    change behind the kernel's back (etfs) are not cached under ``serve()``.

Locking
    Handlers call the kernel synchronously (it takes its own lock); the
    bookkeeping dicts are touched under ``self._mu``. The serving process
    must not ``mmap`` files of its own mount (a page fault holds the GIL
    that a server thread needs to answer it).

Errors
    ``OSError`` becomes its errno in the reply; any other exception is logged
    and answered with EIO, failing one request, never the mount.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import stat
import threading
import time
from collections.abc import Callable, Iterator

from rumpfs.frontends import fuse_encode as fe
from rumpfs.frontends import fuse_proto as fp
from rumpfs.frontends.fuse_creds import GroupCache, read_groups
from rumpfs.frontends.fuse_dev import FuseChannel
from rumpfs.frontends.fuse_encode import attr_fields as _attr
from rumpfs.frontends.fuse_encode import host_view, is_rumpblk, readdir_room
from rumpfs.frontends.fuse_encode import name_at as _name
from rumpfs.frontends.fuse_encode import sized_reply as _sized
from rumpfs.frontends.fuse_inval import SERVING, Invalidator
from rumpfs.frontends.fuse_passthrough import Passthrough
from rumpfs.handles import UTIME_NOW, Caller, NodeHandles
from rumpfs.kernel import Kernel

__all__ = ["FuseServer", "GroupCache", "host_view", "read_groups", "serve"]

log = logging.getLogger("rumpfs.fuse")

# How long start() waits for the mount to answer, and stop() for the readers.
MOUNT_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
SERVE_TIMEOUT = 60.0   # serve()'s cache timeout: what no notification covers (atime) ages out
MAX_PAGES = 256                       # max_write = 1 MiB
MAX_WRITE = MAX_PAGES * 4096
BUFSIZE = MAX_WRITE + 4096            # a WRITE's header plus its data

_HDR = fp.IN_HEADER.size
_OUT = fp.OUT_HEADER
_ENTRY = fp.ENTRY_OUT
_ATTR = fp.ATTR_OUT

_ACL_NAMES = (b"system.posix_acl_access", b"system.posix_acl_default")

Handler = Callable[[int, int, int, int, memoryview], "list[bytes] | None"]


class RumpOperations:
    """FUSE request handlers over a kernel's :class:`NodeHandles`."""

    def __init__(self, handles: NodeHandles, channel: FuseChannel,
                 cache_timeout: float = 0.0, notify: bool = False) -> None:
        self.h = handles
        self.ch = channel
        # > 0: the host may keep entries (also negative ones), attributes, file
        # pages and directory listings for that long -- right as they are when
        # only this mount changes the kernel (exclusive), or with ``notify``
        # when every other change is pushed to the host (serve()).
        secs = int(cache_timeout)
        self._tmo = (secs, int((cache_timeout - secs) * 1e9))
        self._caching = cache_timeout > 0
        self._negative = _ENTRY.pack(0, 0, secs, 0, self._tmo[1], 0, *(0,) * 16)
        self._open_flags = fp.FOPEN_NOFLUSH | (fp.FOPEN_KEEP_CACHE if self._caching else 0)
        self._dir_flags = (fp.FOPEN_KEEP_CACHE | fp.FOPEN_CACHE_DIR) if self._caching else 0
        self.inval: Invalidator | None = None
        if self._caching and notify:
            self.inval = Invalidator(channel, self._ino, handles.lookup_count, self._held,
                                     handles.dev_kernel_only, self._tmo)
        self.groups = GroupCache()
        # (uid, gid, groups, umask) -> the kernel process requests run as
        # (NodeHandles.process_for caches them too, under a sorted key)
        self._callers: dict[tuple[int, int, tuple[int, ...], int], Caller] = {}
        self.passthrough = False            # negotiated at INIT (root, Linux >= 6.9)
        self.posix_acl = False              # negotiated at INIT (exclusive mounts)
        self._pt = Passthrough(handles, channel)    # backing ids of open nodes
        self._root = handles.ROOT
        self._mu = threading.Lock()
        self._lookups: dict[int, int] = {}  # handle -> lookups the host holds
        self._files: set[int] = set()  # open file handles
        self._dirs: set[int] = set()  # open directory handles
        self.initialized = threading.Event()
        self.proto_minor = 0
        self.ops: dict[int, Handler] = {
            fp.LOOKUP: self.lookup, fp.FORGET: self.forget, fp.GETATTR: self.getattr,
            fp.SETATTR: self.setattr, fp.READLINK: self.readlink, fp.SYMLINK: self.symlink,
            fp.MKNOD: self.mknod, fp.MKDIR: self.mkdir, fp.UNLINK: self.unlink,
            fp.RMDIR: self.rmdir, fp.RENAME: self.rename, fp.RENAME2: self.rename2,
            fp.LINK: self.link, fp.OPEN: self.open, fp.READ: self.read,
            fp.WRITE: self.write, fp.STATFS: self.statfs, fp.RELEASE: self.release,
            fp.FSYNC: self.fsync, fp.FLUSH: self.flush, fp.INIT: self.init,
            fp.OPENDIR: self.opendir, fp.READDIR: self.readdir,
            fp.READDIRPLUS: self.readdirplus, fp.RELEASEDIR: self.releasedir,
            fp.FSYNCDIR: self.fsyncdir, fp.ACCESS: self.access, fp.CREATE: self.create,
            fp.INTERRUPT: self.interrupt, fp.DESTROY: self.destroy,
            fp.BATCH_FORGET: self.batch_forget, fp.LSEEK: self.lseek,
            fp.FALLOCATE: self.fallocate, fp.COPY_FILE_RANGE: self.copy_file_range,
            fp.GETXATTR: self.getxattr, fp.LISTXATTR: self.listxattr,
            fp.SETXATTR: self.setxattr, fp.REMOVEXATTR: self.removexattr,
            fp.TMPFILE: self.tmpfile,
        }

    # -- mapping ----------------------------------------------------------------------------

    def _handle(self, ino: int) -> int:
        if ino == fp.ROOT_ID:
            return self._root
        if ino == self._root:
            return fp.ROOT_ID
        return ino

    _ino = _handle  # the swap is its own inverse

    def _proc(self, uid: int, gid: int, pid: int, umask: int = 0o022) -> Caller:
        # root's groups never change a permission decision: skip reading /proc
        groups = () if uid == 0 else self.groups.get(pid, uid, gid)
        key = (uid, gid, groups, umask)
        proc = self._callers.get(key)
        if proc is None:
            proc = self._callers[key] = self.h.process_for(uid, gid, groups, umask)
        return proc

    # -- timeouts under serve() (docs/frontends.md, "Caching and coherence") ----------------

    def _held(self, handle: int) -> int:
        return self._lookups.get(handle, 0)

    def _gen(self) -> int:
        """Where in-process changes stand (read before a reply is computed)."""
        inv = self.inval
        return inv.gen if inv is not None else 0

    def _timeouts(self, h: int, dev: int, g0: int) -> tuple[int, int, int, int]:
        """(entry s, entry ns, attr s, attr ns) for a reply about ``h`` begun at
        change count ``g0`` (serve(): :meth:`Invalidator.timeouts`)."""
        inv = self.inval
        if inv is None:
            s, ns = self._tmo
            return s, ns, s, ns
        return inv.timeouts(h, dev, g0)

    def _entry(self, st: os.stat_result, g0: int) -> bytes:
        es, ens, a_s, ans = self._timeouts(st.st_ino, st.st_dev, g0)
        return _ENTRY.pack(self._ino(st.st_ino), 0, es, a_s, ens, ans,
                           *_attr(st, self._ino(st.st_ino)))

    def _gained(self, st: os.stat_result, g0: int) -> bytes:
        """Note one more host lookup of st's handle; its entry reply. The count
        goes up before the timeouts are chosen (see fuse_inval: a notification
        finding no node is retried only while the count says it is handed out)."""
        with self._mu:
            self._lookups[st.st_ino] = self._lookups.get(st.st_ino, 0) + 1
        return self._entry(st, g0)

    def _attr_reply(self, st: os.stat_result, g0: int) -> list[bytes]:
        _, _, s, ns = self._timeouts(st.st_ino, st.st_dev, g0)
        return [_ATTR.pack(s, ns, 0, *_attr(st, self._ino(st.st_ino)))]

    # -- session ----------------------------------------------------------------------------

    def init(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        major, minor, max_readahead, flags = fp.INIT_IN.unpack_from(body)
        if major != fp.KERNEL_VERSION or minor < fp.MIN_MINOR:
            raise OSError(errno.EPROTO, f"FUSE protocol {major}.{minor} is too old")
        if flags & fp.INIT_EXT and len(body) >= 20:
            flags |= fp.INIT_IN_FLAGS2.unpack_from(body, 16)[0] << 32
        want = (fp.ASYNC_READ | fp.ATOMIC_O_TRUNC | fp.EXPORT_SUPPORT | fp.BIG_WRITES
                | fp.DONT_MASK | fp.AUTO_INVAL_DATA | fp.DO_READDIRPLUS
                | fp.READDIRPLUS_AUTO | fp.PARALLEL_DIROPS | fp.MAX_PAGES
                | fp.HANDLE_KILLPRIV_V2 | fp.INIT_EXT
                | (fp.CACHE_SYMLINKS | fp.POSIX_ACL if self._caching else 0))
        # POSIX_ACL (exclusive mode, which already uses default_permissions):
        # the host checks ACLs too, reading them with GETXATTR system.posix_acl_*
        # and caching them until its own setattr/setxattr; the kernel here still
        # does inheritance, the umask (skipped by the host: DONT_MASK), chmod's
        # mask update and setfacl's mode update, as the caller.
        if os.geteuid() == 0:      # FUSE_DEV_IOC_BACKING_OPEN needs CAP_SYS_ADMIN
            want |= fp.PASSTHROUGH
        got = flags & want
        self.posix_acl = bool(got & fp.POSIX_ACL)
        self.proto_minor = min(minor, fp.KERNEL_MINOR_VERSION)
        self.passthrough = bool(got & fp.PASSTHROUGH) and self.proto_minor >= 40
        if not self.passthrough:
            got &= ~fp.PASSTHROUGH
        reply = fp.INIT_OUT.pack(
            fp.KERNEL_VERSION, self.proto_minor, max_readahead, got & 0xFFFFFFFF,
            16, 12, MAX_WRITE, 1, MAX_PAGES, 0, got >> 32,
            1 if self.passthrough else 0,     # max_stack_depth: backing files are host ones
        )
        self.initialized.set()
        return [reply]

    def destroy(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        return []

    def interrupt(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> None:
        return None   # requests are answered synchronously: nothing to interrupt

    # -- names ------------------------------------------------------------------------------

    def lookup(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        inv = self.inval
        g0 = inv.gen if inv is not None else 0
        parent = self._handle(nodeid)
        found = self.h.probe(self._proc(uid, gid, pid), parent, _name(body))
        if found is None:
            if not self._caching or (inv is not None and not self.h.kernel_only(parent)):
                raise OSError(errno.ENOENT, "no such entry")
            # a negative entry: node id 0, kept by the host for the timeout (an
            # in-process create drops it: the host holds the parent's lock until
            # the entry is in place, and INVAL_ENTRY takes it)
            return [self._negative]
        handle, st = found
        with self._mu:   # counted before the timeouts are chosen (see _gained)
            self._lookups[handle] = self._lookups.get(handle, 0) + 1
        ino = self._ino(handle)
        if inv is None:
            s, ns = self._tmo
            return [_ENTRY.pack(ino, 0, s, s, ns, ns, *_attr(st, ino))]
        es, ens, a_s, ans = self._timeouts(handle, st.st_dev, g0)
        return [_ENTRY.pack(ino, 0, es, a_s, ens, ans, *_attr(st, ino))]

    def _forget(self, nodeid: int, n: int) -> None:
        handle = self._handle(nodeid)
        try:
            with self._mu:
                held = self._lookups.get(handle, 0)
                if held <= n:
                    self._lookups.pop(handle, None)
                else:
                    self._lookups[handle] = held - n
            self.h.forget(handle, n)
            if self.inval is not None and not self.h.lookup_count(handle):
                self.inval.forget(handle)   # no reply can carry it now
        except Exception:  # forget cannot answer an error
            log.exception("rumpfs.fuse: forget(%d, %d) failed", handle, n)

    def forget(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> None:
        self._forget(nodeid, fp.FORGET_IN.unpack_from(body)[0])

    def batch_forget(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> None:
        count = fp.BATCH_FORGET_IN.unpack_from(body)[0]
        off = fp.BATCH_FORGET_IN.size
        for _ in range(count):
            ino, n = fp.FORGET_ONE.unpack_from(body, off)
            off += fp.FORGET_ONE.size
            self._forget(ino, n)

    def getattr(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        inv = self.inval
        if inv is None:
            s, ns = self._tmo
            return [_ATTR.pack(s, ns, 0, *_attr(self.h.attributes(self._handle(nodeid)), nodeid))]
        g0 = inv.gen
        handle = self._handle(nodeid)
        st = self.h.attributes(handle)
        _, _, s, ns = self._timeouts(handle, st.st_dev, g0)
        return [_ATTR.pack(s, ns, 0, *_attr(st, nodeid))]

    def setattr(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        (valid, _, fh, size, _, atime, mtime, _, atimensec, mtimensec, _, mode, _, auid,
         agid, _) = fp.SETATTR_IN.unpack_from(body)
        handle = self._handle(nodeid)
        p = self._proc(uid, gid, pid)
        g0 = self._gen()
        a_ns: int | None = None
        m_ns: int | None = None
        if valid & fp.FATTR_ATIME:
            a_ns = UTIME_NOW if valid & fp.FATTR_ATIME_NOW else atime * 1_000_000_000 + atimensec
        if valid & fp.FATTR_MTIME:
            m_ns = UTIME_NOW if valid & fp.FATTR_MTIME_NOW else mtime * 1_000_000_000 + mtimensec
        st = self.h.setattr(
            p, handle,
            mode=stat.S_IMODE(mode) if valid & fp.FATTR_MODE else None,
            uid=auid if valid & fp.FATTR_UID else None,
            gid=agid if valid & fp.FATTR_GID else None,
            size=size if valid & fp.FATTR_SIZE else None,
            atime_ns=a_ns, mtime_ns=m_ns,
            fh=fh if valid & fp.FATTR_FH and valid & fp.FATTR_SIZE else None,
            kill_suid=bool(valid & fp.FATTR_KILL_SUIDGID),
            touch=not valid & ~(fp.FATTR_FH | fp.FATTR_LOCKOWNER | fp.FATTR_CTIME),
        )
        return self._attr_reply(st, g0)

    def readlink(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        return [self.h.readlink(self._proc(uid, gid, pid), self._handle(nodeid))]

    def mknod(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        mode, rdev, umask, _ = fp.MKNOD_IN.unpack_from(body)
        p = self._proc(uid, gid, pid, umask)
        name = _name(body[fp.MKNOD_IN.size:])
        g0 = self._gen()
        return [self._gained(self.h.mknod(p, self._handle(nodeid), name, mode, rdev), g0)]

    def mkdir(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        mode, umask = fp.MKDIR_IN.unpack_from(body)
        p = self._proc(uid, gid, pid, umask)
        name = _name(body[fp.MKDIR_IN.size:])
        g0 = self._gen()
        return [self._gained(self.h.mkdir(p, self._handle(nodeid), name, mode), g0)]

    def unlink(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        self.h.unlink(self._proc(uid, gid, pid), self._handle(nodeid), _name(body))
        return []

    def rmdir(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        self.h.rmdir(self._proc(uid, gid, pid), self._handle(nodeid), _name(body))
        return []

    def symlink(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        raw = bytes(body)
        name, target = raw.split(b"\0")[:2]
        p = self._proc(uid, gid, pid)
        g0 = self._gen()
        return [self._gained(self.h.symlink(p, self._handle(nodeid), name, target), g0)]

    def _rename(self, nodeid: int, uid: int, gid: int, pid: int, newdir: int, flags: int,
                names: memoryview) -> list[bytes]:
        old, new = bytes(names).split(b"\0")[:2]
        self.h.rename(self._proc(uid, gid, pid), self._handle(nodeid), old,
                      self._handle(newdir), new, flags)
        return []

    def rename(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        newdir = fp.RENAME_IN.unpack_from(body)[0]
        return self._rename(nodeid, uid, gid, pid, newdir, 0, body[fp.RENAME_IN.size:])

    def rename2(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        newdir, flags, _ = fp.RENAME2_IN.unpack_from(body)
        return self._rename(nodeid, uid, gid, pid, newdir, flags, body[fp.RENAME2_IN.size:])

    def link(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        old = fp.LINK_IN.unpack_from(body)[0]
        name = _name(body[fp.LINK_IN.size:])
        p = self._proc(uid, gid, pid)
        g0 = self._gen()
        return [self._gained(self.h.link(p, self._handle(old), self._handle(nodeid), name), g0)]

    def access(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        mask = fp.ACCESS_IN.unpack_from(body)[0]
        self.h.access(self._proc(uid, gid, pid), self._handle(nodeid), mask)
        return []

    # -- files ------------------------------------------------------------------------------

    def _opened(self, fh: int, handle: int, flags: int) -> bytes:
        with self._mu:
            self._files.add(fh)
        # NOFLUSH: nothing to do on close (writes reach the kernel when made)
        oflags = self._open_flags
        if self.inval is not None and not self.h.kernel_only(handle, pages=True):
            oflags = fp.FOPEN_NOFLUSH    # pages no notification would drop: not kept
        if self.passthrough:
            return self._pt.opened(fh, handle, flags, oflags)
        return fp.OPEN_OUT.pack(fh, oflags, 0)

    def open(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        flags, open_flags = fp.OPEN_IN.unpack_from(body)
        fh = self.h.open(self._proc(uid, gid, pid), self._handle(nodeid), flags,
                         kill_suid=bool(open_flags & fp.OPEN_KILL_SUIDGID))
        return [self._opened(fh, self._handle(nodeid), flags)]

    def create(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        flags, mode, umask, _ = fp.CREATE_IN.unpack_from(body)
        p = self._proc(uid, gid, pid, umask)
        name = _name(body[fp.CREATE_IN.size:])
        g0 = self._gen()
        fh, st = self.h.create(p, self._handle(nodeid), name, mode, flags)
        return [self._gained(st, g0), self._opened(fh, st.st_ino, flags)]

    def tmpfile(self, nodeid: int, uid: int, gid: int, pid: int,
                body: memoryview) -> list[bytes]:
        flags, mode, umask, _ = fp.CREATE_IN.unpack_from(body)
        p = self._proc(uid, gid, pid, umask)
        g0 = self._gen()
        fh, st = self.h.tmpfile(p, self._handle(nodeid), mode, flags)
        return [self._gained(st, g0), self._opened(fh, st.st_ino, flags)]

    def read(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        fh, offset, size, _, _, _, _ = fp.READ_IN.unpack_from(body)
        return [self.h.read(fh, size, offset)]

    def write(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        fh, offset, size, write_flags, _, _, _ = fp.WRITE_IN.unpack_from(body)
        data = body[fp.WRITE_IN.size:fp.WRITE_IN.size + size]
        kill = None
        if write_flags & fp.WRITE_KILL_SUIDGID:
            kill = self._proc(uid, gid, pid)
        n = self.h.write(fh, data, offset, kill_suid=kill)
        return [fp.WRITE_OUT.pack(n, 0)]

    def flush(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        # Not sent (FOPEN_NOFLUSH); ENOSYS would tell the host never to ask again.
        raise OSError(errno.ENOSYS, "flush")

    def release(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        fh = fp.RELEASE_IN.unpack_from(body)[0]
        with self._mu:
            self._files.discard(fh)
        self._pt.released(fh)
        self.h.release(fh)
        return []

    def fsync(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        fh, flags, _ = fp.FSYNC_IN.unpack_from(body)
        self.h.fsync(fh, bool(flags & fp.FSYNC_FDATASYNC))
        return []

    def lseek(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        fh, offset, whence, _ = fp.LSEEK_IN.unpack_from(body)
        return [fp.LSEEK_OUT.pack(self.h.lseek(fh, offset, whence))]

    def fallocate(self, nodeid: int, uid: int, gid: int, pid: int,
                  body: memoryview) -> list[bytes]:
        fh, offset, length, mode, _ = fp.FALLOCATE_IN.unpack_from(body)
        self.h.fallocate(self._proc(uid, gid, pid), fh, mode, offset, length)
        return []

    def copy_file_range(self, nodeid: int, uid: int, gid: int, pid: int,
                        body: memoryview) -> list[bytes]:
        fh_in, off_in, _, fh_out, off_out, length, flags = fp.COPY_FILE_RANGE_IN.unpack_from(body)
        if flags:
            raise OSError(errno.EINVAL, "copy_file_range flags")
        n = self.h.copy_file_range(self._proc(uid, gid, pid), fh_in, off_in, fh_out, off_out,
                                   length)
        return [fp.WRITE_OUT.pack(n, 0)]

    # -- directories ------------------------------------------------------------------------

    def opendir(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        handle = self._handle(nodeid)
        dh = self.h.opendir(self._proc(uid, gid, pid), handle)
        with self._mu:
            self._dirs.add(dh)
        if self.inval is not None and not self.h.kernel_only(handle):
            return [fp.OPEN_OUT.pack(dh, 0, 0)]     # an etfs directory: the host's may change
        return [fp.OPEN_OUT.pack(dh, self._dir_flags, 0)]

    def readdir(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        """A plain listing: names, node ids and types only (no attributes read)."""
        fh, offset, size, _, _, _, _ = fp.READ_IN.unpack_from(body)
        g0 = self._gen()
        out: list[bytes] = []
        room = readdir_room(size)
        root, root_handle = self._root, fp.ROOT_ID
        packs, sizes, add = fe.DIRENT_PACKS, fe.DIRENT_SIZES, out.append

        def reply(name: bytes, handle: int, ifmt: int, rdev: int, next_off: int) -> bool:
            nonlocal room
            n = len(name)
            room -= sizes[n] if n < 256 else fe.dirent_struct(n).size
            if room < 0:
                return False
            if handle == root or handle == root_handle:  # noqa: SIM109 (no tuple per call)
                handle = root_handle if handle == root else root
            if rdev and is_rumpblk(rdev):
                ifmt = stat.S_IFREG                # see host_view
            add((packs[n] if n < 256 else fe.dirent_struct(n).pack)(handle, next_off, n,
                                                                     ifmt >> 12, name))
            return True

        self.h.readdir_names(fh, offset, reply)
        if self.inval is not None:
            self.inval.listing(self._handle(nodeid), fh, offset, g0, not out)
        return [b"".join(out)]

    def readdirplus(self, nodeid: int, uid: int, gid: int, pid: int,
                    body: memoryview) -> list[bytes]:
        """Entries with attributes; each but "." and ".." takes a lookup count
        (the host counts them: it makes dentries from them)."""
        fh, offset, size, _, _, _, _ = fp.READ_IN.unpack_from(body)
        g0 = self._gen()
        timeouts = self._timeouts if self.inval is not None else None
        out: list[bytes] = []
        room = readdir_room(size)
        lookups = self._lookups
        mu = self._mu
        ino_of = self._ino
        tmo_s, tmo_ns = self._tmo
        structs = fe.DIRENTS_PLUS

        def reply(name: bytes, handle: int, st: os.stat_result, next_off: int) -> bool:
            nonlocal room
            n = len(name)
            rec = structs[n] if n < 256 else fe.dirent_struct(n, True)
            room -= rec.size
            if room < 0:
                return False
            ino = ino_of(handle)
            attr = _attr(st, ino)
            if name != b"." and name != b"..":   # the host counts all but these
                if timeouts is None:
                    counted.append(handle)
                else:   # serve(): counted before the timeouts are chosen (see _gained)
                    with mu:
                        lookups[handle] = lookups.get(handle, 0) + 1
            if timeouts is None:
                out.append(rec.pack(ino, 0, tmo_s, tmo_s, tmo_ns, tmo_ns, *attr,
                                    ino, next_off, n, attr[9] >> 12, name))
            else:
                es, ens, a_s, ans = timeouts(handle, st.st_dev, g0)
                out.append(rec.pack(ino, 0, es, a_s, ens, ans, *attr,
                                    ino, next_off, n, attr[9] >> 12, name))
            return True

        # The batch ends before an entry the host holds (it has its inode and,
        # exclusive, its attributes): the rest comes as plain READDIRs, as
        # READDIRPLUS_AUTO asks after a batch without lookups. Not before the
        # first record: an empty reply ends the listing.
        def known(handle: int) -> bool:
            return bool(out) and handle in lookups

        counted: list[int] = []
        try:
            self.h.readdir_plus(fh, offset, reply, stop=known)
        finally:        # what NodeHandles counted, under one lock for the batch
            with mu:
                for handle in counted:
                    lookups[handle] = lookups.get(handle, 0) + 1
        if self.inval is not None:
            self.inval.listing(self._handle(nodeid), fh, offset, g0, not out)
        return [b"".join(out)]

    def releasedir(self, nodeid: int, uid: int, gid: int, pid: int,
                   body: memoryview) -> list[bytes]:
        dh = fp.RELEASE_IN.unpack_from(body)[0]
        with self._mu:
            self._dirs.discard(dh)
            if self.inval is not None:
                self.inval.dir_closed(dh)
        self.h.releasedir(dh)
        return []

    def fsyncdir(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        return []  # directories live in memory: nothing to write back

    def statfs(self, nodeid: int, uid: int, gid: int, pid: int, body: memoryview) -> list[bytes]:
        v = self.h.statfs()
        return [fp.STATFS_OUT.pack(v.f_blocks, v.f_bfree, v.f_bavail, v.f_files, v.f_ffree,
                                   v.f_bsize, v.f_namemax, v.f_frsize, 0)]

    # -- extended attributes (the kernel's xattr calls, ACLs included) ----------------

    def getxattr(self, nodeid: int, uid: int, gid: int, pid: int,
                 body: memoryview) -> list[bytes]:
        size = fp.GETXATTR_IN.unpack_from(body)[0]
        name = _name(body[fp.GETXATTR_IN.size:])
        try:
            value = self.h.getxattr(self._proc(uid, gid, pid), self._handle(nodeid), name)
        except OSError as exc:
            # With POSIX_ACL the host asks for a node's ACL at its permission
            # checks and fails them with any error but "no ACL": a file system
            # without ACLs (EOPNOTSUPP) has none.
            if exc.errno == errno.EOPNOTSUPP and self.posix_acl and name in _ACL_NAMES:
                raise OSError(errno.ENODATA, "no ACL") from None
            raise
        return _sized(value, size)

    def listxattr(self, nodeid: int, uid: int, gid: int, pid: int,
                  body: memoryview) -> list[bytes]:
        size = fp.GETXATTR_IN.unpack_from(body)[0]
        names = self.h.listxattr(self._proc(uid, gid, pid), self._handle(nodeid))
        return _sized(b"".join(os.fsencode(n) + b"\0" for n in names), size)

    def setxattr(self, nodeid: int, uid: int, gid: int, pid: int,
                 body: memoryview) -> list[bytes]:
        size, flags = fp.SETXATTR_IN.unpack_from(body)
        rest = bytes(body[fp.SETXATTR_IN.size:])
        end = rest.index(b"\0")
        self.h.setxattr(self._proc(uid, gid, pid), self._handle(nodeid), rest[:end],
                        rest[end + 1:end + 1 + size], flags)
        return []

    def removexattr(self, nodeid: int, uid: int, gid: int, pid: int,
                    body: memoryview) -> list[bytes]:
        self.h.removexattr(self._proc(uid, gid, pid), self._handle(nodeid), _name(body))
        return []

    # Locks, ioctl, bmap, poll, statx: no handler, so ENOSYS.

    # -- serving ----------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Read and answer requests until the connection ends or the channel is woken."""
        ch = self.ch
        buf = bytearray(BUFSIZE)
        mv = memoryview(buf)
        ops = self.ops
        unpack = fp.IN_HEADER.unpack_from
        pack = _OUT.pack
        send = ch.send
        receive = ch.receiver(buf)
        while True:
            n = receive()
            if n == 0:
                return
            length, opcode, unique, nodeid, uid, gid, pid, _, _ = unpack(buf)
            handler = ops.get(opcode)
            try:
                if handler is None:
                    raise OSError(errno.ENOSYS, "no such operation")
                parts = handler(nodeid, uid, gid, pid, mv[_HDR:length])
            except OSError as exc:
                if opcode != fp.FORGET and opcode != fp.BATCH_FORGET:
                    send([pack(16, -(exc.errno or errno.EIO), unique)])
                continue
            except Exception:
                log.exception("rumpfs.fuse: opcode %d on node %d failed; answering EIO",
                              opcode, nodeid)
                send([pack(16, -errno.EIO, unique)])
                continue
            if parts is None:
                continue  # forget, interrupt: no reply
            size = 16
            for part in parts:
                size += len(part)
            if not send([pack(size, 0, unique), *parts]):
                # never leave the caller waiting: a malformed reply is a bug here
                log.error("rumpfs.fuse: the kernel refused the %d-byte reply to opcode %d; "
                          "answering EIO", size, opcode)
                send([pack(16, -errno.EIO, unique)])

    # -- teardown ---------------------------------------------------------------------------

    def release_all(self) -> None:
        """Give back what the host held when it went away (after unmount)."""
        with self._mu:
            files, dirs, lookups = list(self._files), list(self._dirs), list(self._lookups.items())
            self._files.clear()
            self._dirs.clear()
            self._lookups.clear()
        self._pt.clear()    # closing the device dropped every backing id
        self.groups.close()
        for fh in files:
            with _logged("release"):
                self.h.release(fh)
        for dh in dirs:
            with _logged("releasedir"):
                self.h.releasedir(dh)
        for handle, n in lookups:
            with _logged("forget"):
                self.h.forget(handle, n)


@contextlib.contextmanager
def _logged(what: str) -> Iterator[None]:
    try:
        yield
    except Exception:
        log.exception("rumpfs.fuse: %s during teardown failed", what)


class FuseServer:
    """One FUSE mount of a kernel, served from background threads.

    ``start()`` returns once the mount answers; ``stop()`` unmounts (only our
    own mount), ends the readers and releases what the host held. ``wait()``
    blocks until the mount ends (``fusermount3 -u``) or ``request_stop()``.
    The host may cache entries, negative entries, attributes, pages and
    listings for ``cache_timeout`` seconds (default: 3600 exclusive,
    ``SERVE_TIMEOUT`` otherwise; 0: nothing is cached). ``exclusive=True``
    promises that nothing but this mount changes the kernel (the ``rumpfs
    mount`` CLI); otherwise every other change is pushed to the host as an
    invalidation before the in-process call returns (``fuse_inval``).
    """

    def __init__(
        self,
        handles: NodeHandles,
        mountpoint: str | os.PathLike[str],
        *,
        read_only: bool = False,
        allow_other: bool = False,
        debug: bool = False,
        threads: int = 1,
        exclusive: bool = False,
        cache_timeout: float | None = None,
    ) -> None:
        self.mountpoint = os.path.abspath(os.fspath(mountpoint))
        if cache_timeout is None:
            cache_timeout = 3600.0 if exclusive else SERVE_TIMEOUT
        # With cached entries the host walks cached path components without
        # asking (no LOOKUP, so no search-permission check by the kernel):
        # it must check permissions itself, from the attributes it caches --
        # which are right, since only this mount changes them (exclusive) or
        # every other change invalidates them first (serve()).
        self.channel = FuseChannel(self.mountpoint, read_only=read_only,
                                   allow_other=allow_other,
                                   default_permissions=cache_timeout > 0)
        self.handles = handles
        self.ops = RumpOperations(handles, self.channel, cache_timeout, notify=not exclusive)
        self._unsubscribe: Callable[[], None] | None = None
        self.debug = debug
        self.nthreads = max(1, threads)
        self._threads: list[threading.Thread] = []
        # "Loop ended or stop asked" is a byte in a pipe, not an Event: a signal
        # handler's Event.set() waits for a lock the interrupted thread may hold
        # (a SIGTERM inside stop()'s own set() hung the CLI). wait() selects.
        self._done_r, self._done_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._ended = threading.Event()      # every reader has returned
        self._live = 0
        self._live_mu = threading.Lock()
        self._error: BaseException | None = None
        self._closed = False

    def start(self) -> None:
        if not os.path.isdir(self.mountpoint):
            raise NotADirectoryError(
                errno.ENOTDIR, "mount point is not a directory", self.mountpoint
            )
        if self.debug:
            log.setLevel(logging.DEBUG)
        try:
            inv = self.ops.inval
            if inv is not None:
                # before the mount exists: nothing the host caches predates it
                inv.start()
                self._unsubscribe = self.handles.subscribe(inv, inv)
            try:
                self.channel.mount()
            except OSError as exc:
                raise RuntimeError(
                    f"rumpfs.fuse: cannot mount at {self.mountpoint}: {exc}"
                ) from exc
            self._live = self.nthreads
            for i in range(self.nthreads):
                t = threading.Thread(target=self._run, name=f"rumpfs-fuse-{i}", daemon=True)
                self._threads.append(t)
                t.start()
            self._wait_mounted()
        except BaseException:
            self.stop()
            raise

    def _run(self) -> None:
        me = threading.get_ident()
        SERVING.add(me)                  # never waits for a notification
        if self.ops.inval is not None:
            self.ops.inval.readers.add(me)   # its changes are the host's own: no echo
        try:
            self.ops.serve_forever()
        except BaseException as exc:  # reported by stop()/wait()
            self._error = exc
            log.exception("rumpfs.fuse: a FUSE reader failed")
        finally:
            SERVING.discard(me)
            if self.ops.inval is not None:
                self.ops.inval.readers.discard(me)
            with self._live_mu:
                self._live -= 1
                last = self._live == 0
            self.channel.wake()          # one reader ending ends them all
            if last:
                self._ended.set()
                self._mark_done()

    def _wait_mounted(self) -> None:
        # Wait for INIT without touching the mount point (a stat racing with
        # someone's non-lazy unmount makes it fail EBUSY), then look once.
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while not self.ops.initialized.wait(0.05):
            if self._ended.is_set():
                raise RuntimeError(
                    f"rumpfs.fuse: the FUSE loop ended before {self.mountpoint} was mounted"
                ) from self._error
            if time.monotonic() > deadline:
                raise TimeoutError(f"rumpfs.fuse: {self.mountpoint} did not come up")
        while not self.channel.record_dev():
            if self._ended.is_set() or time.monotonic() > deadline:
                raise RuntimeError(f"rumpfs.fuse: {self.mountpoint} did not come up")
            time.sleep(0.005)

    @property
    def running(self) -> bool:
        return bool(self._threads) and not self._ended.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the loop ends or a stop is requested; True if so."""
        ready, _, _ = select.select([self._done_r], [], [], timeout)
        return bool(ready)

    def request_stop(self) -> None:
        """Ask serving to end (from any thread, also from a signal handler:
        it only writes a byte to a pipe)."""
        self._mark_done()

    def _mark_done(self) -> None:
        try:
            os.write(self._done_w, b"x")
        except BlockingIOError:
            pass                    # the pipe is full: marked long ago

    def __del__(self) -> None:
        for fd in (getattr(self, "_done_r", -1), getattr(self, "_done_w", -1)):
            if fd >= 0:
                os.close(fd)

    def stop(self) -> None:
        """Unmount our own mount, end the readers and give back what the host held."""
        if self._closed:
            return
        self._closed = True
        self._mark_done()
        ch = self.channel
        try:
            # No more notifications (and no caller left waiting for one) before
            # the device goes: the notifier must not write to a closed fd.
            if self._unsubscribe is not None:
                self._unsubscribe()
            if self.ops.inval is not None:
                self.ops.inval.stop(STOP_TIMEOUT)
            if ch.fd >= 0:
                ch.unmount()
            ch.wake()
            for t in self._threads:
                t.join(STOP_TIMEOUT)
                if t.is_alive():
                    log.error("rumpfs.fuse: a FUSE reader did not end")
        finally:
            ch.close()   # aborts the connection if the host still holds it (lazy unmount)
            self.ops.release_all()


@contextlib.contextmanager
def serve(
    kernel: Kernel,
    mountpoint: str | os.PathLike[str],
    *,
    read_only: bool = False,
    allow_other: bool = False,
    debug: bool = False,
    threads: int = 1,
    cache_timeout: float = SERVE_TIMEOUT,
) -> Iterator[FuseServer]:
    """Serve ``kernel`` at ``mountpoint`` from background threads.

    Returns once the mount answers. Leaving the block (also by an exception)
    unmounts and ends the threads. The program keeps using ``kernel``
    in-process meanwhile; its changes are visible to host programs once the
    in-process call has returned: the host caches entries, attributes, pages
    and listings (``cache_timeout`` seconds; 0 caches nothing) and every
    in-process change is pushed to it as an invalidation first.
    ``allow_other`` lets users other than the one mounting use the mount (for
    non-root mounters it needs ``user_allow_other`` in /etc/fuse.conf).
    Several ``serve`` blocks may be active at once (one per mount point).
    """
    server = FuseServer(
        kernel.node_handles(), mountpoint,
        read_only=read_only, allow_other=allow_other, debug=debug, threads=threads,
        cache_timeout=cache_timeout,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
