"""RumpPath: a pathlib-style path over a kernel's namespace.

Role: a thin, public-API-only adapter, as ``zipfile.Path`` is over an archive.
``k.path("/a/b")`` returns ``RumpPath(k, "/a/b")``.  Every operation is one or
a few of the kernel's os-like system calls (``stat``, ``listdir``, ``mkdir``,
``open_file``, ...) on the object the path was made from: a ``Kernel`` (acting
as root) or a ``Process`` (with its credentials, cwd and umask).  Nothing here
implements file-system behaviour of its own and nothing touches the host.

Imports: the standard library only (the kernel is reached through the
``OsLike`` protocol below, so this module never imports ``rumpfs.kernel``).

Why there is no ``__fspath__``: a RumpPath names a file *inside* a kernel.
If it were ``os.PathLike``, ``open(p)``, ``os.stat(p)``, ``shutil.copy(p, ...)``
and every other host function would silently accept it and act on the host
file of the same name, which is at best a confusing bug and at worst writes
to the wrong file.  ``str(p)`` is there for the explicit cases (for example
passing a path to the kernel's own ``open``), and ``p.open()`` /
``p.read_bytes()`` reach the kernel's file.

Invariants:
- The pure part is a ``PurePosixPath``; two RumpPaths are equal when they have
  the same kernel object (identity) and the same pure path.
- Relative paths resolve against the cwd of the kernel/process at each call,
  as pathlib's do against the host process's cwd.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import posixpath
import re
import stat as st
from collections.abc import Callable, Iterator, Sequence
from pathlib import PurePosixPath
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Protocol, TextIO, overload

if TYPE_CHECKING:
    from _typeshed import OpenBinaryMode, OpenTextMode, ReadableBuffer

__all__ = ["OsLike", "RumpPath"]

# Errors that mean "no such thing" to the is_*/exists predicates (as pathlib).
_IGNORED_ERRNOS = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)
_MAXSYMLINKS = 40  # Linux's limit, also used by resolve()


class OsLike(Protocol):
    """What a RumpPath needs of a kernel: a subset of its os-like methods.

    ``rumpfs.Kernel`` and ``rumpfs.Process`` satisfy it; so would any object
    with these methods and ``os``'s semantics."""

    def stat(self, path: str, *, follow_symlinks: bool = ...) -> os.stat_result: ...
    def lstat(self, path: str) -> os.stat_result: ...
    def listdir(self, path: str) -> list[str]: ...
    def mkdir(self, path: str, mode: int = ...) -> None: ...
    def rmdir(self, path: str) -> None: ...
    def unlink(self, path: str) -> None: ...
    def rename(self, src: str, dst: str) -> None: ...
    def replace(self, src: str, dst: str) -> None: ...
    def symlink(self, src: str, dst: str, target_is_directory: bool = ...) -> None: ...
    def link(self, src: str, dst: str) -> None: ...
    def readlink(self, path: str) -> str: ...
    def chmod(self, path: str, mode: int, *, follow_symlinks: bool = ...) -> None: ...
    def utime(self, path: str, times: tuple[float, float] | None = ...) -> None: ...
    def open(self, path: str, flags: int, mode: int = ...) -> int: ...
    def close(self, fd: int) -> None: ...
    def getcwd(self) -> str: ...
    def open_file(
        self,
        path: str,
        mode: str = ...,
        buffering: int = ...,
        encoding: str | None = ...,
        errors: str | None = ...,
        newline: str | None = ...,
    ) -> IO[Any]: ...


def _ignore_error(e: OSError) -> bool:
    return e.errno in _IGNORED_ERRNOS


