"""One FUSE connection: ``/dev/fuse``, mounting it, and unmounting only it.

Allowed imports: the standard library only (``ctypes`` for ``mount(2)`` and
``umount2(2)``, ``fcntl`` for the device ioctls).

Mounting
    As root: open ``/dev/fuse`` and call ``mount(2)`` with ``fd=N`` (what
    libfuse does). Otherwise: run ``fusermount3`` with ``_FUSE_COMMFD``
    naming one end of a socket pair; it mounts and sends the opened device
    back as SCM_RIGHTS ancillary data (libfuse's protocol with its setuid
    helper).

Unmounting only our own mount
    After mounting, the connection's device number (``st_dev`` of the mount
    root) and the mount's unique id (``statx`` ``STATX_MNT_ID_UNIQUE``, Linux
    6.8; a device number is reused as soon as its mount goes away) are
    recorded. :meth:`FuseChannel.unmount` unmounts the path only if the
    topmost mount there still has both; a mount someone else put at (or
    over) the same path is never touched. Our connection is then ended by closing the device, never
    by unmounting by name. (The check and the unmount are two steps; nothing
    in Linux's ``umount2`` can name a mount by device.)

Replies and notifications
    ``send`` writes one whole message with one ``writev``: the kernel takes
    each write as one reply, so any thread may send (the in-process side's
    invalidations too) without a lock.

Stopping
    Reader threads block in ``poll`` on the device and a wake-up pipe; the
    device is non-blocking (several readers may wake for one request; the
    losers see EAGAIN and poll again). Each reader keeps its poller
    (:meth:`FuseChannel.receiver`) and polls only when a read finds nothing.
    ``wake()`` ends every reader.
"""

from __future__ import annotations

import array
import ctypes
import ctypes.util
import errno
import fcntl
import logging
import os
import select
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable

from rumpfs.frontends import fuse_proto as fp

__all__ = ["FuseChannel", "mounted_dev"]

log = logging.getLogger("rumpfs.fuse")

MS_RDONLY, MS_NOSUID, MS_NODEV = 1, 2, 4
MNT_DETACH, UMOUNT_NOFOLLOW = 2, 8

_libc: ctypes.CDLL | None = None


def _c() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    return _libc


def _unescape(field: bytes) -> bytes:
    return (
        field.replace(b"\\040", b" ").replace(b"\\011", b"\t").replace(b"\\012", b"\n")
        .replace(b"\\134", b"\\")
    )


AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_STATX_DONT_SYNC = 0x4000          # answer from the inode as cached: no FUSE round trip
STATX_MNT_ID = 0x1000
STATX_MNT_ID_UNIQUE = 0x4000         # Linux 6.8: 64-bit, never reused
_STATX_SIZE = 256
_STATX_MASK_OFF, _STATX_DEV_OFF, _STATX_MNT_OFF = 0, 136, 144


def mount_identity(path: str) -> tuple[int, int, int] | None:
    """(dev major, dev minor, mount id) of the mount on top at ``path``, without
    asking its file system (AT_STATX_DONT_SYNC). The mount id is Linux 6.8's
    unique one when the kernel has it (a device number and the old mount id
    are both reused as soon as a mount goes away)."""
    buf = ctypes.create_string_buffer(_STATX_SIZE)
    for mask in (STATX_MNT_ID_UNIQUE, STATX_MNT_ID):
        rc = _c().statx(AT_FDCWD, os.fsencode(path), AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC,
                        ctypes.c_uint(mask), buf)
        if rc != 0:
            return None
        got = int.from_bytes(buf.raw[_STATX_MASK_OFF:_STATX_MASK_OFF + 4], "little")
        if got & mask:
            major = int.from_bytes(buf.raw[_STATX_DEV_OFF:_STATX_DEV_OFF + 4], "little")
            minor = int.from_bytes(buf.raw[_STATX_DEV_OFF + 4:_STATX_DEV_OFF + 8], "little")
            mnt = int.from_bytes(buf.raw[_STATX_MNT_OFF:_STATX_MNT_OFF + 8], "little")
            return major, minor, mnt
    return None


