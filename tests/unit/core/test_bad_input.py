"""Bad input and life cycle of a Kernel (issue 9, items 10-14): every public
Kernel/Process method fed wrong types and absurd values, then the kernel must
still work; process credentials checked; shutdown runs every hook and leaves
one clear error; path-likes that call back into the kernel; exit_process.
(What the host can show is compared in tests/contract/test_bad_input.py.)"""

from __future__ import annotations

import errno
import inspect
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rumpfs import Kernel
from rumpfs.kernel import Process

ALLOWED = (TypeError, ValueError, OverflowError, OSError, UnicodeError)


@pytest.fixture
def k() -> Iterator[Kernel]:
    with Kernel() as kernel:
        yield kernel


def expect(code: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> OSError:
    with pytest.raises(OSError) as info:
        fn(*args, **kwargs)
    assert info.value.errno == code, info.value
    return info.value


def healthy(k: Kernel, busy: int) -> None:
    """The kernel works: its lock is free, no vnode reference leaked, the
    namespace takes new files, descriptors are handed out from the lowest."""
    assert k.lock.acquire(blocking=False)
    k.lock.release()
    assert k.vfs.mounts[0].busy == busy
    fd = k.open("/health", os.O_CREAT | os.O_RDWR, 0o644)
    assert k.write(fd, b"ok") == 2
    assert k.pread(fd, 2, 0) == b"ok"
    k.close(fd)
    k.unlink("/health")
    assert k.vfs.mounts[0].busy == busy


# -- 10-13: every public method, every absurd value --------------------------------------------

ABSURD: list[object] = [
    None, "\ud800x", b"\0", "", 2**100, -2**100, -1, 1.5, math.nan, object(), [], {"a": 1},
    True,
]

# Sensible values for the parameters a call does not get an absurd one for.
GOOD: dict[str, object] = {
    "path": "/f", "src": "/f", "dst": "/g", "name": "/n", "top": "/", "fd": 0,
    "n": 1, "data": b"x", "offset": 0, "pos": 0, "how": os.SEEK_SET, "flags": os.O_RDONLY,
    "mode": 0o644, "uid": -1, "gid": -1, "length": 4, "device": 0, "mask": 0o022,
    "times": None, "fstype": "rumpfs", "read_only": False, "key": "/etfskey",
    "hostpath": "/nonexistent-host-path", "target_is_directory": False,
    "exist_ok": True, "topdown": True, "buffering": -1, "encoding": None, "errors": None,
    "newline": None, "hook": None, "process": None, "groups": (),
}

# Methods left out of the generic run: they end or reconfigure the kernel
# (tested below on their own), or hand out frontends.
SKIP = {"shutdown", "exit_process", "add_shutdown_hook", "node_handles", "check_running",
        "attach_disk", "detach_disk", "sync"}


def _public_methods() -> list[str]:
    names = []
    for name, member in inspect.getmembers(Kernel):
        if name.startswith("_") or name in SKIP or not callable(member):
            continue
        names.append(name)
    return names


def _call(k: Kernel, name: str, index: int, value: object) -> None:
    fn = getattr(k, name)
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.POSITIONAL_ONLY)
              and p.default is inspect.Parameter.empty]
    if index >= len(params):
        return
    args = [value if i == index else GOOD.get(p.name, 0) for i, p in enumerate(params)]
    result = fn(*args)
    if inspect.isgenerator(result) or name in ("walk",):
        list(result)
    close = getattr(result, "close", None)
    if callable(close):
        close()


@pytest.mark.parametrize("name", _public_methods())
def test_every_method_survives_absurd_values(k: Kernel, name: str) -> None:
    k.close(k.open("/f", os.O_CREAT | os.O_WRONLY, 0o644))
    k.mkdir("/d")
    fd0 = k.open("/d", os.O_RDONLY)
    assert fd0 == 0
    busy = k.vfs.mounts[0].busy
    for index in range(4):
        for value in ABSURD:
            try:
                _call(k, name, index, value)
            except ALLOWED:
                pass
            # anything else (AttributeError, AssertionError, KeyError...) fails the test
            if name in ("chdir", "fchdir"):
                k.chdir("/")
            for fd, _ in k.vproc.fds.items():
                if fd != fd0:
                    k.close(fd)
            for leftover in set(k.listdir("/")) - {"f", "d"}:
                path = "/" + leftover
                if os.path.isabs(path) and k._isdir(path):
                    k.rmdir(path)
                else:
                    k.unlink(path)
            busy_now = k.vfs.mounts[0].busy
            assert busy_now == busy, (name, index, value)
    healthy(k, busy)


