"""Fixtures for the FUSE conformance tests: a kernel served at a temporary directory.

FUSE tests need ``/dev/fuse`` and ``fusermount3``; without them they
skip, unless ``RUMPFS_REQUIRE_FUSE=1`` (set by ``.ci/run``), which turns the
skip into a failure. Every mount is unmounted in teardown, and teardown checks
that nothing is left mounted.

Mount points live directly under ``/tmp`` (not under pytest's 0700 tmp_path),
so that a child running as uid 1000 can reach them; as root, mounts pass
``allow_other`` for the same reason.

``env``/``fs``/``user``/``as_user`` re-create the contract suite's fixtures
(``tests/contract/conftest.py``) for one more implementation, ``fuse``: the
host's own ``os`` in a child chrooted into the FUSE mount, so the syscall suite
runs again through the whole FUSE path.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.contract.conftest import Env
from tests.support.hostproc import HostProcess

ROOT = os.geteuid() == 0


def fuse_missing() -> str | None:
    """Why FUSE cannot be used here, or None."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed"
    return None


def require_fuse() -> None:
    """Skip (or, with RUMPFS_REQUIRE_FUSE=1, fail) when FUSE is unusable."""
    why = fuse_missing()
    if why is None:
        return
    if os.environ.get("RUMPFS_REQUIRE_FUSE") == "1":
        pytest.fail(f"FUSE required (RUMPFS_REQUIRE_FUSE=1) but {why}", pytrace=False)
    pytest.skip(f"FUSE unusable: {why}")


def is_mounted(path: str | os.PathLike[str]) -> bool:
    """Whether some FUSE file system is mounted at ``path`` (per /proc/self/mountinfo)."""
    target = os.path.abspath(os.fspath(path)).encode()
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 4 and fields[4].replace(b"\\040", b" ") == target:
                return b" - fuse" in line
    return False


def make_mountpoint(prefix: str = "rumpfs-fuse-") -> str:
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(path, 0o755)
    return path


def remove_mountpoint(path: str) -> None:
    assert not is_mounted(path), f"{path} is still mounted after teardown"
    os.rmdir(path)


@pytest.fixture
def fuse_kernel() -> Iterator[Any]:
    """A fresh rumpfs.Kernel (umask 022), shut down in teardown."""
    require_fuse()
    import rumpfs

    k = rumpfs.Kernel()
    try:
        k.umask(0o022)
        yield k
    finally:
        k.shutdown()


@pytest.fixture
def fuse_server(fuse_kernel: Any) -> Iterator[Any]:
    """A FuseServer serving ``fuse_kernel`` at a fresh mount point (``.mountpoint``)."""
    from rumpfs.fuse import serve

    mp = make_mountpoint()
    try:
        with serve(fuse_kernel, mp, allow_other=ROOT) as server:
            yield server
    finally:
        remove_mountpoint(mp)


@pytest.fixture
def exclusive_mnt(fuse_kernel: Any) -> Iterator[Path]:
    """``fuse_kernel`` served as the CLI serves it: nothing else changes the kernel,
    so the host caches entries, negative entries, attributes, pages and listings."""
    from rumpfs.frontends.fuse import FuseServer

    mp = make_mountpoint()
    server = FuseServer(fuse_kernel.node_handles(), mp, allow_other=ROOT, exclusive=True)
    try:
        server.start()
        yield Path(mp)
    finally:
        server.stop()
        remove_mountpoint(mp)


@pytest.fixture
def mnt(fuse_server: Any) -> Path:
    """The mount point of ``fuse_server``, as a Path."""
    return Path(fuse_server.mountpoint)


@pytest.fixture
def shm() -> Iterator[Path]:
    """A fresh directory on the host's tmpfs (/dev/shm): the reference for comparisons."""
    path = tempfile.mkdtemp(prefix="rumpfs-ref-", dir="/dev/shm")
    os.chmod(path, 0o755)
    try:
        yield Path(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- the contract suite's fixtures, for the "fuse" implementation -----------------------------


@pytest.fixture
def env(fuse_server: Any) -> Iterator[Env]:
    if not ROOT:
        pytest.skip("HostProcess needs root (chroot)")
    procs: list[HostProcess] = []

    def make_user(uid: int, gid: int, groups: tuple[int, ...], umask: int) -> HostProcess:
        hp = HostProcess(fuse_server.mountpoint, uid=uid, gid=gid, groups=groups, umask=umask)
        procs.append(hp)
        return hp

    try:
        yield Env("fuse", make_user(0, 0, (), 0o022), make_user)
    finally:
        for hp in procs:
            hp.close_proxy()


@pytest.fixture
def fs(env: Env) -> Any:
    return env.fs


@pytest.fixture
def as_user(env: Env) -> Callable[..., Any]:
    return env.user


@pytest.fixture
def user(env: Env) -> Any:
    return env.user()
