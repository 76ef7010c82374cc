"""The host's own ``os`` as a reference implementation, chrooted into a directory.

``HostProcess(root, uid=0, gid=0, groups=(), umask=0o022)`` forks a child that
``chroot``s into *root*, ``chdir``s to ``/``, sets its umask and then drops to
the given credentials (``setgroups``, ``setgid``, ``setuid``).  The child
serves calls of ``os`` functions over a pipe:

    with HostProcess("/dev/shm/tmpXYZ") as hp:
        fd = hp.open("/f", os.O_CREAT | os.O_RDWR, 0o644)   # == hp.call("open", ...)
        hp.write(fd, b"x")

Results come back pickled; exceptions are re-raised in the caller with the
same type, ``errno``, ``strerror``, ``filename`` and ``filename2`` the child
saw.  Because of the chroot, absolute paths mean the same thing for a
``HostProcess`` as for a ``rumpfs.Kernel``, so a test can use identical paths
on both.

``scandir`` cannot return ``os.DirEntry`` objects (they do not pickle): it
returns a list of :class:`ScandirEntry` records, computed eagerly in the
child, with the same methods (``is_dir()``, ``stat()``, ...).  The list is
also a context manager, as ``os.scandir``'s iterator is.

Requires root (for ``chroot``) and Linux.  One child per instance; end it with
``close_proxy()`` or by leaving the ``with`` block.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import pickle
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["OS_METHODS", "HostProcess", "ScandirEntry", "ScandirList"]

# The os-like methods of rumpfs' Kernel/Process (docs/kernel-api-sketch.md).
OS_METHODS = frozenset(
    [
        "open", "close", "read", "write", "pread", "pwrite", "lseek", "fstat", "fsync",
        "fdatasync", "ftruncate", "dup", "stat", "lstat", "access", "mkdir", "rmdir", "unlink",
        "remove", "rename", "replace", "link", "symlink", "readlink", "listdir", "scandir",
        "chmod", "fchmod", "chown", "fchown", "lchown", "utime", "truncate", "mknod", "chdir",
        "fchdir", "getcwd", "getcwdb", "statvfs", "umask",
    ]
)


@dataclass(frozen=True)
class ScandirEntry:
    """A picklable stand-in for ``os.DirEntry``, filled in by the child."""

    name: str | bytes
    path: str | bytes
    ino: int
    _is_dir: bool | OSError
    _is_dir_nofollow: bool
    _is_file: bool | OSError
    _is_file_nofollow: bool
    _is_symlink: bool
    _stat: os.stat_result | OSError
    _lstat: os.stat_result | OSError

    def inode(self) -> int:
        return self.ino

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return _answer(self._is_dir) if follow_symlinks else self._is_dir_nofollow

    def is_file(self, *, follow_symlinks: bool = True) -> bool:
        return _answer(self._is_file) if follow_symlinks else self._is_file_nofollow

    def is_symlink(self) -> bool:
        return self._is_symlink

    def is_junction(self) -> bool:
        return False

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        result = self._stat if follow_symlinks else self._lstat
        if isinstance(result, OSError):
            raise _copy_oserror(result)
        return result

    def __fspath__(self) -> str | bytes:
        return self.path


class ScandirList(list[ScandirEntry]):
    """The child's scandir result: a list that is also a context manager."""

    def __enter__(self) -> ScandirList:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def close(self) -> None:
        return None


def _copy_oserror(exc: OSError) -> OSError:
    return pickle.loads(pickle.dumps(exc))


def _answer(result: bool | OSError) -> bool:
    if isinstance(result, OSError):
        raise _copy_oserror(result)
    return result


def _entry_record(entry: os.DirEntry[Any]) -> ScandirEntry:
    def guarded(fn: Any, **kw: Any) -> Any:
        try:
            return fn(**kw)
        except OSError as exc:
            return exc

    def followed(fn: Any) -> bool | OSError:
        # os.DirEntry.is_dir()/is_file() answer False for ENOENT and raise any
        # other error (ELOOP, EACCES, ENOTDIR...): the record raises it again.
        try:
            return bool(fn())
        except OSError as exc:
            return exc

    lstat = guarded(entry.stat, follow_symlinks=False)     # before anything follows
    return ScandirEntry(
        name=entry.name,
        path=entry.path,
        ino=entry.inode(),
        _is_dir=followed(entry.is_dir),
        _is_dir_nofollow=entry.is_dir(follow_symlinks=False),
        _is_file=followed(entry.is_file),
        _is_file_nofollow=entry.is_file(follow_symlinks=False),
        _is_symlink=entry.is_symlink(),
        _stat=guarded(entry.stat),
        _lstat=lstat,
    )


