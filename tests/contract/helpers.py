"""Small helpers shared by the contract tests."""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

import pytest

_UNSET: Any = object()

RDONLY = os.O_RDONLY
WRONLY = os.O_WRONLY
RDWR = os.O_RDWR
CREAT = os.O_CREAT
EXCL = os.O_EXCL
TRUNC = os.O_TRUNC
APPEND = os.O_APPEND
DIRECTORY = os.O_DIRECTORY
NOFOLLOW = os.O_NOFOLLOW

OLD_NS = 1_000_000_000_123_456_789  # 2001-09-09, an unmistakably old timestamp


def name_of(code: int) -> str:
    return errno.errorcode.get(code, str(code))


def expect_errno(code: int, fn: Any, /, *args: Any, filename: Any = _UNSET,
                 filename2: Any = _UNSET, **kwargs: Any) -> OSError:
    """Call fn and assert it raises OSError with errno *code* (and filenames if given)."""
    try:
        result = fn(*args, **kwargs)
    except OSError as exc:
        assert exc.errno is not None, f"OSError without errno: {exc!r}"
        assert exc.errno == code, (
            f"expected {name_of(code)}, got {name_of(exc.errno)} ({exc!r})")
        # Python picks the subclass from errno; a bare subclass without errno is wrong
        assert type(exc) is type(OSError(code, "x")), f"wrong exception type {type(exc)}"
        if filename is not _UNSET:
            assert exc.filename == filename, f"filename {exc.filename!r} != {filename!r}"
        if filename2 is not _UNSET:
            assert exc.filename2 == filename2, f"filename2 {exc.filename2!r} != {filename2!r}"
        return exc
    pytest.fail(f"expected {name_of(code)}, but the call returned {result!r}")


def mkfile(fs: Any, path: str, data: bytes = b"", mode: int = 0o644) -> None:
    fd = fs.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)
    try:
        if data:
            assert fs.write(fd, data) == len(data)
    finally:
        fs.close(fd)


def readfile(fs: Any, path: str) -> bytes:
    fd = fs.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := fs.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        fs.close(fd)


def exists(fs: Any, path: str) -> bool:
    try:
        fs.lstat(path)
    except FileNotFoundError:
        return False
    return True


def mode_of(fs: Any, path: str) -> int:
    return stat.S_IMODE(fs.lstat(path).st_mode)


def age(fs: Any, path: str) -> None:
    """Set path's atime and mtime to OLD_NS, so later changes are visible."""
    fs.utime(path, ns=(OLD_NS, OLD_NS))