def mounted_dev(mountpoint: str) -> tuple[int, int] | None:
    """(major, minor) of the topmost FUSE mount at ``mountpoint``, or None."""
    target = os.fsencode(mountpoint)
    found: tuple[int, int] | None = None
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 4 and _unescape(fields[4]) == target:
                    # later lines are mounted on top of earlier ones
                    if b" - fuse" in line:
                        major, minor = fields[2].split(b":")
                        found = (int(major), int(minor))
                    else:
                        found = None
    except OSError:
        pass
    return found


class FuseChannel:
    """An open, mounted ``/dev/fuse`` connection."""

    def __init__(self, mountpoint: str, *, read_only: bool = False,
                 allow_other: bool = False, default_permissions: bool = False) -> None:
        self.mountpoint = mountpoint
        self.read_only = read_only
        self.allow_other = allow_other
        self.default_permissions = default_permissions
        self.fd = -1
        self.dev: tuple[int, int] | None = None   # our connection's st_dev
        self.identity: tuple[int, int, int] | None = None   # ... and our mount's id
        self._wake_r, self._wake_w = -1, -1
        self._closed = False
        self._lock = threading.Lock()

    # -- mount -----------------------------------------------------------------------

    def mount(self) -> None:
        """Open the device and mount it at ``mountpoint``; records our device number."""
        dev_before = os.stat(self.mountpoint).st_dev
        if os.geteuid() == 0:
            self._mount_root()
        else:
            self._mount_fusermount()
        os.set_blocking(self.fd, False)
        self._wake_r, self._wake_w = os.pipe()
        # The mount exists now; its st_dev answers only once INIT is replied
        # to, so the caller records it (see record_dev) after serving starts.
        self._dev_before = dev_before

    def _options(self) -> list[str]:
        opts = ["fsname=rumpfs", "subtype=rumpfs"]
        if self.allow_other:
            opts.append("allow_other")
        if self.default_permissions:
            opts.append("default_permissions")
        return opts

    def _mount_root(self) -> None:
        fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
        try:
            data = ",".join([f"fd={fd}", "rootmode=40000", "user_id=0", "group_id=0",
                             *self._options()[2:]])
            flags = MS_NOSUID | MS_NODEV | (MS_RDONLY if self.read_only else 0)
            rc = _c().mount(b"rumpfs", os.fsencode(self.mountpoint), b"fuse.rumpfs",
                            ctypes.c_ulong(flags), data.encode())
            if rc != 0:
                e = ctypes.get_errno()
                raise OSError(e, f"mount: {os.strerror(e)}", self.mountpoint)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def _mount_fusermount(self) -> None:
        tool = shutil.which("fusermount3")
        if tool is None:
            raise RuntimeError("fusermount3 is not installed (Debian/Ubuntu: apt install fuse3)")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            opts = ["nosuid", "nodev", "ro" if self.read_only else "rw", *self._options()]
            env = dict(os.environ, _FUSE_COMMFD=str(theirs.fileno()))
            proc = subprocess.Popen(
                [tool, "-o", ",".join(opts), "--", self.mountpoint],
                env=env, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            theirs.close()
            fds = array.array("i")
            try:
                _, anc, _, _ = ours.recvmsg(1, socket.CMSG_SPACE(fds.itemsize))
            except OSError:
                anc = []
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
            _, err = proc.communicate(timeout=60)
            if not fds:
                raise RuntimeError(f"fusermount3 failed: {err.decode(errors='replace').strip()}")
            self.fd = fds[0]
            os.set_inheritable(self.fd, False)
        finally:
            ours.close()
            theirs.close()

    def record_dev(self) -> bool:
        """Once the mount answers: remember its device number. False if not yet."""
        try:
            st = os.stat(self.mountpoint)
        except OSError:
            return False
        if st.st_dev == self._dev_before:
            return False
        self.dev = (os.major(st.st_dev), os.minor(st.st_dev))
        ident = mount_identity(self.mountpoint)
        if ident is not None and ident[:2] == self.dev:
            self.identity = ident
        return True

    # -- I/O ------------------------------------------------------------------------------

    def receiver(self, buf: bytearray) -> Callable[[], int]:
        """A reader for one thread: each call reads one request into ``buf`` and
        returns its length, or 0 when the connection ended or :meth:`wake` was called.

        It reads first and polls only when nothing is waiting: a sequential
        client has usually sent its next request by the time the reply to its
        last one is written, so most requests cost one ``readv``. The poller
        is made once per reader, not per request."""
        fd, wake = self.fd, self._wake_r
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(wake, select.POLLIN)
        poll = poller.poll
        readv = os.readv
        bufs = [buf]

        def receive() -> int:
            while True:
                try:
                    return readv(fd, bufs)
                except BlockingIOError:
                    pass
                except OSError as exc:
                    if exc.errno == errno.ENOENT or exc.errno == errno.EINTR:
                        continue                   # request interrupted meanwhile
                    if exc.errno in (errno.ENODEV, errno.EBADF, errno.ECONNABORTED):
                        return 0                   # unmounted or aborted
                    raise
                for rfd, _ in poll():
                    if rfd == wake:
                        return 0
        return receive

    def receive(self, buf: bytearray) -> int:
        """Read one request into ``buf`` (see :meth:`receiver`, which a serving
        loop should use: it keeps its poller)."""
        return self.receiver(buf)()

    def send(self, parts: list[bytes | memoryview]) -> bool:
        """Write one message (header first); False if the kernel refused it
        (EINVAL: a malformed reply). Errors from a vanished request are dropped."""
        try:
            os.writev(self.fd, parts)
        except OSError as exc:
            # ENOENT: the request was interrupted and is gone. ENODEV/EBADF:
            # the connection ended. Neither is the caller's concern.
            if exc.errno == errno.EINVAL:
                return False
            if exc.errno not in (errno.ENOENT, errno.ENODEV, errno.EBADF):
                raise
        return True

    def notify(self, code: int, parts: list[bytes]) -> int:
        """Send a notification; 0 or the errno the kernel answered (ENOENT: not cached)."""
        size = fp.OUT_HEADER.size + sum(len(p) for p in parts)
        try:
            os.writev(self.fd, [fp.OUT_HEADER.pack(size, code, 0), *parts])
        except OSError as exc:
            return exc.errno or errno.EIO
        return 0

    def backing_open(self, host_fd: int) -> int:
        """FUSE_DEV_IOC_BACKING_OPEN: a backing id for passthrough (needs CAP_SYS_ADMIN)."""
        arg = bytearray(fp.BACKING_MAP.pack(host_fd, 0, 0))
        return int(fcntl.ioctl(self.fd, fp.DEV_IOC_BACKING_OPEN, arg, True))

    def backing_close(self, backing_id: int) -> None:
        arg = bytearray(backing_id.to_bytes(4, "little"))
        try:
            fcntl.ioctl(self.fd, fp.DEV_IOC_BACKING_CLOSE, arg, True)
        except OSError:
            pass

    # -- end -------------------------------------------------------------------------------

    def wake(self) -> None:
        """End every reader blocked in :meth:`receive` (any thread, signal-safe)."""
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass

    def ours_mounted(self) -> bool:
        """Whether the mount on top at ``mountpoint`` is ours (same device, same mount id)."""
        if self.dev is None or mounted_dev(self.mountpoint) != self.dev:
            return False
        return self.identity is None or mount_identity(self.mountpoint) == self.identity

    def unmount(self) -> bool:
        """Unmount ``mountpoint`` if our connection is the mount on top there."""
        if not self.ours_mounted():
            return False
        if os.geteuid() == 0:
            rc = _c().umount2(os.fsencode(self.mountpoint), MNT_DETACH | UMOUNT_NOFOLLOW)
            if rc != 0:
                log.error("rumpfs.fuse: umount2(%s): %s", self.mountpoint,
                          os.strerror(ctypes.get_errno()))
                return False
            return True
        tool = shutil.which("fusermount3")
        if tool is None:
            log.error("rumpfs.fuse: no fusermount3 to unmount %s", self.mountpoint)
            return False
        res = subprocess.run([tool, "-u", "-z", "-q", "--", self.mountpoint], check=False,
                             timeout=60, stdin=subprocess.DEVNULL)
        return res.returncode == 0

    def close(self) -> None:
        """Close the device (which aborts the connection if it still lives)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in (self.fd, self._wake_r, self._wake_w):
                if fd >= 0:
                    os.close(fd)
            self.fd = self._wake_r = self._wake_w = -1
