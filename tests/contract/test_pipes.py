"""Pipes and FIFOs with threads on both sides: the host's ``os`` (in this
process, FIFOs in a tmpfs directory) against a Kernel. Every blocking call
runs in a worker thread that the test joins with a deadline, so a wrong
block fails the test instead of hanging it.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.contract.helpers import expect_errno

DEADLINE = 20.0         # seconds a worker may take; only a hang reaches it


class HostOs:
    """``os`` with absolute paths mapped under a private tmpfs directory."""

    def __init__(self, base: str) -> None:
        self.base = base

    def _p(self, path: str) -> str:
        return os.path.join(self.base, path.lstrip("/"))

    def open(self, path: str, flags: int, mode: int = 0o777) -> int:
        return os.open(self._p(path), flags, mode)

    def mkfifo(self, path: str, mode: int = 0o666) -> None:
        os.mkfifo(self._p(path), mode)

    def stat(self, path: str) -> os.stat_result:
        return os.stat(self._p(path))

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


@pytest.fixture(params=["host", "kernel"])
def px(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "host":
        base = tempfile.mkdtemp(dir="/dev/shm")
        try:
            yield HostOs(base)
        finally:
            shutil.rmtree(base, ignore_errors=True)
    else:
        import rumpfs

        k = rumpfs.Kernel()
        try:
            yield k
        finally:
            k.shutdown()


def run(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Start ``fn`` in a daemon thread; the list gets its result or exception."""
    out: list[Any] = []

    def body() -> None:
        try:
            out.append(fn())
        except BaseException as e:       # reported to the test through ``out``
            out.append(e)

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, out


def finish(t: threading.Thread, out: list[Any]) -> Any:
    t.join(DEADLINE)
    assert not t.is_alive(), "worker still blocked"
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


def test_pipe_basics(px: Any) -> None:
    r, w = px.pipe()
    try:
        assert stat.S_ISFIFO(px.fstat(r).st_mode)
        assert px.write(w, b"hello") == 5
        assert px.read(r, 3) == b"hel"
        assert px.read(r, 100) == b"lo"
        expect_errno(errno.EBADF, px.write, r, b"x")
        expect_errno(errno.EBADF, px.read, w, 1)
        expect_errno(errno.ESPIPE, px.lseek, r, 0, os.SEEK_SET)
        expect_errno(errno.ESPIPE, px.pread, r, 1, 0)
        expect_errno(errno.ESPIPE, px.pwrite, w, b"x", 0)
        assert px.write(w, b"") == 0
    finally:
        px.close(w)
    assert px.read(r, 10) == b""                  # no writers: end of file
    px.close(r)


def test_blocking_read_waits_for_a_writer(px: Any) -> None:
    r, w = px.pipe()
    t, out = run(lambda: px.read(r, 100))
    px.write(w, b"ping")
    assert finish(t, out) == b"ping"
    t, out = run(lambda: px.read(r, 100))
    px.close(w)                                   # the last writer goes: EOF
    assert finish(t, out) == b""
    px.close(r)


def test_write_without_readers_is_epipe(px: Any) -> None:
    r, w = px.pipe()
    px.close(r)
    expect_errno(errno.EPIPE, px.write, w, b"x")
    px.close(w)


def test_nonblocking_ends(px: Any) -> None:
    r, w = px.pipe2(os.O_NONBLOCK)
    expect_errno(errno.EAGAIN, px.read, r, 1)
    total = 0
    while True:
        try:
            total += px.write(w, b"x" * 1000)
        except BlockingIOError:
            break
    assert total == 64000                          # four 1000-byte writes per page
    expect_errno(errno.EAGAIN, px.write, w, b"y" * 4096)
    assert px.write(w, b"y") == 1                  # merges into the last page
    got = b""
    while True:
        try:
            chunk = px.read(r, 70000)
        except BlockingIOError:
            break
        got += chunk
    assert len(got) == total + 1
    px.close(r)
    px.close(w)


def test_capacity_is_sixteen_pages(px: Any) -> None:
    r, w = px.pipe2(os.O_NONBLOCK)
    assert px.write(w, b"a" * 100000) == 65536     # a long write takes what fits
    expect_errno(errno.EAGAIN, px.write, w, b"b")
    assert px.read(r, 4096) == b"a" * 4096
    assert px.write(w, b"c" * 5000) == 4096        # one page came free
    px.close(r)
    px.close(w)


def test_small_writes_are_atomic(px: Any) -> None:
    r, w = px.pipe()
    n_writers, per = 4, 200
    chunk = 4096                                   # PIPE_BUF: never interleaved

    def writer(tag: int) -> None:
        for _ in range(per):
            px.write(w, bytes([65 + tag]) * chunk)

    workers = [run(lambda tag=tag: writer(tag)) for tag in range(n_writers)]  # type: ignore[misc]
    data = bytearray()
    while len(data) < n_writers * per * chunk:
        data += px.read(r, 65536)
    for t, out in workers:
        finish(t, out)
    for i in range(0, len(data), chunk):
        assert len(set(data[i:i + chunk])) == 1
    px.close(r)
    px.close(w)


