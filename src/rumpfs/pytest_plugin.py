"""pytest plugin: rumpfs kernels (and FUSE mounts of them) as fixtures.

Registered through the ``pytest11`` entry point (name ``rumpfs``), so
installing rumpfs is enough; in a source checkout, ``-p rumpfs.pytest_plugin``
or ``pytest_plugins = ["rumpfs.pytest_plugin"]`` in a conftest does the same.

Fixtures
    ``rumpfs_kernel``: a fresh :class:`rumpfs.Kernel` per test, shut down after
    it, with the test's ``rumpfs_etfs`` markers applied.

    ``rumpfs_mount``: that kernel served through FUSE
    (:func:`rumpfs.fuse.serve`) at a fresh temporary directory for the test's
    duration.  It is a :class:`RumpfsMount` with ``.kernel`` and
    ``.mountpoint`` (a str); ``.hostpath("/a/b")`` is where the kernel's
    ``/a/b`` shows on the host, for subprocesses.  Where FUSE is unavailable
    (no ``/dev/fuse`` or no ``fusermount3``) the
    test is skipped with the reason (also when mounting itself fails, as in
    a container without the privilege to mount), unless the environment sets
    ``RUMPFS_REQUIRE_FUSE=1`` (as CI should), which makes it fail instead.

Marker
    ``@pytest.mark.rumpfs_etfs(key, hostpath, type="reg", begin=0, size=None,
    read_only=False)`` maps a host path into ``rumpfs_kernel`` with
    ``k.etfs_register`` before the test runs (``read_only=True``: every change
    through it fails with EROFS, so a test can use the repository's own data
    without being able to change it).  ``type`` is an ``EtfsType`` or its
    name in any case (``"reg"``, ``"blk"``, ``"chr"``, ``"dir"``, ``"dir_subdirs"``).  A relative
    ``hostpath`` is relative to pytest's rootdir (where pytest.ini,
    pyproject.toml or setup.cfg is), so ``"tests/data"`` means the same thing
    from every test file.  Repeatable; markers are applied outermost first
    (module, then class, then function, top decorator first).

Marker
    ``@pytest.mark.rumpfs_image(image, at="/image", partition=None, fstype=None,
    read_only=False)`` attaches the host disk image ``image`` to
    ``rumpfs_kernel`` (as ``/dev/rumpdisk0``, the next one ``/dev/rumpdisk1``...,
    partitions ``/dev/rumpdisk0pN``) and mounts its file system at ``at``, as
    ``rumpfs mount --image`` does (docs/blockdev.md): the first partition
    holding a file system rumpfs knows, or the one given, with the type
    detected unless ``fstype`` is given. Applied after the ``rumpfs_etfs``
    markers; the kernel's shutdown flushes and unmounts it.

Imports: pytest and the standard library at import time (this module is
loaded into every pytest run once rumpfs is installed, so it stays cheap);
``rumpfs`` and ``rumpfs.fuse`` only inside the fixtures.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from rumpfs import EtfsType, Kernel

__all__ = ["RumpfsMount", "fuse_unavailable_reason"]

REQUIRE_FUSE_ENV = "RUMPFS_REQUIRE_FUSE"

_MARKER_HELP = (
    "rumpfs_etfs(key, hostpath, type='reg', begin=0, size=None, read_only=False): "
    "map a host file or "
    "directory into the rumpfs_kernel fixture at key with etfs before the test runs "
    "(repeatable; a relative hostpath is relative to the rootdir)"
)


_IMAGE_MARKER_HELP = (
    "rumpfs_image(image, at='/image', partition=None, fstype=None, read_only=False): "
    "attach a host disk image to the rumpfs_kernel fixture and mount its file system "
    "at `at` (a relative image path is relative to the rootdir)"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER_HELP)
    config.addinivalue_line("markers", _IMAGE_MARKER_HELP)


@dataclass(frozen=True)
class RumpfsMount:
    """A kernel served through FUSE: what the ``rumpfs_mount`` fixture gives."""

    kernel: Kernel
    mountpoint: str

    def hostpath(self, path: str) -> str:
        """Where the kernel's absolute ``path`` appears on the host."""
        if not path.startswith("/"):
            raise ValueError(f"hostpath() takes an absolute kernel path, not {path!r}")
        return self.mountpoint + path.rstrip("/") if path != "/" else self.mountpoint


