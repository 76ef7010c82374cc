"""The base kernel: descriptor tables, credentials and permission rule, device switch."""

from __future__ import annotations

import os

import pytest

from rumpfs.dev.mem import MemDriver
from rumpfs.errors import errno
from rumpfs.kern.cred import R_OK, W_OK, X_OK, Cred, may_access
from rumpfs.kern.devsw import BLOCK, CHAR, DevSwitch
from rumpfs.kern.proc import FdTable


def test_fd_table_hands_out_lowest_free() -> None:
    t: FdTable[str] = FdTable()
    assert [t.alloc(c) for c in "abcd"] == [0, 1, 2, 3]
    t.remove(1)
    t.remove(0)
    assert t.alloc("e") == 0
    assert t.alloc("f") == 1
    assert t.alloc("g") == 4
    t.remove(4)
    t.remove(3)
    assert t.alloc("h") == 3
    assert len(t) == 4
    assert [fd for fd, _ in t.items()] == [0, 1, 2, 3]


@pytest.mark.parametrize("fd", [-1, 7, 2**31 - 1, -2**31])
def test_fd_table_bad_descriptor_is_ebadf(fd: int) -> None:
    t: FdTable[str] = FdTable()
    t.alloc("a")
    with pytest.raises(OSError) as info:
        t.get(fd)
    assert info.value.errno == errno.EBADF


@pytest.mark.parametrize(("fd", "exc"), [(2**40, OverflowError), (-2**31 - 1, OverflowError),
                                         ("3", TypeError), (1.0, TypeError), (None, TypeError)])
def test_fd_table_absurd_descriptor_raises_as_os(fd: object, exc: type[Exception]) -> None:
    t: FdTable[str] = FdTable()
    t.alloc("a")
    with pytest.raises(exc):
        t.get(fd)  # type: ignore[arg-type]


def test_permission_classes_are_exclusive() -> None:
    alice = Cred(1000, 100, frozenset({5}))
    # owner class applies even when group or other would grant more
    assert not may_access(alice, 0o077, 1000, 100, R_OK)
    assert may_access(alice, 0o040, 1, 100, R_OK)
    assert may_access(alice, 0o040, 1, 5, R_OK)            # supplementary group
    assert not may_access(alice, 0o004 | 0o030, 1, 100, R_OK)
    assert may_access(alice, 0o007, 1, 2, R_OK | W_OK | X_OK)


def test_root_bypass_except_exec_without_any_x() -> None:
    root = Cred(0, 0)
    assert may_access(root, 0o000, 5, 5, R_OK | W_OK)
    assert not may_access(root, 0o644, 5, 5, X_OK)
    assert may_access(root, 0o100, 5, 5, X_OK)
    assert may_access(root, 0o000, 5, 5, X_OK, is_dir=True)


def test_devsw_lookup_and_enxio() -> None:
    sw = DevSwitch()
    driver = MemDriver()
    sw.register(CHAR, 1, driver)
    assert sw.lookup(CHAR, os.makedev(1, 3)) == (driver, 3)
    with pytest.raises(OSError) as info:
        sw.lookup(BLOCK, os.makedev(1, 3))
    assert info.value.errno == errno.ENXIO
    with pytest.raises(OSError) as info:
        sw.register(CHAR, 1, driver)
    assert info.value.errno == errno.EEXIST
