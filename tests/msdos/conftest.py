"""The contract syscall suite on a FAT mount: the ``fs``/``user``/``as_user``
fixtures of ``tests/contract`` over a kernel whose processes are rooted in a
directory of a FAT32 volume (made by ``newfs_msdos`` on a tmpfs image);
``fsck.fat -n`` must call the image clean after each test."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.unit.msdosfs.support import fsck


def process_in(k: Any, path: str, *, uid: int = 0, gid: int = 0, groups: tuple[int, ...] = (),
               umask: int = 0o022) -> Any:
    """A process of ``k`` whose root and cwd are ``path`` (as after chroot(2));
    test-only, through the kernel's internals (the contract has no chroot)."""
    from rumpfs.kern.cred import Cred
    from rumpfs.kernel import Process
    from rumpfs.vfs.namei import namei

    with k.lock:
        vp = namei(k._p, path, k._p.cwd, True)
        return Process(k, k._new_proc(Cred(uid, gid, frozenset(groups)), vp, umask))


class MsdosEnv:
    kind = "msdos"

    def __init__(self, k: Any) -> None:
        self.k = k
        self.procs: list[Any] = []
        self.fs = self.user(0, 0)

    def user(self, uid: int = 1000, gid: int = 1000, groups: tuple[int, ...] = (),
             umask: int = 0o022) -> Any:
        p = process_in(self.k, "/mnt/root", uid=uid, gid=gid, groups=tuple(groups),
                       umask=umask)
        self.procs.append(p)
        return p

    def close(self) -> None:
        """End the processes and unmount: the image is final and clean."""
        for p in self.procs:
            self.k.exit_process(p)
        self.k.unmount("/mnt")


@pytest.fixture
def env() -> Iterator[MsdosEnv]:
    from rumpfs import EtfsType, Kernel
    from rumpfs.sbin.newfs_msdos import newfs_msdos

    fd, image = tempfile.mkstemp(prefix="rumpfs-contract-msdos-", dir="/dev/shm")
    os.ftruncate(fd, 40 << 20)
    os.close(fd)
    k = Kernel()
    try:
        k.etfs_register("/dev/fat", image, EtfsType.BLK)
        newfs_msdos(k, "/dev/fat", fat_type=32, sectors_per_cluster=1)
        k.mkdir("/mnt")
        # fmask 133: files 0644 as a tmpfs makes them (vfat would show 0755)
        k.mount("msdos", "/mnt", device="/dev/fat", options={"fmask": "133", "dmask": "022"})
        k.mkdir("/mnt/root")
        env = MsdosEnv(k)
        yield env
        env.close()
        fsck(image)             # type: ignore[arg-type]
    finally:
        k.shutdown()
        os.unlink(image)


@pytest.fixture
def fs(env: MsdosEnv) -> Any:
    return env.fs


@pytest.fixture
def as_user(env: MsdosEnv) -> Callable[..., Any]:
    return env.user


@pytest.fixture
def user(env: MsdosEnv) -> Any:
    return env.user()
