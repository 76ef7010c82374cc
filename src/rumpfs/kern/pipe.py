"""The pipe engine: a bounded buffer between readers and writers (Linux's fs/pipe.c).

Allowed imports: ``rumpfs.errors``, the standard library.

A :class:`Pipe` holds up to ``PIPE_PAGES`` page buffers of ``PIPE_PAGE``
bytes, as Linux's pipe_inode_info does, so capacity and atomicity follow
Linux: a write of at most ``PIPE_BUF`` bytes is never interleaved with
another (it merges into the last page if it fits there, else takes one
fresh page, else waits); a longer write may be split, and a non-blocking one
writes what fits (EAGAIN only if nothing does). A read returns what is there
(up to its size) as soon as anything is; with nothing there it returns
b"" at end of file (no writers), fails with EAGAIN if non-blocking, or
waits. A write with no readers fails with EPIPE (there are no signals).

:class:`PipeEnd` is one open file's end; it has the device-driver interface
(``kern.devsw.Driver``), so the descriptor layer reads and writes a pipe as
it does a character device.

Locking: the pipe's condition variable is built on the kernel lock, which
every caller holds. A blocked reader or writer (or a FIFO open waiting for
its partner) waits on it, which *releases the kernel lock* until another
thread's pipe operation notifies; all other kernel state may change
meanwhile, so callers hold only references that stay valid (the open File
and its vnode reference).

Invariants: ``readers``/``writers`` count the open ends; ``r_counter`` and
``w_counter`` only grow (a FIFO open waits for the partner's counter to
move, so a partner that opens and closes at once still wakes it, as Linux);
no buffer is empty; ``nbytes`` is the sum of their lengths.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from rumpfs.errors import errno, raise_errno

__all__ = ["PIPE_BUF", "PIPE_PAGE", "PIPE_PAGES", "Pipe", "PipeEnd"]

PIPE_BUF = 4096
PIPE_PAGE = 4096
PIPE_PAGES = 16             # Linux's default pipe size: 16 pages, 64 KiB


class Pipe:
    """Linux's pipe_inode_info: the buffers, the ends open, the wait queue."""

    __slots__ = ("bufs", "cv", "dead", "nbytes", "on_release", "r_counter", "readers",
                 "w_counter", "writers")

    def __init__(self, lock: threading.Lock) -> None:
        self.cv = threading.Condition(lock)
        self.bufs: deque[bytearray] = deque()
        self.nbytes = 0
        self.readers = 0
        self.writers = 0
        self.r_counter = 0
        self.w_counter = 0
        self.on_release: Callable[[], None] | None = None    # last end closed (FIFOs)
        self.dead = False                   # the kernel shut down: no more waiting

    def shutdown(self) -> None:
        """Wake every waiter for good: waits fail with ESHUTDOWN from now on."""
        self.dead = True
        self.cv.notify_all()

    def _wait(self) -> None:
        if self.dead:
            raise_errno(errno.ESHUTDOWN)
        self.cv.wait()
        if self.dead:
            raise_errno(errno.ESHUTDOWN)

    # -- ends -------------------------------------------------------------------

    def open_end(self, read: bool, write: bool) -> None:
        if read:
            self.readers += 1
            self.r_counter += 1
        if write:
            self.writers += 1
            self.w_counter += 1
        self.cv.notify_all()

    def close_end(self, read: bool, write: bool) -> None:
        if read:
            self.readers -= 1
        if write:
            self.writers -= 1
        self.cv.notify_all()
        if not self.readers and not self.writers:
            self.bufs.clear()
            self.nbytes = 0
            if self.on_release is not None:
                self.on_release()

    def wait_for_writer(self) -> None:
        """Block until a writer opens (a FIFO read-open without O_NONBLOCK)."""
        seen = self.w_counter
        while not self.writers and self.w_counter == seen:
            self._wait()

    def wait_for_reader(self) -> None:
        """Block until a reader opens (a FIFO write-open without O_NONBLOCK)."""
        seen = self.r_counter
        while not self.readers and self.r_counter == seen:
            self._wait()

    # -- data -------------------------------------------------------------------

    def read(self, size: int, nonblock: bool) -> bytes:
        if size == 0:
            return b""
        while not self.nbytes:
            if not self.writers:
                return b""
            if nonblock:
                raise_errno(errno.EAGAIN)
            self._wait()
        out = bytearray()
        bufs = self.bufs
        while bufs and len(out) < size:
            buf = bufs[0]
            take = min(size - len(out), len(buf))
            out += buf[:take]
            if take == len(buf):
                bufs.popleft()
            else:
                del buf[:take]
        self.nbytes -= len(out)
        self.cv.notify_all()
        return bytes(out)

    def write(self, data: bytes | memoryview, nonblock: bool) -> int:
        total = len(data)
        if total == 0:
            return 0
        if not self.readers:
            raise_errno(errno.EPIPE)
        bufs = self.bufs
        done = 0
        # A write's first partial page may merge into the last buffer, if the
        # pipe was not empty and it fits there whole (Linux's merge rule).
        chars = total & (PIPE_PAGE - 1)
        if chars and bufs and len(bufs[-1]) + chars <= PIPE_PAGE:
            bufs[-1] += data[:chars]
            done = chars
            self.nbytes += chars
            self.cv.notify_all()
        while done < total:
            if not self.readers:
                if done:
                    return done
                raise_errno(errno.EPIPE)
            if len(bufs) < PIPE_PAGES:
                take = min(PIPE_PAGE, total - done)
                bufs.append(bytearray(data[done:done + take]))
                done += take
                self.nbytes += take
                self.cv.notify_all()
                continue
            if nonblock:
                if done:
                    return done
                raise_errno(errno.EAGAIN)
            self._wait()
        return done


class PipeEnd:
    """One open file's end of a pipe, with the device-driver interface."""

    __slots__ = ("nonblock", "pipe", "read_end", "write_end")

    def __init__(self, pipe: Pipe, read: bool, write: bool, nonblock: bool) -> None:
        self.pipe = pipe
        self.read_end = read
        self.write_end = write
        self.nonblock = nonblock
        pipe.open_end(read, write)

    def d_open(self, minor: int, flags: int) -> None:
        pass

    def d_close(self, minor: int, flags: int) -> None:
        self.pipe.close_end(self.read_end, self.write_end)

    def d_read(self, minor: int, size: int, offset: int) -> bytes:
        return self.pipe.read(size, self.nonblock)

    def d_write(self, minor: int, data: bytes | memoryview, offset: int) -> int:
        return self.pipe.write(data, self.nonblock)

    def d_fsync(self, minor: int) -> None:
        raise_errno(errno.EINVAL)

    def d_size(self, minor: int) -> int:
        return 0
