"""The FUSE frontend's pushed invalidation without a mount: what is queued for
which in-process change, that the call returns only once it is written, the
retry for a node still on its way to the host, and the reply timeouts."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from rumpfs import Kernel
from rumpfs.frontends import fuse_proto as fp
from rumpfs.frontends.fuse import RumpOperations
from rumpfs.frontends.fuse_inval import TO_END, Invalidator


class FakeChannel:
    """Records notifications; answers each with the next scripted errno (0 after)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.answers: list[int] = []

    def notify(self, code: int, parts: list[bytes]) -> int:
        if code == fp.NOTIFY_INVAL_INODE:
            self.sent.append(("inode", fp.NOTIFY_INVAL_INODE_OUT.unpack(parts[0])))
        else:
            parent, namelen, _ = fp.NOTIFY_INVAL_ENTRY_OUT.unpack(parts[0])
            assert parts[1][namelen:] == b"\0"
            self.sent.append(("entry", (parent, parts[1][:namelen])))
        return self.answers.pop(0) if self.answers else 0


@pytest.fixture
def k() -> Iterator[Kernel]:
    with Kernel() as kernel:
        yield kernel


@pytest.fixture
def setup(k: Kernel) -> Iterator[tuple[Kernel, Any, Invalidator, FakeChannel, dict[int, int]]]:
    h = k.node_handles()
    ch = FakeChannel()
    held: dict[int, int] = {}
    inv = Invalidator(ch, lambda x: x, h.lookup_count, lambda x: held.get(x, 0),  # type: ignore[arg-type]
                      h.dev_kernel_only, (60, 0))
    inv.start()
    unsubscribe = h.subscribe(inv, inv)
    try:
        yield k, h, inv, ch, held
    finally:
        unsubscribe()
        inv.stop(10)


def test_entry_change_under_a_known_directory_is_written_before_the_call_returns(
        setup: Any) -> None:
    k, h, inv, ch, _ = setup
    k.mkdir("/d")
    assert ch.sent == [("entry", (h.ROOT, b"d")), ("inode", (h.ROOT, 0, 0))]
    assert inv.done == inv.queued == 2


def test_nodes_the_host_never_got_cost_nothing(setup: Any) -> None:
    k, _h, _inv, ch, _ = setup
    k.mkdir("/d")
    ch.sent.clear()
    k.path("/d/f").write_bytes(b"x")           # /d has no lookup count: the host knows nothing
    k.chmod("/d/f", 0o600)
    assert ch.sent == []


def test_data_attributes_and_ranges(setup: Any) -> None:
    k, h, _inv, ch, _ = setup
    k.path("/f").write_bytes(b"")
    st = h.lookup(h.process_for(0, 0), h.ROOT, b"f")     # the host holds /f now
    ch.sent.clear()
    fd = k.open("/f", os.O_WRONLY)
    k.pwrite(fd, b"abc", 8192)
    k.ftruncate(fd, 100)
    k.fchmod(fd, 0o600)
    k.close(fd)
    assert ch.sent == [("inode", (st.st_ino, 8192, 3)), ("inode", (st.st_ino, 100, 0)),
                       ("inode", (st.st_ino, -1, 0))]


def test_own_readers_changes_are_not_echoed(setup: Any) -> None:
    k, _h, inv, ch, _ = setup
    inv.readers.add(threading.get_ident())
    k.mkdir("/d")
    assert ch.sent == [] and inv.gen == 0


def test_pending_ranges_merge(k: Kernel) -> None:
    inv = Invalidator(FakeChannel(), lambda x: x, lambda x: 1, lambda x: 1,  # type: ignore[arg-type]
                      lambda dev: True, (60, 0))
    inv.push_inode(7, -1, 0)                   # attributes only
    inv.push_inode(7, 4096, 8192)              # then a range: the range
    inv.push_inode(7, 100, 200)
    assert inv._ranges[7] == (100, 8192) and inv.queued == 1
    inv.push_inode(7, 50000, TO_END)
    assert inv._ranges[7] == (100, TO_END) and inv.queued == 1


def test_a_node_on_its_way_to_the_host_is_retried(setup: Any) -> None:
    k, h, _inv, ch, held = setup
    k.path("/f").write_bytes(b"")
    st = h.lookup(h.process_for(0, 0), h.ROOT, b"f")
    ch.sent.clear()
    held[st.st_ino] = 1                         # this mount handed it out...
    ch.answers = [errno.ENOENT, errno.ENOENT]  # ...but the host has not installed it yet
    k.chmod("/f", 0o600)
    assert ch.sent == [("inode", (st.st_ino, -1, 0))] * 3
    ch.sent.clear()
    held.clear()                               # forgotten: ENOENT is final
    ch.answers = [errno.ENOENT]
    k.chmod("/f", 0o644)
    assert ch.sent == [("inode", (st.st_ino, -1, 0))]


def test_reply_keeps_no_attributes_of_a_node_changed_since_it_began(k: Kernel) -> None:
    h = k.node_handles()
    ops = RumpOperations(h, FakeChannel(), 60.0, notify=True)  # type: ignore[arg-type]
    assert ops.inval is not None
    unsubscribe = h.subscribe(ops.inval)       # no barrier: nothing is delivered here
    try:
        k.path("/f").write_bytes(b"")
        st = h.lookup(h.process_for(0, 0), h.ROOT, b"f")
        g0 = ops._gen()
        assert ops._timeouts(st.st_ino, st.st_dev, g0) == (60, 0, 60, 0)
        k.chmod("/f", 0o600)                   # in-process, after the reply began
        assert ops._timeouts(st.st_ino, st.st_dev, g0) == (60, 0, 0, 0)
        assert ops._timeouts(st.st_ino, st.st_dev, ops._gen()) == (60, 0, 60, 0)
    finally:
        unsubscribe()