def _scandir(*args: Any, **kwargs: Any) -> ScandirList:
    with os.scandir(*args, **kwargs) as it:
        return ScandirList(_entry_record(e) for e in it)


def _fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """Linux's fallocate(2), which ``os`` lacks (through libc)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    if libc.fallocate(fd, mode, offset, length) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


# Calls a HostProcess serves beyond ``os``'s own functions (Kernel methods os lacks).
EXTRA_CALLS: dict[str, Any] = {"scandir": _scandir, "fallocate": _fallocate}


def _picklable_exception(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"unpicklable {type(exc).__name__}: {exc!r}")
    return exc


def _serve(conn: multiprocessing.connection.Connection, root: str, uid: int, gid: int,
           groups: tuple[int, ...], umask: int) -> None:
    """Child side: set up the jail and credentials, then answer calls until told to stop."""
    try:
        os.chroot(root)
        os.chdir("/")
        os.umask(umask)
        os.setgroups(list(groups))
        os.setgid(gid)
        os.setuid(uid)
    except BaseException as exc:  # report set-up failures to the parent
        conn.send(("err", _picklable_exception(exc)))
        return
    conn.send(("ok", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        name, args, kwargs = msg
        try:
            fn = EXTRA_CALLS.get(name) or getattr(os, name)
            result = fn(*args, **kwargs)
            if isinstance(result, Iterator):
                result = list(result)
            reply: tuple[str, Any] = ("ok", result)
        except BaseException as exc:
            reply = ("err", _picklable_exception(exc))
        try:
            conn.send(reply)
        except Exception as exc:  # an unpicklable result
            conn.send(("err", RuntimeError(f"cannot send result of {name}: {exc!r}")))


class HostProcess:
    """A forked, chrooted child that runs ``os`` calls for the caller (see module doc)."""

    def __init__(self, root: str | os.PathLike[str], uid: int = 0, gid: int = 0,
                 groups: tuple[int, ...] | list[int] = (), umask: int = 0o022) -> None:
        self.root = os.fspath(root)
        self.uid = uid
        self.gid = gid
        self.groups = tuple(groups)
        self._conn: multiprocessing.connection.Connection | None = None
        self._pid: int | None = None
        parent_conn, child_conn = multiprocessing.Pipe(duplex=True)
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                parent_conn.close()
                _serve(child_conn, self.root, uid, gid, self.groups, umask)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        child_conn.close()
        self._conn = parent_conn
        self._pid = pid
        status, value = self._recv()
        if status != "ok":
            self.close_proxy()
            raise value
        self.child_pid: int = value

    # -- plumbing --------------------------------------------------------------------------
    def _recv(self) -> tuple[str, Any]:
        assert self._conn is not None
        try:
            reply: tuple[str, Any] = self._conn.recv()
        except EOFError:
            raise RuntimeError(f"HostProcess child {self._pid} died") from None
        return reply

    def call(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Run ``os.<name>(*args, **kwargs)`` in the child; return or re-raise its outcome."""
        if self._conn is None:
            raise ValueError("HostProcess is closed")
        if not callable(getattr(os, name, None)) and name not in EXTRA_CALLS:
            raise AttributeError(f"os has no function {name!r}")
        # memoryview does not pickle; os treats any buffer like the bytes it holds
        args = tuple(bytes(a) if isinstance(a, memoryview) else a for a in args)
        self._conn.send((name, args, kwargs))
        status, value = self._recv()
        if status == "ok":
            return value
        raise value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or not (callable(getattr(os, name, None))
                                        or name in EXTRA_CALLS):
            raise AttributeError(name)

        def method(*args: Any, **kwargs: Any) -> Any:
            return self.call(name, *args, **kwargs)

        method.__name__ = name
        return method

    def hostpath(self, path: str) -> str:
        """The host path of an absolute path inside the jail."""
        return os.path.join(self.root, path.lstrip("/"))

    def close_proxy(self) -> None:
        """Stop the child and reap it; idempotent."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.send(None)
            except OSError:
                pass
            conn.close()
        pid, self._pid = self._pid, None
        if pid is not None:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass

    close_host = close_proxy

    def __enter__(self) -> HostProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_proxy()

    def __del__(self) -> None:
        try:
            self.close_proxy()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"HostProcess(root={self.root!r}, uid={self.uid}, gid={self.gid})"