def test_a_lone_surrogate_never_becomes_a_name(k: Kernel) -> None:
    for make in (lambda p: k.mkdir(p), lambda p: k.close(k.open(p, os.O_CREAT | os.O_WRONLY)),
                 lambda p: k.symlink("x", p), lambda p: k.mknod(p)):
        with pytest.raises(UnicodeEncodeError):
            make("/\ud800")
    with pytest.raises(UnicodeEncodeError):
        k.symlink("\ud800", "/s")                    # nor a link target
    with pytest.raises(UnicodeEncodeError):
        k.etfs_register("/\ud800", "/etc/hostname")
    assert k.listdir(b"/") == [] and k.getcwdb() == b"/"


def test_fspath_that_calls_back_into_the_kernel(k: Kernel) -> None:
    # a path-like is converted before the kernel lock is taken (no deadlock)
    k.mkdir("/d")
    seen: list[bool] = []

    class Back:
        def __init__(self, path: str) -> None:
            self.path = path

        def __fspath__(self) -> str:
            free = k.lock.acquire(blocking=False)
            if free:
                k.lock.release()
            seen.append(free)
            k.stat("/")                              # a call into the same kernel
            return self.path

    k.close(k.open(Back("/d/f"), os.O_CREAT | os.O_WRONLY, 0o644))
    k.stat(Back("/d/f"))
    k.rename(Back("/d/f"), Back("/d/g"))
    k.link(Back("/d/g"), Back("/d/h"))
    k.symlink(Back("g"), Back("/d/s"))
    assert k.readlink(Back("/d/s")) == "g"
    k.chmod(Back("/d/g"), 0o600)
    k.chown(Back("/d/g"), 5, 6)
    k.utime(Back("/d/g"), None)
    k.truncate(Back("/d/g"), 0)
    assert sorted(k.listdir(Back("/d"))) == ["g", "h", "s"]
    assert len(list(k.scandir(Back("/d")))) == 3
    k.chdir(Back("/d"))
    k.unlink(Back("h"))
    k.chdir("/")
    k.statvfs(Back("/"))
    k.mkdir(Back("/m"))
    k.mount("rumpfs", Back("/m"))
    k.unmount(Back("/m"))
    k.rmdir(Back("/m"))
    assert seen and all(seen)


# -- 11: credentials of new processes -----------------------------------------------------

@pytest.mark.parametrize(("kwargs", "exc"), [
    ({"uid": "root"}, TypeError), ({"uid": 1.5}, TypeError), ({"uid": math.nan}, TypeError),
    ({"uid": None}, TypeError), ({"uid": 2**63}, OverflowError), ({"uid": 2**32}, OverflowError),
    ({"uid": -2}, OverflowError), ({"uid": -1}, ValueError), ({"uid": 2**32 - 1}, ValueError),
    ({"gid": "wheel"}, TypeError), ({"gid": -1}, ValueError), ({"gid": 2**40}, OverflowError),
    ({"groups": 5}, TypeError), ({"groups": [None]}, TypeError), ({"groups": [-1]}, ValueError),
    ({"groups": ["1"]}, TypeError), ({"umask": "022"}, TypeError),
    ({"umask": 2**40}, OverflowError),
])
def test_process_credentials_are_checked(k: Kernel, kwargs: dict[str, Any],
                                         exc: type[Exception]) -> None:
    procs = len(k._procs)
    with pytest.raises(exc):
        k.process(**kwargs)
    assert len(k._procs) == procs                    # nothing half-made


