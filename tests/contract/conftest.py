"""Fixtures for the contract suite: the same tests run on every implementation.

``fs`` is an object with the os-like methods of ``docs/kernel-api-sketch.md``
acting as root, with a fresh namespace whose absolute paths mean the same
thing on every implementation:

- ``host``: the host's own ``os`` (the reference), through a
  :class:`~tests.support.hostproc.HostProcess` chrooted into a fresh directory
  under ``/dev/shm`` (a tmpfs, like rumpfs);
- ``kernel``: a fresh ``rumpfs.Kernel()``.

``as_user(uid=1000, gid=1000, groups=(), umask=0o022)`` gives another
process over the same namespace with those credentials (a second
HostProcess, or ``kernel.process(...)``).  Trees are set up through ``fs``
(root) in both.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.hostproc import HostProcess

IMPLEMENTATIONS = ["host", "kernel"]


@dataclass
class Env:
    """One implementation under test: its root process and a way to get others."""

    kind: str
    fs: Any
    make_user: Callable[..., Any]

    def user(self, uid: int = 1000, gid: int = 1000, groups: tuple[int, ...] = (),
             umask: int = 0o022) -> Any:
        return self.make_user(uid=uid, gid=gid, groups=tuple(groups), umask=umask)


def _host_env() -> Iterator[Env]:
    root = tempfile.mkdtemp(prefix="rumpfs-contract-", dir="/dev/shm")
    os.chmod(root, 0o755)
    procs: list[HostProcess] = []

    def make_user(uid: int, gid: int, groups: tuple[int, ...], umask: int) -> HostProcess:
        hp = HostProcess(root, uid=uid, gid=gid, groups=groups, umask=umask)
        procs.append(hp)
        return hp

    try:
        yield Env("host", make_user(0, 0, (), 0o022), make_user)
    finally:
        for hp in procs:
            hp.close_proxy()
        shutil.rmtree(root, ignore_errors=True)


def _kernel_env() -> Iterator[Env]:
    import rumpfs  # lazily: the suite must collect before the kernel exists

    k = rumpfs.Kernel()

    def make_user(uid: int, gid: int, groups: tuple[int, ...], umask: int) -> Any:
        p = k.process(uid=uid, gid=gid, groups=groups)
        p.umask(umask)
        return p

    try:
        k.umask(0o022)
        yield Env("kernel", k, make_user)
    finally:
        k.shutdown()


@pytest.fixture(params=IMPLEMENTATIONS)
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    factory = _host_env if request.param == "host" else _kernel_env
    yield from factory()


@pytest.fixture
def fs(env: Env) -> Any:
    """The implementation's root process (uid 0, umask 0o022, cwd "/")."""
    return env.fs


@pytest.fixture
def as_user(env: Env) -> Callable[..., Any]:
    """Factory: ``as_user(uid=1000, gid=1000, groups=(), umask=0o022)``."""
    return env.user


@pytest.fixture
def user(env: Env) -> Any:
    """A process with uid 1000, gid 1000, no supplementary groups, umask 0o022."""
    return env.user()
