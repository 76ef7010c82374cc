"""Serve a rumpfs kernel to the host through FUSE (pyfuse3), like NetBSD's p2k.

p2k turns puffs requests into vnode operations; this module turns FUSE
requests into calls on the kernel's narrow vnode-handle API
(:class:`rumpfs.kernel.NodeHandles`). A FUSE inode number *is* a handle,
except that the kernel's root handle and :data:`pyfuse3.ROOT_INODE` are
swapped (a bijection, so any handle value works).

Allowed imports: the standard library, ``pyfuse3``, ``trio``, ``rumpfs.handles``
and ``rumpfs.kernel``.

Credentials
    Every request runs as a kernel ``Process`` built from the caller's uid,
    gid and umask (from the FUSE request) plus its supplementary groups (read
    from ``/proc/<pid>/status``). ``default_permissions`` is never used: the
    kernel checks permissions itself, exactly as it does in-process.

Reference counting
    Each reply that hands the host an inode (lookup, create, mknod, mkdir,
    symlink, link, readdirplus entries) adds one to the handle's lookup count
    in the kernel; ``forget`` takes them back. The frontend keeps its own copy
    of the counts and of the open file/directory handles so that, after the
    host goes away (unmount), it can release everything the host still held.
    The host does not count ``.`` and ``..`` in readdirplus replies, and
    neither does ``NodeHandles.readdir``.

Caching
    Entry and attribute timeouts are 0 (the host asks again every time, the
    kernel does not cache them even for a jiffy) and ``keep_cache`` is off, so
    a change made in-process is visible to host programs at once: the host
    refetches attributes before each read and drops cached pages whose file
    changed (libfuse's auto_inval_data). There is deliberately no
    ``NodeHandles.subscribe``-driven invalidation: a notification sent from
    another thread races with the host's own GETATTR (the kernel then drops
    the fresh reply as stale), and one sent under the kernel lock can deadlock
    against a page the host has locked for a READ. The one case this leaves
    open: a host program that only looks at a shared mapping of a file, with
    no system call on it, sees in-process changes once it (or anyone) next
    reads or stats the file.

Locking
    Handlers call the kernel synchronously from the trio thread (the kernel is
    in memory and takes its own lock). The serving process must not touch
    the mount's pages itself through ``mmap``: a page fault holds the GIL
    that the server thread needs to answer it (use a subprocess).

Errors
    :func:`_fuse_op` is the one place where ``OSError`` becomes
    ``FUSEError(errno)``; any other exception is logged and answered with EIO
    so that a bug fails one request, never the mount.

pyfuse3 keeps one FUSE session per process (module-level state in the
extension), so only one :func:`serve` can be active at a time in a process;
a second concurrent one raises :class:`RuntimeError`.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import reprlib
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import pyfuse3
import trio

from rumpfs.handles import UTIME_NOW, NodeHandles
from rumpfs.kernel import Kernel, Process

__all__ = ["FuseServer", "RumpOperations", "serve"]

log = logging.getLogger("rumpfs.fuse")

# How long start() waits for the mount to answer, and stop() for the loop to end.
MOUNT_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
# A time pyfuse3 filled in for UTIME_NOW is at most this old when we see it.
_NOW_WINDOW_NS = 1_000_000_000


_S = TypeVar("_S", bound="RumpOperations")
_P = ParamSpec("_P")
_T = TypeVar("_T")


def _fuse_op(
    fn: Callable[Concatenate[_S, _P], Coroutine[Any, Any, _T]],
) -> Callable[Concatenate[_S, _P], Coroutine[Any, Any, _T]]:
    """OSError -> FUSEError(errno); anything else -> a log line and EIO."""

    @functools.wraps(fn)
    async def wrapper(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return await fn(self, *args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        except Exception:
            log.exception("rumpfs.fuse: %s%s failed; answering EIO", fn.__name__,
                          reprlib.repr(args))
            raise pyfuse3.FUSEError(errno.EIO) from None

    return wrapper


def read_groups(pid: int) -> tuple[int, ...]:
    """Supplementary groups of host process ``pid`` ('Groups:' of /proc/<pid>/status).

    Returns () when the process is gone or the file cannot be read or parsed
    (pid 0: a request the host kernel makes on its own behalf).
    """
    if pid <= 0:
        return ()
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Groups:"):
                    return tuple(int(g) for g in line.split()[1:])
    except (OSError, ValueError):
        pass
    return ()


def _ns(st: os.stat_result, name: str) -> int:
    value = getattr(st, name + "_ns", None)
    if isinstance(value, int):
        return value
    return int(getattr(st, name) * 1_000_000_000)


class RumpOperations(pyfuse3.Operations):
    """pyfuse3 request handlers over a kernel's :class:`NodeHandles`."""

    supports_dot_lookup = True
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, handles: NodeHandles) -> None:
        super().__init__()
        self.h = handles
        self._root = handles.ROOT
        self._lookups: dict[int, int] = {}  # handle -> lookups the host holds
        self._files: set[int] = set()  # open file handles
        self._dirs: set[int] = set()  # open directory handles

    # -- mapping ---------------------------------------------------------------

    def _handle(self, ino: int) -> int:
        if ino == pyfuse3.ROOT_INODE:
            return self._root
        if ino == self._root:
            return pyfuse3.ROOT_INODE
        return ino

    _ino = _handle  # the swap is its own inverse

    def _proc(self, ctx: pyfuse3.RequestContext) -> Process:
        uid = ctx.uid
        # root's groups never change a permission decision: skip reading /proc
        groups = () if uid == 0 else read_groups(ctx.pid)
        return self.h.process_for(uid, ctx.gid, groups, ctx.umask)

    def _entry(self, st: os.stat_result) -> pyfuse3.EntryAttributes:
        e = pyfuse3.EntryAttributes()
        e.st_ino = self._ino(st.st_ino)
        e.generation = 0
        e.entry_timeout = 0
        e.attr_timeout = 0
        e.st_mode = st.st_mode
        e.st_nlink = st.st_nlink
        e.st_uid = st.st_uid
        e.st_gid = st.st_gid
        e.st_rdev = getattr(st, "st_rdev", 0) or 0
        e.st_size = st.st_size
        e.st_blksize = getattr(st, "st_blksize", 4096) or 4096
        e.st_blocks = getattr(st, "st_blocks", (st.st_size + 511) // 512) or 0
        e.st_atime_ns = _ns(st, "st_atime")
        e.st_mtime_ns = _ns(st, "st_mtime")
        e.st_ctime_ns = _ns(st, "st_ctime")
        return e

    def _gained(self, st: os.stat_result) -> pyfuse3.EntryAttributes:
        """Note one more host lookup of st's handle; return its entry."""
        self._lookups[st.st_ino] = self._lookups.get(st.st_ino, 0) + 1
        return self._entry(st)

    # -- names -----------------------------------------------------------------

    @_fuse_op
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        return self._gained(self.h.lookup(self._proc(ctx), self._handle(parent_inode), name))

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for ino, n in inode_list:
            handle = self._handle(ino)
            try:
                held = self._lookups.get(handle, 0)
                if held <= n:
                    self._lookups.pop(handle, None)
                else:
                    self._lookups[handle] = held - n
                self.h.forget(handle, n)
            except Exception:  # forget cannot answer an error
                log.exception("rumpfs.fuse: forget(%d, %d) failed", handle, n)

    @_fuse_op
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._entry(self.h.getattr(self._handle(inode)))

    @_fuse_op
    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        handle = self._handle(inode)
        mode = stat.S_IMODE(attr.st_mode) if fields.update_mode else None
        uid = attr.st_uid if fields.update_uid else None
        gid = attr.st_gid if fields.update_gid else None
        size = attr.st_size if fields.update_size else None
        atime = attr.st_atime_ns if fields.update_atime else None
        mtime = attr.st_mtime_ns if fields.update_mtime else None
        if (mode, uid, gid, size, atime, mtime) == (None,) * 6:
            return self._entry(self.h.getattr(handle))  # e.g. ctime only
        p = self._proc(ctx)
        fh = fh if size is not None else None
        try:
            st = self.h.setattr(
                p, handle, mode=mode, uid=uid, gid=gid, size=size,
                atime_ns=atime, mtime_ns=mtime, fh=fh,
            )
        except PermissionError as exc:
            # pyfuse3 turns UTIME_NOW into the current time before we see it,
            # which hides that Linux lets a writer (not only the owner) set
            # "now". An explicit time refused with EPERM that is "now" is
            # retried as UTIME_NOW, so the kernel can apply that rule.
            if exc.errno != errno.EPERM or not self._looks_now(atime, mtime):
                raise
            st = self.h.setattr(
                p, handle, mode=mode, uid=uid, gid=gid, size=size,
                atime_ns=None if atime is None else UTIME_NOW,
                mtime_ns=None if mtime is None else UTIME_NOW, fh=fh,
            )
        return self._entry(st)

    @staticmethod
    def _looks_now(atime: int | None, mtime: int | None) -> bool:
        now = time.time_ns()
        times = [t for t in (atime, mtime) if t is not None]
        return bool(times) and all(0 <= now - t < _NOW_WINDOW_NS for t in times)

    @_fuse_op
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        return self.h.readlink(self._proc(ctx), self._handle(inode))

    @_fuse_op
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        p = self._proc(ctx)
        return self._gained(self.h.mknod(p, self._handle(parent_inode), name, mode, rdev))

    @_fuse_op
    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        p = self._proc(ctx)
        return self._gained(self.h.mkdir(p, self._handle(parent_inode), name, mode))

    @_fuse_op
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self.h.unlink(self._proc(ctx), self._handle(parent_inode), name)

    @_fuse_op
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self.h.rmdir(self._proc(ctx), self._handle(parent_inode), name)

    @_fuse_op
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        p = self._proc(ctx)
        return self._gained(self.h.symlink(p, self._handle(parent_inode), name, target))

    @_fuse_op
    async def rename(
        self,
        parent_inode_old: int,
        name_old: bytes,
        parent_inode_new: int,
        name_new: bytes,
        flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> None:
        self.h.rename(
            self._proc(ctx), self._handle(parent_inode_old), name_old,
            self._handle(parent_inode_new), name_new, flags,
        )

    @_fuse_op
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        p = self._proc(ctx)
        st = self.h.link(p, self._handle(inode), self._handle(new_parent_inode), new_name)
        return self._gained(st)

    @_fuse_op
    async def access(self, inode: int, mode: int, ctx: pyfuse3.RequestContext) -> bool:
        self.h.access(self._proc(ctx), self._handle(inode), mode)
        return True

    # -- files -----------------------------------------------------------------

    @_fuse_op
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        fh = self.h.open(self._proc(ctx), self._handle(inode), flags)
        self._files.add(fh)
        return pyfuse3.FileInfo(fh=fh, keep_cache=False)

    @_fuse_op
    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        p = self._proc(ctx)
        fh, st = self.h.create(p, self._handle(parent_inode), name, mode, flags)
        self._files.add(fh)
        return pyfuse3.FileInfo(fh=fh, keep_cache=False), self._gained(st)

    @_fuse_op
    async def read(self, fh: int, off: int, size: int) -> bytes:
        return self.h.read(fh, size, off)

    @_fuse_op
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        return self.h.write(fh, buf, off)

    async def flush(self, fh: int) -> None:
        # Nothing to do on close: writes reach the file system when they are
        # made, and fsync is its own request. ENOSYS tells the host never to
        # send FLUSH again, which saves a round trip on every close().
        raise pyfuse3.FUSEError(errno.ENOSYS)

    @_fuse_op
    async def release(self, fh: int) -> None:
        self._files.discard(fh)
        self.h.release(fh)

    @_fuse_op
    async def fsync(self, fh: int, datasync: bool) -> None:
        self.h.fsync(fh, datasync)

    # -- directories -----------------------------------------------------------

    @_fuse_op
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        dh = self.h.opendir(self._proc(ctx), self._handle(inode))
        self._dirs.add(dh)
        return dh

    @_fuse_op
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        lookups = self._lookups

        def reply(name: bytes, st: os.stat_result, next_off: int) -> bool:
            if not pyfuse3.readdir_reply(token, name, self._entry(st), next_off):
                return False
            if name != b"." and name != b"..":  # the host counts all but these
                lookups[st.st_ino] = lookups.get(st.st_ino, 0) + 1
            return True

        self.h.readdir(fh, start_id, reply)

    @_fuse_op
    async def releasedir(self, fh: int) -> None:
        self._dirs.discard(fh)
        self.h.releasedir(fh)

    @_fuse_op
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        return None  # directories live in memory: nothing to write back

    @_fuse_op
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        vfs = self.h.statfs()
        d = pyfuse3.StatvfsData()
        d.f_bsize = vfs.f_bsize
        d.f_frsize = vfs.f_frsize
        d.f_blocks = vfs.f_blocks
        d.f_bfree = vfs.f_bfree
        d.f_bavail = vfs.f_bavail
        d.f_files = vfs.f_files
        d.f_ffree = vfs.f_ffree
        d.f_favail = vfs.f_favail
        d.f_namemax = vfs.f_namemax
        return d

    # -- extended attributes: not offered ----------------------------------------
    # ENOSYS makes the host kernel stop asking and answer EOPNOTSUPP (ENOTSUP)
    # itself from then on, which also spares a request per write (the host asks
    # for security.capability before every write until it knows).

    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        raise pyfuse3.FUSEError(errno.ENOSYS)

    async def setxattr(
        self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext
    ) -> None:
        raise pyfuse3.FUSEError(errno.ENOSYS)

    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> Sequence[bytes]:
        raise pyfuse3.FUSEError(errno.ENOSYS)

    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        raise pyfuse3.FUSEError(errno.ENOSYS)

    # -- teardown --------------------------------------------------------------

    def release_all(self) -> None:
        """Give back what the host held when it went away (after unmount)."""
        for fh in list(self._files):
            with _logged("release"):
                self.h.release(fh)
        self._files.clear()
        for dh in list(self._dirs):
            with _logged("releasedir"):
                self.h.releasedir(dh)
        self._dirs.clear()
        for handle, n in list(self._lookups.items()):
            with _logged("forget"):
                self.h.forget(handle, n)
        self._lookups.clear()


@contextlib.contextmanager
def _logged(what: str) -> Iterator[None]:
    try:
        yield
    except Exception:
        log.exception("rumpfs.fuse: %s during teardown failed", what)


# pyfuse3 has one session per process: this guards it.
_session_guard = threading.Lock()


class FuseServer:
    """One FUSE mount of a kernel, served from a background thread.

    ``start()`` returns once the mount answers; ``stop()`` unmounts, ends the
    loop and releases what the host held. ``wait()`` blocks until the mount
    ends (``fusermount3 -u``) or ``stop()``/``request_stop()``.
    """

    def __init__(
        self,
        handles: NodeHandles,
        mountpoint: str | os.PathLike[str],
        *,
        read_only: bool = False,
        allow_other: bool = False,
        debug: bool = False,
    ) -> None:
        self.mountpoint = os.path.abspath(os.fspath(mountpoint))
        self.ops = RumpOperations(handles)
        self.options = {"fsname=rumpfs", "subtype=rumpfs"}
        if read_only:
            self.options.add("ro")
        if allow_other:
            self.options.add("allow_other")
        if debug:
            self.options.add("debug")
        self.debug = debug
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._owns_session = False
        self._initialized = False
        self._closed = False

    # -- start -----------------------------------------------------------------

    def start(self) -> None:
        if not os.path.isdir(self.mountpoint):
            raise NotADirectoryError(
                errno.ENOTDIR, "mount point is not a directory", self.mountpoint
            )
        if not _session_guard.acquire(blocking=False):
            raise RuntimeError(
                "rumpfs.fuse: a FUSE session is already active in this process "
                "(pyfuse3 supports one at a time); leave the other serve() first"
            )
        self._owns_session = True
        try:
            dev0 = os.stat(self.mountpoint).st_dev
            if self.debug:
                log.setLevel(logging.DEBUG)
            try:
                pyfuse3.init(self.ops, self.mountpoint, self.options)
            except RuntimeError as exc:
                raise RuntimeError(
                    f"rumpfs.fuse: cannot mount at {self.mountpoint}: {exc} "
                    "(is /dev/fuse usable and fusermount3 installed?)"
                ) from exc
            self._initialized = True
            self._thread = threading.Thread(target=self._run, name="rumpfs-fuse", daemon=True)
            self._thread.start()
            self._wait_mounted(dev0)
        except BaseException:
            self.stop()
            raise

    def _run(self) -> None:
        try:
            # Handlers never yield (the kernel is called synchronously), so more
            # worker tasks would only add task churn to every request.
            trio.run(functools.partial(pyfuse3.main, min_tasks=1, max_tasks=1))
        except BaseException as exc:  # reported by stop()/wait()
            self._error = exc
            log.exception("rumpfs.fuse: the FUSE main loop failed")
        finally:
            self._done.set()

    def _wait_mounted(self, dev0: int) -> None:
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while True:
            if self._done.is_set():
                raise RuntimeError(
                    f"rumpfs.fuse: the FUSE loop ended before {self.mountpoint} was mounted"
                ) from self._error
            try:
                if os.stat(self.mountpoint).st_dev != dev0:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"rumpfs.fuse: {self.mountpoint} did not come up")
            self._done.wait(0.01)

    # -- run / stop ------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the loop ends; True if it has."""
        return self._done.wait(timeout)

    def request_stop(self) -> None:
        """Ask the loop to end (from any thread, also from a signal handler)."""
        token = pyfuse3.trio_token
        if token is None or self._done.is_set():
            return
        try:
            trio.from_thread.run_sync(pyfuse3.terminate, trio_token=token)
        except (trio.RunFinishedError, RuntimeError):
            pass  # the loop ended meanwhile

    def stop(self) -> None:
        """Unmount, end the loop and give back everything the host held."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._thread is not None:
                self.request_stop()
                self._thread.join(STOP_TIMEOUT)
                if self._thread.is_alive():
                    log.error("rumpfs.fuse: the FUSE loop did not end; unmounting lazily")
                    _lazy_unmount(self.mountpoint)
                    self._thread.join(STOP_TIMEOUT)
            if self._initialized:
                self._initialized = False
                try:
                    pyfuse3.close(unmount=True)
                except Exception:
                    log.exception("rumpfs.fuse: pyfuse3.close failed")
            if _is_mounted(self.mountpoint):
                _lazy_unmount(self.mountpoint)
            self.ops.release_all()
        finally:
            if self._owns_session:
                self._owns_session = False
                _session_guard.release()


def _is_mounted(mountpoint: str) -> bool:
    """Whether a rumpfs FUSE mount sits at ``mountpoint`` (from /proc/self/mountinfo)."""
    target = mountpoint.encode()
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 4 and _unescape(fields[4]) == target and b" - fuse" in line:
                    return True
    except OSError:
        pass
    return False


def _unescape(field: bytes) -> bytes:
    return (
        field.replace(b"\\040", b" ").replace(b"\\011", b"\t").replace(b"\\012", b"\n")
        .replace(b"\\134", b"\\")
    )


def _lazy_unmount(mountpoint: str) -> None:
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    if tool is None:
        log.error("rumpfs.fuse: no fusermount3 to unmount %s", mountpoint)
        return
    subprocess.run([tool, "-u", "-z", "-q", mountpoint], check=False, timeout=STOP_TIMEOUT)


@contextlib.contextmanager
def serve(
    kernel: Kernel,
    mountpoint: str | os.PathLike[str],
    *,
    read_only: bool = False,
    allow_other: bool = False,
    debug: bool = False,
) -> Iterator[FuseServer]:
    """Serve ``kernel`` at ``mountpoint`` from a background thread.

    Returns once the mount answers. Leaving the block (also by an exception)
    unmounts and ends the thread. The program keeps using ``kernel``
    in-process meanwhile; its changes are visible to host programs at once.
    Only one ``serve`` can be active per process (a pyfuse3 limit).
    ``allow_other`` lets users other than the one mounting use the mount (for
    non-root mounters it needs ``user_allow_other`` in /etc/fuse.conf).
    """
    server = FuseServer(
        kernel.node_handles(), mountpoint,
        read_only=read_only, allow_other=allow_other, debug=debug,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