def fuse_unavailable_reason() -> str | None:
    """None if a FUSE mount can be tried on this machine, else why not."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is not readable and writable by this user"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed (Debian/Ubuntu: apt install fuse3)"
    return None


def _etfs_type(value: object) -> EtfsType:
    from rumpfs import EtfsType

    if isinstance(value, EtfsType):
        return value
    if isinstance(value, str):
        try:
            return EtfsType[value.upper()]
        except KeyError:
            pass
    names = ", ".join(repr(t.name.lower()) for t in EtfsType)
    raise ValueError(f"type must be an EtfsType or one of {names}, not {value!r}")


def _apply_etfs_markers(request: pytest.FixtureRequest, k: Kernel) -> None:
    markers = list(request.node.iter_markers("rumpfs_etfs"))
    # iter_markers yields closest first (function, class, module), each in
    # decorator-application order (bottom decorator first): reverse both.
    for m in reversed(markers):
        try:
            _apply_one(request.config.rootpath, k, *m.args, **m.kwargs)
        except TypeError as exc:
            pytest.fail(f"bad @pytest.mark.rumpfs_etfs{_fmt(m.args, m.kwargs)}: {exc}",
                        pytrace=False)
        except OSError as exc:
            exc.add_note(f"while applying @pytest.mark.rumpfs_etfs{_fmt(m.args, m.kwargs)}")
            raise


def _fmt(args: tuple[object, ...], kwargs: dict[str, object]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return "(" + ", ".join(parts) + ")"


def _apply_one(
    rootdir: Path,
    k: Kernel,
    key: str,
    hostpath: str | os.PathLike[str],
    type: object = "reg",  # shadows the builtin: it is the marker's documented keyword
    begin: int = 0,
    size: int | None = None,
    read_only: bool = False,
) -> None:
    try:
        ftype = _etfs_type(type)
    except ValueError as exc:
        raise TypeError(str(exc)) from None
    host = Path(os.fspath(hostpath))
    if not host.is_absolute():
        host = rootdir / host
    k.etfs_register(key, str(host), ftype, begin=begin, size=size, read_only=read_only)


def _apply_image_markers(request: pytest.FixtureRequest, k: Kernel) -> None:
    markers = list(reversed(list(request.node.iter_markers("rumpfs_image"))))
    for n, m in enumerate(markers):
        try:
            _image_one(request.config.rootpath, k, f"/dev/rumpdisk{n}", *m.args, **m.kwargs)
        except (TypeError, ValueError) as exc:
            pytest.fail(f"bad @pytest.mark.rumpfs_image{_fmt(m.args, m.kwargs)}: {exc}",
                        pytrace=False)
        except OSError as exc:
            exc.add_note(f"while applying @pytest.mark.rumpfs_image{_fmt(m.args, m.kwargs)}")
            raise


def _image_one(rootdir: Path, k: Kernel, disk: str, image: str | os.PathLike[str],
               at: str = "/image", partition: int | None = None, fstype: str | None = None,
               read_only: bool = False) -> None:
    from rumpfs.frontends.image import mount_image

    host = Path(os.fspath(image))
    if not host.is_absolute():
        host = rootdir / host
    mount_image(k, host, partition=partition, fstype=fstype, read_only=read_only, at=at,
                disk=disk)


@pytest.fixture
def rumpfs_kernel(request: pytest.FixtureRequest) -> Iterator[Kernel]:
    """A fresh rumpfs Kernel, with the test's rumpfs_etfs and rumpfs_image markers applied."""
    from rumpfs import Kernel

    k = Kernel()
    try:
        _apply_etfs_markers(request, k)
        _apply_image_markers(request, k)
        yield k
    finally:
        k.shutdown()


@pytest.fixture
def rumpfs_mount(
    rumpfs_kernel: Kernel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RumpfsMount]:
    """``rumpfs_kernel`` served through FUSE at a temporary directory."""
    reason = fuse_unavailable_reason()
    if reason is not None:
        _no_fuse(reason)
    from rumpfs.fuse import serve

    mnt = tmp_path_factory.mktemp("rumpfs-mnt", numbered=True)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(serve(rumpfs_kernel, mnt))
        except (RuntimeError, TimeoutError) as exc:
            if "already active" in str(exc):
                raise  # a second serve() in this process: the test's own error
            # /dev/fuse is there but mounting is not allowed (a container
            # without CAP_SYS_ADMIN, say): as unavailable as no /dev/fuse.
            _no_fuse(f"mounting failed: {exc}")
        yield RumpfsMount(rumpfs_kernel, str(mnt))
    try:
        mnt.rmdir()
    except OSError:
        pass  # left for pytest's own cleanup of its temporary directories


def _no_fuse(reason: str) -> NoReturn:
    msg = f"rumpfs_mount needs FUSE: {reason}"
    if os.environ.get(REQUIRE_FUSE_ENV) == "1":
        pytest.fail(f"{msg} ({REQUIRE_FUSE_ENV}=1)", pytrace=False)
    pytest.skip(msg)
