"""fsspec frontend: ``fsspec.filesystem("rumpfs", kernel=k)`` and ``rumpfs://`` URLs.

Role: an ``fsspec.AbstractFileSystem`` over one kernel (a ``rumpfs.Kernel``, or
a ``Process`` to act with its credentials), using only the kernel's public
os-like methods and ``open_file``; no second implementation of anything.
``RumpFileSystem`` is registered under the protocol ``rumpfs`` through the
``fsspec.specs`` entry point, so ``pandas.read_csv("rumpfs://data/x.csv",
storage_options={"kernel": k})`` works once rumpfs is installed.

Imports: fsspec, the standard library, ``rumpfs.path`` (the ``OsLike``
protocol).  It touches the host only where fsspec's own ``get``/``put`` copy
between the host and the kernel (fsspec's code, asked for by the caller).

Paths: every path is absolute in the kernel's namespace.  ``rumpfs://a/b``,
``rumpfs:///a/b``, ``/a/b`` and ``a/b`` all name ``/a/b`` (fsspec paths have
no cwd; the URL's "host" part is the first component).

Instances: fsspec caches file-system instances by their constructor
arguments; a kernel is live state, so this class is not cachable (each call
makes a new instance) and instances compare equal only over the *same* kernel
object.  Listings are never cached: the kernel is in-process and always
current, and other code may change it at any time.

Typing: fsspec has no type information (mypy sees ``Any``); the few values
that come back from fsspec's base class are cast, each with its reason.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import io
import os
import posixpath
import stat as st
from typing import IO, Any, cast

from fsspec.spec import AbstractFileSystem
from fsspec.utils import stringify_path

from rumpfs.path import OsLike, RumpPath

__all__ = ["RumpFileSystem"]

Info = dict[str, object]

_REQUIRED = ("open_file", "stat", "lstat", "listdir", "mkdir", "unlink", "rename")


def _has_magic(s: str) -> bool:
    return any(c in s for c in "*?[")


class RumpFileSystem(AbstractFileSystem):  # type: ignore[misc]  # fsspec is untyped (Any)
    """fsspec file system over a rumpfs kernel.

    ``RumpFileSystem(kernel=k, auto_mkdir=False)``: ``kernel`` is required (a
    ``rumpfs.Kernel`` or ``Process``); with ``auto_mkdir=True`` opening a file
    for writing, copying or piping creates missing parent directories, as
    fsspec's ``LocalFileSystem(auto_mkdir=True)`` does.
    """

    protocol = "rumpfs"
    root_marker = "/"
    sep = "/"
    # A kernel is live state: never hand back another caller's instance.
    cachable = False

    def __init__(self, kernel: OsLike | None = None, auto_mkdir: bool = False,
                 **storage_options: object) -> None:
        if kernel is None:
            raise TypeError(
                "RumpFileSystem needs a kernel: fsspec.filesystem('rumpfs', kernel=k) or "
                "storage_options={'kernel': k} with k a rumpfs.Kernel or Process"
            )
        missing = [m for m in _REQUIRED if not callable(getattr(kernel, m, None))]
        if missing:
            raise TypeError(
                f"kernel= must be a rumpfs.Kernel or Process, not {type(kernel).__name__} "
                f"(missing {', '.join(missing)})"
            )
        super().__init__(**storage_options)
        self.kernel: OsLike = kernel
        self.auto_mkdir = auto_mkdir

    # -- identity: per kernel object ----------------------------------------------

    @property
    def fsid(self) -> str:
        return f"rumpfs-{id(self.kernel):x}"

    @property
    def _fs_token(self) -> str:
        # fsspec's token hashes str() of the arguments, which need not tell two
        # kernels apart; the kernel object's identity must be part of it.
        base = cast(str, self._fs_token_)  # set by fsspec's metaclass: a hex str
        return hashlib.md5(f"{base}-{id(self.kernel)}".encode()).hexdigest()

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, RumpFileSystem)
            and other.kernel is self.kernel
            and other.auto_mkdir == self.auto_mkdir
        )

    def __hash__(self) -> int:
        return hash((id(self.kernel), self.auto_mkdir))

    def __repr__(self) -> str:
        return f"RumpFileSystem(kernel={self.kernel!r})"

    # -- paths ------------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: object) -> Any:  # str, or list[str] for a list
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        if isinstance(path, RumpPath):
            path = str(path)
        s = cast(str, stringify_path(path))  # str in, str out (PathLike -> fspath)
        for prefix in ("rumpfs://", "rumpfs::", "rumpfs:"):
            if s.startswith(prefix):
                s = s[len(prefix):]
                break
        comps = [c for c in s.split("/") if c and c != "."]
        return "/" + "/".join(comps)

    def unstrip_protocol(self, name: str) -> str:
        if name.startswith("rumpfs://"):
            return name
        return "rumpfs://" + cast(str, self._strip_protocol(name)).lstrip("/")

    @classmethod
    def _parent(cls, path: object) -> str:
        return posixpath.dirname(cast(str, cls._strip_protocol(path)))

    def _p(self, path: object) -> str:
        return cast(str, self._strip_protocol(path))

    # -- metadata ---------------------------------------------------------------------

    def _info(self, path: str) -> Info:
        lst = self.kernel.lstat(path)
        islink = st.S_ISLNK(lst.st_mode)
        s = lst
        if islink:
            try:
                s = self.kernel.stat(path)
            except OSError as e:
                if e.errno not in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                    raise
                s = lst  # a dangling link: described as itself
        if st.S_ISDIR(s.st_mode):
            kind = "directory"
        elif st.S_ISREG(s.st_mode):
            kind = "file"
        else:
            kind = "other"
        info: Info = {
            "name": path,
            "size": s.st_size if kind != "directory" else 0,
            "type": kind,
            "created": _created(s),
            "mtime": s.st_mtime,
            "islink": islink,
            "mode": s.st_mode,
            "uid": s.st_uid,
            "gid": s.st_gid,
            "ino": s.st_ino,
            "nlink": s.st_nlink,
        }
        if islink:
            info["destination"] = self.kernel.readlink(path)
        return info

    def info(self, path: object, **kwargs: object) -> Info:
        """Details of path: name, size, type ("file", "directory" or "other"),
        created, mtime, islink, mode, uid, gid, ino, nlink (and destination
        for symlinks, which are followed; a dangling one is type "other")."""
        return self._info(self._p(path))

    def ls(self, path: object, detail: bool = True, **kwargs: object) -> list[Any]:
        """Entries of a directory (sorted), or [path] itself for a file."""
        p = self._p(path)
        info = self._info(p)
        if info["type"] != "directory":
            return [info] if detail else [p]
        out: list[Any] = []
        for name in sorted(self.kernel.listdir(p)):
            child = posixpath.join(p, name)
            if not detail:
                out.append(child)
                continue
            try:
                out.append(self._info(child))
            except FileNotFoundError:
                pass  # removed since listdir
        return out

    def exists(self, path: object, **kwargs: object) -> bool:
        try:
            self.kernel.stat(self._p(path))
        except OSError:
            return False
        return True

    def lexists(self, path: object, **kwargs: object) -> bool:
        try:
            self.kernel.lstat(self._p(path))
        except OSError:
            return False
        return True

    def isdir(self, path: object) -> bool:
        try:
            return st.S_ISDIR(self.kernel.stat(self._p(path)).st_mode)
        except OSError:
            return False

    def isfile(self, path: object) -> bool:
        try:
            return st.S_ISREG(self.kernel.stat(self._p(path)).st_mode)
        except OSError:
            return False

    def islink(self, path: object) -> bool:
        try:
            return st.S_ISLNK(self.kernel.lstat(self._p(path)).st_mode)
        except OSError:
            return False

    def size(self, path: object) -> int:
        return self.kernel.stat(self._p(path)).st_size

    def modified(self, path: object) -> datetime.datetime:
        s = self.kernel.stat(self._p(path))
        return datetime.datetime.fromtimestamp(s.st_mtime, tz=datetime.UTC)

    def created(self, path: object) -> datetime.datetime:
        """Birth time where the kernel reports one, else the change time (as fsspec's local)."""
        s = self.kernel.stat(self._p(path))
        return datetime.datetime.fromtimestamp(_created(s), tz=datetime.UTC)

    def checksum(self, path: object) -> int:
        """Changes whenever the file's identity, size or times do."""
        s = self.kernel.stat(self._p(path))
        key = (s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_mode)
        return int(hashlib.md5(repr(key).encode()).hexdigest(), 16)

    def ukey(self, path: object) -> str:
        return f"{self.checksum(path):032x}"

    # -- directories ------------------------------------------------------------------

    def mkdir(self, path: object, create_parents: bool = True, **kwargs: object) -> None:
        p = self._p(path)
        mode = int(cast(int, kwargs.get("mode", 0o777)))
        if create_parents:
            if self.lexists(p):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), p)
            self.makedirs(p, exist_ok=True)
        else:
            self.kernel.mkdir(p, mode)

    def makedirs(self, path: object, exist_ok: bool = False) -> None:
        p = self._p(path)
        try:
            self.kernel.mkdir(p, 0o777)
        except FileNotFoundError:
            parent = posixpath.dirname(p)
            if parent == p:
                raise
            self.makedirs(parent, exist_ok=True)
            self.makedirs(p, exist_ok=exist_ok)
        except OSError:
            if not exist_ok or not self.isdir(p):
                raise

    def rmdir(self, path: object) -> None:
        self.kernel.rmdir(self._p(path))

    # -- removal ----------------------------------------------------------------------

    def rm_file(self, path: object) -> None:
        self.kernel.unlink(self._p(path))

    def _rm(self, path: object) -> None:
        self.rm_file(path)

    def _rm_one(self, p: str) -> None:
        if st.S_ISDIR(self.kernel.lstat(p).st_mode):
            self.kernel.rmdir(p)
        else:
            self.kernel.unlink(p)

    def rm(self, path: object, recursive: bool = False, maxdepth: int | None = None) -> None:
        """Delete files, or directories with recursive=True (an empty directory
        also without it, like ``rm -d``).  Globs are expanded; symlinks are
        removed, never followed."""
        if isinstance(path, str) and not _has_magic(path) and (recursive and maxdepth is None):
            self._rm_tree(self._p(path))
            return
        expanded = cast(list[str], self.expand_path(path, recursive=recursive,
                                                    maxdepth=maxdepth))  # a list of str
        for p in reversed(expanded):  # sorted: children come after their parent
            self._rm_one(p)

    def _rm_tree(self, p: str) -> None:
        if p == "/":
            for name in self.kernel.listdir("/"):
                self._rm_tree(posixpath.join("/", name))
            return
        mode = self.kernel.lstat(p).st_mode
        if st.S_ISDIR(mode):
            for name in self.kernel.listdir(p):
                self._rm_tree(posixpath.join(p, name))
            self.kernel.rmdir(p)
        else:
            self.kernel.unlink(p)

    # -- copy and move ----------------------------------------------------------------

    def cp_file(self, path1: object, path2: object, **kwargs: object) -> None:
        src, dst = self._p(path1), self._p(path2)
        if self.isdir(src):
            self.makedirs(dst, exist_ok=True)
            return
        if self.auto_mkdir:
            self.makedirs(posixpath.dirname(dst), exist_ok=True)
        with self.kernel.open_file(src, "rb") as fin, self.kernel.open_file(dst, "wb") as fout:
            while chunk := fin.read(1 << 20):
                fout.write(chunk)

    def mv(self, path1: object, path2: object, recursive: bool = False,
           maxdepth: int | None = None, **kwargs: object) -> None:
        """Move with the kernel's rename (directories move whole, like ``mv``):
        into path2 when path2 is an existing directory or ends with '/'.
        Lists and globs, or a rename the kernel refuses with EXDEV (another
        mount), go through fsspec's copy-then-delete."""
        if (
            isinstance(path1, str) and isinstance(path2, str)
            and not _has_magic(path1) and maxdepth is None
        ):
            src, dst = self._p(path1), self._p(path2)
            if src == dst:
                return
            if path2.endswith("/") or self.isdir(dst):
                dst = posixpath.join(dst, posixpath.basename(src))
            if self.auto_mkdir:
                self.makedirs(posixpath.dirname(dst), exist_ok=True)
            try:
                self.kernel.rename(src, dst)
                return
            except OSError as e:
                if e.errno != errno.EXDEV:
                    raise
            recursive = True
            path2 = dst
        super().mv(path1, path2, recursive=recursive, maxdepth=maxdepth, **kwargs)

    # -- file contents ----------------------------------------------------------------

    def _open(self, path: object, mode: str = "rb", block_size: int | None = None,
              autocommit: bool = True, cache_options: object = None,
              **kwargs: object) -> IO[bytes]:
        """A buffered, seekable binary file from the kernel's ``open_file``."""
        p = self._p(path)
        if "b" not in mode:
            mode += "b"
        if self.auto_mkdir and any(c in mode for c in "wxa"):
            self.makedirs(posixpath.dirname(p), exist_ok=True)
        raw = self.kernel.open_file(p, mode, buffering=0)
        if not isinstance(raw, io.RawIOBase):
            return cast(IO[bytes], raw)  # a kernel without raw files: use its own buffering
        size = block_size if block_size and block_size > 0 else io.DEFAULT_BUFFER_SIZE
        if "+" in mode:
            return RumpBufferedRandom(raw, size, fs=self, path=p)
        if "r" in mode:
            return RumpBufferedReader(raw, size, fs=self, path=p)
        return RumpBufferedWriter(raw, size, fs=self, path=p)

    def cat_file(self, path: object, start: int | None = None, end: int | None = None,
                 **kwargs: object) -> bytes:
        p = self._p(path)
        with self.kernel.open_file(p, "rb") as f:
            if start is None and end is None:
                return cast(bytes, f.read())  # a binary file's read: bytes
            length = self.kernel.stat(p).st_size
            lo = 0 if start is None else (start if start >= 0 else max(0, length + start))
            hi = length if end is None else (end if end >= 0 else max(0, length + end))
            if hi <= lo:
                return b""
            f.seek(lo)
            return cast(bytes, f.read(hi - lo))

    def pipe_file(self, path: object, value: bytes, mode: str = "overwrite",
                  **kwargs: object) -> None:
        """Write value to path; mode="create" fails with FileExistsError if it exists."""
        p = self._p(path)
        if self.auto_mkdir:
            self.makedirs(posixpath.dirname(p), exist_ok=True)
        with self.kernel.open_file(p, "xb" if mode == "create" else "wb") as f:
            f.write(value)

    def touch(self, path: object, truncate: bool = True, **kwargs: object) -> None:
        """Create path empty; an existing file is emptied (truncate=True) or
        only gets new times (truncate=False)."""
        p = self._p(path)
        if self.auto_mkdir:
            self.makedirs(posixpath.dirname(p), exist_ok=True)
        if not truncate and self.exists(p):
            self.kernel.utime(p, None)
            return
        with self.kernel.open_file(p, "wb"):
            pass

    def read_bytes(self, path: object, start: int | None = None, end: int | None = None,
                   **kwargs: object) -> bytes:
        return self.cat_file(path, start, end)

    # -- links and others -----------------------------------------------------------------

    def symlink(self, src: str, dst: object, **kwargs: object) -> None:
        """Make dst a symlink whose target is src, stored as given."""
        self.kernel.symlink(src, self._p(dst))

    def link(self, src: object, dst: object, **kwargs: object) -> None:
        self.kernel.link(self._p(src), self._p(dst))

    def chmod(self, path: object, mode: int) -> None:
        self.kernel.chmod(self._p(path), mode)

    def _isfilestore(self) -> bool:
        return True  # posix-like: directories are real, files can be appended to

    # Convenience for typed callers: a RumpPath at the same place.
    def path(self, path: object = "/") -> RumpPath:
        return RumpPath(self.kernel, self._p(path))


def _created(s: os.stat_result) -> float:
    birth = getattr(s, "st_birthtime", None)
    return float(birth) if isinstance(birth, (int, float)) else s.st_ctime


class _RumpBuffered:
    """What fsspec expects of a file besides io's interface: fs, path, size."""

    fs: RumpFileSystem
    path: str

    @property
    def size(self) -> int:
        return self.fs.size(self.path)


class RumpBufferedReader(io.BufferedReader, _RumpBuffered):
    def __init__(self, raw: io.RawIOBase, buffer_size: int, *, fs: RumpFileSystem,
                 path: str) -> None:
        super().__init__(raw, buffer_size)
        self.fs, self.path = fs, path


class RumpBufferedWriter(io.BufferedWriter, _RumpBuffered):
    def __init__(self, raw: io.RawIOBase, buffer_size: int, *, fs: RumpFileSystem,
                 path: str) -> None:
        super().__init__(raw, buffer_size)
        self.fs, self.path = fs, path


class RumpBufferedRandom(io.BufferedRandom, _RumpBuffered):
    def __init__(self, raw: io.RawIOBase, buffer_size: int, *, fs: RumpFileSystem,
                 path: str) -> None:
        super().__init__(raw, buffer_size)
        self.fs, self.path = fs, path
