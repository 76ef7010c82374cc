"""open_file(): ``builtins.open`` over the kernel's descriptor system calls.

Allowed imports: ``rumpfs.errors`` (and the standard library's ``io``).

A :class:`KernelFileIO` is the raw layer (as ``io.FileIO`` is over host
descriptors); ``io``'s own buffering and text layers go on top, chosen as
``builtins.open`` chooses them.
"""

from __future__ import annotations

import io
import os
import stat as st
from typing import IO, TYPE_CHECKING, Any, Protocol, cast

from rumpfs.errors import errno, oserror

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer is 3.12+

__all__ = ["FdCalls", "KernelFileIO", "open_file"]


class FdCalls(Protocol):
    """The system calls a kernel file object needs (Kernel and Process have them)."""

    def open(self, path: Any, flags: int, mode: int = 0o777, *,
             dir_fd: int | None = None) -> int: ...
    def close(self, fd: int) -> None: ...
    def read(self, fd: int, n: int) -> bytes: ...
    def write(self, fd: int, data: Buffer) -> int: ...
    def lseek(self, fd: int, pos: int, how: int) -> int: ...
    def fstat(self, fd: int) -> os.stat_result: ...
    def ftruncate(self, fd: int, length: int) -> None: ...


class KernelFileIO(io.RawIOBase):
    """Raw, unbuffered I/O on one kernel descriptor."""

    def __init__(self, sys: FdCalls, path: Any, mode: str = "r") -> None:
        super().__init__()
        flags, self._readable, self._writable, append = _raw_flags(mode)
        self._sys = sys
        self._fd = -1
        fd = sys.open(path, flags | os.O_CLOEXEC, 0o666)
        self._fd = fd
        if st.S_ISDIR(sys.fstat(fd).st_mode):
            sys.close(fd)
            self._fd = -1
            raise oserror(errno.EISDIR, path)
        if append:
            sys.lseek(fd, 0, os.SEEK_END)
        self.name = path
        self.mode = mode

    def _check(self) -> int:
        if self._fd < 0:
            raise ValueError("I/O operation on closed file")
        return self._fd

    def fileno(self) -> int:
        raise io.UnsupportedOperation("a kernel descriptor is not a host descriptor")

    def isatty(self) -> bool:
        self._check()
        return False

    def readable(self) -> bool:
        self._check()
        return self._readable

    def writable(self) -> bool:
        self._check()
        return self._writable

    def seekable(self) -> bool:
        self._check()
        return True

    def readinto(self, buffer: Buffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self._sys.read(self._check(), len(view))
        view[:len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        fd = self._check()
        chunks: list[bytes] = []
        while True:
            data = self._sys.read(fd, 1 << 20)
            if not data:
                return b"".join(chunks)
            chunks.append(data)

    def write(self, data: Buffer) -> int:
        return self._sys.write(self._check(), data)

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        return self._sys.lseek(self._check(), pos, whence)

    def tell(self) -> int:
        return self._sys.lseek(self._check(), 0, os.SEEK_CUR)

    def truncate(self, size: int | None = None) -> int:
        fd = self._check()
        if size is None:
            size = self.tell()
        self._sys.ftruncate(fd, size)
        return size

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            try:
                super().close()
            finally:
                self._sys.close(fd)
        else:
            super().close()

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def __repr__(self) -> str:
        return f"<KernelFileIO name={self.name!r} mode={self.mode!r}>"


def _raw_flags(mode: str) -> tuple[int, bool, bool, bool]:
    """(open flags, readable, writable, append) for a raw mode such as 'r+'."""
    kinds = set(mode)
    if len(kinds & set("rwax")) != 1 or not kinds <= set("rwax+") or len(mode) != len(kinds):
        raise ValueError(f"invalid mode: {mode!r}")
    plus = "+" in kinds
    if "r" in kinds:
        flags, readable, writable = (os.O_RDWR if plus else os.O_RDONLY), True, plus
    else:
        flags = (os.O_RDWR if plus else os.O_WRONLY) | os.O_CREAT
        readable, writable = plus, True
        flags |= {"w": os.O_TRUNC, "a": os.O_APPEND, "x": os.O_EXCL}[
            next(iter(kinds & set("wax")))]
    return flags, readable, writable, "a" in kinds


def open_file(sys: FdCalls, path: Any, mode: str = "r", buffering: int = -1,
              encoding: str | None = None, errors: str | None = None,
              newline: str | None = None) -> IO[Any]:
    """``builtins.open`` semantics over the kernel's namespace."""
    if not isinstance(mode, str):
        raise TypeError(f"invalid mode: {mode!r}")
    chars = set(mode)
    if not chars <= set("rwaxbt+") or len(mode) != len(chars) or ("b" in chars and "t" in chars):
        raise ValueError(f"invalid mode: {mode!r}")
    binary = "b" in chars
    if binary and (encoding is not None or errors is not None or newline is not None):
        raise ValueError("binary mode doesn't take an encoding, errors or newline argument")
    raw = KernelFileIO(sys, path, mode.replace("b", "").replace("t", ""))
    try:
        line_buffering = False
        if buffering == 1 and not binary:
            line_buffering, buffering = True, -1
        if buffering < 0:
            buffering = io.DEFAULT_BUFFER_SIZE
        if buffering == 0:
            if not binary:
                raise ValueError("can't have unbuffered text I/O")
            return cast(IO[Any], raw)    # RawIOBase is a binary IO in all but name
        buffer: io.BufferedIOBase
        if raw.readable() and raw.writable():
            buffer = io.BufferedRandom(raw, buffering)
        elif raw.writable():
            buffer = io.BufferedWriter(raw, buffering)
        else:
            buffer = io.BufferedReader(raw, buffering)
        if binary:
            return cast(IO[Any], buffer)
        text = io.TextIOWrapper(buffer, io.text_encoding(encoding), errors, newline,
                                line_buffering)
        text.mode = mode  # type: ignore[misc]
        return text
    except BaseException:
        raw.close()
        raise
