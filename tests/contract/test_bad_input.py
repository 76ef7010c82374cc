"""Wrong types and absurd values (issue 9, items 10 and 11), on the host and the kernel.

Each call fails before it reaches a file: the host's ``os`` shows which
exception Linux+CPython raise, and the kernel must raise the same. Afterwards
the namespace is unchanged and still works.
"""

from __future__ import annotations

import errno
import math
import os
from typing import Any

import pytest

from tests.contract.helpers import CREAT, RDONLY, WRONLY, expect_errno, mkfile, readfile

# (method, args, kwargs, exception type) -- the host confirms each row
_BAD: list[tuple[str, tuple[Any, ...], dict[str, Any], type[BaseException]]] = [
    # 10. a str with a lone surrogate has no bytes form: rejected at the door
    ("stat", ("/\ud800x",), {}, UnicodeEncodeError),
    ("lstat", ("\udcff\ud800",), {}, UnicodeEncodeError),
    ("open", ("/\ud800", CREAT | WRONLY, 0o644), {}, UnicodeEncodeError),
    ("mkdir", ("/d/\ud800",), {}, UnicodeEncodeError),
    ("symlink", ("\ud800", "/s"), {}, UnicodeEncodeError),
    ("symlink", ("/f", "/\ud800"), {}, UnicodeEncodeError),
    ("rename", ("/f", "/\ud800"), {}, UnicodeEncodeError),
    ("link", ("/f", "/\ud800"), {}, UnicodeEncodeError),
    ("mknod", ("/\ud800",), {}, UnicodeEncodeError),
    ("chdir", ("/\ud800",), {}, UnicodeEncodeError),
    ("listdir", ("/\ud800",), {}, UnicodeEncodeError),
    # paths of the wrong type, embedded NUL
    ("stat", (None,), {}, TypeError),
    ("stat", (1.5,), {}, TypeError),
    ("open", (b"/f\0", RDONLY), {}, ValueError),
    ("mkdir", (["/x"],), {}, TypeError),
    ("listdir", (1.5,), {}, TypeError),
    # descriptors of the wrong type or beyond a C int
    ("read", ("3", 1), {}, TypeError),
    ("fstat", (2**40,), {}, OverflowError),
    ("fstat", (-2**40,), {}, OverflowError),
    ("close", (None,), {}, TypeError),
    ("stat", ("f",), {"dir_fd": 2**40}, OverflowError),
    # 11. uid and gid as os.chown converts them
    ("chown", ("/f", 2**32, -1), {}, OverflowError),
    ("chown", ("/f", -2, -1), {}, OverflowError),
    ("chown", ("/f", 2**63, -1), {}, OverflowError),
    ("chown", ("/f", "root", -1), {}, TypeError),
    ("chown", ("/f", 1.5, -1), {}, TypeError),
    ("chown", ("/f", math.nan, -1), {}, TypeError),
    ("chown", ("/f", None, -1), {}, TypeError),
    ("chown", ("/f", -1, 2**32), {}, OverflowError),
    ("chown", ("/f", -1, "wheel"), {}, TypeError),
    ("lchown", ("/f", 2**32, -1), {}, OverflowError),
    # other integers
    ("umask", ("022",), {}, TypeError),
    ("umask", (2**40,), {}, OverflowError),
    ("utime", ("/f", (1, 2)), {"ns": (1, 2)}, ValueError),
    ("utime", ("/f", "now"), {}, TypeError),
]


@pytest.mark.parametrize(("method", "args", "kwargs", "exc"), _BAD,
                         ids=[f"{m}-{i}" for i, (m, *_) in enumerate(_BAD)])
def test_bad_argument_raises_as_os(fs: Any, method: str, args: tuple[Any, ...],
                                   kwargs: dict[str, Any], exc: type[BaseException]) -> None:
    mkfile(fs, "/f", b"data")
    fs.mkdir("/d")
    before = fs.stat("/f")
    with pytest.raises(exc):
        getattr(fs, method)(*args, **kwargs)
    # nothing changed, and the implementation still works
    assert sorted(fs.listdir("/")) == ["d", "f"] and fs.listdir("/d") == []
    after = fs.stat("/f")
    assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid,
                                                           before.st_mode)
    assert fs.getcwd() == "/"
    mkfile(fs, "/d/ok", b"fine")
    assert readfile(fs, "/d/ok") == b"fine"


def test_chown_minus_one_and_uid_t_minus_one_leave_ids_alone(fs: Any) -> None:
    mkfile(fs, "/f")
    fs.chown("/f", 1000, 2000)
    for uid, gid in [(-1, -1), (2**32 - 1, 2**32 - 1), (-1, 2**32 - 1)]:
        fs.chown("/f", uid, gid)
        st = fs.stat("/f")
        assert (st.st_uid, st.st_gid) == (1000, 2000)
    fs.chown("/f", 2**32 - 2, True)             # the largest uid; a bool is an int
    st = fs.stat("/f")
    assert (st.st_uid, st.st_gid) == (2**32 - 2, 1)


def test_surrogateescape_names_round_trip(fs: Any) -> None:
    # bytes that are not UTF-8 come back as surrogateescape str, which encodes again
    fs.mkdir(b"/\xff\xfe")
    assert fs.listdir(b"/") == [b"\xff\xfe"]
    assert fs.listdir("/") == ["\udcff\udcfe"]
    fs.stat("/\udcff\udcfe")
    with fs.scandir(b"/") as it:
        assert [e.name for e in it] == [b"\xff\xfe"]


def test_bad_fd_beyond_int_on_user_process(user: Any) -> None:
    expect_errno(errno.EBADF, user.fstat, 2**31 - 1)
    with pytest.raises(OverflowError):
        user.fstat(2**31)
    expect_errno(errno.ENOENT, user.stat, os.fsdecode(b"/\xff"))