def test_big_write_blocks_until_read(px: Any) -> None:
    r, w = px.pipe()
    payload = bytes(range(256)) * 1024             # 256 KiB: four pipefuls
    t, out = run(lambda: px.write(w, payload))
    got = bytearray()
    while len(got) < len(payload):
        got += px.read(r, 10000)
    assert finish(t, out) == len(payload)
    assert bytes(got) == payload
    px.close(r)
    px.close(w)


def test_fifo_open_waits_for_the_other_end(px: Any) -> None:
    px.mkfifo("/fifo")
    t, out = run(lambda: px.open("/fifo", os.O_RDONLY))
    w = px.open("/fifo", os.O_WRONLY)
    r = finish(t, out)
    px.write(w, b"through")
    assert px.read(r, 100) == b"through"
    px.close(w)
    assert px.read(r, 100) == b""
    px.close(r)
    t, out = run(lambda: px.open("/fifo", os.O_WRONLY))
    r = px.open("/fifo", os.O_RDONLY)
    w = finish(t, out)
    px.close(r)
    expect_errno(errno.EPIPE, px.write, w, b"x")
    px.close(w)


def test_fifo_nonblocking_opens(px: Any) -> None:
    px.mkfifo("/fifo")
    expect_errno(errno.ENXIO, px.open, "/fifo", os.O_WRONLY | os.O_NONBLOCK)
    r = px.open("/fifo", os.O_RDONLY | os.O_NONBLOCK)
    assert px.read(r, 10) == b""                  # no writer yet: end of file
    w = px.open("/fifo", os.O_WRONLY | os.O_NONBLOCK)
    expect_errno(errno.EAGAIN, px.read, r, 10)    # a writer, no data
    px.write(w, b"abc")
    assert px.read(r, 10) == b"abc"
    px.close(w)
    px.close(r)
    rw = px.open("/fifo", os.O_RDWR)              # its own partner: never waits
    px.write(rw, b"self")
    assert px.read(rw, 10) == b"self"
    px.close(rw)


def test_fifo_data_goes_with_the_last_close(px: Any) -> None:
    px.mkfifo("/fifo")
    rw = px.open("/fifo", os.O_RDWR)
    px.write(rw, b"lost")
    px.close(rw)
    rw = px.open("/fifo", os.O_RDWR | os.O_NONBLOCK)
    expect_errno(errno.EAGAIN, px.read, rw, 10)
    px.close(rw)


def test_dup2_and_sendfile_into_a_pipe(px: Any) -> None:
    fd = px.open("/src", os.O_CREAT | os.O_RDWR, 0o644)
    px.write(fd, b"0123456789")
    r, w = px.pipe()
    assert px.sendfile(w, fd, 2, 5) == 5
    assert px.read(r, 100) == b"23456"
    px.lseek(fd, 0, os.SEEK_SET)
    assert px.sendfile(w, fd, None, 4) == 4
    assert px.lseek(fd, 0, os.SEEK_CUR) == 4
    assert px.read(r, 100) == b"0123"
    assert px.dup2(w, 50) == 50
    px.close(w)
    px.write(50, b"via dup2")
    assert px.read(r, 100) == b"via dup2"
    px.close(50)
    assert px.read(r, 100) == b""
    px.close(r)
    px.close(fd)


def test_fifo_io_stamps_the_node(px: Any) -> None:
    old = 1_000_000_000_123_456_789
    px.mkfifo("/fifo")
    rw = px.open("/fifo", os.O_RDWR)
    path = px._p("/fifo") if isinstance(px, HostOs) else "/fifo"
    px.utime(path, ns=(old, old))
    px.write(rw, b"x")
    st = px.stat("/fifo")
    assert st.st_mtime_ns != old and st.st_atime_ns == old
    px.utime(path, ns=(old, old))
    assert px.read(rw, 1) == b"x"
    st = px.stat("/fifo")
    assert st.st_atime_ns != old and st.st_mtime_ns == old
    px.close(rw)


def test_set_blocking_switches_a_pipe_end(px: Any) -> None:
    r, w = px.pipe()
    assert px.get_blocking(r) and px.get_blocking(w)
    px.set_blocking(r, False)
    assert not px.get_blocking(r)
    expect_errno(errno.EAGAIN, px.read, r, 1)
    d = px.dup(r)                                  # a dup shares the open file's flags
    assert not px.get_blocking(d)
    px.set_blocking(d, True)
    assert px.get_blocking(r)
    t, out = run(lambda: px.read(r, 10))           # blocks again
    px.write(w, b"woke")
    assert finish(t, out) == b"woke"
    for fd in (r, w, d):
        px.close(fd)