def test_process_ids_at_the_edges(k: Kernel) -> None:
    p = k.process(uid=2**32 - 2, gid=0, groups=[2**32 - 2, True], umask=-1)
    assert (p.uid, p.gid, p.groups) == (2**32 - 2, 0, frozenset({2**32 - 2, 1}))
    assert p.umask(0o022) == 0o777
    k.mkdir("/w", 0o777)
    k.chmod("/w", 0o777)
    p.mkdir("/w/d")
    assert k.stat("/w/d").st_uid == 2**32 - 2


# -- 14: exit_process ---------------------------------------------------------------------

def test_exit_process_takes_only_processes_of_this_kernel(k: Kernel) -> None:
    for bad in (None, "p", 1, object()):
        with pytest.raises(TypeError):
            k.exit_process(bad)  # type: ignore[arg-type]
    with Kernel() as other:
        stranger = other.process(uid=5)
        with pytest.raises(TypeError):
            k.exit_process(stranger)
        other.exit_process(stranger)
    with pytest.raises(ValueError):
        k.exit_process(k)
    p = k.process(uid=7)
    k.exit_process(p)
    k.exit_process(p)                                # twice: nothing left to release
    assert isinstance(p, Process)
    healthy(k, k.vfs.mounts[0].busy)


# -- 12: shutdown ------------------------------------------------------------------------

def test_shutdown_runs_every_hook_and_raises_the_first_error() -> None:
    k = Kernel()
    ran: list[str] = []

    def ok(name: str) -> Callable[[], None]:
        return lambda: ran.append(name)

    def boom(name: str, exc: Exception) -> Callable[[], None]:
        def hook() -> None:
            ran.append(name)
            raise exc
        return hook

    # hooks run in reverse order of registration
    k.add_shutdown_hook(ok("last"))
    k.add_shutdown_hook(boom("second", RuntimeError("second")))
    k.add_shutdown_hook(ok("middle"))
    k.add_shutdown_hook(boom("first", OSError(errno.EIO, "first")))
    fd = k.open("/f", os.O_CREAT | os.O_WRONLY)
    with pytest.raises(OSError) as info:
        k.shutdown()
    assert info.value.errno == errno.EIO
    assert any("second" in note for note in getattr(info.value, "__notes__", []))
    assert ran == ["first", "middle", "second", "last"]
    assert not k.vproc.fds.items()                   # descriptors closed all the same
    k.shutdown()                                     # a second call does nothing
    assert ran == ["first", "middle", "second", "last"]
    expect(errno.ESHUTDOWN, k.write, fd, b"x")


def test_every_call_after_shutdown_is_eshutdown() -> None:
    k = Kernel()
    k.mkdir("/d")
    p = k.process(uid=1000)
    k.shutdown()
    calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
        (k.stat, ("/",)), (k.open, ("/f", os.O_CREAT | os.O_WRONLY)), (k.mkdir, ("/e",)),
        (k.listdir, ("/",)), (k.scandir, ("/",)), (k.getcwd, ()), (k.chdir, ("/d",)),
        (k.rename, ("/d", "/e")), (k.unlink, ("/d",)), (k.rmdir, ("/d",)),
        (k.umask, (0,)), (k.read, (0, 1)), (k.close, (0,)), (k.truncate, ("/d", 0)),
        (k.statvfs, ("/",)), (k.mount, ("rumpfs", "/d")), (k.unmount, ("/d",)),
        (k.remount, ("/", True)), (k.process, ()), (k.exit_process, (p,)),
        (k.etfs_register, ("/k", "/etc/hostname")), (k.etfs_remove, ("/k",)),
        (k.node_handles, ()), (p.stat, ("/",)), (p.open, ("/x", os.O_RDONLY)),
        (p.getcwd, ()), (k.sync, ()), (k.readlink, ("/d",)),
    ]
    for fn, args in calls:
        expect(errno.ESHUTDOWN, fn, *args)
    with pytest.raises(OSError) as info:
        k.open_file("/d/x", "w")
    assert info.value.errno == errno.ESHUTDOWN