class RumpPath:
    """A path in a kernel's namespace with pathlib's interface.

    ``RumpPath(k, "/a", "b")`` is ``/a/b`` in ``k``'s namespace; ``k`` is a
    ``rumpfs.Kernel`` or ``rumpfs.Process`` (any :class:`OsLike`).  With no
    path it is the root ``/``.  Joining with ``/`` and the pure accessors
    (``name``, ``suffix``, ``parent``, ``parts``...) never call the kernel;
    everything else is a system call made when the method runs.
    """

    __slots__ = ("_kernel", "_pure")

    def __init__(self, kernel: OsLike, *pathsegments: str | PurePosixPath | RumpPath) -> None:
        if isinstance(kernel, (str, bytes, os.PathLike, PurePosixPath, RumpPath)):
            raise TypeError(
                "RumpPath(kernel, *pathsegments): the first argument is the kernel "
                f"(a rumpfs.Kernel or Process), got {type(kernel).__name__}"
            )
        self._kernel = kernel
        if not pathsegments:
            self._pure = PurePosixPath("/")
        else:
            self._pure = PurePosixPath(*(self._segment(s) for s in pathsegments))

    def _segment(self, s: object) -> str | PurePosixPath:
        if isinstance(s, RumpPath):
            if s._kernel is not self._kernel:
                raise ValueError(f"{s!r} belongs to another kernel")
            return s._pure
        if isinstance(s, (str, PurePosixPath)):
            return s
        raise TypeError(
            f"a RumpPath segment must be str, PurePosixPath or RumpPath, not {type(s).__name__}"
        )

    def _new(self, pure: PurePosixPath) -> RumpPath:
        p = object.__new__(RumpPath)
        p._kernel = self._kernel
        p._pure = pure
        return p

    # -- identity ----------------------------------------------------------------

    @property
    def kernel(self) -> OsLike:
        """The Kernel or Process whose system calls this path uses."""
        return self._kernel

    def with_kernel(self, kernel: OsLike) -> RumpPath:
        """The same path seen by another kernel or process (e.g. ``k.process(...)``)."""
        return RumpPath(kernel, self._pure)

    def __str__(self) -> str:
        return str(self._pure)

    def __repr__(self) -> str:
        return f"RumpPath({self._kernel!r}, {str(self._pure)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RumpPath):
            return NotImplemented
        return self._kernel is other._kernel and self._pure == other._pure

    def __hash__(self) -> int:
        return hash((id(self._kernel), self._pure))

    def _cmp_key(self, other: object) -> PurePosixPath | None:
        if isinstance(other, RumpPath) and other._kernel is self._kernel:
            return other._pure
        return None

    def __lt__(self, other: object) -> bool:
        o = self._cmp_key(other)
        return NotImplemented if o is None else self._pure < o

    def __le__(self, other: object) -> bool:
        o = self._cmp_key(other)
        return NotImplemented if o is None else self._pure <= o

    def __gt__(self, other: object) -> bool:
        o = self._cmp_key(other)
        return NotImplemented if o is None else self._pure > o

    def __ge__(self, other: object) -> bool:
        o = self._cmp_key(other)
        return NotImplemented if o is None else self._pure >= o

    # -- pure path operations (no system calls) ------------------------------------

    def __truediv__(self, other: str | PurePosixPath | RumpPath) -> RumpPath:
        try:
            return self._new(self._pure / self._segment(other))
        except TypeError:
            return NotImplemented

    def joinpath(self, *others: str | PurePosixPath | RumpPath) -> RumpPath:
        return self._new(self._pure.joinpath(*(self._segment(o) for o in others)))

    @property
    def name(self) -> str:
        return self._pure.name

    @property
    def stem(self) -> str:
        return self._pure.stem

    @property
    def suffix(self) -> str:
        return self._pure.suffix

    @property
    def suffixes(self) -> list[str]:
        return self._pure.suffixes

    @property
    def parts(self) -> tuple[str, ...]:
        return self._pure.parts

    @property
    def anchor(self) -> str:
        return self._pure.anchor

    @property
    def root(self) -> str:
        return self._pure.root

    @property
    def parent(self) -> RumpPath:
        return self._new(self._pure.parent)

    @property
    def parents(self) -> Sequence[RumpPath]:
        return tuple(self._new(p) for p in self._pure.parents)

    @property
    def pure(self) -> PurePosixPath:
        """The path without its kernel, as a ``PurePosixPath``."""
        return self._pure

    def as_posix(self) -> str:
        return self._pure.as_posix()

    def is_absolute(self) -> bool:
        return self._pure.is_absolute()

    def is_relative_to(self, other: str | PurePosixPath | RumpPath) -> bool:
        return self._pure.is_relative_to(self._segment(other))

    def relative_to(self, other: str | PurePosixPath | RumpPath) -> RumpPath:
        return self._new(self._pure.relative_to(self._segment(other)))

    def match(self, pattern: str) -> bool:
        return self._pure.match(pattern)

    def with_name(self, name: str) -> RumpPath:
        return self._new(self._pure.with_name(name))

    def with_stem(self, stem: str) -> RumpPath:
        return self._new(self._pure.with_stem(stem))

    def with_suffix(self, suffix: str) -> RumpPath:
        return self._new(self._pure.with_suffix(suffix))

    # -- system calls ------------------------------------------------------------

    @property
    def _s(self) -> str:
        return str(self._pure)

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        return self._kernel.stat(self._s, follow_symlinks=follow_symlinks)

    def lstat(self) -> os.stat_result:
        return self._kernel.lstat(self._s)

    def _test_mode(self, pred: Callable[[int], bool], follow: bool = True) -> bool:
        try:
            mode = (self.stat() if follow else self.lstat()).st_mode
        except OSError as e:
            if not _ignore_error(e):
                raise
            return False
        except ValueError:  # unrepresentable path, as pathlib
            return False
        return pred(mode)

    def exists(self, *, follow_symlinks: bool = True) -> bool:
        return self._test_mode(lambda m: True, follow_symlinks)

    def is_dir(self) -> bool:
        return self._test_mode(st.S_ISDIR)

    def is_file(self) -> bool:
        return self._test_mode(st.S_ISREG)

    def is_symlink(self) -> bool:
        return self._test_mode(st.S_ISLNK, follow=False)

    def is_block_device(self) -> bool:
        return self._test_mode(st.S_ISBLK)

    def is_char_device(self) -> bool:
        return self._test_mode(st.S_ISCHR)

    def is_fifo(self) -> bool:
        return self._test_mode(st.S_ISFIFO)

    def is_socket(self) -> bool:
        return self._test_mode(st.S_ISSOCK)

    def is_mount(self) -> bool:
        """True if a file system is mounted here (or this is the root), as pathlib."""
        if not self.exists() or not self.is_dir():
            return False
        try:
            parent_dev = self._new(self._pure / "..").stat().st_dev
        except OSError:
            return False
        s = self.stat()
        if s.st_dev != parent_dev:
            return True
        return s.st_ino == self._new(self._pure / "..").stat().st_ino

    def samefile(self, other: str | PurePosixPath | RumpPath) -> bool:
        o = other if isinstance(other, RumpPath) else self._new(PurePosixPath(other))
        a, b = self.stat(), o.stat()
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    # open and whole-file helpers

    @overload
    def open(
        self,
        mode: OpenTextMode = "r",
        buffering: int = -1,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> TextIO: ...
    @overload
    def open(
        self,
        mode: OpenBinaryMode,
        buffering: int = -1,
        encoding: None = None,
        errors: None = None,
        newline: None = None,
    ) -> BinaryIO: ...
    @overload
    def open(
        self,
        mode: str,
        buffering: int = -1,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> IO[Any]: ...
    def open(
        self,
        mode: str = "r",
        buffering: int = -1,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> IO[Any]:
        """Open the file in the kernel, like ``builtins.open`` (``kernel.open_file``)."""
        return self._kernel.open_file(self._s, mode, buffering, encoding, errors, newline)

    def read_bytes(self) -> bytes:
        with self.open("rb") as f:
            return f.read()

    def read_text(self, encoding: str | None = None, errors: str | None = None) -> str:
        with self.open("r", encoding=encoding, errors=errors) as f:
            return f.read()

    def write_bytes(self, data: ReadableBuffer) -> int:
        view = memoryview(data)  # any buffer, as pathlib
        with self.open("wb") as f:
            return f.write(view)

    def write_text(
        self,
        data: str,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> int:
        if not isinstance(data, str):
            raise TypeError(f"data must be str, not {type(data).__name__}")
        with self.open("w", encoding=encoding, errors=errors, newline=newline) as f:
            return f.write(data)

    def create_file(
        self,
        contents: str | bytes = b"",
        mode: int = 0o666,
        *,
        encoding: str | None = None,
        exist_ok: bool = False,
    ) -> RumpPath:
        """Create the file with ``contents``, making missing parent directories
        first (pyfakefs' ``fs.create_file``); returns the path.

        ``mode`` is masked by the umask, as ``open(..., O_CREAT)``; parents
        are made with 0o777 (masked), as ``mkdir -p``. ``FileExistsError``
        if the file exists, unless ``exist_ok`` (then it is overwritten).
        """
        if self._pure.parent != self._pure:
            self.parent.mkdir(parents=True, exist_ok=True)
        data = contents.encode(encoding or "utf-8") if isinstance(contents, str) else contents
        # Create with O_EXCL and the mode first (open_file has no mode), then write.
        flags = os.O_CREAT | os.O_WRONLY | (0 if exist_ok else os.O_EXCL)
        self._kernel.close(self._kernel.open(self._s, flags, mode))
        with self.open("wb") as f:
            f.write(data)
        return self

    # directories

    def iterdir(self) -> Iterator[RumpPath]:
        for name in self._kernel.listdir(self._s):
            yield self._new(self._pure / name)

    def mkdir(self, mode: int = 0o777, parents: bool = False, exist_ok: bool = False) -> None:
        """Create the directory, as ``pathlib.Path.mkdir``."""
        try:
            self._kernel.mkdir(self._s, mode)
        except FileNotFoundError:
            if not parents or self._pure.parent == self._pure:
                raise
            self.parent.mkdir(parents=True, exist_ok=True)
            self.mkdir(mode, parents=False, exist_ok=exist_ok)
        except OSError:
            # Cannot rely on checking for EEXIST: the kernel may check other
            # errors (EACCES, EROFS) first, as pathlib notes for the host.
            if not exist_ok or not self.is_dir():
                raise

    def rmdir(self) -> None:
        self._kernel.rmdir(self._s)

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self._kernel.unlink(self._s)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def touch(self, mode: int = 0o666, exist_ok: bool = True) -> None:
        if exist_ok:
            try:
                self._kernel.utime(self._s, None)
            except OSError:
                pass  # does not exist (or not permitted): try to create it below
            else:
                return
        flags = os.O_CREAT | os.O_WRONLY
        if not exist_ok:
            flags |= os.O_EXCL
        fd = self._kernel.open(self._s, flags, mode)
        self._kernel.close(fd)

    def rename(self, target: str | PurePosixPath | RumpPath) -> RumpPath:
        """Rename to target; a relative target is relative to the cwd, as pathlib."""
        t = self._target(target)
        self._kernel.rename(self._s, str(t._pure))
        return t

    def replace(self, target: str | PurePosixPath | RumpPath) -> RumpPath:
        t = self._target(target)
        self._kernel.replace(self._s, str(t._pure))
        return t

    def _target(self, target: str | PurePosixPath | RumpPath) -> RumpPath:
        return self._new(PurePosixPath(self._segment(target)))

    def chmod(self, mode: int, *, follow_symlinks: bool = True) -> None:
        self._kernel.chmod(self._s, mode, follow_symlinks=follow_symlinks)

    def lchmod(self, mode: int) -> None:
        self.chmod(mode, follow_symlinks=False)

    # links

    def symlink_to(
        self, target: str | PurePosixPath | RumpPath, target_is_directory: bool = False
    ) -> None:
        """Make this path a symbolic link to target (stored as given)."""
        self._kernel.symlink(str(self._segment(target)), self._s, target_is_directory)

    def hardlink_to(self, target: str | PurePosixPath | RumpPath) -> None:
        self._kernel.link(str(self._segment(target)), self._s)

    def readlink(self) -> RumpPath:
        return self._new(PurePosixPath(self._kernel.readlink(self._s)))

    def absolute(self) -> RumpPath:
        if self._pure.is_absolute():
            return self
        return self._new(PurePosixPath(self._kernel.getcwd()) / self._pure)

    def resolve(self, strict: bool = False) -> RumpPath:
        """The absolute path with symlinks, '.' and '..' resolved, in the kernel.

        Each component is looked up with ``lstat``/``readlink`` on the kernel,
        so mounts, etfs keys and the caller's permissions all count.  With
        ``strict=False`` a missing tail is appended as is.  More than 40
        symbolic links raise ``OSError(ELOOP)`` (Linux's limit), in both modes.
        """
        path = self.absolute()._s
        resolved = "/"
        pending = [c for c in path.split("/") if c]
        pending.reverse()  # a stack: next component last
        links = 0
        while pending:
            comp = pending.pop()
            if comp == ".":
                continue
            if comp == "..":
                resolved = posixpath.dirname(resolved)
                continue
            candidate = posixpath.join(resolved, comp)
            try:
                mode = self._kernel.lstat(candidate).st_mode
            except OSError as e:
                if strict or not _ignore_error(e) or e.errno == errno.ELOOP:
                    raise
                # Missing: the rest is appended lexically, as pathlib does.
                rest = [comp, *reversed(pending)]
                return self._new(PurePosixPath(resolved, *rest))
            if not st.S_ISLNK(mode):
                if pending and not st.S_ISDIR(mode) and strict:
                    raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), candidate)
                resolved = candidate
                continue
            links += 1
            if links > _MAXSYMLINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), self._s)
            target = self._kernel.readlink(candidate)
            if target.startswith("/"):
                resolved = "/"
            pending.extend(reversed([c for c in target.split("/") if c]))
        return self._new(PurePosixPath(resolved))

    # globbing and walking

    def glob(self, pattern: str) -> Iterator[RumpPath]:
        """Yield the existing paths matching pattern, relative to this directory.

        Same rules as ``pathlib.Path.glob`` in Python 3.11: ``*``, ``?`` and
        ``[...]`` match within one component (hidden names included, case
        sensitive); ``**`` matches this directory and every directory below
        it, without descending into symlinked directories; a trailing ``**``
        yields directories only."""
        if not pattern:
            raise ValueError(f"Unacceptable pattern: {pattern!r}")
        if pattern.startswith("/"):
            raise NotImplementedError("Non-relative patterns are unsupported")
        comps = [c for c in pattern.split("/") if c and c != "."]
        if not comps:
            raise ValueError(f"Unacceptable pattern: {pattern!r}")
        for c in comps:
            if "**" in c and c != "**":
                raise ValueError("Invalid pattern: '**' can only be an entire path component")
        if pattern.endswith("/"):
            comps.append("")  # a trailing slash: directories only
        seen: set[PurePosixPath] = set()
        for p in self._select(self._pure, comps):
            if p not in seen:
                seen.add(p)
                yield self._new(p)

    def rglob(self, pattern: str) -> Iterator[RumpPath]:
        """``glob("**/" + pattern)``."""
        if pattern.startswith("/"):
            raise NotImplementedError("Non-relative patterns are unsupported")
        return self.glob("**/" + pattern) if pattern else self.glob("**")

    def _isdir(self, p: PurePosixPath, follow: bool = True) -> bool:
        try:
            s = self._kernel.stat(str(p)) if follow else self._kernel.lstat(str(p))
        except OSError as e:
            if _ignore_error(e) or e.errno == errno.EACCES:
                return False
            raise
        return st.S_ISDIR(s.st_mode)

    def _listdir(self, p: PurePosixPath) -> list[str]:
        try:
            return sorted(self._kernel.listdir(str(p)))
        except OSError as e:
            # pathlib's glob skips directories it cannot read.
            if _ignore_error(e) or e.errno == errno.EACCES:
                return []
            raise

    def _select(self, base: PurePosixPath, comps: list[str]) -> Iterator[PurePosixPath]:
        comp, rest = comps[0], comps[1:]
        if comp == "":  # trailing slash
            if self._isdir(base):
                yield base
            return
        if comp == "**":
            for d in self._walk_dirs(base):
                if rest:
                    yield from self._select(d, rest)
                else:
                    yield d
            return
        if not _has_magic(comp):
            p = base / comp
            if rest:
                if self._isdir(p):
                    yield from self._select(p, rest)
            else:
                try:
                    self._kernel.lstat(str(p))
                except OSError as e:
                    if not (_ignore_error(e) or e.errno == errno.EACCES):
                        raise
                else:
                    yield p
            return
        if not self._isdir(base):
            return
        match = re.compile(fnmatch.translate(comp)).fullmatch
        for name in self._listdir(base):
            if not match(name):
                continue
            p = base / name
            if rest:
                if self._isdir(p):
                    yield from self._select(p, rest)
            else:
                yield p

    def _walk_dirs(self, base: PurePosixPath) -> Iterator[PurePosixPath]:
        """base and every directory under it, not following symlinks below base."""
        if not self._isdir(base):
            return
        stack = [base]
        while stack:
            d = stack.pop()
            yield d
            subdirs = [d / n for n in self._listdir(d) if self._isdir(d / n, follow=False)]
            stack.extend(reversed(subdirs))

    def walk(
        self,
        top_down: bool = True,
        on_error: Callable[[OSError], object] | None = None,
        follow_symlinks: bool = False,
    ) -> Iterator[tuple[RumpPath, list[str], list[str]]]:
        """Walk the tree below this directory, as ``pathlib.Path.walk`` (3.12)."""
        try:
            names = self._kernel.listdir(self._s)
        except OSError as e:
            if on_error is not None:
                on_error(e)
            return
        dirs: list[str] = []
        files: list[str] = []
        for n in names:
            child = self._pure / n
            try:
                s = (
                    self._kernel.stat(str(child))
                    if follow_symlinks
                    else self._kernel.lstat(str(child))
                )
                is_dir = st.S_ISDIR(s.st_mode)
            except OSError:
                is_dir = False
            (dirs if is_dir else files).append(n)
        if top_down:
            yield self, dirs, files
        for n in dirs:  # top-down callers may prune dirs in place
            yield from self._new(self._pure / n).walk(top_down, on_error, follow_symlinks)
        if not top_down:
            yield self, dirs, files


_MAGIC = re.compile(r"[*?\[]")


def _has_magic(s: str) -> bool:
    return _MAGIC.search(s) is not None
